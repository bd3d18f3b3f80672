//! Product events over HTTP: `POST /api/v1/events` (validation, with and without a token,
//! 10,000 events from 20 concurrent clients through the real buffer, a full buffer's drops
//! counted in `/metrics`), server-side events, and the admin summary.
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use futures_util::future::join_all;
use iops_tests::{Backend, TestDb, on_both};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_problem, spawn, spawn_buffered};

const EVENTS: &str = "/api/v1/events";

async fn stored(app: &TestApp, filter: &str) -> i64 {
    let db = app.domain.database().connection();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM analytics_events WHERE {filter}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Waits (with a deadline) until the buffer is empty and `filter` counts `n` rows.
async fn wait_stored(app: &TestApp, filter: &str, n: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count = stored(app, filter).await;
        if (count >= n && app.domain.events.queued() == 0) || Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn at(offset: chrono::Duration, app: &TestApp) -> String {
    (app.clock_now() + offset).to_rfc3339_opts(SecondsFormat::Millis, true)
}

on_both!(
    refused_requests_keep_nothing,
    refused_requests_keep_nothing_body
);
async fn refused_requests_keep_nothing_body(db: TestDb) {
    let app = spawn(db).await;
    let big = "x".repeat(8 * 1024);
    let day = chrono::Duration::days(1);
    let hundred_one: Vec<Value> = (0..101).map(|_| json!({"event": "a"})).collect();
    for body in [
        json!({"events": []}),
        json!({"events": hundred_one}),
        json!({"events": [{"event": "ok"}, {"event": "Bad"}]}),
        json!({"events": [{"event": "9lives"}]}),
        json!({"events": [{"event": ""}]}),
        json!({"events": [{"event": "a-b"}]}),
        json!({"events": [{"event": format!("a{}", "b".repeat(100))}]}),
        json!({"events": [{"event": "ok", "properties": {"big": big}}]}),
        json!({"events": [{"event": "ok", "properties": [1, 2]}]}),
        json!({"events": [{"event": "ok", "properties": "text"}]}),
        json!({"events": [{"event": "ok", "properties": {"nul": "a\u{0}b"}}]}),
        json!({"events": [{"event": "ok", "occurred_at": at(day + chrono::Duration::minutes(5), &app)}]}),
        json!({"events": [{"event": "ok", "occurred_at": at(-chrono::Duration::days(401), &app)}]}),
        json!({"events": [{"event": "ok", "occurred_at": "yesterday"}]}),
        json!({"events": [{"event": "ok", "occurred_at": "2026-01-01"}]}),
        json!({"events": [{"event": "ok", "extra": 1}]}),
        json!({"events": [{"event": "ok"}], "user_id": "x"}),
        json!({"events": [{"event": "ok"}], "anonymous_id": ""}),
        json!({"events": [{"event": "ok"}], "anonymous_id": "a".repeat(101)}),
        json!({"events": [{"event": "ok"}], "anonymous_id": "tab\there"}),
        json!({"event": "ok"}),
    ] {
        let res = app.post(EVENTS, None, &body).await;
        assert_problem(res, 422, "validation").await;
    }
    assert_eq!(stored(&app, "1 = 1").await, 0);

    // The limits themselves are accepted: 100 events, 8 KB of properties, a day ahead.
    let props = json!({"k": "y".repeat(8 * 1024 - 8)});
    assert_eq!(serde_json::to_vec(&props).unwrap().len(), 8 * 1024);
    let hundred: Vec<Value> = (0..100)
        .map(|i| json!({"event": "page.view", "properties": {"i": i}}))
        .collect();
    for body in [
        json!({"events": hundred}),
        json!({"events": [{"event": "big", "properties": props}]}),
        json!({"events": [{"event": "soon", "occurred_at": at(day, &app), "properties": null}]}),
        json!({"events": [{"event": "old", "occurred_at": at(-chrono::Duration::days(399), &app)}]}),
    ] {
        let res = app.post(EVENTS, None, &body).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED, "{body}");
    }
    assert_eq!(stored(&app, "1 = 1").await, 103);
}

on_both!(users_and_visitors, users_and_visitors_body);
async fn users_and_visitors_body(db: TestDb) {
    let app = spawn_buffered(db, 1_000).await;
    let (user, token) = app.user("ada@example.com").await;
    let res = app
        .post(
            EVENTS,
            Some(&token),
            &json!({"events": [{"event": "chart.viewed", "properties": {"chart": "c1"}}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"accepted": 1, "dropped": 0})
    );
    let res = app
        .post(
            EVENTS,
            None,
            &json!({"events": [{"event": "landing.viewed"}, {"event": "signup.started", "occurred_at": "2020-01-01T00:00:00Z"}], "anonymous_id": "visitor-7"}),
        )
        .await;
    // One bad event (too old) refuses the request: nothing of it is kept.
    assert_problem(res, 422, "validation").await;
    let now = at(chrono::Duration::zero(), &app);
    let res = app
        .post(
            EVENTS,
            None,
            &json!({"events": [{"event": "landing.viewed"}, {"event": "signup.started", "occurred_at": now}], "anonymous_id": "visitor-7"}),
        )
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"accepted": 2, "dropped": 0})
    );
    for token in [
        "not-a-token",
        "iops_0000000000000000000000000000000000000000",
    ] {
        let res = app
            .post(EVENTS, Some(token), &json!({"events": [{"event": "x"}]}))
            .await;
        assert_problem(res, 401, "unauthorized").await;
    }

    let id = user["id"].as_str().unwrap();
    let user_filter = match app.db.backend {
        Backend::Postgres => format!("user_id = '{id}'::uuid"),
        Backend::Sqlite => format!("user_id = '{id}'"),
    };
    assert_eq!(
        wait_stored(
            &app,
            &format!("event = 'chart.viewed' AND {user_filter} AND anonymous_id IS NULL"),
            1
        )
        .await,
        1
    );
    assert_eq!(
        wait_stored(&app, "anonymous_id = 'visitor-7' AND user_id IS NULL", 2).await,
        2
    );
    assert_eq!(stored(&app, "event = 'x'").await, 0);
    // Registration is a server-side event of the same user.
    assert_eq!(
        wait_stored(
            &app,
            &format!("event = 'user.registered' AND {user_filter}"),
            1
        )
        .await,
        1
    );
    assert_eq!(app.domain.events.dropped(), 0);
}

