//! Credential guessing (issue item 6) at the HTTP level, across two server processes on
//! one database: the failure counts live in the database, so switching process does not
//! buy an attacker more guesses, a burst of simultaneous guesses cannot slip past the
//! limit, and the owner gets back in once the window has passed.
use std::sync::Arc;
use std::time::Duration;

use domain::{FixedClock, Settings};
use futures_util::future::join_all;
use iops_tests::{TestDb, on_both};
use reqwest::Client;
use serde_json::{Value, json};

use crate::support::{
    PASSWORD, Server, answer, client, fixed_clock, login, options, register, slug,
};

/// Two servers ("processes") on one database, sharing a clock the test moves.
async fn two_processes(db: &TestDb) -> (Server, Server, Arc<FixedClock>) {
    let clock = fixed_clock();
    let a = Server::start(
        db.migrated().await,
        &db.data_dir(),
        clock.clone(),
        Settings::default(),
        options(),
    )
    .await;
    let b = Server::start(
        db.connect().await,
        &db.data_dir(),
        clock.clone(),
        Settings::default(),
        options(),
    )
    .await;
    (a, b, clock)
}

async fn post(client: &Client, url: String, body: &Value) -> (u16, Value, Option<u64>) {
    let res = client.post(url).json(body).send().await.expect("send");
    let retry_after = res
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let (status, body) = answer("credentials", res).await;
    (status, body, retry_after)
}

fn assert_limited(case: &str, (status, body, retry_after): (u16, Value, Option<u64>), max: u64) {
    assert_eq!(status, 429, "{case}: {body}");
    assert_eq!(slug(&body), "rate-limited", "{case}: {body}");
    let retry_after = retry_after.unwrap_or_else(|| panic!("{case}: no Retry-After"));
    assert!((1..=max).contains(&retry_after), "{case}: {retry_after}");
}

on_both!(login_limit_holds_across_processes, login_limit_body);
async fn login_limit_body(db: TestDb) {
    let (a, b, clock) = two_processes(&db).await;
    let c = client();
    register(&c, &a.base, "ada@example.com").await;
    register(&c, &b.base, "bob@example.com").await;
    let login_url = |s: &Server| s.url("/api/v1/auth/login");
    let wrong = json!({"email": "ada@example.com", "password": "wrong password"});
    let right = json!({"email": "ADA@example.com ", "password": PASSWORD});

    // Ten failures, alternating processes: each is checked (401).
    for i in 0..10 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (status, body, _) = post(&c, login_url(server), &wrong).await;
        assert_eq!(status, 401, "attempt {i}: {body}");
    }
    // The eleventh is refused by both, the right password included.
    for server in [&a, &b] {
        assert_limited("wrong", post(&c, login_url(server), &wrong).await, 900);
        assert_limited("right", post(&c, login_url(server), &right).await, 900);
    }
    // Another account from the same client is not affected.
    login(&c, &b.base, "bob@example.com").await;

    // The hint shrinks as the window runs out...
    clock.advance(chrono::Duration::minutes(10));
    assert_limited("later", post(&c, login_url(&b), &right).await, 300);
    // ...and once it has passed, the owner logs in (on either process) and the count
    // starts over.
    clock.advance(chrono::Duration::minutes(5) + chrono::Duration::seconds(1));
    login(&c, &b.base, "ada@example.com").await;
    let (status, _, _) = post(&c, login_url(&a), &wrong).await;
    assert_eq!(status, 401);

    // Thirty simultaneous guesses at a fresh account, half through each process: the
    // limit is checked right before each hash, so at most the hashes running at once
    // (4 per test process) overshoot it; every other guess is refused unchecked.
    register(&c, &a.base, "cy@example.com").await;
    let guess = json!({"email": "cy@example.com", "password": "wrong password"});
    let outcomes = join_all((0..30).map(|i| {
        let url = login_url(if i % 2 == 0 { &a } else { &b });
        let c = c.clone();
        let guess = guess.clone();
        async move { post(&c, url, &guess).await.0 }
    }))
    .await;
    assert_burst_bounded(&outcomes);
}

