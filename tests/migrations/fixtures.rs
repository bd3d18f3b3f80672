//! Taking over the Python era's databases: history recorded, nothing re-created, every
//! fixture row read back by the entities exactly (ids, JSON, timestamps, booleans).
use chrono::NaiveDate;
use entity::Id;
use entity::{analyses, datasets, reports, usage_tracking, users};
use iops_tests::{Backend, TestDb, count, on_both};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

fn id(text: &str) -> Id {
    Id(uuid::Uuid::parse_str(text).unwrap())
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32, micro: u32) -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_micro_opt(h, min, s, micro)
        .unwrap()
}

async fn legacy(db: TestDb) -> (TestDb, sea_orm::DatabaseConnection) {
    let legacy = TestDb::legacy(db.backend).await;
    drop(db);
    let conn = legacy.connect().await;
    (legacy, conn)
}

async fn takeover_records_history_and_keeps_rows(db: TestDb) {
    let (_db, conn) = legacy(db).await;
    // Reading the state already adopts: 001 and 002 are applied, 003 and 004 pending.
    let history = migration::schema::history(&conn).await.unwrap();
    let states: Vec<(&str, bool)> = history.iter().map(|r| (r.id.as_str(), r.applied)).collect();
    assert_eq!(
        states,
        [
            ("001", true),
            ("002", true),
            ("003", false),
            ("004", false),
            ("005", false),
            ("006", false),
            ("007", false),
            ("008", false),
            ("009", false)
        ]
    );
    assert_eq!(
        migration::schema::current(&conn).await.unwrap().as_deref(),
        Some("002")
    );

    let applied = migration::schema::upgrade(&conn, None).await.unwrap();
    assert_eq!(applied, ["003", "004", "005", "006", "007", "008", "009"]);
    for (table, rows) in [
        ("users", 3),
        ("usage_tracking", 5),
        ("datasets", 4),
        ("analyses", 3),
        ("reports", 3),
        ("access_tokens", 0),
        ("charts", 0),
    ] {
        assert_eq!(count(&conn, table).await, rows, "{table}");
    }
    // The Alembic table is gone once recorded: one history only.
    let again = migration::schema::history(&conn).await.unwrap();
    assert!(again.iter().all(|r| r.applied));
}
on_both!(
    takeover_records_history_and_keeps_rows,
    takeover_records_history_and_keeps_rows
);

async fn entities_read_every_fixture_row(db: TestDb) {
    let (_db, conn) = legacy(db).await;
    migration::schema::upgrade(&conn, None).await.unwrap();

    let alice = users::Entity::find_by_id(id("b97510ed-224c-423f-b817-306cd3abfcdd"))
        .one(&conn)
        .await
        .unwrap()
        .expect("alice by id");
    assert_eq!(alice.email, "alice@example.com");
    assert_eq!(alice.tier, users::Tier::Free);
    assert!(!alice.is_admin);
    assert_eq!(alice.created_at, at(2025, 1, 5, 9, 0, 0, 123_456));
    assert!(alice.password_hash.starts_with("$2b$12$"));

    let bob = users::Entity::find()
        .filter(users::Column::Email.eq("bob@example.com"))
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.id, id("2882c42b-6137-41f8-8440-8a60c3299b9e"));
    assert_eq!(bob.tier, users::Tier::Pro);
    assert_eq!(
        bob.stripe_customer_id.as_deref(),
        Some("cus_Qx7LmN2pR8sT4v")
    );
    assert_eq!(bob.updated_at, at(2025, 1, 7, 10, 15, 42, 500_000));

    let carol = users::Entity::find_by_id(id("365c0565-a3f1-406c-939b-00e8c1b194c6"))
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.tier, users::Tier::Enterprise);
    assert!(carol.is_admin);
    assert_eq!(carol.full_name, None);

    let usage = usage_tracking::Entity::find()
        .filter(usage_tracking::Column::UserId.eq(alice.id))
        .order_by_asc(usage_tracking::Column::MonthYear)
        .all(&conn)
        .await
        .unwrap();
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[0].month_year, "2025-01");
    assert_eq!(
        (
            usage[0].datasets_count,
            usage[0].ai_messages_count,
            usage[0].reports_count
        ),
        (2, 14, 2)
    );
    assert_eq!(usage[0].created_at, at(2025, 1, 10, 11, 0, 0, 0));

    let big = datasets::Entity::find_by_id(id("285c075e-1017-4f55-822d-66e2e8373d82"))
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(big.size_bytes, Some(5_368_709_120));
    assert_eq!(big.row_count, Some(48_213_977));
    let connection = datasets::Entity::find_by_id(id("963c2fb9-903f-487c-82fa-8571667c2225"))
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connection.file_path, None);
    assert_eq!(connection.size_bytes, None);
    assert_eq!(
        connection.connection_id,
        Some(id("f95ae99d-f2c2-419b-932e-dd1febbf734f"))
    );

    let all_analyses = analyses::Entity::find().all(&conn).await.unwrap();
    assert_eq!(all_analyses.len(), 3);
    let failed = all_analyses
        .iter()
        .find(|a| a.status == analyses::Status::Failed)
        .unwrap();
    assert!(failed.results.as_ref().unwrap().get("error").is_some());
    let completed = all_analyses
        .iter()
        .find(|a| a.status == analyses::Status::Completed)
        .unwrap();
    assert_eq!(
        completed.dataset_id,
        Some(id("4dbaf5df-6833-4dd8-a6fa-d522447d9062"))
    );
    assert_eq!(completed.config.as_ref().unwrap()["type"], "aggregate");
    let draft = all_analyses
        .iter()
        .find(|a| a.status == analyses::Status::Draft)
        .unwrap();
    assert_eq!((draft.dataset_id, draft.results.clone()), (None, None));
    // Python's json.dumps escaped a non-ASCII character as \uXXXX; it must come back decoded.
    let all_json: String = all_analyses
        .iter()
        .flat_map(|a| [a.config.clone(), a.results.clone()])
        .flatten()
        .map(|v| v.to_string())
        .collect();
    assert!(!all_json.is_ascii(), "the non-ASCII fixture string decodes");

    let report = reports::Entity::find()
        .filter(reports::Column::ShortCode.eq("p7RtZ3wB"))
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.id, id("71f8adfa-8c49-4913-92de-767feec1f2ff"));
    assert_eq!(report.expires_at, Some(at(2030, 1, 1, 0, 0, 0, 0)));
    assert_eq!(report.view_count, 5);
    assert!(report.is_public);
    assert!(report.password_hash.unwrap().starts_with("$2b$"));
    let by_analysis = reports::Entity::find()
        .filter(reports::Column::AnalysisId.eq(completed.id))
        .all(&conn)
        .await
        .unwrap();
    assert_eq!(by_analysis.len(), 3);
}
on_both!(
    entities_read_every_fixture_row,
    entities_read_every_fixture_row
);

