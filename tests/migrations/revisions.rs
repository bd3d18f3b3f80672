//! Moving between revisions, and the relationships the database itself enforces.
use chrono::Utc;
use entity::{Id, analyses, datasets, reports, usage_tracking, users};
use iops_tests::{TestDb, count, on_both};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, ModelTrait, Set};

async fn state(db: &DatabaseConnection) -> Vec<(String, bool)> {
    migration::schema::history(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.applied))
        .collect()
}

fn expect(applied: &[bool]) -> Vec<(String, bool)> {
    [
        "001", "002", "003", "004", "005", "006", "007", "008", "009",
    ]
    .iter()
    .zip(applied)
    .map(|(id, a)| (id.to_string(), *a))
    .collect()
}

async fn table_exists(db: &DatabaseConnection, table: &str) -> bool {
    use sea_orm::{ConnectionTrait, Statement, Value};
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
        }
        _ => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1",
    };
    db.query_one_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [Value::from(table)],
    ))
    .await
    .unwrap()
    .is_some()
}

async fn round_trips(db: TestDb) {
    let conn = db.connect().await;
    assert_eq!(migration::schema::current(&conn).await.unwrap(), None);
    assert_eq!(state(&conn).await, expect(&[false; 9]));

    assert_eq!(
        migration::schema::upgrade(&conn, Some("001"))
            .await
            .unwrap(),
        ["001"]
    );
    assert_eq!(
        migration::schema::current(&conn).await.unwrap().as_deref(),
        Some("001")
    );
    assert!(table_exists(&conn, "users").await && !table_exists(&conn, "reports").await);

    assert_eq!(
        migration::schema::upgrade(&conn, None).await.unwrap(),
        ["002", "003", "004", "005", "006", "007", "008", "009"]
    );
    assert_eq!(state(&conn).await, expect(&[true; 9]));
    for table in [
        "charts",
        "chart_embeds",
        "embed_codes",
        "embed_keys",
        "embed_analytics",
        "embed_visitors",
        "embed_salts",
        "collaborations",
        "comments",
        "activity_log",
        "dataset_columns",
        "billing_events",
        "billing_accounts",
        "user_limits",
        "templates",
        "template_purchases",
        "template_ratings",
        "data_connections",
        "analytics_events",
    ] {
        assert!(table_exists(&conn, table).await, "{table}");
    }
    // Nothing pending: a second upgrade is a no-op.
    assert!(
        migration::schema::upgrade(&conn, None)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        migration::schema::downgrade(&conn, None).await.unwrap(),
        ["009"]
    );
    assert!(!table_exists(&conn, "dataset_columns").await);
    assert!(table_exists(&conn, "datasets").await);
    assert_eq!(
        migration::schema::downgrade(&conn, None).await.unwrap(),
        ["008"]
    );
    for table in ["data_connections", "analytics_events"] {
        assert!(!table_exists(&conn, table).await, "{table}");
    }
    assert_eq!(
        migration::schema::downgrade(&conn, None).await.unwrap(),
        ["007"]
    );
    for table in ["collaborations", "comments", "activity_log"] {
        assert!(!table_exists(&conn, table).await, "{table}");
    }
    assert!(table_exists(&conn, "charts").await);
    assert_eq!(
        migration::schema::downgrade(&conn, None).await.unwrap(),
        ["006"]
    );
    for table in ["templates", "template_purchases", "template_ratings"] {
        assert!(!table_exists(&conn, table).await, "{table}");
    }
    assert_eq!(
        migration::schema::downgrade(&conn, None).await.unwrap(),
        ["005"]
    );
    for table in ["billing_events", "billing_accounts", "user_limits"] {
        assert!(!table_exists(&conn, table).await, "{table}");
    }
    assert_eq!(
        migration::schema::downgrade(&conn, None).await.unwrap(),
        ["004"]
    );
    assert_eq!(
        migration::schema::current(&conn).await.unwrap().as_deref(),
        Some("003")
    );
    for table in [
        "charts",
        "chart_embeds",
        "embed_codes",
        "embed_keys",
        "embed_analytics",
    ] {
        assert!(!table_exists(&conn, table).await, "{table}");
    }
    assert_eq!(
        migration::schema::downgrade(&conn, None).await.unwrap(),
        ["003"]
    );
    assert_eq!(
        migration::schema::current(&conn).await.unwrap().as_deref(),
        Some("002")
    );
    assert!(!table_exists(&conn, "access_tokens").await);

    migration::schema::upgrade(&conn, None).await.unwrap();
    assert_eq!(
        migration::schema::downgrade(&conn, Some("001"))
            .await
            .unwrap(),
        ["009", "008", "007", "006", "005", "004", "003", "002"]
    );
    assert_eq!(
        state(&conn).await,
        expect(&[true, false, false, false, false, false, false, false, false])
    );
    assert!(table_exists(&conn, "analyses").await && !table_exists(&conn, "reports").await);

    assert_eq!(
        migration::schema::downgrade(&conn, None).await.unwrap(),
        ["001"]
    );
    assert_eq!(migration::schema::current(&conn).await.unwrap(), None);
    assert!(!table_exists(&conn, "users").await);

    assert_eq!(
        migration::schema::upgrade(&conn, None).await.unwrap(),
        [
            "001", "002", "003", "004", "005", "006", "007", "008", "009"
        ]
    );
    assert_eq!(state(&conn).await, expect(&[true; 9]));
}
on_both!(round_trips, round_trips);

