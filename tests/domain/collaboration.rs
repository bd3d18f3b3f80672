//! Domain tests: the activity log's atomicity and append-only rule, and invitation mail
//! through a real SMTP server.
use std::sync::Arc;
use std::time::Duration;

use domain::{
    AnalysisChange, ChartConfig, ChartType, Error, LimitKind, NewChart, Outbox, Role,
    SmtpTransport, Tier,
};
use iops_tests::{Backend, TestDb, count, on_both};
use sea_orm::{ConnectionTrait, DatabaseConnection};

#[path = "../support/smtp.rs"]
mod smtp;

use crate::analyses::{insert_user, named};
use crate::support::{harness, harness_with};

async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Makes every insert into `activity_log` fail, as a full disk or a broken log would.
async fn break_the_log(db: &DatabaseConnection, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            exec(
                db,
                "CREATE TRIGGER break_log BEFORE INSERT ON activity_log \
                 BEGIN SELECT RAISE(ABORT, 'the log is broken'); END",
            )
            .await
        }
        Backend::Postgres => {
            exec(
                db,
                "CREATE FUNCTION break_log() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN RAISE EXCEPTION 'the log is broken'; END $$",
            )
            .await;
            exec(
                db,
                "CREATE TRIGGER break_log BEFORE INSERT ON activity_log \
                 FOR EACH ROW EXECUTE FUNCTION break_log()",
            )
            .await
        }
    }
}

fn table_chart() -> NewChart {
    NewChart {
        name: "All rows".to_owned(),
        chart_type: ChartType::Table,
        config: ChartConfig::default(),
    }
}

on_both!(a_change_and_its_log_row_commit_together, atomicity_body);
async fn atomicity_body(db: TestDb) {
    let backend = db.backend;
    let h = harness(db).await;
    let d = &h.domain;
    let conn = d.database().connection().clone();
    let owner = insert_user(&conn, Tier::Free).await;
    let analysis = d.analyses.create(owner, named("Before")).await.unwrap();
    let chart = d
        .charts
        .create(owner, analysis.id, table_chart())
        .await
        .unwrap();
    let logged = count(&conn, "activity_log").await;
    assert_eq!(logged, 2, "analysis.created and chart.created");

    // A refused invitation leaves nothing behind: no invitation, no log row.
    for i in 0..3 {
        d.collaborations
            .invite(
                owner,
                analysis.id,
                &format!("p{i}@example.com"),
                Role::Viewer,
            )
            .await
            .unwrap();
    }
    let refused = d
        .collaborations
        .invite(owner, analysis.id, "p3@example.com", Role::Viewer)
        .await;
    assert!(matches!(
        refused,
        Err(Error::LimitExceeded {
            limit: LimitKind::Collaborators,
            allowed: 3,
            used: 3,
            resets_at: None
        })
    ));
    assert_eq!(count(&conn, "collaborations").await, 3);
    assert_eq!(count(&conn, "activity_log").await, logged + 3);

    // A log row that cannot be written takes its change with it.
    break_the_log(&conn, backend).await;
    let logged = count(&conn, "activity_log").await;
    let renamed = d
        .analyses
        .update(
            owner,
            analysis.id,
            AnalysisChange {
                name: Some("After".to_owned()),
                ..Default::default()
            },
        )
        .await;
    assert!(renamed.is_err());
    assert_eq!(
        d.analyses.get(owner, analysis.id).await.unwrap().name,
        "Before"
    );
    assert!(
        d.charts
            .create(owner, analysis.id, table_chart())
            .await
            .is_err()
    );
    assert!(d.charts.delete(owner, chart.id).await.is_err());
    assert!(
        d.charts.get(owner, chart.id).await.is_ok(),
        "the chart stays"
    );
    assert_eq!(count(&conn, "charts").await, 1);
    assert!(
        d.comments
            .create(owner, chart.id, "hello", None)
            .await
            .is_err()
    );
    assert_eq!(count(&conn, "comments").await, 0);
    assert!(
        d.collaborations
            .invite(owner, analysis.id, "late@example.com", Role::Editor)
            .await
            .is_err()
    );
    assert_eq!(count(&conn, "collaborations").await, 3);
    assert!(d.analyses.delete(owner, analysis.id).await.is_err());
    assert!(
        d.analyses.get(owner, analysis.id).await.is_ok(),
        "the analysis stays"
    );
    assert_eq!(count(&conn, "activity_log").await, logged);
}