/// 20 clients post 10,000 events (50 per request); returns the sums of `accepted` and
/// `dropped` over the answers.
async fn post_ten_thousand(app: &TestApp) -> (u64, u64) {
    let clients = (0..20).map(|c| async move {
        let (mut accepted, mut dropped) = (0, 0);
        for r in 0..10 {
            let events: Vec<Value> = (0..50)
                .map(|i| json!({"event": "load.test", "properties": {"client": c, "request": r, "i": i}}))
                .collect();
            let res = app
                .post(EVENTS, None, &json!({"events": events, "anonymous_id": format!("client-{c}")}))
                .await;
            assert_eq!(res.status(), StatusCode::ACCEPTED);
            let body: Value = res.json().await.unwrap();
            accepted += body["accepted"].as_u64().unwrap();
            dropped += body["dropped"].as_u64().unwrap();
        }
        (accepted, dropped)
    });
    join_all(clients)
        .await
        .into_iter()
        .fold((0, 0), |(a, d), (ca, cd)| (a + ca, d + cd))
}

on_both!(
    ten_thousand_events_are_all_stored,
    ten_thousand_events_are_all_stored_body
);
async fn ten_thousand_events_are_all_stored_body(db: TestDb) {
    let app = spawn_buffered(db, domain::DEFAULT_EVENT_BUFFER).await;
    let (accepted, dropped) = post_ten_thousand(&app).await;
    // The buffer holds all of them: nothing may be dropped.
    assert_eq!((accepted, dropped), (10_000, 0));
    assert_eq!(
        wait_stored(&app, "event = 'load.test'", 10_000).await,
        10_000
    );
    assert_eq!(app.domain.events.dropped(), 0);
    assert_eq!(app.metric("iops_analytics_events_dropped_total").await, 0);
    assert_eq!(stored(&app, "1 = 1").await, 10_000);
}

on_both!(
    a_full_buffer_drops_and_counts,
    a_full_buffer_drops_and_counts_body
);
async fn a_full_buffer_drops_and_counts_body(db: TestDb) {
    let app = spawn_buffered(db, 300).await;
    // Another connection holds the table (PostgreSQL) or the write lock (SQLite) while the
    // clients post: the worker cannot write, the buffer fills, and the rest is dropped.
    let blocker = app.db.connect().await;
    let txn = match app.db.backend {
        Backend::Postgres => {
            let txn = blocker.begin().await.unwrap();
            txn.execute_unprepared("LOCK TABLE analytics_events IN EXCLUSIVE MODE")
                .await
                .unwrap();
            txn
        }
        Backend::Sqlite => blocker
            .begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
            .unwrap(),
    };
    let (accepted, dropped) = post_ten_thousand(&app).await;
    txn.rollback().await.unwrap();
    assert_eq!(accepted + dropped, 10_000);
    assert!(dropped > 0, "nothing dropped");
    assert!(accepted > 0, "nothing accepted");

    let count = wait_stored(&app, "event = 'load.test'", accepted as i64).await;
    assert_eq!(count as u64, accepted, "every accepted event is stored");
    assert_eq!(count as u64 + app.domain.events.dropped(), 10_000);
    assert_eq!(app.domain.events.dropped(), dropped);
    assert_eq!(
        app.metric("iops_analytics_events_dropped_total").await,
        dropped
    );
}

