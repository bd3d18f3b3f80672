//! The secrets stored under the [`crate::Keyring`]: embed keys' HMAC secrets and data
//! connections' passwords. Rotation re-encrypts them under the current key, online: in
//! batches, each row rewritten only if it still holds the value read (a concurrent
//! change wins and is picked up by the next pass), so running it twice, or while servers
//! run, is safe; afterwards the old keys can be removed from the configuration.
use entity::{data_connections, embed_keys};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{Admin, Context, Id, Keyring, Result};

/// Rows re-encrypted per statement batch.
const BATCH: u64 = 100;

/// What a rotation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Embed key secrets re-encrypted.
    pub embed_keys: u64,
    /// Connection passwords re-encrypted.
    pub connection_passwords: u64,
}

/// Checks and rotation of the secrets at rest.
#[derive(Clone)]
pub struct Keys {
    ctx: Context,
}

/// The key id a stored value was written with (the text before `:`).
fn key_id(stored: &str) -> &str {
    stored.split_once(':').map_or("", |(id, _)| id)
}

impl Keys {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// The key ids of stored secrets that the keyring does not hold (sorted, each once):
    /// a server must not start with them, or those secrets would be unreadable.
    pub async fn unknown_key_ids(&self) -> Result<Vec<String>> {
        let keyring = self.ctx.keyring()?;
        let mut stored: Vec<String> = embed_keys::Entity::find()
            .select_only()
            .column(embed_keys::Column::SecretEncrypted)
            .into_tuple::<String>()
            .all(&self.ctx.db)
            .await?;
        stored.extend(
            data_connections::Entity::find()
                .select_only()
                .column(data_connections::Column::PasswordEncrypted)
                .filter(data_connections::Column::PasswordEncrypted.is_not_null())
                .into_tuple::<String>()
                .all(&self.ctx.db)
                .await?,
        );
        let mut unknown: Vec<String> = stored
            .iter()
            .filter(|s| !keyring.knows(s))
            .map(|s| key_id(s).to_owned())
            .collect();
        unknown.sort();
        unknown.dedup();
        Ok(unknown)
    }

    /// Re-encrypts every stored secret not yet under the current key.
    pub async fn rotate(&self, _admin: &Admin) -> Result<Rotation> {
        let keyring = self.ctx.keyring()?;
        let done = Rotation {
            embed_keys: self
                .rotate_column::<embed_keys::Entity>(
                    keyring,
                    embed_keys::Column::Id,
                    embed_keys::Column::SecretEncrypted,
                )
                .await?,
            connection_passwords: self
                .rotate_column::<data_connections::Entity>(
                    keyring,
                    data_connections::Column::Id,
                    data_connections::Column::PasswordEncrypted,
                )
                .await?,
        };
        if done == Rotation::default() {
            tracing::info!("every stored secret is already under the current key");
        }
        Ok(done)
    }

    /// Re-encrypts the values of `secret` in `E` that are not under the current key, each
    /// bound to its row's `id`, in batches; returns how many rows it rewrote. A row is
    /// rewritten only if it still holds the value read, so a concurrent change wins (and
    /// is picked up by the next batch if it is not under the current key either).
    async fn rotate_column<E: EntityTrait>(
        &self,
        keyring: &Keyring,
        id: E::Column,
        secret: E::Column,
    ) -> Result<u64> {
        let prefix = format!("{}:", keyring.current_id());
        let mut rewritten = 0;
        loop {
            let rows: Vec<(Id, String)> = E::find()
                .select_only()
                .column(id)
                .column(secret)
                .filter(secret.is_not_null())
                .filter(secret.not_like(format!("{prefix}%")))
                .order_by_asc(id)
                .limit(BATCH)
                .into_tuple()
                .all(&self.ctx.db)
                .await?;
            if rows.is_empty() {
                return Ok(rewritten);
            }
            for (row, old) in rows {
                let plain = keyring.decrypt(&old, row.to_string().as_bytes())?;
                let new = keyring.encrypt(&plain, row.to_string().as_bytes())?;
                rewritten += E::update_many()
                    .col_expr(secret, Expr::value(new))
                    .filter(id.eq(row))
                    .filter(secret.eq(old))
                    .exec(&self.ctx.db)
                    .await?
                    .rows_affected;
            }
        }
    }
}
