//! The standard sea-orm-migration command line (`cargo run -p migration -- ...`, which
//! `sea-orm-cli migrate` also runs) shares one history with `iops migrate`.
use std::process::Command;

use iops_tests::{TestDb, on_both, workspace_binary};

fn migration_cli(db: &TestDb, args: &[&str]) -> String {
    let out = Command::new(workspace_binary("migration", "migration"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run the migration binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "migration {args:?} failed: {stdout}\n{stderr}"
    );
    stdout + &stderr
}

async fn applied(db: &TestDb) -> Vec<String> {
    let conn = db.connect().await;
    migration::schema::history(&conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.applied)
        .map(|r| r.id)
        .collect()
}

async fn one_history_for_both_tools(db: TestDb) {
    migration_cli(&db, &["up", "-n", "1"]);
    assert_eq!(
        applied(&db).await,
        ["001"],
        "applied by sea-orm-migration, seen by iops"
    );

    migration::schema::upgrade(&db.connect().await, None)
        .await
        .unwrap();
    let status = migration_cli(&db, &["status"]);
    for name in [
        "m001_core_tables",
        "m002_reports",
        "m003_tokens_and_limits",
        "m004_charts",
        "m005_billing",
        "m006_templates",
        "m007_collaboration",
        "m008_data_connections",
        "m009_dataset_columns",
    ] {
        let line = status
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} missing from status:\n{status}"));
        assert!(line.contains("Applied"), "{line}");
    }

    migration_cli(&db, &["down", "-n", "8"]);
    assert_eq!(applied(&db).await, ["001"]);
}
on_both!(one_history_for_both_tools, one_history_for_both_tools);

/// The migration binary adopts a Python-era database just as `iops migrate` does.
async fn migration_cli_adopts_alembic(db: TestDb) {
    let legacy = TestDb::legacy(db.backend).await;
    migration_cli(&legacy, &["up"]);
    assert_eq!(
        applied(&legacy).await,
        [
            "001", "002", "003", "004", "005", "006", "007", "008", "009"
        ]
    );
}
on_both!(migration_cli_adopts_alembic, migration_cli_adopts_alembic);
