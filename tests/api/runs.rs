//! Analyses that run (ANALYSES.md): `POST /analyses/{id}/run` on the real DataFusion engine
//! over the uploaded files, results checked against a plain Rust fold over the generated
//! rows; dataset columns and previews; the read-only guard (each refusal changes nothing);
//! limits (rows, time, memory); who may run what; the report page's results table.
use std::collections::BTreeMap;

use domain::Settings;
use iops_tests::{TestDb, on_both};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::analyses::create_analysis;
use crate::datasets::upload_as;
use crate::support::{TestApp, assert_problem, spawn, spawn_querying};

/// Regions of the generated rows.
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];

/// One generated row: what the CSV holds, kept for computing expected answers.
struct Row {
    id: i64,
    region: &'static str,
    year: i64,
    /// Empty in the file (NULL) for every 10th row.
    units: Option<i64>,
    price_cents: i64,
    day: chrono::NaiveDate,
    note: String,
}

fn rows(n: i64) -> Vec<Row> {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    (0..n)
        .map(|i| Row {
            id: i + 1,
            region: REGIONS[(i % 4) as usize],
            year: 2022 + i % 5,
            units: (i % 10 != 3).then_some((i * 7) % 13),
            price_cents: (i * 37) % 10_000,
            day: start + chrono::Duration::days(i % 365),
            note: if i % 3 == 0 {
                format!("said \"hi\", row {i}")
            } else {
                format!("line\nbreak {i}")
            },
        })
        .collect()
}

fn csv_of(rows: &[Row]) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["id", "region", "year", "units", "price", "day", "note"])
        .unwrap();
    for r in rows {
        out.write_record([
            r.id.to_string(),
            r.region.to_owned(),
            r.year.to_string(),
            r.units.map(|u| u.to_string()).unwrap_or_default(),
            format!("{}.{:02}", r.price_cents / 100, r.price_cents % 100),
            r.day.to_string(),
            r.note.clone(),
        ])
        .unwrap();
    }
    out.into_inner().unwrap()
}

async fn upload(app: &TestApp, token: &str, file_name: &str, bytes: Vec<u8>) -> Value {
    let res = upload_as(app, token, file_name, None, bytes, None).await;
    assert_eq!(res.status(), StatusCode::CREATED, "upload {file_name}");
    res.json().await.unwrap()
}

async fn analysis_with(app: &TestApp, token: &str, dataset: &Value, query: Value) -> String {
    let body = json!({"name": "Run", "dataset_id": dataset["id"], "config": {"query": query, "chart": "kept"}});
    let analysis = create_analysis(app, token, &body).await;
    analysis["id"].as_str().unwrap().to_owned()
}

async fn run(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/analyses/{id}/run"),
        Some(token),
        &json!(null),
    )
    .await
}

