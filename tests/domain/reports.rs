//! Domain tests: reports.
use std::collections::HashSet;

use chrono::Duration;
use domain::PageRequest;
use domain::Tier;
use domain::{Clock, Domain, Error, Id, LimitKind};
use domain::{NewReport, ReportChange};
use iops_tests::{TestDb, count, on_both};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Statement,
    TransactionTrait,
};

use crate::analyses::{first_page, insert_dataset, insert_user, named};
use crate::support::harness;

/// A user of `tier` with one analysis (on a dataset of theirs).
async fn owner_with_analysis(d: &Domain, tier: Tier) -> (Id, Id) {
    let user = insert_user(d.database().connection(), tier).await;
    let dataset = insert_dataset(d.database().connection(), user, "data.csv").await;
    let analysis = d
        .analyses
        .create(
            user,
            domain::NewAnalysis {
                dataset_id: Some(dataset),
                ..named("shared analysis")
            },
        )
        .await
        .unwrap();
    (user, analysis.id)
}

fn with_password(password: &str) -> NewReport {
    NewReport {
        password: Some(password.to_owned()),
        ..Default::default()
    }
}

/// The contract's shape of a short code: `^[0-9A-Za-z]{8,20}$`.
fn is_short_code(code: &str) -> bool {
    (8..=20).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

async fn stored(conn: &DatabaseConnection, code: &str) -> entity::reports::Model {
    entity::reports::Entity::find()
        .filter(entity::reports::Column::ShortCode.eq(code))
        .one(conn)
        .await
        .unwrap()
        .expect("report row")
}

on_both!(crud_and_ownership, crud_and_ownership_body);
async fn crud_and_ownership_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_analysis(d, Tier::Pro).await;
    let (mallory, mallory_analysis) = owner_with_analysis(d, Tier::Pro).await;

    let report = d
        .reports
        .create(user, analysis, NewReport::default())
        .await
        .unwrap();
    assert!(report.is_public, "public by default");
    assert!(!report.has_password);
    assert_eq!(report.expires_at, None);
    assert_eq!(report.view_count, 0);
    assert_eq!(report.analysis_id, analysis);
    assert!(is_short_code(&report.short_code), "{}", report.short_code);
    assert_eq!(d.reports.get(user, report.id).await.unwrap(), report);

    // Refused creations: nothing is written.
    let now = h.clock.now();
    for (new, what) in [
        (
            NewReport {
                expires_at: Some(now - Duration::seconds(1)),
                ..Default::default()
            },
            "past",
        ),
        (
            NewReport {
                expires_at: Some(now),
                ..Default::default()
            },
            "now",
        ),
        (with_password("short"), "short password"),
    ] {
        assert!(
            matches!(
                d.reports.create(user, analysis, new).await,
                Err(Error::Validation(_))
            ),
            "{what}"
        );
    }
    for target in [mallory_analysis, Id(uuid::Uuid::new_v4())] {
        assert!(matches!(
            d.reports.create(user, target, NewReport::default()).await,
            Err(Error::NotFound)
        ));
    }
    assert_eq!(count(d.database().connection(), "reports").await, 1);

    // Another user's report is missing for every owner operation.
    assert!(matches!(
        d.reports.get(mallory, report.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.reports
            .update(
                mallory,
                report.id,
                ReportChange {
                    is_public: Some(false),
                    ..Default::default()
                }
            )
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.reports.delete(mallory, report.id).await,
        Err(Error::NotFound)
    ));
    assert!(
        d.reports
            .list(mallory, &first_page())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(d.reports.get(user, report.id).await.unwrap(), report);

    // Update: each field, and updated_at moves.
    h.clock.advance(Duration::minutes(1));
    let expiry = h.clock.now() + Duration::days(30);
    let changed = d
        .reports
        .update(
            user,
            report.id,
            ReportChange {
                is_public: Some(false),
                password: Some(Some("a-new-password".into())),
                expires_at: Some(Some(expiry)),
            },
        )
        .await
        .unwrap();
    assert!(!changed.is_public);
    assert!(changed.has_password);
    assert!(
        stored(d.database().connection(), &changed.short_code)
            .await
            .password_hash
            .unwrap()
            .starts_with("$argon2id$")
    );
    assert_eq!(changed.expires_at, Some(expiry));
    assert_eq!(changed.updated_at, report.updated_at + Duration::minutes(1));
    assert_eq!(changed.short_code, report.short_code);
    assert_eq!(d.reports.get(user, report.id).await.unwrap(), changed);

    let cleared = d
        .reports
        .update(
            user,
            report.id,
            ReportChange {
                password: Some(None),
                expires_at: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!cleared.has_password);
    assert_eq!(cleared.expires_at, None);
    assert!(!cleared.is_public, "absent field unchanged");
    for change in [
        ReportChange {
            expires_at: Some(Some(h.clock.now() - Duration::hours(1))),
            ..Default::default()
        },
        ReportChange {
            password: Some(Some("1234567".into())),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            d.reports.update(user, report.id, change).await,
            Err(Error::Validation(_))
        ));
    }
    assert_eq!(d.reports.get(user, report.id).await.unwrap(), cleared);

    // List: the caller's reports over all their analyses, newest first, paged.
    let second = d.analyses.create(user, named("second")).await.unwrap();
    let mut mine = vec![cleared.clone()];
    for target in [analysis, second.id, second.id] {
        h.clock.advance(Duration::seconds(1));
        mine.push(
            d.reports
                .create(user, target, NewReport::default())
                .await
                .unwrap(),
        );
    }
    d.reports
        .create(mallory, mallory_analysis, NewReport::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(Some(3), cursor.as_deref()).unwrap();
        let got = d.reports.list(user, &page).await.unwrap();
        seen.extend(got.items.into_iter().map(|r| r.id));
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let want: Vec<Id> = mine.iter().rev().map(|r| r.id).collect();
    assert_eq!(seen, want);

    d.reports.delete(user, report.id).await.unwrap();
    assert!(matches!(
        d.reports.get(user, report.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.reports.delete(user, report.id).await,
        Err(Error::NotFound)
    ));
    assert_eq!(count(d.database().connection(), "reports").await, 4);
}

on_both!(free_tier_limit, free_tier_limit_body);
async fn free_tier_limit_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_analysis(d, Tier::Free).await;
    let second = d.analyses.create(user, named("second")).await.unwrap();

    // Refused for a bad input: does not count.
    let past = NewReport {
        expires_at: Some(h.clock.now() - Duration::days(1)),
        ..Default::default()
    };
    assert!(matches!(
        d.reports.create(user, analysis, past).await,
        Err(Error::Validation(_))
    ));

    for _ in 0..3 {
        d.reports
            .create(user, analysis, NewReport::default())
            .await
            .unwrap();
    }
    for target in [analysis, second.id] {
        match d.reports.create(user, target, NewReport::default()).await {
            Err(Error::LimitExceeded {
                limit,
                allowed,
                used,
                ..
            }) => {
                assert_eq!(limit, LimitKind::Reports);
                assert_eq!((allowed, used), (3, 3));
            }
            other => panic!("expected LimitExceeded, got {other:?}"),
        }
    }
    assert_eq!(count(d.database().connection(), "reports").await, 3);

    // Deleting does not give the allowance back; a new month does.
    let page = d.reports.list(user, &first_page()).await.unwrap();
    d.reports.delete(user, page.items[0].id).await.unwrap();
    assert!(matches!(
        d.reports.create(user, analysis, NewReport::default()).await,
        Err(Error::LimitExceeded { .. })
    ));
    h.clock.advance(Duration::days(17));
    d.reports
        .create(user, analysis, NewReport::default())
        .await
        .unwrap();
    assert_eq!(count(d.database().connection(), "reports").await, 3);
}

on_both!(
    concurrent_creates_respect_the_limit,
    concurrent_creates_body
);
async fn concurrent_creates_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_analysis(d, Tier::Free).await;

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let d = d.clone();
            tokio::spawn(
                async move { d.reports.create(user, analysis, NewReport::default()).await },
            )
        })
        .collect();
    let mut created = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(report) => created.push(report),
            Err(Error::LimitExceeded { .. }) => refused += 1,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created.len(), 3);
    assert_eq!(refused, 47);
    assert_eq!(count(d.database().connection(), "reports").await, 3);
    let codes: HashSet<_> = created.iter().map(|r| r.short_code.clone()).collect();
    assert_eq!(codes.len(), 3);
}

