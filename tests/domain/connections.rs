//! Data connections against real source databases (this machine's PostgreSQL and
//! MariaDB, each test with a database and login of its own): the network guard, sealed
//! passwords, imports of every common column type, refusals, the limit, key rotation.
use std::sync::Arc;
use std::time::Duration;

use domain::connections::{AllowList, ConnectionChange, ConnectionKind, NewConnection};
use domain::query::FailureReason;
use domain::{Domain, Error, Id, LimitKind, Settings, Tier};
use iops_tests::sources::{Source, expected_items};
use iops_tests::{TestDb, count, on_both};
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use secrecy::SecretString;

use crate::support::{Harness, harness_with};
use crate::usage::new_user;

fn settings() -> Settings {
    Settings {
        connections_allow: AllowList::parse("127.0.0.1").unwrap(),
        import_timeout: Duration::from_secs(2),
        ..Settings::default()
    }
}

fn new_connection(source: &Source) -> NewConnection {
    NewConnection {
        name: format!("{} source", source.kind),
        kind: ConnectionKind::parse(source.kind).unwrap(),
        host: "127.0.0.1".to_owned(),
        port: source.port,
        database: source.database.clone(),
        username: source.user.clone(),
        password: Some(SecretString::from(source.password.clone())),
        sslmode: Some("disable".to_owned()),
    }
}

async fn user(h: &Harness, tier: Tier) -> Id {
    new_user(h.domain.database().connection(), tier).await
}

on_both!(the_guard_refuses_before_connecting, guard_body);
async fn guard_body(db: TestDb) {
    let h = harness_with(db, Settings::default()).await;
    let owner = user(&h, Tier::Pro).await;
    let source = Source {
        kind: "postgresql",
        port: 5432,
        database: "x".to_owned(),
        user: "x".to_owned(),
        password: "x".to_owned(),
    };
    for host in [
        "127.0.0.1",
        "localhost",
        "0.0.0.0",
        "::1",
        "169.254.169.254",
        "10.0.0.1",
    ] {
        let mut new = new_connection(&source);
        new.host = host.to_owned();
        match h.domain.connections.create(owner, new).await {
            Err(Error::HostNotAllowed(why)) => {
                assert!(!why.contains("10.0.0.1") || host == "10.0.0.1")
            }
            other => panic!("{host}: {other:?}"),
        }
    }
    let mut bad = new_connection(&source);
    bad.host = "not a host".to_owned();
    assert!(matches!(
        h.domain.connections.create(owner, bad).await,
        Err(Error::Validation(_))
    ));
    assert_eq!(
        count(h.domain.database().connection(), "data_connections").await,
        0
    );

    // Allowed by one process, refused again at connect time by one that does not allow it.
    let allowing = crate::support::harness_with(TestDb::sqlite().await, settings()).await;
    let owner = user(&allowing, Tier::Pro).await;
    let created = allowing
        .domain
        .connections
        .create(owner, new_connection(&source))
        .await
        .unwrap();
    let strict = iops_tests::domain(
        allowing.db.connect().await,
        allowing.clock.clone(),
        Arc::new(allowing.store.clone()),
        Settings::default(),
    );
    assert!(matches!(
        strict.connections.test(owner, created.id).await,
        Err(Error::HostNotAllowed(_))
    ));
    assert!(matches!(
        strict
            .connections
            .import(owner, created.id, "x".to_owned(), "SELECT 1".to_owned())
            .await,
        Err(Error::HostNotAllowed(_))
    ));
}

