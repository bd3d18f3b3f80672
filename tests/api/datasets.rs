//! Datasets over HTTP: the streamed multipart upload and its refusals, the tier limit under
//! concurrency, list/read/rename/delete, ownership and the common request rules.
use std::path::Path;

use domain::Settings;
use futures_util::future::join_all;
use iops_tests::{TestDb, on_both};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_problem, spawn, spawn_with};

pub const CSV: &str = "city,population,area\nParis,2100000,105.4\nLyon,520000,47.9\n\"Saint-Denis, 93\",113000,12.4\n";

/// `POST /api/v1/datasets` with one `file` part (and a `name` part first, when given).
pub async fn upload_as(
    app: &TestApp,
    token: &str,
    file_name: &str,
    content_type: Option<&str>,
    bytes: impl Into<Vec<u8>>,
    name: Option<&str>,
) -> Response {
    let mut part = Part::bytes(bytes.into()).file_name(file_name.to_owned());
    if let Some(ct) = content_type {
        part = part.mime_str(ct).expect("mime");
    }
    let mut form = Form::new();
    if let Some(name) = name {
        form = form.text("name", name.to_owned());
    }
    form = form.part("file", part);
    post_form(app, Some(token), form).await
}

/// Posts `form` to the upload endpoint as it is (parts in any order, or none).
pub async fn post_form(app: &TestApp, token: Option<&str>, form: Form) -> Response {
    app.request(Method::POST, "/api/v1/datasets", token)
        .multipart(form)
        .send()
        .await
        .expect("send upload")
}

/// Uploads [`CSV`] as `file_name` and returns the dataset (answer asserted `201`).
pub async fn upload_csv(app: &TestApp, token: &str, file_name: &str) -> Value {
    let res = upload_as(app, token, file_name, Some("text/csv"), CSV, None).await;
    assert_eq!(res.status(), StatusCode::CREATED, "upload {file_name}");
    res.json().await.expect("dataset json")
}

/// Files under the store (staging excluded), as relative paths.
fn stored_files(app: &TestApp) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != ".staging") {
                    walk(&path, root, out);
                }
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let root = app.store.root().to_owned();
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

fn staging_is_empty(app: &TestApp) -> bool {
    std::fs::read_dir(app.store.root().join(".staging"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

async fn datasets_used(app: &TestApp, token: &str) -> i64 {
    let usage: Value = app
        .get("/api/v1/me/usage", Some(token))
        .await
        .json()
        .await
        .unwrap();
    usage["datasets"]["used"].as_i64().expect("datasets.used")
}

on_both!(uploads_each_format, uploads_each_format_body);
async fn uploads_each_format_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    app.domain
        .accounts
        .set_tier_by_email(
            &domain::Admin::local_operator(),
            "ada@example.com",
            domain::Tier::Pro,
        )
        .await
        .unwrap();

    let res = upload_as(&app, &token, "cities.csv", Some("text/csv"), CSV, None).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let csv: Value = res.json().await.unwrap();
    let mut keys: Vec<&str> = csv
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "column_count",
            "columns",
            "created_at",
            "id",
            "name",
            "row_count",
            "size_bytes",
            "updated_at"
        ]
    );
    assert_eq!(csv["name"], "cities.csv");
    assert_eq!(
        csv["columns"].as_array().map(Vec::len),
        csv["column_count"].as_u64().map(|n| n as usize),
        "the engine reads as many columns as the upload counted"
    );
    assert_eq!(csv["row_count"], 3);
    assert_eq!(csv["column_count"], 3);
    assert_eq!(csv["size_bytes"], CSV.len());
    assert!(csv["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        location,
        format!("/api/v1/datasets/{}", csv["id"].as_str().unwrap())
    );

    // A BOM and TSV.
    let tsv = "\u{feff}a\tb\n1\t2\n3\t4\n5\t6\n7\t8\n";
    let res = upload_as(&app, &token, "numbers.TSV", None, tsv, Some("My numbers")).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (
            body["name"].as_str(),
            body["row_count"].as_i64(),
            body["column_count"].as_i64()
        ),
        (Some("My numbers"), Some(4), Some(2))
    );

    let json_file = r#"[{"a": 1, "b": "x"}, {"a": 2, "c": true}]"#;
    let res = upload_as(
        &app,
        &token,
        "rows.json",
        Some("application/json"),
        json_file,
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["row_count"].as_i64(), body["column_count"].as_i64()),
        (Some(2), Some(3))
    );

    let ndjson = "{\"a\": 1}\n{\"a\": 2, \"b\": 3}\n{\"b\": 4}\n";
    for file_name in ["events.ndjson", "events.jsonl"] {
        let res = upload_as(&app, &token, file_name, None, ndjson, None).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{file_name}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            (body["row_count"].as_i64(), body["column_count"].as_i64()),
            (Some(3), Some(2))
        );
    }

    // No useful extension: the part's Content-Type decides.
    let res = upload_as(
        &app,
        &token,
        "export",
        Some("text/csv; charset=utf-8"),
        CSV,
        Some("export"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.json::<Value>().await.unwrap()["row_count"], 3);

    // Megabytes, streamed through in many chunks.
    let mut big = String::from("n,square\n");
    for i in 0..200_000u64 {
        big.push_str(&format!("{i},{}\n", i * i));
    }
    let res = upload_as(&app, &token, "squares.csv", None, big.clone(), None).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["row_count"], 200_000);
    assert_eq!(body["size_bytes"], big.len());

    let list: Value = app
        .get("/api/v1/datasets", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 7);
    assert_eq!(list["next_cursor"], Value::Null);
    let got: Value = app.get(&location, Some(&token)).await.json().await.unwrap();
    assert_eq!(got, csv);
    // Stored unmodified, one file per dataset.
    assert_eq!(stored_files(&app).len(), 7);
    assert!(staging_is_empty(&app));
    let key = stored_files(&app)
        .into_iter()
        .find(|f| f.contains(csv["id"].as_str().unwrap()))
        .expect("the csv's file");
    assert_eq!(
        std::fs::read(app.store.root().join(key)).unwrap(),
        CSV.as_bytes()
    );
}

