//! `bench soak --minutes N`: a mixed load for N minutes on PostgreSQL against two
//! `iops serve` processes sharing one database (as a deployment runs them): public report
//! views, dataset uploads (each deleted again), logins, analysis edits with their
//! chart, comments and activity feed, and analysis runs on the query engine. Per minute it reports each kind's rate and p99, the
//! errors, and each server's RSS; the run fails on any error and on RSS that grows after
//! the warm-up (the first two minutes). It also writes the per-minute numbers as CSV and
//! draws them as SVG with the workspace's own `plot` crate.
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};

use crate::Result;
use crate::backend::{Backend, Kind};
use crate::server::{Server, ServerEnv};
use crate::stats::{Samples, fmt_opt_duration};
use crate::{logins, seed};

/// Public reports seeded for the views.
const REPORTS: usize = 2_000;
/// Clients of each kind (views are most of real traffic; logins are expensive by design).
const VIEW_CLIENTS: usize = 16;
const LOGIN_CLIENTS: usize = 2;
const UPLOAD_CLIENTS: usize = 1;
const EDIT_CLIENTS: usize = 2;
const RUN_CLIENTS: usize = 1;
/// Rows of each uploaded CSV (about 100 KB).
const UPLOAD_ROWS: usize = 2_000;
/// Minutes before RSS is expected to be flat.
const WARM_UP_MINUTES: usize = 2;
/// RSS growth after the warm-up that fails the run.
const RSS_GROWTH_LIMIT: f64 = 0.10;
const SOAK_EMAIL: &str = "bench-soak@example.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    View,
    Upload,
    Login,
    Edit,
    Run,
}

const OPS: [Op; 5] = [Op::View, Op::Upload, Op::Login, Op::Edit, Op::Run];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::View => "views",
            Op::Upload => "uploads",
            Op::Login => "logins",
            Op::Edit => "edits",
            Op::Run => "runs",
        }
    }
}

/// What one minute saw.
#[derive(Default)]
struct Minute {
    latencies: [Samples; OPS.len()],
    errors: u64,
    /// Each server's RSS, sampled every second: (sum, samples, max), bytes.
    rss: [(u64, u64, u64); 2],
}

impl Minute {
    /// Mean RSS of server `i` over the minute, bytes.
    fn rss_mean(&self, i: usize) -> u64 {
        let (sum, n, _) = self.rss[i];
        sum / n.max(1)
    }
}

struct Recorder {
    started: Instant,
    minutes: Mutex<Vec<Minute>>,
    first_error: Mutex<Option<String>>,
}

impl Recorder {
    fn minute_of(&self, at: Instant) -> usize {
        (at.duration_since(self.started).as_secs() / 60) as usize
    }

    fn record_rss(&self, at: Instant, rss: [u64; 2]) {
        let minute = self.minute_of(at);
        let mut minutes = self.minutes.lock().expect("recorder lock");
        if minutes.len() <= minute {
            minutes.resize_with(minute + 1, Minute::default);
        }
        for (i, bytes) in rss.into_iter().enumerate() {
            let (sum, n, max) = &mut minutes[minute].rss[i];
            *sum += bytes;
            *n += 1;
            *max = (*max).max(bytes);
        }
    }

    fn record(&self, op: Op, began: Instant, outcome: Result<()>) {
        let minute = self.minute_of(began);
        let mut minutes = self.minutes.lock().expect("recorder lock");
        if minutes.len() <= minute {
            minutes.resize_with(minute + 1, Minute::default);
        }
        match outcome {
            Ok(()) => minutes[minute].latencies[op as usize].push(began.elapsed()),
            Err(e) => {
                minutes[minute].errors += 1;
                let mut first = self.first_error.lock().expect("error lock");
                if first.is_none() {
                    *first = Some(format!("{}: {e}", op.name()));
                }
            }
        }
    }
}

/// Runs the soak; `Ok(false)` when it saw errors or RSS growth.
pub async fn run(
    bin: &Path,
    pg_url: &str,
    minutes: u64,
    http: &reqwest::Client,
    work: &Path,
    out: &Path,
) -> Result<bool> {
    let backend = Backend::create(Kind::Postgres, work, pg_url).await?;
    let result = soak(bin, &backend, minutes, http, work, out).await;
    if let Err(e) = backend.drop_database().await {
        eprintln!("warning: could not drop the soak database: {e}");
    }
    result
}

