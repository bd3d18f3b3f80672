//! The time, injected, so that month boundaries and expiries are testable without sleeping.
use std::sync::Mutex;

use chrono::{DateTime, NaiveDateTime, Utc};

/// Where the services get the time from: [`SystemClock`] in production, [`FixedClock`]
/// in tests and simulations.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// The same instant as the database stores it: naive UTC, microsecond precision
    /// (what both PostgreSQL `timestamp` and the Python era's SQLite text hold).
    fn now_naive(&self) -> NaiveDateTime {
        stored(self.now())
    }
}

/// `at` as the database stores it: naive UTC, cut to the microsecond.
pub(crate) fn stored(at: DateTime<Utc>) -> NaiveDateTime {
    use chrono::Timelike;
    let naive = at.naive_utc();
    naive
        .with_nanosecond(naive.nanosecond() / 1_000 * 1_000)
        .unwrap_or(naive)
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads a stored naive-UTC timestamp as UTC.
pub fn utc(naive: NaiveDateTime) -> DateTime<Utc> {
    naive.and_utc()
}
