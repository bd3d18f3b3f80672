//! The secrets stored under the [`crate::Keyring`]: embed keys' HMAC secrets and data
//! connections' passwords. Rotation re-encrypts them under the current key, online: in
//! batches, each row rewritten only if it still holds the value read (a concurrent
//! change wins and is picked up by the next pass), so running it twice, or while servers
//! run, is safe; afterwards the old keys can be removed from the configuration.
use entity::{data_connections, embed_keys};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{Admin, Context, Id, Result};

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
        let prefix = format!("{}:", keyring.current_id());
        let mut done = Rotation::default();
        loop {
            let rows: Vec<(Id, String)> = embed_keys::Entity::find()
                .select_only()
                .column(embed_keys::Column::Id)
                .column(embed_keys::Column::SecretEncrypted)
                .filter(embed_keys::Column::SecretEncrypted.not_like(format!("{prefix}%")))
                .order_by_asc(embed_keys::Column::Id)
                .limit(BATCH)
                .into_tuple()
                .all(&self.ctx.db)
                .await?;
            if rows.is_empty() {
                break;
            }
            for (id, old) in rows {
                let plain = keyring.decrypt(&old, id.to_string().as_bytes())?;
                let new = keyring.encrypt(&plain, id.to_string().as_bytes())?;
                done.embed_keys += embed_keys::Entity::update_many()
                    .col_expr(embed_keys::Column::SecretEncrypted, Expr::value(new))
                    .filter(embed_keys::Column::Id.eq(id))
                    .filter(embed_keys::Column::SecretEncrypted.eq(old))
                    .exec(&self.ctx.db)
                    .await?
                    .rows_affected;
            }
        }
        loop {
            let rows: Vec<(Id, String)> = data_connections::Entity::find()
                .select_only()
                .column(data_connections::Column::Id)
                .column(data_connections::Column::PasswordEncrypted)
                .filter(data_connections::Column::PasswordEncrypted.is_not_null())
                .filter(data_connections::Column::PasswordEncrypted.not_like(format!("{prefix}%")))
                .order_by_asc(data_connections::Column::Id)
                .limit(BATCH)
                .into_tuple()
                .all(&self.ctx.db)
                .await?;
            if rows.is_empty() {
                break;
            }
            for (id, old) in rows {
                let plain = keyring.decrypt(&old, id.to_string().as_bytes())?;
                let new = keyring.encrypt(&plain, id.to_string().as_bytes())?;
                done.connection_passwords += data_connections::Entity::update_many()
                    .col_expr(
                        data_connections::Column::PasswordEncrypted,
                        Expr::value(new),
                    )
                    .filter(data_connections::Column::Id.eq(id))
                    .filter(data_connections::Column::PasswordEncrypted.eq(old))
                    .exec(&self.ctx.db)
                    .await?
                    .rows_affected;
            }
        }
        if done == Rotation::default() {
            tracing::info!("every stored secret is already under the current key");
        }
        Ok(done)
    }
}
