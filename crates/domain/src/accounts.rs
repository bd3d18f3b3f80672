//! Accounts: register, login, logout, password change, profile, deletion, and the admin
//! operations on users.
//!
//! Emails are stored normalized (trimmed, lower-case). Rows of the Python era may hold
//! capitals, so every lookup by email also compares `LOWER(email)`.
use entity::users::{self, Tier};
use entity::{attempt_limits, datasets};
use sea_orm::prelude::Expr;
use sea_orm::sea_query::{ExprTrait, Func};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ActiveValue::Unchanged, ColumnTrait, ConnectionTrait,
    DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::error::{Error, Result};
use crate::pagination::{Page, PageRequest, page_from};
use crate::passwords::{self, Verified};
use crate::throttle::{self, Scope};
use crate::tokens::{IssuedToken, Tokens};
use crate::{Admin, Tier as DomainTier, Unauthenticated, User};
use crate::{Context, Id, db};

/// Longest stored email and full name (both columns are `VARCHAR(255)`).
const MAX_EMAIL_BYTES: usize = 255;
const MAX_FULL_NAME_CHARS: usize = 255;

/// The throttle `client` of password changes: a stolen session must not be a way to
/// guess the account password without limit, and these attempts must not lock the
/// owner out of logging in from their own address.
const PASSWORD_CHANGE_CLIENT: &str = "password-change";

/// What registration needs.
#[derive(Clone)]
pub struct NewAccount {
    /// Normalized (trimmed, lower-cased) and checked before it is stored.
    pub email: String,
    /// 8 characters to 1024 bytes.
    pub password: String,
    /// Optional display name, at most 255 characters.
    pub full_name: Option<String>,
}

/// Never prints the password.
impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccount")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .field("full_name", &self.full_name)
            .finish()
    }
}

/// A profile edit: `None` leaves a field unchanged, `Some(None)` sets it to null.
#[derive(Clone, Debug, Default)]
pub struct ProfileChange {
    /// New display name (`Some(None)` clears it).
    pub full_name: Option<Option<String>>,
    /// New email, normalized and checked like a registration's.
    pub email: Option<String>,
}

/// A successful login.
#[derive(Clone, Debug)]
pub struct Session {
    /// The bearer token, shown to its owner once.
    pub token: IssuedToken,
    /// The account logged in.
    pub user: User,
}

/// Trims, lower-cases and checks an email address as new accounts store it.
///
/// The check is deliberately basic (one `@`, a local part, a dotted domain, no spaces or
/// control characters, at most 255 bytes): the only real proof of an address is mail
/// reaching it.
pub fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    let invalid = || Error::validation("email must be a valid email address");
    if email.is_empty() || email.len() > MAX_EMAIL_BYTES {
        return Err(invalid());
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains('@');
    if local.is_empty() || !domain_ok {
        return Err(invalid());
    }
    Ok(email)
}

/// The form an email is looked up (and throttled) under. Unlike [`normalize_email`] it
/// never fails: a login with a malformed address is just a wrong login, and an account
/// of the Python era need not pass today's syntax check to be found.
fn lookup_key(raw: &str) -> String {
    raw.trim().to_lowercase()
}

fn validate_full_name(full_name: Option<&str>) -> Result<()> {
    match full_name {
        Some(name) if name.chars().count() > MAX_FULL_NAME_CHARS => Err(Error::validation(
            format!("full_name must be at most {MAX_FULL_NAME_CHARS} characters"),
        )),
        // PostgreSQL text cannot hold NUL and SQLite would: refuse it on both alike.
        Some(name) if name.contains('\0') => Err(Error::validation(
            "full_name must not contain NUL characters",
        )),
        _ => Ok(()),
    }
}

fn email_taken() -> Error {
    Error::Conflict("this email is already registered".to_owned())
}

fn lower_email() -> Expr {
    Expr::expr(Func::lower(Expr::col((
        users::Entity,
        users::Column::Email,
    ))))
}

