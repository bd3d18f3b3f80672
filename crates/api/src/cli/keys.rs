//! `iops keys rotate`. (being written)
use super::KeysCommand;
use crate::config::Config;
use crate::error::Result;

/// Runs `iops keys ...`.
pub async fn run(_config: &Config, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Rotate => Ok(()),
    }
}
