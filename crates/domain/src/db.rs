//! Connecting to the database, and the few helpers raw SQL needs on two backends.
mod direct;

use std::time::Duration;

use entity::{Id, users};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QuerySelect, TransactionOptions, TransactionTrait, Value,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

/// How long a SQLite writer waits for another (process or connection) to finish before
/// giving up; long enough that a client never sees `database is locked` under load.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request waits for a pooled connection (or for a new one to open) before it
/// is answered "unavailable".
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection idle at least this long is pinged before it is handed out, and
/// replaced if dead (a restarted server, a proxy that dropped it). sqlx's default pings on
/// *every* checkout: one more round trip per statement for connections in steady use.
pub(crate) const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

pub(crate) use direct::Direct;

/// The database: the one owner of its connection pools (sea-orm's, and the small
/// hot-path pool that answers the public view in one round trip). Cheap to clone; clones
/// share the pools.
#[derive(Clone)]
pub struct Database {
    conn: DatabaseConnection,
    direct: Option<Direct>,
}

impl Database {
    /// Opens pools on `url` (`postgres://...` or `sqlite://...`) with at most
    /// `max_connections` connections in the main pool.
    ///
    /// SQLite connections get, on every pooled connection: `foreign_keys=ON` (without it
    /// the schema's cascades silently do nothing), WAL (readers never block the writer, and
    /// a second process can share the file) and a busy timeout.
    pub async fn connect(url: &str, max_connections: u32) -> crate::Result<Self> {
        let conn = connect(url, max_connections)
            .await
            .map_err(crate::Error::Connect)?;
        Ok(Self::from_connection(conn))
    }

    /// Wraps a connection opened elsewhere (it should carry the settings of
    /// [`Database::connect`]).
    pub fn from_connection(conn: DatabaseConnection) -> Self {
        let direct = Direct::of(&conn);
        Self { conn, direct }
    }

    /// The sea-orm connection, for the schema tooling (`migration::schema`) and for
    /// programs that read the tables directly.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub(crate) fn direct(&self) -> Option<&Direct> {
        self.direct.as_ref()
    }

    /// The same database with a hot-path pool of its own, for one thread of a server
    /// whose threads each run their own async runtime (actix-web's workers): its
    /// PostgreSQL connections are opened on, and wake, the thread that uses them. Shared
    /// across runtimes, each answer would first wake the runtime that opened the
    /// connection, then hop to the one waiting for it. (SQLite's hot-path connections
    /// stay shared by the process: they are writers, and more of them would only queue
    /// for SQLite's one write lock.)
    pub fn for_this_thread(&self) -> Self {
        Self {
            conn: self.conn.clone(),
            direct: self
                .direct
                .as_ref()
                .and_then(|direct| direct.for_this_thread(&self.conn)),
        }
    }

    /// Whether the database answers a trivial query (readiness).
    pub async fn ping(&self) -> bool {
        self.conn.ping().await.is_ok()
    }

    /// Closes the pools; in-flight statements finish first.
    pub async fn close(self) {
        if let Some(direct) = &self.direct {
            direct.close();
        }
        let _ = self.conn.close().await;
    }
}

async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(ACQUIRE_TIMEOUT)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.foreign_keys(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .create_if_missing(true)
        });
    sea_orm::Database::connect(options).await
}

/// An id as a parameter of hand-written SQL: a native `uuid` on PostgreSQL, the
/// 36-character text on SQLite (what the columns hold on each; see `entity`).
pub(crate) fn id_value(backend: DbBackend, id: Id) -> Value {
    match backend {
        DbBackend::Postgres => Value::Uuid(Some(id.0)),
        _ => Value::String(Some(id.0.hyphenated().to_string())),
    }
}

/// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: it takes the
/// write lock up front (waiting on the busy timeout), instead of failing with
/// `database is locked` when a deferred reader later tries to upgrade.
pub(crate) async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            db.begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
        }
        _ => db.begin().await,
    }
}

/// A user's row, locked until the transaction ends (PostgreSQL; on SQLite the write
/// transaction already holds the database's single write lock). `FOR NO KEY UPDATE`:
/// decisions about one user (invitations against their limit, billing events) queue
/// behind each other, while the owner's other writes
/// (logins, uploads, whose rows only reference the user) go on.
pub(crate) async fn lock_user<C: ConnectionTrait>(
    conn: &C,
    user_id: Id,
) -> crate::Result<users::Model> {
    let query = users::Entity::find_by_id(user_id);
    let query = if conn.get_database_backend() == DbBackend::Postgres {
        query.lock(sea_orm::sea_query::LockType::NoKeyUpdate)
    } else {
        query
    };
    query.one(conn).await?.ok_or(crate::Error::NotFound)
}
