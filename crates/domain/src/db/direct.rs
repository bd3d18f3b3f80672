//! A small second pool of connections for statements on the hot path.
//!
//! sqlx's pool pings every connection it takes back (PostgreSQL: `Sync`, then wait for
//! `ReadyForQuery`; SQLite: a message to the connection's worker thread and its answer),
//! unconditionally: one extra round trip per statement, paid by the server and by the
//! database. On the public view, a single statement, that ping doubled PostgreSQL's work
//! per view (see docs/performance.md). This pool (deadpool over plain sqlx connections)
//! takes a connection back without a round trip, pings only one that sat idle, and closes
//! one whose statement failed or was cancelled mid-way, whose protocol state is then
//! unknown.
use std::sync::Arc;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult, Timeouts};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::query::Query;
use sea_orm::sqlx::sqlite::SqliteConnection;
use sea_orm::sqlx::{self, ConnectOptions, Connection, IntoArguments};
use sea_orm::{ConnAcquireErr, DatabaseConnection, DbBackend, DbErr, QueryResult, RuntimeErr};

use super::{ACQUIRE_TIMEOUT, PING_IF_IDLE_FOR};

/// PostgreSQL connections of the hot-path pool, per worker thread (see
/// [`super::Database::for_this_thread`]), on top of the main pool's.
const POSTGRES_SIZE: usize = 8;

/// SQLite's hot-path pool, per process (shared by the worker threads). SQLite takes one
/// writer at a time and every hot-path statement writes (it counts the view), yet one
/// connection was the slowest choice measured (a quarter of the raw statement rate):
/// each statement is a hop to the connection's own thread and back, and with one
/// connection the database waits through every hop. Many connections overlap the hops
/// but queue in SQLite's busy handler, which sleeps in steps of 1 to 100 ms (p99 of
/// 40-80 ms at 8 and 16). Four kept ~80 % of the raw rate with the lowest p99 of those
/// tried, and with views counted in batches still gives the most rate; one and two were
/// measured again then (docs/performance.md).
const SQLITE_SIZE: usize = 4;

/// How PostgreSQL plans the hot path's prepared statements: once per connection.
///
/// Left to itself, PostgreSQL plans a prepared statement again on every run (a "custom"
/// plan) unless its generic plan looks no dearer. The view counter's statement takes its
/// codes as an array (`unnest($1)`), which a generic plan guesses at 10 rows where the
/// custom plan sees the two or three of a batch, so PostgreSQL re-planned it on every run
/// for good: a third of its CPU during views went to the planner, more than to running
/// the statement (`perf`, docs/performance.md). The generic plan is the same nested loop
/// over the codes, in their order, with an index lookup for each (the lock order the
/// counter relies on). Set when each connection starts (a startup option, no round trip).
const HOT_PATH_PLANS: (&str, &str) = ("plan_cache_mode", "force_generic_plan");

/// `options` (the main pool's) for a hot-path connection: the same, plus
/// [`HOT_PATH_PLANS`] after any startup options the database URL gave.
fn hot_path_postgres(options: &PgConnectOptions) -> PgConnectOptions {
    options.clone().options([HOT_PATH_PLANS])
}

/// The hot-path pool of one database, of its backend's connection type.
#[derive(Clone)]
pub enum Direct {
    Postgres(DirectPool<PgConnection>),
    Sqlite(DirectPool<SqliteConnection>),
}

impl Direct {
    /// A pool on the same database, with the same connect options (SQLite's pragmas
    /// included), as `db`; `None` for a backend without one. Opens nothing until first
    /// used.
    pub fn of(db: &DatabaseConnection) -> Option<Self> {
        match db.get_database_backend() {
            DbBackend::Postgres => {
                let options = db.get_postgres_connection_pool().connect_options();
                DirectPool::new(Arc::new(hot_path_postgres(&options)), POSTGRES_SIZE)
                    .map(Direct::Postgres)
            }
            DbBackend::Sqlite => {
                let options = db.get_sqlite_connection_pool().connect_options();
                DirectPool::new(options, SQLITE_SIZE).map(Direct::Sqlite)
            }
            _ => None,
        }
    }

