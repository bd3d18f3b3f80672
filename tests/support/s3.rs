//! A real S3-compatible server for the storage tests: moto in server mode (PyPI:
//! `pip install 'moto[server]'`), started once per test binary on 127.0.0.1 and stopped when
//! the binary exits. `IOPS_TEST_S3_ENDPOINT` points the tests at a server already running
//! instead. Each test makes a bucket of its own.
//!
//! S3 tests never skip: without moto (or the endpoint) they fail, saying how to get it.
//!
//! (Included with `#[path]` by the test binaries that need it.)
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use domain::storage::object_store::aws::AmazonS3Builder;

/// The test credentials: moto accepts any, and signing them proves the client signs.
const ACCESS_KEY: &str = "iops-test-key";
const SECRET_KEY: &str = "iops-test-secret";
const REGION: &str = "us-east-1";

pub struct S3Server {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The shell that runs moto, and the pipe to its stdin, held open for the life of the
    /// process: its end (closing the pipe) stops moto.
    _lifeline: Option<Mutex<(Child, ChildStdin)>>,
}

/// The server of this test binary, started on first use.
pub fn server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("IOPS_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => {
            let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
            wait_until_listening(&endpoint, Duration::from_secs(10), || None);
            S3Server {
                endpoint,
                _lifeline: None,
            }
        }
        _ => start_moto(),
    })
}

fn moto_on_path() -> bool {
    Command::new("sh")
        .args(["-c", "command -v moto_server"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_moto() -> S3Server {
    // A fresh machine has Python and pip but not moto: install it (once) so that the
    // README's one test command is the whole set-up, as `.ci/s3-server` does in CI.
    if !moto_on_path() {
        let _ = Command::new("sh")
            .args([
                "-c",
                "python3 -m pip install --quiet --disable-pip-version-check 'moto[server]' \
                 && { command -v pyenv >/dev/null && pyenv rehash || true; }",
            ])
            .status();
    }
    assert!(
        moto_on_path(),
        "the S3 storage tests need moto's S3 server on PATH: run `pip install 'moto[server]'` \
         (or set IOPS_TEST_S3_ENDPOINT to a running S3-compatible endpoint)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port for moto")
        .port();
    let log = std::env::temp_dir().join(format!("iops-test-moto-{port}.log"));
    // The shell outlives nothing: when this process ends, its stdin closes, `read` returns
    // and moto is stopped, however the test binary exits.
    let mut shell = Command::new("sh")
        .args([
            "-c",
            "moto_server -H 127.0.0.1 -p \"$1\" >\"$2\" 2>&1 & pid=$!; \
             read -r _; kill \"$pid\"; wait \"$pid\"; rm -f \"$2\"",
            "sh",
        ])
        .arg(port.to_string())
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let lifeline = shell.stdin.take().expect("moto lifeline pipe");
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_until_listening(&endpoint, Duration::from_secs(60), || {
        Some(std::fs::read_to_string(&log).unwrap_or_default())
    });
    S3Server {
        endpoint,
        _lifeline: Some(Mutex::new((shell, lifeline))),
    }
}

fn wait_until_listening(endpoint: &str, within: Duration, log: impl Fn() -> Option<String>) {
    let addr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(&addr) {
            // A complete HTTP answer, not only an open port.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let asked = stream
                .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .is_ok();
            let mut head = [0u8; 12];
            if asked && std::io::Read::read_exact(&mut stream, &mut head).is_ok() {
                return;
            }
        }
        if Instant::now() > deadline {
            panic!(
                "the S3 test server at {endpoint} did not answer within {} s{}",
                within.as_secs(),
                log()
                    .map(|l| format!("; its log:\n{l}"))
                    .unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl S3Server {
    /// The environment `iops` reads for an S3 store at this server.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// A client configuration for this server (what [`Self::aws_env`] says, without
    /// touching the process environment, which tests running in parallel share).
    pub fn builder(&self) -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_region(REGION)
            .with_allow_http(true)
    }

    /// Creates a new, empty bucket and returns its name.
    pub async fn new_bucket(&self) -> String {
        let name = format!(
            "iops-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..20]
        );
        let res = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {name} at {}: {e}", self.endpoint));
        assert!(
            res.status().is_success(),
            "create bucket {name}: {}",
            res.status()
        );
        name
    }
}