/// Of a burst of wrong guesses, at least the limit's ten and at most ten plus the hashes
/// running at once in both processes (2 x 4) less one are checked; the rest are refused.
fn assert_burst_bounded(outcomes: &[u16]) {
    let checked = outcomes.iter().filter(|s| **s == 401).count();
    let refused = outcomes.iter().filter(|s| **s == 429).count();
    assert!((10..=17).contains(&checked), "{outcomes:?}");
    assert_eq!(checked + refused, outcomes.len(), "{outcomes:?}");
}

on_both!(unlock_limit_holds_across_processes, unlock_limit_body);
async fn unlock_limit_body(db: TestDb) {
    let (a, b, clock) = two_processes(&db).await;
    let c = client();
    register(&c, &a.base, "owner@example.com").await;
    let token = login(&c, &a.base, "owner@example.com").await;
    let res = c
        .post(a.url("/api/v1/analyses"))
        .bearer_auth(&token)
        .json(&json!({"name": "guarded"}))
        .send()
        .await
        .unwrap();
    let (_, analysis) = answer("analysis", res).await;
    let mut codes = Vec::new();
    for _ in 0..2 {
        let res = c
            .post(a.url(&format!(
                "/api/v1/analyses/{}/reports",
                analysis["id"].as_str().unwrap()
            )))
            .bearer_auth(&token)
            .json(&json!({"password": "the report password"}))
            .send()
            .await
            .unwrap();
        let (status, report) = answer("report", res).await;
        assert_eq!(status, 201, "{report}");
        codes.push(report["short_code"].as_str().unwrap().to_owned());
    }
    let (locked, neighbour) = (&codes[0], &codes[1]);
    let unlock_url = |s: &Server, code: &str| s.url(&format!("/r/{code}/unlock"));
    let wrong = json!({"password": "not the password"});
    let right = json!({"password": "the report password"});

    for i in 0..10 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (status, body, _) = post(&c, unlock_url(server, locked), &wrong).await;
        assert_eq!(status, 401, "attempt {i}: {body}");
    }
    for server in [&a, &b] {
        assert_limited(
            "wrong",
            post(&c, unlock_url(server, locked), &wrong).await,
            900,
        );
        assert_limited(
            "right",
            post(&c, unlock_url(server, locked), &right).await,
            900,
        );
    }
    // Another report is not blocked.
    let (status, body, _) = post(&c, unlock_url(&b, neighbour), &right).await;
    assert_eq!(status, 200, "{body}");

    // A burst on the neighbour, split across both processes: bounded as for logins.
    let outcomes = join_all((0..30).map(|i| {
        let url = unlock_url(if i % 2 == 0 { &a } else { &b }, neighbour);
        let c = c.clone();
        let wrong = wrong.clone();
        async move { post(&c, url, &wrong).await.0 }
    }))
    .await;
    assert_burst_bounded(&outcomes);

    // After the window, the right password opens the report, and the unlock token one
    // process issued is honoured by the other.
    clock.advance(chrono::Duration::minutes(15) + chrono::Duration::seconds(1));
    let (status, body, _) = post(&c, unlock_url(&b, locked), &right).await;
    assert_eq!(status, 200, "{body}");
    let secret = body["access_token"].as_str().unwrap();
    let res = c
        .get(a.url(&format!("/r/{locked}")))
        .bearer_auth(secret)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let (status, view) = answer("unlocked view", res).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["view_count"], 1);
}

on_both!(
    a_burst_of_right_logins_never_locks_out,
    burst_of_right_logins_body
);
/// Failures are counted, not attempts: 16 simultaneous logins with the RIGHT password
/// from one address, through two processes, all succeed (the old attempt count refused
/// those beyond ten), and the owner can log in again afterwards.
async fn burst_of_right_logins_body(db: TestDb) {
    let (a, b, _clock) = two_processes(&db).await;
    let c = client();
    register(&c, &a.base, "ada@example.com").await;
    let right = json!({"email": "ada@example.com", "password": PASSWORD});
    let outcomes = join_all((0..16).map(|i| {
        let url = (if i % 2 == 0 { &a } else { &b }).url("/api/v1/auth/login");
        let c = c.clone();
        let right = right.clone();
        async move { post(&c, url, &right).await.0 }
    }))
    .await;
    assert!(outcomes.iter().all(|s| *s == 200), "{outcomes:?}");
    login(&c, &b.base, "ada@example.com").await;
    login(&c, &a.base, "ada@example.com").await;
}