    /// The pool for one worker thread: PostgreSQL connections wake the runtime that opened
    /// them, so each thread gets its own; SQLite's few writers are shared by the process.
    pub fn for_this_thread(&self, db: &DatabaseConnection) -> Option<Self> {
        match self {
            Direct::Postgres(_) => Direct::of(db),
            Direct::Sqlite(_) => Some(self.clone()),
        }
    }

    /// Closes the pool: idle connections now, the others when they come back.
    pub fn close(&self) {
        match self {
            Direct::Postgres(pool) => pool.close(),
            Direct::Sqlite(pool) => pool.close(),
        }
    }
}

/// Connections to one database outside sea-orm's sqlx pool.
pub struct DirectPool<C: Connection + 'static>
where
    C::Options: Sync,
{
    pool: managed::Pool<Manager<C>>,
}

impl<C: Connection + 'static> Clone for DirectPool<C>
where
    C::Options: Sync,
{
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<C> DirectPool<C>
where
    C: Connection + 'static,
    C::Options: Sync,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    QueryResult: From<<C::Database as sqlx::Database>::Row>,
{
    fn new(options: Arc<C::Options>, size: usize) -> Option<Self> {
        let timeouts = Timeouts {
            wait: Some(ACQUIRE_TIMEOUT),
            create: Some(ACQUIRE_TIMEOUT),
            recycle: Some(ACQUIRE_TIMEOUT),
        };
        let pool = managed::Pool::builder(Manager { options })
            .max_size(size)
            .timeouts(timeouts)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            // Fails only when timeouts have no runtime, and one is set above.
            .ok()?;
        Some(Self { pool })
    }

    fn close(&self) {
        self.pool.close();
    }

    /// Runs `query` (prepared once per connection, then reused) and returns its rows in
    /// sea-orm's form, for `FromQueryResult`.
    pub async fn fetch_all<'q, A>(
        &self,
        query: Query<'q, C::Database, A>,
    ) -> Result<Vec<QueryResult>, DbErr>
    where
        A: IntoArguments<C::Database> + 'q,
    {
        let mut lease = Lease(Some(self.pool.get().await.map_err(acquire_error)?));
        let result = match lease.0.as_mut() {
            Some(conn) => query.fetch_all(&mut **conn).await,
            None => unreachable!("a lease holds its connection until it ends"),
        };
        let conn = lease.0.take();
        match result {
            Ok(rows) => Ok(rows.into_iter().map(QueryResult::from).collect()),
            // Refused by the database (a constraint, a cast): the connection itself is
            // fine and goes back to the pool.
            Err(err @ sqlx::Error::Database(_)) => Err(query_error(err)),
            Err(err) => {
                conn.map(Object::take);
                Err(query_error(err))
            }
        }
    }
}

/// A connection in use. Dropped while still holding it (the request was cancelled in
/// the middle of a statement), it closes the connection instead of returning it.
struct Lease<C: Connection + 'static>(Option<Object<Manager<C>>>)
where
    C::Options: Sync;

impl<C: Connection + 'static> Drop for Lease<C>
where
    C::Options: Sync,
{
    fn drop(&mut self) {
        self.0.take().map(Object::take);
    }
}

struct Manager<C: Connection> {
    options: Arc<C::Options>,
}

impl<C> managed::Manager for Manager<C>
where
    C: Connection + 'static,
    C::Options: Sync,
{
    type Type = C;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<C, sqlx::Error> {
        self.options.connect().await
    }

    async fn recycle(&self, conn: &mut C, metrics: &Metrics) -> RecycleResult<sqlx::Error> {
        if metrics.last_used() >= PING_IF_IDLE_FOR {
            conn.ping().await.map_err(RecycleError::Backend)?;
        }
        Ok(())
    }
}

fn acquire_error(err: PoolError<sqlx::Error>) -> DbErr {
    match err {
        PoolError::Backend(err) => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err))),
        PoolError::Timeout(_) => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        _ => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
    }
}

fn query_error(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_path_connections_plan_once_and_keep_the_urls_options() {
        let url = "postgres://iops@db.example/iops?options=-c%20search_path%3Dreporting";
        let options: PgConnectOptions = url.parse().expect("a valid URL");
        let hot = hot_path_postgres(&options);
        assert_eq!(
            hot.get_options(),
            Some("-c search_path=reporting -c plan_cache_mode=force_generic_plan")
        );
        assert_eq!(hot.get_database(), options.get_database());
    }
}
