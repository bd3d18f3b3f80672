//! What the reliability tests share: servers (in-process, or the real `iops serve`
//! binary), a private PostgreSQL the tests may stop, a raw HTTP/1.1 client for what
//! reqwest will not send (trickled heads and bodies, oversized headers, chunked bodies
//! cut short), and the leak check every error body goes through.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use domain::storage::LocalStore;
use domain::{Clock, Domain, FixedClock, Settings};
use reqwest::{Client, Response};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A password that passes the rules.
pub const PASSWORD: &str = "correct horse battery";

/// What no answer may ever contain: password hashes, SQL, machine paths, source
/// locations, panic messages.
pub const FORBIDDEN: [&str; 8] = [
    "$argon2", "$2b$", "SELECT", "INSERT", "/tmp/", "/root/", ".rs:", "panicked",
];

/// Every error body seen by any test of this binary, for the final sweep.
static ERROR_BODIES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// With `IOPS_RELIABILITY_TRACE=1` (and `--nocapture`), every checked answer is printed
/// as `case -> status`: the outcomes docs/reliability.md lists.
pub fn trace(context: &str, status: u16) {
    if std::env::var_os("IOPS_RELIABILITY_TRACE").is_some() {
        eprintln!("case: {context} -> {status}");
    }
}

/// Records an error body and fails at once if it leaks anything.
pub fn record_error_body(context: &str, body: &str) {
    assert_no_leak(context, body);
    ERROR_BODIES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(body.to_owned());
}

pub fn assert_no_leak(context: &str, body: &str) {
    for needle in FORBIDDEN {
        assert!(
            !body.contains(needle),
            "{context}: an answer contains `{needle}`: {body}"
        );
    }
}

/// How many error bodies have been recorded so far (and checked: see
/// [`record_error_body`]); tests assert they produced some.
pub fn error_bodies_seen() -> usize {
    let bodies = ERROR_BODIES.lock().unwrap_or_else(|e| e.into_inner());
    for body in bodies.iter() {
        assert_no_leak("sweep", body);
    }
    bodies.len()
}

/// Reads an answer: its status and body, recording the body when it is an error. An
/// error answer must be `application/problem+json` with the RFC 9457 members.
pub async fn answer(context: &str, res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.unwrap_or_default();
    trace(context, status);
    if status >= 400 {
        record_error_body(context, &text);
        assert_eq!(
            content_type, "application/problem+json",
            "{context}: {status} {text}"
        );
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{context}: problem body is not JSON ({e}): {text}"));
        assert_eq!(body["status"], status, "{context}: {body}");
        assert!(body["title"].is_string(), "{context}: {body}");
        assert!(
            body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("https://iops.dev/problems/")),
            "{context}: {body}"
        );
        return (status, body);
    }
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// The `type` slug of a problem body.
pub fn slug(body: &Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("https://iops.dev/problems/"))
        .unwrap_or("")
}

/// No cookies, no redirects, and a generous bound on every request: a request that
/// hangs fails the test instead of hanging it.
pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

// ---------------------------------------------------------------------------------------
// In-process servers.

