//! Columnar copies of dataset files: written by the query engine after an upload (and
//! again whenever a run finds one missing), published next to the original under
//! [`columnar_key`], and read by runs instead of the original. The original stays as it was
//! uploaded and remains the truth: a copy is derived data, counted toward no limit,
//! removed with its dataset and collected as garbage with it.
use std::collections::HashSet;
use std::sync::Mutex;

use entity::datasets;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::query::TableSource;
use crate::storage::{DatasetStore, columnar_key};
use crate::{Context, Error, Result};

/// The copies this process is writing, and those it could not write (a file the engine
/// cannot read whole: trying again on every run would only repeat the failure; a restart
/// tries again).
#[derive(Debug, Default)]
pub(crate) struct Copies {
    state: Mutex<CopyState>,
}

#[derive(Debug, Default)]
struct CopyState {
    writing: HashSet<String>,
    failed: HashSet<String>,
}

impl Copies {
    /// Whether this process should start writing the copy of `key` now (and, if so,
    /// marks it as being written).
    fn claim(&self, key: &str) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if state.writing.contains(key) || state.failed.contains(key) {
            return false;
        }
        state.writing.insert(key.to_owned())
    }

    fn settle(&self, key: &str, written: bool) {
        if let Ok(mut state) = self.state.lock() {
            state.writing.remove(key);
            if !written {
                state.failed.insert(key.to_owned());
            }
        }
    }
}

/// Whether a file of `size_bytes` is worth a copy under the settings.
fn wanted(ctx: &Context, size_bytes: Option<i64>) -> bool {
    match (ctx.settings.columnar_min_bytes, size_bytes) {
        (Some(min), Some(size)) => u64::try_from(size).is_ok_and(|size| size >= min),
        _ => false,
    }
}

/// Points `table` at its file's columnar copy when there is one; when there should be one
/// and is not (never written, or lost), starts writing it and leaves `table` on the
/// original, which this run reads.
pub(crate) async fn attach(ctx: &Context, table: &mut TableSource, size_bytes: Option<i64>) {
    if !wanted(ctx, size_bytes) {
        return;
    }
    let Ok(store) = ctx.store() else {
        return;
    };
    let key = columnar_key(&table.key);
    match store.exists(&key).await {
        Ok(true) => table.columnar = Some(key),
        Ok(false) => write_later(ctx, table, size_bytes),
        // The original is read instead; the run itself reports a store that does not
        // answer.
        Err(e) => tracing::warn!(error = %e, "looking for a columnar copy failed"),
    }
}

/// Starts writing the columnar copy of `table`'s file in the background, when it is
/// worth one and this process is not already at it. Returns at once.
pub(crate) fn write_later(ctx: &Context, table: &TableSource, size_bytes: Option<i64>) {
    if !wanted(ctx, size_bytes) || ctx.engine.is_none() || ctx.store.is_none() {
        return;
    }
    if !ctx.copies.claim(&table.key) {
        return;
    }
    let ctx = ctx.clone();
    let table = TableSource {
        columnar: None,
        ..table.clone()
    };
    tokio::spawn(async move {
        let written = write(&ctx, &table).await;
        if let Err(e) = &written {
            tracing::warn!(error = %e, "writing a columnar copy failed; runs read the original");
        }
        ctx.copies.settle(&table.key, written.is_ok());
    });
}

/// Writes the copy into a staged file (swept like a partial upload if this process dies)
/// and publishes it, complete, under its key.
async fn write(ctx: &Context, table: &TableSource) -> Result<()> {
    let store = ctx.store()?;
    let staged = store.stage().await?;
    let key = columnar_key(&table.key);
    let written = match ctx.engine()?.write_columnar(table, &staged).await {
        Ok(()) => store.publish(&staged, &key).await.map_err(Error::Storage),
        Err(failure) => Err(failure.into()),
    };
    if let Err(e) = store.discard(&staged).await {
        tracing::warn!(error = %e, "discarding a staged columnar copy failed");
    }
    written?;
    // The dataset may have been deleted while its copy was written: its deletion removed
    // no copy then, so this one goes now rather than wait for the garbage collection.
    let still_there = datasets::Entity::find()
        .filter(datasets::Column::FilePath.eq(table.key.as_str()))
        .count(&ctx.db)
        .await?;
    if still_there == 0 {
        store.remove(&key).await?;
    }
    Ok(())
}

/// Removes a dataset's file and its columnar copy (a missing one is not an error). The
/// original goes first: a failure after it leaves only a copy without its original, which
/// the garbage collection removes.
pub(crate) async fn remove_files(store: &dyn DatasetStore, key: &str) -> std::io::Result<()> {
    store.remove(key).await?;
    store.remove(&columnar_key(key)).await
}
