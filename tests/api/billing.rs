//! Billing over HTTP: the webhook Stripe calls, checkouts, the billing state, and the
//! enterprise limits an admin sets.
use domain::billing::BillingConfig;
use iops_tests::stripe::{self, StripeFake};
use iops_tests::{TestDb, count, on_both};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_problem, spawn, spawn_billing};

const SECRET: &str = "whsec_api_test";

fn config() -> BillingConfig {
    BillingConfig::new("https://iops.example")
        .with_webhook_secret(SECRET.to_owned())
        .with_prices(BillingConfig::parse_prices("price_pro:pro,price_team:team").unwrap())
}

/// Posts `body` to the webhook with `signature`.
async fn post_webhook(app: &TestApp, body: &[u8], signature: Option<&str>) -> reqwest::Response {
    let mut request = app
        .request(Method::POST, "/api/v1/billing/webhook", None)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    request.send().await.expect("send")
}

async fn deliver(app: &TestApp, event: &Value) -> reqwest::Response {
    let body = serde_json::to_vec(event).unwrap();
    let header = stripe::signature(&[SECRET], app.clock_now().timestamp(), &body);
    post_webhook(app, &body, Some(&header)).await
}

on_both!(webhook_over_http, webhook_over_http_body);
async fn webhook_over_http_body(db: TestDb) {
    let app = spawn_billing(db, config(), None).await;
    let (user, token) = app.user("buyer@example.com").await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let now = app.clock_now().timestamp();
    let checkout = stripe::event(
        "evt_http_1",
        "checkout.session.completed",
        now,
        json!({"id": "cs_1", "client_reference_id": user_id, "customer": "cus_http"}),
    );
    let body = serde_json::to_vec(&checkout).unwrap();

    // Wrong secret, stale, missing: 400 problem, nothing stored.
    for header in [
        Some(stripe::signature(&["whsec_wrong"], now, &body)),
        Some(stripe::signature(&[SECRET], now - 600, &body)),
        None,
    ] {
        let res = post_webhook(&app, &body, header.as_deref()).await;
        assert_problem(res, 400, "bad-request").await;
    }
    let junk = b"{not json";
    let res = post_webhook(&app, junk, Some(&stripe::signature(&[SECRET], now, junk))).await;
    assert_problem(res, 400, "bad-request").await;
    let conn = app.domain.database().connection();
    assert_eq!(count(conn, "billing_events").await, 0);

    let res = deliver(&app, &checkout).await;
    assert_eq!(res.status(), StatusCode::OK);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer, json!({"received": true, "outcome": "applied"}));
    let res = deliver(&app, &checkout).await;
    assert_eq!(res.status(), StatusCode::OK);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["outcome"], "duplicate");

    let subscribed = stripe::event(
        "evt_http_2",
        "customer.subscription.created",
        now,
        stripe::subscription("sub_http", "cus_http", "active", "price_team", None),
    );
    assert_eq!(deliver(&app, &subscribed).await.status(), StatusCode::OK);
    // The tier applies to the very next request.
    let me: Value = app
        .get("/api/v1/me/usage", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["tier"], "team");
    let billing: Value = app
        .get("/api/v1/billing", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(billing["tier"], "team");
    assert_eq!(billing["subscription_status"], "active");
    assert_eq!(billing["stripe_customer_id_set"], true);
    assert_eq!(billing["current_period_end"], "2030-03-17T17:46:40Z");
    let unknown = stripe::event("evt_http_3", "payout.paid", now, json!({"id": "po_1"}));
    let answer: Value = deliver(&app, &unknown).await.json().await.unwrap();
    assert_eq!(answer["outcome"], "ignored");

    assert_problem(app.get("/api/v1/billing", None).await, 401, "unauthorized").await;
}

on_both!(billing_without_stripe, billing_without_stripe_body);
async fn billing_without_stripe_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("plain@example.com").await;
    let event = stripe::event("evt_x", "payout.paid", 1, json!({"id": "po"}));
    let res = deliver(&app, &event).await;
    assert_problem(res, 503, "not-configured").await;
    let res = app
        .post(
            "/api/v1/billing/checkout",
            Some(&token),
            &json!({"tier": "pro"}),
        )
        .await;
    assert_problem(res, 503, "not-configured").await;
    let billing: Value = app
        .get("/api/v1/billing", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        billing,
        json!({"tier": "free", "subscription_status": null, "current_period_end": null,
               "stripe_customer_id_set": false})
    );
}