async fn run_ok(app: &TestApp, token: &str, id: &str) -> Value {
    let res = run(app, token, id).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Expected `[region, sum(units), count(*)]` per region, ordered by region.
fn per_region(rows: &[Row]) -> Vec<Value> {
    let mut groups: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for r in rows {
        let g = groups.entry(r.region).or_default();
        g.0 += r.units.unwrap_or(0);
        g.1 += 1;
    }
    groups
        .into_iter()
        .map(|(region, (units, n))| json!([region, units, n]))
        .collect()
}

on_both!(
    sql_and_structured_runs_match_a_fold,
    sql_and_structured_runs_body
);
async fn sql_and_structured_runs_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let data = rows(500);
    let dataset = upload(&app, &token, "sales.csv", csv_of(&data)).await;
    let types: Vec<(String, String)> = dataset["columns"]
        .as_array()
        .expect("columns known from upload on")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected_types = [
        ("id", "integer"),
        ("region", "string"),
        ("year", "integer"),
        ("units", "integer"),
        ("price", "float"),
        ("day", "date"),
        ("note", "string"),
    ];
    assert_eq!(
        types,
        expected_types
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect::<Vec<_>>()
    );

    let sql = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "SELECT region, SUM(units) AS units, COUNT(*) AS n FROM data GROUP BY region ORDER BY region"}),
    )
    .await;
    let ran = run_ok(&app, &token, &sql).await;
    assert_eq!(ran["status"], "completed");
    assert_eq!(
        ran["config"]["chart"], "kept",
        "the run leaves config alone"
    );
    let results = &ran["results"];
    assert_eq!(
        results["columns"],
        json!([{"name": "region", "type": "string"}, {"name": "units", "type": "integer"}, {"name": "n", "type": "integer"}])
    );
    assert_eq!(results["rows"], Value::Array(per_region(&data)));
    assert_eq!(results["row_count"], 4);
    assert_eq!(results["truncated"], false);
    assert!(results["elapsed_ms"].is_u64());
    assert!(results["ran_at"].as_str().unwrap().ends_with('Z'));
    let stored: Value = app
        .get(&format!("/api/v1/analyses/{sql}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored, ran, "the outcome is stored");

    // The structured form compiles to the same plan shape: same answer.
    let structured = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"group_by": ["region"],
               "aggregates": [{"op": "sum", "column": "units", "as": "units"}, {"op": "count", "as": "n"}],
               "order_by": [{"column": "region"}]}),
    )
    .await;
    let ran = run_ok(&app, &token, &structured).await;
    assert_eq!(ran["results"]["rows"], Value::Array(per_region(&data)));

    // Filters, dates compared with a date column, a top-N with floats.
    let filtered = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"filters": [{"column": "year", "op": ">=", "value": 2024},
                           {"column": "region", "op": "in", "value": ["north", "east"]},
                           {"column": "day", "op": "<", "value": "2026-07-01"},
                           {"column": "units", "op": "not_null"},
                           {"column": "note", "op": "contains", "value": "\"hi\""}],
               "order_by": [{"column": "price", "desc": true}, {"column": "id"}],
               "limit": 10}),
    )
    .await;
    let ran = run_ok(&app, &token, &filtered).await;
    let july = chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
    let mut expected: Vec<&Row> = data
        .iter()
        .filter(|r| {
            r.year >= 2024
                && ["north", "east"].contains(&r.region)
                && r.day < july
                && r.units.is_some()
                && r.note.contains("\"hi\"")
        })
        .collect();
    expected.sort_by_key(|r| (-r.price_cents, r.id));
    let ids: Vec<i64> = ran["results"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        expected.iter().take(10).map(|r| r.id).collect::<Vec<_>>()
    );
    let first = &ran["results"]["rows"][0];
    let price = first[4].as_f64().unwrap();
    let want = expected[0].price_cents as f64 / 100.0;
    assert!(
        (price - want).abs() <= want.abs() * 1e-9,
        "{price} vs {want}"
    );
    assert_eq!(first[5], json!(expected[0].day.to_string()));
    assert_eq!(first[6], json!(expected[0].note));

    // A monthly sum through SQL's date functions.
    let monthly = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "SELECT date_trunc('month', day) AS month, SUM(units) AS units FROM data GROUP BY 1 ORDER BY 1"}),
    )
    .await;
    let ran = run_ok(&app, &token, &monthly).await;
    let mut months: BTreeMap<String, i64> = BTreeMap::new();
    for r in &data {
        *months.entry(r.day.format("%Y-%m").to_string()).or_default() += r.units.unwrap_or(0);
    }
    let got: Vec<(String, i64)> = ran["results"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap()[..7].to_owned(),
                row[1].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, months.into_iter().collect::<Vec<_>>());
    assert_eq!(ran["results"]["columns"][0]["type"], "timestamp");
}

on_both!(tables_join_and_other_users_datasets, tables_join_body);
async fn tables_join_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let (_, other) = app.user("bob@example.com").await;
    let data = rows(40);
    let sales = upload(&app, &token, "sales.csv", csv_of(&data)).await;
    let targets = upload(
        &app,
        &token,
        "targets.json",
        serde_json::to_vec(
            &json!([{"region": "north", "target": 10}, {"region": "south", "target": 20}]),
        )
        .unwrap(),
    )
    .await;
    let theirs = upload(&app, &other, "theirs.ndjson", b"{\"a\": 1}\n".to_vec()).await;

    let joined = analysis_with(
        &app,
        &token,
        &sales,
        json!({"sql": "SELECT d.region, t.target, COUNT(*) AS n FROM data d JOIN targets t ON d.region = t.region GROUP BY d.region, t.target ORDER BY d.region",
               "tables": {"targets": targets["id"]}}),
    )
    .await;
    let ran = run_ok(&app, &token, &joined).await;
    assert_eq!(
        ran["results"]["rows"],
        json!([["north", 10, 10], ["south", 20, 10]])
    );

    // Another user's dataset is 404, and nothing is stored.
    let sneaky = analysis_with(
        &app,
        &token,
        &sales,
        json!({"sql": "SELECT * FROM theirs", "tables": {"theirs": theirs["id"]}}),
    )
    .await;
    assert_problem(run(&app, &token, &sneaky).await, 404, "not-found").await;
    let after: Value = app
        .get(&format!("/api/v1/analyses/{sneaky}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (after["status"].as_str(), &after["results"]),
        (Some("draft"), &Value::Null)
    );

    // Someone else's analysis is 404 to run; a viewer is refused for their role.
    assert_problem(run(&app, &other, &joined).await, 404, "not-found").await;

    // An analysis without a dataset may read through `tables` alone.
    let bare = create_analysis(
        &app,
        &token,
        &json!({"name": "Targets only", "config": {"query": {"sql": "SELECT SUM(target) AS total FROM t", "tables": {"t": targets["id"]}}}}),
    )
    .await;
    let ran = run_ok(&app, &token, bare["id"].as_str().unwrap()).await;
    assert_eq!(ran["results"]["rows"], json!([[30]]));
}

