//! Templates over HTTP: every operation and its answers, the gallery without a login, free
//! purchases, use on the caller's uploaded dataset, ratings, and a paid purchase on a
//! server without a payment provider. Each test on SQLite and on PostgreSQL.
use iops_tests::{TestDb, on_both};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::analyses::create_analysis;
use crate::datasets::{upload_as, upload_csv};
use crate::support::{TestApp, assert_problem, spawn};

const SALES: &str =
    "region,amount,day\nnorth,10.5,2026-01-01\nsouth,7.25,2026-01-02\nnorth,3,2026-01-03\n";

async fn upload_sales(app: &TestApp, token: &str) -> String {
    let res = upload_as(app, token, "sales.csv", Some("text/csv"), SALES, None).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let dataset: Value = res.json().await.unwrap();
    dataset["id"].as_str().unwrap().to_owned()
}

/// An analysis of `token`'s summing `amount` by `region` on an uploaded dataset, with a
/// bar chart: its id.
async fn sales_analysis(app: &TestApp, token: &str) -> String {
    let dataset = upload_sales(app, token).await;
    let analysis = create_analysis(
        app,
        token,
        &json!({"name": "Sales", "dataset_id": dataset, "config": {"query": {
            "group_by": ["region"],
            "aggregates": [{"op": "sum", "column": "amount", "as": "total"}],
        }}}),
    )
    .await;
    let id = analysis["id"].as_str().unwrap().to_owned();
    let chart = app
        .post(
            &format!("/api/v1/analyses/{id}/charts"),
            Some(token),
            &json!({"name": "Totals", "chart_type": "bar", "config": {"x": "region", "y": ["total"]}}),
        )
        .await;
    assert_eq!(chart.status(), StatusCode::CREATED);
    id
}

async fn create_template(app: &TestApp, token: &str, body: &Value) -> Value {
    let res = app.post("/api/v1/templates", Some(token), body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.headers().contains_key("location"));
    res.json().await.unwrap()
}