async fn soak(
    bin: &Path,
    backend: &Backend,
    minutes: u64,
    http: &reqwest::Client,
    work: &Path,
    out: &Path,
) -> Result<bool> {
    let env = ServerEnv {
        bin: bin.to_owned(),
        database_url: backend.url.clone(),
        data_dir: work.join("data"),
        max_upload_bytes: 1 << 20,
        log_file: work.join("soak-server.log"),
        columnar: false,
    };
    env.run(&["migrate", "upgrade"]).await?;
    let autovacuum = autovacuum(&backend.url).await?;
    eprintln!("seeding {REPORTS} reports…");
    let codes = work.join("codes.txt");
    seed::seed(&backend.url, REPORTS, &codes).await?;
    // Two servers on one database and one dataset folder, as several processes run.
    let (first, _) = Server::start(&env, http).await?;
    let (second, _) = Server::start(&env, http).await?;
    let servers = Arc::new([first, second]);

    logins::register(http, &servers[0], SOAK_EMAIL).await?;
    env.run(&["users", "set-tier", SOAK_EMAIL, "pro"]).await?;
    let token = logins::login(http, &servers[0], SOAK_EMAIL).await?;
    let (analysis, chart) = edit_fixture(http, &servers[0], &token).await?;
    let csv = Arc::new(upload_csv());
    let run_analysis = run_fixture(http, &servers[0], &token, &csv).await?;

    let recorder = Arc::new(Recorder {
        started: Instant::now(),
        minutes: Mutex::new(Vec::new()),
        first_error: Mutex::new(None),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let clients = [
        (Op::View, VIEW_CLIENTS),
        (Op::Upload, UPLOAD_CLIENTS),
        (Op::Login, LOGIN_CLIENTS),
        (Op::Edit, EDIT_CLIENTS),
        (Op::Run, RUN_CLIENTS),
    ];
    for (op, count) in clients {
        for client in 0..count {
            let (http, servers, recorder, stop) = (
                http.clone(),
                servers.clone(),
                recorder.clone(),
                stop.clone(),
            );
            let (token, analysis, chart, csv, run_analysis) = (
                token.clone(),
                analysis.clone(),
                chart.clone(),
                csv.clone(),
                run_analysis.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut n = client;
                while !stop.load(Ordering::Relaxed) {
                    // Each client alternates between the two servers.
                    let server = &servers[n % 2];
                    n += 1;
                    let began = Instant::now();
                    let outcome = match op {
                        Op::View => view(&http, server).await,
                        Op::Upload => upload(&http, server, &token, &csv).await,
                        Op::Login => logins::login(&http, server, SOAK_EMAIL).await.map(|_| ()),
                        Op::Edit => edit(&http, server, &token, &analysis, &chart, n).await,
                        Op::Run => run_once(&http, server, &token, &run_analysis).await,
                    };
                    recorder.record(op, began, outcome);
                }
            }));
        }
    }

    // RSS every second: one reading a minute would mostly show where the allocator
    // happened to be; the minute's mean and peak show a trend.
    let end = recorder.started + Duration::from_secs(minutes * 60);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut reported = 0;
    while Instant::now() < end {
        tick.tick().await;
        let now = Instant::now();
        if now >= end {
            break;
        }
        let rss = [
            servers[0].rss_bytes().unwrap_or(0),
            servers[1].rss_bytes().unwrap_or(0),
        ];
        recorder.record_rss(now, rss);
        let done = recorder.minute_of(now);
        if done > reported {
            reported = done;
            eprintln!("minute {done} of {minutes} done");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let servers = Arc::try_unwrap(servers).map_err(|_| "servers still shared")?;
    for server in servers {
        server.stop().await;
    }

    let minutes_seen = std::mem::take(&mut *recorder.minutes.lock().expect("recorder lock"));
    // Requests that began in the last instant of the run belong to no whole minute.
    let minutes_seen: Vec<Minute> = minutes_seen.into_iter().take(minutes as usize).collect();
    let ok = report(&minutes_seen, out)?;
    println!("PostgreSQL autovacuum: {autovacuum}");
    if autovacuum != "on" {
        // Without it no table is analysed or vacuumed, and the rates of the statements
        // whose plans need statistics fall minute after minute (docs/performance.md,
        // "what slowed the soak"): the server is not what such a run measures.
        println!(
            "warning: autovacuum is off on this PostgreSQL; rates that fall over the minutes are its doing"
        );
    }
    if let Some(e) = recorder.first_error.lock().expect("error lock").as_ref() {
        println!("first error: {e}");
    }
    Ok(ok)
}

/// An analysis with results and a chart of the soak user: what the edit clients change.
/// PostgreSQL's `autovacuum` setting, which decides whether a long run keeps its plans.
async fn autovacuum(url: &str) -> Result<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = sea_orm::Database::connect(url).await?;
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(backend, "SHOW autovacuum"))
        .await?
        .ok_or("SHOW autovacuum returned nothing")?;
    let value: String = row.try_get_by_index(0)?;
    db.close().await?;
    Ok(value)
}

