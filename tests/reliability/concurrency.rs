//! Many writers on one SQLite file (issue item 3): two real `iops serve` processes, 64
//! concurrent writers in total (uploads, report creations, public views; pro users and a
//! free user racing for its last datasets). SQLite has one write lock per file: writers
//! must queue for it (busy timeout, `BEGIN IMMEDIATE`) so that no `database is locked`,
//! no `5xx` ever reaches a client, and every count comes out exact.
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use iops_tests::{TestDb, count};
use reqwest::Client;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::support::{Process, answer, client, login, register, upload_form};

const PRO_WRITERS: usize = 56;
const FREE_WRITERS: usize = 8;
const ROUNDS: usize = 3;
const PRO_USERS: usize = 8;
/// The free tier's datasets a month (API.md).
const FREE_DATASETS: usize = 5;

/// Status and body of one request, checked for leaks and lock errors on the way.
async fn send(case: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{case}: no answer: {e}"));
    let (status, body) = answer(case, res).await;
    let text = body.to_string().to_lowercase();
    assert!(
        !text.contains("locked") && !text.contains("busy"),
        "{case}: {status} {body}"
    );
    assert!(status < 500, "{case}: {status} {body}");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_64_writers_one_sqlite_file() {
    let db = TestDb::sqlite().await;
    let data_dir = db.data_dir();
    // The first one migrates; the second finds the schema in place.
    let a = Process::serve(&db.url, &data_dir, &[]).await;
    let b = Process::serve(&db.url, &data_dir, &[]).await;
    let bases = [a.base.clone(), b.base.clone()];
    let c = client();

    let mut pro = Vec::new();
    for i in 0..PRO_USERS {
        let email = format!("pro{i}@example.com");
        register(&c, &bases[i % 2], &email).await;
        pro.push(email);
    }
    register(&c, &bases[0], "free@example.com").await;
    let conn = db.connect().await;
    conn.execute_raw(Statement::from_string(
        conn.get_database_backend(),
        "UPDATE users SET tier = 'pro' WHERE email LIKE 'pro%'",
    ))
    .await
    .expect("make the pro users pro");
    let mut tokens = Vec::new();
    let mut analyses = Vec::new();
    for (i, email) in pro.iter().enumerate() {
        let token = login(&c, &bases[i % 2], email).await;
        let (status, analysis) = send(
            "analysis",
            c.post(format!("{}/api/v1/analyses", bases[i % 2]))
                .bearer_auth(&token)
                .json(&json!({"name": format!("analysis {i}")})),
        )
        .await;
        assert_eq!(status, 201);
        analyses.push(analysis["id"].as_str().unwrap().to_owned());
        tokens.push(token);
    }
    let free_token = login(&c, &bases[1], "free@example.com").await;
    let (_, shared) = send(
        "shared report",
        c.post(format!(
            "{}/api/v1/analyses/{}/reports",
            bases[0], analyses[0]
        ))
        .bearer_auth(&tokens[0])
        .json(&json!({})),
    )
    .await;
    let shared = shared["short_code"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let pro_writers = (0..PRO_WRITERS).map(|w| {
        let (c, base) = (c.clone(), bases[w % 2].clone());
        let (token, analysis) = (
            tokens[w % PRO_USERS].clone(),
            analyses[w % PRO_USERS].clone(),
        );
        let shared = shared.clone();
        async move { pro_writer(&c, &base, &token, &analysis, &shared, w).await }
    });
    let free_writers = (0..FREE_WRITERS).map(|w| {
        let (c, base, token) = (c.clone(), bases[w % 2].clone(), free_token.clone());
        async move { free_writer(&c, &base, &token, w).await }
    });
    let (pro_done, free_done) = tokio::join!(join_all(pro_writers), join_all(free_writers));
    let elapsed = started.elapsed();
    assert!(pro_done.iter().all(|ok| *ok == ROUNDS));
    let free_created: usize = free_done.iter().sum();
    assert_eq!(
        free_created, FREE_DATASETS,
        "the free tier's limit holds exactly"
    );

    // Exact counts: every answered write is a row, and nothing else is.
    let pro_writes = (PRO_WRITERS * ROUNDS) as i64;
    let datasets = pro_writes + FREE_DATASETS as i64;
    assert_eq!(count(&conn, "datasets").await, datasets);
    assert_eq!(count(&conn, "reports").await, pro_writes + 1);
    let views = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT view_count FROM reports WHERE short_code = '{shared}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i32>(0)
        .unwrap();
    assert_eq!(i64::from(views), pro_writes, "every view counted once");
    let usage = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT SUM(datasets_count), SUM(reports_count) FROM usage_tracking",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(usage.try_get_by_index::<i64>(0).unwrap(), datasets);
    assert_eq!(usage.try_get_by_index::<i64>(1).unwrap(), pro_writes + 1);
    // One stored file per dataset row; no staging leftovers.
    let files = stored_files(&data_dir.join("datasets"));
    assert_eq!(files as i64, datasets);
    for process in [&a, &b] {
        let log = process.stderr();
        assert!(!log.to_lowercase().contains("database is locked"), "{log}");
    }
    eprintln!(
        "sqlite: {} writes from {} writers on two processes in {elapsed:?}",
        pro_writes * 3 + (FREE_WRITERS * ROUNDS) as i64,
        PRO_WRITERS + FREE_WRITERS
    );
    conn.close().await.ok();
}

/// Uploads, creates a report, views the shared report; `ROUNDS` times. Returns how many
/// rounds fully succeeded (all of them, or the test fails).
async fn pro_writer(
    c: &Client,
    base: &str,
    token: &str,
    analysis: &str,
    shared: &str,
    w: usize,
) -> usize {
    let mut done = 0;
    for round in 0..ROUNDS {
        let csv = format!("writer,round\n{w},{round}\n").into_bytes();
        let (status, body) = send(
            "upload",
            c.post(format!("{base}/api/v1/datasets"))
                .bearer_auth(token)
                .multipart(upload_form(&format!("w{w}-r{round}.csv"), csv)),
        )
        .await;
        assert_eq!(status, 201, "upload: {body}");
        let (status, body) = send(
            "report",
            c.post(format!("{base}/api/v1/analyses/{analysis}/reports"))
                .bearer_auth(token)
                .json(&json!({"is_public": true})),
        )
        .await;
        assert_eq!(status, 201, "report: {body}");
        let (status, body) = send("view", c.get(format!("{base}/r/{shared}"))).await;
        assert_eq!(status, 200, "view: {body}");
        done += 1;
    }
    done
}

/// Races for the free user's monthly datasets; returns how many uploads were stored.
async fn free_writer(c: &Client, base: &str, token: &str, w: usize) -> usize {
    let mut stored = 0;
    for round in 0..ROUNDS {
        let (status, body) = send(
            "free upload",
            c.post(format!("{base}/api/v1/datasets"))
                .bearer_auth(token)
                .multipart(upload_form(
                    &format!("free{w}-{round}.csv"),
                    b"a\n1\n".to_vec(),
                )),
        )
        .await;
        match status {
            201 => stored += 1,
            402 => assert_eq!(body["limit"], "datasets", "{body}"),
            other => panic!("free upload: {other} {body}"),
        }
    }
    stored
}

/// Files under `dir` (recursively), the staging folder excluded.
pub fn stored_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == ".staging") {
                    assert_eq!(
                        std::fs::read_dir(&path).map(|d| d.count()).unwrap_or(0),
                        0,
                        "staging leftovers in {}",
                        path.display()
                    );
                    continue;
                }
                stack.push(path);
            } else {
                n += 1;
            }
        }
    }
    n
}
