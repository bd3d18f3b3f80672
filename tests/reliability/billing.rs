//! Billing across two real `iops serve` processes on one database: a webhook delivered to
//! one process changes the tier that the other enforces on the very next request, and the
//! same event delivered to both at once is applied once.
use iops_tests::stripe;
use iops_tests::{TestDb, count, on_both};
use reqwest::Client;
use serde_json::Value;

use crate::support::{Process, answer, client, login, register};

const SECRET: &str = "whsec_two_processes";

async fn deliver(c: &Client, base: &str, event: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(event).unwrap();
    let header = stripe::signature(&[SECRET], chrono::Utc::now().timestamp(), &body);
    let res = c
        .post(format!("{base}/api/v1/billing/webhook"))
        .header("content-type", "application/json")
        .header("stripe-signature", header)
        .body(body)
        .send()
        .await
        .expect("webhook answer");
    answer("webhook", res).await
}

async fn dataset_upload(c: &Client, base: &str, token: &str, n: usize) -> u16 {
    let res = c
        .post(format!("{base}/api/v1/datasets"))
        .bearer_auth(token)
        .multipart(crate::support::upload_form(
            &format!("d{n}.csv"),
            b"a,b\n1,2\n".to_vec(),
        ))
        .send()
        .await
        .expect("upload answer");
    answer("upload", res).await.0
}

on_both!(tier_changes_reach_every_process, tier_changes_body);
async fn tier_changes_body(db: TestDb) {
    let data_dir = db.data_dir();
    let env = [
        ("IOPS_STRIPE_WEBHOOK_SECRET", SECRET),
        ("IOPS_STRIPE_PRICES", "price_pro:pro,price_team:team"),
    ];
    let a = Process::serve(&db.url, &data_dir, &env).await;
    let b = Process::serve(&db.url, &data_dir, &env).await;
    let c = client();
    let user = register(&c, &a.base, "subscriber@example.com").await;
    let token = login(&c, &b.base, "subscriber@example.com").await;
    let user_id = user["id"].as_str().unwrap();

    // Free: five uploads a month, through either process.
    for n in 0..5 {
        assert_eq!(
            dataset_upload(&c, [&a.base, &b.base][n % 2], &token, n).await,
            201
        );
    }
    assert_eq!(dataset_upload(&c, &b.base, &token, 5).await, 402);

    // Stripe says pro, to process A (both deliveries at once, one to each process:
    // applied exactly once).
    let t = chrono::Utc::now().timestamp();
    let subscribed = stripe::event(
        "evt_two_1",
        "customer.subscription.created",
        t - 10,
        stripe::subscription("sub_two", "cus_two", "active", "price_pro", Some(user_id)),
    );
    let (first, second) = tokio::join!(
        deliver(&c, &a.base, &subscribed),
        deliver(&c, &b.base, &subscribed)
    );
    assert_eq!((first.0, second.0), (200, 200));
    let mut outcomes = [
        first.1["outcome"].as_str().unwrap().to_owned(),
        second.1["outcome"].as_str().unwrap().to_owned(),
    ];
    outcomes.sort();
    assert_eq!(outcomes, ["applied", "duplicate"]);
    // Process B enforces pro on the next request.
    assert_eq!(dataset_upload(&c, &b.base, &token, 6).await, 201);

    // Cancelled, delivered to B: A refuses the next upload at once.
    let cancelled = stripe::event(
        "evt_two_2",
        "customer.subscription.deleted",
        t - 5,
        stripe::subscription("sub_two", "cus_two", "canceled", "price_pro", None),
    );
    assert_eq!(deliver(&c, &b.base, &cancelled).await.0, 200);
    assert_eq!(dataset_upload(&c, &a.base, &token, 7).await, 402);
    let conn = db.connect().await;
    assert_eq!(count(&conn, "billing_events").await, 2);
    assert!(!a.stderr().contains(SECRET) && !b.stderr().contains(SECRET));
}
