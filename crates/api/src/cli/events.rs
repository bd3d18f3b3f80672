//! `iops events prune`.
use super::EventsCommand;
use crate::app::App;
use crate::config::Config;
use crate::error::Result;

/// Runs `iops events ...`.
pub async fn run(config: &Config, command: EventsCommand) -> Result<()> {
    let app = App::command(config).build().await?;
    let result = match command {
        EventsCommand::Prune => app.domain.events.prune().await,
    };
    app.close().await;
    let removed = result?;
    println!(
        "deleted {removed} product events older than {} days",
        config.events_retention_days
    );
    Ok(())
}
