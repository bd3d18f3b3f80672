//! `iops serve [--no-migrate]`.
use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;

use domain::storage::Store;

use crate::app::App;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::{AppState, ServerOptions, build_server};

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(config: &Config, no_migrate: bool) -> Result<()> {
    // Signal handlers first: a SIGTERM during start-up must stop us cleanly too.
    let shutdown = shutdown_signal()?;
    config.ensure_data_dir()?;
    let listener = bind(config)?;

    let app = App::builder(config.clone())
        .migrate(!no_migrate)
        .build()
        .await?;
    // A secret written under a key this process does not hold would be unreadable: stop
    // now, with one line, rather than fail each request that needs it.
    let unknown = app.domain.keys.unknown_key_ids().await?;
    if !unknown.is_empty() {
        app.close().await;
        return Err(Error::config(format!(
            "stored secrets are encrypted with key ids this server does not have ({}); \
             add them to IOPS_ENCRYPTION_KEYS (or the key file) and start again",
            unknown.join(", ")
        )));
    }
    if let Some(store) = app.store.clone() {
        tokio::spawn(sweep(store, app.clone(), config.storage_grace));
    }
    tokio::spawn(housekeeping(app.domain.clone()));
    // Before serving, so that this month's events land in their partition.
    event_partitions(&app.domain).await;
    tokio::spawn(event_partitions_daily(app.domain.clone()));

    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| config.bind.clone());
    let server = build_server(
        AppState::new(app.domain.clone()),
        listener,
        &ServerOptions::default(),
        Some(shutdown),
    )
    .map_err(|e| Error::io(format!("cannot serve on {addr}"), e))?;
    tracing::info!(%addr, "iops listening");
    let served = server.await;
    // In-flight requests are done: write the product events still buffered.
    app.domain.events.close(EVENTS_FLUSH).await;
    served.map_err(|e| Error::io("the server stopped with an error", e))?;
    app.close().await;
    tracing::info!("iops stopped");
    Ok(())
}

/// How often a running server sweeps its store (after the sweep at start).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// The store sweep, at start and then every [`SWEEP_EVERY`]: objects a crash left
/// unreferenced (published, never committed; or whose row was deleted before the object
/// could be) and partial uploads a crash left in staging, once older than
/// `IOPS_STORAGE_GRACE_SECS` (this process's own uploads in progress are never touched).
/// In the background, so that a large store does not delay serving; several servers
/// sweeping at once only repeat deletes.
async fn sweep(store: Store, app: App, grace: std::time::Duration) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        let now = app.domain.now();
        match store
            .collect_garbage(&app.database, now, grace, false)
            .await
        {
            Ok(report) if report.removed.is_empty() && report.staging_removed == 0 => {
                tracing::debug!(
                    examined = report.examined,
                    "dataset store sweep: nothing to remove"
                );
            }
            Ok(report) => tracing::info!(
                examined = report.examined,
                removed = report.removed.len(),
                staging_removed = report.staging_removed,
                "dataset store sweep removed unreferenced files"
            ),
            Err(e) => {
                let error = crate::error::Error::from(e).one_line();
                tracing::warn!(%error, "dataset store sweep failed");
            }
        }
    }
}

/// How long a stopping server may take to write the product events still buffered.
const EVENTS_FLUSH: std::time::Duration = std::time::Duration::from_secs(10);

/// Creates the monthly partitions of product events for this month and the next two
/// (PostgreSQL; nothing to do on SQLite). A failure is logged: events then wait in the
/// default partition, and the next pass moves them.
async fn event_partitions(domain: &domain::Domain) {
    match domain.events.create_partitions().await {
        Ok(created) if created.is_empty() => {}
        Ok(created) => tracing::info!(partitions = %created.join(", "), "created event partitions"),
        Err(e) => {
            let error = crate::error::Error::from(e).one_line();
            tracing::warn!(%error, "creating event partitions failed");
        }
    }
}

/// [`event_partitions`] once a day (the first pass is at start).
async fn event_partitions_daily(domain: domain::Domain) {
    let mut every_day = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
    every_day.tick().await;
    loop {
        every_day.tick().await;
        event_partitions(&domain).await;
    }
}

/// The hourly pass: [`domain::Domain::housekeeping`] decides what is old (embed salts and
/// visitor hashes, so none outlives 48 hours by much even on a server that sees no views;
/// expired tokens; finished failed-attempt windows; product events past their retention);
/// this only schedules it and logs.
async fn housekeeping(domain: domain::Domain) {
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        for (what, outcome) in domain.housekeeping().await {
            match outcome {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "{what} deleted"),
                Err(e) => {
                    let error = crate::error::Error::from(e).one_line();
                    tracing::warn!(%error, "deleting {what} failed");
                }
            }
        }
    }
}

fn bind(config: &Config) -> Result<TcpListener> {
    let addrs = config.bind_addrs()?;
    TcpListener::bind(&addrs[..])
        .map_err(|e| Error::io(format!("cannot listen on {}", config.bind), e))
}

pub(super) type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Resolves on SIGINT or SIGTERM; either one starts a graceful stop (in-flight requests
/// finish). actix's own handlers would treat SIGINT as a forced stop.
pub(super) fn shutdown_signal() -> Result<Shutdown> {
    use tokio::signal::unix::{SignalKind, signal};
    let handler = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| Error::io(format!("cannot handle {name}"), e))
    };
    let mut interrupt = handler(SignalKind::interrupt(), "SIGINT")?;
    let mut terminate = handler(SignalKind::terminate(), "SIGTERM")?;
    Ok(Box::pin(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received; finishing in-flight requests"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; finishing in-flight requests"),
        }
    }))
}
