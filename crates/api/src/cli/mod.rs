//! The `iops` command line (CLI.md): `serve`, `migrate`, `users`, `backup`, `storage`,
//! `cluster`.
pub mod backup;
pub mod billing;
pub mod cluster;
pub mod events;
pub mod keys;
pub mod migrate;
pub mod serve;
pub mod storage;
pub mod users;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::error::{Error, Result};

#[derive(Debug, Parser)]
#[command(
    name = "iops",
    version,
    about = "iOps: the REST API server and its administration commands",
    after_help = "Every setting is an option or its environment variable (shown in \
                  brackets); s3:// storage also reads the standard AWS_* variables."
)]
pub struct Cli {
    /// The settings, as options or environment variables.
    #[command(flatten)]
    pub settings: crate::config::RawSettings,
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
    /// Billing housekeeping.
    Billing {
        #[command(subcommand)]
        command: BillingCommand,
    },
    /// Product events.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Encryption keys of secrets at rest.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Write a consistent copy of the live SQLite database to FILE (PostgreSQL: use pg_dump).
    Backup {
        /// Where to write the copy; must not exist yet.
        file: PathBuf,
    },
    /// Maintain the dataset file store (IOPS_STORAGE_URL, default IOPS_DATA_DIR/datasets).
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Run a node of an Apache Ballista cluster that runs analyses for `iops serve`
    /// processes started with IOPS_ENGINE_URL=df://HOST:PORT (same store settings).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The scheduler: takes plans from `iops serve`, splits them into tasks for executors.
    Scheduler {
        /// Where to listen (gRPC).
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:50050")]
        bind: String,
    },
    /// An executor: registers with the scheduler, runs tasks, reads the dataset store.
    /// Serves results on the --bind port and its gRPC service on the next one.
    Executor {
        /// The scheduler, as df://HOST:PORT.
        #[arg(long, value_name = "URL")]
        scheduler: String,
        /// Where to listen (Arrow Flight; gRPC on the port after it).
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:50051")]
        bind: String,
        /// The host name other machines reach this executor at [default: the --bind IP].
        #[arg(long, value_name = "HOST")]
        external_host: Option<String>,
        /// Tasks at once [default: the cores]; they share IOPS_QUERY_MEMORY_MB.
        #[arg(long, value_name = "N")]
        slots: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Remove stored files that no dataset references and that are older than
    /// `IOPS_STORAGE_GRACE_SECS` (an hour by default).
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy every dataset file from the current store to another one (idempotent:
    /// files already there with the same size are skipped, so a rerun resumes).
    Migrate {
        /// Target store: s3://bucket[/prefix] (AWS_* variables) or file:///absolute/path.
        #[arg(long, value_name = "URL")]
        to: String,
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
    /// Set an enterprise account's own limits; only the limits given change. Each takes a
    /// whole number or `unlimited`.
    SetLimits {
        email: String,
        /// Dataset uploads a month.
        #[arg(long, value_name = "N|unlimited", allow_hyphen_values = true)]
        datasets: Option<String>,
        /// AI messages a month.
        #[arg(long, value_name = "N|unlimited", allow_hyphen_values = true)]
        ai_messages: Option<String>,
        /// Published reports a month.
        #[arg(long, value_name = "N|unlimited", allow_hyphen_values = true)]
        reports: Option<String>,
        /// Distinct collaborators at once.
        #[arg(long, value_name = "N|unlimited", allow_hyphen_values = true)]
        collaborators: Option<String>,
        /// Data connections at once.
        #[arg(long, value_name = "N|unlimited", allow_hyphen_values = true)]
        data_connections: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Delete product events older than IOPS_EVENTS_RETENTION_DAYS (400).
    Prune,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every stored secret under the current key (online, in batches,
    /// idempotent); afterwards the old keys can be removed.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// Clear the payloads of Stripe events older than 30 days (their ids stay, so
    /// redeliveries are still recognised). `iops serve` also does this at start and hourly.
    Prune,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::from_settings(cli.settings)?;
    init_logging(&config)?;
    match cli.command {
        Command::Serve { no_migrate } => serve::run(&config, no_migrate).await,
        Command::Migrate { command } => migrate::run(&config, command).await,
        Command::Users { command } => users::run(&config, command).await,
        Command::Billing { command } => billing::run(&config, command).await,
        Command::Events { command } => events::run(&config, command).await,
        Command::Keys { command } => keys::run(&config, command).await,
        Command::Backup { file } => backup::run(&config, &file).await,
        Command::Storage { command } => storage::run(&config, command).await,
        Command::Cluster { command } => cluster::run(&config, command).await,
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
