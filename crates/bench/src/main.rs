//! `bench`: measures a real `iops serve` on SQLite and PostgreSQL — public report views,
//! uploads, analysis runs, logins, start-up — each beside the raw database, parser or
//! reference engine (DuckDB, pandas) in the same run, and prints one table. See
//! docs/performance.md.
//!
//! It builds nothing unless asked (`--build`): it runs `target/release/iops`, made by
//! `cargo build --release --bin iops`.
mod analyses;
mod backend;
mod events;
mod logins;
mod seed;
mod server;
mod soak;
mod stats;
mod uploads;
mod views;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use backend::{Backend, Kind};
use server::{Server, ServerEnv};
use stats::{Samples, fmt_duration, fmt_opt_duration, fmt_ratio, mb_per_s};
use uploads::Format;

pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// Views are measured at these connection counts.
const VIEW_CONNECTIONS: [usize; 2] = [16, 64];
/// API and raw runs alternate this many times per connection count (when the duration
/// allows whole seconds each).
const VIEW_ROUNDS: usize = 3;
/// Unmeasured load before each connection count's view rounds.
const WARM_UP: Duration = Duration::from_secs(1);
/// Concurrent logins.
const LOGIN_CONCURRENCY: usize = 8;
/// Runs per file, of the parser alone and of the API upload, alternating; the medians are
/// compared.
const UPLOAD_RUNS: usize = 7;
const UPLOAD_EMAIL: &str = "bench-upload@example.com";
const LOGIN_EMAIL: &str = "bench-login@example.com";
const ANALYSES_EMAIL: &str = "bench-analyses@example.com";

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Benchmarks iops serve (views, uploads, logins, start-up) on SQLite and PostgreSQL",
    after_help = "Needs target/release/iops (cargo build --release --bin iops), wrk, pgbench \
                  and PostgreSQL at --pg-url. Exits non-zero if any error count is above 0 \
                  or a section could not run."
)]
struct Cli {
    /// `all`: the full run (10,000 reports, 50 MB and 1 GiB uploads, 10 s loads);
    /// `smoke`: a few seconds with small sizes, every path still exercised (CI);
    /// `soak`: a mixed load on PostgreSQL against two servers for `--minutes`, reported
    /// per minute (rates, p99, errors, RSS).
    mode: Mode,
    /// Minutes of the soak (`soak` only).
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Where the soak writes `soak.csv` and `soak.svg` (`soak` only).
    #[arg(long, default_value = "target/soak")]
    out: PathBuf,
    /// Seconds of each view, raw-statement and login load (default: 10 for all, 1 for smoke).
    #[arg(long)]
    duration: Option<u64>,
    /// Public reports to seed (default: 10000 for all, 200 for smoke).
    #[arg(long)]
    reports: Option<usize>,
    /// Size of the generated CSV upload in MB (default: 50 for all, 2 for smoke).
    #[arg(long)]
    upload_mb: Option<u64>,
    /// Size of the generated streamed upload in MiB (default: 1024 for all, 8 for smoke).
    #[arg(long)]
    big_mib: Option<u64>,
    /// Rows of the generated sales CSV the analyses run on (default: 10,000,000 for all,
    /// 20,000 for smoke).
    #[arg(long)]
    analysis_rows: Option<u64>,
    /// Server starts timed per backend; the median is printed (default: 5 for all, 1 for smoke).
    #[arg(long)]
    starts: Option<usize>,
    /// Only this backend (default: both).
    #[arg(long, value_enum)]
    backend: Option<Kind>,
    /// PostgreSQL server; a fresh database is created next to this one and dropped after.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
    /// The `iops` binary to measure.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/iops"))]
    iops_bin: PathBuf,
    /// Run `cargo build --release --bin iops` first.
    #[arg(long)]
    build: bool,
    /// Only these sections, comma-separated (default: every one; `all` and `smoke` only).
    /// Start-up is always measured: the other sections need the server it starts.
    #[arg(long, value_enum, value_delimiter = ',')]
    sections: Vec<Section>,
}