on_both!(passwords_are_sealed_to_their_row, sealed_body);
async fn sealed_body(db: TestDb) {
    let h = harness_with(db, settings()).await;
    let owner = user(&h, Tier::Pro).await;
    let source = Source::mariadb().await;
    let created = h
        .domain
        .connections
        .create(owner, new_connection(&source))
        .await
        .unwrap();
    assert!(created.has_password);
    assert!(!format!("{created:?}").contains(&source.password));
    let conn = h.domain.database().connection();
    let dump = iops_tests::dump_text(conn).await;
    use base64::Engine;
    for form in [
        source.password.clone(),
        base64::engine::general_purpose::STANDARD.encode(&source.password),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&source.password),
    ] {
        assert!(!dump.contains(&form), "the database holds {form}");
    }
    assert!(
        h.domain
            .connections
            .test(owner, created.id)
            .await
            .unwrap()
            .ok
    );

    // The same ciphertext moved to another row does not decrypt there.
    let mut other = new_connection(&source);
    other.password = None;
    let other = h.domain.connections.create(owner, other).await.unwrap();
    assert!(!other.has_password);
    let sealed = entity::data_connections::Entity::find_by_id(created.id)
        .one(conn)
        .await
        .unwrap()
        .unwrap()
        .password_encrypted
        .unwrap();
    let backend = conn.get_database_backend();
    let id_sql = match backend {
        sea_orm::DbBackend::Postgres => "$2::uuid",
        _ => "$2",
    };
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("UPDATE data_connections SET password_encrypted = $1 WHERE id = {id_sql}"),
        [sealed.into(), other.id.to_string().into()],
    ))
    .await
    .unwrap();
    assert!(matches!(
        h.domain.connections.test(owner, other.id).await,
        Err(Error::Internal(_))
    ));

    // A wrong password: the test says why, without the password.
    let wrong = "definitely-not-the-password";
    h.domain
        .connections
        .update(
            owner,
            created.id,
            ConnectionChange {
                password: Some(Some(SecretString::from(wrong.to_owned()))),
                ..ConnectionChange::default()
            },
        )
        .await
        .unwrap();
    let outcome = h.domain.connections.test(owner, created.id).await.unwrap();
    assert!(!outcome.ok);
    let error = outcome.error.unwrap();
    assert!(error.contains("Access denied"), "{error}");
    assert!(!error.contains(wrong) && !error.contains(&source.password));
    let shown = h.domain.connections.get(owner, created.id).await.unwrap();
    assert_eq!(shown.status, "failed");
    match h
        .domain
        .connections
        .import(owner, created.id, "x".to_owned(), "SELECT 1".to_owned())
        .await
    {
        Err(Error::ConnectionFailed(why)) => assert!(!why.contains(wrong), "{why}"),
        other => panic!("expected the source's refusal, got {other:?}"),
    }
    // Nothing listens on port 1: unreachable, said plainly.
    h.domain
        .connections
        .update(
            owner,
            created.id,
            ConnectionChange {
                port: Some(1),
                ..ConnectionChange::default()
            },
        )
        .await
        .unwrap();
    let outcome = h.domain.connections.test(owner, created.id).await.unwrap();
    assert!(!outcome.ok);
    assert!(outcome.error.unwrap().contains("cannot reach"));
    // Removing the password.
    let cleared = h
        .domain
        .connections
        .update(
            owner,
            created.id,
            ConnectionChange {
                password: Some(None),
                ..ConnectionChange::default()
            },
        )
        .await
        .unwrap();
    assert!(!cleared.has_password);
}

async fn import_and_compare(h: &Harness, owner: Id, source: &Source) {
    let created = h
        .domain
        .connections
        .create(owner, new_connection(source))
        .await
        .unwrap();
    let tested = h.domain.connections.test(owner, created.id).await.unwrap();
    assert!(tested.ok, "{:?}", tested.error);
    assert_eq!(
        h.domain
            .connections
            .get(owner, created.id)
            .await
            .unwrap()
            .status,
        "ok"
    );
    let dataset = h
        .domain
        .connections
        .import(
            owner,
            created.id,
            format!("{} items", source.kind),
            "SELECT * FROM items ORDER BY id;".to_owned(),
        )
        .await
        .unwrap();
    assert_eq!(dataset.connection_id, Some(created.id));
    assert_eq!(dataset.row_count, Some(3));
    assert_eq!(dataset.column_count, Some(9));
    let preview = h
        .domain
        .datasets
        .preview(owner, dataset.id, 10)
        .await
        .unwrap();
    let names: Vec<&str> = preview.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id", "big", "price", "ratio", "label", "day", "at", "flag", "note"
        ],
        "{}",
        source.kind
    );
    let rows: Vec<serde_json::Value> = preview
        .rows
        .iter()
        .map(|row| serde_json::to_value(row).unwrap())
        .collect();
    assert_eq!(rows, expected_items(), "{}", source.kind);
    // Deleting the connection keeps the dataset, detached.
    h.domain
        .connections
        .delete(owner, created.id)
        .await
        .unwrap();
    let kept = h.domain.datasets.get(owner, dataset.id).await.unwrap();
    assert_eq!(kept.connection_id, None);
}