/// The account registered under `key` (a [`lookup_key`]), if any.
async fn find_by_email<C: ConnectionTrait>(conn: &C, key: &str) -> Result<Option<users::Model>> {
    // The exact match uses the email index and finds every account written by this
    // version; only a miss pays for the case-insensitive scan that finds legacy rows.
    let exact = users::Entity::find()
        .filter(users::Column::Email.eq(key))
        .one(conn)
        .await?;
    if exact.is_some() {
        return Ok(exact);
    }
    Ok(users::Entity::find()
        .filter(lower_email().eq(key))
        .order_by_asc(users::Column::CreatedAt)
        .order_by_asc(users::Column::Id)
        .one(conn)
        .await?)
}

/// Maps the two expected failures of a user update: the row vanished, or the new email
/// belongs to someone else.
fn update_error(err: DbErr) -> Error {
    if matches!(err, DbErr::RecordNotUpdated | DbErr::RecordNotFound(_)) {
        Error::NotFound
    } else if Error::is_unique_violation(&err) {
        email_taken()
    } else {
        err.into()
    }
}

/// Accounts: registration, login, profile, password, deletion, and admin operations.
#[derive(Clone)]
pub struct Accounts {
    ctx: Context,
    tokens: Tokens,
}

impl Accounts {
    pub(crate) fn new(ctx: Context) -> Self {
        Self {
            tokens: Tokens::new(ctx.clone()),
            ctx,
        }
    }

