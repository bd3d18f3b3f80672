//! Hostile input (issue items 5 and 8): oversized, deeply nested, malformed, slow and
//! over-long requests. Each must end in a clean `4xx` problem (or, where the input is in
//! fact acceptable, a `2xx`), never a crash, a hang, a `5xx` or a leaked internal; and
//! after all of them the database holds exactly the rows the valid requests created.
use std::time::{Duration, Instant};

use domain::Settings;
use iops_tests::{TestDb, count, on_both};
use reqwest::{Client, Method};
use sea_orm::DbBackend;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{
    RawOutcome, RawResponse, Server, answer, chunk, client, error_bodies_seen, fixed_clock, login,
    multipart_file, multipart_file_head, raw_exchange, read_until_closed, register, slug,
    upload_form,
};

/// The upload limit of these tests: small, so that going over it is cheap.
const UPLOAD_LIMIT: u64 = 256 * 1024;
/// The JSON body limit of the API (`api::http::extract::JSON_LIMIT_BYTES`).
const JSON_LIMIT: usize = api::http::extract::JSON_LIMIT_BYTES;
/// How long a client may take to send its request head (the server's default is 10 s).
const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a request body may stall (the server's default is 30 s).
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

struct Target {
    server: Server,
    client: Client,
    token: String,
    analysis_id: String,
    dataset_id: String,
    report_code: String,
    data_dir: std::path::PathBuf,
}

impl Target {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Sends `body` as JSON text (exactly these bytes) and checks the status.
    async fn json_bytes(
        &self,
        case: &str,
        method: Method,
        path: &str,
        body: Vec<u8>,
        allowed: &[u16],
    ) -> (u16, Value) {
        let started = Instant::now();
        let res = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case}: no answer: {e}"));
        let (status, body) = answer(case, res).await;
        assert!(
            allowed.contains(&status),
            "{case}: got {status}, expected one of {allowed:?}: {body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{case}: took {:?}",
            started.elapsed()
        );
        (status, body)
    }

    async fn json(
        &self,
        case: &str,
        method: Method,
        path: &str,
        body: &Value,
        allowed: &[u16],
    ) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("serialize");
        self.json_bytes(case, method, path, bytes, allowed).await
    }

    async fn upload(&self, case: &str, form: reqwest::multipart::Form, allowed: &[u16]) -> u16 {
        let res = self
            .client
            .post(self.url("/api/v1/datasets"))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case}: no answer: {e}"));
        let (status, body) = answer(case, res).await;
        assert!(
            allowed.contains(&status),
            "{case}: got {status}, expected one of {allowed:?}: {body}"
        );
        status
    }

    /// A raw request head for `path`, with the caller's token.
    fn head(&self, method: &str, path: &str, extra: &str) -> String {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n{extra}\r\n",
            self.server.addr, self.token
        )
    }
}

fn answered(case: &str, outcome: RawOutcome) -> RawResponse {
    match outcome {
        RawOutcome::Answered(res) => {
            res.record(case);
            res
        }
        other => panic!("{case}: expected an answer, got {other:?}"),
    }
}

