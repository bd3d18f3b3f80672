//! The one error type of the domain. Each variant is one kind of outcome a caller must
//! tell apart, and carries what the caller needs to act on it; `crates/api` maps each to
//! exactly one problem type and one HTML page.
use chrono::{DateTime, Utc};
use sea_orm::DbErr;

/// Result of the domain's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which limit a [`Error::LimitExceeded`] is about: a monthly counter, or a standing count
/// of what exists now ([`LimitKind::Collaborators`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Dataset uploads.
    Datasets,
    /// Messages to the AI assistant.
    AiMessages,
    /// Published reports.
    Reports,
    /// Distinct people with a pending or accepted invitation to any of the owner's
    /// analyses (standing, not monthly).
    Collaborators,
    /// The owner's data connections (standing, not monthly).
    DataConnections,
}

impl LimitKind {
    /// Every kind, in the order `/me/usage` shows them.
    pub const ALL: [LimitKind; 5] = [
        LimitKind::Datasets,
        LimitKind::AiMessages,
        LimitKind::Reports,
        LimitKind::Collaborators,
        LimitKind::DataConnections,
    ];

    /// The name the API shows (`"datasets"`, `"ai_messages"`, `"reports"`,
    /// `"collaborators"`, `"data_connections"`).
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Datasets => "datasets",
            LimitKind::AiMessages => "ai_messages",
            LimitKind::Reports => "reports",
            LimitKind::Collaborators => "collaborators",
            LimitKind::DataConnections => "data_connections",
        }
    }

    /// Whether the limit counts per calendar month (and resets), rather than what exists.
    pub fn is_monthly(self) -> bool {
        !matches!(self, LimitKind::Collaborators | LimitKind::DataConnections)
    }
}

/// Which credential an [`Error::Unauthorized`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unauthenticated {
    /// A login's email and password do not match (or the email is unknown: the same).
    Credentials,
    /// A bearer token that is unknown, expired, revoked, or not a login token.
    Token,
    /// The current password given to change it is wrong.
    CurrentPassword,
    /// A report's password is wrong.
    ReportPassword,
    /// A signed embed was opened without a valid token (missing, malformed, not HS256,
    /// unknown `kid`, bad signature, wrong `sub`, expired, or `exp` too far ahead).
    EmbedToken,
}

impl Unauthenticated {
    /// What the caller is told.
    pub fn message(self) -> &'static str {
        match self {
            Unauthenticated::Credentials | Unauthenticated::ReportPassword => "invalid credentials",
            Unauthenticated::Token => "the token is invalid, expired or revoked",
            Unauthenticated::CurrentPassword => "the current password is wrong",
            Unauthenticated::EmbedToken => "this embed needs a valid signed token",
        }
    }
}

/// Every way a domain operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input breaks a rule (bad email, short password, bad value, past expiry...).
    #[error("{0}")]
    Validation(String),
    /// The request itself is malformed (a broken upload form), as opposed to a
    /// well-formed request with a bad value ([`Error::Validation`]).
    #[error("{0}")]
    BadRequest(String),
    /// Missing, or owned by someone else: the two are deliberately the same.
    #[error("not found")]
    NotFound,
    /// Unique value already taken (an email already registered).
    #[error("{0}")]
    Conflict(String),
    /// Wrong credentials, or an unknown, expired or revoked token; the reason says which.
    #[error("{}", .0.message())]
    Unauthorized(Unauthenticated),
    /// The caller is authenticated but lacks the role: not an administrator, or a
    /// collaborator whose role on an analysis does not allow the operation. The text says
    /// which.
    #[error("{0}")]
    Forbidden(&'static str),
    /// An unlock of a report that has no password: nothing to unlock, the report opens as
    /// it is.
    #[error("this report has no password")]
    NothingToUnlock,
    /// A password-protected report was asked for without a valid unlock token.
    #[error("this report needs its password")]
    PasswordRequired,
    /// Something that existed has expired (a report past its `expires_at`, an invitation
    /// past its seven days); the text says what.
    #[error("{0}")]
    Gone(&'static str),
    /// A tier's allowance is used up: the month's (datasets, reports...) or the standing
    /// one (collaborators).
    #[error("{} limit reached", limit.as_str())]
    LimitExceeded {
        /// Which counter.
        limit: LimitKind,
        /// The tier's allowance.
        allowed: i64,
        /// Used so far this month, or in use now for a standing limit.
        used: i64,
        /// When the counter goes back to zero; `None` for a standing limit.
        resets_at: Option<DateTime<Utc>>,
    },
    /// Too many failed attempts; retry after that many seconds.
    #[error("too many attempts")]
    RateLimited {
        /// Seconds until the window frees an attempt.
        retry_after_secs: u64,
    },
    /// An upload larger than the configured limit.
    #[error("upload larger than {max_bytes} bytes")]
    PayloadTooLarge {
        /// The limit in force.
        max_bytes: u64,
    },
    /// The database could not be opened (bad URL, unreachable server, unreadable file).
    #[error("cannot connect to the database")]
    Connect(#[source] DbErr),
    /// The database does not answer (pool timeout, connection refused).
    #[error("database unavailable")]
    Unavailable(#[source] DbErr),
    /// Any other database failure: a bug or an operational problem, never the caller's.
    #[error("database error")]
    Database(#[source] DbErr),
    /// Dataset file storage failed.
    #[error("storage error")]
    Storage(#[from] std::io::Error),
    /// An analysis's query failed (it was stored as the run's outcome); the failure says
    /// why in the words ANALYSES.md uses.
    #[error("{0}")]
    QueryFailed(#[from] crate::query::QueryFailure),
    /// A data connection's host resolves to an address the network guard refuses
    /// (loopback, private, link-local, metadata) and the allow list does not allow it.
    #[error("{0}")]
    HostNotAllowed(String),
    /// A data connection's database could not be reached or refused the login; the text
    /// says why in the source's words or by kind, never with a setting or the password.
    #[error("{0}")]
    ConnectionFailed(String),
    /// A paid template used without a purchase (nor authorship): buy it first.
    #[error("this template must be purchased before it is used")]
    PurchaseRequired,
    /// A feature that needs configuration this server does not have (billing without a
    /// Stripe key); the text says what is missing.
    #[error("{0}")]
    NotConfigured(&'static str),
    /// A service this one depends on (the payment provider) failed or did not answer in
    /// time; the text says which, never with a secret.
    #[error("{0}")]
    Upstream(String),
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

/// PostgreSQL's 40P01 (`deadlock_detected`): the statement was rolled back whole to break
/// a deadlock, so it can be run again.
pub(crate) fn is_deadlock(err: &DbErr) -> bool {
    sql_state(err).as_deref() == Some("40P01")
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
    /// A [`Error::Validation`] with this message.
    pub fn validation(message: impl Into<String>) -> Self {
        Error::Validation(message.into())
    }

    /// A write refused by a foreign key: the row it hangs off (an analysis, a dataset, a
    /// chart) was deleted between the ownership check and the write, which to the caller
    /// is the same as never having been there ([`Error::NotFound`]).
    pub(crate) fn parent_gone(err: DbErr) -> Error {
        if matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
        ) {
            Error::NotFound
        } else {
            err.into()
        }
    }

    /// True when a unique constraint refused the write (two backends, two messages).
    pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
        matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        )
    }
}