/// The API server running in this process over `db`.
pub struct Server {
    pub base: String,
    pub addr: SocketAddr,
    pub domain: Domain,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// The dataset store of a data dir (one place to change should the store change).
pub async fn open_store(data_dir: &Path) -> Arc<dyn domain::storage::DatasetStore> {
    Arc::new(
        LocalStore::open(data_dir.join("datasets"))
            .await
            .expect("open dataset store"),
    )
}

impl Server {
    /// A server on 127.0.0.1:0 over an already migrated connection.
    pub async fn start(
        db: DatabaseConnection,
        data_dir: &Path,
        clock: Arc<dyn Clock>,
        settings: Settings,
        options: api::http::ServerOptions,
    ) -> Server {
        let domain = iops_tests::domain(db, clock, open_store(data_dir).await, settings);
        let (addr, handle) = iops_tests::serve(domain.clone(), &options);
        Server {
            base: format!("http://{addr}"),
            addr,
            domain,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Two workers: enough concurrency on a 2-core machine, and quick to start.
pub fn options() -> api::http::ServerOptions {
    api::http::ServerOptions {
        workers: Some(2),
        ..Default::default()
    }
}

/// A clock that stands still at the current time unless a test moves it.
pub fn fixed_clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(chrono::Utc::now()))
}

// ---------------------------------------------------------------------------------------
// Account helpers over HTTP.

pub async fn register(client: &Client, base: &str, email: &str) -> Value {
    let res = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    let (status, body) = answer("register", res).await;
    assert_eq!(status, 201, "register {email}: {body}");
    body
}

pub async fn login(client: &Client, base: &str, email: &str) -> String {
    let res = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    let (status, body) = answer("login", res).await;
    assert_eq!(status, 200, "login {email}: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// A multipart upload of `bytes` as `file_name`.
pub fn upload_form(file_name: &str, bytes: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
    )
}

// ---------------------------------------------------------------------------------------
// The `iops` binary.

/// The `iops` binary, found (or built once) by the shared `iops_tests::workspace_binary`.
pub fn iops_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| iops_tests::workspace_binary("api", "iops"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe a free port")
        .port()
}

/// A running `iops serve`. Killed (SIGKILL) if the test ends while it still runs.
pub struct Process {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub base: String,
    stderr_path: PathBuf,
}

impl Process {
    /// Starts `iops serve` on a free port with a clean environment plus `env`, and waits
    /// until `/health/ready` answers 200.
    pub async fn serve(database_url: &str, data_dir: &Path, env: &[(&str, &str)]) -> Process {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        std::fs::create_dir_all(data_dir).expect("data dir");
        let stderr_path = data_dir.join(format!("iops-{port}.log"));
        let stderr = std::fs::File::create(&stderr_path).expect("log file");
        let mut cmd = Command::new(iops_bin());
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("IOPS_DATA_DIR", data_dir)
            .env("IOPS_BIND", addr.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start iops serve");
        let mut process = Process {
            child: Some(child),
            addr,
            base: format!("http://{addr}"),
            stderr_path,
        };
        process.wait_ready().await;
        process
    }

    async fn wait_ready(&mut self) {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(res) = client
                .get(format!("{}/health/ready", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && res.status() == 200
            {
                return;
            }
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                panic!("iops serve exited early with {status}: {}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "iops serve never became ready: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("process still owned")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process still owned").id()
    }

    /// What the process wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// Peak resident memory of the process so far, in bytes (Linux `VmHWM`).
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("VmHWM in /proc status")
    }

    /// Waits (polling, bounded) for the process to exit; `None` if it did not in time.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// A private PostgreSQL server, so that a test may stop it: never the shared one.

pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    pub url: String,
}

/// The newest installed PostgreSQL's binaries (`IOPS_TEST_PG_BINDIR` overrides).
fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IOPS_TEST_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (or IOPS_TEST_PG_BINDIR)")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PrivatePostgres {
    /// `initdb` into a temporary folder and start on a free port of 127.0.0.1 (socket
    /// in the same folder). PostgreSQL refuses to run as root: as root, the server runs
    /// as the `postgres` system user.
    pub fn start() -> PrivatePostgres {
        let dir = tempfile::Builder::new()
            .prefix("iops-pg-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let pg = PrivatePostgres {
            bin: postgres_bin_dir(),
            port,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
        };
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the PostgreSQL folder");
        }
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        pg.start_server();
        pg
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut cmd = if running_as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&program);
            cmd
        } else {
            Command::new(&program)
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().expect("utf-8 path"),
                "-l",
                log.to_str().expect("utf-8 path"),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// `pg_ctl stop -m immediate`: every backend dies at once, as in a crash.
    pub fn stop_immediate(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().expect("utf-8 path"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Best effort: it may be stopped already.
        let program = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let mut cmd = if running_as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        let _ = cmd
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1.

/// An answer read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Records the body of an error answer (and checks it for leaks); a problem must be
    /// `application/problem+json`.
    pub fn record(&self, context: &str) -> &Self {
        trace(context, self.status);
        if self.status >= 400 {
            record_error_body(context, &self.text());
            if !self.body.is_empty() {
                assert_eq!(
                    self.header("content-type"),
                    Some("application/problem+json"),
                    "{context}: {self:?}"
                );
            }
        }
        self
    }
}

/// Parses a complete answer (head and body; a chunked body is decoded).
pub fn parse_response(bytes: &[u8]) -> Option<RawResponse> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut response = RawResponse {
        status,
        head,
        body: Vec::new(),
    };
    let rest = &bytes[end + 4..];
    response.body = if response
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(response)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// How a raw exchange ended.
#[derive(Debug)]
pub enum RawOutcome {
    /// The server answered (and closed, or the answer was complete).
    Answered(RawResponse),
    /// The server closed without a word.
    Closed,
    /// Nothing within the time given: the server still holds the connection.
    StillOpen,
}

/// Whether `bytes` hold a whole answer: a head and as much body as it declares.
fn complete(bytes: &[u8]) -> bool {
    let Some(res) = parse_response(bytes) else {
        return false;
    };
    match res
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(len) => res.body.len() >= len,
        // Chunked: complete at its last chunk.
        None => bytes.ends_with(b"0\r\n\r\n"),
    }
}

/// Reads until a whole answer has arrived, the server closes, or `within` passes.
/// (After an error answer the server may keep the socket open a little longer, waiting
/// for the client to close first; the answer is what counts.)
pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> RawOutcome {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if complete(&buf) {
                    break;
                }
            }
            Err(_) => {
                return match parse_response(&buf) {
                    // An answer came, and the server keeps the connection for more.
                    Some(res) => RawOutcome::Answered(res),
                    None => RawOutcome::StillOpen,
                };
            }
        }
    }
    match parse_response(&buf) {
        Some(res) => RawOutcome::Answered(res),
        None => RawOutcome::Closed,
    }
}

/// Sends `request` whole on a new connection and reads the answer.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], within: Duration) -> RawOutcome {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // A server that refuses early may close while we still write; its answer still counts.
    let _ = stream.write_all(request).await;
    read_until_closed(&mut stream, within).await
}

/// One chunk of a `Transfer-Encoding: chunked` body.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// A multipart body with one `file` part, and its boundary.
pub fn multipart_file(file_name: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "reliability-boundary-7d1f".to_owned();
    let mut body = multipart_file_head(&boundary, file_name);
    body.extend_from_slice(content);
    body.extend_from_slice(multipart_tail(&boundary).as_bytes());
    (boundary, body)
}

pub fn multipart_file_head(boundary: &str, file_name: &str) -> Vec<u8> {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes()
}

pub fn multipart_tail(boundary: &str) -> String {
    format!("\r\n--{boundary}--\r\n")
}
