//! Test support: a fresh database per test, on SQLite (a file in a temporary folder) or on
//! PostgreSQL (a database of its own on the server at `IOPS_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`), so that tests run in parallel.
//!
//! PostgreSQL tests never skip: an unreachable server fails them.
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod cluster;
pub mod sources;
pub mod stripe;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");

/// Runs one async test body on both backends, as two `#[tokio::test]`s in a module named
/// `$name` (use the body's own name: functions and modules do not clash).
#[macro_export]
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$body($crate::TestDb::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$body($crate::TestDb::postgres().await).await;
            }
        }
    };
}

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of the test's own. Dropped (PostgreSQL) or deleted with its folder (SQLite)
/// when the value goes out of scope.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// Temporary folder: the SQLite file, and a data dir for dataset files.
    pub dir: Arc<tempfile::TempDir>,
    pg_name: Option<String>,
}

fn postgres_admin_url() -> String {
    std::env::var("IOPS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("postgres url has a database part");
    format!("{base}/{db}")
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("iops.db").display());
        Self {
            backend: Backend::Sqlite,
            url,
            dir: Arc::new(dir),
            pg_name: None,
        }
    }

    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL tests need a server at {admin_url} (IOPS_TEST_POSTGRES_URL): {e}")
        });
        let name = format!("iops_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        Self {
            backend: Backend::Postgres,
            url: with_database(&admin_url, &name),
            dir: Arc::new(tempfile::tempdir().expect("temp dir")),
            pg_name: Some(name),
        }
    }

    /// Same kind of database, from a Python-era fixture (`legacy_*_002`).
    pub async fn legacy(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let db = Self::sqlite().await;
                std::fs::copy(
                    Path::new(FIXTURES).join("legacy_sqlite_002.db"),
                    db.sqlite_path(),
                )
                .expect("copy sqlite fixture");
                // The copy keeps the fixture's read-only bit; the test must write.
                let mut perms = std::fs::metadata(db.sqlite_path()).unwrap().permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perms.set_readonly(false);
                std::fs::set_permissions(db.sqlite_path(), perms).unwrap();
                db
            }
            Backend::Postgres => {
                let db = Self::postgres().await;
                let status = std::process::Command::new("psql")
                    .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url, "-f"])
                    .arg(Path::new(FIXTURES).join("legacy_postgres_002.sql"))
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("run psql (PostgreSQL client) to load the fixture");
                assert!(status.success(), "loading the PostgreSQL fixture failed");
                db
            }
        }
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("iops.db")
    }

    /// A data dir for dataset files, inside the test's temporary folder.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A plain connection (the same options as `iops serve`).
    pub async fn connect(&self) -> DatabaseConnection {
        self.database().await.connection().clone()
    }

    /// The database as the domain takes it (its pools, the same options as `iops serve`).
    pub async fn database(&self) -> domain::Database {
        domain::Database::connect(&self.url, 16)
            .await
            .expect("connect to test database")
    }

    /// A connection to a database migrated to the newest revision.
    pub async fn migrated(&self) -> DatabaseConnection {
        let db = self.connect().await;
        migration::schema::upgrade(&db, None)
            .await
            .expect("migrate");
        db
    }

    pub fn db_backend(&self) -> DbBackend {
        match self.backend {
            Backend::Sqlite => DbBackend::Sqlite,
            Backend::Postgres => DbBackend::Postgres,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin_url = postgres_admin_url();
        clean_up(move || async move {
            let admin = Database::connect(&admin_url).await.ok()?;
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .ok()?;
            Some(())
        });
    }
}

/// Runs a test's clean-up to its end on a thread and runtime of its own: a `Drop` may run
/// inside the test's runtime, which must not block, or after it has ended. Best effort: a
/// leftover database is harmless.
fn clean_up<F, Fut>(cleanup: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<()>>,
{
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(cleanup())
    })
    .join();
}

/// Counts the rows of `table`.
pub async fn count(db: &DatabaseConnection, table: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .expect("count query")
        .expect("count row");
    row.try_get_by_index::<i64>(0).expect("count value")
}

/// Path of a workspace binary in the profile this test runs under, built once if needed
/// (a binary of another package is not a dependency cargo builds for a test).
/// `CARGO_BIN_EXE_<bin>` overrides.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{bin}")) {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<bin>
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "--quiet", "-p", package, "--bin", bin]);
    // Cargo gives a test process its package's CARGO_PKG_* and CARGO_MANIFEST_* variables,
    // and ring's build script watches some of them: a build run with them set looks
    // changed to cargo, which then recompiles ring and everything above it (DataFusion
    // included), and again for the next build from a shell. Build as a shell would.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                key.as_ref(),
                "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            build.env_remove(key.as_ref());
        }
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    } else {
        // The `test` profile (the settings of `dev`), as `.ci/e2e` and the CI bench build
        // use, so the binary builds share one compiled DataFusion. It lands in target/debug.
        build.args(["--profile", "test"]);
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "building {package}/{bin} failed");
    profile_dir.join(bin)
}

/// The domain over a test connection, assembled by the application's own
/// [`api::app::assemble`] (what `iops serve` runs, with the test's clock and store).
pub fn domain(
    conn: DatabaseConnection,
    clock: std::sync::Arc<dyn domain::Clock>,
    store: std::sync::Arc<dyn domain::storage::DatasetStore>,
    settings: domain::Settings,
) -> domain::Domain {
    domain_mailing(conn, clock, store, settings, None)
}

