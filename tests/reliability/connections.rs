//! Data-connection secrets across a real `iops serve` at debug log level: the passwords
//! of a session (a right one, a wrong one) appear in no answer and nowhere in the
//! server's log, whatever happens to the connection.
use iops_tests::sources::Source;
use iops_tests::{TestDb, on_both};
use serde_json::{Value, json};

use crate::support::{Process, answer, client, login, register};

on_both!(no_password_in_any_log_or_answer, no_password_body);
async fn no_password_body(db: TestDb) {
    let source = Source::mariadb().await;
    let wrong = "Wr0ng-but-secret-too";
    let server = Process::serve(
        &db.url,
        &db.data_dir(),
        &[
            ("RUST_LOG", "debug"),
            ("IOPS_CONNECTIONS_ALLOW", "127.0.0.1"),
            ("IOPS_ENCRYPTION_KEYS", iops_tests::TEST_ENCRYPTION_KEYS),
        ],
    )
    .await;
    let c = client();
    register(&c, &server.base, "owner@example.com").await;
    let token = login(&c, &server.base, "owner@example.com").await;
    let mut answers = Vec::new();
    let mut call = async |method: reqwest::Method, path: &str, body: Value| {
        let res = c
            .request(method, format!("{}{path}", server.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("answer");
        let (status, body) = answer(path, res).await;
        answers.push(body.to_string());
        (status, body)
    };
    let (status, created) = call(
        reqwest::Method::POST,
        "/api/v1/connections",
        json!({"name": "src", "kind": "mysql", "host": "127.0.0.1", "port": 3306,
               "database": source.database, "username": source.user,
               "password": source.password, "sslmode": "disable"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v1/connections/{}", created["id"].as_str().unwrap());
    let (_, tested) = call(reqwest::Method::POST, &format!("{path}/test"), json!({})).await;
    assert_eq!(tested["ok"], true, "{tested}");
    let (status, _) = call(
        reqwest::Method::POST,
        &format!("{path}/import"),
        json!({"name": "items", "sql": "SELECT * FROM items"}),
    )
    .await;
    assert_eq!(status, 201);
    call(reqwest::Method::PATCH, &path, json!({"password": wrong})).await;
    let (_, failed) = call(reqwest::Method::POST, &format!("{path}/test"), json!({})).await;
    assert_eq!(failed["ok"], false);
    let (status, _) = call(
        reqwest::Method::POST,
        &format!("{path}/import"),
        json!({"name": "items", "sql": "SELECT * FROM items"}),
    )
    .await;
    assert_eq!(status, 422);
    call(reqwest::Method::GET, "/api/v1/connections", json!(null)).await;

    let log = server.stderr();
    assert!(log.contains("DEBUG"), "the server logged at debug level");
    for secret in [source.password.as_str(), wrong] {
        assert!(!log.contains(secret), "the log holds a password");
        for body in &answers {
            assert!(!body.contains(secret), "an answer holds a password: {body}");
        }
    }
}
