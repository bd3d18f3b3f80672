//! [`Store`]: the one [`DatasetStore`] implementation, over an `object_store` backend.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::DatasetStore;
use super::location::{Location, valid_segment};

/// Size of one part of a multipart upload: above S3's 5 MiB minimum. A file smaller than
/// this goes up in one request.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once. With the part being filled, this bounds the
/// memory of one publish to `(PARTS_IN_FLIGHT + 1) * PART_SIZE`, whatever the file size.
const PARTS_IN_FLIGHT: usize = 2;
/// Read size when streaming a staged file.
const READ_CHUNK: usize = 256 * 1024;
/// The start-up check waits this long for the store to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);
/// A readiness probe waits this long.
const READY_TIMEOUT: Duration = Duration::from_secs(3);
/// Readiness asks for this key's metadata: "not found" is an answer, which is all it needs.
const PROBE_KEY: &str = ".iops-ready";

/// Dataset files in a folder or a bucket, staged in a local folder.
#[derive(Clone)]
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    /// The same objects without the key prefix, for readers that add it themselves
    /// (object_store's `PrefixStore` leaves the prefix in the paths `head` reports).
    unprefixed: Arc<dyn ObjectStore>,
    location: Location,
    staging: PathBuf,
    /// Staging files of this process's uploads in progress: a sweep never removes them,
    /// whatever their age (an upload from a slow client may sit idle for a long time).
    in_flight: Arc<Mutex<HashSet<PathBuf>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .field("staging", &self.staging)
            .finish()
    }
}

/// One object of a store, as a listing reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// Last write.
    pub last_modified: DateTime<Utc>,
}

impl Store {
    /// Opens the store at `location`. A folder stages in its own `.staging`; a bucket stages
    /// in `data_dir/staging` and is reached with the client settings in `s3` (credentials,
    /// endpoint, region: the caller's configuration reads them). Opening does not contact
    /// the store: call [`Store::check`] for that.
    pub async fn open(
        location: &Location,
        data_dir: &Path,
        s3: AmazonS3Builder,
    ) -> std::io::Result<Self> {
        match location {
            Location::Folder(root) => Self::folder(root.clone()).await,
            Location::S3 { bucket, prefix } => {
                Self::s3(s3, bucket, prefix, data_dir.join("staging")).await
            }
        }
    }

    /// A folder store: files at `<root>/<key>`, staging in `<root>/.staging`. Creates the
    /// folders if needed. Leftovers of a crash are cleared by [`Store::collect_garbage`].
    pub async fn folder(root: PathBuf) -> std::io::Result<Self> {
        let staging = root.join(".staging");
        tokio::fs::create_dir_all(&staging).await?;
        let objects = LocalFileSystem::new_with_prefix(&root)
            .map_err(into_io)?
            // An account's folder goes with its last file: nothing is left behind.
            .with_automatic_cleanup(true);
        let objects: Arc<dyn ObjectStore> = Arc::new(objects);
        Ok(Self {
            unprefixed: objects.clone(),
            objects,
            location: Location::Folder(root),
            staging,
            in_flight: Arc::default(),
        })
    }

