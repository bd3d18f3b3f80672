//! The `iops` binary itself: exit codes, output, and what it does to the database.
//!
//! The binary belongs to another package: `iops_tests::workspace_binary` finds (or builds) it.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use entity::users;
use iops_tests::{TestDb, count, on_both};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, Statement};

fn iops_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| iops_tests::workspace_binary("api", "iops"))
}

/// The result of one `iops` run.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// A failure reported as exactly one `iops: ...` line on stderr.
    fn failed_with_one_line(&self) -> &str {
        assert_ne!(
            self.code,
            Some(0),
            "expected a failure; stdout: {}",
            self.stdout
        );
        assert!(self.code.is_some(), "killed by a signal: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr: {}", self.stderr);
        assert!(lines[0].starts_with("iops: "), "stderr: {}", self.stderr);
        assert!(!self.stderr.contains("panicked") && !self.stderr.contains("backtrace"));
        lines[0]
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `iops` with a clean environment pointing at `db` (default log level).
fn command(db: &TestDb, args: &[&str]) -> Command {
    let mut cmd = Command::new(iops_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("IOPS_DATA_DIR", db.data_dir())
        .stdin(Stdio::null());
    cmd
}

async fn iops(db: &TestDb, args: &[&str]) -> Run {
    iops_env(db, args, &[]).await
}

async fn iops_env(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = command(db, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("run iops"))
        .await
        .expect("join")
        .into()
}

async fn history(db: &TestDb) -> String {
    iops(db, &["migrate", "history"]).await.ok().stdout.clone()
}

async fn current(db: &TestDb) -> String {
    iops(db, &["migrate", "current"])
        .await
        .ok()
        .stdout
        .trim()
        .to_owned()
}

on_both!(migrate_commands_walk_the_revisions, migrate_commands_body);
async fn migrate_commands_body(db: TestDb) {
    assert_eq!(current(&db).await, "none");
    assert_eq!(
        history(&db).await,
        "001  core_tables  pending\n002  reports  pending\n003  tokens_and_limits  pending\n004  charts  pending\n005  billing  pending\n006  templates  pending\n007  collaboration  pending\n008  data_connections  pending\n009  dataset_columns  pending\n"
    );

    iops(&db, &["migrate", "upgrade", "001"]).await.ok();
    assert_eq!(current(&db).await, "001");
    assert_eq!(
        history(&db).await,
        "001  core_tables  applied\n002  reports  pending\n003  tokens_and_limits  pending\n004  charts  pending\n005  billing  pending\n006  templates  pending\n007  collaboration  pending\n008  data_connections  pending\n009  dataset_columns  pending\n"
    );

    iops(&db, &["migrate", "upgrade"]).await.ok();
    assert_eq!(current(&db).await, "009");
    let conn = db.connect().await;
    assert_eq!(count(&conn, "access_tokens").await, 0);

    iops(&db, &["migrate", "downgrade", "001"]).await.ok();
    assert_eq!(current(&db).await, "001");
    assert!(!table_exists(&conn, "reports").await);
    assert!(table_exists(&conn, "users").await);

    iops(&db, &["migrate", "upgrade"]).await.ok();
    iops(&db, &["migrate", "downgrade"]).await.ok();
    assert_eq!(current(&db).await, "008");
    iops(&db, &["migrate", "downgrade"]).await.ok();
    assert_eq!(current(&db).await, "007");
    iops(&db, &["migrate", "downgrade"]).await.ok();
    assert_eq!(current(&db).await, "006");
    iops(&db, &["migrate", "downgrade"]).await.ok();
    assert_eq!(current(&db).await, "005");
    iops(&db, &["migrate", "downgrade"]).await.ok();
    assert_eq!(current(&db).await, "004");
    iops(&db, &["migrate", "downgrade"]).await.ok();
    assert_eq!(current(&db).await, "003");
    iops(&db, &["migrate", "downgrade"]).await.ok();
    iops(&db, &["migrate", "downgrade"]).await.ok();
    iops(&db, &["migrate", "downgrade"]).await.ok();
    assert_eq!(current(&db).await, "none");
    conn.close().await.ok();
}

on_both!(unknown_revision_changes_nothing, unknown_revision_body);
async fn unknown_revision_body(db: TestDb) {
    iops(&db, &["migrate", "upgrade", "002"]).await.ok();
    let before = history(&db).await;
    for args in [["migrate", "upgrade", "999"], ["migrate", "downgrade", "1"]] {
        let run = iops(&db, &args).await;
        let line = run.failed_with_one_line();
        assert!(
            line.contains("unknown revision") && line.contains("001, 002, 003, 004"),
            "{line}"
        );
    }
    assert_eq!(history(&db).await, before);
}

on_both!(users_commands, users_commands_body);
async fn users_commands_body(db: TestDb) {
    let conn = db.migrated().await;
    insert_user(&conn, "ada@example.com").await;

    let run = iops(&db, &["users", "set-tier", "Ada@Example.com", "pro"]).await;
    assert!(
        run.ok().stdout.contains("ada@example.com"),
        "{}",
        run.stdout
    );
    assert_eq!(user(&conn, "ada@example.com").await.tier, users::Tier::Pro);

    iops(&db, &["users", "set-admin", "ada@example.com"])
        .await
        .ok();
    assert!(user(&conn, "ada@example.com").await.is_admin);
    iops(&db, &["users", "set-admin", "ada@example.com", "--revoke"])
        .await
        .ok();
    assert!(!user(&conn, "ada@example.com").await.is_admin);

    let line = iops(&db, &["users", "set-tier", "ada@example.com", "gold"]).await;
    let line = line.failed_with_one_line();
    assert!(
        line.contains("gold") && line.contains("enterprise"),
        "{line}"
    );
    assert_eq!(user(&conn, "ada@example.com").await.tier, users::Tier::Pro);

    let run = iops(&db, &["users", "set-tier", "nobody@example.com", "team"]).await;
    assert!(
        run.failed_with_one_line().contains("no user"),
        "{}",
        run.stderr
    );
    let run = iops(&db, &["users", "set-admin", "nobody@example.com"]).await;
    assert!(
        run.failed_with_one_line().contains("no user"),
        "{}",
        run.stderr
    );
    conn.close().await.ok();
}

on_both!(set_limits_and_billing_prune, set_limits_body);
async fn set_limits_body(db: TestDb) {
    let conn = db.migrated().await;
    insert_user(&conn, "corp@example.com").await;
    // Only for enterprise accounts.
    let run = iops(
        &db,
        &["users", "set-limits", "corp@example.com", "--datasets", "7"],
    )
    .await;
    assert!(
        run.failed_with_one_line().contains("enterprise"),
        "{}",
        run.stderr
    );
    iops(
        &db,
        &["users", "set-tier", "corp@example.com", "enterprise"],
    )
    .await
    .ok();
    let run = iops(
        &db,
        &[
            "users",
            "set-limits",
            "corp@example.com",
            "--datasets",
            "7",
            "--reports",
            "unlimited",
        ],
    )
    .await;
    assert!(run.ok().stdout.contains("datasets 7"), "{}", run.stdout);
    // Only the flags given change.
    let run = iops(
        &db,
        &[
            "users",
            "set-limits",
            "corp@example.com",
            "--ai-messages",
            "40",
        ],
    )
    .await;
    let out = &run.ok().stdout;
    assert!(
        out.contains("datasets 7")
            && out.contains("ai_messages 40")
            && out.contains("reports unlimited"),
        "{out}"
    );
    let id = user(&conn, "corp@example.com").await.id;
    let row = entity::user_limits::Entity::find_by_id(id)
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.datasets, row.ai_messages, row.reports),
        (Some(7), Some(40), None)
    );
    for args in [
        &[
            "users",
            "set-limits",
            "nobody@example.com",
            "--datasets",
            "1",
        ][..],
        &[
            "users",
            "set-limits",
            "corp@example.com",
            "--datasets",
            "-3",
        ],
        &["users", "set-limits", "corp@example.com"],
    ] {
        iops(&db, args).await.failed_with_one_line();
    }
    let run = iops(&db, &["billing", "prune"]).await;
    assert!(
        run.ok().stdout.contains("0 billing events"),
        "{}",
        run.stdout
    );
    conn.close().await.ok();
}

