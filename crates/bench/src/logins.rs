//! Accounts over HTTP: the benchmark's users, and concurrent logins while `/health/live`
//! is probed (hashing must not block the async workers).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::Result;
use crate::server::Server;
use crate::stats::Samples;
use crate::uploads::truncate;

pub const PASSWORD: &str = "correct horse battery staple";
/// Gap between two `/health/live` probes: frequent enough for a p99, too rare to be load.
const PROBE_GAP: Duration = Duration::from_millis(5);

/// `POST /api/v1/auth/register`.
pub async fn register(http: &reqwest::Client, server: &Server, email: &str) -> Result<()> {
    let response = http
        .post(server.url("/api/v1/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?;
    let status = response.status();
    if status != reqwest::StatusCode::CREATED {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("register answered {status}: {}", truncate(&text)).into());
    }
    Ok(())
}

/// `POST /api/v1/auth/login`; returns the access token.
pub async fn login(http: &reqwest::Client, server: &Server, email: &str) -> Result<String> {
    let response = http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("login answered {status}: {}", truncate(&text)).into());
    }
    let body: serde_json::Value = serde_json::from_str(&text)?;
    body.get("access_token")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "login answer has no access_token".into())
}

#[derive(Debug)]
pub struct Logins {
    pub logins: Samples,
    pub live: Samples,
    pub elapsed: Duration,
    pub errors: u64,
}

/// `concurrency` clients logging in back to back for `duration`, while one more probes
/// `/health/live` every few milliseconds.
pub async fn run(
    http: &reqwest::Client,
    server: &Server,
    email: &str,
    concurrency: usize,
    duration: Duration,
) -> Result<Logins> {
    // One login first: a broken endpoint is reported once, not as thousands of errors.
    login(http, server, email).await?;
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (http, done) = (http.clone(), done.clone());
        let url = server.url("/api/v1/auth/login");
        let body = json!({"email": email, "password": PASSWORD});
        workers.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut errors = 0u64;
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => {
                        // Read the body: the login is done when its answer has arrived.
                        match r.bytes().await {
                            Ok(_) => samples.push(t.elapsed()),
                            Err(_) => errors += 1,
                        }
                    }
                    _ => errors += 1,
                }
            }
            (samples, errors)
        }));
    }
    let probe = {
        let (http, done) = (http.clone(), done.clone());
        let url = server.url("/health/live");
        tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut errors = 0u64;
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                match http.get(&url).send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => samples.push(t.elapsed()),
                    _ => errors += 1,
                }
                tokio::time::sleep(PROBE_GAP).await;
            }
            (samples, errors)
        })
    };
    tokio::time::sleep(duration).await;
    done.store(true, Ordering::Relaxed);
    let mut result = Logins {
        logins: Samples::default(),
        live: Samples::default(),
        elapsed: Duration::ZERO,
        errors: 0,
    };
    for worker in workers {
        let (samples, errors) = worker.await?;
        result.logins.extend(samples);
        result.errors += errors;
    }
    let (live, live_errors) = probe.await?;
    result.live = live;
    result.errors += live_errors;
    result.elapsed = started.elapsed();
    Ok(result)
}
