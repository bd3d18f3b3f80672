//! Store maintenance against the database: removing objects no dataset references
//! (garbage), and copying every referenced object to another store (migration).
use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::datasets;
use futures_util::{StreamExt, TryStreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::object::{Store, StoredObject, object_path};
use super::original_key;
use crate::{Database, Error, Id, Result};

/// Keys looked up in the database per query.
const BATCH: usize = 500;
/// Objects copied at once by a migration.
const COPIES_IN_FLIGHT: usize = 4;

/// What [`Store::collect_garbage`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// Dataset objects in the store.
    pub examined: usize,
    /// Unreferenced objects younger than the age limit: possibly an upload about to commit.
    pub too_recent: usize,
    /// Unreferenced objects old enough, removed (or that would be, on a dry run).
    pub removed: Vec<String>,
    /// Partial uploads in the staging folder old enough (a crash's leftovers), removed (or
    /// that would be).
    pub staging_removed: usize,
}

/// What [`Store::migrate_to`] did, per referenced file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Copied now.
    pub copied: usize,
    /// Already in the target with the same size (an earlier run copied them).
    pub already_there: usize,
    /// Referenced by a row but absent from the source: nothing to copy.
    pub missing: Vec<String>,
    /// `file_path` values that are not store keys (machine paths of another era).
    pub not_keys: Vec<String>,
}

impl Store {
    /// Removes the dataset objects that no `datasets.file_path` references (a columnar copy:
    /// whose original no row references) and that were
    /// last modified at least `min_age` before `now` (an upload publishes its object just
    /// before it commits its row; [`super::STALE_STAGING`] is the default age), and the
    /// staging files (partial uploads) last written at least `min_age` before `now`,
    /// except this process's uploads in progress. Only objects laid out as datasets are
    /// (`<user uuid>/<file>`) are considered, so a shared bucket prefix loses nothing
    /// else. With `dry_run`, only reports.
    pub async fn collect_garbage(
        &self,
        db: &Database,
        now: DateTime<Utc>,
        min_age: Duration,
        dry_run: bool,
    ) -> Result<GarbageReport> {
        let min_age = chrono::Duration::from_std(min_age)
            .map_err(|_| Error::validation("the minimum age is out of range"))?;
        let objects: Vec<StoredObject> = self
            .list()
            .await?
            .into_iter()
            .filter(|o| looks_like_dataset(&o.key))
            .collect();
        let mut report = GarbageReport {
            examined: objects.len(),
            staging_removed: self.sweep_staging(now, min_age, dry_run).await?,
            ..GarbageReport::default()
        };
        for batch in objects.chunks(BATCH) {
            // A columnar copy lives exactly as long as the file it was made from.
            let keys: Vec<&str> = batch.iter().map(|o| original_key(&o.key)).collect();
            let referenced: HashSet<String> = datasets::Entity::find()
                .select_only()
                .column(datasets::Column::FilePath)
                .filter(datasets::Column::FilePath.is_in(keys))
                .into_tuple::<Option<String>>()
                .all(db.connection())
                .await?
                .into_iter()
                .flatten()
                .collect();
            for object in batch {
                if referenced.contains(original_key(&object.key)) {
                    continue;
                }
                if now - object.last_modified < min_age {
                    report.too_recent += 1;
                    continue;
                }
                if !dry_run {
                    self.delete(&object.key).await?;
                }
                report.removed.push(object.key.clone());
            }
        }
        Ok(report)
    }

    /// Copies every object a dataset row references to the same key in `target`. Objects
    /// already there with the same size are skipped, so an interrupted run is resumed by
    /// running it again; a copy appears in `target` only once complete.
    pub async fn migrate_to(&self, db: &Database, target: &Store) -> Result<MigrationReport> {
        let mut report = MigrationReport::default();
        let mut after: Option<Id> = None;
        loop {
            // Keyset pages by id: rows inserted meanwhile are either seen or are new uploads,
            // which already go to whichever store the servers use.
            let mut query = datasets::Entity::find()
                .filter(datasets::Column::FilePath.is_not_null())
                .order_by_asc(datasets::Column::Id)
                .limit(BATCH as u64);
            if let Some(last) = after {
                query = query.filter(datasets::Column::Id.gt(last));
            }
            let page = query.all(db.connection()).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id);
            let keys: Vec<String> = page.into_iter().filter_map(|d| d.file_path).collect();
            let outcomes: Vec<(String, Copy)> = futures_util::stream::iter(keys)
                .map(|key| async move {
                    let outcome = self.copy_one(&key, target).await?;
                    Ok::<_, std::io::Error>((key, outcome))
                })
                .buffer_unordered(COPIES_IN_FLIGHT)
                .try_collect()
                .await?;
            for (key, outcome) in outcomes {
                match outcome {
                    Copy::Copied => report.copied += 1,
                    Copy::AlreadyThere => report.already_there += 1,
                    Copy::Missing => report.missing.push(key),
                    Copy::NotAKey => report.not_keys.push(key),
                }
            }
        }
        Ok(report)
    }

    async fn copy_one(&self, key: &str, target: &Store) -> std::io::Result<Copy> {
        if object_path(key).is_err() {
            return Ok(Copy::NotAKey);
        }
        let Some(size) = self.size_of(key).await? else {
            return Ok(Copy::Missing);
        };
        if target.size_of(key).await? == Some(size) {
            return Ok(Copy::AlreadyThere);
        }
        match self.copy_to(key, target).await {
            Ok(_) => Ok(Copy::Copied),
            // Deleted between the look and the copy: its dataset is gone too.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Copy::Missing),
            Err(e) => Err(e),
        }
    }
}

enum Copy {
    Copied,
    AlreadyThere,
    Missing,
    NotAKey,
}

/// `<uuid>/<file>`: how uploads name their objects.
fn looks_like_dataset(key: &str) -> bool {
    match key.split_once('/') {
        Some((owner, file)) => {
            uuid::Uuid::parse_str(owner).is_ok() && !file.is_empty() && !file.contains('/')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_dataset;

    #[test]
    fn only_dataset_keys_are_collectable() {
        assert!(looks_like_dataset(
            "0b6c2a8e-4a52-4c1e-9d6f-0d2b1f3c4a5b/7f1e2d3c-0000-4000-8000-000000000000.csv"
        ));
        assert!(!looks_like_dataset("backups/db.sql"));
        assert!(!looks_like_dataset("readme.txt"));
        assert!(!looks_like_dataset(
            "0b6c2a8e-4a52-4c1e-9d6f-0d2b1f3c4a5b/nested/x.csv"
        ));
    }
}
