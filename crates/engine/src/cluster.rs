//! Apache Ballista: the same plans run on a cluster. [`serve_scheduler`] and
//! [`serve_executor`] are the two processes `iops cluster` starts; a [`DataFusionEngine`]
//! given a [`ClusterAddress`] sends its plans to the scheduler instead of running them.
//!
//! Every process of a cluster resolves the dataset store the same way the engine does (the
//! store's own client registered under one URL), so a plan made by `iops serve` names files
//! that the scheduler (which splits it into stages) and the executors (which read them)
//! find in the same bucket.
//!
//! [`DataFusionEngine`]: crate::DataFusionEngine
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::RuntimeProducer;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use domain::storage::StoreObjects;

use crate::EngineError;
use crate::run::store_runtime;

/// Where a Ballista scheduler listens: `IOPS_ENGINE_URL=df://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterAddress {
    /// The scheduler's host name or address.
    pub host: String,
    /// The scheduler's gRPC port.
    pub port: u16,
}

impl ClusterAddress {
    /// Reads `df://HOST:PORT` (the port is required: a default would hide a typo).
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        let bad = || EngineError::BadAddress(raw.to_owned());
        let url = url::Url::parse(raw).map_err(|_| bad())?;
        let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
            return Err(bad());
        };
        if url.scheme() != "df" || !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// The scheduler's gRPC endpoint, as Ballista's client wants it.
    pub(crate) fn scheduler_url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

impl fmt::Display for ClusterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "df://{}:{}", self.host, self.port)
    }
}

/// Runs a Ballista scheduler on `bind` until the process is asked to stop. It turns the
/// plans `iops serve` sends into stages, which needs the dataset files' sizes: it reads the
/// store through `objects`.
pub async fn serve_scheduler(bind: SocketAddr, objects: StoreObjects) -> Result<(), EngineError> {
    let runtime = store_runtime(RuntimeEnvBuilder::new(), &objects, None)?;
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host: bind.ip().to_string(),
        override_session_builder: Some(Arc::new(move |config| {
            let state = ballista_core::utils::default_session_builder(config)?;
            Ok(SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime.clone())
                .build())
        })),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| EngineError::Start(e.to_string()))?;
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config))
            .await
            .map_err(|e| EngineError::Start(e.to_string()))?;
    start_grpc_service(bind, scheduler)
        .await
        .map_err(|e| EngineError::Start(e.to_string()))
}

/// What an executor needs besides the dataset store.
#[derive(Clone, Debug)]
pub struct ExecutorSettings {
    /// The scheduler to register with.
    pub scheduler: ClusterAddress,
    /// Where the executor serves its results (Arrow Flight) and, on the next port, its
    /// gRPC service.
    pub bind: SocketAddr,
    /// The address other machines reach this executor at, when `bind` is not it.
    pub external_host: Option<String>,
    /// Shuffle files and spilled data.
    pub work_dir: PathBuf,
    /// Memory its tasks share before they spill.
    pub memory_bytes: usize,
    /// Tasks at once.
    pub slots: usize,
}

/// Runs a Ballista executor until the process receives Ctrl-C or SIGTERM: it registers
/// with the scheduler, runs the tasks it is given and reads datasets through `objects`.
pub async fn serve_executor(
    settings: ExecutorSettings,
    objects: StoreObjects,
) -> Result<(), EngineError> {
    std::fs::create_dir_all(&settings.work_dir)
        .map_err(|e| EngineError::Start(format!("executor work folder: {e}")))?;
    let runtime: RuntimeProducer = {
        let objects = objects.clone();
        let spill = settings.work_dir.clone();
        // Ballista wraps each task's runtime in a memory pool of its own; this gives it
        // the store and the spill folder.
        Arc::new(move |_| {
            store_runtime(RuntimeEnvBuilder::new(), &objects, Some(&spill))
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
        })
    };
    let config = ExecutorProcessConfig {
        bind_host: settings.bind.ip().to_string(),
        external_host: settings.external_host.clone(),
        port: settings.bind.port(),
        grpc_port: settings.bind.port().saturating_add(1),
        scheduler_host: settings.scheduler.host.clone(),
        scheduler_port: settings.scheduler.port,
        // The scheduler may still be starting (both started together): keep trying.
        scheduler_connect_timeout_seconds: 60,
        vcores: settings.slots.max(1),
        work_dir: Some(settings.work_dir.display().to_string()),
        memory_pool_size: Some(settings.memory_bytes as u64),
        // Logs go where the rest of iops's logs go (the subscriber `iops` set up).
        print_thread_info: false,
        override_runtime_producer: Some(runtime),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| EngineError::Start(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_urls() {
        let ok = ClusterAddress::parse("df://scheduler.internal:50050").unwrap();
        assert_eq!(ok.host, "scheduler.internal");
        assert_eq!(ok.port, 50050);
        assert_eq!(ok.to_string(), "df://scheduler.internal:50050");
        assert_eq!(ok.scheduler_url(), "http://scheduler.internal:50050");
        for bad in [
            "df://host",
            "http://host:50050",
            "df://host:50050/path",
            "df://:50050",
            "host:50050",
            "",
        ] {
            assert!(ClusterAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
