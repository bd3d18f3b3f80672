//! The rules of iOps as a library: accounts and tokens, tier limits and usage, datasets,
//! analyses and reports. It works over a sea-orm connection on SQLite or PostgreSQL and
//! knows nothing of HTTP; `crates/api` maps it to REST, and any other Rust program can
//! import it and behave the same.
//!
//! Entry point: build a [`Context`] (connection, clock, dataset store, settings) and hand it
//! to [`Domain::new`]; every service hangs off the returned [`Domain`].

pub mod accounts;
pub mod analyses;
pub mod clock;
pub mod datasets;
pub mod db;
pub mod error;
pub mod pagination;
pub mod passwords;
pub mod reports;
pub mod schema;
pub mod storage;
pub mod text;
pub mod throttle;
pub mod tokens;
pub mod usage;

use std::sync::Arc;

pub use clock::{Clock, FixedClock, SystemClock};
pub use entity::Id;
pub use error::{Error, LimitKind, Result};

/// Tunables of the rules, read once by the caller and passed down.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest accepted dataset upload, in bytes.
    pub max_upload_bytes: u64,
    /// How long a login token stays valid.
    pub session_ttl: chrono::Duration,
    /// How long a report unlock token stays valid.
    pub unlock_ttl: chrono::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 52_428_800,
            session_ttl: chrono::Duration::days(7),
            unlock_ttl: chrono::Duration::hours(12),
        }
    }
}

/// What every service needs: the database, the time, where dataset files live, settings.
#[derive(Clone)]
pub struct Context {
    pub db: sea_orm::DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn storage::DatasetStore>,
    pub settings: Settings,
}

/// All services of the domain, sharing one [`Context`].
#[derive(Clone)]
pub struct Domain {
    pub ctx: Context,
    pub accounts: accounts::Accounts,
    pub tokens: tokens::Tokens,
    pub usage: usage::Usage,
    pub datasets: datasets::Datasets,
    pub analyses: analyses::Analyses,
    pub reports: reports::Reports,
}

impl Domain {
    pub fn new(ctx: Context) -> Self {
        Self {
            accounts: accounts::Accounts::new(ctx.clone()),
            tokens: tokens::Tokens::new(ctx.clone()),
            usage: usage::Usage::new(ctx.clone()),
            datasets: datasets::Datasets::new(ctx.clone()),
            analyses: analyses::Analyses::new(ctx.clone()),
            reports: reports::Reports::new(ctx.clone()),
            ctx,
        }
    }
}
