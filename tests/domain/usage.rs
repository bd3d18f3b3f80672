//! Domain tests: usage.
use chrono::{DateTime, TimeZone, Utc};
use domain::Tier;
use domain::{Counter, limit_for, month_of, resets_at};
use domain::{Domain, Error, Id, LimitKind};
use iops_tests::{TestDb, on_both};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::Expr,
};

use crate::support::harness;

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
}

/// A user row, written directly (these tests do not depend on the accounts service).
pub async fn new_user(db: &DatabaseConnection, tier: Tier) -> Id {
    let id = Id(uuid::Uuid::new_v4());
    let now = Utc::now().naive_utc();
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

/// The stored usage row of `user` for `month`, if any.
pub async fn usage_row(
    db: &DatabaseConnection,
    user: Id,
    month: &str,
) -> Option<entity::usage_tracking::Model> {
    entity::usage_tracking::Entity::find()
        .filter(entity::usage_tracking::Column::UserId.eq(user))
        .filter(entity::usage_tracking::Column::MonthYear.eq(month))
        .one(db)
        .await
        .expect("read usage row")
}

/// One `consume` in a write transaction of its own, committed when it succeeds.
async fn consume_once(domain: &Domain, user: Id, kind: LimitKind) -> domain::Result<i64> {
    domain.usage.consume(user, kind).await
}

#[test]
fn months_and_resets_are_utc_calendar_months() {
    assert_eq!(month_of(utc(2026, 3, 15, 12, 0, 0)), "2026-03");
    assert_eq!(month_of(utc(2026, 3, 31, 23, 59, 59)), "2026-03");
    assert_eq!(month_of(utc(2026, 4, 1, 0, 0, 0)), "2026-04");
    assert_eq!(month_of(utc(987, 1, 1, 0, 0, 0)), "0987-01");
    assert_eq!(
        resets_at(utc(2026, 3, 15, 12, 0, 0)),
        utc(2026, 4, 1, 0, 0, 0)
    );
    assert_eq!(
        resets_at(utc(2026, 3, 1, 0, 0, 0)),
        utc(2026, 4, 1, 0, 0, 0)
    );
    assert_eq!(
        resets_at(utc(2026, 2, 28, 23, 59, 59)),
        utc(2026, 3, 1, 0, 0, 0)
    );
    assert_eq!(
        resets_at(utc(2026, 12, 31, 23, 59, 59)),
        utc(2027, 1, 1, 0, 0, 0)
    );
    assert_eq!(
        resets_at(utc(2026, 12, 1, 0, 0, 0)),
        utc(2027, 1, 1, 0, 0, 0)
    );
}

#[test]
fn limit_table_matches_the_spec() {
    use LimitKind::*;
    assert_eq!(limit_for(Tier::Free, Datasets), Some(5));
    assert_eq!(limit_for(Tier::Free, AiMessages), Some(50));
    assert_eq!(limit_for(Tier::Free, Reports), Some(3));
    for tier in [Tier::Pro, Tier::Team, Tier::Enterprise] {
        for kind in [Datasets, AiMessages, Reports] {
            assert_eq!(limit_for(tier, kind), None, "{tier:?} {kind:?}");
        }
    }
    // The standing limits of PHASES.md's complete table; enterprise is per customer.
    assert_eq!(limit_for(Tier::Free, Collaborators), Some(3));
    assert_eq!(limit_for(Tier::Pro, Collaborators), Some(3));
    assert_eq!(limit_for(Tier::Team, Collaborators), None);
    assert_eq!(limit_for(Tier::Free, DataConnections), Some(5));
    assert_eq!(limit_for(Tier::Pro, DataConnections), Some(5));
    assert_eq!(limit_for(Tier::Team, DataConnections), Some(10));
    assert_eq!(limit_for(Tier::Enterprise, DataConnections), None);
}

on_both!(concurrent_consume_stops_at_limit, concurrent_consume_body);
async fn concurrent_consume_body(db: TestDb) {
    let h = harness(db).await;
    let user = new_user(h.domain.database().connection(), Tier::Free).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let domain = h.domain.clone();
            tokio::spawn(async move { consume_once(&domain, user, LimitKind::Datasets).await })
        })
        .collect();
    let mut granted = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(used) => granted.push(used),
            Err(Error::LimitExceeded {
                limit,
                allowed,
                used,
                ..
            }) => {
                assert_eq!((limit, allowed, used), (LimitKind::Datasets, 5, 5));
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    granted.sort();
    assert_eq!(granted, vec![1, 2, 3, 4, 5]);
    let row = usage_row(h.domain.database().connection(), user, "2026-03")
        .await
        .unwrap();
    assert_eq!(
        (row.datasets_count, row.ai_messages_count, row.reports_count),
        (5, 0, 0)
    );
}

