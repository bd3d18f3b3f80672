//! `iops migrate upgrade|downgrade|current|history`, as the Python tool printed them.
use migration::schema;

use crate::app::App;

use super::MigrateCommand;
use crate::config::Config;
use crate::error::{Error, Result};

/// Every revision id the binary knows, oldest first.
pub fn known_revisions() -> Vec<String> {
    use migration::MigratorTrait;
    migration::Migrator::migrations()
        .iter()
        .map(|m| migration::revision_id(m.name()).to_owned())
        .collect()
}

/// Refuses an unknown revision before the database is even opened, so that a typo
/// changes nothing (not even creating an empty SQLite file).
fn check_revision(revision: Option<&str>) -> Result<()> {
    let Some(rev) = revision else {
        return Ok(());
    };
    let known = known_revisions();
    if known.iter().any(|k| k == rev) {
        Ok(())
    } else {
        Err(Error::config(format!(
            "unknown revision '{rev}'; known revisions: {}",
            known.join(", ")
        )))
    }
}

pub async fn run(config: &Config, command: MigrateCommand) -> Result<()> {
    if let MigrateCommand::Upgrade { revision } | MigrateCommand::Downgrade { revision } = &command
    {
        check_revision(revision.as_deref())?;
    }
    let app = App::command(config).build().await?;
    let result = execute(app.database.connection(), command).await;
    app.close().await;
    result
}

async fn execute(db: &sea_orm::DatabaseConnection, command: MigrateCommand) -> Result<()> {
    match command {
        MigrateCommand::Upgrade { revision } => {
            let applied = schema::upgrade(db, revision.as_deref()).await?;
            if applied.is_empty() {
                println!("nothing to apply; current: {}", current_label(db).await?);
            } else {
                println!("applied {}", applied.join(", "));
            }
        }
        MigrateCommand::Downgrade { revision } => {
            let undone = schema::downgrade(db, revision.as_deref()).await?;
            if undone.is_empty() {
                println!(
                    "nothing to roll back; current: {}",
                    current_label(db).await?
                );
            } else {
                println!("rolled back {}", undone.join(", "));
            }
        }
        MigrateCommand::Current => println!("{}", current_label(db).await?),
        MigrateCommand::History => {
            for r in schema::history(db).await? {
                let state = if r.applied { "applied" } else { "pending" };
                println!("{}  {}  {}", r.id, r.name, state);
            }
        }
    }
    Ok(())
}

async fn current_label(db: &sea_orm::DatabaseConnection) -> Result<String> {
    Ok(schema::current(db)
        .await?
        .unwrap_or_else(|| "none".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_revisions_name_the_known_ones() {
        let err = check_revision(Some("999")).unwrap_err().to_string();
        assert!(
            err.contains("999") && err.contains("001") && err.contains("002"),
            "{err}"
        );
        assert!(check_revision(Some("001")).is_ok());
        assert!(check_revision(None).is_ok());
    }
}