on_both!(short_codes_are_random_base62, short_codes_body);
async fn short_codes_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_analysis(d, Tier::Pro).await;
    let mut codes = HashSet::new();
    for _ in 0..40 {
        let report = d
            .reports
            .create(user, analysis, NewReport::default())
            .await
            .unwrap();
        assert!(is_short_code(&report.short_code), "{}", report.short_code);
        assert_eq!(
            stored(d.database().connection(), &report.short_code)
                .await
                .id,
            report.id
        );
        assert!(codes.insert(report.short_code));
    }
}

on_both!(view_rules_in_order, view_rules_body);
async fn view_rules_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_analysis(d, Tier::Pro).await;
    let soon = h.clock.now() + Duration::hours(1);
    let edge = h.clock.now() + Duration::hours(2);
    let create = |new: NewReport| {
        let d = d.clone();
        async move { d.reports.create(user, analysis, new).await.unwrap() }
    };
    let open = create(NewReport::default()).await;
    let private = create(NewReport {
        is_public: Some(false),
        ..Default::default()
    })
    .await;
    let private_expired = create(NewReport {
        is_public: Some(false),
        expires_at: Some(soon),
        ..Default::default()
    })
    .await;
    let expired_locked = create(NewReport {
        expires_at: Some(soon),
        ..with_password("locked-pass-1")
    })
    .await;
    let at_edge = create(NewReport {
        expires_at: Some(edge),
        ..Default::default()
    })
    .await;
    let locked = create(with_password("locked-pass-1")).await;
    let other_locked = create(with_password("other-pass-2")).await;

    // Before expiry the edge report is viewable.
    assert_eq!(
        d.reports
            .view(&at_edge.short_code, None)
            .await
            .unwrap()
            .view_count,
        1
    );
    h.clock.advance(Duration::hours(2));

    for code in ["ZZZZZZZZZZ", "", "not-base62!", &"a".repeat(21), "ü"] {
        assert!(
            matches!(d.reports.view(code, None).await, Err(Error::NotFound)),
            "{code:?}"
        );
    }
    assert!(matches!(
        d.reports.view(&private.short_code, None).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.reports.view(&private_expired.short_code, None).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.reports.view(&expired_locked.short_code, None).await,
        Err(Error::Gone(_))
    ));
    assert!(matches!(
        d.reports.view(&at_edge.short_code, None).await,
        Err(Error::Gone(_))
    ));
    assert!(matches!(
        d.reports.view(&locked.short_code, None).await,
        Err(Error::PasswordRequired)
    ));
    assert!(matches!(
        d.reports.view(&locked.short_code, Some("garbage")).await,
        Err(Error::PasswordRequired)
    ));

    // The unlock endpoint applies the same first rules.
    assert!(matches!(
        d.reports
            .unlock(&private_expired.short_code, "locked-pass-1", "c")
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.reports
            .unlock(&expired_locked.short_code, "locked-pass-1", "c")
            .await,
        Err(Error::Gone(_))
    ));
    assert!(matches!(
        d.reports.unlock(&open.short_code, "anything-1", "c").await,
        Err(Error::NothingToUnlock)
    ));

    let token = d
        .reports
        .unlock(&locked.short_code, "locked-pass-1", "c")
        .await
        .unwrap();
    assert_eq!(token.expires_at, h.clock.now() + d.settings().unlock_ttl);
    let other_token = d
        .reports
        .unlock(&other_locked.short_code, "other-pass-2", "c")
        .await
        .unwrap();
    assert!(matches!(
        d.reports
            .view(&locked.short_code, Some(&other_token.secret))
            .await,
        Err(Error::PasswordRequired)
    ));
    let view = d
        .reports
        .view(&locked.short_code, Some(&token.secret))
        .await
        .unwrap();
    assert_eq!(view.short_code, locked.short_code);
    assert_eq!(view.view_count, 1);
    assert_eq!(
        view.analysis.name,
        d.analyses.get(user, analysis).await.unwrap().name
    );
    assert_eq!(
        view.dataset.as_ref().map(|ds| ds.name.as_str()),
        Some("data.csv")
    );
    assert_eq!(
        d.reports
            .view(&locked.short_code, Some(&token.secret))
            .await
            .unwrap()
            .view_count,
        2
    );

    // Refused views are not counted.
    assert_eq!(d.reports.get(user, private.id).await.unwrap().view_count, 0);
    assert_eq!(d.reports.get(user, at_edge.id).await.unwrap().view_count, 1);

    // A view without a dataset carries none.
    let bare = d.analyses.create(user, named("no data")).await.unwrap();
    let bare_report = d
        .reports
        .create(user, bare.id, NewReport::default())
        .await
        .unwrap();
    let view = d.reports.view(&bare_report.short_code, None).await.unwrap();
    assert!(view.dataset.is_none());
    assert_eq!(view.analysis.name, "no data");

    // Changing the password shuts out whoever unlocked with the old one.
    d.reports
        .update(
            user,
            locked.id,
            ReportChange {
                password: Some(Some("rotated-pass-3".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        d.reports
            .view(&locked.short_code, Some(&token.secret))
            .await,
        Err(Error::PasswordRequired)
    ));
    // The token stops working past its lifetime too.
    h.clock
        .advance(d.settings().unlock_ttl + Duration::seconds(1));
    assert!(matches!(
        d.reports
            .view(&other_locked.short_code, Some(&other_token.secret))
            .await,
        Err(Error::PasswordRequired)
    ));
}

/// Fires `n` views of `code` on `domain`, each in its own task.
fn spawn_views(domain: &Domain, code: &str, n: usize) -> Vec<tokio::task::JoinHandle<i32>> {
    (0..n)
        .map(|_| {
            let d = domain.clone();
            let code = code.to_owned();
            tokio::spawn(async move { d.reports.view(&code, None).await.unwrap().view_count })
        })
        .collect()
}

async fn assert_each_view_counted(tasks: Vec<tokio::task::JoinHandle<i32>>, start: i32) {
    let total = tasks.len();
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.unwrap());
    }
    counts.sort_unstable();
    let want: Vec<i32> = (start + 1..=start + total as i32).collect();
    assert_eq!(counts, want, "every view got its own count");
}