on_both!(
    concurrent_consume_across_processes,
    concurrent_consume_across_processes_body
);
async fn concurrent_consume_across_processes_body(db: TestDb) {
    let h = harness(db).await;
    let second = h.second_process().await;
    let user = new_user(h.domain.database().connection(), Tier::Free).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let domain = if i % 2 == 0 {
                h.domain.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move { consume_once(&domain, user, LimitKind::Reports).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::LimitExceeded { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(ok, 3);
    let row = usage_row(h.domain.database().connection(), user, "2026-03")
        .await
        .unwrap();
    assert_eq!(row.reports_count, 3);
}

on_both!(paid_tiers_are_unlimited, paid_tiers_are_unlimited_body);
async fn paid_tiers_are_unlimited_body(db: TestDb) {
    let h = harness(db).await;
    for tier in [Tier::Pro, Tier::Team, Tier::Enterprise] {
        let user = new_user(h.domain.database().connection(), tier).await;
        for expected in 1..=12 {
            assert_eq!(
                consume_once(&h.domain, user, LimitKind::Datasets)
                    .await
                    .unwrap(),
                expected
            );
        }
        let report = h.domain.usage.report(user).await.unwrap();
        assert_eq!(report.tier, tier);
        assert_eq!(
            report.datasets,
            Counter {
                used: 12,
                limit: None
            }
        );
        assert_eq!(
            report.reports,
            Counter {
                used: 0,
                limit: None
            }
        );
    }
}

on_both!(
    limits_reset_with_the_month,
    limits_reset_with_the_month_body
);
async fn limits_reset_with_the_month_body(db: TestDb) {
    let h = harness(db).await;
    let user = new_user(h.domain.database().connection(), Tier::Free).await;
    for _ in 0..5 {
        consume_once(&h.domain, user, LimitKind::Datasets)
            .await
            .unwrap();
    }
    let refused = consume_once(&h.domain, user, LimitKind::Datasets).await;
    assert!(
        matches!(refused, Err(Error::LimitExceeded { resets_at, .. }) if resets_at == Some(utc(2026, 4, 1, 0, 0, 0)))
    );

    h.clock.set(utc(2026, 3, 31, 23, 59, 59));
    assert!(matches!(
        consume_once(&h.domain, user, LimitKind::Datasets).await,
        Err(Error::LimitExceeded { used: 5, .. })
    ));

    h.clock.set(utc(2026, 4, 1, 0, 0, 0));
    assert_eq!(
        consume_once(&h.domain, user, LimitKind::Datasets)
            .await
            .unwrap(),
        1
    );
    let report = h.domain.usage.report(user).await.unwrap();
    assert_eq!(report.month, "2026-04");
    assert_eq!(report.resets_at, utc(2026, 5, 1, 0, 0, 0));
    assert_eq!(
        report.datasets,
        Counter {
            used: 1,
            limit: Some(5)
        }
    );
    // March is kept as it was.
    let march = usage_row(h.domain.database().connection(), user, "2026-03")
        .await
        .unwrap();
    assert_eq!(march.datasets_count, 5);
}

on_both!(
    tier_change_applies_at_once,
    tier_change_applies_at_once_body
);
async fn tier_change_applies_at_once_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection();
    let user = new_user(conn, Tier::Free).await;
    for _ in 0..3 {
        consume_once(&h.domain, user, LimitKind::Reports)
            .await
            .unwrap();
    }
    assert!(matches!(
        consume_once(&h.domain, user, LimitKind::Reports).await,
        Err(Error::LimitExceeded { .. })
    ));

    let set_tier = |tier: Tier| {
        entity::users::Entity::update_many()
            .col_expr(
                entity::users::Column::Tier,
                Expr::val(entity::users::Tier::from(tier)),
            )
            .filter(entity::users::Column::Id.eq(user))
            .exec(conn)
    };
    set_tier(Tier::Pro).await.unwrap();
    assert_eq!(
        consume_once(&h.domain, user, LimitKind::Reports)
            .await
            .unwrap(),
        4
    );
    // Back to free: over the limit again, and the refusal reports the real count.
    set_tier(Tier::Free).await.unwrap();
    assert!(matches!(
        consume_once(&h.domain, user, LimitKind::Reports).await,
        Err(Error::LimitExceeded {
            allowed: 3,
            used: 4,
            ..
        })
    ));
}

on_both!(ai_messages_are_limited, ai_messages_are_limited_body);
async fn ai_messages_are_limited_body(db: TestDb) {
    let h = harness(db).await;
    let user = new_user(h.domain.database().connection(), Tier::Free).await;

    let fresh = h.domain.usage.report(user).await.unwrap();
    assert_eq!(fresh.month, "2026-03");
    assert_eq!(fresh.tier, Tier::Free);
    assert_eq!(fresh.resets_at, utc(2026, 4, 1, 0, 0, 0));
    assert_eq!(
        (fresh.datasets, fresh.ai_messages, fresh.reports),
        (
            Counter {
                used: 0,
                limit: Some(5)
            },
            Counter {
                used: 0,
                limit: Some(50)
            },
            Counter {
                used: 0,
                limit: Some(3)
            }
        )
    );
    assert!(
        usage_row(h.domain.database().connection(), user, "2026-03")
            .await
            .is_none()
    );

    for n in 1..=50 {
        let report = h.domain.usage.consume_ai_message(user).await.unwrap();
        assert_eq!(report.ai_messages.used, n);
    }
    let before = usage_row(h.domain.database().connection(), user, "2026-03")
        .await
        .unwrap();
    h.clock.advance(chrono::Duration::minutes(5));
    match h.domain.usage.consume_ai_message(user).await {
        Err(Error::LimitExceeded {
            limit,
            allowed,
            used,
            resets_at,
        }) => {
            assert_eq!(limit, LimitKind::AiMessages);
            assert_eq!((allowed, used), (50, 50));
            assert_eq!(resets_at, Some(utc(2026, 4, 1, 0, 0, 0)));
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    // A refused attempt changes nothing, not even updated_at.
    let after = usage_row(h.domain.database().connection(), user, "2026-03")
        .await
        .unwrap();
    assert_eq!(before, after);
    let report = h.domain.usage.report(user).await.unwrap();
    assert_eq!(
        report.ai_messages,
        Counter {
            used: 50,
            limit: Some(50)
        }
    );
    assert_eq!(report.datasets.used, 0);
}

on_both!(unknown_user_is_not_found, unknown_user_is_not_found_body);
async fn unknown_user_is_not_found_body(db: TestDb) {
    let h = harness(db).await;
    let ghost = Id(uuid::Uuid::new_v4());
    assert!(matches!(
        h.domain.usage.report(ghost).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        h.domain.usage.consume_ai_message(ghost).await,
        Err(Error::NotFound)
    ));
    assert_eq!(
        iops_tests::count(h.domain.database().connection(), "usage_tracking").await,
        0
    );
}

fn limits(
    datasets: Option<i64>,
    reports: Option<i64>,
    collaborators: Option<i64>,
) -> domain::CustomLimits {
    domain::CustomLimits {
        datasets,
        ai_messages: Some(2),
        reports,
        collaborators,
        data_connections: Some(1),
    }
}

on_both!(
    enterprise_limits_hold_under_concurrency,
    enterprise_limits_hold_under_concurrency_body
);
async fn enterprise_limits_hold_under_concurrency_body(db: TestDb) {
    let h = harness(db).await;
    let second = h.second_process().await;
    let admin = domain::Admin::local_operator();
    let user = new_user(h.domain.database().connection(), Tier::Enterprise).await;
    // No row yet: unlimited.
    assert_eq!(
        h.domain.usage.custom_limits(&admin, user).await.unwrap(),
        domain::CustomLimits::default()
    );
    let set = h
        .domain
        .usage
        .change_limits(
            &admin,
            user,
            domain::LimitsChange::replace_all(limits(Some(7), None, Some(4))),
        )
        .await
        .unwrap();
    assert_eq!(set, limits(Some(7), None, Some(4)));

    // 50 uploads at once through two "processes": exactly the customer's 7 pass.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let domain = if i % 2 == 0 {
                h.domain.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move { consume_once(&domain, user, LimitKind::Datasets).await })
        })
        .collect();
    let mut granted = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(used) => granted.push(used),
            Err(Error::LimitExceeded {
                limit,
                allowed,
                used,
                resets_at,
            }) => {
                assert_eq!((limit, allowed, used), (LimitKind::Datasets, 7, 7));
                assert!(resets_at.is_some());
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    granted.sort();
    assert_eq!(granted, (1..=7).collect::<Vec<i64>>());

    // NULL is unlimited: reports go on past any tier's number.
    for expected in 1..=12 {
        assert_eq!(
            consume_once(&h.domain, user, LimitKind::Reports)
                .await
                .unwrap(),
            expected
        );
    }
    let report = h.domain.usage.report(user).await.unwrap();
    assert_eq!(
        report.datasets,
        Counter {
            used: 7,
            limit: Some(7)
        }
    );
    assert_eq!(
        report.reports,
        Counter {
            used: 12,
            limit: None
        }
    );
    assert_eq!(
        report.ai_messages,
        Counter {
            used: 0,
            limit: Some(2)
        }
    );
    assert_eq!(
        report.collaborators,
        Counter {
            used: 0,
            limit: Some(4)
        }
    );
    assert_eq!(
        report.data_connections,
        Counter {
            used: 0,
            limit: Some(1)
        }
    );
}

on_both!(
    lower_limits_keep_what_exists,
    lower_limits_keep_what_exists_body
);
async fn lower_limits_keep_what_exists_body(db: TestDb) {
    let h = harness(db).await;
    let admin = domain::Admin::local_operator();
    let user = new_user(h.domain.database().connection(), Tier::Enterprise).await;
    for _ in 0..4 {
        consume_once(&h.domain, user, LimitKind::Datasets)
            .await
            .unwrap();
    }
    // Only the flag given changes; the others keep their value.
    h.domain
        .usage
        .change_limits(
            &admin,
            user,
            domain::LimitsChange::replace_all(limits(None, Some(9), None)),
        )
        .await
        .unwrap();
    let lowered = h
        .domain
        .usage
        .change_limits(
            &admin,
            user,
            domain::LimitsChange {
                datasets: Some(Some(2)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(lowered, limits(Some(2), Some(9), None));
    // The four uploads stay counted; the fifth is refused with the new allowance.
    match consume_once(&h.domain, user, LimitKind::Datasets).await {
        Err(Error::LimitExceeded { allowed, used, .. }) => assert_eq!((allowed, used), (2, 4)),
        other => panic!("expected the limit, got {other:?}"),
    }
    let report = h.domain.usage.report(user).await.unwrap();
    assert_eq!(
        report.datasets,
        Counter {
            used: 4,
            limit: Some(2)
        }
    );

    // Out of range, or not an enterprise account: refused, nothing changes.
    let negative = domain::LimitsChange {
        reports: Some(Some(-1)),
        ..Default::default()
    };
    assert!(matches!(
        h.domain.usage.change_limits(&admin, user, negative).await,
        Err(Error::Validation(_))
    ));
    let free = new_user(h.domain.database().connection(), Tier::Free).await;
    assert!(matches!(
        h.domain
            .usage
            .change_limits(
                &admin,
                free,
                domain::LimitsChange::replace_all(limits(None, None, None))
            )
            .await,
        Err(Error::Validation(_))
    ));
    assert!(matches!(
        h.domain
            .usage
            .change_limits(&admin, Id(uuid::Uuid::new_v4()), negative)
            .await,
        Err(Error::NotFound)
    ));
    assert_eq!(
        h.domain.usage.custom_limits(&admin, user).await.unwrap(),
        limits(Some(2), Some(9), None)
    );
    // Back to pro (a downgrade of the tier): the table's limits apply again.
    h.domain
        .accounts
        .admin_update(&admin, user, Some(Tier::Pro), None)
        .await
        .unwrap();
    assert_eq!(
        consume_once(&h.domain, user, LimitKind::Datasets)
            .await
            .unwrap(),
        5
    );
}
