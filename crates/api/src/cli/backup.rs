//! `iops backup FILE`: a consistent copy of a live SQLite database.
//!
//! `VACUUM INTO` reads inside one transaction, so the copy is a snapshot even while
//! `iops serve` writes (copying the file of a WAL database is not). PostgreSQL has its own
//! tool for this, `pg_dump`.
use std::path::Path;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::app::App;
use crate::config::Config;
use crate::error::{Error, Result};

pub async fn run(config: &Config, file: &Path) -> Result<()> {
    if !config.is_sqlite() {
        return Err(Error::config(
            "backup copies SQLite databases only; for PostgreSQL use pg_dump, e.g. \
             pg_dump --format=custom --file=FILE \"$DATABASE_URL\"",
        ));
    }
    let target = file.to_str().ok_or_else(|| {
        Error::config(format!(
            "the backup path {} is not valid UTF-8",
            file.display()
        ))
    })?;
    if target.is_empty() {
        return Err(Error::config("the backup path is empty"));
    }
    // `symlink_metadata` also catches a dangling link, which SQLite would follow.
    if std::fs::symlink_metadata(file).is_ok() {
        return Err(Error::config(format!(
            "{} already exists; refusing to overwrite it",
            file.display()
        )));
    }
    let app = App::command(config).max_connections(1).build().await?;
    let db = app.database.connection();
    // The path is a bound parameter, never spliced into the SQL: no quoting to get wrong.
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "VACUUM INTO ?",
            [target.into()],
        ))
        .await;
    app.close().await;
    result.map_err(|e| Error::Backup {
        path: file.display().to_string(),
        source: e,
    })?;
    println!("backup written to {}", file.display());
    Ok(())
}