async fn unknown_revision_changes_nothing(db: TestDb) {
    let conn = db.connect().await;
    migration::schema::upgrade(&conn, Some("001"))
        .await
        .unwrap();
    for bad in ["010", "1", "abc", ""] {
        let err = migration::schema::upgrade(&conn, Some(bad))
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("001, 002, 003, 004"), "{message}");
        assert!(matches!(err, migration::schema::Error::UnknownRevision(_)));
        assert!(
            migration::schema::downgrade(&conn, Some(bad))
                .await
                .is_err()
        );
    }
    assert_eq!(
        state(&conn).await,
        expect(&[true, false, false, false, false, false, false, false, false])
    );
}
on_both!(
    unknown_revision_changes_nothing,
    unknown_revision_changes_nothing
);

async fn seed(conn: &DatabaseConnection) -> (Id, Id, Id, Id) {
    let now = Utc::now().naive_utc();
    let user = users::ActiveModel {
        id: Set(Id::new_v4()),
        email: Set(format!("{}@example.com", Id::new_v4())),
        password_hash: Set("h".into()),
        full_name: Set(None),
        tier: Set(users::Tier::Free),
        stripe_customer_id: Set(None),
        stripe_subscription_id: Set(None),
        is_admin: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .unwrap();
    usage_tracking::ActiveModel {
        id: Set(Id::new_v4()),
        user_id: Set(user.id),
        month_year: Set("2026-03".into()),
        datasets_count: Set(1),
        ai_messages_count: Set(0),
        reports_count: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .unwrap();
    let dataset = datasets::ActiveModel {
        id: Set(Id::new_v4()),
        user_id: Set(user.id),
        name: Set("d.csv".into()),
        file_path: Set(None),
        connection_id: Set(None),
        row_count: Set(Some(1)),
        column_count: Set(Some(1)),
        size_bytes: Set(Some(3)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .unwrap();
    let analysis = analyses::ActiveModel {
        id: Set(Id::new_v4()),
        user_id: Set(user.id),
        name: Set("a".into()),
        dataset_id: Set(Some(dataset.id)),
        config: Set(Some(serde_json::json!({"k": 1}))),
        results: Set(None),
        status: Set(analyses::Status::Draft),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .unwrap();
    let report = reports::ActiveModel {
        id: Set(Id::new_v4()),
        analysis_id: Set(analysis.id),
        short_code: Set(format!("c{}", &Id::new_v4().0.simple().to_string()[..12])),
        is_public: Set(true),
        password_hash: Set(None),
        expires_at: Set(None),
        view_count: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .unwrap();
    (user.id, dataset.id, analysis.id, report.id)
}

async fn deleting_a_dataset_keeps_its_analyses(db: TestDb) {
    let conn = db.migrated().await;
    let (_, dataset, analysis, _) = seed(&conn).await;
    datasets::Entity::delete_by_id(dataset)
        .exec(&conn)
        .await
        .unwrap();
    let kept = analyses::Entity::find_by_id(analysis)
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.dataset_id, None, "ON DELETE SET NULL");
    assert_eq!(count(&conn, "reports").await, 1);
}
on_both!(
    deleting_a_dataset_keeps_its_analyses,
    deleting_a_dataset_keeps_its_analyses
);

async fn deleting_an_analysis_removes_its_reports(db: TestDb) {
    let conn = db.migrated().await;
    let (_, _, analysis, report) = seed(&conn).await;
    let model = analyses::Entity::find_by_id(analysis)
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    model.delete(&conn).await.unwrap();
    assert!(
        reports::Entity::find_by_id(report)
            .one(&conn)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(count(&conn, "datasets").await, 1);
}
on_both!(
    deleting_an_analysis_removes_its_reports,
    deleting_an_analysis_removes_its_reports
);

async fn deleting_a_user_removes_everything_they_own(db: TestDb) {
    let conn = db.migrated().await;
    let (user, ..) = seed(&conn).await;
    let (_other, ..) = seed(&conn).await;
    users::Entity::delete_by_id(user).exec(&conn).await.unwrap();
    for table in ["users", "usage_tracking", "datasets", "analyses", "reports"] {
        assert_eq!(
            count(&conn, table).await,
            1,
            "{table} keeps only the other user's row"
        );
    }
}
on_both!(
    deleting_a_user_removes_everything_they_own,
    deleting_a_user_removes_everything_they_own
);

/// Every pooled connection enforces foreign keys, not just the first one (SQLite's
/// `foreign_keys` is per connection and off by default).
async fn every_connection_enforces_foreign_keys(db: TestDb) {
    let conn = db.migrated().await;
    let attempts = (0..32).map(|_| {
        let conn = conn.clone();
        async move {
            let now = Utc::now().naive_utc();
            datasets::ActiveModel {
                id: Set(Id::new_v4()),
                user_id: Set(Id::new_v4()),
                name: Set("orphan".into()),
                file_path: Set(None),
                connection_id: Set(None),
                row_count: Set(None),
                column_count: Set(None),
                size_bytes: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&conn)
            .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    assert!(
        results.iter().all(|r| r.is_err()),
        "an orphan row was accepted"
    );
    assert_eq!(count(&conn, "datasets").await, 0);
}
on_both!(
    every_connection_enforces_foreign_keys,
    every_connection_enforces_foreign_keys
);

/// `datasets.connection_id` refers to `data_connections` (revision 008): a foreign key on
/// PostgreSQL, triggers doing the same on SQLite.
async fn a_deleted_connection_detaches_its_datasets(db: TestDb) {
    use entity::data_connections;
    let conn = db.migrated().await;
    let (user, dataset, _, _) = seed(&conn).await;
    let now = Utc::now().naive_utc();
    let connection = data_connections::ActiveModel {
        id: Set(Id::new_v4()),
        user_id: Set(user),
        name: Set("src".into()),
        kind: Set("postgresql".into()),
        host: Set("db.example.com".into()),
        port: Set(5432),
        database_name: Set("d".into()),
        username: Set("u".into()),
        password_encrypted: Set(None),
        sslmode: Set(None),
        status: Set("untested".into()),
        last_tested_at: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&conn)
    .await
    .unwrap();
    let mut linked: datasets::ActiveModel = datasets::Entity::find_by_id(dataset)
        .one(&conn)
        .await
        .unwrap()
        .unwrap()
        .into();
    linked.connection_id = Set(Some(connection.id));
    linked.update(&conn).await.unwrap();

    // A connection that does not exist is refused.
    let mut dangling: datasets::ActiveModel = datasets::Entity::find_by_id(dataset)
        .one(&conn)
        .await
        .unwrap()
        .unwrap()
        .into();
    dangling.connection_id = Set(Some(Id::new_v4()));
    assert!(dangling.update(&conn).await.is_err());

    connection.delete(&conn).await.unwrap();
    let kept = datasets::Entity::find_by_id(dataset)
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.connection_id, None, "ON DELETE SET NULL");
}
on_both!(
    a_deleted_connection_detaches_its_datasets,
    a_deleted_connection_detaches_its_datasets
);
