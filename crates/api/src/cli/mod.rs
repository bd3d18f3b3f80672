//! The `iops` command line (CLI.md): `serve`, `migrate`, `users`, `backup`.
pub mod backup;
pub mod migrate;
pub mod serve;
pub mod users;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::error::{Error, Result};

#[derive(Debug, Parser)]
#[command(
    name = "iops",
    version,
    about = "iOps: the REST API server and its administration commands",
    after_help = "Configuration comes from the environment: DATABASE_URL, IOPS_DATA_DIR, \
                  IOPS_BIND, IOPS_MAX_UPLOAD_BYTES, RUST_LOG."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve the REST API until SIGINT or SIGTERM.
    Serve {
        /// Do not apply pending migrations first.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Show or change the schema revision.
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
    /// Administer user accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Write a consistent copy of the live SQLite database to FILE (PostgreSQL: use pg_dump).
    Backup {
        /// Where to write the copy; must not exist yet.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending revisions, all of them or up to and including REV.
    Upgrade {
        /// Revision id, e.g. 001.
        revision: Option<String>,
    },
    /// Roll back the newest applied revision, or every revision newer than REV.
    Downgrade {
        /// Revision id to keep, e.g. 001.
        revision: Option<String>,
    },
    /// Print the newest applied revision id (`none` on an empty database).
    Current,
    /// List every revision, oldest first, applied or pending.
    History,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Set a user's tier: free, pro, team or enterprise.
    SetTier { email: String, tier: String },
    /// Grant is_admin to a user (or take it away with --revoke).
    SetAdmin {
        email: String,
        /// Take the admin role away instead.
        #[arg(long)]
        revoke: bool,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::from_env()?;
    init_logging(&config)?;
    match cli.command {
        Command::Serve { no_migrate } => serve::run(&config, no_migrate).await,
        Command::Migrate { command } => migrate::run(&config, command).await,
        Command::Users { command } => users::run(&config, command).await,
        Command::Backup { file } => backup::run(&config, &file).await,
    }
}

/// Logs go to stderr, so that command output on stdout stays clean for scripts.
fn init_logging(config: &Config) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .map_err(|e| Error::config(format!("RUST_LOG is not a valid log filter: {e}")))?;
    // A subscriber already set (a test calling `run` twice) is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}

/// Opens the database for a command (`max_connections` small for one-shot commands).
pub async fn connect(config: &Config, max_connections: u32) -> Result<DatabaseConnection> {
    if config.database_url_is_default {
        config.ensure_data_dir()?;
    }
    domain::db::connect(&config.database_url, max_connections)
        .await
        .map_err(Error::Connect)
}