on_both!(concurrent_views_count_exactly, concurrent_views_body);
async fn concurrent_views_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_analysis(d, Tier::Pro).await;
    let report = d
        .reports
        .create(user, analysis, NewReport::default())
        .await
        .unwrap();
    d.reports.view(&report.short_code, None).await.unwrap();

    assert_each_view_counted(spawn_views(d, &report.short_code, 200), 1).await;
    assert_eq!(
        d.reports.get(user, report.id).await.unwrap().view_count,
        201
    );
}

on_both!(
    concurrent_views_across_processes,
    views_across_processes_body
);
async fn views_across_processes_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let other_process = h.second_process().await;
    let (user, analysis) = owner_with_analysis(d, Tier::Pro).await;
    let report = d
        .reports
        .create(user, analysis, NewReport::default())
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for _ in 0..10 {
        tasks.extend(spawn_views(d, &report.short_code, 10));
        tasks.extend(spawn_views(&other_process, &report.short_code, 10));
    }
    assert_each_view_counted(tasks, 0).await;
    assert_eq!(
        d.reports.get(user, report.id).await.unwrap().view_count,
        200
    );
}

on_both!(
    views_of_many_reports_at_once_keep_their_counts_and_rules,
    many_reports_at_once_body
);
/// Views of several reports arriving together are counted together (one statement per
/// batch): each open report's views still get their own counts, in two processes at
/// once whose batches take the same rows (on PostgreSQL, in any order they arrived: a
/// lock order that depended on it would deadlock here); closed reports in the same
/// batches keep their own answers and are not counted.
async fn many_reports_at_once_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let other_process = h.second_process().await;
    let (user, analysis) = owner_with_analysis(d, Tier::Pro).await;
    let new = |change: NewReport| d.reports.create(user, analysis, change);
    let mut open = Vec::new();
    for _ in 0..6 {
        open.push(new(NewReport::default()).await.unwrap());
    }
    let private = new(NewReport {
        is_public: Some(false),
        ..Default::default()
    })
    .await
    .unwrap();
    let locked = new(with_password("correct horse")).await.unwrap();
    let expiring = new(NewReport {
        expires_at: Some(h.clock.now() + Duration::hours(1)),
        ..Default::default()
    })
    .await
    .unwrap();
    h.clock.advance(Duration::hours(2));

    let mut counts: Vec<Vec<tokio::task::JoinHandle<i32>>> =
        open.iter().map(|_| Vec::new()).collect();
    let mut refused = Vec::new();
    for round in 0..10 {
        // Each round walks the reports in another order, in both processes.
        for i in 0..open.len() {
            let which = (i * 5 + round) % open.len();
            let process = if (i + round) % 2 == 0 {
                d
            } else {
                &other_process
            };
            counts[which].extend(spawn_views(process, &open[which].short_code, 2));
        }
        for closed in [&private, &locked, &expiring] {
            let process = if round % 2 == 0 { d } else { &other_process };
            let (p, code) = (process.clone(), closed.short_code.clone());
            refused.push(tokio::spawn(
                async move { p.reports.view(&code, None).await },
            ));
        }
    }
    for tasks in counts {
        assert_each_view_counted(tasks, 0).await;
    }
    // In each round: private, locked, expired.
    for (i, task) in refused.into_iter().enumerate() {
        let refusal = task.await.unwrap().map(|view| view.short_code);
        let right = match i % 3 {
            0 => matches!(refusal, Err(Error::NotFound)),
            1 => matches!(refusal, Err(Error::PasswordRequired)),
            _ => matches!(refusal, Err(Error::Gone(_))),
        };
        assert!(right, "view {i}: {refusal:?}");
    }
    for report in &open {
        assert_eq!(d.reports.get(user, report.id).await.unwrap().view_count, 20);
    }
    for closed in [&private, &locked, &expiring] {
        assert_eq!(d.reports.get(user, closed.id).await.unwrap().view_count, 0);
    }
}

