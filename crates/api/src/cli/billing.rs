//! `iops billing prune`.
use super::BillingCommand;
use crate::app::App;
use crate::config::Config;
use crate::error::Result;

/// Runs `iops billing ...`.
pub async fn run(config: &Config, command: BillingCommand) -> Result<()> {
    let app = App::command(config).build().await?;
    let result = match command {
        BillingCommand::Prune => app.domain.billing.prune().await,
    };
    app.close().await;
    let cleared = result?;
    println!("cleared the payloads of {cleared} billing events older than 30 days");
    Ok(())
}