    /// A bucket store configured by `builder` (which may already carry settings, from the
    /// environment or a test), keys under `prefix` in `bucket`, staging in `staging`.
    pub async fn s3(
        builder: AmazonS3Builder,
        bucket: &str,
        prefix: &str,
        staging: PathBuf,
    ) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(&staging).await?;
        let s3 = builder
            .with_bucket_name(bucket)
            // A few quick retries: transient errors heal, and an unreachable store is
            // reported in seconds rather than after the default three minutes.
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let s3 = Arc::new(s3);
        let objects: Arc<dyn ObjectStore> = if prefix.is_empty() {
            s3.clone()
        } else {
            Arc::new(PrefixStore::new(s3.clone(), prefix))
        };
        Ok(Self {
            objects,
            unprefixed: s3,
            location: Location::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            },
            staging,
            in_flight: Arc::default(),
        })
    }

    /// Where it is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Where uploads are received before they are published.
    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    /// Proves the store answers: a bucket is listed (it exists, the credentials are
    /// accepted), a folder is read. Bounded in time: an unreachable endpoint is an error
    /// after a few seconds at most.
    pub async fn check(&self) -> std::io::Result<()> {
        let probe = async {
            tokio::fs::metadata(&self.staging).await?;
            let mut listing = self.objects.list(None);
            match listing.next().await {
                None | Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(into_io(e)),
            }
        };
        tokio::time::timeout(CHECK_TIMEOUT, probe)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
                ))
            })
    }

    /// Every dataset object of the store, in no particular order. Names with a segment
    /// starting with `.` (staging, probes) are not datasets and are left out.
    pub async fn list(&self) -> std::io::Result<Vec<StoredObject>> {
        let mut listing = self.objects.list(None);
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(into_io)?;
            let key = meta.location.to_string();
            if key.split('/').any(|s| s.starts_with('.')) {
                continue;
            }
            out.push(StoredObject {
                key,
                size: meta.size,
                last_modified: meta.last_modified,
            });
        }
        Ok(out)
    }

    /// The size of the object under `key`, or `None` when there is none.
    pub async fn size_of(&self, key: &str) -> std::io::Result<Option<u64>> {
        match self.objects.head(&object_path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(into_io(e)),
        }
    }

    /// The whole object under `key`, in memory: for small files and checks.
    pub async fn read(&self, key: &str) -> std::io::Result<Vec<u8>> {
        let result = self
            .objects
            .get(&object_path(key)?)
            .await
            .map_err(into_io)?;
        Ok(result.bytes().await.map_err(into_io)?.to_vec())
    }

    /// Copies the object under `key` to the same key of `target`, streaming (bounded
    /// memory). The copy is visible in `target` only once complete. Returns its size.
    pub async fn copy_to(&self, key: &str, target: &Store) -> std::io::Result<u64> {
        let path = object_path(key)?;
        let source = self.objects.get(&path).await.map_err(into_io)?;
        let size = source.meta.size;
        if size < PART_SIZE as u64 {
            let bytes = source.bytes().await.map_err(into_io)?;
            target
                .objects
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(into_io)?;
            return Ok(size);
        }
        let upload = target.objects.put_multipart(&path).await.map_err(into_io)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut chunks = source.into_stream();
        let streamed: object_store::Result<()> = async {
            while let Some(chunk) = chunks.next().await {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.put(chunk?);
            }
            Ok(())
        }
        .await;
        finish(writer, streamed).await?;
        Ok(size)
    }

    /// Deletes the object under `key`; a missing object is not an error.
    pub(super) async fn delete(&self, key: &str) -> std::io::Result<()> {
        match self.objects.delete(&object_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(into_io(e)),
        }
    }

    /// The store path of a staged file when the store itself holds the staging folder (a
    /// folder store), so that publishing can be a rename.
    fn staged_in_store(&self, staged: &Path) -> Option<ObjectPath> {
        let Location::Folder(root) = &self.location else {
            return None;
        };
        let relative = staged.strip_prefix(root).ok()?;
        ObjectPath::parse(relative.to_str()?).ok()
    }

    /// Removes staging files (partial uploads a crash left behind) last written at least
    /// `min_age` before `now`, except this process's uploads in progress. Another process
    /// sharing the folder may be receiving a younger file right now: that is what the age
    /// protects. Returns how many were (or, with `dry_run`, would be) removed.
    pub(super) async fn sweep_staging(
        &self,
        now: DateTime<Utc>,
        min_age: chrono::Duration,
        dry_run: bool,
    ) -> std::io::Result<usize> {
        let mut removed = 0;
        let mut entries = tokio::fs::read_dir(&self.staging).await?;
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            if self.is_in_flight(&path) {
                continue;
            }
            let Ok(modified) = entry.metadata().await.and_then(|m| m.modified()) else {
                continue;
            };
            if now - DateTime::<Utc>::from(modified) < min_age {
                continue;
            }
            if !dry_run {
                ignore_missing(tokio::fs::remove_file(&path).await)?;
            }
            removed += 1;
        }
        Ok(removed)
    }

    fn is_in_flight(&self, path: &Path) -> bool {
        self.in_flight
            .lock()
            .map(|set| set.contains(path))
            .unwrap_or(true)
    }

    fn settle(&self, path: &Path) {
        if let Ok(mut set) = self.in_flight.lock() {
            set.remove(path);
        }
    }

    async fn publish_staged(&self, staged: &Path, key: &str) -> std::io::Result<()> {
        let path = object_path(key)?;
        if let Some(staged) = self.staged_in_store(staged) {
            // A folder stages inside itself: one atomic rename, no copy.
            return self.objects.rename(&staged, &path).await.map_err(into_io);
        }
        self.upload(staged, &path).await?;
        // The object is complete; the staged copy has served its purpose.
        if let Err(e) = ignore_missing(tokio::fs::remove_file(staged).await) {
            tracing::warn!(error = %e, "removing a published staging file failed");
        }
        Ok(())
    }

    /// Streams the file at `staged` to `path`: one request for a small file, a multipart
    /// upload otherwise (aborted on failure, so no part outlives it).
    async fn upload(&self, staged: &Path, path: &ObjectPath) -> std::io::Result<()> {
        let mut file = tokio::fs::File::open(staged).await?;
        let size = file.metadata().await?.len();
        if size < PART_SIZE as u64 {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.read_to_end(&mut bytes).await?;
            self.objects
                .put(path, PutPayload::from(bytes))
                .await
                .map_err(into_io)?;
            return Ok(());
        }
        let upload = self.objects.put_multipart(path).await.map_err(into_io)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buffer = vec![0u8; READ_CHUNK];
        let streamed: object_store::Result<()> = async {
            loop {
                let n = file
                    .read(&mut buffer)
                    .await
                    .map_err(|e| object_store::Error::Generic {
                        store: "staging",
                        source: Box::new(e),
                    })?;
                if n == 0 {
                    return Ok(());
                }
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.write(&buffer[..n]);
            }
        }
        .await;
        finish(writer, streamed).await
    }
}

