//! What operators watch: rows per table and whether the dependencies answer.
use sea_orm::{ConnectionTrait, Statement};

use crate::{Context, Result};

/// Rows in one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableCount {
    /// The table's name.
    pub table: &'static str,
    /// Its rows.
    pub rows: i64,
}

/// Every table of the schema.
const TABLES: [&str; 7] = [
    "users",
    "usage_tracking",
    "datasets",
    "analyses",
    "reports",
    "access_tokens",
    "attempt_limits",
];

/// Row counts and readiness, for metrics and health checks.
#[derive(Clone)]
pub struct Stats {
    ctx: Context,
}

impl Stats {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// Rows of each table. One `COUNT(*)` per table: cheap on the
    /// sizes iOps runs at, and exact (estimates from the catalog lag behind on SQLite).
    pub async fn table_counts(&self) -> Result<Vec<TableCount>> {
        let backend = self.ctx.db.get_database_backend();
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            // Only the fixed names above are ever spliced into SQL.
            let stmt = Statement::from_string(backend, format!("SELECT COUNT(*) FROM {table}"));
            let row = self.ctx.db.query_one_raw(stmt).await?;
            let rows = match row {
                Some(row) => row.try_get_by_index::<i64>(0)?,
                None => 0,
            };
            counts.push(TableCount { table, rows });
        }
        Ok(counts)
    }

    /// Connections of the main pool: `(open, idle)`.
    pub fn pool_connections(&self) -> (u32, u32) {
        use sea_orm::DbBackend;
        let db = &self.ctx.db;
        match db.get_database_backend() {
            DbBackend::Postgres => {
                let pool = db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle() as u32)
            }
            DbBackend::Sqlite => {
                let pool = db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle() as u32)
            }
            _ => (0, 0),
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn database_ready(&self) -> bool {
        self.ctx.database.ping().await
    }

    /// Whether the dataset store answers (`true` when none is configured: nothing to wait
    /// for).
    pub async fn store_ready(&self) -> bool {
        match &self.ctx.store {
            Some(store) => store.ready().await,
            None => true,
        }
    }
}