/// A batch whose rows another transaction locks in the opposite order deadlocks; the
/// batch PostgreSQL rolls back to break it is counted again, so every view still gets
/// its own count (SQLite has one writer at a time and cannot deadlock).
///
/// One runtime thread: the views queue before the counting task first runs, so they are
/// one batch (10 views, fewer than the largest batch), which locks `first` and then
/// waits for `second`.
#[tokio::test]
async fn a_batch_rolled_back_by_a_deadlock_is_counted_again() {
    let db = TestDb::postgres().await;
    // PostgreSQL looks for a deadlock once, when a wait has lasted `deadlock_timeout`
    // (1 s by default): the writer below must close the cycle before the batch looks,
    // and on a busy CI machine 1 s is short. Set before the server's connections open.
    let admin = sea_orm::Database::connect(&db.url).await.unwrap();
    admin
        .execute_unprepared(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET deadlock_timeout = ''5s''', \
             current_database()); END $$",
        )
        .await
        .unwrap();
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_analysis(d, Tier::Pro).await;
    // The batch must lock `first` before `second`. It locks in the order of the codes
    // when PostgreSQL looks each code up, and in the rows' order on disk (the order they
    // were created) when it reads a table this small whole: pick two on which both agree.
    let mut created: Vec<String> = Vec::new();
    let (first, second) = loop {
        let report = d.reports.create(user, analysis, NewReport::default()).await;
        let code = report.unwrap().short_code;
        if let Some(earlier) = created.iter().find(|earlier| **earlier < code) {
            break (earlier.clone(), code);
        }
        created.push(code);
    };

    // Another writer holds `second`. It looks for deadlocks only after 60 s, so the
    // batch is the one PostgreSQL rolls back.
    let writer = admin.begin().await.unwrap();
    let touch = |code: &str| {
        format!("UPDATE reports SET view_count = view_count WHERE short_code = '{code}'")
    };
    writer
        .execute_unprepared("SET LOCAL deadlock_timeout = '60s'")
        .await
        .unwrap();
    writer.execute_unprepared(&touch(&second)).await.unwrap();

    let views: Vec<_> = (0..5)
        .flat_map(|_| [first.clone(), second.clone()])
        .map(|code| {
            let d = d.clone();
            tokio::spawn(
                async move { (d.reports.view(&code, None).await.unwrap().view_count, code) },
            )
        })
        .collect();
    let watch = sea_orm::Database::connect(&h.db.url).await.unwrap();
    let waiting = "SELECT count(*) AS n FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock' \
                     AND query LIKE 'UPDATE reports r SET view_count = r.view_count + seen.n%'";
    poll(&watch, waiting, |n| n == 1).await;

    // Now the writer wants `first` too: a deadlock, which PostgreSQL breaks by rolling
    // back the batch; the batch runs again and waits for the writer to commit.
    writer.execute_unprepared(&touch(&first)).await.unwrap();
    writer.commit().await.unwrap();

    let (mut firsts, mut seconds) = (Vec::new(), Vec::new());
    for view in views {
        let (count, code) = view.await.unwrap();
        if code == first {
            firsts.push(count)
        } else {
            seconds.push(count)
        }
    }
    firsts.sort_unstable();
    seconds.sort_unstable();
    let want: Vec<i32> = (1..=5).collect();
    assert_eq!((firsts, seconds), (want.clone(), want));
    let deadlocks =
        "SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()";
    poll(&watch, deadlocks, |n| n == 1).await;
}

/// Runs `sql` (one row, an integer column `n`) until `done(n)`, for at most 20 s.
async fn poll(db: &DatabaseConnection, sql: &str, done: impl Fn(i64) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        if done(n) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {n} after 20 s: {sql}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

on_both!(
    page_content_is_fresh_here_and_within_the_ttl_elsewhere,
    content_freshness_body
);
/// The page content (not the count) may be reused by a process for the TTL: this
/// process's own edits show at once, another's within the TTL, and with a TTL of zero
/// every view reads it.
async fn content_freshness_body(db: TestDb) {
    let ttl = std::time::Duration::from_millis(400);
    let settings = domain::Settings {
        report_cache_ttl: ttl,
        ..domain::Settings::default()
    };
    let h = crate::support::harness_with(db, settings).await;
    let d = &h.domain;
    let other = h.second_process().await;
    let (user, analysis) = owner_with_analysis(d, Tier::Pro).await;
    let code = d
        .reports
        .create(user, analysis, NewReport::default())
        .await
        .unwrap()
        .short_code;
    let name = |view: domain::PublicView| view.analysis.name;
    let rename = |to: &str| domain::AnalysisChange {
        name: Some(to.to_owned()),
        ..Default::default()
    };
    // Both processes have the page content now.
    assert_eq!(
        name(d.reports.view(&code, None).await.unwrap()),
        "shared analysis"
    );
    assert_eq!(
        name(other.reports.view(&code, None).await.unwrap()),
        "shared analysis"
    );

    d.analyses
        .update(user, analysis, rename("renamed"))
        .await
        .unwrap();
    assert_eq!(
        name(d.reports.view(&code, None).await.unwrap()),
        "renamed",
        "own edit at once"
    );
    let started = std::time::Instant::now();
    loop {
        let seen = name(other.reports.view(&code, None).await.unwrap());
        if seen == "renamed" {
            break;
        }
        assert_eq!(seen, "shared analysis");
        assert!(
            started.elapsed() < ttl,
            "another process's edit shows within the TTL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // A chart added by the other process: there at once; here within the TTL.
    let chart = domain::NewChart {
        name: "By month".to_owned(),
        chart_type: domain::ChartType::Line,
        config: domain::ChartConfig {
            x: Some("month".to_owned()),
            y: vec!["revenue".to_owned()],
            ..Default::default()
        },
    };
    other.charts.create(user, analysis, chart).await.unwrap();
    assert_eq!(
        other.reports.view(&code, None).await.unwrap().charts.len(),
        1
    );
    tokio::time::sleep(ttl).await;
    assert_eq!(d.reports.view(&code, None).await.unwrap().charts.len(), 1);

    // Counted exactly throughout, whatever was reused.
    let views = d
        .reports
        .get(user, entity_id(d, &code).await)
        .await
        .unwrap()
        .view_count;
    let next = other.reports.view(&code, None).await.unwrap().view_count;
    assert_eq!(next, views + 1);

    // Without the cache, another process's edit shows on the next view.
    let uncached = h
        .second_process_with(domain::Settings {
            report_cache_ttl: std::time::Duration::ZERO,
            ..domain::Settings::default()
        })
        .await;
    let _ = uncached.reports.view(&code, None).await.unwrap();
    d.analyses
        .update(user, analysis, rename("again"))
        .await
        .unwrap();
    assert_eq!(
        name(uncached.reports.view(&code, None).await.unwrap()),
        "again"
    );
}

async fn entity_id(d: &Domain, code: &str) -> Id {
    stored(d.database().connection(), code).await.id
}

on_both!(
    unlock_is_throttled_per_report_and_client,
    unlock_throttle_body
);
async fn unlock_throttle_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_analysis(d, Tier::Pro).await;
    let target = d
        .reports
        .create(user, analysis, with_password("right-password-1"))
        .await
        .unwrap();
    let bystander = d
        .reports
        .create(user, analysis, with_password("right-password-2"))
        .await
        .unwrap();
    let code = target.short_code.as_str();

    for _ in 0..10 {
        assert!(matches!(
            d.reports
                .unlock(code, "wrong-password", "198.51.100.7")
                .await,
            Err(Error::Unauthorized(_))
        ));
    }
    match d
        .reports
        .unlock(code, "right-password-1", "198.51.100.7")
        .await
    {
        Err(Error::RateLimited { retry_after_secs }) => {
            assert!((1..=900).contains(&retry_after_secs), "{retry_after_secs}")
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // Another client of the same report, and the same client on another report, are free.
    let token = d
        .reports
        .unlock(code, "right-password-1", "203.0.113.9")
        .await
        .unwrap();
    assert!(d.reports.view(code, Some(&token.secret)).await.is_ok());
    assert!(matches!(
        d.reports
            .unlock(&bystander.short_code, "wrong-password", "198.51.100.7")
            .await,
        Err(Error::Unauthorized(_))
    ));
    assert!(
        d.reports
            .unlock(&bystander.short_code, "right-password-2", "198.51.100.7")
            .await
            .is_ok()
    );

    // The window passes.
    h.clock.advance(Duration::minutes(16));
    assert!(
        d.reports
            .unlock(code, "right-password-1", "198.51.100.7")
            .await
            .is_ok()
    );
}

on_both!(legacy_reports, legacy_reports_body);
async fn legacy_reports_body(db: TestDb) {
    // `harness` connects and runs `domain::schema::upgrade` over the Python-era database.
    let h = harness(TestDb::legacy(db.backend).await).await;
    drop(db);
    let d = &h.domain;

    let before = stored(d.database().connection(), "p7RtZ3wB").await;
    assert!(before.password_hash.as_deref().unwrap().starts_with("$2b$"));
    assert!(matches!(
        d.reports.view("p7RtZ3wB", None).await,
        Err(Error::PasswordRequired)
    ));
    assert!(matches!(
        d.reports
            .unlock("p7RtZ3wB", "report-secret-41", "client")
            .await,
        Err(Error::Unauthorized(_))
    ));
    let token = d
        .reports
        .unlock("p7RtZ3wB", "report-secret-42", "client")
        .await
        .unwrap();
    let after = stored(d.database().connection(), "p7RtZ3wB").await;
    assert!(
        after
            .password_hash
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$"),
        "rehashed"
    );
    let view = d
        .reports
        .view("p7RtZ3wB", Some(&token.secret))
        .await
        .unwrap();
    assert_eq!(view.view_count, 6);
    let analysis = entity::analyses::Entity::find_by_id(before.analysis_id)
        .one(d.database().connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.analysis.name, analysis.name);
    // The new hash keeps opening the report.
    assert!(
        d.reports
            .unlock("p7RtZ3wB", "report-secret-42", "client")
            .await
            .is_ok()
    );

    assert!(matches!(
        d.reports.view("e4VnQ8sD0", None).await,
        Err(Error::Gone(_))
    ));
    assert!(matches!(
        d.reports
            .unlock("e4VnQ8sD0", "report-secret-42", "client")
            .await,
        Err(Error::Gone(_))
    ));
    assert_eq!(
        stored(d.database().connection(), "e4VnQ8sD0")
            .await
            .view_count,
        17
    );

    let view = d.reports.view("Xk9Lm2Qa", None).await.unwrap();
    assert_eq!(view.view_count, 43);
    assert!(
        view.dataset.is_some(),
        "the completed analysis is on a dataset"
    );
    assert_eq!(view.analysis.status, domain::Status::Completed);
}