on_both!(hostile_input_changes_nothing, hostile_input_body);
async fn hostile_input_body(db: TestDb) {
    let conn = db.migrated().await;
    let settings = Settings {
        max_upload_bytes: UPLOAD_LIMIT,
        ..Settings::default()
    };
    let options = api::http::ServerOptions {
        workers: Some(2),
        client_request_timeout: HEAD_TIMEOUT,
        body_idle_timeout: BODY_IDLE_TIMEOUT,
        ..Default::default()
    };
    let server = Server::start(conn, &db.data_dir(), fixed_clock(), settings, options).await;
    let client = client();

    // The valid requests, whose rows must be all that is left at the end.
    register(&client, &server.base, "ada@example.com").await;
    // Pro: the free tier's five datasets a month would end the suite early.
    server
        .domain
        .accounts
        .set_tier_by_email(
            &domain::Admin::local_operator(),
            "ada@example.com",
            domain::Tier::Pro,
        )
        .await
        .unwrap();
    let token = login(&client, &server.base, "ada@example.com").await;
    let res = client
        .post(server.url("/api/v1/datasets"))
        .bearer_auth(&token)
        .multipart(upload_form("valid.csv", b"a,b\n1,2\n".to_vec()))
        .send()
        .await
        .unwrap();
    let (status, dataset) = answer("valid upload", res).await;
    assert_eq!(status, 201, "{dataset}");
    let res = client
        .post(server.url("/api/v1/analyses"))
        .bearer_auth(&token)
        .json(&json!({"name": "valid", "dataset_id": dataset["id"], "config": {"k": 1}}))
        .send()
        .await
        .unwrap();
    let (status, analysis) = answer("valid analysis", res).await;
    assert_eq!(status, 201, "{analysis}");
    let res = client
        .post(server.url(&format!(
            "/api/v1/analyses/{}/reports",
            analysis["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .json(&json!({"password": "report password 1"}))
        .send()
        .await
        .unwrap();
    let (status, report) = answer("valid report", res).await;
    assert_eq!(status, 201, "{report}");

    let target = Target {
        server,
        client,
        token,
        analysis_id: analysis["id"].as_str().unwrap().to_owned(),
        dataset_id: dataset["id"].as_str().unwrap().to_owned(),
        report_code: report["short_code"].as_str().unwrap().to_owned(),
        data_dir: db.data_dir(),
    };

    let mut valid = Valid::default();
    oversized_json(&target).await;
    deep_json(&target).await;
    over_long_strings(&target, &mut valid).await;
    nul_and_bad_utf8(&target, &mut valid).await;
    uploads(&target, &mut valid).await;
    multipart_garbage(&target, &mut valid).await;
    slow_clients(&target, &mut valid).await;
    oversized_heads(&target).await;
    bad_paths_and_queries(&target).await;

    // The server is still whole: it answers, and the valid data is intact.
    let res = target
        .client
        .get(target.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = target
        .client
        .get(target.url(&format!("/r/{}", target.report_code)))
        .send()
        .await
        .unwrap();
    let (status, body) = answer("report still there", res).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(slug(&body), "password-required");

    // Item 8: exactly the rows of the valid requests, nothing more, nothing lost.
    let db = target.server.domain.database().connection();
    assert_eq!(count(db, "users").await, 1);
    assert_eq!(count(db, "datasets").await, 1 + valid.datasets);
    assert_eq!(count(db, "analyses").await, 1 + valid.analyses);
    assert_eq!(count(db, "reports").await, 1);
    // Logins only; no unlock attempt issued a token.
    assert_eq!(count(db, "access_tokens").await, 1 + valid.tokens);
    assert_eq!(count(db, "usage_tracking").await, 1);
    let usage = target
        .client
        .get(target.url("/api/v1/me/usage"))
        .bearer_auth(&target.token)
        .send()
        .await
        .unwrap();
    let (status, usage) = answer("usage", usage).await;
    assert_eq!(status, 200);
    assert_eq!(usage["datasets"]["used"], 1 + valid.datasets, "{usage}");
    assert_eq!(usage["reports"]["used"], 1, "{usage}");
    // The wrong logins were cleared by the right one that followed them.
    assert_eq!(count(db, "attempt_limits").await, 0);
    // One stored file per dataset, no staging leftovers.
    let files = stored_files(&target.data_dir.join("datasets"));
    assert_eq!(files.len() as i64, 1 + valid.datasets, "{files:?}");
    // The set-up's rows are unchanged by every refused rename and update.
    let res = target
        .client
        .get(target.url(&format!("/api/v1/datasets/{}", target.dataset_id)))
        .bearer_auth(&target.token)
        .send()
        .await
        .unwrap();
    let (status, dataset) = answer("dataset", res).await;
    assert_eq!(status, 200);
    assert_eq!(dataset["name"], "valid.csv", "{dataset}");
    assert_eq!(dataset["row_count"], 1, "{dataset}");
    let res = target
        .client
        .get(target.url(&format!("/api/v1/analyses/{}", target.analysis_id)))
        .bearer_auth(&target.token)
        .send()
        .await
        .unwrap();
    let (status, analysis) = answer("analysis", res).await;
    assert_eq!(status, 200);
    assert_eq!(analysis["name"], "valid", "{analysis}");
    assert_eq!(analysis["config"], json!({"k": 1}), "{analysis}");
    assert_eq!(analysis["results"], Value::Null, "{analysis}");
    let me = target
        .client
        .get(target.url("/api/v1/me"))
        .bearer_auth(&target.token)
        .send()
        .await
        .unwrap();
    let (status, me) = answer("me", me).await;
    assert_eq!(status, 200);
    assert_eq!(me["full_name"], Value::Null, "{me}");
    assert!(error_bodies_seen() > 40);
}

/// Rows that some of the requests below legitimately create (they look hostile but are
/// acceptable), on top of the set-up's one of each.
#[derive(Default)]
struct Valid {
    analyses: i64,
    datasets: i64,
    tokens: i64,
}

/// Every file under `dir`, recursively.
fn stored_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

async fn oversized_json(t: &Target) {
    // Declared too large: refused from the header alone.
    let big = json!({"email": "x@example.com", "password": "p".repeat(JSON_LIMIT + 10)});
    let (_, body) = t
        .json(
            "json over the limit",
            Method::POST,
            "/api/v1/auth/register",
            &big,
            &[413],
        )
        .await;
    assert_eq!(slug(&body), "payload-too-large");

    // `config` and `results` past their documented size (1 MiB of JSON).
    let config = json!({"name": "big", "config": {"blob": "x".repeat(JSON_LIMIT)}});
    t.json(
        "config over the limit",
        Method::POST,
        "/api/v1/analyses",
        &config,
        &[413, 422],
    )
    .await;
    let results = json!({"results": {"blob": "x".repeat(JSON_LIMIT)}});
    let path = format!("/api/v1/analyses/{}", t.analysis_id);
    t.json(
        "results over the limit",
        Method::PATCH,
        &path,
        &results,
        &[413, 422],
    )
    .await;
    // Many small values add up the same way.
    let many: Vec<u32> = (0..300_000).collect();
    let results = json!({"results": {"values": many}});
    t.json(
        "results of many values",
        Method::PATCH,
        &path,
        &results,
        &[413, 422],
    )
    .await;

    // No declared length (chunked): cut off while streaming. The server answers after
    // the limit, while the client has not finished (the final chunk is never sent).
    let mut stream = TcpStream::connect(t.server.addr).await.unwrap();
    let head = t.head(
        "POST",
        "/api/v1/analyses",
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let piece = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < JSON_LIMIT + 256 * 1024 {
        if stream.write_all(&chunk(&piece)).await.is_err() {
            break;
        }
        sent += piece.len();
    }
    let res = answered(
        "chunked json over the limit",
        read_until_closed(&mut stream, Duration::from_secs(10)).await,
    );
    assert_eq!(res.status, 413, "{res:?}");
}

async fn deep_json(t: &Target) {
    // Thousands deep, as the whole body and inside `config`.
    let depth = 20_000;
    let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    t.json_bytes(
        "array nested 20000 deep",
        Method::POST,
        "/api/v1/auth/register",
        body.into_bytes(),
        &[400, 422],
    )
    .await;
    let body = format!(
        r#"{{"name": "deep", "config": {}1{}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    t.json_bytes(
        "config nested 20000 deep",
        Method::POST,
        "/api/v1/analyses",
        body.into_bytes(),
        &[400, 422],
    )
    .await;
    // The unlock body has its own small limit (8 KiB): 3,000 deep fits under it.
    let depth = 3_000;
    let body = format!(
        r#"{{"password": {}"x"{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let res = t
        .client
        .post(t.url(&format!("/r/{}/unlock", t.report_code)))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, _) = answer("unlock body nested 3000 deep", res).await;
    assert_eq!(status, 400);
    let depth = 20_000;
    // An unclosed nest of the same depth: refused, not a stack overflow.
    t.json_bytes(
        "unterminated nesting",
        Method::POST,
        "/api/v1/auth/register",
        "[".repeat(depth).into_bytes(),
        &[400],
    )
    .await;
    t.json_bytes(
        "unterminated nesting into a typed body",
        Method::POST,
        "/api/v1/analyses",
        "[".repeat(depth).into_bytes(),
        &[400],
    )
    .await;
}

async fn over_long_strings(t: &Target, valid: &mut Valid) {
    let long = "n".repeat(256);
    let path = format!("/api/v1/analyses/{}", t.analysis_id);
    for (case, method, path, body) in [
        (
            "register email of 300 chars",
            Method::POST,
            "/api/v1/auth/register".to_owned(),
            json!({"email": format!("{}@example.com", "e".repeat(290)), "password": "long enough pass"}),
        ),
        (
            "register full_name of 256 chars",
            Method::POST,
            "/api/v1/auth/register".to_owned(),
            json!({"email": "long-name@example.com", "password": "long enough pass", "full_name": long}),
        ),
        (
            "register password of 2000 bytes",
            Method::POST,
            "/api/v1/auth/register".to_owned(),
            json!({"email": "long-pass@example.com", "password": "p".repeat(2000)}),
        ),
        (
            "me full_name of 256 chars",
            Method::PATCH,
            "/api/v1/me".to_owned(),
            json!({"full_name": long}),
        ),
        (
            "me email of 300 chars",
            Method::PATCH,
            "/api/v1/me".to_owned(),
            json!({"email": format!("{}@example.com", "e".repeat(290))}),
        ),
        (
            "analysis name of 256 chars",
            Method::POST,
            "/api/v1/analyses".to_owned(),
            json!({"name": long}),
        ),
        (
            "analysis rename to 256 chars",
            Method::PATCH,
            path.clone(),
            json!({"name": long}),
        ),
        (
            "dataset rename to 256 chars",
            Method::PATCH,
            format!("/api/v1/datasets/{}", t.dataset_id),
            json!({"name": long}),
        ),
        (
            "report password of 2000 bytes",
            Method::POST,
            format!("/api/v1/analyses/{}/reports", t.analysis_id),
            json!({"password": "p".repeat(2000)}),
        ),
        (
            "password change to 2000 bytes",
            Method::POST,
            "/api/v1/me/password".to_owned(),
            json!({"current_password": crate::support::PASSWORD, "new_password": "p".repeat(2000)}),
        ),
    ] {
        let (_, body) = t.json(case, method, &path, &body, &[422]).await;
        assert_eq!(slug(&body), "validation", "{case}: {body}");
    }

    // A huge password at login is a wrong login, answered without hashing a megabyte.
    let started = Instant::now();
    t.json(
        "login with a 900 KB password",
        Method::POST,
        "/api/v1/auth/login",
        &json!({"email": "ada@example.com", "password": "p".repeat(900 * 1024)}),
        &[401, 422],
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    // ...and counted as a failure like any other; a right login clears it again.
    login(&t.client, &t.server.base, "ada@example.com").await;
    valid.tokens += 1;

    // The limit is in characters: 255 four-byte characters are fine on both databases.
    let emoji = "\u{1F600}".repeat(255);
    t.json(
        "analysis name of 255 emoji",
        Method::POST,
        "/api/v1/analyses",
        &json!({"name": emoji}),
        &[201],
    )
    .await;
    valid.analyses += 1;

    // A name part of an upload past 255 characters.
    let form = upload_form("named.csv", b"a\n1\n".to_vec())
        .part("name", reqwest::multipart::Part::text("d".repeat(256)));
    t.upload("upload name of 256 chars", form, &[422]).await;
}

async fn nul_and_bad_utf8(t: &Target, valid: &mut Valid) {
    let path = format!("/api/v1/analyses/{}", t.analysis_id);
    // NUL characters (escaped in JSON, so the JSON itself is valid) in text fields.
    for (case, method, path, body) in [
        (
            "register full_name with NUL",
            Method::POST,
            "/api/v1/auth/register".to_owned(),
            json!({"email": "nul@example.com", "password": "long enough pass", "full_name": "a\u{0}b"}),
        ),
        (
            "register email with NUL",
            Method::POST,
            "/api/v1/auth/register".to_owned(),
            json!({"email": "nul\u{0}@example.com", "password": "long enough pass"}),
        ),
        (
            "me full_name with NUL",
            Method::PATCH,
            "/api/v1/me".to_owned(),
            json!({"full_name": "a\u{0}b"}),
        ),
        (
            "analysis name with NUL",
            Method::POST,
            "/api/v1/analyses".to_owned(),
            json!({"name": "a\u{0}b"}),
        ),
        (
            "analysis rename with NUL",
            Method::PATCH,
            path.clone(),
            json!({"name": "a\u{0}b"}),
        ),
    ] {
        let (_, body) = t.json(case, method, &path, &body, &[422]).await;
        assert_eq!(slug(&body), "validation", "{case}: {body}");
    }
    t.json(
        "dataset rename with NUL",
        Method::PATCH,
        &format!("/api/v1/datasets/{}", t.dataset_id),
        &json!({"name": "a\u{0}b"}),
        &[422],
    )
    .await;
    // Refused like any text with NUL, or just a wrong login: never a database error.
    t.json(
        "login email with NUL",
        Method::POST,
        "/api/v1/auth/login",
        &json!({"email": "ada\u{0}@example.com", "password": "wrong password"}),
        &[401, 422],
    )
    .await;
    t.json(
        "login password with NUL",
        Method::POST,
        "/api/v1/auth/login",
        &json!({"email": "ada@example.com", "password": "wrong\u{0}password"}),
        &[401, 422],
    )
    .await;
    let res = t
        .client
        .post(t.url(&format!("/r/{}/unlock", t.report_code)))
        .json(&json!({"password": "wrong\u{0}password"}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer("unlock password with NUL", res).await;
    assert!([401, 422].contains(&status), "{status} {body}");
    // NUL inside `config` and `results`: PostgreSQL's JSON types cannot hold it.
    let (_, body) = t
        .json(
            "config with NUL",
            Method::POST,
            "/api/v1/analyses",
            &json!({"name": "nul config", "config": {"k": "a\u{0}b"}}),
            &[422],
        )
        .await;
    assert_eq!(slug(&body), "validation", "{body}");
    t.json(
        "results with a NUL key",
        Method::PATCH,
        &path,
        &json!({"results": {"a\u{0}": 1}}),
        &[422],
    )
    .await;

    // Raw bytes that are not JSON text: a NUL byte, invalid UTF-8, a lone surrogate.
    for (case, bytes) in [
        ("raw NUL byte in JSON", b"{\"name\": \"a\x00b\"}".to_vec()),
        (
            "invalid UTF-8 in JSON",
            b"{\"name\": \"a\xff\xfeb\"}".to_vec(),
        ),
        (
            "truncated UTF-8 in JSON",
            b"{\"name\": \"a\xe2\x82\"}".to_vec(),
        ),
        (
            "lone surrogate in JSON",
            br#"{"name": "a\ud800b"}"#.to_vec(),
        ),
        ("NUL bytes only", vec![0u8; 64]),
    ] {
        t.json_bytes(case, Method::POST, "/api/v1/analyses", bytes, &[400, 422])
            .await;
    }

    // Uploads: invalid UTF-8 is refused; NUL characters are valid UTF-8 text.
    for (case, name, bytes) in [
        (
            "CSV with invalid UTF-8",
            "bad.csv",
            b"a,b\n\xff\xfe,1\n".to_vec(),
        ),
        (
            "TSV with invalid UTF-8",
            "bad.tsv",
            b"a\tb\n1\t\xc3\n".to_vec(),
        ),
        (
            "JSON with invalid UTF-8",
            "bad.json",
            b"[{\"a\": \"\xff\"}]".to_vec(),
        ),
        (
            "NDJSON with invalid UTF-8",
            "bad.ndjson",
            b"{\"a\": \"\xff\"}\n".to_vec(),
        ),
        (
            "JSON with a raw NUL byte",
            "nul.json",
            b"[{\"a\": \"\x00\"}]".to_vec(),
        ),
        (
            "binary file as CSV",
            "noise.csv",
            (0..=255u8).cycle().take(4096).collect(),
        ),
        (
            "deeply nested JSON file",
            "deep.json",
            format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)).into_bytes(),
        ),
    ] {
        t.upload(case, upload_form(name, bytes), &[422]).await;
    }
    // Values nested 50,000 deep inside an object are well-formed JSON: skipped without
    // recursion, and the file is accepted.
    let deep_values = format!("[{{\"a\": {}1{}}}]", "[".repeat(50_000), "]".repeat(50_000));
    t.upload(
        "JSON object values nested deep",
        upload_form("deep-values.json", deep_values.into_bytes()),
        &[201],
    )
    .await;
    valid.datasets += 1;
    // A CSV holding NUL characters is well-formed UTF-8: stored like any text, or refused.
    let status = t
        .upload(
            "CSV with NUL characters",
            upload_form("nul.csv", b"a,b\n\x00,1\n".to_vec()),
            &[201, 422],
        )
        .await;
    if status == 201 {
        valid.datasets += 1;
    }
}

async fn uploads(t: &Target, valid: &mut Valid) {
    // Declared larger than the limit: refused before the body is read.
    let big = vec![b'x'; UPLOAD_LIMIT as usize * 4];
    let mut csv = b"a\n".to_vec();
    csv.extend_from_slice(&big);
    let started = Instant::now();
    t.upload("upload over the limit", upload_form("big.csv", csv), &[413])
        .await;
    assert!(started.elapsed() < Duration::from_secs(10));

    // Undeclared length (chunked): cut off once the file passes the limit, while the
    // client is still sending; the final chunk never comes.
    let (boundary, _) = multipart_file("big.csv", b"");
    let mut stream = TcpStream::connect(t.server.addr).await.unwrap();
    let head = t.head(
        "POST",
        "/api/v1/datasets",
        &format!(
            "Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
        ),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&chunk(&multipart_file_head(&boundary, "big.csv")))
        .await
        .unwrap();
    let line = vec![b'x'; 16 * 1024];
    let mut sent = 0u64;
    while sent < UPLOAD_LIMIT * 3 {
        if stream.write_all(&chunk(&line)).await.is_err() {
            break;
        }
        sent += line.len() as u64;
    }
    let res = answered(
        "chunked upload over the limit",
        read_until_closed(&mut stream, Duration::from_secs(10)).await,
    );
    assert_eq!(res.status, 413, "{res:?}");

    // Exactly at the limit is fine; one byte more is not.
    let mut exact = b"a\n".to_vec();
    exact.resize(UPLOAD_LIMIT as usize, b'1');
    exact[UPLOAD_LIMIT as usize - 1] = b'\n';
    t.upload(
        "upload at the limit",
        upload_form("exact.csv", exact.clone()),
        &[201],
    )
    .await;
    valid.datasets += 1;
    exact.push(b'\n');
    t.upload(
        "upload one byte over",
        upload_form("over.csv", exact),
        &[413],
    )
    .await;
}

async fn multipart_garbage(t: &Target, valid: &mut Valid) {
    let cases: Vec<(&str, String, Vec<u8>, &[u16])> = vec![
        (
            "multipart without a boundary",
            "multipart/form-data".to_owned(),
            b"--x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "upload as JSON",
            "application/json".to_owned(),
            b"{}".to_vec(),
            &[400],
        ),
        (
            "truncated multipart",
            "multipart/form-data; boundary=b".to_owned(),
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\na,b\n1,2".to_vec(),
            &[400, 422],
        ),
        (
            "multipart of garbage",
            "multipart/form-data; boundary=b".to_owned(),
            vec![0xff; 1024],
            &[400, 422],
        ),
        (
            "unknown part",
            "multipart/form-data; boundary=b".to_owned(),
            b"--b\r\nContent-Disposition: form-data; name=\"evil\"\r\n\r\nx\r\n--b--\r\n".to_vec(),
            &[422],
        ),
        (
            "two file parts",
            "multipart/form-data; boundary=b".to_owned(),
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\na\n1\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.csv\"\r\n\r\na\n1\n\r\n--b--\r\n".to_vec(),
            &[422],
        ),
        (
            "file name with a path",
            "multipart/form-data; boundary=b".to_owned(),
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../etc/passwd\"\r\n\r\nroot\n\r\n--b--\r\n".to_vec(),
            &[422],
        ),
        (
            "unsupported file type",
            "multipart/form-data; boundary=b".to_owned(),
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.exe\"\r\n\r\nMZ\r\n--b--\r\n".to_vec(),
            &[422],
        ),
        (
            "name part of invalid UTF-8",
            "multipart/form-data; boundary=b".to_owned(),
            b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\xff\xfe\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\na\n1\n\r\n--b--\r\n".to_vec(),
            &[422],
        ),
    ];
    for (case, content_type, body, allowed) in cases {
        let res = t
            .client
            .post(t.url("/api/v1/datasets"))
            .bearer_auth(&t.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let (status, body) = answer(case, res).await;
        assert!(allowed.contains(&status), "{case}: {status} {body}");
    }
    // See "dataset rename with NUL": stored on SQLite, a clean 422 on PostgreSQL.
    let on_sqlite = t
        .server
        .domain
        .database()
        .connection()
        .get_database_backend()
        == DbBackend::Sqlite;
    let lenient: &[u16] = if on_sqlite { &[201, 422] } else { &[422] };
    // A name part after the file is applied once the file is stored; should that fail,
    // the upload stands under its file name. Either way: no 5xx, rows counted.
    let form = upload_form("a.csv", b"a\n1\n".to_vec())
        .part("name", reqwest::multipart::Part::text("a\u{0}b"));
    if t.upload("upload name with NUL", form, &[201, 422]).await == 201 {
        valid.datasets += 1;
    }
    let form = reqwest::multipart::Form::new()
        .part("name", reqwest::multipart::Part::text("a\u{0}b"))
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"a\n1\n".to_vec()).file_name("a.csv"),
        );
    if t.upload("upload name with NUL, name first", form, lenient)
        .await
        == 201
    {
        valid.datasets += 1;
    }
}

async fn slow_clients(t: &Target, valid: &mut Valid) {
    // A head trickled slower than the head timeout: cut off (408, or closed).
    let mut stream = TcpStream::connect(t.server.addr).await.unwrap();
    let started = Instant::now();
    let head = t.head("GET", "/api/v1/me", "X-Slow: yes\r\n");
    let mut cut_off = false;
    for byte in head.as_bytes() {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > HEAD_TIMEOUT * 4 {
            break;
        }
    }
    let outcome = read_until_closed(&mut stream, HEAD_TIMEOUT * 4).await;
    match &outcome {
        RawOutcome::Answered(res) => {
            res.record("slow head");
            assert_eq!(res.status, 408, "{res:?}");
        }
        RawOutcome::Closed => {}
        RawOutcome::StillOpen => panic!("a trickled head kept its connection (cut off: {cut_off})"),
    }
    assert!(started.elapsed() < HEAD_TIMEOUT * 10);

    // A head that never ends.
    let mut stream = TcpStream::connect(t.server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let outcome = read_until_closed(&mut stream, HEAD_TIMEOUT * 5).await;
    assert!(!matches!(outcome, RawOutcome::StillOpen), "{outcome:?}");
    if let RawOutcome::Answered(res) = &outcome {
        res.record("unfinished head");
    }

    // A body that stalls: the request is refused once it has been idle too long, and the
    // connection is freed. JSON body and upload alike.
    for (case, path, extra, first) in [
        (
            "stalled JSON body",
            "/api/v1/analyses",
            "Content-Type: application/json\r\nContent-Length: 200\r\nConnection: close\r\n".to_owned(),
            b"{\"name\": \"sl".to_vec(),
        ),
        (
            "stalled upload",
            "/api/v1/datasets",
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\nConnection: close\r\n".to_owned(),
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\na,b\n".to_vec(),
        ),
        (
            "stalled unlock",
            &*format!("/r/{}/unlock", t.report_code),
            "Content-Type: application/json\r\nContent-Length: 200\r\nConnection: close\r\n".to_owned(),
            b"{\"pass".to_vec(),
        ),
    ] {
        let mut stream = TcpStream::connect(t.server.addr).await.unwrap();
        let started = Instant::now();
        let mut request = t.head("POST", path, &extra).into_bytes();
        request.extend_from_slice(&first);
        stream.write_all(&request).await.unwrap();
        let outcome = read_until_closed(&mut stream, BODY_IDLE_TIMEOUT * 6).await;
        match &outcome {
            RawOutcome::Answered(res) => {
                res.record(case);
                assert!([400, 408].contains(&res.status), "{case}: {res:?}");
            }
            RawOutcome::Closed => {}
            RawOutcome::StillOpen => panic!("{case}: the server still waits for the body"),
        }
        assert!(started.elapsed() < BODY_IDLE_TIMEOUT * 6, "{case}");
    }

    // A body trickled steadily (never idle for long) is still accepted.
    let body = br#"{"name": "trickled", "config": null}"#;
    let mut stream = TcpStream::connect(t.server.addr).await.unwrap();
    let head = t.head(
        "POST",
        "/api/v1/analyses",
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        ),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(8) {
        tokio::time::sleep(BODY_IDLE_TIMEOUT / 4).await;
        stream.write_all(piece).await.unwrap();
    }
    let res = answered(
        "trickled body",
        read_until_closed(&mut stream, Duration::from_secs(10)).await,
    );
    assert_eq!(res.status, 201, "{res:?}");
    valid.analyses += 1;
}

async fn oversized_heads(t: &Target) {
    let addr = t.server.addr;
    // One huge header, and very many small ones.
    let huge = format!(
        "GET /api/v1/me HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let mut many = String::from("GET /api/v1/me HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    let long_target = format!(
        "GET /api/v1/datasets?cursor={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "c".repeat(300 * 1024)
    );
    for (case, request) in [
        ("200 KiB header", huge),
        ("500 headers", many),
        ("300 KiB request target", long_target),
    ] {
        match raw_exchange(addr, request.as_bytes(), Duration::from_secs(10)).await {
            RawOutcome::Answered(res) => {
                res.record(case);
                assert!([400, 414, 431].contains(&res.status), "{case}: {res:?}");
            }
            RawOutcome::Closed => {}
            RawOutcome::StillOpen => panic!("{case}: no answer"),
        }
    }
    // A bearer token of 8 KiB, and one of bytes that are not ASCII.
    let mut request = format!(
        "GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        "t".repeat(8 * 1024)
    )
    .into_bytes();
    let res = answered(
        "8 KiB token",
        raw_exchange(addr, &request, Duration::from_secs(10)).await,
    );
    assert_eq!(res.status, 401);
    request = b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x00\r\nConnection: close\r\n\r\n".to_vec();
    match raw_exchange(addr, &request, Duration::from_secs(10)).await {
        RawOutcome::Answered(res) => {
            res.record("non-ASCII token");
            assert!([400, 401].contains(&res.status), "{res:?}");
        }
        RawOutcome::Closed => {}
        RawOutcome::StillOpen => panic!("non-ASCII token: no answer"),
    }
}

async fn bad_paths_and_queries(t: &Target) {
    for (case, path, allowed) in [
        (
            "long id",
            format!("/api/v1/analyses/{}", "9".repeat(10_000)),
            &[404, 422][..],
        ),
        (
            "id with NUL",
            "/api/v1/analyses/%00".to_owned(),
            &[404, 422],
        ),
        (
            "id of invalid UTF-8",
            "/api/v1/analyses/%FF%FE".to_owned(),
            &[404, 422],
        ),
        (
            "huge limit",
            "/api/v1/analyses?limit=99999999999999999999999".to_owned(),
            &[422],
        ),
        (
            "negative limit",
            "/api/v1/analyses?limit=-1".to_owned(),
            &[422],
        ),
        (
            "garbage cursor",
            format!("/api/v1/analyses?cursor={}", "Zm9v".repeat(2_000)),
            &[422],
        ),
        (
            "cursor with NUL",
            "/api/v1/analyses?cursor=%00".to_owned(),
            &[422],
        ),
        (
            "status with NUL",
            "/api/v1/analyses?status=draft%00".to_owned(),
            &[422],
        ),
        (
            "tier filter garbage",
            "/api/v1/admin/users?tier=%FF".to_owned(),
            &[403, 422],
        ),
        (
            "long short code",
            format!("/r/{}", "a".repeat(5_000)),
            &[404],
        ),
        ("short code with NUL", "/r/abc%00def".to_owned(), &[404]),
        (
            "short code of invalid UTF-8",
            "/r/%FF%FE".to_owned(),
            &[404],
        ),
    ] {
        let res = t
            .client
            .get(t.url(&path))
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let (status, body) = answer(case, res).await;
        assert!(allowed.contains(&status), "{case}: {status} {body}");
    }
}

/// Sends a CSV whose data row is one line of `line_bytes` bytes as a chunked upload,
/// generated on the fly (never held in memory), reading the answer concurrently: a server
/// that refuses early may stop reading. Returns the answer and how much was sent.
async fn stream_long_line(
    addr: std::net::SocketAddr,
    token: &str,
    line_bytes: usize,
) -> (RawOutcome, usize) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let (boundary, _) = multipart_file("long.csv", b"");
    let head = format!(
        "POST /api/v1/datasets HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    let (answered_tx, answered_rx) = tokio::sync::oneshot::channel::<()>();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress_w = progress.clone();
    let sender = tokio::spawn(async move {
        let mut sent = 0usize;
        let mut first = multipart_file_head(&boundary, "long.csv");
        first.extend_from_slice(b"a,b\n");
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(&chunk(&first)).await?;
        let piece = vec![b'x'; 256 * 1024];
        while sent < line_bytes {
            let n = piece.len().min(line_bytes - sent);
            writer.write_all(&chunk(&piece[..n])).await?;
            sent += n;
            progress_w.store(sent, std::sync::atomic::Ordering::Relaxed);
        }
        let mut tail = b",1\n".to_vec();
        tail.extend_from_slice(crate::support::multipart_tail(&boundary).as_bytes());
        writer.write_all(&chunk(&tail)).await?;
        writer.write_all(b"0\r\n\r\n").await?;
        // Keep the write side open until the answer is in: dropping it would half-close
        // the connection, and actix takes an end of stream while the body still sits
        // unread in its buffers for a client gone away (the request then fails).
        let _ = answered_rx.await;
        drop(writer);
        Ok::<usize, std::io::Error>(sent)
    });
    let mut buf = Vec::new();
    let outcome = match tokio::time::timeout(Duration::from_secs(300), async {
        let mut piece = [0u8; 16 * 1024];
        loop {
            match tokio::io::AsyncReadExt::read(&mut reader, &mut piece).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&piece[..n]),
            }
            if crate::support::parse_response(&buf).is_some_and(|r| {
                r.header("content-length")
                    .and_then(|l| l.parse::<usize>().ok())
                    .is_some_and(|l| r.body.len() >= l)
            }) {
                break;
            }
        }
    })
    .await
    {
        Err(_) => RawOutcome::StillOpen,
        Ok(()) => {
            crate::support::parse_response(&buf).map_or(RawOutcome::Closed, RawOutcome::Answered)
        }
    };
    // What had been sent when the answer came.
    let sent = progress.load(std::sync::atomic::Ordering::Relaxed);
    let _ = answered_tx.send(());
    sender.abort();
    let _ = sender.await;
    (outcome, sent)
}

/// One CSV line of 100 MB: at the default 50 MB limit it is cut off while streaming
/// (413, well before the client is done); with the limit raised above it, it is parsed
/// in bounded memory (one record at a time) and stored. The real binary runs here, so
/// that its peak memory can be read from /proc.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_100_mb_line() {
    const LINE: usize = 100 * 1024 * 1024;
    let db = TestDb::sqlite().await;
    let data_dir = db.data_dir();
    let c = client();

    let default_limit = crate::support::Process::serve(&db.url, &data_dir, &[]).await;
    register(&c, &default_limit.base, "ada@example.com").await;
    let conn = db.connect().await;
    sea_orm::ConnectionTrait::execute_raw(
        &conn,
        sea_orm::Statement::from_string(DbBackend::Sqlite, "UPDATE users SET tier = 'pro'"),
    )
    .await
    .unwrap();
    let token = login(&c, &default_limit.base, "ada@example.com").await;
    // The client is ready to send a line of 1 GiB: the answer comes long before.
    let started = Instant::now();
    let (outcome, sent) = stream_long_line(default_limit.addr, &token, 1024 * 1024 * 1024).await;
    let res = answered("long line at the default limit", outcome);
    assert_eq!(res.status, 413, "{res:?}");
    assert!(sent >= 50 * 1024 * 1024, "{sent}");
    assert!(
        sent < 1024 * 1024 * 1024,
        "cut off while streaming, after {sent} bytes"
    );
    eprintln!(
        "long line, default limit: 413 after {:?}, when the client had sent {} MiB",
        started.elapsed(),
        sent / (1024 * 1024)
    );
    // Exactly 100 MB: refused the same way.
    let (outcome, _) = stream_long_line(default_limit.addr, &token, LINE).await;
    let res = answered("100 MB line at the default limit", outcome);
    assert_eq!(res.status, 413, "{res:?}");
    drop(default_limit);

    let raised = crate::support::Process::serve(
        &db.url,
        &data_dir,
        &[("IOPS_MAX_UPLOAD_BYTES", &(LINE + 1024 * 1024).to_string())],
    )
    .await;
    let before = raised.peak_rss_bytes();
    let started = Instant::now();
    let (outcome, sent) = stream_long_line(raised.addr, &token, LINE).await;
    let res = answered("100 MB line above the limit", outcome);
    assert_eq!(res.status, 201, "{res:?}");
    assert_eq!(sent, LINE);
    let dataset: Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(dataset["row_count"], 1, "{dataset}");
    assert_eq!(dataset["column_count"], 2, "{dataset}");
    let peak = raised.peak_rss_bytes();
    eprintln!(
        "100 MB line, raised limit: 201 after {:?}; peak RSS {} MiB (was {} MiB)",
        started.elapsed(),
        peak / (1024 * 1024),
        before / (1024 * 1024)
    );
    // The parser holds one record at a time: memory grows by about the longest line
    // (the upload limit caps it), never by a copy of the file or more.
    assert!(
        peak.saturating_sub(before) < 2 * LINE as u64,
        "peak RSS {peak} (from {before}) for a line of {LINE}"
    );
    assert_eq!(count(&conn, "datasets").await, 1);
    conn.close().await.ok();
}
