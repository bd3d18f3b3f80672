//! Public report views through the API (`wrk`) beside the raw view statement on the same
//! database with as many connections (`pgbench`, or a minimal sqlx loop on SQLite).
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::process::Command;

use crate::Result;
use crate::seed::short_code;
use crate::stats::Samples;

/// Picks a random seeded code per request. Each wrk thread runs `init` in its own Lua
/// state; `done` prints one machine-readable line (latencies in microseconds).
const WRK_SCRIPT: &str = r#"
local codes = {}

function init(args)
  for line in io.lines(args[1]) do
    codes[#codes + 1] = line
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local code = codes[math.random(#codes)]
  return wrk.format("GET", "/r/" .. code, { ["Accept"] = "application/json" })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f errors=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"#;

/// What one `wrk` run measured.
#[derive(Debug)]
pub struct ApiViews {
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Socket errors, timeouts and non-2xx/3xx answers.
    pub errors: u64,
}

/// What one raw-statement run measured.
#[derive(Debug)]
pub struct RawViews {
    pub rate: f64,
    /// Latency percentiles of the statement as its client saw it (`None` without samples).
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub errors: u64,
}

/// Writes the wrk script next to the codes file; returns its path.
pub fn write_wrk_script(dir: &Path) -> Result<std::path::PathBuf> {
    let path = dir.join("views.lua");
    std::fs::write(&path, WRK_SCRIPT)?;
    Ok(path)
}

/// `GET /r/{code}` over random codes for `duration` with `connections` connections.
pub async fn api(
    base: &str,
    script: &Path,
    codes: &Path,
    connections: usize,
    duration: Duration,
) -> Result<ApiViews> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(connections);
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(script)
        .arg(base)
        .arg("--")
        .arg(codes)
        .output()
        .await
        .map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk failed ({}): {} {}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("BENCH "))
        .ok_or_else(|| format!("no result line in wrk output: {}", stdout.trim()))?;
    let field = |name: &str| -> Result<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("no {name} in wrk result: {line}").into())
    };
    let requests = field("requests")?;
    let micros = field("duration_us")?;
    Ok(ApiViews {
        rate: if micros > 0.0 {
            requests / (micros / 1e6)
        } else {
            0.0
        },
        p50: Duration::from_micros(field("p50_us")? as u64),
        p99: Duration::from_micros(field("p99_us")? as u64),
        errors: field("errors")? as u64,
    })
}

/// The server's view counting so far, from `/metrics`: (statements, views). The API
/// counts the views that arrive together with one statement; the raw side always uses
/// one per view, so the table shows how many the API shared.
pub async fn counting(base: &str) -> Result<(u64, u64)> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    let value = |name: &str| -> Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no {name} in /metrics").into())
    };
    Ok((
        value("iops_report_view_statements_total")?,
        value("iops_report_views_counted_total")?,
    ))
}