on_both!(imports_every_common_type, imports_body);
async fn imports_body(db: TestDb) {
    let h = harness_with(db, settings()).await;
    let owner = user(&h, Tier::Pro).await;
    import_and_compare(&h, owner, &Source::postgres().await).await;
    import_and_compare(&h, owner, &Source::mariadb().await).await;
    assert_eq!(h.domain.usage.report(owner).await.unwrap().datasets.used, 2);
}

async fn refused(h: &Harness, owner: Id, id: Id, sql: &str) -> FailureReason {
    match h
        .domain
        .connections
        .import(owner, id, "x".to_owned(), sql.to_owned())
        .await
    {
        Err(Error::QueryFailed(failure)) => failure.reason,
        other => panic!("{sql}: {other:?}"),
    }
}

on_both!(writes_timeouts_and_oversize_change_nothing, refusals_body);
async fn refusals_body(db: TestDb) {
    let h = harness_with(
        db,
        Settings {
            max_upload_bytes: 300,
            ..settings()
        },
    )
    .await;
    let owner = user(&h, Tier::Free).await;
    let pg = Source::postgres().await;
    let my = Source::mariadb().await;
    let pg_id = h
        .domain
        .connections
        .create(owner, new_connection(&pg))
        .await
        .unwrap()
        .id;
    let my_id = h
        .domain
        .connections
        .create(owner, new_connection(&my))
        .await
        .unwrap()
        .id;

    for (id, sql) in [
        (pg_id, "DELETE FROM items"),
        (
            pg_id,
            "WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d",
        ),
        (pg_id, "SELECT nextval('counter')"),
        (pg_id, "SELECT 1; DELETE FROM items"),
        (my_id, "DELETE FROM items"),
        (my_id, "DROP TABLE items"),
        (my_id, "INSERT INTO items (id) VALUES (9)"),
    ] {
        let reason = refused(&h, owner, id, sql).await;
        assert!(
            matches!(reason, FailureReason::Refused | FailureReason::Invalid),
            "{sql}: {reason:?}"
        );
    }
    assert_eq!(
        refused(&h, owner, pg_id, "DELETE FROM items").await,
        FailureReason::Refused
    );
    assert_eq!(
        refused(
            &h,
            owner,
            pg_id,
            "WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d"
        )
        .await,
        FailureReason::Refused
    );
    assert_eq!(
        refused(&h, owner, pg_id, "SELECT nextval('counter')").await,
        FailureReason::Refused
    );
    assert_eq!(
        refused(&h, owner, pg_id, "SELECT * FROM nowhere").await,
        FailureReason::Invalid
    );
    // An empty result is refused like an empty upload.
    assert!(matches!(
        h.domain
            .connections
            .import(
                owner,
                my_id,
                "none".to_owned(),
                "SELECT * FROM items WHERE id < 0".to_owned()
            )
            .await,
        Err(Error::Validation(_))
    ));
    assert_eq!(pg.item_count().await, 3, "the source was written to");
    assert_eq!(my.item_count().await, 3, "the source was written to");

    // The statement timeout (2 s here).
    assert_eq!(
        refused(&h, owner, pg_id, "SELECT pg_sleep(10)").await,
        FailureReason::Timeout
    );
    assert_eq!(
        refused(&h, owner, my_id, "SELECT SLEEP(10) FROM items").await,
        FailureReason::Timeout
    );

    // Over the upload limit (300 bytes): nothing stored, nothing counted.
    let big = "SELECT repeat('x', 100) AS filler FROM generate_series(1, 50)";
    assert!(matches!(
        h.domain
            .connections
            .import(owner, pg_id, "big".to_owned(), big.to_owned())
            .await,
        Err(Error::PayloadTooLarge { .. })
    ));
    let conn = h.domain.database().connection();
    assert_eq!(count(conn, "datasets").await, 0);
    assert_eq!(h.domain.usage.report(owner).await.unwrap().datasets.used, 0);
    let leftovers: Vec<_> = walk(&h.db.data_dir().join("datasets"));
    assert!(
        leftovers
            .iter()
            .all(|p| p.contains(".staging") || p.ends_with(".keep")),
        "{leftovers:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

on_both!(the_connection_limit_is_exact, limit_body);
async fn limit_body(db: TestDb) {
    let h = harness_with(db, settings()).await;
    let second = h.second_process().await;
    let owner = user(&h, Tier::Free).await;
    let source = Source {
        kind: "postgresql",
        port: 5432,
        database: "db".to_owned(),
        user: "u".to_owned(),
        password: "p".to_owned(),
    };
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let domain: Domain = if i % 2 == 0 {
                h.domain.clone()
            } else {
                second.clone()
            };
            let new = new_connection(&source);
            tokio::spawn(async move { domain.connections.create(owner, new).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(Error::LimitExceeded {
                limit,
                allowed,
                used,
                resets_at,
            }) => {
                assert_eq!(
                    (limit, allowed, used, resets_at),
                    (LimitKind::DataConnections, 5, 5, None)
                );
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 5);
    let report = h.domain.usage.report(owner).await.unwrap();
    assert_eq!(
        (report.data_connections.used, report.data_connections.limit),
        (5, Some(5))
    );
}

on_both!(keys_rotate_online_and_idempotently, rotation_body);
async fn rotation_body(db: TestDb) {
    const OLD: &str = "old:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const NEW: &str = "new:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let h = harness_with(db, settings()).await;
    let keyed = |keys: &str, current: &str| {
        let keyring = domain::Keyring::parse(keys, Some(current)).unwrap();
        let conn = h.domain.database().connection().clone();
        iops_tests::domain_keyed(
            conn,
            h.clock.clone(),
            Arc::new(h.store.clone()),
            settings(),
            keyring,
        )
    };
    let source = Source::mariadb().await;
    let old = keyed(OLD, "old");
    let owner = user(&h, Tier::Pro).await;
    let created = old
        .connections
        .create(owner, new_connection(&source))
        .await
        .unwrap();
    let sealed = || async {
        entity::data_connections::Entity::find_by_id(created.id)
            .one(h.domain.database().connection())
            .await
            .unwrap()
            .unwrap()
            .password_encrypted
            .unwrap()
    };
    assert!(sealed().await.starts_with("old:"));

    let both = keyed(&format!("{OLD},{NEW}"), "new");
    assert!(both.keys.unknown_key_ids().await.unwrap().is_empty());
    let admin = domain::Admin::local_operator();
    let first = both.keys.rotate(&admin).await.unwrap();
    assert_eq!(first.connection_passwords, 1);
    assert!(sealed().await.starts_with("new:"));
    assert_eq!(
        both.keys.rotate(&admin).await.unwrap(),
        domain::Rotation::default()
    );

    // The old key can go: the new one alone reads everything.
    let new_only = keyed(NEW, "new");
    assert!(new_only.keys.unknown_key_ids().await.unwrap().is_empty());
    assert!(
        new_only
            .connections
            .test(owner, created.id)
            .await
            .unwrap()
            .ok
    );
    // A keyring without it is told which key id is missing.
    let stranger = keyed(OLD, "old");
    assert_eq!(stranger.keys.unknown_key_ids().await.unwrap(), ["new"]);
}