/// The parts of an `all` or `smoke` run after start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    Uploads,
    Analyses,
    Views,
    Events,
    Logins,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    All,
    Smoke,
    Soak,
}

/// The sizes of one run.
#[derive(Clone, Debug)]
struct Plan {
    duration: Duration,
    reports: usize,
    upload_bytes: u64,
    big_bytes: u64,
    analysis_rows: u64,
    starts: usize,
    /// The sections to run; empty: all of them.
    sections: Vec<Section>,
}

impl Plan {
    fn new(cli: &Cli) -> Plan {
        let all = cli.mode == Mode::All;
        Plan {
            duration: Duration::from_secs(cli.duration.unwrap_or(if all { 10 } else { 1 }).max(1)),
            reports: cli.reports.unwrap_or(if all { 10_000 } else { 200 }).max(1),
            upload_bytes: cli.upload_mb.unwrap_or(if all { 50 } else { 2 }).max(1) * 1_000_000,
            big_bytes: cli.big_mib.unwrap_or(if all { 1024 } else { 8 }).max(1) << 20,
            analysis_rows: cli
                .analysis_rows
                .unwrap_or(if all { 10_000_000 } else { 20_000 })
                .max(1_000),
            starts: cli.starts.unwrap_or(if all { 5 } else { 1 }).max(1),
            sections: cli.sections.clone(),
        }
    }

    fn runs(&self, section: Section) -> bool {
        self.sections.is_empty() || self.sections.contains(&section)
    }
}

/// One backend's column of the table.
#[derive(Default)]
struct Column {
    cells: Vec<(String, String)>,
    errors: u64,
    /// Sections that could not run, with the reason.
    unavailable: Vec<String>,
}

impl Column {
    fn set(&mut self, label: impl Into<String>, value: impl Into<String>) {
        self.cells.push((label.into(), value.into()));
    }

    fn not_available(&mut self, labels: &[String], section: &str, reason: &str) {
        let short = uploads::truncate(reason);
        let short: String = short.chars().take(48).collect();
        for label in labels {
            self.set(label.clone(), format!("n/a ({short})"));
        }
        self.unavailable.push(format!("{section}: {reason}"));
    }