on_both!(
    upload_refusals_store_nothing,
    upload_refusals_store_nothing_body
);
async fn upload_refusals_store_nothing_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;

    // Not multipart at all.
    let res = app
        .post("/api/v1/datasets", Some(&token), &json!({"file": "a,b"}))
        .await;
    assert_problem(res, 400, "bad-request").await;
    let res = app
        .request(Method::POST, "/api/v1/datasets", Some(&token))
        .header(header::CONTENT_TYPE, "text/csv")
        .body(CSV)
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "bad-request").await;

    // Multipart without a file part.
    let form = Form::new().text("name", "nothing");
    let res = post_form(&app, Some(&token), form).await;
    assert_problem(res, 422, "validation").await;

    // An unknown part, before or after the file.
    let form = Form::new()
        .text("owner", "someone")
        .part("file", Part::text(CSV).file_name("a.csv"));
    let res = post_form(&app, Some(&token), form).await;
    assert_problem(res, 422, "validation").await;
    let form = Form::new()
        .part("file", Part::text(CSV).file_name("a.csv"))
        .text("user_id", "someone");
    let res = post_form(&app, Some(&token), form).await;
    assert_problem(res, 422, "validation").await;

    // Unsupported type.
    let res = upload_as(
        &app,
        &token,
        "book.xlsx",
        Some("application/vnd.ms-excel"),
        "PK..",
        None,
    )
    .await;
    assert_problem(res, 422, "validation").await;
    // Unparsable files: a ragged CSV, invalid UTF-8, JSON that is not an array of objects,
    // a broken NDJSON line, NDJSON lines "blank" only by whitespace JSON does not allow
    // (every query of such a file would fail in the engine's reader).
    for (file_name, bytes) in [
        ("ragged.csv", b"a,b\n1,2,3\n".to_vec()),
        ("latin1.csv", b"name\n\xe9t\xe9\n".to_vec()),
        ("scalar.json", b"[1, 2, 3]".to_vec()),
        ("broken.ndjson", b"{\"a\": 1}\n{\"a\": \n".to_vec()),
        (
            "formfeed.ndjson",
            b"{\"a\": 1}\n\x0c\n{\"a\": 2}\n".to_vec(),
        ),
        ("nbsp.ndjson", "{\"a\": 1}\n\u{a0}\n".as_bytes().to_vec()),
    ] {
        let res = upload_as(&app, &token, file_name, None, bytes, None).await;
        assert_problem(res, 422, "validation").await;
    }
    // A name that breaks the rules (too long, or holding a NUL), before or after the file.
    for bad_name in ["n".repeat(256), "a\0b".to_owned()] {
        let res = upload_as(&app, &token, "a.csv", None, CSV, Some(&bad_name)).await;
        assert_problem(res, 422, "validation").await;
        let form = Form::new()
            .part("file", Part::text(CSV).file_name("a.csv"))
            .text("name", bad_name);
        let res = post_form(&app, Some(&token), form).await;
        assert_problem(res, 422, "validation").await;
    }
    // Two files.
    let form = Form::new()
        .part("file", Part::text(CSV).file_name("a.csv"))
        .part("file", Part::text(CSV).file_name("b.csv"));
    let res = post_form(&app, Some(&token), form).await;
    assert_problem(res, 422, "validation").await;

    // Not logged in.
    let form = Form::new().part("file", Part::text(CSV).file_name("a.csv"));
    let res = post_form(&app, None, form).await;
    assert_problem(res, 401, "unauthorized").await;

    assert_eq!(datasets_used(&app, &token).await, 0);
    let list: Value = app
        .get("/api/v1/datasets", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    assert!(stored_files(&app).is_empty(), "{:?}", stored_files(&app));
    assert!(staging_is_empty(&app));
}