/// Completes a multipart upload after its parts were handed over, or aborts it.
async fn finish(writer: WriteMultipart, streamed: object_store::Result<()>) -> std::io::Result<()> {
    match streamed {
        Ok(()) => writer.finish().await.map(|_| ()).map_err(into_io),
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, "aborting a multipart upload failed");
            }
            Err(into_io(e))
        }
    }
}

#[async_trait]
impl DatasetStore for Store {
    async fn stage(&self) -> std::io::Result<PathBuf> {
        let path = self
            .staging
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        if let Ok(mut set) = self.in_flight.lock() {
            set.insert(path.clone());
        }
        if let Err(e) = tokio::fs::File::create(&path).await {
            self.settle(&path);
            return Err(e);
        }
        Ok(path)
    }

    async fn publish(&self, staged: &Path, key: &str) -> std::io::Result<()> {
        let published = self.publish_staged(staged, key).await;
        self.settle(staged);
        published
    }

    async fn remove(&self, key: &str) -> std::io::Result<()> {
        self.delete(key).await
    }

    async fn discard(&self, staged: &Path) -> std::io::Result<()> {
        let discarded = ignore_missing(tokio::fs::remove_file(staged).await);
        self.settle(staged);
        discarded
    }

    async fn exists(&self, key: &str) -> std::io::Result<bool> {
        Ok(self.size_of(key).await?.is_some())
    }

    async fn ready(&self) -> bool {
        let probe = async {
            if tokio::fs::metadata(&self.staging).await.is_err() {
                return false;
            }
            if let Location::Folder(root) = &self.location
                && tokio::fs::metadata(root).await.is_err()
            {
                return false;
            }
            matches!(
                self.objects.head(&ObjectPath::from(PROBE_KEY)).await,
                Ok(_) | Err(object_store::Error::NotFound { .. })
            )
        };
        tokio::time::timeout(READY_TIMEOUT, probe)
            .await
            .unwrap_or(false)
    }

    fn objects(&self) -> super::StoreObjects {
        let prefix = match &self.location {
            Location::S3 { prefix, .. } => prefix.clone(),
            Location::Folder(_) => String::new(),
        };
        super::StoreObjects {
            store: self.unprefixed.clone(),
            prefix,
        }
    }
}

/// The store path of a key, refusing anything that is not a plain relative path (a machine
/// path of another era, `..`, an empty segment).
pub(super) fn object_path(key: &str) -> std::io::Result<ObjectPath> {
    let plain = !key.is_empty() && !key.contains('\\') && key.split('/').all(valid_segment);
    let parsed = if plain {
        ObjectPath::parse(key).ok()
    } else {
        None
    };
    parsed.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "storage key must be a relative path",
        )
    })
}

/// Keeps the store's error as the cause, with the kind a caller can act on.
pub(super) fn into_io(err: object_store::Error) -> std::io::Error {
    use std::io::ErrorKind;
    let kind = match &err {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        object_store::Error::InvalidPath { .. } => ErrorKind::InvalidInput,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => ErrorKind::PermissionDenied,
        _ => ErrorKind::Other,
    };
    std::io::Error::new(kind, err)
}

fn ignore_missing(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
