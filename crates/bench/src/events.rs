//! Product events under load: public views measured alone, then again while 20 clients
//! post 10,000 events spread over the run (issue 16's scenario). Ingest goes through a
//! bounded buffer and batched inserts, so the views' latency should not move; the section
//! shows whether it does, and how many events were taken and dropped meanwhile.
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Result;
use crate::views::{self, ApiViews};

/// Clients posting events during the second view run.
pub const EVENT_CLIENTS: usize = 20;
/// Events per request (the most one request may carry).
const BATCH: usize = 100;
/// Events posted during the loaded run, by all clients together.
pub const EVENTS: usize = 10_000;

/// What the section measured.
pub struct EventLoad {
    /// The views alone.
    pub alone: ApiViews,
    /// The views while events were posted.
    pub loaded: ApiViews,
    /// Events the server accepted (of [`EVENTS`]).
    pub accepted: u64,
    /// Events it dropped (full buffer) during the loaded run.
    pub dropped: u64,
    /// Event requests that failed (not `202`).
    pub errors: u64,
}

/// Views with `connections` connections for `duration`, alone and then beside
/// [`EVENT_CLIENTS`] event posters.
pub async fn measure(
    http: &reqwest::Client,
    base: &str,
    script: &Path,
    codes: &Path,
    connections: usize,
    duration: Duration,
) -> Result<EventLoad> {
    let alone = views::api(base, script, codes, connections, duration).await?;

    let accepted = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let body: Value = json!({
        "anonymous_id": "bench",
        "events": (0..BATCH)
            .map(|i| json!({"event": "bench.tick", "properties": {"i": i, "page": "/r/x"}}))
            .collect::<Vec<_>>(),
    });
    let body = Arc::new(serde_json::to_vec(&body)?);
    let url = format!("{base}/api/v1/events");
    // Each client's requests are spread evenly over the run.
    let per_client = EVENTS / BATCH / EVENT_CLIENTS;
    let pause = duration / per_client as u32;
    let posters: Vec<_> = (0..EVENT_CLIENTS)
        .map(|_| {
            let (http, url, body) = (http.clone(), url.clone(), body.clone());
            let (accepted, dropped, errors) = (accepted.clone(), dropped.clone(), errors.clone());
            tokio::spawn(async move {
                for _ in 0..per_client {
                    let next = Instant::now() + pause;
                    let sent = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.as_ref().clone())
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(res) if res.status().as_u16() == 202 => res.json::<Value>().await.ok(),
                        _ => None,
                    };
                    match answer {
                        Some(a) => {
                            let count = |key: &str| a[key].as_u64().unwrap_or(0);
                            accepted.fetch_add(count("accepted"), Ordering::Relaxed);
                            dropped.fetch_add(count("dropped"), Ordering::Relaxed);
                        }
                        None => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep_until(next.into()).await;
                }
            })
        })
        .collect();
    let loaded = views::api(base, script, codes, connections, duration).await;
    for poster in posters {
        let _ = poster.await;
    }
    Ok(EventLoad {
        alone,
        loaded: loaded?,
        accepted: accepted.load(Ordering::Relaxed),
        dropped: dropped.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
    })
}