on_both!(
    upload_over_the_limit_is_413,
    upload_over_the_limit_is_413_body
);
async fn upload_over_the_limit_is_413_body(db: TestDb) {
    let settings = Settings {
        max_upload_bytes: 1024,
        ..Settings::default()
    };
    let app = spawn_with(db, settings).await;
    let (_, token) = app.user("ada@example.com").await;

    let mut big = String::from("id,value\n");
    while big.len() <= 4096 {
        big.push_str("12345,abcdefghij\n");
    }
    let res = upload_as(&app, &token, "big.csv", None, big.clone(), None).await;
    assert_problem(res, 413, "payload-too-large").await;

    // Far over the limit: refused from the declared length, before any reading.
    let huge = "x,y\n".repeat(64 * 1024);
    let res = upload_as(&app, &token, "huge.csv", None, huge, None).await;
    assert_problem(res, 413, "payload-too-large").await;

    // Exactly at the limit is fine.
    let exact = format!("i\n{}", "1\n".repeat(511));
    assert_eq!(exact.len(), 1024);
    let res = upload_as(&app, &token, "exact.csv", None, exact, None).await;
    assert_eq!(res.status(), StatusCode::CREATED);

    assert_eq!(datasets_used(&app, &token).await, 1);
    assert_eq!(stored_files(&app).len(), 1);
    assert!(staging_is_empty(&app));
}

on_both!(
    concurrent_uploads_respect_the_free_limit,
    concurrent_uploads_respect_the_free_limit_body
);
async fn concurrent_uploads_respect_the_free_limit_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;

    let names: Vec<String> = (0..50).map(|i| format!("f{i}.csv")).collect();
    let uploads = names
        .iter()
        .map(|name| upload_as(&app, &token, name, None, CSV, None));
    let responses = join_all(uploads).await;
    let mut created = 0;
    let mut refused = 0;
    for res in responses {
        match res.status().as_u16() {
            201 => created += 1,
            402 => {
                let body = assert_problem(res, 402, "limit-exceeded").await;
                assert_eq!(body["limit"], "datasets");
                assert_eq!(body["allowed"], 5);
                assert_eq!(body["used"], 5);
                assert!(body["resets_at"].as_str().unwrap().ends_with('Z'));
                refused += 1;
            }
            other => panic!("unexpected status {other}: {}", res.text().await.unwrap()),
        }
    }
    assert_eq!((created, refused), (5, 45));
    let list: Value = app
        .get("/api/v1/datasets", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 5);
    assert_eq!(datasets_used(&app, &token).await, 5);
    assert_eq!(stored_files(&app).len(), 5);
    assert!(staging_is_empty(&app));
}

