//! `iops users set-tier EMAIL TIER` and `iops users set-admin EMAIL [--revoke]`.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use domain::storage::DatasetStore;
use domain::{Context, Domain, SystemClock};
use entity::users::Tier;

use super::UsersCommand;
use crate::config::Config;
use crate::error::{Error, Result};

pub fn parse_tier(raw: &str) -> Result<Tier> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "free" => Ok(Tier::Free),
        "pro" => Ok(Tier::Pro),
        "team" => Ok(Tier::Team),
        "enterprise" => Ok(Tier::Enterprise),
        _ => Err(Error::config(format!(
            "unknown tier '{raw}'; known tiers: free, pro, team, enterprise"
        ))),
    }
}

pub async fn run(config: &Config, command: UsersCommand) -> Result<()> {
    // Validate before touching the database.
    let tier = match &command {
        UsersCommand::SetTier { tier, .. } => Some(parse_tier(tier)?),
        UsersCommand::SetAdmin { .. } => None,
    };
    let db = super::connect(config, 2).await?;
    let domain = Domain::new(Context {
        db: db.clone(),
        clock: Arc::new(SystemClock),
        // These commands never touch dataset files. Opening the real store would also
        // clear its staging folder under a running server's in-flight uploads.
        store: Arc::new(NoFiles),
        settings: config.settings(),
    });
    let result = execute(&domain, command, tier).await;
    db.close().await.ok();
    result
}

async fn execute(domain: &Domain, command: UsersCommand, tier: Option<Tier>) -> Result<()> {
    let outcome = match (command, tier) {
        (UsersCommand::SetTier { email, .. }, Some(tier)) => domain
            .accounts
            .set_tier_by_email(&email, tier)
            .await
            .map(|u| format!("{}: tier {}", u.email, tier_name(u.tier))),
        (UsersCommand::SetAdmin { email, revoke }, _) => domain
            .accounts
            .set_admin_by_email(&email, !revoke)
            .await
            .map(|u| format!("{}: is_admin {}", u.email, u.is_admin)),
        (UsersCommand::SetTier { .. }, None) => {
            return Err(Error::config("a tier is required"));
        }
    };
    match outcome {
        Ok(line) => {
            println!("{line}");
            Ok(())
        }
        Err(domain::Error::NotFound) => Err(Error::config("no user with that email")),
        Err(e) => Err(e.into()),
    }
}

fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Free => "free",
        Tier::Pro => "pro",
        Tier::Team => "team",
        Tier::Enterprise => "enterprise",
    }
}

/// A dataset store for commands that must not touch files: every call fails.
struct NoFiles;

fn refused() -> std::io::Error {
    std::io::Error::other("this command does not access dataset files")
}

#[async_trait]
impl DatasetStore for NoFiles {
    async fn stage(&self) -> std::io::Result<PathBuf> {
        Err(refused())
    }
    async fn publish(&self, _staged: &Path, _key: &str) -> std::io::Result<()> {
        Err(refused())
    }
    async fn remove(&self, _key: &str) -> std::io::Result<()> {
        Err(refused())
    }
    async fn discard(&self, _staged: &Path) -> std::io::Result<()> {
        Err(refused())
    }
    async fn exists(&self, _key: &str) -> std::io::Result<bool> {
        Err(refused())
    }
    async fn ready(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_and_unknown_ones_are_named() {
        assert_eq!(parse_tier("pro").unwrap(), Tier::Pro);
        assert_eq!(parse_tier("Team").unwrap(), Tier::Team);
        let err = parse_tier("gold").unwrap_err().to_string();
        assert!(err.contains("gold") && err.contains("enterprise"), "{err}");
    }
}
