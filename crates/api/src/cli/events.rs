//! `iops events prune`. (being written)
use super::EventsCommand;
use crate::config::Config;
use crate::error::Result;

/// Runs `iops events ...`.
pub async fn run(_config: &Config, command: EventsCommand) -> Result<()> {
    match command {
        EventsCommand::Prune => Ok(()),
    }
}
