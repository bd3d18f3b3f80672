//! Where dataset files live, behind one small trait so that another store (object
//! storage) is one more implementation. Keys are relative (`<user_id>/<dataset_id>.csv`),
//! never machine paths, so the database does not care which store holds the files.
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

/// A staged file untouched for this long belongs to an upload that died with its process
/// (an upload that is alive writes to it, or has already published it).
pub const STALE_STAGING: std::time::Duration = std::time::Duration::from_secs(3600);

#[async_trait]
pub trait DatasetStore: Send + Sync {
    /// Creates an empty staging file and returns its path.
    async fn stage(&self) -> std::io::Result<PathBuf>;
    /// Moves a staged file to `key`, making it visible.
    async fn publish(&self, staged: &Path, key: &str) -> std::io::Result<()>;
    /// Removes the file under `key`; a missing file is not an error.
    async fn remove(&self, key: &str) -> std::io::Result<()>;
    /// Removes a staged file; a missing file is not an error.
    async fn discard(&self, staged: &Path) -> std::io::Result<()>;
    /// Whether a file exists under `key`.
    async fn exists(&self, key: &str) -> std::io::Result<bool>;
    /// Whether the store answers (readiness).
    async fn ready(&self) -> bool;
}

/// Files in a local folder (`IOPS_DATA_DIR/datasets`), staged in its `.staging` subfolder
/// so that the final rename never crosses a filesystem.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Opens (creating if needed) the store under `root`, and clears staging leftovers
    /// of a run that died mid-upload. Only files older than [`STALE_STAGING`] go: another
    /// process sharing the folder may be writing the younger ones right now.
    pub async fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        tokio::fs::create_dir_all(root.join(".staging")).await?;
        let store = Self { root };
        store.clear_staging().await?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn staging_dir(&self) -> PathBuf {
        self.root.join(".staging")
    }

    /// Resolves a key under the root, refusing anything that could escape it.
    fn path_of(&self, key: &str) -> std::io::Result<PathBuf> {
        let relative = Path::new(key);
        let safe = !key.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "storage key must be a relative path",
            ));
        }
        Ok(self.root.join(relative))
    }

    async fn clear_staging(&self) -> std::io::Result<()> {
        let mut entries = tokio::fs::read_dir(self.staging_dir()).await?;
        while let Some(entry) = entries.next_entry().await? {
            let stale = entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .map(|modified| modified.elapsed().unwrap_or_default() > STALE_STAGING)
                .unwrap_or(false);
            if stale {
                ignore_missing(tokio::fs::remove_file(entry.path()).await)?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl DatasetStore for LocalStore {
    async fn stage(&self) -> std::io::Result<PathBuf> {
        let path = self
            .staging_dir()
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let mut file = tokio::fs::File::create(&path).await?;
        file.flush().await?;
        Ok(path)
    }

    async fn publish(&self, staged: &Path, key: &str) -> std::io::Result<()> {
        let target = self.path_of(key)?;
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(staged, target).await
    }

    async fn remove(&self, key: &str) -> std::io::Result<()> {
        ignore_missing(tokio::fs::remove_file(self.path_of(key)?).await)
    }

    async fn discard(&self, staged: &Path) -> std::io::Result<()> {
        ignore_missing(tokio::fs::remove_file(staged).await)
    }

    async fn exists(&self, key: &str) -> std::io::Result<bool> {
        tokio::fs::try_exists(self.path_of(key)?).await
    }

    async fn ready(&self) -> bool {
        tokio::fs::metadata(&self.root).await.is_ok()
    }
}

fn ignore_missing(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
