//! Product events in the domain: ingest without and with the buffer (a closed buffer
//! writes what it holds), the user link surviving account deletion, retention with the
//! clock moved, and on PostgreSQL the monthly partitions (created ahead, rows moved out of
//! the default partition, concurrent creators, old partitions dropped).
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::{Domain, Error, EventSink, Id, NewEvent, Tier};
use iops_tests::{Backend, TestDb, count, on_both};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Statement};
use serde_json::json;

use crate::analyses::insert_user;
use crate::support::harness;

fn event(name: &str, at: Option<DateTime<Utc>>) -> NewEvent {
    NewEvent {
        event: name.to_owned(),
        occurred_at: at,
        properties: Some(json!({"k": 1})),
    }
}

async fn ingest_at(domain: &Domain, name: &str, at: DateTime<Utc>) {
    domain
        .events
        .ingest(None, None, vec![event(name, Some(at))])
        .await
        .expect("ingest");
}

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// The partitions of `analytics_events`, by name.
async fn partitions(db: &DatabaseConnection) -> Vec<String> {
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'analytics_events'::regclass ORDER BY 1",
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get_by_index::<String>(0).unwrap())
    .collect()
}

on_both!(
    ingest_checks_everything_first,
    ingest_checks_everything_first_body
);
async fn ingest_checks_everything_first_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection().clone();
    let user = insert_user(&conn, Tier::Free).await;
    let now = h.domain.now();
    let stored = h
        .domain
        .events
        .ingest(
            Some(user),
            Some("device-1".to_owned()),
            vec![
                event("a", None),
                event("b.c", Some(now - Duration::days(3))),
            ],
        )
        .await
        .unwrap();
    assert_eq!((stored.accepted, stored.dropped), (2, 0));
    for bad in [
        vec![],
        vec![event("ok", None), event("Nope", None)],
        vec![event("ok", Some(now + Duration::hours(25)))],
        vec![event("ok", Some(now - Duration::days(401)))],
        (0..101).map(|_| event("ok", None)).collect(),
    ] {
        let err = h.domain.events.ingest(None, None, bad).await.unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{err:?}");
    }
    assert_eq!(count(&conn, "analytics_events").await, 2);

    // Deleting the account keeps its events, without the account.
    entity::users::Entity::delete_by_id(user)
        .exec(&conn)
        .await
        .unwrap();
    assert_eq!(
        scalar(&conn, "SELECT COUNT(*) FROM analytics_events WHERE user_id IS NULL AND anonymous_id = 'device-1'").await,
        2
    );
    // An account deleted between the request and the write: the events stay, unlinked.
    let gone = Id(uuid::Uuid::new_v4());
    h.domain
        .events
        .ingest(Some(gone), None, vec![event("late", None)])
        .await
        .unwrap();
    assert_eq!(
        scalar(
            &conn,
            "SELECT COUNT(*) FROM analytics_events WHERE event = 'late' AND user_id IS NULL"
        )
        .await,
        1
    );
}

on_both!(
    closing_the_buffer_writes_it,
    closing_the_buffer_writes_it_body
);
async fn closing_the_buffer_writes_it_body(db: TestDb) {
    let h = harness(db).await;
    let sink = EventSink::start(h.domain.database(), 1_000);
    let domain = h.domain.with_events(sink.clone());
    for _ in 0..7 {
        let events = (0..100).map(|_| event("bulk", None)).collect();
        let got = domain.events.ingest(None, None, events).await.unwrap();
        assert_eq!((got.accepted, got.dropped), (100, 0));
    }
    domain.events.close(StdDuration::from_secs(30)).await;
    let conn = h.domain.database().connection();
    assert_eq!(count(conn, "analytics_events").await, 700);
    assert_eq!(domain.events.queued(), 0);
    // A closed buffer takes nothing more: dropped, and counted.
    let got = domain
        .events
        .ingest(None, None, vec![event("late", None)])
        .await
        .unwrap();
    assert_eq!((got.accepted, got.dropped), (0, 1));
    assert_eq!(domain.events.dropped(), 1);
    assert_eq!(sink.dropped(), 1);
    assert_eq!(count(conn, "analytics_events").await, 700);
}

