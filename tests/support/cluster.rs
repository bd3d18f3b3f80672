//! A real Apache Ballista cluster for the tests: one scheduler and one executor, each an
//! `iops cluster` process of this workspace's binary, on free ports of 127.0.0.1. They stop
//! when the test binary exits (each runs under a shell that kills it when the pipe from
//! this process closes).
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running scheduler and executor.
pub struct Cluster {
    /// What `IOPS_ENGINE_URL` says to reach the scheduler.
    pub address: engine::ClusterAddress,
    pub logs: Vec<PathBuf>,
    _lifelines: Vec<Mutex<(Child, ChildStdin)>>,
}

impl Cluster {
    /// Starts a scheduler and an executor reading the dataset store `storage_url` with
    /// `env` (the AWS variables of an S3 store), working under `data_dir`; returns once
    /// both listen.
    pub fn start(storage_url: &str, env: &[(&'static str, String)], data_dir: &Path) -> Self {
        let iops = crate::workspace_binary("api", "iops");
        let scheduler_port = free_port(1);
        let executor_port = free_port(2);
        let address = engine::ClusterAddress::parse(&format!("df://127.0.0.1:{scheduler_port}"))
            .expect("scheduler address");
        let mut logs = Vec::new();
        let mut lifelines = Vec::new();
        for (name, args) in [
            (
                "scheduler",
                vec![
                    "cluster".to_owned(),
                    "scheduler".to_owned(),
                    "--bind".to_owned(),
                    format!("127.0.0.1:{scheduler_port}"),
                ],
            ),
            (
                "executor",
                vec![
                    "cluster".to_owned(),
                    "executor".to_owned(),
                    "--scheduler".to_owned(),
                    address.to_string(),
                    "--bind".to_owned(),
                    format!("127.0.0.1:{executor_port}"),
                    "--slots".to_owned(),
                    "2".to_owned(),
                ],
            ),
        ] {
            let log = data_dir.join(format!("{name}.log"));
            let mut shell = Command::new("sh")
                .args([
                    "-c",
                    "bin=\"$1\"; log=\"$2\"; shift 2; \"$bin\" \"$@\" >\"$log\" 2>&1 & pid=$!; \
                     read -r _; kill \"$pid\"; wait \"$pid\"",
                    "sh",
                ])
                .arg(&iops)
                .arg(&log)
                .args(&args)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env("IOPS_STORAGE_URL", storage_url)
                .env("IOPS_DATA_DIR", data_dir.join(name))
                .env("IOPS_QUERY_MEMORY_MB", "256")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start the {name}: {e}"));
            let lifeline = shell.stdin.take().expect("lifeline pipe");
            lifelines.push(Mutex::new((shell, lifeline)));
            let port = if name == "scheduler" {
                scheduler_port
            } else {
                executor_port
            };
            wait_until_listening(port, &log);
            logs.push(log);
        }
        Self {
            address,
            logs,
            _lifelines: lifelines,
        }
    }

    /// Every node's log so far, for a failing assertion's message.
    pub fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|l| {
                format!(
                    "--- {}\n{}",
                    l.display(),
                    std::fs::read_to_string(l).unwrap_or_default()
                )
            })
            .collect()
    }
}

/// A port `p` of 127.0.0.1 with `p .. p + count` free (an executor serves on two).
fn free_port(count: u16) -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if (1..count).all(|i| {
            first
                .checked_add(i)
                .is_some_and(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        }) {
            return first;
        }
    }
}

fn wait_until_listening(port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "no cluster node listened on port {port} within 60 s; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