on_both!(server_side_events, server_side_events_body);
async fn server_side_events_body(db: TestDb) {
    let app = spawn_buffered(db, 1_000).await;
    let (_, token) = app.user("ada@example.com").await;
    let dataset = crate::datasets::upload_csv(&app, &token, "cities.csv").await;
    let analysis = crate::analyses::create_analysis(
        &app,
        &token,
        &json!({"name": "Cities", "dataset_id": dataset["id"], "config": {"query": {"sql": "SELECT city FROM data"}}}),
    )
    .await;
    let path = format!("/api/v1/analyses/{}/run", analysis["id"].as_str().unwrap());
    let res = app.post(&path, Some(&token), &json!(null)).await;
    assert_eq!(res.status(), StatusCode::OK);
    crate::reports::create_report(&app, &token, &analysis["id"], &json!({})).await;
    for event in [
        "user.registered",
        "dataset.uploaded",
        "analysis.ran",
        "report.created",
    ] {
        assert_eq!(
            wait_stored(
                &app,
                &format!("event = '{event}' AND user_id IS NOT NULL"),
                1
            )
            .await,
            1,
            "{event}"
        );
    }
    // A refused operation records nothing.
    let res = crate::datasets::upload_as(&app, &token, "x.exe", None, "boo", None).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.domain.events.queued(), 0);
    assert_eq!(stored(&app, "event = 'dataset.uploaded'").await, 1);
}

on_both!(summary_per_day, summary_per_day_body);
async fn summary_per_day_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, admin) = app.admin("root@example.com").await;
    let (_, token) = app.user("ada@example.com").await;
    let today = app.clock_now().date_naive();
    let day = |n: i64| today - chrono::Duration::days(n);
    let post = |events: Value| {
        let app = &app;
        async move {
            let res = app.post(EVENTS, None, &json!({"events": events})).await;
            assert_eq!(res.status(), StatusCode::ACCEPTED);
        }
    };
    let noon = |d: chrono::NaiveDate| format!("{d}T12:00:00Z");
    post(json!([
        {"event": "a.b", "occurred_at": noon(day(2))},
        {"event": "a.b", "occurred_at": noon(day(2))},
        {"event": "c", "occurred_at": noon(day(2))},
        {"event": "c", "occurred_at": format!("{}T00:00:00Z", day(1))},
        {"event": "c", "occurred_at": format!("{}T23:59:59.999Z", day(1))},
        {"event": "old", "occurred_at": noon(day(40))},
    ]))
    .await;

    let res = app
        .get(
            &format!("/api/v1/admin/events/summary?from={}&to={}", day(2), day(1)),
            Some(&admin),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"days": [
            {"day": day(2).to_string(), "events": {"a.b": 2, "c": 1}},
            {"day": day(1).to_string(), "events": {"c": 2}},
        ]})
    );
    // Default: the last 30 days, with today's registrations (server-side events).
    let body: Value = app
        .get("/api/v1/admin/events/summary", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 3, "{body}");
    assert_eq!(days[2]["day"], today.to_string());
    assert_eq!(days[2]["events"]["user.registered"], 2);
    let body: Value = app
        .get(
            &format!("/api/v1/admin/events/summary?from={}", day(45)),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["days"][0]["events"], json!({"old": 1}));

    for query in [
        format!("from={}&to={}", day(1), day(2)),
        format!("from={}&to={}", day(366), day(0)),
        "from=yesterday".to_owned(),
        "to=2026-13-01".to_owned(),
    ] {
        let res = app
            .get(
                &format!("/api/v1/admin/events/summary?{query}"),
                Some(&admin),
            )
            .await;
        assert_problem(res, 422, "validation").await;
    }
    let res = app
        .get(
            &format!(
                "/api/v1/admin/events/summary?from={}&to={}",
                day(365),
                day(0)
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.get("/api/v1/admin/events/summary", Some(&token)).await;
    assert_problem(res, 403, "forbidden").await;
    let res = app.get("/api/v1/admin/events/summary", None).await;
    assert_problem(res, 401, "unauthorized").await;
}