on_both!(
    retention_prunes_old_events,
    retention_prunes_old_events_body
);
async fn retention_prunes_old_events_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection().clone();
    let postgres = h.db.backend == Backend::Postgres;
    // 2025-01-15: partitions for January to March 2025; December 2024 has none (default).
    h.clock.set(utc(2025, 1, 15));
    ingest_at(&h.domain, "dec", utc(2024, 12, 20)).await;
    let created = h.domain.events.create_partitions().await.unwrap();
    if postgres {
        assert_eq!(
            created,
            [
                "analytics_events_2025_01",
                "analytics_events_2025_02",
                "analytics_events_2025_03"
            ]
        );
    } else {
        assert!(created.is_empty());
    }
    ingest_at(&h.domain, "jan", utc(2025, 1, 10)).await;
    h.clock.set(utc(2025, 2, 20));
    ingest_at(&h.domain, "jan", utc(2025, 1, 31)).await;
    ingest_at(&h.domain, "feb", utc(2025, 2, 5)).await;
    ingest_at(&h.domain, "feb", utc(2025, 2, 20)).await;
    assert_eq!(h.domain.events.prune().await.unwrap(), 0);

    // 2026-03-15, 400 days: the cutoff is 2025-02-08 12:00.
    h.clock.set(utc(2026, 3, 15));
    ingest_at(&h.domain, "now", utc(2026, 3, 15)).await;
    h.domain.events.create_partitions().await.unwrap();
    assert_eq!(h.domain.events.prune().await.unwrap(), 4);
    let left = scalar(&conn, "SELECT COUNT(*) FROM analytics_events").await;
    assert_eq!(left, 2, "the 2025-02-20 and today's events stay");
    assert_eq!(
        scalar(
            &conn,
            "SELECT COUNT(*) FROM analytics_events WHERE event = 'feb'"
        )
        .await,
        1
    );
    if postgres {
        assert_eq!(
            partitions(&conn).await,
            [
                "analytics_events_2025_02",
                "analytics_events_2025_03",
                "analytics_events_2026_03",
                "analytics_events_2026_04",
                "analytics_events_2026_05",
                "analytics_events_default",
            ],
            "January 2025 is dropped whole"
        );
        assert_eq!(
            scalar(&conn, "SELECT COUNT(*) FROM analytics_events_2026_03").await,
            1
        );
    }
    // Nothing more to do.
    assert_eq!(h.domain.events.prune().await.unwrap(), 0);
}

on_both!(
    partitions_take_waiting_rows,
    partitions_take_waiting_rows_body
);
/// A partition is created for a month whose events already wait in the default partition
/// (here: two processes at once): the events move into it, none is lost.
async fn partitions_take_waiting_rows_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection().clone();
    let now = h.domain.now();
    for days in 0..5 {
        ingest_at(&h.domain, "early", now - Duration::days(days)).await;
    }
    ingest_at(&h.domain, "soon", now + Duration::hours(20)).await;
    let second = h.second_process().await;
    let (a, b) = tokio::join!(
        h.domain.events.create_partitions(),
        second.events.create_partitions()
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(count(&conn, "analytics_events").await, 6);
    if h.db.backend == Backend::Postgres {
        let mut all: Vec<String> = a.into_iter().chain(b).collect();
        all.sort();
        assert_eq!(
            all,
            [
                "analytics_events_2026_03",
                "analytics_events_2026_04",
                "analytics_events_2026_05"
            ],
            "each created once"
        );
        assert_eq!(
            scalar(&conn, "SELECT COUNT(*) FROM analytics_events_default").await,
            0
        );
        assert_eq!(
            scalar(&conn, "SELECT COUNT(*) FROM analytics_events_2026_03").await,
            6
        );
        // Still a working table with its indexes and keys: new rows route to the month.
        ingest_at(&h.domain, "later", now).await;
        assert_eq!(
            scalar(&conn, "SELECT COUNT(*) FROM analytics_events_2026_03").await,
            7
        );
        assert_eq!(
            scalar(
                &conn,
                "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'analytics_events_2026_03'"
            )
            .await,
            3,
            "primary key and the two indexes"
        );
    } else {
        assert!(a.is_empty() && b.is_empty());
    }
    assert_eq!(
        h.domain.events.create_partitions().await.unwrap(),
        Vec::<String>::new()
    );
}