/// The raw view statement with `pgbench`: the same codes, `connections` clients.
pub async fn raw_postgres(
    pg_url: &str,
    database: &str,
    dir: &Path,
    reports: usize,
    connections: usize,
    duration: Duration,
) -> Result<RawViews> {
    let script = dir.join("views.pgbench.sql");
    std::fs::write(
        &script,
        format!(
            "\\set i random(1, {reports})\n\
             UPDATE reports SET view_count = view_count + 1 \
             WHERE short_code = 'bench' || lpad(CAST(:i AS text), 8, '0') RETURNING view_count;\n"
        ),
    )?;
    let url = url::Url::parse(pg_url).map_err(|e| format!("bad PostgreSQL URL: {e}"))?;
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(connections);
    // Transactions' latencies go to per-thread log files under this prefix (a sample of
    // them: each logged line is a write, and the raw side should not pay for much more
    // than its statement).
    let log_prefix = dir.join(format!("pgbench-c{connections}"));
    remove_logs(&log_prefix)?;
    let mut cmd = Command::new("pgbench");
    cmd.arg("-n")
        .arg("--log")
        .arg(format!("--log-prefix={}", log_prefix.display()))
        .arg(format!("--sampling-rate={PGBENCH_LOG_SAMPLING}"))
        .args(["-M", "prepared"])
        .arg(format!("-c{connections}"))
        .arg(format!("-j{threads}"))
        // At least 3 s: pgbench's clock runs while its clients connect (with TLS, 64 of
        // them can take a second on a busy 2-core machine), and a 1 s smoke round could
        // end before the first transaction.
        .arg(format!("-T{}", duration.as_secs().max(3)))
        .arg("-f")
        .arg(&script)
        .args(["-h", url.host_str().unwrap_or("127.0.0.1")])
        .args(["-p", &url.port().unwrap_or(5432).to_string()])
        .args([
            "-U",
            if url.username().is_empty() {
                "postgres"
            } else {
                url.username()
            },
        ])
        .arg(database);
    if let Some(password) = url.password() {
        cmd.env("PGPASSWORD", password);
    }
    // The same transport as the server's connections: with `?sslmode=disable` in the URL
    // neither side pays for TLS, without it both negotiate it (libpq's and sqlx's default
    // is `prefer`).
    if let Some((_, mode)) = url.query_pairs().find(|(k, _)| k == "sslmode") {
        cmd.env("PGSSLMODE", mode.as_ref());
    }
    let output = cmd
        .output()
        .await
        .map_err(|e| format!("cannot run pgbench (apt-get install postgresql-contrib): {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "pgbench failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let number_after = |prefix: &str| -> Option<f64> {
        stdout.lines().find_map(|l| {
            l.trim()
                .strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    };
    let rate = number_after("tps = ")
        .ok_or_else(|| format!("no tps in pgbench output: {}", stdout.trim()))?;
    let errors = number_after("number of failed transactions:").unwrap_or(0.0) as u64;
    let latencies = read_logs(&log_prefix)?;
    remove_logs(&log_prefix)?;
    Ok(RawViews {
        rate,
        p50: latencies.percentile(50.0),
        p99: latencies.percentile(99.0),
        errors,
    })
}

/// The share of pgbench's transactions whose latency is logged.
const PGBENCH_LOG_SAMPLING: f64 = 0.2;

/// pgbench's log files for `prefix`: `prefix.PID` and `prefix.PID.THREAD`.
fn logs(prefix: &Path) -> Result<Vec<std::path::PathBuf>> {
    let dir = prefix
        .parent()
        .ok_or("a pgbench log prefix needs a folder")?;
    let stem = format!(
        "{}.",
        prefix
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&stem))
        {
            found.push(path);
        }
    }
    Ok(found)
}

fn remove_logs(prefix: &Path) -> Result<()> {
    for path in logs(prefix)? {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

/// Latencies from pgbench's logs, whose lines read `client transaction latency_us script
/// epoch epoch_us`; a failed transaction's latency is a word, not a number, and is left out.
fn read_logs(prefix: &Path) -> Result<Samples> {
    let mut samples = Samples::default();
    for path in logs(prefix)? {
        for line in std::fs::read_to_string(path)?.lines() {
            if let Some(micros) = line
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.parse::<u64>().ok())
            {
                samples.push(Duration::from_micros(micros));
            }
        }
    }
    Ok(samples)
}

/// The raw view statement on SQLite: `connections` tasks over a pool of as many
/// connections, each running the statement in a loop, through the server's own driver.
pub async fn raw_sqlite(
    url: &str,
    reports: usize,
    connections: usize,
    duration: Duration,
) -> Result<RawViews> {
    let db = domain::Database::connect(url, connections as u32)
        .await?
        .connection()
        .clone();
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(connections);
    let started = Instant::now();
    for _ in 0..connections {
        let (db, done, count, errors) = (db.clone(), done.clone(), count.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Samples::default();
            while !done.load(Ordering::Relaxed) {
                let code = short_code(rand::rng().random_range(1..=reports));
                let sent = Instant::now();
                let result = db
                    .query_one_raw(Statement::from_sql_and_values(
                        DbBackend::Sqlite,
                        "UPDATE reports SET view_count = view_count + 1 \
                         WHERE short_code = $1 RETURNING view_count",
                        [code.into()],
                    ))
                    .await;
                match result {
                    Ok(Some(_)) => {
                        latencies.push(sent.elapsed());
                        count.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
            latencies
        }));
    }
    tokio::time::sleep(duration).await;
    done.store(true, Ordering::Relaxed);
    let mut latencies = Samples::default();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let elapsed = started.elapsed();
    db.close().await?;
    Ok(RawViews {
        rate: count.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        p50: latencies.percentile(50.0),
        p99: latencies.percentile(99.0),
        errors: errors.load(Ordering::Relaxed),
    })
}
