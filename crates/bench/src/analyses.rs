//! Analyses (`POST /api/v1/analyses/{id}/run`) on a generated sales CSV, beside DuckDB and
//! pandas running the same three queries on the same file in the same run (a Python script
//! the benchmark writes and runs), with the server's peak RSS, and `/health/live` probed
//! while two runs go at once.
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::Result;
use crate::server::{Server, ServerEnv};
use crate::stats::Samples;

/// The queries, by name: the same SQL text runs on the server and on DuckDB (over a view
/// named `data`); the pandas script has the same three written in pandas.
pub const QUERIES: [(&str, &str); 3] = [
    (
        "group-by",
        "SELECT status, product, COUNT(*) AS orders, SUM(quantity) AS units, SUM(price) AS revenue \
         FROM data GROUP BY status, product ORDER BY status, product",
    ),
    (
        "filtered top 10",
        "SELECT id, price FROM data WHERE status = 'shipped' AND quantity > 15 \
         ORDER BY price DESC, id LIMIT 10",
    ),
    (
        "monthly sum",
        "SELECT date_trunc('month', day) AS month, SUM(price) AS revenue FROM data \
         GROUP BY 1 ORDER BY 1",
    ),
];

/// Runs of each query through the API and on DuckDB; the medians are compared.
const RUNS: usize = 3;