async fn edit_fixture(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
) -> Result<(String, String)> {
    let analysis: Value = checked(
        http.post(server.url("/api/v1/analyses"))
            .bearer_auth(token)
            .json(&json!({"name": "Soak"})),
        201,
    )
    .await?;
    let id = analysis["id"]
        .as_str()
        .ok_or("analysis without id")?
        .to_owned();
    checked(
        http.patch(server.url(&format!("/api/v1/analyses/{id}")))
            .bearer_auth(token)
            .json(&json!({"results": results(0)})),
        200,
    )
    .await?;
    let chart: Value = checked(
        http.post(server.url(&format!("/api/v1/analyses/{id}/charts")))
            .bearer_auth(token)
            .json(&json!({"name": "Sales", "chart_type": "bar", "config": {"x": "region", "y": ["sales"]}})),
        201,
    )
    .await?;
    let chart = chart["id"].as_str().ok_or("chart without id")?.to_owned();
    Ok((id, chart))
}

fn results(n: usize) -> Value {
    json!({
        "columns": [{"name": "region", "type": "string"}, {"name": "sales", "type": "float"}],
        "rows": [["north", 10.0 + n as f64], ["south", 7.5], ["east", 3.25]]
    })
}

fn upload_csv() -> Vec<u8> {
    let mut csv = b"id,region,amount,note\n".to_vec();
    for i in 0..UPLOAD_ROWS {
        csv.extend_from_slice(
            format!("{i},region-{},{}.25,\"note, {i}\"\n", i % 7, i * 3).as_bytes(),
        );
    }
    csv
}

/// Sends `request`, requires `status`, and returns the JSON answer (or `null`).
async fn checked(request: reqwest::RequestBuilder, status: u16) -> Result<Value> {
    let response = request.send().await?;
    let got = response.status().as_u16();
    let text = response.text().await?;
    if got != status {
        return Err(format!(
            "expected {status}, got {got}: {}",
            crate::uploads::truncate(&text)
        )
        .into());
    }
    Ok(if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)?
    })
}

async fn view(http: &reqwest::Client, server: &Server) -> Result<()> {
    let i = rand::rng().random_range(1..=REPORTS);
    let response = http
        .get(server.url(&format!("/r/{}", seed::short_code(i))))
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await?;
    let status = response.status();
    response.bytes().await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("view answered {status}").into());
    }
    Ok(())
}

async fn upload(http: &reqwest::Client, server: &Server, token: &str, csv: &[u8]) -> Result<()> {
    let part = reqwest::multipart::Part::bytes(csv.to_vec())
        .file_name("soak.csv")
        .mime_str("text/csv")?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let dataset = checked(
        http.post(server.url("/api/v1/datasets"))
            .bearer_auth(token)
            .multipart(form),
        201,
    )
    .await?;
    if dataset["row_count"] != UPLOAD_ROWS {
        return Err(format!(
            "uploaded {} rows, expected {UPLOAD_ROWS}",
            dataset["row_count"]
        )
        .into());
    }
    let id = dataset["id"].as_str().ok_or("dataset without id")?;
    // Deleted again at once: the disk stays small, and the delete path is soaked too.
    checked(
        http.delete(server.url(&format!("/api/v1/datasets/{id}")))
            .bearer_auth(token),
        204,
    )
    .await?;
    Ok(())
}

