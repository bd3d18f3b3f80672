//! Several machines, one database, one bucket (docs/deployment.md): real `iops serve`
//! processes with data dirs of their own against one PostgreSQL database and one S3
//! endpoint (moto on 127.0.0.1), and the storage commands and start-up checks of the
//! `iops` binary.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::storage::{LocalStore, Store};
use domain::{Domain, FixedClock, Settings};
use iops_tests::{TestDb, count};
use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

#[path = "../support/s3.rs"]
mod s3;

const PASSWORD: &str = "correct horse battery";
const CSV: &str = "city,population\nParis,2100000\nLyon,520000\n";

/// The `iops` binary (built once if needed), as `cli.rs` finds it.
fn iops_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| iops_tests::workspace_binary("api", "iops"))
}

/// `iops ARGS` with a clean environment: the database, a data dir, and `env`.
fn iops(database_url: &str, data_dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(iops_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("IOPS_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(mut cmd: Command) -> Output {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run iops"))
        .await
        .expect("join");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Output {
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

    /// A failure reported as exactly one `iops: ...` line.
    fn one_line_failure(&self) -> String {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected a failure: {:?}, stdout: {}",
            self.code,
            self.stdout
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr: {}", self.stderr);
        assert!(lines[0].starts_with("iops: "), "stderr: {}", self.stderr);
        lines[0].to_owned()
    }
}

/// A running `iops serve`, stopped (SIGKILL) when dropped.
struct Server {
    base: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

async fn serve(database_url: &str, data_dir: &Path, env: &[(&str, String)]) -> Server {
    let bind = format!("127.0.0.1:{}", free_port());
    let mut env = env.to_vec();
    env.push(("IOPS_BIND", bind.clone()));
    let mut child = iops(database_url, data_dir, &["serve"], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iops serve");
    let base = format!("http://{bind}");
    let client = Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = client.get(format!("{base}/health/ready")).send().await
            && res.status() == StatusCode::OK
        {
            let health: Value = res.json().await.expect("health json");
            assert_eq!(health["storage"], true, "{health}");
            break;
        }
        if let Some(status) = child.try_wait().expect("poll iops serve") {
            let out = child.wait_with_output().expect("serve output");
            panic!(
                "iops serve exited early with {status}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "iops serve never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server { base, child }
}

impl Server {
    async fn register_and_login(&self, client: &Client, email: &str) -> String {
        let res = client
            .post(format!("{}/api/v1/auth/register", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "register");
        self.login(client, email).await
    }

    async fn login(&self, client: &Client, email: &str) -> String {
        let res = client
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "login");
        let body: Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn upload(&self, client: &Client, token: &str, name: &str) -> Value {
        let part = Part::bytes(CSV.as_bytes().to_vec())
            .file_name(name.to_owned())
            .mime_str("text/csv")
            .unwrap();
        let res = client
            .post(format!("{}/api/v1/datasets", self.base))
            .bearer_auth(token)
            .multipart(Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "upload {name}");
        res.json().await.unwrap()
    }
}

/// Every file under `dir`, relative, as a sorted list.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every dataset object of `store`, sorted.
async fn keys_of(store: &Store) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list()
        .await
        .expect("list store")
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    keys
}

/// The bucket store the servers of a test use, seen from the test.
async fn bucket_store(bucket: &str, prefix: &str, staging: PathBuf) -> Store {
    Store::s3(s3::server().builder(), bucket, prefix, staging)
        .await
        .expect("open bucket store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_database_and_one_bucket() {
    let db = TestDb::postgres().await;
    let server = s3::server();
    let bucket = server.new_bucket().await;
    let mut env = server.aws_env();
    env.push(("IOPS_STORAGE_URL", format!("s3://{bucket}/deploy")));
    // Shared, as docs/deployment.md says: a secret written through one machine is read
    // through the other.
    env.push((
        "IOPS_ENCRYPTION_KEYS",
        iops_tests::TEST_ENCRYPTION_KEYS.to_owned(),
    ));
    let dir_a = db.dir.path().join("machine-a");
    let dir_b = db.dir.path().join("machine-b");

    // One applies the migrations; the other finds them applied.
    let a = serve(&db.url, &dir_a, &env).await;
    let b = serve(&db.url, &dir_b, &env).await;
    let store = bucket_store(&bucket, "deploy", db.dir.path().join("observer")).await;
    let conn = db.connect().await;
    let client = Client::new();

    // An upload through A is read and deleted through B.
    let token_a = a.register_and_login(&client, "ada@example.com").await;
    let dataset = a.upload(&client, &token_a, "cities.csv").await;
    let id = dataset["id"].as_str().unwrap().to_owned();
    let keys = keys_of(&store).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(&format!("{id}.csv")), "{keys:?}");
    assert_eq!(store.read(&keys[0]).await.unwrap(), CSV.as_bytes());

    let token_b = b.login(&client, "ada@example.com").await;
    let url_b = format!("{}/api/v1/datasets/{id}", b.base);
    let res = client
        .get(&url_b)
        .bearer_auth(&token_b)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = client
        .delete(&url_b)
        .bearer_auth(&token_b)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(keys_of(&store).await, Vec::<String>::new());
    assert_eq!(count(&conn, "datasets").await, 0);
    let res = client
        .get(format!("{}/api/v1/datasets/{id}", a.base))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Uploads through A, the account deleted through B: every object goes with it.
    let token_a = a.register_and_login(&client, "bob@example.com").await;
    a.upload(&client, &token_a, "one.csv").await;
    a.upload(&client, &token_a, "two.csv").await;
    assert_eq!(keys_of(&store).await.len(), 2);
    let token_b = b.login(&client, "bob@example.com").await;
    let res = client
        .delete(format!("{}/api/v1/me", b.base))
        .bearer_auth(&token_b)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(keys_of(&store).await, Vec::<String>::new());
    assert_eq!(count(&conn, "datasets").await, 0);

    // A signed embed whose key was created through A opens through B.
    let token_a = a.register_and_login(&client, "cy@example.com").await;
    let post = |url: String, token: String, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let res = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let key = post(
        format!("{}/api/v1/me/embed-keys", a.base),
        token_a.clone(),
        json!({}),
    )
    .await;
    let analysis = post(
        format!("{}/api/v1/analyses", a.base),
        token_a.clone(),
        json!({"name": "n"}),
    )
    .await;
    let chart = post(
        format!(
            "{}/api/v1/analyses/{}/charts",
            a.base,
            analysis["id"].as_str().unwrap()
        ),
        token_a.clone(),
        json!({"name": "t", "chart_type": "table", "config": {}}),
    )
    .await;
    let embed = post(
        format!(
            "{}/api/v1/charts/{}/embed",
            a.base,
            chart["id"].as_str().unwrap()
        ),
        token_a.clone(),
        json!({"mode": "signed"}),
    )
    .await;
    let code = embed["embed_code"].as_str().unwrap();
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(key["kid"].as_str().unwrap().to_owned()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &json!({"sub": code, "exp": chrono::Utc::now().timestamp() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(key["secret"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    let res = client
        .get(format!("{}/e/{code}.json?token={jwt}", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Neither machine kept a dataset file of its own: staging only, and empty.
    for dir in [&dir_a, &dir_b] {
        assert_eq!(files_under(dir), Vec::<String>::new(), "{}", dir.display());
        assert!(dir.join("staging").is_dir());
    }
    drop((a, b));
    conn.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_or_unreachable_stores_stop_start_up_with_one_line() {
    let db = TestDb::sqlite().await;
    let data = db.data_dir();

    let bad = run(iops(
        &db.url,
        &data,
        &["serve"],
        &[("IOPS_STORAGE_URL", "ftp://files.example.com/x".to_owned())],
    ))
    .await;
    let line = bad.one_line_failure();
    assert!(line.contains("IOPS_STORAGE_URL"), "{line}");

    // A bucket on an endpoint where nothing listens.
    let mut env = s3::server().aws_env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push((
        "AWS_ENDPOINT_URL",
        format!("http://127.0.0.1:{}", free_port()),
    ));
    env.push(("IOPS_STORAGE_URL", "s3://iops-nowhere/files".to_owned()));
    let started = Instant::now();
    let unreachable = run(iops(&db.url, &data, &["serve"], &env)).await;
    let line = unreachable.one_line_failure();
    assert!(line.contains("s3://iops-nowhere/files"), "{line}");
    assert!(line.contains("does not answer"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(60));

    // A reachable server without the bucket.
    let mut env = s3::server().aws_env();
    env.push(("IOPS_STORAGE_URL", "s3://iops-no-such-bucket".to_owned()));
    let missing = run(iops(&db.url, &data, &["serve"], &env)).await;
    let line = missing.one_line_failure();
    assert!(line.contains("s3://iops-no-such-bucket"), "{line}");

    // The same checks guard the storage commands.
    let bad_target = run(iops(
        &db.url,
        &data,
        &["storage", "migrate", "--to", "s3://UPPER"],
        &[],
    ))
    .await;
    assert!(bad_target.one_line_failure().contains("--to"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_reports_a_store_that_does_not_answer() {
    let db = TestDb::sqlite().await;
    let conn = db.migrated().await;
    // Opening does not contact the store; only the readiness probe does.
    let port = free_port();
    let store = Store::s3(
        s3::server()
            .builder()
            .with_endpoint(format!("http://127.0.0.1:{port}")),
        "iops-unreachable",
        "",
        db.data_dir().join("staging"),
    )
    .await
    .unwrap();
    let domain = iops_tests::domain(
        conn,
        Arc::new(FixedClock::new(Utc::now())),
        Arc::new(store),
        Settings::default(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = api::http::build_server(
        api::http::AppState::new(domain),
        listener,
        &api::http::ServerOptions {
            workers: Some(1),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let handle = server.handle();
    tokio::spawn(server);

    let res = Client::new()
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "unavailable", "database": true, "storage": false})
    );
    handle.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_commands_collect_garbage_and_move_files_to_a_bucket() {
    let db = TestDb::sqlite().await;
    let data = db.data_dir();
    let conn = db.migrated().await;
    // Files in the default folder, as a single-machine deployment has them.
    let local = LocalStore::open(data.join("datasets")).await.unwrap();
    let domain = iops_tests::domain(
        conn.clone(),
        Arc::new(FixedClock::new(Utc::now())),
        Arc::new(local.clone()),
        Settings::default(),
    );
    let user = insert_user(&domain).await;
    let mut kept = Vec::new();
    for name in ["a.csv", "b.csv"] {
        let d = domain
            .datasets
            .upload(
                user,
                domain::NewDataset {
                    name: None,
                    file_name: name.to_owned(),
                    content_type: None,
                },
                CSV.as_bytes(),
            )
            .await
            .unwrap();
        kept.push(d.file_path.unwrap());
    }
    kept.sort();
    // An object a crash left behind two hours ago, and one from a minute ago.
    let old = format!("{user}/{}.csv", uuid::Uuid::new_v4());
    let recent = format!("{user}/{}.csv", uuid::Uuid::new_v4());
    for key in [&old, &recent] {
        let path = local.root().join(key);
        std::fs::write(&path, "x\n1\n").unwrap();
    }
    let touched = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(local.root().join(&old))
        .status()
        .unwrap();
    assert!(touched.success());

    let dry = run(iops(&db.url, &data, &["storage", "gc", "--dry-run"], &[])).await;
    assert!(
        dry.ok().stdout.contains(&format!("would remove {old}")),
        "{}",
        dry.stdout
    );
    assert!(local.root().join(&old).exists());

    let gc = run(iops(&db.url, &data, &["storage", "gc"], &[])).await;
    let out = &gc.ok().stdout;
    assert!(out.contains(&format!("removed {old}")), "{out}");
    assert!(
        out.contains("removed 1 of 4 stored files") && out.contains("1 unreferenced but recent"),
        "{out}"
    );
    assert!(!local.root().join(&old).exists());
    assert!(local.root().join(&recent).exists());

    // Move the referenced files to a bucket; a second run finds them there.
    let server = s3::server();
    let bucket = server.new_bucket().await;
    let target = format!("s3://{bucket}/moved");
    let env = server.aws_env();
    let migrate = run(iops(
        &db.url,
        &data,
        &["storage", "migrate", "--to", &target],
        &env,
    ))
    .await;
    assert!(
        migrate.ok().stdout.contains(&format!(
            "copied 2 files from {} to {target}; 0 already there",
            local.root().display()
        )),
        "{}",
        migrate.stdout
    );
    let again = run(iops(
        &db.url,
        &data,
        &["storage", "migrate", "--to", &target],
        &env,
    ))
    .await;
    assert!(
        again.ok().stdout.contains("copied 0 files") && again.stdout.contains("2 already there"),
        "{}",
        again.stdout
    );
    let store = bucket_store(&bucket, "moved", db.dir.path().join("observer")).await;
    assert_eq!(keys_of(&store).await, kept);
    for key in &kept {
        assert_eq!(store.read(key).await.unwrap(), CSV.as_bytes());
    }

    // Migrating to the store in use is refused; so is a lost file, after copying the rest.
    let same = run(iops(
        &db.url,
        &data,
        &["storage", "migrate", "--to", &target],
        &[env.clone(), vec![("IOPS_STORAGE_URL", target.clone())]].concat(),
    ))
    .await;
    assert!(same.one_line_failure().contains("current store"));
    std::fs::remove_file(local.root().join(&kept[0])).unwrap();
    let lost = run(iops(
        &db.url,
        &data,
        &["storage", "migrate", "--to", &target],
        &env,
    ))
    .await;
    let line = lost.one_line_failure();
    assert!(line.contains("1 referenced files are missing"), "{line}");
    assert!(line.contains(&kept[0]), "{line}");
    assert_eq!(
        files_under(&local.root().join(".staging")),
        Vec::<String>::new()
    );
    conn.close().await.ok();
}

/// A user row for the command tests (no password needed).
async fn insert_user(domain: &Domain) -> domain::Id {
    let id = domain::Id(uuid::Uuid::new_v4());
    let now = Utc::now().naive_utc();
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    entity::users::ActiveModel {
        id: Set(id),
        email: Set(format!("{}@example.com", id.0.simple())),
        password_hash: Set("not-a-real-hash".to_owned()),
        full_name: Set(None),
        tier: Set(entity::users::Tier::Pro),
        stripe_customer_id: Set(None),
        stripe_subscription_id: Set(None),
        is_admin: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(domain.database().connection())
    .await
    .expect("insert user");
    id
}
