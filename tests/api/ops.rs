//! Operations endpoints and the cross-cutting behaviour of every answer.
use iops_tests::{TestDb, on_both};
use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::support::spawn;

on_both!(health_endpoints, health_endpoints_body);
async fn health_endpoints_body(db: TestDb) {
    let app = spawn(db).await;
    let live = app.get("/health/live", None).await;
    assert_eq!(live.status(), StatusCode::OK);
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], true);
}

on_both!(
    ready_is_503_when_the_database_is_gone,
    ready_is_503_when_the_database_is_gone_body
);
async fn ready_is_503_when_the_database_is_gone_body(db: TestDb) {
    let app = spawn(db).await;
    app.domain
        .database()
        .connection()
        .clone()
        .close()
        .await
        .unwrap();
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["database"], false);
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
    // A request that needs the database says so, without internals.
    let me = app
        .get(
            "/api/v1/me",
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        )
        .await;
    assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = me.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://iops.dev/problems/service-unavailable"
    );
}

on_both!(
    request_ids_are_echoed_or_made,
    request_ids_are_echoed_or_made_body
);
async fn request_ids_are_echoed_or_made_body(db: TestDb) {
    let app = spawn(db).await;
    let id_of = |res: &reqwest::Response| {
        res.headers()
            .get("x-request-id")
            .expect("x-request-id")
            .to_str()
            .unwrap()
            .to_owned()
    };

    let mine = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&mine), "trace-abc-123");

    let made = app.get("/health/live", None).await;
    assert!(uuid::Uuid::parse_str(&id_of(&made)).is_ok());

    let long = "a".repeat(129);
    let replaced = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    let id = id_of(&replaced);
    assert_ne!(id, long);
    assert!(uuid::Uuid::parse_str(&id).is_ok());

    let max = "b".repeat(128);
    let kept = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", &max)
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&kept), max);

    // Error answers carry it too.
    let problem = app
        .client
        .get(app.url("/api/v1/me"))
        .header("x-request-id", "err-1")
        .send()
        .await
        .unwrap();
    assert_eq!(problem.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(id_of(&problem), "err-1");
}

on_both!(metrics_use_route_patterns, metrics_use_route_patterns_body);
async fn metrics_use_route_patterns_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    app.get("/api/v1/me", Some(&token)).await;
    app.get("/api/v1/me", None).await;
    let id = uuid::Uuid::new_v4();
    app.get(&format!("/api/v1/admin/users/{id}/usage"), Some(&token))
        .await;
    app.get("/no/such/path", None).await;

    let res = app.get("/metrics", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for needle in [
        "# TYPE iops_http_requests_total counter",
        r#"iops_http_requests_total{method="GET",route="/api/v1/me",status="200"} 1"#,
        r#"iops_http_requests_total{method="GET",route="/api/v1/me",status="401"} 1"#,
        r#"iops_http_requests_total{method="POST",route="/api/v1/auth/register",status="201"} 1"#,
        r#"route="/api/v1/admin/users/{id}/usage",status="403""#,
        r#"route="unmatched",status="404""#,
        "# TYPE iops_http_request_duration_seconds histogram",
        r#"iops_http_request_duration_seconds_bucket{method="GET",route="/api/v1/me",le="+Inf"} 2"#,
        r#"iops_http_request_duration_seconds_count{method="GET",route="/api/v1/me"} 2"#,
        "# TYPE iops_db_pool_connections gauge",
        r#"iops_db_pool_connections{state="idle"}"#,
        r#"iops_db_pool_connections{state="in_use"}"#,
        "# TYPE iops_table_rows gauge",
        r#"iops_table_rows{table="users"} 1"#,
        r#"iops_table_rows{table="access_tokens"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    assert!(
        !text.contains(&id.to_string()),
        "raw path leaked into labels"
    );
    assert!(!text.contains("/no/such/path"));
}

on_both!(openapi_document_and_docs, openapi_document_and_docs_body);
async fn openapi_document_and_docs_body(db: TestDb) {
    let app = spawn(db).await;
    let res = app.get("/api/openapi.json", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/me/password",
        "/api/v1/me/usage",
        "/api/v1/me/usage/ai-messages",
        "/api/v1/admin/users",
        "/api/v1/admin/users/{id}",
        "/api/v1/admin/users/{id}/usage",
        "/health/live",
        "/health/ready",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} not documented");
    }
    let me = &paths["/api/v1/me"];
    assert!(me["get"].is_object() && me["patch"].is_object() && me["delete"].is_object());
    assert_eq!(me["get"]["security"][0]["bearer"], Value::Array(vec![]));
    let user = &doc["components"]["schemas"]["UserDto"]["properties"];
    assert!(user.get("password_hash").is_none());

    let redirect = app.get("/docs", None).await;
    assert!(redirect.status().is_redirection());
    assert_eq!(redirect.headers()[header::LOCATION], "/docs/");
    let page = app.get("/docs/", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.to_lowercase().contains("swagger"), "{html}");
    // The assets come from the binary, not a CDN.
    assert!(!html.contains("cdn.") && !html.contains("unpkg"), "{html}");
    let init = app.get("/docs/swagger-initializer.js", None).await;
    assert_eq!(init.status(), StatusCode::OK);
    assert!(init.text().await.unwrap().contains("/api/openapi.json"));
}

on_both!(
    wrong_methods_are_405_with_allow,
    wrong_methods_are_405_with_allow_body
);
async fn wrong_methods_are_405_with_allow_body(db: TestDb) {
    let app = spawn(db).await;
    for (method, path, allowed) in [
        (reqwest::Method::DELETE, "/api/v1/auth/login", "POST"),
        (reqwest::Method::PUT, "/api/v1/datasets", "GET"),
        (reqwest::Method::POST, "/health/live", "GET"),
    ] {
        let res = app
            .request(method.clone(), path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let allow = res
            .headers()
            .get(header::ALLOW)
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(allow.contains(allowed), "{method} {path}: Allow: {allow}");
    }
}

on_both!(
    json_bodies_must_be_objects,
    json_bodies_must_be_objects_body
);
/// serde would accept a struct written as an array of its fields; the API does not.
async fn json_bodies_must_be_objects_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("arrays@example.com").await;
    let res = app
        .post(
            "/api/v1/analyses",
            Some(&token),
            &serde_json::json!(["name"]),
        )
        .await;
    crate::support::assert_problem(res, 422, "validation").await;
    let list: Value = app
        .get("/api/v1/analyses", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing created"
    );
    let res = app
        .post(
            "/api/v1/auth/register",
            None,
            &serde_json::json!(["x@example.com", "long enough password"]),
        )
        .await;
    crate::support::assert_problem(res, 422, "validation").await;
}