/// Regions of [`upload_csv`], the rows of [`RUN_SQL`]'s answer.
const REGIONS: usize = 7;
const RUN_SQL: &str = "SELECT region, COUNT(*) AS n, SUM(amount) AS total \
                       FROM data GROUP BY region ORDER BY region";

/// A dataset (kept) and an analysis of it that the run clients run.
async fn run_fixture(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    csv: &[u8],
) -> Result<String> {
    let part = reqwest::multipart::Part::bytes(csv.to_vec())
        .file_name("runs.csv")
        .mime_str("text/csv")?;
    let dataset = checked(
        http.post(server.url("/api/v1/datasets"))
            .bearer_auth(token)
            .multipart(reqwest::multipart::Form::new().part("file", part)),
        201,
    )
    .await?;
    let analysis = checked(
        http.post(server.url("/api/v1/analyses"))
            .bearer_auth(token)
            .json(&json!({"name": "Soak runs", "dataset_id": dataset["id"],
                          "config": {"query": {"sql": RUN_SQL}}})),
        201,
    )
    .await?;
    analysis["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "analysis without id".into())
}

/// One run: computed by the engine, its answer checked.
async fn run_once(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    analysis: &str,
) -> Result<()> {
    let ran = checked(
        http.post(server.url(&format!("/api/v1/analyses/{analysis}/run")))
            .bearer_auth(token),
        200,
    )
    .await?;
    if ran["results"]["row_count"] != REGIONS {
        return Err(format!("a run answered {}", ran["results"]).into());
    }
    Ok(())
}

/// New results, the chart drawn from them, a comment, and the feed: one edit.
async fn edit(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    analysis: &str,
    chart: &str,
    n: usize,
) -> Result<()> {
    checked(
        http.patch(server.url(&format!("/api/v1/analyses/{analysis}")))
            .bearer_auth(token)
            .json(&json!({"results": results(n)})),
        200,
    )
    .await?;
    let svg = http
        .get(server.url(&format!("/api/v1/charts/{chart}/image.svg")))
        .bearer_auth(token)
        .send()
        .await?;
    if svg.status() != reqwest::StatusCode::OK {
        return Err(format!("chart image answered {}", svg.status()).into());
    }
    svg.bytes().await?;
    checked(
        http.post(server.url(&format!("/api/v1/charts/{chart}/comments")))
            .bearer_auth(token)
            .json(&json!({"body": format!("edit {n}")})),
        201,
    )
    .await?;
    checked(
        http.get(server.url("/api/v1/activity?limit=20"))
            .bearer_auth(token),
        200,
    )
    .await?;
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Prints the per-minute table, writes `soak.csv` and `soak.svg` into `out`, and judges
/// errors and RSS; `true` when both are fine.
fn report(minutes: &[Minute], out: &Path) -> Result<bool> {
    std::fs::create_dir_all(out)?;
    println!(
        "{:>6} {:>9} {:>10} {:>9} {:>10} {:>9} {:>10} {:>9} {:>10} {:>9} {:>10} {:>6} {:>14} {:>14}",
        "minute",
        "views/s",
        "views p99",
        "uploads/s",
        "upl. p99",
        "logins/s",
        "login p99",
        "edits/s",
        "edit p99",
        "runs/s",
        "run p99",
        "errors",
        "RSS A mean/max",
        "RSS B mean/max"
    );
    let mut csv = String::from(
        "minute,views_per_s,views_p99_ms,uploads_per_s,uploads_p99_ms,logins_per_s,logins_p99_ms,edits_per_s,edits_p99_ms,runs_per_s,runs_p99_ms,errors,rss_a_mean_mib,rss_a_max_mib,rss_b_mean_mib,rss_b_max_mib\n",
    );
    let mut errors = 0;
    for (i, minute) in minutes.iter().enumerate() {
        let mut cells = Vec::new();
        let mut csv_cells = vec![(i + 1).to_string()];
        for op in OPS {
            let samples = &minute.latencies[op as usize];
            let rate = samples.len() as f64 / 60.0;
            let p99 = samples.percentile(99.0);
            cells.push(format!("{rate:>9.1} {:>10}", fmt_opt_duration(p99)));
            csv_cells.push(format!("{rate:.2}"));
            csv_cells.push(p99.map_or(String::new(), |d| format!("{:.2}", d.as_secs_f64() * 1e3)));
        }
        errors += minute.errors;
        let rss = |i: usize| (mib(minute.rss_mean(i)), mib(minute.rss[i].2));
        let ((a_mean, a_max), (b_mean, b_max)) = (rss(0), rss(1));
        println!(
            "{:>6} {} {:>6} {:>6.1} / {:>5.1} {:>6.1} / {:>5.1}",
            i + 1,
            cells.join(" "),
            minute.errors,
            a_mean,
            a_max,
            b_mean,
            b_max
        );
        csv_cells.push(minute.errors.to_string());
        for value in [a_mean, a_max, b_mean, b_max] {
            csv_cells.push(format!("{value:.1}"));
        }
        csv.push_str(&csv_cells.join(","));
        csv.push('\n');
    }
    std::fs::write(out.join("soak.csv"), csv)?;
    std::fs::write(out.join("soak.svg"), draw(minutes))?;
    println!("per-minute numbers: {}", out.join("soak.csv").display());
    println!("graph: {}", out.join("soak.svg").display());

    let mut ok = errors == 0;
    println!("errors: {errors}");
    // Flat: the mean RSS of the last third of the minutes after the warm-up is within
    // 10 % of the first third's. (Single readings swing by tens of MiB as the allocator
    // takes and returns memory; a leak shows as a rising mean.)
    let settled = minutes.get(WARM_UP_MINUTES..).unwrap_or(&[]);
    if settled.len() >= 3 {
        let third = settled.len() / 3;
        for (server, name) in ["A", "B"].iter().enumerate() {
            let mean = |ms: &[Minute]| {
                ms.iter().map(|m| m.rss_mean(server) as f64).sum::<f64>() / ms.len() as f64
            };
            let early = mean(&settled[..third]);
            let late = mean(&settled[settled.len() - third..]);
            let growth = (late - early) / early.max(1.0);
            println!(
                "server {name} RSS: mean {:.1} MiB in minutes {}-{}, {:.1} MiB in minutes {}-{} ({:+.1} %)",
                early / (1 << 20) as f64,
                WARM_UP_MINUTES + 1,
                WARM_UP_MINUTES + third,
                late / (1 << 20) as f64,
                minutes.len() - third + 1,
                minutes.len(),
                growth * 100.0
            );
            if growth > RSS_GROWTH_LIMIT {
                println!(
                    "server {name}: RSS grew more than {:.0} % after the warm-up",
                    RSS_GROWTH_LIMIT * 100.0
                );
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// Views per second and each server's RSS per minute, as a line chart drawn by the
/// workspace's `plot` crate.
fn draw(minutes: &[Minute]) -> String {
    let rows: Vec<Vec<Value>> = minutes
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            let views = m.latencies[Op::View as usize].len() as f64 / 60.0;
            [
                vec![json!(i + 1), json!(views / 10.0), json!("views/s ÷ 10")],
                vec![
                    json!(i + 1),
                    json!(mib(m.rss_mean(0))),
                    json!("RSS A, mean (MiB)"),
                ],
                vec![
                    json!(i + 1),
                    json!(mib(m.rss_mean(1))),
                    json!("RSS B, mean (MiB)"),
                ],
            ]
        })
        .collect();
    let table = plot::Table {
        columns: vec![
            plot::Column {
                name: "minute".to_owned(),
                kind: plot::ColumnType::Integer,
            },
            plot::Column {
                name: "value".to_owned(),
                kind: plot::ColumnType::Float,
            },
            plot::Column {
                name: "series".to_owned(),
                kind: plot::ColumnType::String,
            },
        ],
        rows,
    };
    plot::render(
        &plot::Chart {
            kind: plot::Kind::Line,
            title: "Soak: views per second (÷ 10) and server RSS, per minute".to_owned(),
            x: Some("minute".to_owned()),
            y: vec!["value".to_owned()],
            series: Some("series".to_owned()),
            stacked: false,
        },
        &table,
    )
}