async fn publish(app: &TestApp, token: &str, id: &str) -> Value {
    let res = app
        .post(
            &format!("/api/v1/templates/{id}/publish"),
            Some(token),
            &json!(null),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn put(app: &TestApp, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
    app.send_json(Method::PUT, path, token, body).await
}

on_both!(templates_over_http, templates_body);
async fn templates_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, author) = app.user("author@example.com").await;
    let (_, buyer) = app.user("buyer@example.com").await;
    let (_, stranger) = app.user("stranger@example.com").await;
    let res = app
        .send_json(
            Method::PATCH,
            "/api/v1/me",
            Some(&author),
            &json!({"full_name": "Ada Author"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let analysis = sales_analysis(&app, &author).await;

    // Create.
    let body = json!({"analysis_id": analysis, "name": "Regional totals", "description": "Sum by region", "price_cents": 0});
    let res = app.post("/api/v1/templates", None, &body).await;
    assert_problem(res, 401, "unauthorized").await;
    let res = app
        .post(
            "/api/v1/templates",
            Some(&author),
            &json!({"analysis_id": analysis, "name": "x", "price_cents": 0, "extra": 1}),
        )
        .await;
    assert_problem(res, 422, "validation").await;
    let res = app
        .post(
            "/api/v1/templates",
            Some(&author),
            &json!({"analysis_id": analysis, "name": "x", "price_cents": -1}),
        )
        .await;
    assert_problem(res, 422, "validation").await;
    let res = app.post("/api/v1/templates", Some(&stranger), &body).await;
    assert_problem(res, 404, "not-found").await;
    let free = create_template(&app, &author, &body).await;
    let free_id = free["id"].as_str().unwrap().to_owned();
    assert_eq!(free["status"], "draft");
    assert_eq!(free["currency"], "usd");
    assert_eq!(free["author"]["full_name"], "Ada Author");
    assert_eq!(free["charts"][0]["name"], "Totals");
    assert_eq!(free["charts"][0]["config"]["x"], "region");
    let inputs: Vec<&str> = free["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, ["region", "amount"]);
    assert!(free["inputs"][0]["type"].is_string());

    // A draft: its author's only; a bad token is 401, a bad id 422.
    let path = format!("/api/v1/templates/{free_id}");
    assert_problem(app.get(&path, None).await, 404, "not-found").await;
    assert_problem(app.get(&path, Some(&buyer)).await, 404, "not-found").await;
    assert_eq!(app.get(&path, Some(&author)).await.status(), StatusCode::OK);
    assert_problem(
        app.get(&path, Some("not-a-token")).await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        app.get("/api/v1/templates/not-a-uuid", None).await,
        422,
        "validation",
    )
    .await;

    // Change (author only) and publish.
    let res = app
        .patch(&path, Some(&buyer), &json!({"name": "Stolen"}))
        .await;
    assert_problem(res, 404, "not-found").await;
    let res = app
        .patch(&path, Some(&author), &json!({"description": null}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["description"], Value::Null);
    let res = app
        .patch(&path, Some(&author), &json!({"name": null}))
        .await;
    assert_problem(res, 422, "validation").await;
    let res = app
        .post(&format!("{path}/publish"), Some(&buyer), &json!(null))
        .await;
    assert_problem(res, 404, "not-found").await;
    let published = publish(&app, &author, &free_id).await;
    assert_eq!(published["status"], "published");
    assert!(published["published_at"].is_string());

    // A paid one too.
    let paid = create_template(
        &app,
        &author,
        &json!({"analysis_id": analysis, "name": "Premium totals", "price_cents": 1900, "currency": "eur"}),
    )
    .await;
    let paid_id = paid["id"].as_str().unwrap().to_owned();
    publish(&app, &author, &paid_id).await;

    // The gallery, without a login.
    let res = app.get("/api/v1/templates?sort=new", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    let premium = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Premium totals")
        .unwrap();
    assert_eq!(premium["price_cents"], 1900);
    assert_eq!(premium["currency"], "eur");
    assert_eq!(premium["unlocked"], false);
    assert_eq!(premium["config"], Value::Null);
    assert_eq!(premium["charts"][0]["config"], Value::Null);
    assert_eq!(premium["rating_avg"], Value::Null);
    assert_eq!(premium["rating_count"], 0);
    assert_eq!(premium["author"]["full_name"], "Ada Author");
    let res = app
        .get("/api/v1/templates?q=PREMIUM&sort=rating", None)
        .await;
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let res = app
        .get("/api/v1/templates?sort=popular&limit=1", None)
        .await;
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let res = app
        .get(
            &format!("/api/v1/templates?sort=popular&limit=1&cursor={cursor}"),
            None,
        )
        .await;
    let next: Value = res.json().await.unwrap();
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);
    for bad in ["sort=best", "limit=0", "cursor=zzz"] {
        assert_problem(
            app.get(&format!("/api/v1/templates?{bad}"), None).await,
            422,
            "validation",
        )
        .await;
    }
    assert_eq!(app.get(&path, None).await.status(), StatusCode::OK);

    // Purchases: free at once, once; the author never; paid without a provider: 503.
    let buy = |id: &str, token: &str| {
        let path = format!("/api/v1/templates/{id}/purchase");
        let token = token.to_owned();
        let app = &app;
        async move { app.post(&path, Some(&token), &json!(null)).await }
    };
    let res = buy(&free_id, &buyer).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let purchase: Value = res.json().await.unwrap();
    assert_eq!(purchase["template_id"], free_id.as_str());
    assert_eq!(purchase["price_cents"], 0);
    assert_problem(buy(&free_id, &buyer).await, 409, "conflict").await;
    assert_problem(buy(&free_id, &author).await, 409, "conflict").await;
    assert_problem(buy(&paid_id, &buyer).await, 503, "not-configured").await;
    let res = app
        .post(
            &format!("/api/v1/templates/{free_id}/purchase"),
            None,
            &json!(null),
        )
        .await;
    assert_problem(res, 401, "unauthorized").await;
    let gone = uuid::Uuid::new_v4();
    assert_problem(buy(&gone.to_string(), &buyer).await, 404, "not-found").await;

    // Use.
    let own = upload_sales(&app, &buyer).await;
    let res = app
        .post(
            &format!("/api/v1/templates/{free_id}/use"),
            Some(&buyer),
            &json!({"dataset_id": own, "name": "My totals"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let used: Value = res.json().await.unwrap();
    assert_eq!(used["name"], "My totals");
    assert_eq!(used["dataset_id"], own.as_str());
    assert_eq!(used["config"]["query"]["group_by"], json!(["region"]));
    assert_eq!(used["charts"][0]["name"], "Totals");
    let new_id = used["id"].as_str().unwrap();
    let charts = app
        .get(&format!("/api/v1/analyses/{new_id}/charts"), Some(&buyer))
        .await;
    let charts: Value = charts.json().await.unwrap();
    assert_eq!(charts["items"].as_array().unwrap().len(), 1);
    let run = app
        .post(
            &format!("/api/v1/analyses/{new_id}/run"),
            Some(&buyer),
            &json!(null),
        )
        .await;
    assert_eq!(run.status(), StatusCode::OK);

    let other = upload_csv(&app, &buyer, "cities.csv").await;
    let res = app
        .post(
            &format!("/api/v1/templates/{free_id}/use"),
            Some(&buyer),
            &json!({"dataset_id": other["id"]}),
        )
        .await;
    let problem = assert_problem(res, 422, "validation").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("region") && detail.contains("amount"),
        "{detail}"
    );
    let strangers = upload_sales(&app, &stranger).await;
    let res = app
        .post(
            &format!("/api/v1/templates/{free_id}/use"),
            Some(&buyer),
            &json!({"dataset_id": strangers}),
        )
        .await;
    assert_problem(res, 404, "not-found").await;
    let res = app
        .post(
            &format!("/api/v1/templates/{paid_id}/use"),
            Some(&buyer),
            &json!({"dataset_id": own}),
        )
        .await;
    let problem = assert_problem(res, 402, "purchase-required").await;
    assert_eq!(problem["limit"], "purchase");
    let res = app
        .post(
            &format!("/api/v1/templates/{free_id}/use"),
            Some(&buyer),
            &json!({"dataset_id": own, "unknown": true}),
        )
        .await;
    assert_problem(res, 422, "validation").await;

    // Ratings.
    let rating = format!("/api/v1/templates/{free_id}/rating");
    let res = put(
        &app,
        &rating,
        Some(&buyer),
        &json!({"rating": 4, "review": "Handy"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let rated: Value = res.json().await.unwrap();
    assert_eq!(rated["rating_count"], 1);
    assert_eq!(rated["rating_avg"], 4.0);
    let res = put(&app, &rating, Some(&buyer), &json!({"rating": 2})).await;
    let rated: Value = res.json().await.unwrap();
    assert_eq!(
        (rated["rating_count"].clone(), rated["rating_avg"].clone()),
        (json!(1), json!(2.0))
    );
    assert_problem(
        put(&app, &rating, Some(&author), &json!({"rating": 5})).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        put(&app, &rating, Some(&stranger), &json!({"rating": 5})).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        put(&app, &rating, Some(&buyer), &json!({"rating": 6})).await,
        422,
        "validation",
    )
    .await;
    assert_problem(
        put(&app, &rating, None, &json!({"rating": 3})).await,
        401,
        "unauthorized",
    )
    .await;
    let seen: Value = app.get(&path, None).await.json().await.unwrap();
    assert_eq!(seen["rating_count"], 1);
    assert_eq!(seen["purchase_count"], 1);

    // Delete: the author only.
    assert_problem(app.delete(&path, Some(&buyer)).await, 404, "not-found").await;
    assert_eq!(
        app.delete(&path, Some(&author)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(app.get(&path, None).await, 404, "not-found").await;
    // The analysis made from it stays.
    assert_eq!(
        app.get(&format!("/api/v1/analyses/{new_id}"), Some(&buyer))
            .await
            .status(),
        StatusCode::OK
    );
}

const SECRET: &str = "whsec_templates_test";

on_both!(paid_templates_over_http, paid_body);
async fn paid_body(db: TestDb) {
    use domain::billing::BillingConfig;
    use iops_tests::count;
    use iops_tests::stripe::{self, StripeFake};

    let fake = StripeFake::start();
    let app = crate::support::spawn_billing(
        db,
        BillingConfig::new("https://iops.example").with_webhook_secret(SECRET.to_owned()),
        Some(fake.client()),
    )
    .await;
    let (_, author) = app.user("author@example.com").await;
    let (buyer_user, buyer) = app.user("buyer@example.com").await;
    let buyer_id = buyer_user["id"].as_str().unwrap().to_owned();
    let analysis = sales_analysis(&app, &author).await;
    let paid = create_template(
        &app,
        &author,
        &json!({"analysis_id": analysis, "name": "Premium totals", "price_cents": 1900}),
    )
    .await;
    let id = paid["id"].as_str().unwrap().to_owned();
    publish(&app, &author, &id).await;

    // Paid: 200 with the Checkout page; nothing recorded yet.
    let purchase = format!("/api/v1/templates/{id}/purchase");
    let res = app.post(&purchase, Some(&buyer), &json!(null)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let checkout: Value = res.json().await.unwrap();
    assert!(checkout["url"].as_str().unwrap().starts_with("http"));
    let sent = fake.requests();
    let form = &sent.last().unwrap();
    assert_eq!(form.field("mode"), Some("payment"));
    assert_eq!(
        form.field("line_items[0][price_data][unit_amount]"),
        Some("1900")
    );
    assert_eq!(
        form.field("line_items[0][price_data][currency]"),
        Some("usd")
    );
    assert_eq!(form.field("client_reference_id"), Some(buyer_id.as_str()));
    assert_eq!(form.field("metadata[template_id]"), Some(id.as_str()));
    let conn = app.domain.database().connection().clone();
    assert_eq!(count(&conn, "template_purchases").await, 0);
    let own = upload_sales(&app, &buyer).await;
    let use_path = format!("/api/v1/templates/{id}/use");
    let res = app
        .post(&use_path, Some(&buyer), &json!({"dataset_id": own}))
        .await;
    assert_problem(res, 402, "purchase-required").await;

    // The webhook records it, once, however often it comes.
    let now = app.clock_now().timestamp();
    for event_id in ["evt_tpl_1", "evt_tpl_1", "evt_tpl_2"] {
        let event = stripe::event(
            event_id,
            "checkout.session.completed",
            now,
            json!({
                "id": "cs_test_tpl",
                "object": "checkout.session",
                "mode": "payment",
                "payment_status": "paid",
                "client_reference_id": buyer_id,
                "metadata": {"template_id": id},
            }),
        );
        let body = serde_json::to_vec(&event).unwrap();
        let res = app
            .request(Method::POST, "/api/v1/billing/webhook", None)
            .header("content-type", "application/json")
            .header("stripe-signature", stripe::signature(&[SECRET], now, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }
    assert_eq!(count(&conn, "template_purchases").await, 1);
    let seen: Value = app
        .get(&format!("/api/v1/templates/{id}"), Some(&buyer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["purchase_count"], 1);
    assert_eq!(seen["unlocked"], true);
    assert_problem(
        app.post(&purchase, Some(&buyer), &json!(null)).await,
        409,
        "conflict",
    )
    .await;
    let res = app
        .post(&use_path, Some(&buyer), &json!({"dataset_id": own}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = put(
        &app,
        &format!("/api/v1/templates/{id}/rating"),
        Some(&buyer),
        &json!({"rating": 5}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}