on_both!(refused_queries_touch_nothing, refused_queries_body);
async fn refused_queries_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let data = rows(20);
    let bytes = csv_of(&data);
    let dataset = upload(&app, &token, "sales.csv", bytes.clone()).await;
    let outside = app.db.data_dir().join("outside.csv");
    std::fs::write(&outside, "secret\n42\n").unwrap();
    let written = app.db.data_dir().join("written.csv");
    let outside_path = outside.display().to_string();
    let written_path = written.display().to_string();
    let refused = [
        "DROP TABLE data".to_owned(),
        "DELETE FROM data".to_owned(),
        "INSERT INTO data (id) VALUES (1)".to_owned(),
        "UPDATE data SET units = 0".to_owned(),
        "CREATE TABLE t AS SELECT * FROM data".to_owned(),
        "CREATE VIEW v AS SELECT * FROM data".to_owned(),
        format!("COPY data TO '{written_path}'"),
        format!("COPY (SELECT * FROM data) TO '{written_path}' STORED AS CSV"),
        format!("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{outside_path}'"),
        format!("SELECT * FROM '{outside_path}'"),
        "SELECT * FROM 'https://example.com/data.csv'".to_owned(),
        "SELECT * FROM information_schema.tables".to_owned(),
        "SELECT * FROM datafusion.public.data".to_owned(),
        "SELECT * FROM generate_series(1, 3)".to_owned(),
        "SELECT * FROM range(10)".to_owned(),
        format!("SELECT * FROM read_csv('{outside_path}')"),
        "SELECT 1; SELECT 2".to_owned(),
        "SET datafusion.execution.batch_size = 1".to_owned(),
        "SHOW TABLES".to_owned(),
        "EXPLAIN SELECT * FROM data".to_owned(),
        "WITH x AS (SELECT 1) SELECT * FROM x, information_schema.columns".to_owned(),
    ];
    for sql in refused {
        let id = analysis_with(&app, &token, &dataset, json!({"sql": sql})).await;
        let problem = assert_problem(run(&app, &token, &id).await, 422, "query-failed").await;
        assert_eq!(problem["reason"], "refused", "{sql}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            !detail.contains(&*app.db.data_dir().display().to_string())
                || detail.contains(&outside_path),
            "{detail}"
        );
        let stored: Value = app
            .get(&format!("/api/v1/analyses/{id}"), Some(&token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(stored["status"], "failed", "{sql}");
        assert_eq!(stored["results"]["error"]["reason"], "refused", "{sql}");
    }
    assert!(!written.exists(), "nothing was written");
    // The dataset's file and rows are as uploaded.
    let key = format!(
        "{}/{}.csv",
        dataset_owner(&app, &token).await,
        dataset["id"].as_str().unwrap()
    );
    assert_eq!(std::fs::read(app.store.root().join(key)).unwrap(), bytes);
    let check = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "SELECT COUNT(*) AS n FROM data"}),
    )
    .await;
    assert_eq!(
        run_ok(&app, &token, &check).await["results"]["rows"],
        json!([[20]])
    );
    // A CTE named like a table is fine: it is the query's own.
    let cte = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "WITH big AS (SELECT * FROM data WHERE id > 15) SELECT COUNT(*) FROM big"}),
    )
    .await;
    assert_eq!(
        run_ok(&app, &token, &cte).await["results"]["rows"],
        json!([[5]])
    );
}