/// New rows written next to the Python-era ones look like them: text ids on SQLite.
async fn new_rows_match_legacy_storage(db: TestDb) {
    let (db, conn) = legacy(db).await;
    migration::schema::upgrade(&conn, None).await.unwrap();
    let new_id = Id(uuid::Uuid::new_v4());
    let now = chrono::Utc::now().naive_utc();
    users::ActiveModel {
        id: Set(new_id),
        email: Set("dave@example.com".into()),
        password_hash: Set("x".into()),
        full_name: Set(None),
        tier: Set(users::Tier::Team),
        stripe_customer_id: Set(None),
        stripe_subscription_id: Set(None),
        is_admin: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&conn)
    .await
    .unwrap();
    let back = users::Entity::find_by_id(new_id)
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.id, new_id);
    assert_eq!(back.tier, users::Tier::Team);

    if db.backend == Backend::Sqlite {
        use sea_orm::{ConnectionTrait, Statement};
        let row = conn
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                format!(
                    "SELECT typeof(id), length(id) FROM users WHERE id = '{}'",
                    new_id.0.hyphenated()
                ),
            ))
            .await
            .unwrap()
            .expect("stored as the same hyphenated text");
        assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "text");
        assert_eq!(row.try_get_by_index::<i64>(1).unwrap(), 36);
    }
}
on_both!(new_rows_match_legacy_storage, new_rows_match_legacy_storage);

/// SQLite compares timestamps as text: the take-over rewrites the Python era's
/// `... 14:30:00.000000` in the form sqlx writes (`... 14:30:00`), the same instants, so
/// that cursors and expiries compare legacy and new rows alike.
#[tokio::test]
async fn sqlite_takeover_writes_timestamps_as_sqlx_does() {
    use sea_orm::{ConnectionTrait, Statement};
    let legacy = TestDb::legacy(Backend::Sqlite).await;
    let conn = legacy.connect().await;
    let read = |sql: &'static str| {
        let conn = conn.clone();
        async move {
            conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get_by_index::<String>(0).unwrap())
                .collect::<Vec<String>>()
        }
    };
    const SQL: &str = "SELECT created_at FROM users UNION ALL SELECT updated_at FROM users \
                       UNION ALL SELECT expires_at FROM reports WHERE expires_at IS NOT NULL \
                       UNION ALL SELECT created_at FROM datasets";
    let before = read(SQL).await;
    assert!(before.iter().any(|t| t.ends_with(".000000")), "{before:?}");

    migration::schema::upgrade(&conn, None).await.unwrap();
    let after = read(SQL).await;
    assert_eq!(before.len(), after.len());
    for (old, new) in before.iter().zip(&after) {
        let parse =
            |t: &str| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        assert_eq!(parse(old), parse(new), "same instant");
        assert_eq!(
            new,
            &parse(new).format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            "sqlx's form"
        );
    }
    assert!(after.iter().all(|t| !t.ends_with(".000000")), "{after:?}");
    // The fraction that is not zero is kept.
    assert!(after.iter().any(|t| t.ends_with(".123456")), "{after:?}");
}
