//! `iops cluster scheduler` and `iops cluster executor`: the Apache Ballista processes that
//! run analyses for `iops serve` processes started with `IOPS_ENGINE_URL=df://HOST:PORT`.
//! They read the dataset store of the same settings (`IOPS_STORAGE_URL`, the AWS
//! variables); they never open the database.
use std::net::SocketAddr;

use domain::storage::DatasetStore;
use engine::ClusterAddress;
use engine::cluster::{ExecutorSettings, serve_executor, serve_scheduler};

use super::ClusterCommand;
use crate::app::open_store;
use crate::config::Config;
use crate::error::{Error, Result};

/// The node to run, from arguments checked before anything is opened.
enum Node {
    Scheduler(SocketAddr),
    Executor(ExecutorSettings),
}

pub async fn run(config: &Config, command: ClusterCommand) -> Result<()> {
    let node = match command {
        ClusterCommand::Scheduler { bind } => Node::Scheduler(address("--bind", &bind)?),
        ClusterCommand::Executor {
            scheduler,
            bind,
            external_host,
            slots,
        } => Node::Executor(ExecutorSettings {
            scheduler: ClusterAddress::parse(&scheduler)
                .map_err(|e| Error::config(format!("--scheduler: {e}")))?,
            bind: address("--bind", &bind)?,
            external_host,
            work_dir: config.data_dir.join("executor"),
            memory_bytes: config.query.engine(&config.data_dir).memory_bytes,
            slots: slots
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        }),
    };
    config.ensure_data_dir()?;
    let objects = open_store(config, &config.storage).await?.objects();
    match node {
        Node::Scheduler(bind) => {
            let shutdown = super::serve::shutdown_signal()?;
            tracing::info!(%bind, "Ballista scheduler listening");
            tokio::select! {
                served = serve_scheduler(bind, objects) => served?,
                () = shutdown => {}
            }
        }
        // The executor stops itself on SIGINT and SIGTERM, telling the scheduler first.
        Node::Executor(settings) => {
            tracing::info!(bind = %settings.bind, scheduler = %settings.scheduler, "Ballista executor starting");
            serve_executor(settings, objects).await?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

fn address(option: &str, raw: &str) -> Result<SocketAddr> {
    raw.parse()
        .map_err(|_| Error::config(format!("{option} must be IP:PORT, got '{raw}'")))
}
