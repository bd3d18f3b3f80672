//! Where dataset files live. Keys are relative (`<user_id>/<dataset_id>.csv`), never machine
//! paths, so the database does not care which store holds the files.
//!
//! One implementation, [`Store`], over Apache Arrow's `object_store`: a local folder
//! (`IOPS_DATA_DIR/datasets` by default) or an S3-compatible bucket, which is what several
//! `iops serve` processes on different machines share. Uploads are first received into a
//! local staging file and parsed there, then published, visible under their key only once
//! complete: a folder renames the staged file into place; a bucket receives it streamed
//! in parts (bounded memory, whatever the size).
//!
//! The rules built on it: [`crate::Datasets`] publishes before it commits a row and removes
//! the object when the commit fails; deletions remove rows first, objects second; and
//! [`Store::collect_garbage`] removes what a crash left between the two.
use std::path::{Path, PathBuf};

use async_trait::async_trait;

mod location;
mod maintenance;
mod object;

pub use location::Location;
pub use maintenance::{GarbageReport, MigrationReport};
pub use object::{Store, StoredObject};

/// Re-exported so that callers can configure an S3 client ([`Store::s3`]) without depending
/// on the crate themselves.
pub use object_store;

/// The default of `IOPS_STORAGE_GRACE_SECS`. A staged file untouched for this long belongs
/// to an upload that died with its process (an upload that is alive writes to it, or has
/// already published it). The same age guards stored objects from
/// [`Store::collect_garbage`]: an upload publishes its object moments before it commits the
/// row that references it.
pub const STALE_STAGING: std::time::Duration = std::time::Duration::from_secs(3600);

/// What the key of a dataset file's columnar copy adds to the file's own key.
const COLUMNAR_SUFFIX: &str = ".columnar.parquet";

/// The key of the columnar copy of the dataset file under `key`: a Parquet file the query
/// engine writes once and then reads instead of the original (which stays as uploaded).
/// Derived data: counted toward no limit, removed with its dataset, kept by
/// [`Store::collect_garbage`] exactly as long as the original is, and written again when
/// it is missing.
pub fn columnar_key(key: &str) -> String {
    format!("{key}{COLUMNAR_SUFFIX}")
}

/// The dataset file a stored object belongs to: the original of a columnar copy, or the
/// object itself.
pub(crate) fn original_key(key: &str) -> &str {
    key.strip_suffix(COLUMNAR_SUFFIX).unwrap_or(key)
}

/// Where dataset files are kept. [`Store`] and [`LocalStore`] implement it; a program may
/// bring its own.
///
/// The S3 client brings rustls's `aws-lc-rs` crypto provider next to the `ring` one the
/// database driver uses, and rustls refuses to guess between two: a program that opens an
/// S3 store and a TLS database connection must install one process-wide provider at start
/// (`rustls::crypto::ring::default_provider().install_default()`), as the `iops` binary does.
#[async_trait]
pub trait DatasetStore: Send + Sync {
    /// Creates an empty staging file and returns its path.
    async fn stage(&self) -> std::io::Result<PathBuf>;
    /// Moves a staged file to `key`, making it visible; the staged file is gone afterwards.
    /// A failure leaves nothing under `key` and the staged file in place.
    async fn publish(&self, staged: &Path, key: &str) -> std::io::Result<()>;
    /// Removes the file under `key`; a missing file is not an error. A key that is not a
    /// relative path is refused with [`std::io::ErrorKind::InvalidInput`].
    async fn remove(&self, key: &str) -> std::io::Result<()>;
    /// Removes a staged file; a missing file is not an error.
    async fn discard(&self, staged: &Path) -> std::io::Result<()>;
    /// Whether a file exists under `key`.
    async fn exists(&self, key: &str) -> std::io::Result<bool>;
    /// Whether the store answers (readiness).
    async fn ready(&self) -> bool;
    /// The store's client and where keys live in it: for a query engine to read dataset
    /// files where they are kept.
    fn objects(&self) -> StoreObjects;
}

/// A store's client without its key prefix, and that prefix: the file of key `k` is at
/// [`StoreObjects::path_of`]`(k)`.
#[derive(Clone, Debug)]
pub struct StoreObjects {
    /// The client (a folder, or a bucket).
    pub store: std::sync::Arc<dyn object_store::ObjectStore>,
    /// Key prefix inside it, without slashes at either end; empty for none.
    pub prefix: String,
}

impl StoreObjects {
    /// Where the file of `key` is in [`StoreObjects::store`].
    pub fn path_of(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }
}

/// A [`Store`] on a local folder that also knows the folder, for tools and tests that
/// look inside it: files at `<root>/<key>`, staging in `<root>/.staging`.
#[derive(Clone, Debug)]
pub struct LocalStore {
    store: Store,
    root: PathBuf,
}

impl LocalStore {
    /// Opens (creating if needed) the store under `root`. Staging leftovers of a run that
    /// died mid-upload are cleared by [`Store::collect_garbage`].
    pub async fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        let store = Store::folder(root.clone()).await?;
        Ok(Self { store, root })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store on it.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl std::ops::Deref for LocalStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

#[async_trait]
impl DatasetStore for LocalStore {
    async fn stage(&self) -> std::io::Result<PathBuf> {
        self.store.stage().await
    }
    async fn publish(&self, staged: &Path, key: &str) -> std::io::Result<()> {
        self.store.publish(staged, key).await
    }
    async fn remove(&self, key: &str) -> std::io::Result<()> {
        self.store.remove(key).await
    }
    async fn discard(&self, staged: &Path) -> std::io::Result<()> {
        self.store.discard(staged).await
    }
    async fn exists(&self, key: &str) -> std::io::Result<bool> {
        self.store.exists(key).await
    }
    async fn ready(&self) -> bool {
        self.store.ready().await
    }
    fn objects(&self) -> StoreObjects {
        self.store.objects()
    }
}
