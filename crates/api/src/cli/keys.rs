//! `iops keys rotate`: re-encrypts every stored secret (embed key secrets, connection
//! passwords) under the current key, reading the keys exactly as `iops serve` does.
use domain::Admin;

use super::KeysCommand;
use crate::app::App;
use crate::config::Config;
use crate::error::Result;

/// Runs `iops keys ...`.
pub async fn run(config: &Config, command: KeysCommand) -> Result<()> {
    let app = App::command(config).load_keys(true).build().await?;
    let result = match command {
        KeysCommand::Rotate => app.domain.keys.rotate(&Admin::local_operator()).await,
    };
    app.close().await;
    let done = result?;
    println!(
        "re-encrypted {} embed key secrets and {} connection passwords under the current key",
        done.embed_keys, done.connection_passwords
    );
    Ok(())
}