on_both!(
    name_part_in_any_order_and_rename,
    name_part_in_any_order_and_rename_body
);
async fn name_part_in_any_order_and_rename_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;

    let form = Form::new()
        .part("file", Part::text(CSV).file_name("cities.csv"))
        .text("name", "Named after");
    let res = post_form(&app, Some(&token), form).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let after: Value = res.json().await.unwrap();
    assert_eq!(after["name"], "Named after");
    let stored: Value = app
        .get(
            &format!("/api/v1/datasets/{}", after["id"].as_str().unwrap()),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["name"], "Named after");

    // A blank name (an HTML form's empty field) means the file name; paths are dropped.
    let res = upload_as(
        &app,
        &token,
        "C:\\Users\\ada\\sales.csv",
        None,
        CSV,
        Some(""),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let ds: Value = res.json().await.unwrap();
    assert_eq!(ds["name"], "sales.csv");
    let path = format!("/api/v1/datasets/{}", ds["id"].as_str().unwrap());

    let res = app
        .patch(&path, Some(&token), &json!({"name": "Sales 2026"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let renamed: Value = res.json().await.unwrap();
    assert_eq!(renamed["name"], "Sales 2026");
    assert_eq!(renamed["row_count"], 3);

    // Refusals change nothing.
    let res = app
        .patch(&path, Some(&token), &json!({"name": "x", "row_count": 1}))
        .await;
    assert_problem(res, 422, "validation").await;
    let res = app.patch(&path, Some(&token), &json!({"name": null})).await;
    assert_problem(res, 422, "validation").await;
    let res = app
        .patch(&path, Some(&token), &json!({"name": "   "}))
        .await;
    assert_problem(res, 422, "validation").await;
    let res = app.patch(&path, Some(&token), &json!({})).await;
    assert_problem(res, 422, "validation").await;
    let res = app
        .request(Method::PATCH, &path, Some(&token))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "bad-request").await;
    let now: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    assert_eq!(now["name"], "Sales 2026");
}

on_both!(
    delete_removes_the_file_and_keeps_analyses,
    delete_removes_the_file_and_keeps_analyses_body
);
async fn delete_removes_the_file_and_keeps_analyses_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let ds = upload_csv(&app, &token, "cities.csv").await;
    let id = ds["id"].as_str().unwrap();
    let analysis: Value = app
        .post(
            "/api/v1/analyses",
            Some(&token),
            &json!({"name": "A", "dataset_id": id}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(analysis["dataset_id"], id);
    assert_eq!(stored_files(&app).len(), 1);

    let res = app
        .delete(&format!("/api/v1/datasets/{id}"), Some(&token))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(stored_files(&app).is_empty());
    let res = app
        .get(&format!("/api/v1/datasets/{id}"), Some(&token))
        .await;
    assert_problem(res, 404, "not-found").await;
    let res = app
        .delete(&format!("/api/v1/datasets/{id}"), Some(&token))
        .await;
    assert_problem(res, 404, "not-found").await;
    let kept: Value = app
        .get(
            &format!("/api/v1/analyses/{}", analysis["id"].as_str().unwrap()),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["dataset_id"], Value::Null);
    // Deleting does not give the month's upload back.
    assert_eq!(datasets_used(&app, &token).await, 1);
}

on_both!(
    other_users_datasets_are_not_found,
    other_users_datasets_are_not_found_body
);
async fn other_users_datasets_are_not_found_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, ada) = app.user("ada@example.com").await;
    let (_, bob) = app.user("bob@example.com").await;
    let ds = upload_csv(&app, &ada, "cities.csv").await;
    let path = format!("/api/v1/datasets/{}", ds["id"].as_str().unwrap());

    assert_problem(app.get(&path, Some(&bob)).await, 404, "not-found").await;
    assert_problem(
        app.patch(&path, Some(&bob), &json!({"name": "mine"})).await,
        404,
        "not-found",
    )
    .await;
    assert_problem(app.delete(&path, Some(&bob)).await, 404, "not-found").await;
    let list: Value = app
        .get("/api/v1/datasets", Some(&bob))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    // An analysis cannot point at someone else's dataset either.
    let res = app
        .post(
            "/api/v1/analyses",
            Some(&bob),
            &json!({"name": "A", "dataset_id": ds["id"]}),
        )
        .await;
    assert_problem(res, 404, "not-found").await;

    let still: Value = app.get(&path, Some(&ada)).await.json().await.unwrap();
    assert_eq!(still["name"], "cities.csv");
    assert_problem(app.get(&path, None).await, 401, "unauthorized").await;
}

on_both!(
    ids_and_pagination_are_validated,
    ids_and_pagination_are_validated_body
);
async fn ids_and_pagination_are_validated_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(upload_csv(&app, &token, &format!("f{i}.csv")).await["id"].clone());
    }

    assert_problem(
        app.get("/api/v1/datasets/not-a-uuid", Some(&token)).await,
        422,
        "validation",
    )
    .await;
    assert_problem(
        app.delete("/api/v1/datasets/123", Some(&token)).await,
        422,
        "validation",
    )
    .await;
    for query in [
        "limit=101",
        "limit=0",
        "limit=abc",
        "cursor=bogus",
        "cursor=",
    ] {
        let res = app
            .get(&format!("/api/v1/datasets?{query}"), Some(&token))
            .await;
        assert_problem(res, 422, "validation").await;
    }

    // Two pages, newest first, no item twice.
    let first: Value = app
        .get("/api/v1/datasets?limit=2", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second: Value = app
        .get(
            &format!("/api/v1/datasets?limit=2&cursor={cursor}"),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    let mut seen: Vec<Value> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|d| d["id"].clone())
        .collect();
    seen.sort_by_key(|v| v.to_string());
    ids.sort_by_key(|v| v.to_string());
    assert_eq!(seen, ids);
}