    fn errors(&mut self, label: impl Into<String>, errors: u64) {
        self.errors += errors;
        self.set(label, errors.to_string());
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; `Ok(false)` when it ran but saw errors or skipped a section.
async fn run(cli: Cli) -> Result<bool> {
    let plan = Plan::new(&cli);
    if cli.build {
        let status = tokio::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--bin", "iops"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .status()
            .await?;
        if !status.success() {
            return Err("cargo build --release --bin iops failed".into());
        }
    }
    let bin = cli.iops_bin.canonicalize().map_err(|_| {
        format!(
            "{} not found: build it first with `cargo build --release --bin iops` \
             (or pass --build)",
            cli.iops_bin.display()
        )
    })?;
    let backends: Vec<Kind> = match cli.backend {
        Some(kind) => vec![kind],
        None => vec![Kind::Sqlite, Kind::Postgres],
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()?;
    let work = tempfile::Builder::new().prefix("iops-bench-").tempdir()?;

    println!("{}", machine());
    if cli.mode == Mode::Soak {
        println!(
            "soak: {} minute(s) on PostgreSQL, two iops serve processes",
            cli.minutes.max(1)
        );
        return soak::run(
            &bin,
            &cli.pg_url,
            cli.minutes.max(1),
            &http,
            work.path(),
            &cli.out,
        )
        .await;
    }
    println!(
        "mode {:?}: {} public reports, {} s per load, {} MB CSV upload, {} MiB streamed upload, \
         {} rows analysed, {} timed start(s)",
        cli.mode,
        plan.reports,
        plan.duration.as_secs(),
        plan.upload_bytes / 1_000_000,
        plan.big_bytes >> 20,
        plan.analysis_rows,
        plan.starts
    );

    eprintln!("generating upload files…");
    let csv_path = work.path().join("upload.csv");
    let ndjson_path = work.path().join("upload.ndjson");
    let files = {
        let (c, n) = (csv_path.clone(), ndjson_path.clone());
        let bytes = plan.upload_bytes;
        // Without the upload section the files are still made, at the smallest size: the
        // server's upload limit is sized from them.
        let bytes = if plan.runs(Section::Uploads) {
            bytes
        } else {
            1
        };
        tokio::task::spawn_blocking(move || -> Result<_> {
            Ok((
                uploads::generate(Format::Csv, bytes, &c)?,
                uploads::generate(Format::Ndjson, bytes, &n)?,
            ))
        })
        .await??
    };
    eprintln!(
        "generating the analyses' CSV ({} rows) and running DuckDB and pandas on it…",
        plan.analysis_rows
    );
    let sales = work.path().join("sales.csv");
    let reference = if !plan.runs(Section::Analyses) {
        Err("not asked for".to_owned())
    } else {
        let (path, rows) = (sales.clone(), plan.analysis_rows);
        let generated =
            tokio::task::spawn_blocking(move || analyses::generate(rows, &path)).await?;
        match generated {
            Ok(_) => analyses::reference(&sales, work.path())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    let files = UploadFiles {
        csv: (csv_path, files.0),
        ndjson: (ndjson_path, files.1),
        sales: (sales, reference),
    };

    let mut columns = Vec::new();
    for kind in &backends {
        eprintln!("── {kind} ──");
        let dir = work.path().join(format!("{kind:?}").to_lowercase());
        std::fs::create_dir_all(&dir)?;
        let column = match Backend::create(*kind, &dir, &cli.pg_url).await {
            Ok(backend) => {
                let column = measure(&plan, &bin, &http, &backend, &dir, &files, &cli.pg_url).await;
                if let Err(e) = backend.drop_database().await {
                    eprintln!("warning: could not drop the benchmark database: {e}");
                }
                column
            }
            Err(e) => {
                let mut column = Column::default();
                column.not_available(&["database".to_owned()], "database", &e.to_string());
                column
            }
        };
        columns.push((kind.to_string(), column));
    }

    print_table(&columns);
    let mut ok = true;
    for (name, column) in &columns {
        for reason in &column.unavailable {
            println!("n/a on {name}: {reason}");
            ok = false;
        }
        if column.errors > 0 {
            println!("{name}: {} errors", column.errors);
            ok = false;
        }
    }
    Ok(ok)
}

struct UploadFiles {
    csv: (PathBuf, uploads::Generated),
    ndjson: (PathBuf, uploads::Generated),
    /// The analyses' CSV and what DuckDB and pandas measured on it.
    sales: (
        PathBuf,
        std::result::Result<Vec<analyses::Reference>, String>,
    ),
}

/// Every measurement on one backend; a section that cannot run is marked n/a.
async fn measure(
    plan: &Plan,
    bin: &Path,
    http: &reqwest::Client,
    backend: &Backend,
    dir: &Path,
    files: &UploadFiles,
    pg_url: &str,
) -> Column {
    let mut column = Column::default();
    let env = ServerEnv {
        bin: bin.to_owned(),
        database_url: backend.url.clone(),
        data_dir: dir.join("data"),
        // Room for the largest upload of the run (the NDJSON copy is the larger file).
        max_upload_bytes: plan.big_bytes.max(files.ndjson.1.bytes) + (1 << 20),
        log_file: dir.join("server.log"),
        columnar: false,
    };

    let migrate_label = "start-up: migrate an empty database".to_owned();
    match env.run(&["migrate", "upgrade"]).await {
        Ok(elapsed) => column.set(&migrate_label, fmt_duration(elapsed)),
        Err(e) => {
            column.not_available(&[migrate_label], "migrate", &e.to_string());
            return column;
        }
    }

    eprintln!("seeding {} reports…", plan.reports);
    let codes = dir.join("codes.txt");
    if let Err(e) = seed::seed(&backend.url, plan.reports, &codes).await {
        column.not_available(&["seed".to_owned()], "seed", &e.to_string());
        return column;
    }

    let start_label = format!(
        "start-up: exec → 200 /health/ready (median of {})",
        plan.starts
    );
    let mut starts = Samples::default();
    let mut server = None;
    for n in 0..plan.starts {
        match Server::start(&env, http).await {
            Ok((s, elapsed)) => {
                starts.push(elapsed);
                if n + 1 == plan.starts {
                    server = Some(s);
                } else {
                    s.stop().await;
                }
            }
            Err(e) => {
                column.not_available(&[start_label], "start-up", &e.to_string());
                return column;
            }
        }
    }
    column.set(start_label, fmt_opt_duration(starts.percentile(50.0)));
    let Some(server) = server else {
        return column;
    };

    // Uploads first: the allocator keeps what the view and login loads made it take, and
    // the upload's peak must be the upload's own.
    rss(&server, "server RSS: idle after start", &mut column);
    if plan.runs(Section::Uploads) {
        eprintln!("uploads…");
        measure_uploads(plan, http, &env, &server, files, &mut column).await;
    }
    if plan.runs(Section::Analyses) {
        eprintln!("analyses…");
        measure_analyses(http, &env, &server, files, &mut column).await;
    }
    if plan.runs(Section::Uploads) || plan.runs(Section::Analyses) {
        settle_disk().await;
    }
    if plan.runs(Section::Views) {
        eprintln!("views…");
        measure_views(plan, backend, dir, &server, &codes, pg_url, &mut column).await;
        rss(&server, "server RSS: after the view loads", &mut column);
    }
    if plan.runs(Section::Events) {
        eprintln!("views beside event ingest…");
        measure_events(plan, http, dir, &server, &codes, &mut column).await;
    }
    if plan.runs(Section::Logins) {
        eprintln!("logins…");
        measure_logins(plan, http, &server, &mut column).await;
        rss(&server, "server RSS: after the logins", &mut column);
    }
    server.stop().await;
    column
}

/// Writes back what the uploads and the analyses left in the page cache (over a GiB in
/// `all`) before the latency sections: views measured while it was flushed showed p99s of
/// 100-160 ms that were the disk's, against ~3 ms in a views-only run of the same hour.
async fn settle_disk() {
    match tokio::process::Command::new("sync").status().await {
        Ok(status) if status.success() => {}
        other => {
            eprintln!("warning: `sync` failed ({other:?}): view tails may include disk writeback")
        }
    }
}

/// Views at 16 connections alone, then beside [`events::EVENT_CLIENTS`] clients posting
/// product events: p99 side by side.
async fn measure_events(
    plan: &Plan,
    http: &reqwest::Client,
    dir: &Path,
    server: &Server,
    codes: &Path,
    column: &mut Column,
) {
    let labels = [
        "events: views c=16 p50 / p99 alone".to_owned(),
        format!(
            "events: views c=16 p50 / p99 beside {} clients posting {} events",
            events::EVENT_CLIENTS,
            events::EVENTS
        ),
        "events: views p99 beside / alone".to_owned(),
        "events: accepted (dropped)".to_owned(),
        "events: errors (views + posts)".to_owned(),
    ];
    let measured = match views::write_wrk_script(dir) {
        Ok(script) => events::measure(http, &server.base, &script, codes, 16, plan.duration).await,
        Err(e) => Err(e),
    };
    match measured {
        Ok(load) => {
            column.set(
                &labels[0],
                format!(
                    "{} / {}",
                    fmt_duration(load.alone.p50),
                    fmt_duration(load.alone.p99)
                ),
            );
            column.set(
                &labels[1],
                format!(
                    "{} / {}",
                    fmt_duration(load.loaded.p50),
                    fmt_duration(load.loaded.p99)
                ),
            );
            column.set(
                &labels[2],
                format!(
                    "{:.2}",
                    load.loaded.p99.as_secs_f64() / load.alone.p99.as_secs_f64().max(1e-9)
                ),
            );
            column.set(&labels[3], format!("{} ({})", load.accepted, load.dropped));
            column.errors(
                &labels[4],
                load.alone.errors + load.loaded.errors + load.errors,
            );
        }
        Err(e) => column.not_available(&labels, "events", &e.to_string()),
    }
}

async fn measure_views(
    plan: &Plan,
    backend: &Backend,
    dir: &Path,
    server: &Server,
    codes: &Path,
    pg_url: &str,
    column: &mut Column,
) {
    let script = match views::write_wrk_script(dir) {
        Ok(script) => script,
        Err(e) => {
            column.not_available(&["views".to_owned()], "views", &e.to_string());
            return;
        }
    };
    for connections in VIEW_CONNECTIONS {
        let labels = [
            format!("views c={connections}: API req/s"),
            format!("views c={connections}: API p50 / p99"),
            format!("views c={connections}: API errors"),
            format!("views c={connections}: raw statement/s"),
            format!("views c={connections}: raw p50 / p99"),
            format!("views c={connections}: API / raw"),
            format!("views c={connections}: API views per statement"),
        ];
        // Alternating rounds (API, raw, API, raw, ...) instead of one long run of each:
        // load from outside the benchmark that comes and goes then weighs on both sides
        // alike, and the ratio stays meaningful on a shared machine.
        let rounds = if plan.duration >= Duration::from_secs(VIEW_ROUNDS as u64) {
            VIEW_ROUNDS
        } else {
            1
        };
        let round = Duration::from_secs((plan.duration.as_secs() / rounds as u64).max(1));
        let mut api_runs = Vec::with_capacity(rounds);
        let mut raw_runs = Vec::with_capacity(rounds);
        let mut failure: [Option<String>; 2] = [None, None];
        // A second at the same concurrency first, not measured: the server opens its
        // hot-path connections on first use (on PostgreSQL each a TLS handshake), and
        // pgbench's rate leaves out its own connection time ("without initial connection
        // time"); both sides are then timed warm.
        let _ = views::api(&server.base, &script, codes, connections, WARM_UP).await;
        let mut counting = (0, 0);
        for _ in 0..rounds {
            let before = views::counting(&server.base).await;
            match views::api(&server.base, &script, codes, connections, round).await {
                Ok(run) => api_runs.push(run),
                Err(e) => failure[0] = Some(e.to_string()),
            }
            if let (Ok(before), Ok(after)) = (before, views::counting(&server.base).await) {
                counting.0 += after.0 - before.0;
                counting.1 += after.1 - before.1;
            }
            let raw = match backend.kind {
                Kind::Postgres => {
                    let database = backend.pg_database().unwrap_or_default();
                    views::raw_postgres(pg_url, database, dir, plan.reports, connections, round)
                        .await
                }
                Kind::Sqlite => {
                    views::raw_sqlite(&backend.url, plan.reports, connections, round).await
                }
            };
            match raw {
                Ok(run) => raw_runs.push(run),
                Err(e) => failure[1] = Some(e.to_string()),
            }
        }
        let api_rate = match &failure[0] {
            None => {
                let rate = mean(api_runs.iter().map(|r| r.rate));
                column.set(&labels[0], format!("{rate:.0}"));
                column.set(
                    &labels[1],
                    rounds_latency(api_runs.iter().map(|r| (Some(r.p50), Some(r.p99)))),
                );
                column.errors(&labels[2], api_runs.iter().map(|r| r.errors).sum());
                Some(rate)
            }
            Some(e) => {
                column.not_available(&labels[..3], "views", e);
                None
            }
        };
        match &failure[1] {
            None => {
                let rate = mean(raw_runs.iter().map(|r| r.rate));
                let errors: u64 = raw_runs.iter().map(|r| r.errors).sum();
                let suffix = if errors > 0 {
                    format!(" ({errors} errors)")
                } else {
                    String::new()
                };
                column.errors += errors;
                column.set(&labels[3], format!("{rate:.0}{suffix}"));
                column.set(
                    &labels[4],
                    rounds_latency(raw_runs.iter().map(|r| (r.p50, r.p99))),
                );
                let ratio = api_rate.map_or_else(|| "-".to_owned(), |api| fmt_ratio(api, rate));
                column.set(&labels[5], ratio);
            }
            Some(e) => column.not_available(&labels[3..6], "raw statement", e),
        }
        let shared = match counting {
            (0, _) => "-".to_owned(),
            (statements, views) => format!("{:.2}", views as f64 / statements as f64),
        };
        column.set(&labels[6], shared);
    }
}

/// "p50 / p99" of alternating rounds: the median round's p50, the worst round's p99
/// ("-" for a side without samples).
fn rounds_latency(rounds: impl Iterator<Item = (Option<Duration>, Option<Duration>)>) -> String {
    let (mut p50s, p99s): (Vec<_>, Vec<_>) = rounds.unzip();
    p50s.retain(Option::is_some);
    p50s.sort();
    format!(
        "{} / {}",
        fmt_opt_duration(p50s.get(p50s.len() / 2).copied().flatten()),
        fmt_opt_duration(p99s.into_iter().flatten().max())
    )
}

fn mean_duration(durations: impl Iterator<Item = Duration>) -> Duration {
    let (sum, n) = durations.fold((Duration::ZERO, 0u32), |(sum, n), d| (sum + d, n + 1));
    if n == 0 { Duration::ZERO } else { sum / n }
}

/// The mean of equally long runs' rates: their total work over their total time.
fn mean(rates: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = rates.fold((0.0, 0usize), |(sum, n), r| (sum + r, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

async fn measure_logins(plan: &Plan, http: &reqwest::Client, server: &Server, column: &mut Column) {
    let labels = [
        format!("logins c={LOGIN_CONCURRENCY}: p50 / p99"),
        format!("logins c={LOGIN_CONCURRENCY}: logins/s"),
        "logins: /health/live p99 meanwhile".to_owned(),
        "logins: errors".to_owned(),
    ];
    let result = async {
        logins::register(http, server, LOGIN_EMAIL).await?;
        logins::run(http, server, LOGIN_EMAIL, LOGIN_CONCURRENCY, plan.duration).await
    }
    .await;
    match result {
        Ok(r) => {
            column.set(
                &labels[0],
                format!(
                    "{} / {}",
                    fmt_opt_duration(r.logins.percentile(50.0)),
                    fmt_opt_duration(r.logins.percentile(99.0))
                ),
            );
            column.set(
                &labels[1],
                format!("{:.1}", r.logins.len() as f64 / r.elapsed.as_secs_f64()),
            );
            column.set(&labels[2], fmt_opt_duration(r.live.percentile(99.0)));
            column.errors(&labels[3], r.errors);
        }
        Err(e) => column.not_available(&labels, "logins", &e.to_string()),
    }
}

async fn measure_uploads(
    plan: &Plan,
    http: &reqwest::Client,
    env: &ServerEnv,
    server: &Server,
    files: &UploadFiles,
    column: &mut Column,
) {
    let token = async {
        logins::register(http, server, UPLOAD_EMAIL).await?;
        env.run(&["users", "set-tier", UPLOAD_EMAIL, "pro"]).await?;
        logins::login(http, server, UPLOAD_EMAIL).await
    }
    .await;
    let mb = plan.upload_bytes / 1_000_000;
    for (format, (path, generated)) in [(Format::Csv, &files.csv), (Format::Ndjson, &files.ndjson)]
    {
        let (name, parser) = match format {
            Format::Csv => ("CSV", "csv crate"),
            Format::Ndjson => ("NDJSON", "serde_json"),
        };
        let labels = [
            format!("upload {name} ({mb} MB of {name} rows): API MB/s"),
            format!("upload {name}: {parser} alone MB/s"),
            format!("upload {name}: API / parser"),
            format!("upload {name}: server peak RSS"),
            format!("upload {name}: CPU per upload, server / bench"),
            format!("upload {name}: CPU-bound ceiling / parser"),
        ];
        let token = match &token {
            Ok(token) => token,
            Err(e) => {
                column.not_available(&labels, "uploads", &e.to_string());
                continue;
            }
        };
        // The parser alone and the API upload alternate, run by run, so that load from
        // outside the benchmark weighs on both sides alike (as in the views' rounds), and
        // each side's median is taken: one run of either is short enough (under 0.1 s) for
        // a busy moment of the machine to move it by a tenth. The peak RSS is the highest
        // of the uploads'.
        let mut parses = Vec::with_capacity(UPLOAD_RUNS);
        let mut runs = Vec::with_capacity(UPLOAD_RUNS);
        let mut failure: Option<String> = None;
        for _ in 0..UPLOAD_RUNS {
            let parse_path = path.clone();
            let parse: Result<_> = async {
                tokio::task::spawn_blocking(move || uploads::parse_only(format, &parse_path))
                    .await?
            }
            .await;
            match parse {
                Ok((rows, elapsed)) if rows == generated.rows => parses.push(elapsed),
                Ok((rows, _)) => {
                    failure = Some(format!("parser counted {rows} rows of {}", generated.rows));
                    break;
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
            match uploads::upload_file(http, server, token, format, path, generated).await {
                Ok(upload) => runs.push(upload),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(reason) = failure {
            column.not_available(&labels, "uploads", &reason);
            continue;
        }
        parses.sort_unstable();
        let parse = parses[UPLOAD_RUNS / 2];
        let peak_rss = runs.iter().map(|u| u.peak_rss).max().unwrap_or(0);
        let cpu = (
            mean_duration(runs.iter().map(|u| u.server_cpu)),
            mean_duration(runs.iter().map(|u| u.client_cpu)),
        );
        runs.sort_by_key(|u| u.elapsed);
        let upload = runs.swap_remove(UPLOAD_RUNS / 2);
        let api = mb_per_s(upload.bytes, upload.elapsed);
        let alone = mb_per_s(generated.bytes, parse);
        column.set(&labels[0], format!("{api:.1}"));
        column.set(&labels[1], format!("{alone:.1}"));
        column.set(&labels[2], fmt_ratio(api, alone));
        column.set(&labels[3], fmt_bytes(peak_rss));
        column.set(
            &labels[4],
            format!("{} / {}", fmt_duration(cpu.0), fmt_duration(cpu.1)),
        );
        // However well server and client overlapped, the upload cannot be faster than
        // their CPU time shared out over this machine's cores: where the API is close to
        // this ceiling, the cores decide, not the code's waiting.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let floor = (cpu.0 + cpu.1) / cores as u32;
        column.set(&labels[5], fmt_ratio(mb_per_s(upload.bytes, floor), alone));
    }

    let mib = plan.big_bytes >> 20;
    let labels = [
        format!("upload CSV {mib} MiB streamed: API MB/s"),
        format!("upload CSV {mib} MiB streamed: server peak RSS"),
    ];
    let result = match &token {
        Ok(token) => uploads::upload_generated(http, server, token, plan.big_bytes).await,
        Err(e) => Err(e.to_string().into()),
    };
    match result {
        Ok(upload) => {
            column.set(
                &labels[0],
                format!("{:.1}", mb_per_s(upload.bytes, upload.elapsed)),
            );
            column.set(&labels[1], fmt_bytes(upload.peak_rss));
        }
        Err(e) => column.not_available(&labels, "streamed upload", &e.to_string()),
    }
}

async fn measure_analyses(
    http: &reqwest::Client,
    env: &ServerEnv,
    server: &Server,
    files: &UploadFiles,
    column: &mut Column,
) {
    let mut labels = Vec::new();
    for (name, _) in analyses::QUERIES {
        labels.push(format!("analysis {name}: API run on the CSV (median of 3)"));
        labels.push(format!(
            "analysis {name}: API run on the columnar copy (median of 3)"
        ));
        labels.push(format!("analysis {name}: DuckDB on the CSV (median of 3)"));
        labels.push(format!("analysis {name}: API / DuckDB time (CSV)"));
        labels.push(format!(
            "analysis {name}: API / DuckDB time (columnar copy)"
        ));
        labels.push(format!("analysis {name}: pandas / API time (CSV)"));
        labels.push(format!(
            "analysis {name}: pandas / API time (columnar copy)"
        ));
    }
    let tail = [
        "analyses: server peak RSS (CSV)".to_owned(),
        "analyses: /health/live p99 while two run".to_owned(),
        "analyses: errors".to_owned(),
        "analyses: columnar copy written in (from the first run)".to_owned(),
        "analyses: columnar copy size / CSV size".to_owned(),
        "analyses: server peak RSS (columnar copy)".to_owned(),
    ];
    let reference = match &files.sales.1 {
        Ok(reference) => reference,
        Err(e) => {
            column.not_available(&[labels, tail.to_vec()].concat(), "analyses", e);
            return;
        }
    };
    let measured = async {
        logins::register(http, server, ANALYSES_EMAIL).await?;
        env.run(&["users", "set-tier", ANALYSES_EMAIL, "pro"])
            .await?;
        let token = logins::login(http, server, ANALYSES_EMAIL).await?;
        analyses::measure(http, env, server, &token, &files.sales.0, reference).await
    }
    .await;
    match measured {
        Ok(m) => {
            let runs = m.runs.iter().zip(&m.columnar.runs).zip(reference);
            for (i, ((run, columnar), reference)) in runs.enumerate() {
                let (api, duckdb) = (run.as_secs_f64(), reference.duckdb.as_secs_f64());
                let at = |k: usize| &labels[i * 7 + k];
                column.set(at(0), fmt_duration(*run));
                column.set(at(1), fmt_duration(*columnar));
                column.set(at(2), fmt_duration(reference.duckdb));
                column.set(at(3), fmt_ratio(api, duckdb));
                column.set(at(4), fmt_ratio(columnar.as_secs_f64(), duckdb));
                let pandas = reference.pandas.as_secs_f64();
                column.set(at(5), format!("{:.2}×", pandas / api.max(1e-9)));
                column.set(
                    at(6),
                    format!("{:.2}×", pandas / columnar.as_secs_f64().max(1e-9)),
                );
            }
            column.set(&tail[0], fmt_bytes(m.peak_rss));
            column.set(&tail[1], fmt_opt_duration(m.live.percentile(99.0)));
            column.errors(&tail[2], m.errors);
            column.set(&tail[3], fmt_duration(m.columnar.written_in));
            column.set(
                &tail[4],
                format!(
                    "{} / {}",
                    fmt_bytes(m.columnar.bytes),
                    fmt_bytes(std::fs::metadata(&files.sales.0).map_or(0, |f| f.len()))
                ),
            );
            column.set(&tail[5], fmt_bytes(m.columnar.peak_rss));
        }
        Err(e) => column.not_available(
            &[labels, tail.to_vec()].concat(),
            "analyses",
            &e.to_string(),
        ),
    }
}

fn rss(server: &Server, label: &str, column: &mut Column) {
    match server.rss_bytes() {
        Ok(bytes) => column.set(label, fmt_bytes(bytes)),
        Err(e) => column.not_available(&[label.to_owned()], "RSS", &e.to_string()),
    }
}

fn fmt_bytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn print_table(columns: &[(String, Column)]) {
    let mut labels: Vec<&str> = Vec::new();
    for (_, column) in columns {
        for (label, _) in &column.cells {
            if !labels.contains(&label.as_str()) {
                labels.push(label);
            }
        }
    }
    let cell = |column: &Column, label: &str| -> String {
        column
            .cells
            .iter()
            .find(|(l, _)| l == label)
            .map_or_else(|| "-".to_owned(), |(_, v)| v.clone())
    };
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = columns
        .iter()
        .map(|(name, column)| {
            labels
                .iter()
                .map(|l| cell(column, l).chars().count())
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut header = format!("| {:label_width$} |", "measure");
    let mut rule = format!("|{}|", "-".repeat(label_width + 2));
    for ((name, _), width) in columns.iter().zip(&widths) {
        header.push_str(&format!(" {name:>width$} |"));
        rule.push_str(&format!("{}:|", "-".repeat(width + 1)));
    }
    println!();
    println!("{header}");
    println!("{rule}");
    for label in labels {
        let mut line = format!("| {label:label_width$} |");
        for ((_, column), width) in columns.iter().zip(&widths) {
            line.push_str(&format!(" {:>width$} |", cell(column, label)));
        }
        println!("{line}");
    }
    println!();
}

/// The machine the numbers come from.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    // Other work on the box skews every absolute number; say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    format!("machine: {cpus} CPU(s), {model}; load average {load} at start")
}