/// Writes `rows` generated sales rows: an integer id, a 3-value status, a 50-value
/// product, a small integer, a decimal price and a date.
pub fn generate(rows: u64, path: &Path) -> Result<u64> {
    let days: Vec<String> = (0..365)
        .map(|d| {
            (chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("a date")
                + chrono::Duration::days(d))
            .to_string()
        })
        .collect();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all(b"id,status,product,quantity,price,day\n")?;
    for i in 0..rows {
        let status = ["shipped", "pending", "returned"][(i % 3) as usize];
        let cents = 100 + i.wrapping_mul(7919) % 99_900;
        writeln!(
            out,
            "{i},{status},P{:02},{},{}.{:02},{}",
            i.wrapping_mul(31) % 50,
            1 + i.wrapping_mul(17) % 20,
            cents / 100,
            cents % 100,
            days[(i % 365) as usize]
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// What the reference engines measured for one query.
#[derive(Clone, Debug)]
pub struct Reference {
    pub duckdb: Duration,
    pub pandas: Duration,
    pub rows: u64,
}

/// The Python side: DuckDB (median of `RUNS`, each reading the CSV) and pandas (once,
/// reading the CSV too), printing one JSON object per query.
const SCRIPT: &str = r#"
import json, sys, time
import duckdb, pandas as pd

path, runs = sys.argv[1], int(sys.argv[2])
queries = json.loads(sys.argv[3])
con = duckdb.connect()
con.execute("SET threads TO %d" % int(sys.argv[4]))
con.execute("CREATE VIEW data AS SELECT * FROM read_csv('%s', header = true)" % path.replace("'", "''"))

def pandas_query(name):
    df = pd.read_csv(path, parse_dates=["day"])
    if name == "group-by":
        return (df.groupby(["status", "product"])
                  .agg(orders=("id", "size"), units=("quantity", "sum"), revenue=("price", "sum"))
                  .reset_index().sort_values(["status", "product"]))
    if name == "filtered top 10":
        hit = df[(df.status == "shipped") & (df.quantity > 15)]
        return hit.sort_values(["price", "id"], ascending=[False, True]).head(10)[["id", "price"]]
    if name == "monthly sum":
        return df.groupby(df.day.dt.to_period("M"))["price"].sum().reset_index()
    raise ValueError(name)

for name, sql in queries:
    times, rows = [], None
    for _ in range(runs):
        t = time.perf_counter()
        rows = len(con.execute(sql).fetchall())
        times.append(time.perf_counter() - t)
    times.sort()
    t = time.perf_counter()
    frame = pandas_query(name)
    pandas = time.perf_counter() - t
    if len(frame) != rows:
        sys.exit("pandas gave %d rows for %s, DuckDB %d" % (len(frame), name, rows))
    print(json.dumps({"query": name, "duckdb": times[len(times) // 2], "pandas": pandas, "rows": rows}))
"#;

/// Runs the reference engines on `csv`, with as many threads as the server's engine has.
pub async fn reference(csv: &Path, work: &Path) -> Result<Vec<Reference>> {
    let script = work.join("reference.py");
    std::fs::write(&script, SCRIPT)?;
    let queries = serde_json::to_string(&QUERIES)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(csv)
        .arg(RUNS.to_string())
        .arg(queries)
        .arg(threads.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "the DuckDB/pandas reference failed (pip install duckdb pandas): {}",
            err.lines().last().unwrap_or_default()
        )
        .into());
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line)?;
        found.push(Reference {
            duckdb: Duration::from_secs_f64(v["duckdb"].as_f64().unwrap_or_default()),
            pandas: Duration::from_secs_f64(v["pandas"].as_f64().unwrap_or_default()),
            rows: v["rows"].as_u64().unwrap_or_default(),
        });
    }
    if found.len() != QUERIES.len() {
        return Err("the DuckDB/pandas reference printed too few results".into());
    }
    Ok(found)
}

/// What the API side measured.
pub struct Measured {
    /// Median run time per query, HTTP and storing the results included, reading the
    /// uploaded CSV.
    pub runs: Vec<Duration>,
    pub peak_rss: u64,
    /// `/health/live` while two runs went at once.
    pub live: Samples,
    pub errors: u64,
    /// The same, on a server that reads the dataset's columnar copy.
    pub columnar: Columnar,
}

/// The runs on the columnar copy, and the copy.
pub struct Columnar {
    pub runs: Vec<Duration>,
    /// From the first run (which found no copy and asked for one) to the copy in the store.
    pub written_in: Duration,
    pub bytes: u64,
    pub peak_rss: u64,
}

/// Uploads `csv`, makes one analysis per query and runs each [`RUNS`] times, then two at
/// once while `/health/live` is probed; then, on a second server over the same database
/// and store that makes columnar copies, runs each query [`RUNS`] times once the copy is
/// written. Each result must have the reference's row count.
pub async fn measure(
    http: &reqwest::Client,
    env: &ServerEnv,
    server: &Server,
    token: &str,
    csv: &Path,
    reference: &[Reference],
) -> Result<Measured> {
    let dataset = upload(http, server, token, csv).await?;
    let mut ids = Vec::new();
    for (name, sql) in QUERIES {
        let created: Value = checked(
            http.post(server.url("/api/v1/analyses"))
                .bearer_auth(token)
                .json(&json!({"name": name, "dataset_id": dataset, "config": {"query": {"sql": sql}}})),
            reqwest::StatusCode::CREATED,
        )
        .await?;
        ids.push(created["id"].as_str().unwrap_or_default().to_owned());
    }
    server.reset_peak_rss()?;
    let runs = medians(http, server, token, &ids, reference).await?;

    // Two runs at once (the heaviest query), while a client probes /health/live.
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let (http, done) = (http.clone(), done.clone());
        let url = server.url("/health/live");
        tokio::spawn(async move {
            let (mut samples, mut errors) = (Samples::default(), 0u64);
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                match http.get(&url).send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => samples.push(t.elapsed()),
                    _ => errors += 1,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (samples, errors)
        })
    };
    let both = futures_util::future::join(
        run(http, server, token, &ids[0]),
        run(http, server, token, &ids[0]),
    )
    .await;
    done.store(true, Ordering::Relaxed);
    let (live, mut errors) = probe.await?;
    for outcome in [both.0, both.1] {
        if outcome.is_err() {
            errors += 1;
        }
    }
    let peak_rss = server.peak_rss_bytes()?;
    Ok(Measured {
        runs,
        peak_rss,
        live,
        errors,
        columnar: on_columnar_copy(http, env, token, &ids, reference).await?,
    })
}

/// The median of [`RUNS`] runs of each analysis of `ids`, each checked against the
/// reference's row count.
async fn medians(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    ids: &[String],
    reference: &[Reference],
) -> Result<Vec<Duration>> {
    let mut medians = Vec::new();
    for ((id, (name, _)), expected) in ids.iter().zip(QUERIES).zip(reference) {
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let (elapsed, rows) = run(http, server, token, id).await?;
            if rows != expected.rows {
                return Err(format!(
                    "{name}: the API kept {rows} rows, DuckDB found {}",
                    expected.rows
                )
                .into());
            }
            times.push(elapsed);
        }
        times.sort();
        medians.push(times[RUNS / 2]);
    }
    Ok(medians)
}

/// Starts a server that makes columnar copies, runs the first analysis once (it reads
/// the CSV and asks for the copy), waits for the copy, and measures the runs on it.
async fn on_columnar_copy(
    http: &reqwest::Client,
    env: &ServerEnv,
    token: &str,
    ids: &[String],
    reference: &[Reference],
) -> Result<Columnar> {
    let env = ServerEnv {
        columnar: true,
        log_file: env.log_file.with_file_name("server-columnar.log"),
        ..env.clone()
    };
    let (server, _) = Server::start(&env, http).await?;
    let started = Instant::now();
    run(http, &server, token, &ids[0]).await?;
    let datasets = env.data_dir.join("datasets");
    let bytes = loop {
        if let Some(bytes) = copy_size(&datasets) {
            break bytes;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err("no columnar copy appeared within 30 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let written_in = started.elapsed();
    server.reset_peak_rss()?;
    let runs = medians(http, &server, token, ids, reference).await?;
    let peak_rss = server.peak_rss_bytes()?;
    server.stop().await;
    Ok(Columnar {
        runs,
        written_in,
        bytes,
        peak_rss,
    })
}

/// The size of the one columnar copy under the store folder `datasets`, once there.
fn copy_size(datasets: &Path) -> Option<u64> {
    let suffix = domain::storage::columnar_key("");
    for user in std::fs::read_dir(datasets).ok()?.flatten() {
        for file in std::fs::read_dir(user.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.file_name().to_string_lossy().ends_with(&suffix) {
                return file.metadata().ok().map(|m| m.len());
            }
        }
    }
    None
}

/// One run: its wall time (request to parsed answer) and the rows it kept.
async fn run(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    id: &str,
) -> Result<(Duration, u64)> {
    let started = Instant::now();
    let ran: Value = checked(
        http.post(server.url(&format!("/api/v1/analyses/{id}/run")))
            .bearer_auth(token)
            .timeout(Duration::from_secs(600)),
        reqwest::StatusCode::OK,
    )
    .await?;
    let elapsed = started.elapsed();
    let rows = ran["results"]["row_count"]
        .as_u64()
        .ok_or("a run answered without results.row_count")?;
    Ok((elapsed, rows))
}

async fn upload(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    csv: &Path,
) -> Result<String> {
    let size = std::fs::metadata(csv)?.len();
    let file = tokio::fs::File::open(csv).await?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    let part = Part::stream_with_length(body, size)
        .file_name("sales.csv")
        .mime_str("text/csv")?;
    let created: Value = checked(
        http.post(server.url("/api/v1/datasets"))
            .bearer_auth(token)
            .multipart(Form::new().part("file", part))
            .timeout(Duration::from_secs(1800)),
        reqwest::StatusCode::CREATED,
    )
    .await?;
    created["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "the upload answered without an id".into())
}

/// Sends `request`, and reads its JSON answer if it has `status`.
async fn checked(request: reqwest::RequestBuilder, status: reqwest::StatusCode) -> Result<Value> {
    let response = request.send().await?;
    let got = response.status();
    let text = response.text().await?;
    if got != status {
        return Err(format!("{got}: {}", crate::uploads::truncate(&text)).into());
    }
    Ok(serde_json::from_str(&text)?)
}