on_both!(checkout_over_http, checkout_over_http_body);
async fn checkout_over_http_body(db: TestDb) {
    let fake = StripeFake::start();
    let app = spawn_billing(db, config(), Some(fake.client())).await;
    let (user, token) = app.user("upgrader@example.com").await;
    let res = app
        .post(
            "/api/v1/billing/checkout",
            Some(&token),
            &json!({"tier": "team"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/")
    );
    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].field("line_items[0][price]"), Some("price_team"));
    assert_eq!(sent[0].field("client_reference_id"), user["id"].as_str());

    for bad in [
        json!({"tier": "free"}),
        json!({"tier": "gold"}),
        json!({"tier": "pro", "x": 1}),
        json!({}),
    ] {
        let res = app
            .post("/api/v1/billing/checkout", Some(&token), &bad)
            .await;
        assert_problem(res, 422, "validation").await;
    }
    let res = app
        .post("/api/v1/billing/checkout", None, &json!({"tier": "pro"}))
        .await;
    assert_problem(res, 401, "unauthorized").await;
    fake.behave(stripe::Behaviour::Refuse);
    let res = app
        .post(
            "/api/v1/billing/checkout",
            Some(&token),
            &json!({"tier": "pro"}),
        )
        .await;
    let problem = assert_problem(res, 502, "upstream-unavailable").await;
    assert!(!problem.to_string().contains(stripe::API_KEY));
    assert_eq!(fake.requests().len(), 2, "the refused one was sent once");
}

on_both!(
    admins_set_enterprise_limits,
    admins_set_enterprise_limits_body
);
async fn admins_set_enterprise_limits_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, admin) = app.admin("admin@example.com").await;
    let (customer, token) = app.user("big@example.com").await;
    let id = customer["id"].as_str().unwrap();
    let limits_path = format!("/api/v1/admin/users/{id}/limits");
    let limits = json!({"datasets": 2, "ai_messages": null, "reports": 1,
                        "collaborators": 0, "data_connections": 3});

    // Not enterprise yet: its tier decides.
    let res = app
        .send_json(Method::PUT, &limits_path, Some(&admin), &limits)
        .await;
    assert_problem(res, 422, "validation").await;
    let res = app
        .patch(
            &format!("/api/v1/admin/users/{id}"),
            Some(&admin),
            &json!({"tier": "enterprise"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let unset: Value = app
        .get(&limits_path, Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        unset,
        json!({"datasets": null, "ai_messages": null, "reports": null,
               "collaborators": null, "data_connections": null})
    );

    let res = app
        .send_json(Method::PUT, &limits_path, Some(&admin), &limits)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), limits);
    let usage: Value = app
        .get("/api/v1/me/usage", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["tier"], "enterprise");
    assert_eq!(usage["datasets"], json!({"used": 0, "limit": 2}));
    assert_eq!(usage["ai_messages"], json!({"used": 0, "limit": null}));
    assert_eq!(usage["reports"], json!({"used": 0, "limit": 1}));
    assert_eq!(usage["collaborators"], json!({"used": 0, "limit": 0}));
    assert_eq!(usage["data_connections"], json!({"used": 0, "limit": 3}));

    // Bad input: a negative or huge value, an unknown field, a bad id; not an admin.
    for bad in [
        json!({"datasets": -1}),
        json!({"reports": 3_000_000_000_i64}),
        json!({"seats": 5}),
    ] {
        let res = app
            .send_json(Method::PUT, &limits_path, Some(&admin), &bad)
            .await;
        assert_problem(res, 422, "validation").await;
    }
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/admin/users/nope/limits",
            Some(&admin),
            &limits,
        )
        .await;
    assert_problem(res, 422, "validation").await;
    let missing = format!("/api/v1/admin/users/{}/limits", uuid::Uuid::new_v4());
    assert_problem(app.get(&missing, Some(&admin)).await, 404, "not-found").await;
    let res = app
        .send_json(Method::PUT, &limits_path, Some(&token), &limits)
        .await;
    assert_problem(res, 403, "forbidden").await;
    let still: Value = app
        .get(&limits_path, Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still, limits, "refused changes changed nothing");

    // A field left out of the PUT is unlimited.
    let res = app
        .send_json(
            Method::PUT,
            &limits_path,
            Some(&admin),
            &json!({"datasets": 9}),
        )
        .await;
    let replaced: Value = res.json().await.unwrap();
    assert_eq!(replaced["datasets"], 9);
    assert_eq!(replaced["reports"], Value::Null);
}