async fn dataset_owner(app: &TestApp, token: &str) -> String {
    let me: Value = app
        .get("/api/v1/me", Some(token))
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

on_both!(invalid_queries_and_missing_parts, invalid_queries_body);
async fn invalid_queries_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let dataset = upload(&app, &token, "sales.csv", csv_of(&rows(10))).await;
    for (query, reason) in [
        (json!({"sql": "SELEC 1"}), "invalid"),
        (json!({"sql": "SELECT nope FROM data"}), "invalid"),
        (json!({"sql": "SELECT * FROM missing_table"}), "invalid"),
        (json!({"sql": "SELECT region + 1 FROM data"}), "invalid"),
        (json!({"group_by": ["nope"]}), "invalid"),
        (
            json!({"filters": [{"column": "units", "op": "between", "value": 1}]}),
            "invalid",
        ),
        (json!({"limit": 0}), "invalid"),
        (
            json!({"sql": "SELECT 1", "tables": {"t": "00000000-0000-0000-0000-00000000000"}}),
            "invalid",
        ),
    ] {
        let id = analysis_with(&app, &token, &dataset, query.clone()).await;
        let problem = assert_problem(run(&app, &token, &id).await, 422, "query-failed").await;
        assert_eq!(problem["reason"], reason, "{query}: {problem}");
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    // No query: `/validation`, and nothing stored.
    let plain = create_analysis(
        &app,
        &token,
        &json!({"name": "No query", "dataset_id": dataset["id"], "config": {"x": 1}}),
    )
    .await;
    let id = plain["id"].as_str().unwrap();
    assert_problem(run(&app, &token, id).await, 422, "validation").await;
    let after: Value = app
        .get(&format!("/api/v1/analyses/{id}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after, plain);
    // Nothing to read.
    let nothing = create_analysis(
        &app,
        &token,
        &json!({"name": "Nothing", "config": {"query": {"sql": "SELECT 1"}}}),
    )
    .await;
    assert_problem(
        run(&app, &token, nothing["id"].as_str().unwrap()).await,
        422,
        "validation",
    )
    .await;
    // A dataset whose file is gone: `data`, with no path in the message.
    let gone = upload(&app, &token, "gone.csv", csv_of(&rows(3))).await;
    let id = analysis_with(&app, &token, &gone, json!({"sql": "SELECT * FROM data"})).await;
    let owner = dataset_owner(&app, &token).await;
    std::fs::remove_file(
        app.store
            .root()
            .join(format!("{owner}/{}.csv", gone["id"].as_str().unwrap())),
    )
    .unwrap();
    let problem = assert_problem(run(&app, &token, &id).await, 422, "query-failed").await;
    assert_eq!(problem["reason"], "data", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        !detail.contains(&owner) && !detail.contains('/'),
        "{detail}"
    );
    // A malformed id is 404 as everywhere; a run of nothing is 404.
    assert_problem(
        run(&app, &token, "00000000-0000-0000-0000-000000000000").await,
        404,
        "not-found",
    )
    .await;
}

on_both!(limits_rows_time_and_memory, limits_body);
async fn limits_body(db: TestDb) {
    let mut query = iops_tests::query_settings();
    query.max_rows = 50;
    query.timeout = std::time::Duration::from_secs(1);
    query.memory_bytes = 16 * 1024 * 1024;
    let app = spawn_querying(db, Settings::default(), query).await;
    let (_, token) = app.user("ada@example.com").await;
    let dataset = upload(&app, &token, "sales.csv", csv_of(&rows(3000))).await;

    let many = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "SELECT id FROM data ORDER BY id"}),
    )
    .await;
    let ran = run_ok(&app, &token, &many).await;
    assert_eq!(ran["results"]["row_count"], 50);
    assert_eq!(ran["results"]["truncated"], true);
    assert_eq!(ran["results"]["rows"][49], json!([50]));
    let exact = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "SELECT id FROM data WHERE id <= 50"}),
    )
    .await;
    assert_eq!(
        run_ok(&app, &token, &exact).await["results"]["truncated"],
        false
    );

    // Nine million pairs, each a regular expression match: far beyond one second.
    // (Nested-loop joins rather than cross joins here: DataFusion 55 can fail a cross join
    // of a repartitioned scan at once with a panic of its own, "partition not used yet".)
    let slow = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "SELECT COUNT(*) FROM data a JOIN data b ON a.note <> b.note WHERE regexp_like(a.note || b.note, '(x+x+)+y')"}),
    )
    .await;
    let started = std::time::Instant::now();
    let problem = assert_problem(run(&app, &token, &slow).await, 422, "query-failed").await;
    assert_eq!(problem["reason"], "timeout", "{problem}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    // Nine million distinct strings to hold at once in 16 MiB.
    let greedy = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "SELECT a.note || b.note AS k, COUNT(*) FROM data a JOIN data b ON a.note <> b.note GROUP BY 1 ORDER BY 2 DESC LIMIT 1"}),
    )
    .await;
    let res = run(&app, &token, &greedy).await;
    let problem = assert_problem(res, 422, "query-failed").await;
    assert!(
        ["memory", "timeout"].contains(&problem["reason"].as_str().unwrap()),
        "{problem}"
    );
    // The server still answers at once.
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
}

