//! Access tokens: issue, check, revoke.
//!
//! A token is 32 random bytes from the operating system, handed out once as base64url
//! text. The database keeps only its SHA-256, so a leaked database (or backup) yields no
//! usable token; a plain, unsalted digest is enough because the secret itself has 256
//! bits of entropy, nothing to brute-force. Tokens live in the database rather than in
//! process memory so that every process accepts and revokes the same ones.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entity::{access_tokens, users};
use rand::TryRngCore;
use sea_orm::prelude::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, JoinType,
    PaginatorTrait, QueryFilter, QuerySelect, RelationTrait,
};
use sha2::{Digest, Sha256};

use crate::clock::utc;
use crate::error::{Error, Result};
use crate::{Caller, Context, Id, Unauthenticated};

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Length of the base64url text of [`SECRET_BYTES`] (no padding).
const SECRET_LEN: usize = 43;

/// A token just issued: the secret is shown to its owner once and never stored.
#[derive(Clone)]
pub struct IssuedToken {
    /// The token itself; only its hash is stored.
    pub secret: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Redacts the secret, so that a logged value never hands out a working token.
impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Login and unlock tokens.
#[derive(Clone)]
pub struct Tokens {
    ctx: Context,
}

/// Lowercase hex SHA-256 of a secret: what `access_tokens.token_hash` holds.
pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub(crate) fn new_secret() -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| Error::Internal(format!("operating system randomness failed: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `secret` could be one we issued. Anything else cannot match a stored hash,
/// so it is refused without a query (and an oversized header costs no hashing).
pub(crate) fn well_formed(secret: &str) -> bool {
    secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Which row a new token belongs to.
enum Owner {
    User(Id),
    Report(Id),
}

impl Tokens {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// A login token for `user_id`, valid for `settings.session_ttl`.
    pub(crate) async fn issue_for_user<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: Id,
    ) -> Result<IssuedToken> {
        self.issue(conn, Owner::User(user_id), self.ctx.settings.session_ttl)
            .await
    }

    /// The right to view one password-protected report, valid for `settings.unlock_ttl`.
    pub(crate) async fn issue_for_report<C: ConnectionTrait>(
        &self,
        conn: &C,
        report_id: Id,
    ) -> Result<IssuedToken> {
        self.issue(conn, Owner::Report(report_id), self.ctx.settings.unlock_ttl)
            .await
    }

    async fn issue<C: ConnectionTrait>(
        &self,
        conn: &C,
        owner: Owner,
        ttl: chrono::Duration,
    ) -> Result<IssuedToken> {
        let secret = new_secret()?;
        let now = self.ctx.clock.now_naive();
        let expires_at = now + ttl;
        let (user_id, report_id) = match owner {
            Owner::User(id) => (Some(id), None),
            Owner::Report(id) => (None, Some(id)),
        };
        access_tokens::Entity::insert(access_tokens::ActiveModel {
            id: Set(Id(uuid::Uuid::new_v4())),
            token_hash: Set(hash_secret(&secret)),
            user_id: Set(user_id),
            report_id: Set(report_id),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
            created_at: Set(now),
        })
        .exec_without_returning(conn)
        .await?;
        Ok(IssuedToken {
            secret,
            expires_at: utc(expires_at),
        })
    }

    /// The user a login token belongs to, as the row is NOW: a tier or admin change
    /// applies to tokens issued before it. Unknown, revoked, expired and report tokens
    /// are all [`Error::Unauthorized`] (with [`crate::Unauthenticated::Token`]).
    pub async fn authenticate(&self, secret: &str) -> Result<Caller> {
        if !well_formed(secret) {
            return Err(Error::Unauthorized(Unauthenticated::Token));
        }
        let now = self.ctx.clock.now_naive();
        // The inner join on `access_tokens.user_id` also leaves report tokens out.
        users::Entity::find()
            .join(
                JoinType::InnerJoin,
                access_tokens::Relation::User.def().rev(),
            )
            .filter(access_tokens::Column::TokenHash.eq(hash_secret(secret)))
            .filter(access_tokens::Column::RevokedAt.is_null())
            .filter(access_tokens::Column::ExpiresAt.gt(now))
            .one(&self.ctx.db)
            .await?
            .map(|user| Caller::new(user.into()))
            .ok_or(Error::Unauthorized(Unauthenticated::Token))
    }

    /// An unlock token for `report_id`, as a successful [`crate::Reports::unlock`] issues
    /// (for tools that hand out access without the password, such as an owner's preview).
    pub async fn issue_unlock(&self, report_id: Id) -> Result<IssuedToken> {
        self.issue_for_report(&self.ctx.db, report_id).await
    }

    /// Whether `secret` is a live unlock token for `report_id`.
    pub async fn grants_report(&self, secret: &str, report_id: Id) -> Result<bool> {
        if !well_formed(secret) {
            return Ok(false);
        }
        let now = self.ctx.clock.now_naive();
        let live = access_tokens::Entity::find()
            .filter(access_tokens::Column::TokenHash.eq(hash_secret(secret)))
            .filter(access_tokens::Column::ReportId.eq(report_id))
            .filter(access_tokens::Column::RevokedAt.is_null())
            .filter(access_tokens::Column::ExpiresAt.gt(now))
            .count(&self.ctx.db)
            .await?;
        Ok(live > 0)
    }

    /// Revokes one token (logout). An unknown or already revoked token is not an error:
    /// the outcome the caller wants, a token that does not work, holds either way.
    pub async fn revoke(&self, secret: &str) -> Result<()> {
        if !well_formed(secret) {
            return Ok(());
        }
        let now = self.ctx.clock.now_naive();
        access_tokens::Entity::update_many()
            .col_expr(access_tokens::Column::RevokedAt, Expr::value(now))
            .filter(access_tokens::Column::TokenHash.eq(hash_secret(secret)))
            .filter(access_tokens::Column::RevokedAt.is_null())
            .exec(&self.ctx.db)
            .await?;
        Ok(())
    }

    /// Revokes every live token of a user, except `except_secret` (the caller's own
    /// session after a password change).
    pub(crate) async fn revoke_user_tokens<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: Id,
        except_secret: Option<&str>,
    ) -> Result<()> {
        let now = self.ctx.clock.now_naive();
        let mut update = access_tokens::Entity::update_many()
            .col_expr(access_tokens::Column::RevokedAt, Expr::value(now))
            .filter(access_tokens::Column::UserId.eq(user_id))
            .filter(access_tokens::Column::RevokedAt.is_null());
        if let Some(keep) = except_secret {
            update = update.filter(access_tokens::Column::TokenHash.ne(hash_secret(keep)));
        }
        update.exec(conn).await?;
        Ok(())
    }

    /// Deletes tokens that expired or were revoked more than a day ago; returns how many.
    /// The day of grace keeps recent revocations inspectable.
    pub async fn purge_expired(&self) -> Result<u64> {
        let cutoff = self.ctx.clock.now_naive() - chrono::Duration::days(1);
        let result = access_tokens::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(access_tokens::Column::ExpiresAt.lt(cutoff))
                    .add(access_tokens::Column::RevokedAt.lt(cutoff)),
            )
            .exec(&self.ctx.db)
            .await?;
        Ok(result.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_base64url_of_32_bytes() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(well_formed(&a), "{a}");
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), SECRET_BYTES);
    }

    #[test]
    fn hash_is_lowercase_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_secrets_are_refused_early() {
        assert!(!well_formed(""));
        assert!(!well_formed(&"a".repeat(44)));
        assert!(!well_formed(&format!("{}=", "a".repeat(42))));
    }
}
