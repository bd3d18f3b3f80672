//! A small second pool of PostgreSQL connections for statements on the hot path.
//!
//! sqlx's pool pings every connection it takes back (`Sync`, then wait for
//! `ReadyForQuery`), unconditionally: one extra round trip per statement, paid by the
//! server and by PostgreSQL. On the public view, a single statement, that ping doubled
//! PostgreSQL's work per view (see docs/performance.md). This pool (deadpool over plain
//! sqlx connections) takes a connection back without a round trip, pings only one that
//! sat idle, and closes one whose statement failed or was cancelled mid-way, whose
//! protocol state is then unknown.
use std::sync::Arc;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult, Timeouts};
use sea_orm::sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection};
use sea_orm::sqlx::query::Query;
use sea_orm::sqlx::{self, Connection, Postgres};
use sea_orm::{ConnAcquireErr, DatabaseConnection, DbBackend, DbErr, QueryResult, RuntimeErr};

use super::{ACQUIRE_TIMEOUT, PING_IF_IDLE_FOR};

/// Connections of the hot-path pool, per process, on top of the main pool's.
const SIZE: usize = 8;

/// Connections to the database of a [`DatabaseConnection`], outside its sqlx pool.
#[derive(Clone)]
pub struct DirectPool {
    pool: managed::Pool<Manager>,
}

impl DirectPool {
    /// A pool on the same database, with the same connect options, as `db` when `db` is
    /// PostgreSQL; `None` otherwise (SQLite runs statements in-process, where the ping
    /// is a hop to the driver's thread, not a network round trip). Opens nothing until
    /// first used.
    pub fn for_postgres(db: &DatabaseConnection) -> Option<Self> {
        if db.get_database_backend() != DbBackend::Postgres {
            return None;
        }
        let options = db.get_postgres_connection_pool().connect_options();
        let timeouts = Timeouts {
            wait: Some(ACQUIRE_TIMEOUT),
            create: Some(ACQUIRE_TIMEOUT),
            recycle: Some(ACQUIRE_TIMEOUT),
        };
        let pool = managed::Pool::builder(Manager { options })
            .max_size(SIZE)
            .timeouts(timeouts)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            // Fails only when timeouts have no runtime, and one is set above.
            .ok()?;
        Some(Self { pool })
    }

    /// Closes the pool: idle connections now, the others when they come back.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Runs `query` (prepared once per connection, then reused) and returns its first
    /// row, if any, in sea-orm's form, for `FromQueryResult`.
    pub async fn fetch_optional(
        &self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<Option<QueryResult>, DbErr> {
        let mut lease = Lease(Some(self.pool.get().await.map_err(acquire_error)?));
        let result = match lease.0.as_mut() {
            Some(conn) => query.fetch_optional(&mut **conn).await,
            None => unreachable!("a lease holds its connection until it ends"),
        };
        let conn = lease.0.take();
        match result {
            Ok(row) => Ok(row.map(QueryResult::from)),
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
struct Lease(Option<Object<Manager>>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.take().map(Object::take);
    }
}

struct Manager {
    options: Arc<PgConnectOptions>,
}

impl managed::Manager for Manager {
    type Type = PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PgConnection, sqlx::Error> {
        PgConnection::connect_with(&self.options).await
    }

    async fn recycle(
        &self,
        conn: &mut PgConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
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
