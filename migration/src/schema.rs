//! Schema revisions as `iops migrate` speaks of them: ids `001`, `002`, ... in order, the
//! same history `sea-orm-cli migrate` keeps, and the take-over of a Python-era database.
use sea_orm_migration::sea_orm::{self, DatabaseConnection, DbErr};

use crate::{Migrator, MigratorTrait, adopt_alembic, revision_id, revision_title};

/// Why a schema operation failed.
#[derive(Debug)]
pub enum Error {
    /// A revision id that does not exist; the message lists the known ones.
    UnknownRevision(String),
    /// The database refused or failed.
    Database(DbErr),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::UnknownRevision(message) => f.write_str(message),
            Error::Database(_) => f.write_str("schema change failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::UnknownRevision(_) => None,
            Error::Database(e) => Some(e),
        }
    }
}

impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        Error::Database(e)
    }
}

/// Result of the schema operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One revision and whether it is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    /// `001`, `002`, ...
    pub id: String,
    /// What it does (`core_tables`).
    pub name: String,
    /// Whether the database has it.
    pub applied: bool,
}

/// Every known revision, oldest first, with its state in `db`.
pub async fn history(db: &DatabaseConnection) -> Result<Vec<Revision>> {
    adopt_alembic(db).await?;
    let applied: Vec<String> = if migration_table_exists(db).await? {
        Migrator::get_applied_migrations_read_only(db)
            .await?
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    } else {
        Vec::new()
    };
    Ok(Migrator::migrations()
        .iter()
        .map(|m| {
            let name = m.name();
            Revision {
                id: revision_id(name).to_string(),
                name: revision_title(name).to_string(),
                applied: applied.iter().any(|a| a == name),
            }
        })
        .collect())
}

/// The newest applied revision id, `None` on an empty database.
pub async fn current(db: &DatabaseConnection) -> Result<Option<String>> {
    Ok(history(db)
        .await?
        .into_iter()
        .filter(|r| r.applied)
        .map(|r| r.id)
        .next_back())
}

/// Applies pending revisions up to and including `target` (all of them when `None`).
/// Returns the revisions applied.
pub async fn upgrade(db: &DatabaseConnection, target: Option<&str>) -> Result<Vec<String>> {
    let revisions = history(db).await?;
    let last = match target {
        Some(t) => position(&revisions, t)?,
        None => revisions.len().saturating_sub(1),
    };
    let pending: Vec<String> = revisions[..=last]
        .iter()
        .filter(|r| !r.applied)
        .map(|r| r.id.clone())
        .collect();
    if !pending.is_empty() {
        Migrator::up(db, Some(pending.len() as u32)).await?;
    }
    Ok(pending)
}

/// Rolls back every revision newer than `target`; without a target, only the newest.
/// Returns the revisions rolled back, newest first.
pub async fn downgrade(db: &DatabaseConnection, target: Option<&str>) -> Result<Vec<String>> {
    let revisions = history(db).await?;
    let applied: Vec<&Revision> = revisions.iter().filter(|r| r.applied).collect();
    let undo: Vec<String> = match target {
        Some(t) => {
            let keep = position(&revisions, t)?;
            revisions[keep + 1..]
                .iter()
                .filter(|r| r.applied)
                .rev()
                .map(|r| r.id.clone())
                .collect()
        }
        None => applied
            .last()
            .map(|r| vec![r.id.clone()])
            .unwrap_or_default(),
    };
    if !undo.is_empty() {
        Migrator::down(db, Some(undo.len() as u32)).await?;
    }
    Ok(undo)
}

fn position(revisions: &[Revision], id: &str) -> Result<usize> {
    revisions.iter().position(|r| r.id == id).ok_or_else(|| {
        let known: Vec<&str> = revisions.iter().map(|r| r.id.as_str()).collect();
        Error::UnknownRevision(format!(
            "unknown revision '{id}'; known revisions: {}",
            known.join(", ")
        ))
    })
}

async fn migration_table_exists(db: &DatabaseConnection) -> Result<bool> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'seaql_migrations'"
        }
        _ => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'",
    };
    Ok(db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .is_some())
}
