//! Reports over HTTP (owner side): publish, the monthly limit, list/read, PATCH semantics
//! (null clears the password and the expiry), delete, ownership and the request rules.
use chrono::{Duration, SecondsFormat};
use iops_tests::{TestDb, on_both};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::analyses::create_analysis;
use crate::support::{TestApp, assert_problem, spawn};

/// Publishes a report of `analysis_id` with `body` (answer asserted `201`).
pub async fn create_report(app: &TestApp, token: &str, analysis_id: &Value, body: &Value) -> Value {
    let path = format!("/api/v1/analyses/{}/reports", analysis_id.as_str().unwrap());
    let res = app.post(&path, Some(token), body).await;
    assert_eq!(res.status(), StatusCode::CREATED, "create report {body}");
    res.json().await.expect("report json")
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

on_both!(
    publish_with_defaults_and_options,
    publish_with_defaults_and_options_body
);
async fn publish_with_defaults_and_options_body(db: TestDb) {
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
    let analysis = create_analysis(&app, &token, &json!({"name": "A"})).await;
    let path = format!(
        "/api/v1/analyses/{}/reports",
        analysis["id"].as_str().unwrap()
    );

    // No body at all: a public report without password or expiry.
    let res = app
        .request(Method::POST, &path, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let report: Value = res.json().await.unwrap();
    let mut keys: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "analysis_id",
            "created_at",
            "expires_at",
            "has_password",
            "id",
            "is_public",
            "short_code",
            "updated_at",
            "url",
            "view_count"
        ]
    );
    let code = report["short_code"].as_str().unwrap();
    assert!(
        (8..=20).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{code}"
    );
    assert_eq!(report["url"], format!("/r/{code}"));
    assert_eq!(report["analysis_id"], analysis["id"]);
    assert_eq!(report["is_public"], true);
    assert_eq!(report["has_password"], false);
    assert_eq!(report["expires_at"], Value::Null);
    assert_eq!(report["view_count"], 0);
    assert_eq!(
        location,
        format!("/api/v1/reports/{}", report["id"].as_str().unwrap())
    );
    assert_eq!(
        app.get(&location, Some(&token))
            .await
            .json::<Value>()
            .await
            .unwrap(),
        report
    );

    let expires = rfc3339(app.clock_now() + Duration::days(7));
    let protected = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"password": "open sesame", "expires_at": expires, "is_public": true}),
    )
    .await;
    assert_eq!(protected["has_password"], true);
    assert_eq!(protected["expires_at"], expires);
    assert!(!protected.to_string().contains("argon2"));
    assert_ne!(protected["short_code"], report["short_code"]);
    let private = create_report(&app, &token, &analysis["id"], &json!({"is_public": false})).await;
    assert_eq!(private["is_public"], false);

    let list: Value = app
        .get("/api/v1/reports", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    let page: Value = app
        .get("/api/v1/reports?limit=2", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(
            &format!("/api/v1/reports?limit=2&cursor={cursor}"),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    for query in ["limit=101", "cursor=AAAA"] {
        assert_problem(
            app.get(&format!("/api/v1/reports?{query}"), Some(&token))
                .await,
            422,
            "validation",
        )
        .await;
    }
}

on_both!(
    publish_refusals_change_nothing,
    publish_refusals_change_nothing_body
);
async fn publish_refusals_change_nothing_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let analysis = create_analysis(&app, &token, &json!({"name": "A"})).await;
    let path = format!(
        "/api/v1/analyses/{}/reports",
        analysis["id"].as_str().unwrap()
    );

    let past = rfc3339(app.clock_now() - Duration::minutes(1));
    for body in [
        json!({"expires_at": past}),
        json!({"expires_at": "tomorrow"}),
        json!({"password": "short"}),
        json!({"is_public": "yes"}),
        json!({"view_count": 100}),
        json!({"short_code": "mine1234"}),
    ] {
        assert_problem(
            app.post(&path, Some(&token), &body).await,
            422,
            "validation",
        )
        .await;
    }
    let res = app
        .request(Method::POST, &path, Some(&token))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "bad-request").await;
    let res = app
        .request(Method::POST, &path, Some(&token))
        .header(header::CONTENT_TYPE, "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "bad-request").await;
    assert_problem(
        app.post(
            "/api/v1/analyses/6f1c2a9e-1c8e-4b8e-9a51-0d6f0f0e7b11/reports",
            Some(&token),
            &json!({}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.post("/api/v1/analyses/nope/reports", Some(&token), &json!({}))
            .await,
        422,
        "validation",
    )
    .await;
    assert_problem(app.post(&path, None, &json!({})).await, 401, "unauthorized").await;

    let list: Value = app
        .get("/api/v1/reports", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    let usage: Value = app
        .get("/api/v1/me/usage", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["reports"]["used"], 0);
}

on_both!(
    free_tier_publishes_three_a_month,
    free_tier_publishes_three_a_month_body
);
async fn free_tier_publishes_three_a_month_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let analysis = create_analysis(&app, &token, &json!({"name": "A"})).await;
    for _ in 0..3 {
        create_report(&app, &token, &analysis["id"], &json!({})).await;
    }
    let path = format!(
        "/api/v1/analyses/{}/reports",
        analysis["id"].as_str().unwrap()
    );
    let body = assert_problem(
        app.post(&path, Some(&token), &json!({})).await,
        402,
        "limit-exceeded",
    )
    .await;
    assert_eq!(body["limit"], "reports");
    assert_eq!(body["allowed"], 3);
    assert_eq!(body["used"], 3);
    assert!(body["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"));
    let list: Value = app
        .get("/api/v1/reports", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3);

    // Deleting does not give a report back.
    let first = list["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.delete(&format!("/api/v1/reports/{first}"), Some(&token))
            .await
            .status(),
        204
    );
    assert_problem(
        app.post(&path, Some(&token), &json!({})).await,
        402,
        "limit-exceeded",
    )
    .await;
}

on_both!(patch_sets_and_clears, patch_sets_and_clears_body);
async fn patch_sets_and_clears_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let analysis = create_analysis(&app, &token, &json!({"name": "A"})).await;
    let report = create_report(&app, &token, &analysis["id"], &json!({})).await;
    let path = format!("/api/v1/reports/{}", report["id"].as_str().unwrap());

    let expires = rfc3339(app.clock_now() + Duration::hours(3));
    let res = app
        .patch(
            &path,
            Some(&token),
            &json!({"password": "open sesame", "expires_at": expires}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["has_password"].clone(), v["expires_at"].clone()),
        (json!(true), json!(expires))
    );
    assert_eq!(v["is_public"], true);
    assert_eq!(v["short_code"], report["short_code"]);

    // Absent stays, null clears.
    let res = app
        .patch(&path, Some(&token), &json!({"is_public": false}))
        .await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["has_password"].clone(), v["is_public"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(v["expires_at"], expires);
    let res = app
        .patch(
            &path,
            Some(&token),
            &json!({"password": null, "expires_at": null}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["has_password"].clone(), v["expires_at"].clone()),
        (json!(false), Value::Null)
    );
    assert_eq!(v["is_public"], false);

    // Refusals change nothing.
    let past = rfc3339(app.clock_now() - Duration::hours(1));
    for body in [
        json!({"is_public": null}),
        json!({"expires_at": past}),
        json!({"password": "short"}),
        json!({"is_public": true, "view_count": 0}),
        json!({"is_public": true, "password_hash": "x"}),
    ] {
        assert_problem(
            app.patch(&path, Some(&token), &body).await,
            422,
            "validation",
        )
        .await;
    }
    let now: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    assert_eq!(now, v);

    assert_eq!(
        app.delete(&path, Some(&token)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(app.get(&path, Some(&token)).await, 404, "not-found").await;
    assert_problem(app.delete(&path, Some(&token)).await, 404, "not-found").await;
    let public_url = report["url"].as_str().unwrap();
    assert_problem(app.get(public_url, None).await, 404, "not-found").await;
}

on_both!(
    other_users_reports_are_not_found,
    other_users_reports_are_not_found_body
);
async fn other_users_reports_are_not_found_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, ada) = app.user("ada@example.com").await;
    let (_, bob) = app.user("bob@example.com").await;
    let analysis = create_analysis(&app, &ada, &json!({"name": "A"})).await;
    let report = create_report(&app, &ada, &analysis["id"], &json!({})).await;
    let path = format!("/api/v1/reports/{}", report["id"].as_str().unwrap());

    assert_problem(app.get(&path, Some(&bob)).await, 404, "not-found").await;
    assert_problem(
        app.patch(&path, Some(&bob), &json!({"is_public": false}))
            .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(app.delete(&path, Some(&bob)).await, 404, "not-found").await;
    let list: Value = app
        .get("/api/v1/reports", Some(&bob))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));

    let still: Value = app.get(&path, Some(&ada)).await.json().await.unwrap();
    assert_eq!(still["is_public"], true);
    assert_problem(
        app.get("/api/v1/reports/123", Some(&ada)).await,
        422,
        "validation",
    )
    .await;
    assert_problem(app.get(&path, None).await, 401, "unauthorized").await;
}
