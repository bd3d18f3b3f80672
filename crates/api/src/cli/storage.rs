//! `iops storage gc [--dry-run]` and `iops storage migrate --to URL`.
use chrono::Utc;
use domain::storage::Store;

use crate::app::{App, open_store};

use super::StorageCommand;
use crate::config::{Config, parse_storage_url};
use crate::error::{Error, Result};

pub async fn run(config: &Config, command: StorageCommand) -> Result<()> {
    // Arguments first: a bad URL changes nothing and opens nothing.
    let target = match &command {
        StorageCommand::Migrate { to } => Some(parse_storage_url("--to", to)?),
        StorageCommand::Gc { .. } => None,
    };
    if let Some(target) = &target
        && *target == config.storage
    {
        return Err(Error::config(format!(
            "--to {target} is the current store (IOPS_STORAGE_URL); nothing to copy"
        )));
    }
    let app = App::command(config).open_store(true).build().await?;
    let (Some(store), db) = (app.store.clone(), app.database.clone()) else {
        return Err(Error::config("no dataset store is configured"));
    };
    let result = match (command, target) {
        (StorageCommand::Gc { dry_run }, _) => gc(&store, &db, config.storage_grace, dry_run).await,
        (StorageCommand::Migrate { .. }, Some(target)) => match open_store(config, &target).await {
            Ok(target) => migrate(&store, &db, &target).await,
            Err(e) => Err(e),
        },
        (StorageCommand::Migrate { .. }, None) => Err(Error::config("--to is required")),
    };
    app.close().await;
    result
}

async fn gc(
    store: &Store,
    db: &domain::Database,
    grace: std::time::Duration,
    dry_run: bool,
) -> Result<()> {
    let report = store
        .collect_garbage(db, Utc::now(), grace, dry_run)
        .await?;
    for key in &report.removed {
        println!("{} {key}", if dry_run { "would remove" } else { "removed" });
    }
    println!(
        "{} {} of {} stored files (unreferenced and older than {}s); {} unreferenced but recent, kept",
        if dry_run { "would remove" } else { "removed" },
        report.removed.len(),
        report.examined,
        grace.as_secs(),
        report.too_recent,
    );
    println!(
        "{} {} partial upload(s) left in staging by a crash (older than {}s)",
        if dry_run { "would remove" } else { "removed" },
        report.staging_removed,
        grace.as_secs(),
    );
    Ok(())
}

async fn migrate(source: &Store, db: &domain::Database, target: &Store) -> Result<()> {
    let report = source.migrate_to(db, target).await?;
    for key in &report.not_keys {
        tracing::warn!(file_path = %key, "skipped: not a storage key (a machine path)");
    }
    println!(
        "copied {} files from {} to {}; {} already there",
        report.copied,
        source.location(),
        target.location(),
        report.already_there,
    );
    if let Some(first) = report.missing.first() {
        return Err(Error::config(format!(
            "{} referenced files are missing from {} (first: {first}); every other file was copied",
            report.missing.len(),
            source.location(),
        )));
    }
    Ok(())
}