/// [`domain`] with invitation mail going through `outbox`.
pub fn domain_mailing(
    conn: DatabaseConnection,
    clock: std::sync::Arc<dyn domain::Clock>,
    store: std::sync::Arc<dyn domain::storage::DatasetStore>,
    settings: domain::Settings,
    outbox: Option<domain::Outbox>,
) -> domain::Domain {
    domain_with(conn, clock, store, settings, outbox, query_settings())
}

/// [`domain_mailing`] with the query engine's limits given.
pub fn domain_with(
    conn: DatabaseConnection,
    clock: std::sync::Arc<dyn domain::Clock>,
    store: std::sync::Arc<dyn domain::storage::DatasetStore>,
    settings: domain::Settings,
    outbox: Option<domain::Outbox>,
    query: engine::EngineSettings,
) -> domain::Domain {
    assemble(
        conn,
        clock,
        store,
        settings,
        outbox,
        query,
        Billing::default(),
    )
}

/// [`domain`] with billing: a webhook secret and prices, and a payment provider (the real
/// Stripe client pointed at a [`stripe::StripeFake`], or any other implementation).
pub fn domain_billing(
    conn: DatabaseConnection,
    clock: std::sync::Arc<dyn domain::Clock>,
    store: std::sync::Arc<dyn domain::storage::DatasetStore>,
    config: domain::billing::BillingConfig,
    payments: Option<std::sync::Arc<dyn domain::billing::Payments>>,
) -> domain::Domain {
    assemble(
        conn,
        clock,
        store,
        domain::Settings::default(),
        None,
        query_settings(),
        Billing {
            config,
            payments,
            keyring: None,
        },
    )
}

/// [`domain`] with `keyring` for the secrets at rest (rotation tests).
pub fn domain_keyed(
    conn: DatabaseConnection,
    clock: std::sync::Arc<dyn domain::Clock>,
    store: std::sync::Arc<dyn domain::storage::DatasetStore>,
    settings: domain::Settings,
    keyring: domain::Keyring,
) -> domain::Domain {
    assemble(
        conn,
        clock,
        store,
        settings,
        None,
        query_settings(),
        Billing {
            keyring: Some(keyring),
            ..Billing::default()
        },
    )
}

/// Billing's parts of [`api::app::Parts`], and the keyring when not the tests' own.
#[derive(Default)]
struct Billing {
    keyring: Option<domain::Keyring>,
    config: domain::billing::BillingConfig,
    payments: Option<std::sync::Arc<dyn domain::billing::Payments>>,
}

fn assemble(
    conn: DatabaseConnection,
    clock: std::sync::Arc<dyn domain::Clock>,
    store: std::sync::Arc<dyn domain::storage::DatasetStore>,
    settings: domain::Settings,
    outbox: Option<domain::Outbox>,
    query: engine::EngineSettings,
    billing: Billing,
) -> domain::Domain {
    api::app::assemble(api::app::Parts {
        database: domain::Database::from_connection(conn),
        clock,
        store: Some(store),
        keyring: Some(std::sync::Arc::new(
            billing.keyring.unwrap_or_else(test_keyring),
        )),
        outbox,
        query: Some(query),
        settings,
        hash_concurrency: 4,
        billing: billing.config,
        payments: billing.payments,
    })
    .expect("assemble the domain")
}

/// The query engine's limits in tests: the defaults, spilling into the system's temporary
/// folder.
pub fn query_settings() -> engine::EngineSettings {
    api::config::QuerySettings::default().engine(&std::env::temp_dir().join("iops-tests"))
}

/// Every value of every row of every table, as text (one line per row): for tests that
/// prove something is stored nowhere.
pub async fn dump_text(db: &DatabaseConnection) -> String {
    use sea_orm::{ConnectionTrait, Statement};
    let backend = db.get_database_backend();
    let tables_sql = match backend {
        DbBackend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table'",
    };
    let mut out = String::new();
    let tables = db
        .query_all_raw(Statement::from_string(backend, tables_sql))
        .await
        .expect("list tables");
    for table in tables {
        let table: String = table.try_get_by_index(0).expect("table name");
        let columns_sql = match backend {
            DbBackend::Postgres => format!(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}'"
            ),
            _ => format!("SELECT name FROM pragma_table_info('{table}')"),
        };
        let columns: Vec<String> = db
            .query_all_raw(Statement::from_string(backend, columns_sql))
            .await
            .expect("list columns")
            .iter()
            .map(|r| r.try_get_by_index(0).expect("column name"))
            .collect();
        if columns.is_empty() {
            continue;
        }
        let row_text = columns
            .iter()
            .map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), '')"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                format!("SELECT {row_text} FROM \"{table}\""),
            ))
            .await
            .expect("read rows");
        for row in rows {
            let text: String = row.try_get_by_index(0).expect("row text");
            out.push_str(&table);
            out.push_str(": ");
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

/// The encryption keys of every test domain: fixed, so that two test servers on one
/// database (two "processes") read each other's secrets, as servers sharing
/// `IOPS_ENCRYPTION_KEYS` do.
pub fn test_keyring() -> domain::Keyring {
    domain::Keyring::parse(TEST_ENCRYPTION_KEYS, None).expect("test keys")
}

/// `IOPS_ENCRYPTION_KEYS` of the tests (32 bytes of 0x2a, base64).
pub const TEST_ENCRYPTION_KEYS: &str = "test:KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// An in-process server over `domain` on 127.0.0.1:0, built by the application's own
/// `build_server`: its base URL and handle. THE one way tests start a server in-process.
pub fn serve(
    domain: domain::Domain,
    options: &api::http::ServerOptions,
) -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let server = api::http::build_server(api::http::AppState::new(domain), listener, options, None)
        .expect("build server");
    let handle = server.handle();
    tokio::spawn(server);
    (addr, handle)
}