// `iops keys rotate` re-encrypts the stored secrets under the current key, and `iops
// serve` refuses to start when a stored secret's key is missing.
on_both!(keys_rotate_and_serve_checks_them, keys_rotate_body);
async fn keys_rotate_body(db: TestDb) {
    const OLD: &str = "old:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const NEW: &str = "new:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let conn = db.migrated().await;
    insert_user(&conn, "keys@example.com").await;
    let owner = user(&conn, "keys@example.com").await.id;
    let store = domain::storage::LocalStore::open(db.data_dir().join("datasets"))
        .await
        .unwrap();
    let settings = domain::Settings {
        connections_allow: domain::connections::AllowList::parse("127.0.0.1").unwrap(),
        ..domain::Settings::default()
    };
    let old = iops_tests::domain_keyed(
        conn.clone(),
        Arc::new(domain::SystemClock),
        Arc::new(store),
        settings,
        domain::Keyring::parse(OLD, None).unwrap(),
    );
    old.connections
        .create(
            owner,
            domain::connections::NewConnection {
                name: "src".to_owned(),
                kind: domain::connections::ConnectionKind::Postgresql,
                host: "127.0.0.1".to_owned(),
                port: 5432,
                database: "d".to_owned(),
                username: "u".to_owned(),
                password: Some(secrecy::SecretString::from("rotate-me".to_owned())),
                sslmode: None,
            },
        )
        .await
        .unwrap();

    let both = [
        ("IOPS_ENCRYPTION_KEYS", format!("{OLD},{NEW}")),
        ("IOPS_ENCRYPTION_KEY_ID", "new".to_owned()),
    ];
    let env: Vec<(&str, &str)> = both.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = iops_env(&db, &["keys", "rotate"], &env).await;
    assert!(
        run.ok().stdout.contains("1 connection passwords"),
        "{}",
        run.stdout
    );
    let run = iops_env(&db, &["keys", "rotate"], &env).await;
    assert!(
        run.ok().stdout.contains("0 connection passwords"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("rotate-me") && !run.stderr.contains("rotate-me"));

    // A server holding only the old key would find a secret it cannot read: it stops.
    let run = iops_env(
        &db,
        &["serve"],
        &[("IOPS_ENCRYPTION_KEYS", OLD), ("IOPS_BIND", "127.0.0.1:0")],
    )
    .await;
    let line = run.failed_with_one_line();
    assert!(
        line.contains("new") && line.contains("IOPS_ENCRYPTION_KEYS"),
        "{line}"
    );
    conn.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_configuration_is_one_line() {
    let db = TestDb::sqlite().await;
    let not_a_dir = db.dir.path().join("a-file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let data_dir_under_file = not_a_dir.join("data");
    let unwritable = data_dir_under_file.to_str().unwrap();

    for (env, args, expect) in [
        (
            vec![("DATABASE_URL", "mysql://user:secret@host/db")],
            vec!["migrate", "current"],
            "DATABASE_URL",
        ),
        (
            vec![("DATABASE_URL", "postgres://[nope")],
            vec!["migrate", "current"],
            "DATABASE_URL",
        ),
        (
            vec![("DATABASE_URL", "postgres://postgres@127.0.0.1:1/iops")],
            vec!["migrate", "current"],
            "cannot connect to the database",
        ),
        (
            vec![("IOPS_MAX_UPLOAD_BYTES", "lots")],
            vec!["migrate", "current"],
            "IOPS_MAX_UPLOAD_BYTES",
        ),
        (vec![("IOPS_BIND", "nowhere")], vec!["serve"], "IOPS_BIND"),
        (
            vec![("IOPS_DATA_DIR", unwritable)],
            vec!["serve"],
            "data dir",
        ),
        (
            vec![("RUST_LOG", "[[[")],
            vec!["migrate", "current"],
            "RUST_LOG",
        ),
    ] {
        let run = iops_env(&db, &args, &env).await;
        let line = run.failed_with_one_line();
        assert!(line.contains(expect), "{env:?}: {line}");
        assert!(!line.contains("secret"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_on_a_port_in_use_fails_cleanly() {
    let db = TestDb::sqlite().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = iops_env(&db, &["serve"], &[("IOPS_BIND", &addr)]).await;
    let line = run.failed_with_one_line();
    assert!(
        line.contains("cannot listen") && line.contains(&addr),
        "{line}"
    );
}

on_both!(serve_stops_cleanly_on_sigterm, serve_stops_on_sigterm_body);
async fn serve_stops_on_sigterm_body(db: TestDb) {
    serve_then_signal(&db, "TERM").await;
    // A second start finds the schema in place and stops on SIGINT the same way.
    serve_then_signal(&db, "INT").await;
}

async fn serve_then_signal(db: &TestDb, signal: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let mut child = command(db, &["serve"])
        .env("IOPS_BIND", &bind)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iops serve");

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = client
            .get(format!("http://{bind}/health/ready"))
            .send()
            .await
            && res.status() == 200
        {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "iops serve exited early with {status}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "iops serve never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "SIG{signal}; stderr: {stderr}");
    // The port is free again.
    std::net::TcpListener::bind(&bind).expect("port released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_copies_a_live_sqlite_database() {
    let db = TestDb::sqlite().await;
    let conn = db.migrated().await;
    for i in 0..50 {
        insert_user(&conn, &format!("seed{i}@example.com")).await;
    }

    // Another connection keeps writing while the backup runs.
    let writer_conn = db.connect().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                insert_user(&writer_conn, &format!("live{n}@example.com")).await;
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A name that would break naive SQL quoting.
    let during = db.dir.path().join("it's a backup.db");
    let run = iops(&db, &["backup", during.to_str().unwrap()]).await;
    run.ok();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0);

    let copy = open_sqlite(&during).await;
    assert_eq!(tables(&copy).await, tables(&conn).await);
    let copied_users = count(&copy, "users").await;
    assert!(
        (50..=50 + written as i64).contains(&copied_users),
        "{copied_users} of {written}"
    );
    let integrity = copy
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(integrity.try_get_by_index::<String>(0).unwrap(), "ok");
    copy.close().await.ok();

    // At rest, the copy matches table for table, row for row.
    let after = db.dir.path().join("after.db");
    iops(&db, &["backup", after.to_str().unwrap()]).await.ok();
    let copy = open_sqlite(&after).await;
    for table in tables(&conn).await {
        assert_eq!(
            count(&copy, &table).await,
            count(&conn, &table).await,
            "{table}"
        );
    }
    copy.close().await.ok();

    // An existing file is never overwritten.
    let size = std::fs::metadata(&after).unwrap().len();
    let run = iops(&db, &["backup", after.to_str().unwrap()]).await;
    assert!(run.failed_with_one_line().contains("already exists"));
    assert_eq!(std::fs::metadata(&after).unwrap().len(), size);
    conn.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_on_postgres_points_to_pg_dump() {
    let db = TestDb::postgres().await;
    let target = db.dir.path().join("backup.db");
    let run = iops(&db, &["backup", target.to_str().unwrap()]).await;
    assert!(
        run.failed_with_one_line().contains("pg_dump"),
        "{}",
        run.stderr
    );
    assert!(!target.exists());
}

async fn table_exists(conn: &DatabaseConnection, table: &str) -> bool {
    tables(conn).await.iter().any(|t| t == table)
}

/// The application's tables (migration bookkeeping included), sorted.
async fn tables(conn: &DatabaseConnection) -> Vec<String> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY 1"
        }
        _ => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
              AND name NOT LIKE 'sqlite_%' ORDER BY 1"
        }
    };
    conn.query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect()
}

async fn open_sqlite(path: &Path) -> DatabaseConnection {
    assert!(path.exists(), "{} missing", path.display());
    domain::Database::connect(&format!("sqlite://{}", path.display()), 1)
        .await
        .expect("open backup")
        .connection()
        .clone()
}

async fn insert_user(conn: &DatabaseConnection, email: &str) {
    let now = chrono::Utc::now().naive_utc();
    users::Entity::insert(users::ActiveModel {
        id: Set(domain::Id(uuid::Uuid::new_v4())),
        email: Set(email.to_owned()),
        password_hash: Set(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        ),
        full_name: Set(None),
        tier: Set(users::Tier::Free),
        stripe_customer_id: Set(None),
        stripe_subscription_id: Set(None),
        is_admin: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec(conn)
    .await
    .expect("insert user");
}

async fn user(conn: &DatabaseConnection, email: &str) -> users::Model {
    use sea_orm::{ColumnTrait, QueryFilter};
    users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(conn)
        .await
        .unwrap()
        .expect("user exists")
}
