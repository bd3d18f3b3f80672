//! `iops users set-tier EMAIL TIER`, `iops users set-admin EMAIL [--revoke]` and
//! `iops users set-limits EMAIL [--datasets N|unlimited] ...`.
use domain::{Admin, LimitsChange, Tier};

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

/// A limit given on the command line: a whole number, or `unlimited`.
pub fn parse_limit(flag: &str, raw: &str) -> Result<Option<i64>> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    match raw.parse::<i64>() {
        Ok(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n)),
        _ => Err(Error::config(format!(
            "--{flag} takes a whole number from 0 to {} or 'unlimited', got '{raw}'",
            i32::MAX
        ))),
    }
}

fn limits_change(command: &UsersCommand) -> Result<Option<LimitsChange>> {
    let UsersCommand::SetLimits {
        datasets,
        ai_messages,
        reports,
        collaborators,
        data_connections,
        ..
    } = command
    else {
        return Ok(None);
    };
    let parse = |flag: &str, raw: &Option<String>| {
        raw.as_deref().map(|raw| parse_limit(flag, raw)).transpose()
    };
    let change = LimitsChange {
        datasets: parse("datasets", datasets)?,
        ai_messages: parse("ai-messages", ai_messages)?,
        reports: parse("reports", reports)?,
        collaborators: parse("collaborators", collaborators)?,
        data_connections: parse("data-connections", data_connections)?,
    };
    if change == LimitsChange::default() {
        return Err(Error::config(
            "give at least one limit: --datasets, --ai-messages, --reports, --collaborators or --data-connections",
        ));
    }
    Ok(Some(change))
}

/// Runs `iops users ...`.
pub async fn run(config: &Config, command: UsersCommand) -> Result<()> {
    // Validate before touching the database.
    let tier = match &command {
        UsersCommand::SetTier { tier, .. } => Some(parse_tier(tier)?),
        UsersCommand::SetAdmin { .. } | UsersCommand::SetLimits { .. } => None,
    };
    let change = limits_change(&command)?;
    // These commands never touch dataset files. Opening the real store would also clear
    // its staging folder under a running server's in-flight uploads.
    let app = App::command(config).build().await?;
    let result = match change {
        Some(change) => set_limits(&app.domain, command, change).await,
        None => execute(&app.domain, command, tier).await,
    };
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
        (UsersCommand::SetTier { .. }, None) | (UsersCommand::SetLimits { .. }, _) => {
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

async fn set_limits(
    domain: &domain::Domain,
    command: UsersCommand,
    change: LimitsChange,
) -> Result<()> {
    let UsersCommand::SetLimits { email, .. } = command else {
        return Err(Error::config("not a set-limits command"));
    };
    let admin = Admin::local_operator();
    let user = match domain.accounts.find_by_email(&admin, &email).await {
        Err(domain::Error::NotFound) => return Err(Error::config("no user with that email")),
        other => other?,
    };
    let limits = domain.usage.change_limits(&admin, user.id, change).await?;
    let show = |limit: Option<i64>| limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    println!(
        "{}: datasets {}, ai_messages {}, reports {}, collaborators {}, data_connections {}",
        user.email,
        show(limits.datasets),
        show(limits.ai_messages),
        show(limits.reports),
        show(limits.collaborators),
        show(limits.data_connections)
    );
    Ok(())
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

    #[test]
    fn limits_parse_numbers_and_unlimited_and_name_the_flag() {
        assert_eq!(parse_limit("datasets", "7").unwrap(), Some(7));
        assert_eq!(parse_limit("datasets", " Unlimited ").unwrap(), None);
        for bad in ["-1", "many", "", "2147483648"] {
            let err = parse_limit("ai-messages", bad).unwrap_err().to_string();
            assert!(err.contains("--ai-messages"), "{err}");
        }
    }
}