on_both!(the_log_is_append_only, append_only_body);
async fn append_only_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection().clone();
    let owner = insert_user(&conn, Tier::Pro).await;
    h.domain.analyses.create(owner, named("x")).await.unwrap();
    let refused = conn
        .execute_unprepared("UPDATE activity_log SET verb = 'analysis.deleted'")
        .await;
    assert!(refused.is_err(), "an update of the log must fail");
    let verbs = conn
        .query_all_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT verb FROM activity_log",
        ))
        .await
        .unwrap();
    let verb: String = verbs[0].try_get_by_index(0).unwrap();
    assert_eq!(verb, "analysis.created");
    let other = insert_user(&conn, Tier::Pro).await;
    let hijack = conn
        .execute_unprepared(&format!("UPDATE activity_log SET actor_id = '{other}'"))
        .await;
    assert!(
        hijack.is_err(),
        "an actor can only be cleared, never replaced"
    );

    // Deleting an account clears it as the actor of rows in others' feeds (the foreign
    // key's SET NULL is the one change the log allows) and takes its own feed with it.
    let analysis = h
        .domain
        .analyses
        .create(owner, named("shared"))
        .await
        .unwrap();
    let chart = h
        .domain
        .charts
        .create(owner, analysis.id, table_chart())
        .await
        .unwrap();
    let invitation = h
        .domain
        .collaborations
        .invite(owner, analysis.id, "guest@example.com", Role::Viewer)
        .await
        .unwrap();
    let guest = insert_user(&conn, Tier::Free).await;
    conn.execute_unprepared(&format!(
        "UPDATE users SET email = 'guest@example.com' WHERE id = '{guest}'"
    ))
    .await
    .unwrap();
    h.domain
        .collaborations
        .accept(guest, &invitation.token)
        .await
        .unwrap();
    h.domain
        .comments
        .create(guest, chart.id, "from the guest", None)
        .await
        .unwrap();
    conn.execute_unprepared(&format!("DELETE FROM users WHERE id = '{guest}'"))
        .await
        .expect("deleting an actor's account");
    let feed = h
        .domain
        .activity
        .feed(
            owner,
            &Default::default(),
            &domain::PageRequest::new(None, None).unwrap(),
        )
        .await
        .unwrap();
    let comment = feed
        .items
        .iter()
        .find(|i| i.verb == "comment.created")
        .expect("the guest's comment stays in the owner's feed");
    assert_eq!(comment.actor_id, None);
}

/// An outbox mailing through `server_url`, with links on `http://iops.test`.
fn outbox(server_url: &str) -> Outbox {
    let transport = SmtpTransport::new(server_url, "iOps <noreply@iops.test>").unwrap();
    Outbox::start(Arc::new(transport), "http://iops.test/").0
}

async fn mailing_harness(db: TestDb, outbox: Outbox) -> crate::support::Harness {
    let mut h = harness_with(db, domain::Settings::default()).await;
    h.domain = iops_tests::domain_mailing(
        h.db.connect().await,
        h.clock.clone(),
        Arc::new(h.store.clone()),
        domain::Settings::default(),
        Some(outbox),
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invitations_are_mailed_after_commit() {
    let server = smtp::SmtpServer::start();
    let h = mailing_harness(TestDb::sqlite().await, outbox(&server.url())).await;
    let d = &h.domain;
    let conn = d.database().connection().clone();
    let owner = insert_user(&conn, Tier::Pro).await;
    let analysis = d
        .analyses
        .create(owner, named("Revenue <2026>"))
        .await
        .unwrap();
    let invitation = d
        .collaborations
        .invite(owner, analysis.id, "Bob@Example.com", Role::Editor)
        .await
        .unwrap();
    let mail = server.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(mail.len(), 1, "one invitation, one mail");
    let mail = &mail[0];
    assert!(mail.contains("X-RcptTo: bob@example.com"), "{mail}");
    assert!(mail.contains("From: iOps <noreply@iops.test>"), "{mail}");
    assert!(mail.contains("Revenue <2026>"), "{mail}");
    assert!(mail.contains("as editor"), "{mail}");
    let link = format!("http://iops.test/invitations/{}", invitation.token);
    assert!(mail.contains(&link), "the link is in the mail: {mail}");

    // A refused invitation mails nobody.
    let again = d
        .collaborations
        .invite(owner, analysis.id, "bob@example.com", Role::Viewer)
        .await;
    assert!(matches!(again, Err(Error::Conflict(_))));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mail_is_retried_until_the_server_answers() {
    let port = smtp::free_port();
    let h = mailing_harness(
        TestDb::sqlite().await,
        outbox(&format!("smtp://127.0.0.1:{port}")),
    )
    .await;
    let d = &h.domain;
    let conn = d.database().connection().clone();
    let owner = insert_user(&conn, Tier::Pro).await;
    let analysis = d.analyses.create(owner, named("Later")).await.unwrap();
    // No server yet: the request does not wait for mail, and succeeds.
    let started = std::time::Instant::now();
    d.collaborations
        .invite(owner, analysis.id, "carol@example.com", Role::Viewer)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = smtp::SmtpServer::start_on(port);
    let mail = server.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(mail.len(), 1, "delivered by a retry");
    assert!(mail[0].contains("X-RcptTo: carol@example.com"));
}
