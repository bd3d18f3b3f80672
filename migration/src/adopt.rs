//! Taking over a database made by the Python version (Alembic).
use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DbBackend, DbErr, Statement, TransactionSession, TransactionTrait, Value,
};

use sea_orm_migration::sea_orm::prelude::ChronoDateTime;

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
    if backend == DbBackend::Sqlite {
        normalize_sqlite_timestamps(&txn).await?;
    }
    txn.execute_unprepared("DROP TABLE alembic_version").await?;
    txn.commit().await?;
    Ok(Some(version))
}

/// The timestamp columns of the Python-era tables.
const LEGACY_TIMESTAMPS: &[(&str, &[&str])] = &[
    ("users", &["created_at", "updated_at"]),
    ("usage_tracking", &["created_at", "updated_at"]),
    ("datasets", &["created_at", "updated_at"]),
    ("analyses", &["created_at", "updated_at"]),
    ("reports", &["expires_at", "created_at", "updated_at"]),
];

/// SQLite keeps timestamps as text, and compares them as text. The Python era wrote
/// `2025-01-06 14:30:00.000000` where sqlx writes `2025-01-06 14:30:00` for the same
/// instant: a cursor or an expiry compared against a bound value would see two different
/// instants (a page could skip a row created at the cursor's very instant). Each legacy
/// value is rewritten in sqlx's form, by binding it back as a timestamp; values already in
/// that form are left alone.
async fn normalize_sqlite_timestamps<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for (table, columns) in LEGACY_TIMESTAMPS {
        if !has_table(db, table).await? {
            continue;
        }
        for column in *columns {
            let rows = db
                .query_all_raw(Statement::from_string(
                    backend,
                    format!("SELECT rowid, {column} FROM {table} WHERE {column} IS NOT NULL"),
                ))
                .await?;
            for row in rows {
                let rowid: i64 = row.try_get_by_index(0)?;
                let text: String = row.try_get_by_index(1)?;
                let Some(instant) = parse_legacy(&text) else {
                    return Err(DbErr::Migration(format!(
                        "{table}.{column} of row {rowid} is not a timestamp: {text:?}"
                    )));
                };
                if instant.format("%Y-%m-%d %H:%M:%S%.f").to_string() == text {
                    continue;
                }
                db.execute_raw(Statement::from_sql_and_values(
                    backend,
                    format!("UPDATE {table} SET {column} = $1 WHERE rowid = $2"),
                    [Value::from(instant), Value::from(rowid)],
                ))
                .await?;
            }
        }
    }
    Ok(())
}

/// A timestamp as SQLAlchemy or SQLite wrote it: `YYYY-MM-DD HH:MM:SS[.ffffff]`, or with
/// `T` between date and time.
fn parse_legacy(text: &str) -> Option<ChronoDateTime> {
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| ChronoDateTime::parse_from_str(text.trim(), format).ok())
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
