//! `iops users set-tier EMAIL TIER` and `iops users set-admin EMAIL [--revoke]`.
use domain::{Admin, Tier};

use super::UsersCommand;
use crate::app::App;
use crate::config::Config;
use crate::error::{Error, Result};

/// A tier by name, case-insensitive.
pub fn parse_tier(raw: &str) -> Result<Tier> {
    raw.trim().to_ascii_lowercase().parse().map_err(|_| {
        Error::config(format!(
            "unknown tier '{raw}'; known tiers: free, pro, team, enterprise"
        ))
    })
}

/// Runs `iops users ...`.
pub async fn run(config: &Config, command: UsersCommand) -> Result<()> {
    // Validate before touching the database.
    let tier = match &command {
        UsersCommand::SetTier { tier, .. } => Some(parse_tier(tier)?),
        UsersCommand::SetAdmin { .. } => None,
    };
    // These commands never touch dataset files. Opening the real store would also clear
    // its staging folder under a running server's in-flight uploads.
    let app = App::command(config).build().await?;
    let result = execute(&app.domain, command, tier).await;
    app.close().await;
    result
}

async fn execute(domain: &domain::Domain, command: UsersCommand, tier: Option<Tier>) -> Result<()> {
    // The operator runs this on the database itself.
    let admin = Admin::local_operator();
    let outcome = match (command, tier) {
        (UsersCommand::SetTier { email, .. }, Some(tier)) => domain
            .accounts
            .set_tier_by_email(&admin, &email, tier)
            .await
            .map(|u| format!("{}: tier {}", u.email, u.tier)),
        (UsersCommand::SetAdmin { email, revoke }, _) => domain
            .accounts
            .set_admin_by_email(&admin, &email, !revoke)
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
