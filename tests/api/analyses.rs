//! Analyses over HTTP: create, list with `?status=`, read, PATCH semantics (absent, null,
//! value), delete with its reports, ownership and the request rules.
use iops_tests::{TestDb, on_both};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::datasets::upload_csv;
use crate::support::{TestApp, assert_problem, spawn};

/// Creates an analysis (answer asserted `201`) and returns it.
pub async fn create_analysis(app: &TestApp, token: &str, body: &Value) -> Value {
    let res = app.post("/api/v1/analyses", Some(token), body).await;
    assert_eq!(res.status(), StatusCode::CREATED, "create analysis {body}");
    res.json().await.expect("analysis json")
}

on_both!(create_read_and_list, create_read_and_list_body);
async fn create_read_and_list_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let ds = upload_csv(&app, &token, "cities.csv").await;

    let res = app
        .post(
            "/api/v1/analyses",
            Some(&token),
            &json!({"name": "Population", "dataset_id": ds["id"], "config": {"chart": "bar", "x": ["city"]}}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let analysis: Value = res.json().await.unwrap();
    let mut keys: Vec<&str> = analysis
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "config",
            "created_at",
            "dataset_id",
            "id",
            "name",
            "results",
            "status",
            "updated_at"
        ]
    );
    assert_eq!(analysis["status"], "draft");
    assert_eq!(analysis["dataset_id"], ds["id"]);
    assert_eq!(analysis["config"], json!({"chart": "bar", "x": ["city"]}));
    assert_eq!(analysis["results"], Value::Null);
    assert!(analysis["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        location,
        format!("/api/v1/analyses/{}", analysis["id"].as_str().unwrap())
    );
    let got: Value = app.get(&location, Some(&token)).await.json().await.unwrap();
    assert_eq!(got, analysis);

    let bare = create_analysis(&app, &token, &json!({"name": "Bare"})).await;
    assert_eq!(
        (bare["dataset_id"].clone(), bare["config"].clone()),
        (Value::Null, Value::Null)
    );
    let done = create_analysis(
        &app,
        &token,
        &json!({"name": "Done", "dataset_id": null, "config": null}),
    )
    .await;
    let res = app
        .patch(
            &format!("/api/v1/analyses/{}", done["id"].as_str().unwrap()),
            Some(&token),
            &json!({"status": "completed"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    let all: Value = app
        .get("/api/v1/analyses", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    let completed: Value = app
        .get("/api/v1/analyses?status=completed", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let items = completed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], done["id"]);
    let drafts: Value = app
        .get("/api/v1/analyses?status=draft&limit=1", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(drafts["items"].as_array().unwrap().len(), 1);
    assert!(drafts["next_cursor"].is_string());
    let failed: Value = app
        .get("/api/v1/analyses?status=failed", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failed["items"], json!([]));

    for query in ["status=archived", "limit=101", "cursor=nope"] {
        let res = app
            .get(&format!("/api/v1/analyses?{query}"), Some(&token))
            .await;
        assert_problem(res, 422, "validation").await;
    }
}

on_both!(create_refusals, create_refusals_body);
async fn create_refusals_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;

    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "n".repeat(256)}),
        json!({"name": 5}),
        json!({"name": "A", "config": [1, 2]}),
        json!({"name": "A", "config": "text"}),
        json!({"name": "A", "dataset_id": "not-a-uuid"}),
        json!({"name": "A", "status": "completed"}),
        json!({"name": "A", "user_id": "6f1c2a9e-1c8e-4b8e-9a51-0d6f0f0e7b11"}),
        json!({"name": "A", "results": {}}),
    ] {
        let res = app.post("/api/v1/analyses", Some(&token), &body).await;
        assert_problem(res, 422, "validation").await;
    }
    let res = app
        .post(
            "/api/v1/analyses",
            Some(&token),
            &json!({"name": "A", "dataset_id": "6f1c2a9e-1c8e-4b8e-9a51-0d6f0f0e7b11"}),
        )
        .await;
    assert_problem(res, 404, "not-found").await;
    let res = app
        .request(Method::POST, "/api/v1/analyses", Some(&token))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(r#"{"name": "A"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "bad-request").await;
    let res = app
        .request(Method::POST, "/api/v1/analyses", Some(&token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"name": "A""#)
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "bad-request").await;
    assert_problem(
        app.post("/api/v1/analyses", None, &json!({"name": "A"}))
            .await,
        401,
        "unauthorized",
    )
    .await;

    let all: Value = app
        .get("/api/v1/analyses", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"], json!([]));
}

on_both!(
    patch_tells_absent_from_null,
    patch_tells_absent_from_null_body
);
async fn patch_tells_absent_from_null_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let ds = upload_csv(&app, &token, "cities.csv").await;
    let analysis = create_analysis(
        &app,
        &token,
        &json!({"name": "A", "dataset_id": ds["id"], "config": {"k": 1}}),
    )
    .await;
    let path = format!("/api/v1/analyses/{}", analysis["id"].as_str().unwrap());

    // Absent fields stay.
    let res = app
        .patch(
            &path,
            Some(&token),
            &json!({"results": {"mean": 2.5}, "status": "completed"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["name"], "A");
    assert_eq!(v["config"], json!({"k": 1}));
    assert_eq!(v["dataset_id"], ds["id"]);
    assert_eq!(v["results"], json!({"mean": 2.5}));
    assert_eq!(v["status"], "completed");

    // Null clears the nullable ones.
    let res = app
        .patch(
            &path,
            Some(&token),
            &json!({"config": null, "dataset_id": null, "name": "B"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["config"].clone(), v["dataset_id"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(v["results"], json!({"mean": 2.5}));
    assert_eq!(v["name"], "B");

    // Refusals change nothing.
    for body in [
        json!({"name": null}),
        json!({"status": null}),
        json!({"status": "archived"}),
        json!({"results": [1]}),
        json!({"name": "C", "view_count": 3}),
        json!({"name": "C", "user_id": "6f1c2a9e-1c8e-4b8e-9a51-0d6f0f0e7b11"}),
    ] {
        let res = app.patch(&path, Some(&token), &body).await;
        assert_problem(res, 422, "validation").await;
    }
    let res = app
        .patch(
            &path,
            Some(&token),
            &json!({"name": "C", "dataset_id": "6f1c2a9e-1c8e-4b8e-9a51-0d6f0f0e7b11"}),
        )
        .await;
    assert_problem(res, 404, "not-found").await;
    let now: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    assert_eq!(now, v);

    // An empty PATCH changes nothing but is fine.
    let res = app.patch(&path, Some(&token), &json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "B");
}

on_both!(
    delete_takes_the_reports_along,
    delete_takes_the_reports_along_body
);
async fn delete_takes_the_reports_along_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let analysis = create_analysis(&app, &token, &json!({"name": "A"})).await;
    let id = analysis["id"].as_str().unwrap();
    let res = app
        .post(
            &format!("/api/v1/analyses/{id}/reports"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let report: Value = res.json().await.unwrap();
    assert_eq!(
        app.get(report["url"].as_str().unwrap(), None)
            .await
            .status(),
        StatusCode::OK
    );

    let res = app
        .delete(&format!("/api/v1/analyses/{id}"), Some(&token))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get(&format!("/api/v1/analyses/{id}"), Some(&token))
            .await,
        404,
        "not-found",
    )
    .await;
    let report_path = format!("/api/v1/reports/{}", report["id"].as_str().unwrap());
    assert_problem(app.get(&report_path, Some(&token)).await, 404, "not-found").await;
    assert_problem(
        app.get(report["url"].as_str().unwrap(), None).await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.delete(&format!("/api/v1/analyses/{id}"), Some(&token))
            .await,
        404,
        "not-found",
    )
    .await;
}

on_both!(
    other_users_analyses_are_not_found,
    other_users_analyses_are_not_found_body
);
async fn other_users_analyses_are_not_found_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, ada) = app.user("ada@example.com").await;
    let (_, bob) = app.user("bob@example.com").await;
    let analysis = create_analysis(&app, &ada, &json!({"name": "Ada's"})).await;
    let path = format!("/api/v1/analyses/{}", analysis["id"].as_str().unwrap());

    assert_problem(app.get(&path, Some(&bob)).await, 404, "not-found").await;
    assert_problem(
        app.patch(&path, Some(&bob), &json!({"name": "Bob's"}))
            .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(app.delete(&path, Some(&bob)).await, 404, "not-found").await;
    let res = app
        .post(&format!("{path}/reports"), Some(&bob), &json!({}))
        .await;
    assert_problem(res, 404, "not-found").await;
    let list: Value = app
        .get("/api/v1/analyses", Some(&bob))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));

    let still: Value = app.get(&path, Some(&ada)).await.json().await.unwrap();
    assert_eq!(still["name"], "Ada's");
    assert_problem(
        app.get("/api/v1/analyses/xyz", Some(&ada)).await,
        422,
        "validation",
    )
    .await;
    assert_problem(app.get(&path, None).await, 401, "unauthorized").await;
}
