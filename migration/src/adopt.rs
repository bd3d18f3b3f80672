//! Taking over a database made by the Python version (Alembic).
use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DbBackend, DbErr, Statement, TransactionSession, TransactionTrait, Value,
};

use crate::{Migrator, revision_id};

/// If the database carries an `alembic_version` table, records every revision up to the
/// one it names as applied in sea-orm's `seaql_migrations`, then drops `alembic_version`
/// so that the Rust history is the only one. Creates and changes nothing else: the
/// tables and rows the Python tool made stay as they are.
///
/// Returns the adopted revision id, or `None` when there was nothing to adopt.
pub async fn adopt_alembic<C>(db: &C) -> Result<Option<String>, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    if !has_table(db, "alembic_version").await? {
        return Ok(None);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT version_num FROM alembic_version",
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let version: String = row.try_get_by_index(0)?;
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let Some(position) = names.iter().position(|n| revision_id(n) == version) else {
        let known: Vec<&str> = names.iter().map(|n| revision_id(n)).collect();
        return Err(DbErr::Migration(format!(
            "alembic_version holds revision '{version}', which is not one of {}",
            known.join(", ")
        )));
    };

    Migrator::install(db).await?;
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    for name in &names[..=position] {
        let sql = match backend {
            DbBackend::Postgres => {
                "INSERT INTO seaql_migrations (version, applied_at) VALUES ($1, $2) \
                 ON CONFLICT (version) DO NOTHING"
            }
            _ => "INSERT OR IGNORE INTO seaql_migrations (version, applied_at) VALUES ($1, $2)",
        };
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(name.clone()), Value::from(now)],
        ))
        .await?;
    }
    txn.execute_unprepared("DROP TABLE alembic_version").await?;
    txn.commit().await?;
    Ok(Some(version))
}

async fn has_table<C: ConnectionTrait>(db: &C, table: &str) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
        _ => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1",
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(table)],
        ))
        .await?;
    Ok(row.is_some())
}
