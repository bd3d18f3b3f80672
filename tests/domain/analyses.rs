//! Domain tests: analyses.
use chrono::Duration;
use domain::NewReport;
use domain::PageRequest;
use domain::Status;
use domain::Tier;
use domain::{AnalysisChange, NewAnalysis};
use domain::{Error, Id};
use iops_tests::{TestDb, count, on_both};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection};
use serde_json::json;

use crate::support::harness;

/// A user row, written directly (these tests do not depend on the accounts service).
pub async fn insert_user(db: &DatabaseConnection, tier: Tier) -> Id {
    let id = Id(uuid::Uuid::new_v4());
    let now = chrono::Utc::now().naive_utc();
    entity::users::ActiveModel {
        id: Set(id),
        email: Set(format!("{}@example.com", id.0.simple())),
        password_hash: Set("not-a-real-hash".to_owned()),
        full_name: Set(None),
        tier: Set(tier.into()),
        stripe_customer_id: Set(None),
        stripe_subscription_id: Set(None),
        is_admin: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("insert user");
    id
}

/// A dataset row of `user_id`, written directly.
pub async fn insert_dataset(db: &DatabaseConnection, user_id: Id, name: &str) -> Id {
    let id = Id(uuid::Uuid::new_v4());
    let now = chrono::Utc::now().naive_utc();
    entity::datasets::ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        name: Set(name.to_owned()),
        file_path: Set(None),
        connection_id: Set(None),
        row_count: Set(Some(10)),
        column_count: Set(Some(3)),
        size_bytes: Set(Some(120)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("insert dataset");
    id
}

pub fn named(name: &str) -> NewAnalysis {
    NewAnalysis {
        name: name.to_owned(),
        dataset_id: None,
        config: None,
    }
}

on_both!(crud_round_trip, crud_round_trip_body);
async fn crud_round_trip_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection();
    let user = insert_user(conn, Tier::Free).await;
    let dataset = insert_dataset(conn, user, "sales.csv").await;
    let analyses = &h.domain.analyses;

    let created = analyses
        .create(
            user,
            NewAnalysis {
                name: "  Revenue by region ".to_owned(),
                dataset_id: Some(dataset),
                config: Some(json!({"group_by": "region", "metric": "sum", "note": "région ✓"})),
            },
        )
        .await
        .unwrap();
    assert_eq!(created.name, "Revenue by region");
    assert_eq!(created.status, Status::Draft);
    assert_eq!(created.dataset_id, Some(dataset));
    assert_eq!(created.results, None);
    assert_eq!(created.created_at, created.updated_at);

    let read = analyses.get(user, created.id).await.unwrap();
    assert_eq!(read, created);

    h.clock.advance(Duration::minutes(5));
    let updated = analyses
        .update(
            user,
            created.id,
            AnalysisChange {
                name: Some("Revenue".to_owned()),
                results: Some(Some(json!({"rows": [[1, 2], [3, 4]]}))),
                status: Some(Status::Completed),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Revenue");
    assert_eq!(updated.status, Status::Completed);
    assert_eq!(updated.results, Some(json!({"rows": [[1, 2], [3, 4]]})));
    assert_eq!(updated.config, created.config, "absent field is unchanged");
    assert_eq!(updated.dataset_id, Some(dataset));
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(
        updated.updated_at,
        created.updated_at + Duration::minutes(5)
    );
    assert_eq!(analyses.get(user, created.id).await.unwrap(), updated);

    // Explicit nulls clear nullable fields.
    let cleared = analyses
        .update(
            user,
            created.id,
            AnalysisChange {
                dataset_id: Some(None),
                config: Some(None),
                results: Some(Some(serde_json::Value::Null)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.dataset_id, None);
    assert_eq!(cleared.config, None);
    assert_eq!(cleared.results, None);
    assert_eq!(cleared.name, "Revenue");

    analyses.delete(user, created.id).await.unwrap();
    assert!(matches!(
        analyses.get(user, created.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        analyses.delete(user, created.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        analyses
            .update(user, created.id, AnalysisChange::default())
            .await,
        Err(Error::NotFound)
    ));
    assert_eq!(count(conn, "analyses").await, 0);
}

on_both!(validation, validation_body);
async fn validation_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection();
    let user = insert_user(conn, Tier::Free).await;
    let analyses = &h.domain.analyses;

    for name in ["", "   ", &"x".repeat(256)] {
        assert!(
            matches!(
                analyses.create(user, named(name)).await,
                Err(Error::Validation(_))
            ),
            "name {name:?}"
        );
    }
    assert!(analyses.create(user, named(&"é".repeat(255))).await.is_ok());

    for config in [json!([1, 2]), json!("text"), json!(42), json!(true)] {
        let outcome = analyses
            .create(
                user,
                NewAnalysis {
                    config: Some(config.clone()),
                    ..named("a")
                },
            )
            .await;
        assert!(
            matches!(outcome, Err(Error::Validation(_))),
            "config {config}"
        );
    }
    let too_big = json!({"blob": "x".repeat(1024 * 1024)});
    assert!(matches!(
        analyses
            .create(
                user,
                NewAnalysis {
                    config: Some(too_big.clone()),
                    ..named("a")
                }
            )
            .await,
        Err(Error::Validation(_))
    ));
    let near_limit = json!({"blob": "x".repeat(1024 * 1024 - 20)});
    let big = analyses
        .create(
            user,
            NewAnalysis {
                config: Some(near_limit.clone()),
                ..named("big")
            },
        )
        .await
        .unwrap();
    assert_eq!(
        analyses.get(user, big.id).await.unwrap().config,
        Some(near_limit)
    );

    let a = analyses.create(user, named("ok")).await.unwrap();
    for change in [
        AnalysisChange {
            name: Some(String::new()),
            ..Default::default()
        },
        AnalysisChange {
            results: Some(Some(json!([1]))),
            ..Default::default()
        },
        AnalysisChange {
            config: Some(Some(json!("s"))),
            ..Default::default()
        },
        AnalysisChange {
            results: Some(Some(too_big.clone())),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            analyses.update(user, a.id, change).await,
            Err(Error::Validation(_))
        ));
    }
    assert_eq!(
        analyses.get(user, a.id).await.unwrap(),
        a,
        "a refused change changes nothing"
    );
}

on_both!(ownership, ownership_body);
async fn ownership_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection();
    let alice = insert_user(conn, Tier::Free).await;
    let mallory = insert_user(conn, Tier::Free).await;
    let alice_dataset = insert_dataset(conn, alice, "alice.csv").await;
    let mallory_dataset = insert_dataset(conn, mallory, "mallory.csv").await;
    let analyses = &h.domain.analyses;

    let mine = analyses.create(alice, named("mine")).await.unwrap();

    assert!(matches!(
        analyses.get(mallory, mine.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        analyses
            .update(
                mallory,
                mine.id,
                AnalysisChange {
                    name: Some("pwned".into()),
                    ..Default::default()
                }
            )
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        analyses.delete(mallory, mine.id).await,
        Err(Error::NotFound)
    ));
    let page = analyses.list(mallory, None, &first_page()).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!(
        analyses.get(alice, mine.id).await.unwrap(),
        mine,
        "untouched"
    );

    // A dataset must be the caller's own, on create and on update.
    let outcome = analyses
        .create(
            alice,
            NewAnalysis {
                dataset_id: Some(mallory_dataset),
                ..named("x")
            },
        )
        .await;
    assert!(matches!(outcome, Err(Error::NotFound)));
    let outcome = analyses
        .create(
            alice,
            NewAnalysis {
                dataset_id: Some(Id(uuid::Uuid::new_v4())),
                ..named("x")
            },
        )
        .await;
    assert!(matches!(outcome, Err(Error::NotFound)));
    let outcome = analyses
        .update(
            alice,
            mine.id,
            AnalysisChange {
                dataset_id: Some(Some(mallory_dataset)),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(outcome, Err(Error::NotFound)));
    let linked = analyses
        .update(
            alice,
            mine.id,
            AnalysisChange {
                dataset_id: Some(Some(alice_dataset)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(linked.dataset_id, Some(alice_dataset));
    assert_eq!(count(conn, "analyses").await, 1);
}

on_both!(list_filters_and_pages, list_filters_and_pages_body);
async fn list_filters_and_pages_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection();
    let user = insert_user(conn, Tier::Free).await;
    let other = insert_user(conn, Tier::Free).await;
    let analyses = &h.domain.analyses;

    let mut created = Vec::new();
    for i in 0..5 {
        let a = analyses
            .create(user, named(&format!("a{i}")))
            .await
            .unwrap();
        created.push(a);
        h.clock.advance(Duration::seconds(1));
    }
    // Two rows in the same microsecond: the id breaks the tie, and paging stays exact.
    let twin = analyses.create(user, named("twin-1")).await.unwrap();
    let twin2 = analyses.create(user, named("twin-2")).await.unwrap();
    created.push(twin);
    created.push(twin2);
    analyses.create(other, named("not mine")).await.unwrap();
    for a in &created[..2] {
        analyses
            .update(
                user,
                a.id,
                AnalysisChange {
                    status: Some(Status::Completed),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    let mut expected: Vec<_> = created.iter().map(|a| (a.created_at, a.id)).collect();
    expected.sort_by(|x, y| y.cmp(x));
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(Some(2), cursor.as_deref()).unwrap();
        let got = analyses.list(user, None, &page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items.iter().map(|a| (a.created_at, a.id)));
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected, "newest first, every item exactly once");

    let completed = analyses
        .list(user, Some(Status::Completed), &first_page())
        .await
        .unwrap();
    let mut ids: Vec<_> = completed.items.iter().map(|a| a.id).collect();
    ids.sort();
    let mut want = vec![created[0].id, created[1].id];
    want.sort();
    assert_eq!(ids, want);
    assert!(completed.next_cursor.is_none());
    let failed = analyses
        .list(user, Some(Status::Failed), &first_page())
        .await
        .unwrap();
    assert!(failed.items.is_empty());
    let drafts = analyses
        .list(user, Some(Status::Draft), &first_page())
        .await
        .unwrap();
    assert_eq!(drafts.items.len(), 5);
}

on_both!(delete_takes_reports_along, delete_takes_reports_along_body);
async fn delete_takes_reports_along_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection();
    let user = insert_user(conn, Tier::Pro).await;
    let keep = h.domain.analyses.create(user, named("keep")).await.unwrap();
    let doomed = h
        .domain
        .analyses
        .create(user, named("doomed"))
        .await
        .unwrap();
    for _ in 0..2 {
        h.domain
            .reports
            .create(user, doomed.id, NewReport::default())
            .await
            .unwrap();
    }
    let kept = h
        .domain
        .reports
        .create(user, keep.id, NewReport::default())
        .await
        .unwrap();
    assert_eq!(count(conn, "reports").await, 3);

    h.domain.analyses.delete(user, doomed.id).await.unwrap();
    assert_eq!(count(conn, "reports").await, 1);
    assert_eq!(h.domain.reports.get(user, kept.id).await.unwrap(), kept);
}

/// The first page at the default size.
pub fn first_page() -> PageRequest {
    PageRequest::new(None, None).unwrap()
}

on_both!(extreme_floats_round_trip, extreme_floats_round_trip_body);
/// PostgreSQL sends JSON floats back written out in full; they must read back as stored
/// (serde_json's `float_roundtrip`), and never make the owner's reads fail.
async fn extreme_floats_round_trip_body(db: TestDb) {
    let h = harness(db).await;
    let user = insert_user(h.domain.database().connection(), Tier::Free).await;
    let config =
        json!({"max": 1.7976931348623157e308, "odd": 1.3127743122137546e127, "tiny": 5e-324});
    let created = h
        .domain
        .analyses
        .create(
            user,
            NewAnalysis {
                config: Some(config.clone()),
                ..named("floats")
            },
        )
        .await
        .unwrap();
    let read = h.domain.analyses.get(user, created.id).await.unwrap();
    assert_eq!(read.config, Some(config.clone()));
    let page = h
        .domain
        .analyses
        .list(user, None, &PageRequest::new(None, None).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items[0].config, Some(config));
}
