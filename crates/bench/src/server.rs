//! `iops serve` as a child process on a free loopback port, and what we read of it.
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::Result;

/// How long a start may take before the run gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Gap between two readiness probes while waiting for a start: small next to a start-up.
const READY_POLL: Duration = Duration::from_millis(2);

/// Where and how a server (or an `iops` command) runs.
#[derive(Clone, Debug)]
pub struct ServerEnv {
    pub bin: PathBuf,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub max_upload_bytes: u64,
    /// Server stderr goes here, shown when something fails.
    pub log_file: PathBuf,
    /// Whether uploaded files get columnar copies (for every file), or none: a copy is
    /// written in the background after an upload, which would weigh on the other sections.
    pub columnar: bool,
}

impl ServerEnv {
    /// An `iops` command with this environment (and nothing inherited that could change
    /// its configuration).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_remove("IOPS_BIND")
            .env("DATABASE_URL", &self.database_url)
            .env("IOPS_DATA_DIR", &self.data_dir)
            .env("IOPS_MAX_UPLOAD_BYTES", self.max_upload_bytes.to_string())
            .env(
                "IOPS_QUERY_COLUMNAR_MIN_MB",
                if self.columnar { "0" } else { "off" },
            )
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `iops ARGS...` to completion; fails with its stderr when it fails.
    pub async fn run(&self, args: &[&str]) -> Result<Duration> {
        let started = Instant::now();
        let output = self
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let elapsed = started.elapsed();
        if !output.status.success() {
            return Err(format!(
                "`iops {}` failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
            .into());
        }
        Ok(elapsed)
    }
}

/// A running `iops serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log_file: PathBuf,
}

impl Server {
    /// Starts `iops serve` and waits for `200` on `/health/ready`; returns the server and
    /// the time from exec to that first `200`.
    pub async fn start(env: &ServerEnv, http: &reqwest::Client) -> Result<(Server, Duration)> {
        let port = free_port()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&env.log_file)
            .map_err(|e| format!("cannot open {}: {e}", env.log_file.display()))?;
        let mut cmd = env.command();
        cmd.arg("serve")
            .env("IOPS_BIND", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let started = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", env.bin.display()))?;
        let pid = child.id().ok_or("the server exited at once")?;
        let mut server = Server {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
            log_file: env.log_file.clone(),
        };
        let ready = format!("{}/health/ready", server.base);
        loop {
            if let Ok(response) = http.get(&ready).send().await
                && response.status() == reqwest::StatusCode::OK
            {
                return Ok((server, started.elapsed()));
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "iops serve exited ({status}) before it was ready: {}",
                    server.log_tail()
                )
                .into());
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "iops serve not ready after {START_TIMEOUT:?}: {}",
                    server.log_tail()
                )
                .into());
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resets the peak resident set size (VmHWM) of the server, so the next reading is
    /// the peak of what follows only.
    pub fn reset_peak_rss(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .map_err(|e| format!("cannot reset the peak RSS of the server: {e}").into())
    }

    /// Peak resident set size (VmHWM) of the server, in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        self.status_bytes("VmHWM:")
    }

    /// CPU time the server has used so far (see [`cpu_time`]).
    pub fn cpu_time(&self) -> Result<Duration> {
        cpu_time(&self.pid.to_string())
    }

    /// Current resident set size (VmRSS) of the server, in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        self.status_bytes("VmRSS:")
    }

    fn status_bytes(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| format!("cannot read the server's /proc status: {e}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| format!("no {field} in the server's /proc status").into())
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_file)
    }

    pub async fn stop(mut self) {
        // Nothing to flush: every write the benchmark depends on was answered already.
        let _ = self.child.kill().await;
    }
}

/// User and system CPU time of process `pid` (`self` for the benchmark itself): every
/// thread's, those that have exited included (`/proc/PID/stat`, in the kernel's fixed
/// user-visible tick of 1/100 s).
pub fn cpu_time(pid: &str) -> Result<Duration> {
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers:
    // state is field 3, utime 14, stime 15.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|v| v.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok(Duration::from_millis(
            (user + system) * 1000 / TICKS_PER_SECOND,
        )),
        _ => Err(format!("no CPU times in /proc/{pid}/stat").into()),
    }
}

pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(5);
    let tail = lines[start..].join(" | ");
    if tail.is_empty() {
        "(no log output)".to_owned()
    } else {
        tail
    }
}

/// A loopback port that was free a moment ago (the OS picks it).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
