//! The one error type of the domain. Each variant is one kind of outcome a caller must
//! tell apart; `crates/api` maps each to exactly one problem type.
use chrono::{DateTime, Utc};
use sea_orm::DbErr;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which monthly counter a [`Error::LimitExceeded`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    Datasets,
    AiMessages,
    Reports,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Datasets => "datasets",
            LimitKind::AiMessages => "ai_messages",
            LimitKind::Reports => "reports",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input breaks a rule (bad email, short password, bad value, past expiry...).
    #[error("{0}")]
    Validation(String),
    /// Missing, or owned by someone else: the two are deliberately the same.
    #[error("not found")]
    NotFound,
    /// Unique value already taken (an email already registered).
    #[error("{0}")]
    Conflict(String),
    /// Wrong credentials, or a missing, expired or revoked token.
    #[error("invalid credentials")]
    Unauthorized,
    /// The caller is authenticated but lacks the role (admin routes).
    #[error("forbidden")]
    Forbidden,
    /// A password-protected report was asked for without a valid unlock token.
    #[error("this report needs its password")]
    PasswordRequired,
    /// The report's `expires_at` has passed.
    #[error("this report has expired")]
    Gone,
    /// The month's allowance of a tier is used up.
    #[error("monthly {} limit reached", limit.as_str())]
    LimitExceeded {
        limit: LimitKind,
        allowed: i64,
        used: i64,
        resets_at: DateTime<Utc>,
    },
    /// Too many failed attempts; retry after that many seconds.
    #[error("too many attempts")]
    RateLimited { retry_after_secs: u64 },
    /// An upload larger than the configured limit.
    #[error("upload larger than {max_bytes} bytes")]
    PayloadTooLarge { max_bytes: u64 },
    /// The database does not answer (pool timeout, connection refused).
    #[error("database unavailable")]
    Unavailable(#[source] DbErr),
    /// Any other database failure: a bug or an operational problem, never the caller's.
    #[error("database error")]
    Database(#[source] DbErr),
    /// Dataset file storage failed.
    #[error("storage error")]
    Storage(#[from] std::io::Error),
    /// Anything else that is not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Error::Unavailable(err),
            DbErr::Exec(ref e) | DbErr::Query(ref e) if is_connection_failure(e) => {
                Error::Unavailable(err)
            }
            // A connection that died mid-statement (the server shut down or crashed): the
            // database is unavailable, not broken.
            ref e if is_connection_lost(e) => Error::Unavailable(err),
            // Text PostgreSQL cannot store (U+0000) that no validation caught: the
            // caller's input, not our failure.
            ref e if is_unstorable_text(e) => {
                Error::validation("text must not contain NUL characters (\\u0000)")
            }
            other => Error::Database(other),
        }
    }
}

/// The SQLSTATE of a database error, when the driver reported one.
fn sql_state(err: &DbErr) -> Option<String> {
    use sea_orm::RuntimeErr;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|db| db.code())
            .map(|code| code.into_owned()),
        _ => None,
    }
}

/// PostgreSQL's 22021 (`character_not_in_repertoire`: a NUL in a text value) and 22P05
/// (`untranslatable_character`: `\u0000` in a JSON value).
fn is_unstorable_text(err: &DbErr) -> bool {
    matches!(sql_state(err).as_deref(), Some("22021" | "22P05"))
}

/// SQLSTATE class 08 (connection exception) and 57P01-57P03 (the server is shutting
/// down, crashed, or cannot accept connections yet).
fn is_connection_lost(err: &DbErr) -> bool {
    sql_state(err).is_some_and(|state| {
        state.starts_with("08") || matches!(state.as_str(), "57P01" | "57P02" | "57P03")
    })
}

impl<E: Into<Error>> From<sea_orm::TransactionError<E>> for Error {
    fn from(err: sea_orm::TransactionError<E>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(e) => e.into(),
        }
    }
}

fn is_connection_failure(err: &sea_orm::RuntimeErr) -> bool {
    match err {
        sea_orm::RuntimeErr::SqlxError(e) => matches!(
            e.as_ref(),
            sea_orm::sqlx::Error::Io(_)
                | sea_orm::sqlx::Error::PoolTimedOut
                | sea_orm::sqlx::Error::PoolClosed
                | sea_orm::sqlx::Error::WorkerCrashed
        ),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

impl Error {
    pub fn validation(message: impl Into<String>) -> Self {
        Error::Validation(message.into())
    }

    /// True when a unique constraint refused the write (two backends, two messages).
    pub fn is_unique_violation(err: &DbErr) -> bool {
        matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        )
    }
}
