//! Data connections over HTTP: every operation and status, with a real MariaDB source, and
//! the password in no answer.
use std::time::Duration;

use domain::Settings;
use domain::connections::AllowList;
use iops_tests::sources::{Source, expected_items};
use iops_tests::{TestDb, on_both};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{assert_problem, spawn_with};

fn settings() -> Settings {
    Settings {
        connections_allow: AllowList::parse("127.0.0.1").unwrap(),
        import_timeout: Duration::from_secs(5),
        ..Settings::default()
    }
}

on_both!(connections_over_http, connections_over_http_body);
async fn connections_over_http_body(db: TestDb) {
    let app = spawn_with(db, settings()).await;
    let (_, token) = app.user("importer@example.com").await;
    let (_, stranger) = app.user("stranger@example.com").await;
    let source = Source::mariadb().await;
    let body = json!({
        "name": "warehouse", "kind": "mysql", "host": "127.0.0.1", "port": 3306,
        "database": source.database, "username": source.user, "password": source.password,
        "sslmode": "disable",
    });
    let mut answers = String::new();

    let res = app.post("/api/v1/connections", Some(&token), &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    answers.push_str(&created.to_string());
    assert_eq!(created["has_password"], true);
    assert_eq!(created["status"], "untested");
    assert!(created.get("password").is_none());
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/connections/{id}");

    let tested: Value = app
        .post(&format!("{path}/test"), Some(&token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tested["ok"], true, "{tested}");
    answers.push_str(&tested.to_string());

    let res = app
        .post(
            &format!("{path}/import"),
            Some(&token),
            &json!({"name": "items", "sql": "SELECT * FROM items ORDER BY id"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let dataset: Value = res.json().await.unwrap();
    assert_eq!(dataset["row_count"], 3);
    let preview: Value = app
        .get(
            &format!(
                "/api/v1/datasets/{}/preview",
                dataset["id"].as_str().unwrap()
            ),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["rows"], Value::from(expected_items()), "{preview}");

    let res = app
        .post(
            &format!("{path}/import"),
            Some(&token),
            &json!({"name": "x", "sql": "DELETE FROM items"}),
        )
        .await;
    let problem = assert_problem(res, 422, "query-failed").await;
    assert_eq!(problem["reason"], "refused");
    assert_eq!(source.item_count().await, 3);

    // Listing, reading, changing; others see nothing.
    let list: Value = app
        .get("/api/v1/connections", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    answers.push_str(&list.to_string());
    assert_problem(app.get(&path, Some(&stranger)).await, 404, "not-found").await;
    assert_problem(app.get(&path, None).await, 401, "unauthorized").await;
    let res = app
        .patch(
            &path,
            Some(&token),
            &json!({"password": "wrong-one", "name": "renamed"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(
        (changed["name"].as_str(), changed["status"].as_str()),
        (Some("renamed"), Some("untested"))
    );
    let failed: Value = app
        .post(&format!("{path}/test"), Some(&token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failed["ok"], false);
    answers.push_str(&failed.to_string());
    let res = app
        .patch(&path, Some(&token), &json!({"host": "10.1.2.3"}))
        .await;
    assert_problem(res, 422, "host-not-allowed").await;
    for bad in [
        json!({"port": 0}),
        json!({"name": null}),
        json!({"sslmode": "verify-full"}),
        json!({"secret": 1}),
    ] {
        let res = app.patch(&path, Some(&token), &bad).await;
        assert_problem(res, 422, "validation").await;
    }
    let mut refused = body.clone();
    refused["host"] = json!("169.254.169.254");
    let res = app
        .post("/api/v1/connections", Some(&token), &refused)
        .await;
    assert_problem(res, 422, "host-not-allowed").await;
    let mut unknown = body.clone();
    unknown["kind"] = json!("oracle");
    assert_problem(
        app.post("/api/v1/connections", Some(&token), &unknown)
            .await,
        422,
        "validation",
    )
    .await;

    // The usage counts it; the fifth is the free tier's last.
    let usage: Value = app
        .get("/api/v1/me/usage", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["data_connections"], json!({"used": 1, "limit": 5}));
    for _ in 0..4 {
        let res = app.post("/api/v1/connections", Some(&token), &body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let res = app.post("/api/v1/connections", Some(&token), &body).await;
    let problem = assert_problem(res, 402, "limit-exceeded").await;
    assert_eq!(problem["limit"], "data_connections");
    assert_eq!(
        (problem["allowed"].as_i64(), problem["used"].as_i64()),
        (Some(5), Some(5))
    );

    let res = app.delete(&path, Some(&token)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(app.delete(&path, Some(&token)).await, 404, "not-found").await;
    assert!(
        !answers.contains(&source.password) && !answers.contains("wrong-one"),
        "{answers}"
    );
}
