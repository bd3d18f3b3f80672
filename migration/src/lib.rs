//! The schema revisions of iOps, one module per revision, mirroring the Alembic revisions
//! of the Python version (`001`, `002`) and continuing the sequence.
//!
//! Each revision holds the DDL for PostgreSQL and for SQLite side by side, written out
//! the way the Python toolchain wrote it (see `shared/fixtures/`), so that a database
//! created here and one adopted from the Python era have the same catalog.

pub use sea_orm_migration::prelude::*;

mod adopt;
mod m001_core_tables;
mod m002_reports;
mod m003_tokens_and_limits;
mod m004_charts;
mod m005_billing;
mod m006_templates;
mod m007_collaboration;
mod m008_data_connections;
mod m009_dataset_columns;
pub mod schema;

pub use adopt::adopt_alembic;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m001_core_tables::Migration),
            Box::new(m002_reports::Migration),
            Box::new(m003_tokens_and_limits::Migration),
            Box::new(m004_charts::Migration),
            Box::new(m005_billing::Migration),
            Box::new(m006_templates::Migration),
            Box::new(m007_collaboration::Migration),
            Box::new(m008_data_connections::Migration),
            Box::new(m009_dataset_columns::Migration),
        ]
    }
}

/// The revision id (`001`) of a migration name (`m001_core_tables`).
pub fn revision_id(migration_name: &str) -> &str {
    let rest = migration_name.strip_prefix('m').unwrap_or(migration_name);
    rest.split('_').next().unwrap_or(rest)
}

/// The human part of a migration name (`core_tables` for `m001_core_tables`).
pub fn revision_title(migration_name: &str) -> &str {
    migration_name
        .split_once('_')
        .map(|(_, title)| title)
        .unwrap_or(migration_name)
}

/// Runs each statement of a revision in order (sea-orm executes one statement per call).
async fn run_all(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

/// Picks the DDL of the connected backend.
fn for_backend<'a>(
    manager: &SchemaManager<'_>,
    postgres: &'a [&'a str],
    sqlite: &'a [&'a str],
) -> Result<&'a [&'a str], DbErr> {
    match manager.get_database_backend() {
        sea_orm::DbBackend::Postgres => Ok(postgres),
        sea_orm::DbBackend::Sqlite => Ok(sqlite),
        other => Err(DbErr::Migration(format!(
            "iOps supports PostgreSQL and SQLite, not {other:?}"
        ))),
    }
}