    /// Creates a `free`, non-admin account.
    pub async fn register(&self, new: NewAccount) -> Result<User> {
        let email = normalize_email(&new.email)?;
        passwords::validate(&new.password)?;
        validate_full_name(new.full_name.as_deref())?;
        // Early answer without the cost of hashing, and the only check that sees legacy
        // rows with capitals. The unique constraint below is what settles a race.
        if find_by_email(&self.ctx.db, &email).await?.is_some() {
            return Err(email_taken());
        }
        let password_hash = self.ctx.hasher.hash(new.password).await?;
        let now = self.ctx.clock.now_naive();
        let row = users::ActiveModel {
            id: Set(Id(uuid::Uuid::new_v4())),
            email: Set(email),
            password_hash: Set(password_hash),
            full_name: Set(new.full_name),
            tier: Set(Tier::Free),
            stripe_customer_id: Set(None),
            stripe_subscription_id: Set(None),
            is_admin: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        };
        match users::Entity::insert(row)
            .exec_with_returning(&self.ctx.db)
            .await
        {
            Ok(user) => {
                let props = serde_json::json!({"tier": "free"});
                self.ctx
                    .record_event("user.registered", user.id, props)
                    .await;
                Ok(user.into())
            }
            Err(e) if Error::is_unique_violation(&e) => Err(email_taken()),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the password and opens a session.
    ///
    /// Failures are counted (see `throttle`): once a client has used up the window on an
    /// account even the right password is refused (429) until it passes; a success
    /// forgets the count, and simultaneous right logins are never refused. An unknown email and a wrong password are the same
    /// [`Error::Unauthorized`], after about the same time.
    pub async fn login(&self, email: &str, password: &str, client: &str) -> Result<Session> {
        let key = lookup_key(email);
        let now = self.ctx.clock.now_naive();
        let user = find_by_email(&self.ctx.db, &key).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verified = throttle::verify(
            &self.ctx.db,
            &self.ctx.hasher,
            now,
            Scope::Login,
            &key,
            client,
            password,
            stored,
        )
        .await?;
        let Some(mut user) = user.filter(|_| verified.ok()) else {
            return Err(Error::Unauthorized(Unauthenticated::Credentials));
        };
        if verified == Verified::YesRehash {
            user.password_hash = self.rehash(&user, password).await?;
        }
        let token = self.tokens.issue_for_user(&self.ctx.db, user.id).await?;
        Ok(Session {
            token,
            user: user.into(),
        })
    }

    /// Replaces a legacy (bcrypt) or weak hash with a current Argon2id one; returns the
    /// hash the row now holds.
    async fn rehash(&self, user: &users::Model, password: &str) -> Result<String> {
        let fresh = self.ctx.hasher.hash(password.to_owned()).await?;
        // Conditional on the old hash: a password change that won a race keeps its hash.
        let result = users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(fresh.clone()))
            .filter(users::Column::Id.eq(user.id))
            .filter(users::Column::PasswordHash.eq(user.password_hash.clone()))
            .exec(&self.ctx.db)
            .await?;
        if result.rows_affected == 1 {
            Ok(fresh)
        } else {
            Ok(user.password_hash.clone())
        }
    }

    /// Ends the session of `secret`.
    pub async fn logout(&self, secret: &str) -> Result<()> {
        self.tokens.revoke(secret).await
    }

    /// The account `user_id`.
    pub async fn get(&self, user_id: Id) -> Result<User> {
        self.row(user_id).await.map(User::from)
    }

    async fn row(&self, user_id: Id) -> Result<users::Model> {
        users::Entity::find_by_id(user_id)
            .one(&self.ctx.db)
            .await?
            .ok_or(Error::NotFound)
    }

    /// Applies a profile edit; a new email is normalized and must be free.
    pub async fn update_profile(&self, user_id: Id, change: ProfileChange) -> Result<User> {
        let mut row = users::ActiveModel {
            id: Unchanged(user_id),
            ..Default::default()
        };
        let mut changed = false;
        if let Some(full_name) = change.full_name {
            validate_full_name(full_name.as_deref())?;
            row.full_name = Set(full_name);
            changed = true;
        }
        if let Some(raw) = change.email {
            let email = normalize_email(&raw)?;
            let holder = find_by_email(&self.ctx.db, &email).await?;
            if holder.is_some_and(|other| other.id != user_id) {
                return Err(email_taken());
            }
            row.email = Set(email);
            changed = true;
        }
        if !changed {
            return self.get(user_id).await;
        }
        row.updated_at = Set(self.ctx.clock.now_naive());
        row.update(&self.ctx.db)
            .await
            .map(User::from)
            .map_err(update_error)
    }

    /// Changes the password after checking the current one, and ends every other
    /// session of the user (the one making the change, `current_token`, stays).
    pub async fn change_password(
        &self,
        user_id: Id,
        current: &str,
        new: &str,
        current_token: &str,
    ) -> Result<()> {
        passwords::validate(new)?;
        let user = self.row(user_id).await?;
        let key = lookup_key(&user.email);
        let now = self.ctx.clock.now_naive();
        let verified = throttle::verify(
            &self.ctx.db,
            &self.ctx.hasher,
            now,
            Scope::Login,
            &key,
            PASSWORD_CHANGE_CLIENT,
            current,
            Some(user.password_hash),
        )
        .await?;
        if !verified.ok() {
            return Err(Error::Unauthorized(Unauthenticated::CurrentPassword));
        }

        let fresh = self.ctx.hasher.hash(new.to_owned()).await?;
        let txn = db::begin_write(&self.ctx.db).await?;
        let updated = users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(fresh))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user_id))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(Error::NotFound);
        }
        self.tokens
            .revoke_user_tokens(&txn, user_id, Some(current_token))
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Deletes the account and everything it owns; the database cascades remove the
    /// rows, and the dataset files are removed once the deletion is committed.
    pub async fn delete(&self, user_id: Id) -> Result<()> {
        let txn = db::begin_write(&self.ctx.db).await?;
        // Locking the user row (PostgreSQL; SQLite's write lock already covers it) makes a
        // concurrent upload wait and then fail its foreign key, so no dataset can appear
        // between reading the file keys and the delete.
        let Some(user) = users::Entity::find_by_id(user_id)
            .lock_exclusive()
            .one(&txn)
            .await?
        else {
            return Err(Error::NotFound);
        };
        let keys: Vec<Option<String>> = datasets::Entity::find()
            .select_only()
            .column(datasets::Column::FilePath)
            .filter(datasets::Column::UserId.eq(user_id))
            .into_tuple()
            .all(&txn)
            .await?;
        users::Entity::delete_by_id(user_id).exec(&txn).await?;
        // The failed-login windows of the address are about this account only.
        attempt_limits::Entity::delete_many()
            .filter(attempt_limits::Column::Scope.eq(Scope::Login.as_str()))
            .filter(attempt_limits::Column::Subject.eq(lookup_key(&user.email)))
            .exec(&txn)
            .await?;
        txn.commit().await?;

        // After the commit: a file removed for a rolled-back deletion could not be undone,
        // while a file left behind by a failure here is only wasted space.
        let keys: Vec<String> = keys.into_iter().flatten().collect();
        let store = match self.ctx.store() {
            Ok(store) => store,
            Err(_) if keys.is_empty() => return Ok(()),
            Err(e) => return Err(e),
        };
        for key in keys {
            if let Err(e) = crate::datasets::columnar::remove_files(store.as_ref(), &key).await {
                tracing::warn!(%user_id, key, error = %e, "could not remove a deleted account's dataset file");
            }
        }
        Ok(())
    }

    /// Users, newest first, optionally of one tier.
    pub async fn list(
        &self,
        _admin: &Admin,
        tier: Option<DomainTier>,
        page: &PageRequest,
    ) -> Result<Page<User>> {
        let mut query = users::Entity::find();
        if let Some(tier) = tier {
            query = query.filter(users::Column::Tier.eq(Tier::from(tier)));
        }
        if let Some(after) = &page.after {
            query = query.filter(after.older_than(users::Column::CreatedAt, users::Column::Id));
        }
        let rows = query
            .order_by_desc(users::Column::CreatedAt)
            .order_by_desc(users::Column::Id)
            .limit(page.limit + 1)
            .all(&self.ctx.db)
            .await?;
        Ok(page_from(rows, page.limit, |u| (u.created_at, u.id)).map(User::from))
    }

    /// Sets a user's tier and/or admin flag. Takes effect on the user's existing tokens
    /// at once, since authentication reads the current row.
    pub async fn admin_update(
        &self,
        _admin: &Admin,
        user_id: Id,
        tier: Option<DomainTier>,
        is_admin: Option<bool>,
    ) -> Result<User> {
        if tier.is_none() && is_admin.is_none() {
            return self.get(user_id).await;
        }
        let mut row = users::ActiveModel {
            id: Unchanged(user_id),
            updated_at: Set(self.ctx.clock.now_naive()),
            ..Default::default()
        };
        if let Some(tier) = tier {
            row.tier = Set(tier.into());
        }
        if let Some(is_admin) = is_admin {
            row.is_admin = Set(is_admin);
        }
        row.update(&self.ctx.db)
            .await
            .map(User::from)
            .map_err(update_error)
    }

    /// The account registered under `email` (admin); [`Error::NotFound`] for an unknown
    /// email.
    pub async fn find_by_email(&self, _admin: &Admin, email: &str) -> Result<User> {
        self.by_email(email).await.map(User::from)
    }

    /// Sets the tier of the account registered under `email`; [`Error::NotFound`] for an
    /// unknown email.
    pub async fn set_tier_by_email(
        &self,
        admin: &Admin,
        email: &str,
        tier: DomainTier,
    ) -> Result<User> {
        let user = self.by_email(email).await?;
        self.admin_update(admin, user.id, Some(tier), None).await
    }

    /// Grants or withdraws admin rights of the account registered under `email`;
    /// [`Error::NotFound`] for an unknown email.
    pub async fn set_admin_by_email(
        &self,
        admin: &Admin,
        email: &str,
        is_admin: bool,
    ) -> Result<User> {
        let user = self.by_email(email).await?;
        self.admin_update(admin, user.id, None, Some(is_admin))
            .await
    }

    async fn by_email(&self, email: &str) -> Result<users::Model> {
        find_by_email(&self.ctx.db, &lookup_key(email))
            .await?
            .ok_or(Error::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_names_refuse_nul_and_overlong() {
        assert!(validate_full_name(Some("Ada Lovelace")).is_ok());
        assert!(validate_full_name(None).is_ok());
        assert!(validate_full_name(Some("Ada\0")).is_err());
        assert!(validate_full_name(Some(&"x".repeat(MAX_FULL_NAME_CHARS + 1))).is_err());
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalize_email("  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "   ",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "alice@@example.com",
            "a@b@example.com",
            "al ice@example.com",
            "alice@exa\tmple.com",
            "alice@.example.com",
            "alice@example.com.",
            "alice@example..com",
            long.as_str(),
        ] {
            assert!(
                matches!(normalize_email(bad), Err(Error::Validation(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn full_name_is_bounded_in_characters() {
        assert!(validate_full_name(None).is_ok());
        assert!(validate_full_name(Some(&"é".repeat(255))).is_ok());
        assert!(validate_full_name(Some(&"é".repeat(256))).is_err());
    }
}
