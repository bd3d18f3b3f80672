//! Building a [`domain::Domain`] over a test database, with a clock the test controls.
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use domain::storage::LocalStore;
use domain::{Domain, FixedClock, Settings};
use iops_tests::TestDb;

pub struct Harness {
    pub db: TestDb,
    pub domain: Domain,
    pub clock: Arc<FixedClock>,
    pub store: LocalStore,
}

/// 2026-03-15 12:00 UTC: mid-month, so month-boundary tests move the clock on purpose.
pub fn default_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()
}

pub async fn harness(db: TestDb) -> Harness {
    harness_with(db, Settings::default()).await
}

pub async fn harness_with(db: TestDb, settings: Settings) -> Harness {
    let conn = db.migrated().await;
    let clock = Arc::new(FixedClock::new(default_now()));
    let store = LocalStore::open(db.data_dir().join("datasets"))
        .await
        .expect("open store");
    let domain = iops_tests::domain(conn, clock.clone(), Arc::new(store.clone()), settings);
    Harness {
        db,
        domain,
        clock,
        store,
    }
}

impl Harness {
    /// A second, independent domain on the same database: a stand-in for a second process.
    pub async fn second_process(&self) -> Domain {
        self.second_process_with(self.domain.settings().clone())
            .await
    }

    /// [`Harness::second_process`] with settings of its own.
    pub async fn second_process_with(&self, settings: Settings) -> Domain {
        let conn = self.db.connect().await;
        iops_tests::domain(
            conn,
            self.clock.clone(),
            Arc::new(self.store.clone()),
            settings,
        )
    }
}