on_both!(preview_and_columns_of_every_format, preview_body);
async fn preview_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let (_, other) = app.user("bob@example.com").await;
    let csv = upload(&app, &token, "sales.csv", csv_of(&rows(150))).await;
    let res = app
        .get(
            &format!("/api/v1/datasets/{}/preview", csv["id"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let preview: Value = res.json().await.unwrap();
    assert_eq!(preview["columns"], csv["columns"]);
    assert_eq!(
        preview["rows"].as_array().unwrap().len(),
        100,
        "default limit"
    );
    assert_eq!(preview["rows"][0][1], "north");
    assert_eq!(preview["rows"][3][3], Value::Null, "an empty field is null");
    let two: Value = app
        .get(
            &format!(
                "/api/v1/datasets/{}/preview?limit=2",
                csv["id"].as_str().unwrap()
            ),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(two["rows"].as_array().unwrap().len(), 2);
    for bad in ["0", "1001", "x"] {
        let res = app
            .get(
                &format!(
                    "/api/v1/datasets/{}/preview?limit={bad}",
                    csv["id"].as_str().unwrap()
                ),
                Some(&token),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit={bad}"
        );
    }
    let res = app
        .get(
            &format!("/api/v1/datasets/{}/preview", csv["id"].as_str().unwrap()),
            Some(&other),
        )
        .await;
    assert_problem(res, 404, "not-found").await;

    let tsv = upload(
        &app,
        &token,
        "t.tsv",
        b"name\tscore\tok\nann\t1.5\ttrue\nbo\t2\tfalse\n".to_vec(),
    )
    .await;
    let json_array = upload(
        &app,
        &token,
        "a.json",
        br#"[{"name": "ann", "n": 1, "when": "2026-12-01T10:00:00Z"}, {"name": "bo", "n": null, "when": "2026-12-02T00:00:00Z"}]"#.to_vec(),
    )
    .await;
    let ndjson = upload(
        &app,
        &token,
        "l.ndjson",
        b"{\"name\": \"ann\", \"n\": 1}\n{\"name\": \"bo\", \"n\": 2.5}\n".to_vec(),
    )
    .await;
    let types = |d: &Value| -> Vec<String> {
        d["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}:{}",
                    c["name"].as_str().unwrap(),
                    c["type"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(types(&tsv), ["name:string", "score:float", "ok:boolean"]);
    // JSON keys come in the order the file first shows them.
    assert_eq!(
        types(&json_array),
        ["name:string", "n:integer", "when:string"]
    );
    assert_eq!(types(&ndjson), ["name:string", "n:float"]);
    let preview: Value = app
        .get(
            &format!(
                "/api/v1/datasets/{}/preview",
                json_array["id"].as_str().unwrap()
            ),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        preview["rows"],
        json!([
            ["ann", 1, "2026-12-01T10:00:00Z"],
            ["bo", null, "2026-12-02T00:00:00Z"]
        ])
    );
    // Listing shows the same columns.
    let list: Value = app
        .get("/api/v1/datasets", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let listed = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == tsv["id"])
        .unwrap()
        .clone();
    assert_eq!(listed["columns"], tsv["columns"]);
}

on_both!(roles_and_concurrent_runs, roles_body);
async fn roles_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, owner) = app.user("ada@example.com").await;
    let dataset = upload(&app, &owner, "sales.csv", csv_of(&rows(100))).await;
    let id = analysis_with(
        &app,
        &owner,
        &dataset,
        json!({"sql": "SELECT COUNT(*) AS n FROM data"}),
    )
    .await;
    for (email, role) in [
        ("viewer@example.com", "viewer"),
        ("editor@example.com", "editor"),
    ] {
        let (_, token) = app.user(email).await;
        let res = app
            .post(
                &format!("/api/v1/analyses/{id}/collaborators"),
                Some(&owner),
                &json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let invitation: Value = res.json().await.unwrap();
        let link = invitation["invite_url"].as_str().unwrap().to_owned();
        let invite_token = link.rsplit('/').next().unwrap().to_owned();
        let res = app
            .post(
                &format!("/api/v1/invitations/{invite_token}/accept"),
                Some(&token),
                &json!({}),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            res.text().await.unwrap()
        );
        let res = run(&app, &token, &id).await;
        if role == "viewer" {
            assert_problem(res, 403, "forbidden").await;
        } else {
            assert_eq!(res.status(), StatusCode::OK);
        }
    }
    // Eight runs of one analysis at once: each succeeds and the stored outcome is one of them.
    let runs = (0..8).map(|_| run(&app, &owner, &id));
    for res in futures_util::future::join_all(runs).await {
        assert_eq!(res.status(), StatusCode::OK);
    }
    let stored: Value = app
        .get(&format!("/api/v1/analyses/{id}"), Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["results"]["rows"], json!([[100]]));
}

on_both!(report_page_shows_results_as_a_table, report_page_body);
async fn report_page_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let csv = b"who,amount\n<script>alert(1)</script>,5\nann & bo,7\n".to_vec();
    let dataset = upload(&app, &token, "hostile.csv", csv).await;
    let id = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "SELECT who, amount FROM data ORDER BY amount"}),
    )
    .await;
    run_ok(&app, &token, &id).await;
    let report = crate::reports::create_report(&app, &token, &json!(id), &json!({})).await;
    let code = report["short_code"].as_str().unwrap();
    let page = app
        .request(reqwest::Method::GET, &format!("/r/{code}"), None)
        .header(
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<table>"), "{page}");
    assert!(page.contains("amount"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("ann &amp; bo"), "{page}");
    assert!(page.contains("2 rows"), "{page}");
    // The JSON view keeps the stored results.
    let json_view: Value = app
        .get(&format!("/r/{code}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        json_view["analysis"]["results"]["rows"],
        json!([["<script>alert(1)</script>", 5], ["ann & bo", 7]])
    );
}

on_both!(a_client_that_leaves_stops_its_query, client_leaves_body);
async fn client_leaves_body(db: TestDb) {
    let mut query = iops_tests::query_settings();
    query.concurrency = 1;
    query.timeout = std::time::Duration::from_secs(120);
    let app = spawn_querying(db, Settings::default(), query).await;
    let (_, token) = app.user("ada@example.com").await;
    let dataset = upload(&app, &token, "sales.csv", csv_of(&rows(3000))).await;
    // 27 billion rows to look at: it would run for minutes.
    let slow = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "SELECT COUNT(*) FROM data a JOIN data b ON a.note <> b.note JOIN data c ON b.note <> c.note WHERE regexp_like(a.note || b.note || c.note, '(x+x+)+y')"}),
    )
    .await;
    let quick = analysis_with(
        &app,
        &token,
        &dataset,
        json!({"sql": "SELECT COUNT(*) AS n FROM data"}),
    )
    .await;
    // The client gives up on the slow run after half a second.
    let gave_up = app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/analyses/{slow}/run"),
            Some(&token),
        )
        .timeout(std::time::Duration::from_millis(500))
        .send()
        .await;
    assert!(
        gave_up.is_err(),
        "the slow run was still running when its client left"
    );
    // With one query at a time, the quick run can only start once the slow one stopped.
    let res = app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/analyses/{quick}/run"),
            Some(&token),
        )
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .expect("the quick run is not held up by the abandoned one");
    assert_eq!(res.status(), StatusCode::OK);
    let ran: Value = res.json().await.unwrap();
    assert_eq!(ran["results"]["rows"], json!([[3000]]));
    // The abandoned run stored nothing.
    let stored: Value = app
        .get(&format!("/api/v1/analyses/{slow}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (stored["status"].as_str(), &stored["results"]),
        (Some("draft"), &Value::Null)
    );
}
