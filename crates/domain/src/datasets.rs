//! Datasets: upload (parse while storing), read, rename, delete.
//!
//! An upload goes: body streamed into a staging file (size-capped) and, chunk by chunk as
//! it arrives, into the parser on a blocking thread, its start to the query engine for its
//! columns → file published under its key
//! (streamed to the store) → one write transaction that counts it against the tier limit,
//! inserts the row and commits. Any failure on the way leaves no file, no row and no
//! count. The steps after the body has been received run on a task of their own, so a
//! client that disconnects mid-way cannot leave them half done.
//!
//! Every query carries `user_id = caller` in its WHERE clause: another user's dataset is
//! indistinguishable from a missing one ([`Error::NotFound`]).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use entity::{analyses, datasets};
use futures_util::Stream;
use futures_util::StreamExt;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use std::io::{IoSlice, Write};
use tokio::io::AsyncRead;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};

use sea_orm::sea_query::Query;

use crate::DataColumn;
use crate::access::{Actor, Role, analyses_reachable};
use crate::activity::{self, Entry};
use crate::db::begin_write;
use crate::pagination::{Page, PageRequest, page_from};
use crate::query::{DATA_ALIAS, MAX_PREVIEW_ROWS, QueryFailure, QueryOutput, StructuredQuery};
use crate::storage::DatasetStore;
use crate::{Context, Dataset, Error, Id, LimitKind, Result, usage};

pub(crate) mod columnar;
pub(crate) mod columns;
pub(crate) mod parse;

use parse::{Format, Shape};

/// Bytes of an upload handed to the parser's thread at once (a batch of the pieces
/// received). Each batch costs that thread a wake-up (a futex and, when its core sleeps,
/// an interrupt to wake it) and a `writev`: 256 KiB batches uploaded NDJSON ~30 % faster
/// than 64 KiB ones at the median, with less CPU per upload (docs/performance.md).
const CHUNK: usize = 256 * 1024;
/// Batches received but not yet parsed, at most: the parser keeps up with the network, so
/// this only absorbs jitter, and bounds the memory of an upload to a few MiB (NDJSON adds
/// the few blocks of lines its two parsing threads hold).
const PARSE_QUEUE: usize = 8;

/// What a caller knows about an upload besides its bytes, before the bytes.
#[derive(Clone, Debug, Default)]
pub struct NewDataset {
    /// Display name; defaults to `file_name`.
    pub name: Option<String>,
    /// The uploaded file's name, extension included (it decides the format).
    pub file_name: String,
    /// The upload's `Content-Type`, used when the extension says nothing.
    pub content_type: Option<String>,
}

/// What follows the file in an upload whose parts come in any order: `Ok(Some(name))` for
/// a name given after the file, `Ok(None)` for none, or the reason the rest of the upload
/// is refused (the upload then stores nothing). See [`Datasets::upload_with_rest`].
pub type UploadPart = Result<Option<String>>;

/// Datasets of a user: upload, read, rename, delete.
#[derive(Clone)]
pub struct Datasets {
    ctx: Context,
}

impl Datasets {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// Refuses, before any byte is read, an upload whose file is known to be at least
    /// `file_bytes` long and larger than `settings.max_upload_bytes` (a declared length).
    /// The same limit is enforced again on the bytes as they arrive.
    pub fn check_declared_size(&self, file_bytes: u64) -> Result<()> {
        let max_bytes = self.ctx.settings.max_upload_bytes;
        if file_bytes > max_bytes {
            return Err(Error::PayloadTooLarge { max_bytes });
        }
        Ok(())
    }

    /// Stores `body` as a new dataset of `user_id` and returns it.
    ///
    /// Errors: [`Error::Validation`] for an unsupported type, a bad name or a file that
    /// does not parse; [`Error::PayloadTooLarge`] past `settings.max_upload_bytes`;
    /// [`Error::LimitExceeded`] when the month's datasets are used up; [`Error::NotFound`]
    /// for an unknown user. In every error case nothing is stored and nothing counted.
    pub async fn upload<R>(
        &self,
        actor: impl Into<Actor>,
        meta: NewDataset,
        body: R,
    ) -> Result<Dataset>
    where
        R: AsyncRead + Unpin + Send,
    {
        let pieces = ReaderStream::with_capacity(body, CHUNK);
        self.upload_with_rest(actor, meta, pieces, std::future::ready(Ok(None)))
            .await
    }

    /// [`Datasets::upload`] for a form whose name may come after the file, and whose file
    /// arrives as `body`, the pieces a server received (stored and parsed where they lie,
    /// not copied). `rest` resolves once the rest of the form has been read, to a late
    /// name (used when `meta.name` is `None`) or to a refusal. The name rule and the size
    /// limit are checked here, and the upload commits once, under its final name, only
    /// when both the file and `rest` are good; the file's bytes are received while `rest`
    /// is still pending.
    pub async fn upload_with_rest<S, F>(
        &self,
        actor: impl Into<Actor>,
        meta: NewDataset,
        body: S,
        rest: F,
    ) -> Result<Dataset>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
        F: std::future::Future<Output = UploadPart>,
    {
        self.receive_and_store(actor.into(), meta, body, rest, None)
            .await
    }

    /// An upload whose bytes come from a data connection's import: `rest` is the import
    /// itself (its failure explains a broken body), and the dataset records
    /// `connection_id`. Otherwise exactly an upload: staged, size-limited, counted.
    pub(crate) async fn upload_imported<S, F>(
        &self,
        actor: Actor,
        meta: NewDataset,
        body: S,
        rest: F,
        connection_id: Id,
    ) -> Result<Dataset>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
        F: std::future::Future<Output = UploadPart>,
    {
        self.receive_and_store(actor, meta, body, rest, Some(connection_id))
            .await
    }

    async fn receive_and_store<S, F>(
        &self,
        actor: Actor,
        meta: NewDataset,
        body: S,
        rest: F,
        connection_id: Option<Id>,
    ) -> Result<Dataset>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
        F: std::future::Future<Output = UploadPart>,
    {
        // Everything that can be refused without the bytes is refused before reading them.
        let format = Format::detect(&meta.file_name, meta.content_type.as_deref())?;
        let early_name = meta.name.map(validate_name).transpose()?;

        let store = self.ctx.store()?.clone();
        let staged = store.stage().await?;
        let guard = StagedGuard::new(store, staged.clone());
        let max_bytes = self.ctx.settings.max_upload_bytes;
        let mut columns = columns::EarlyColumns::new(&self.ctx, format);
        let (received, rest) = tokio::join!(
            receive(&staged, body, max_bytes, format, &mut columns),
            rest
        );
        // The rest's refusal explains a read error the receiver saw (it was told to stop).
        let outcome = match (received, rest) {
            (Err(Error::Storage(_)), Err(refused)) => Err(refused),
            (Err(e), _) => Err(e),
            (Ok(_), Err(refused)) => Err(refused),
            (Ok(received), Ok(late)) => {
                let name = match early_name {
                    Some(name) => Ok(name),
                    None => validate_name(late.unwrap_or(meta.file_name)),
                };
                name.map(|name| (received, name))
            }
        };
        let ((size, shape), name) = match outcome {
            Ok(accepted) => accepted,
            Err(err) => {
                guard.discard().await;
                return Err(err);
            }
        };
        let columns = columns.finish().await;
        // From here on the staged file belongs to the spawned task, which discards it on
        // every path, and which runs to completion even if this future is dropped.
        guard.disarm();
        let upload = Staged {
            path: staged,
            size,
            format,
            shape,
            columns,
            connection_id,
        };
        tokio::spawn(finish_upload(self.ctx.clone(), actor, name, upload))
            .await
            .map_err(|e| Error::Internal(format!("dataset upload task failed: {e}")))?
    }

    /// The dataset `id`, if it is `user_id`'s or an analysis shared with them reads it
    /// (sharing an analysis shares read access to its dataset), with its columns.
    pub async fn get(&self, user_id: Id, id: Id) -> Result<Dataset> {
        let mut found = [Dataset::from(self.get_row(user_id, id).await?)];
        columns::fill(&self.ctx, &mut found).await?;
        let [dataset] = found;
        Ok(dataset)
    }

    /// The first `limit` rows of dataset `id` (readable as for [`Datasets::get`]) and their
    /// columns, read by the query engine: [`Error::QueryFailed`] when it cannot read the
    /// file.
    pub async fn preview(&self, user_id: Id, id: Id, limit: u32) -> Result<QueryOutput> {
        if !(1..=MAX_PREVIEW_ROWS).contains(&limit) {
            return Err(Error::validation(format!(
                "limit must be 1 to {MAX_PREVIEW_ROWS}"
            )));
        }
        // The original file, never its columnar copy: a preview shows the file's first
        // rows, in the file's order.
        let table = columns::readable_table(&self.ctx, user_id, id, DATA_ALIAS).await?;
        let query = crate::query::Query::Structured(StructuredQuery {
            limit: Some(limit),
            ..StructuredQuery::default()
        });
        Ok(self.ctx.engine()?.run(&query, &[table]).await?)
    }

    /// The row of [`Datasets::get`].
    pub(crate) async fn get_row(&self, user_id: Id, id: Id) -> Result<datasets::Model> {
        let shared = Query::select()
            .column(analyses::Column::DatasetId)
            .from(analyses::Entity)
            .and_where(analyses::Column::Id.in_subquery(analyses_reachable(user_id, Role::Viewer)))
            .and_where(analyses::Column::DatasetId.is_not_null())
            .to_owned();
        datasets::Entity::find()
            .filter(datasets::Column::Id.eq(id))
            .filter(
                sea_orm::Condition::any()
                    .add(datasets::Column::UserId.eq(user_id))
                    .add(datasets::Column::Id.in_subquery(shared)),
            )
            .one(&self.ctx.db)
            .await?
            .ok_or(Error::NotFound)
    }

    /// The caller's datasets, newest first.
    pub async fn list(&self, user_id: Id, page: &PageRequest) -> Result<Page<Dataset>> {
        let mut query = datasets::Entity::find().filter(datasets::Column::UserId.eq(user_id));
        if let Some(after) = &page.after {
            query =
                query.filter(after.older_than(datasets::Column::CreatedAt, datasets::Column::Id));
        }
        let rows = query
            .order_by_desc(datasets::Column::CreatedAt)
            .order_by_desc(datasets::Column::Id)
            .limit(page.limit + 1)
            .all(&self.ctx.db)
            .await?;
        let mut page = page_from(rows, page.limit, |d| (d.created_at, d.id)).map(Dataset::from);
        columns::fill(&self.ctx, &mut page.items).await?;
        Ok(page)
    }

    /// Renames the dataset and bumps `updated_at`, in one `UPDATE ... RETURNING` scoped to
    /// the owner.
    pub async fn rename(&self, actor: impl Into<Actor>, id: Id, name: String) -> Result<Dataset> {
        let actor = actor.into();
        let name = validate_name(name)?;
        let now = self.ctx.clock.now_naive();
        let change = datasets::ActiveModel {
            id: NotSet,
            user_id: NotSet,
            name: Set(name),
            file_path: NotSet,
            connection_id: NotSet,
            row_count: NotSet,
            column_count: NotSet,
            size_bytes: NotSet,
            created_at: NotSet,
            updated_at: Set(now),
        };
        let txn = begin_write(&self.ctx.db).await?;
        let row = datasets::Entity::update_many()
            .set(change)
            .filter(datasets::Column::Id.eq(id))
            .filter(datasets::Column::UserId.eq(actor.user_id))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next();
        let Some(row) = row else {
            return Err(self.refusal(actor.user_id, id).await);
        };
        log(&txn, &actor, now, &row, "dataset.updated").await?;
        txn.commit().await?;
        self.ctx.report_pages_changed();
        let mut renamed = [Dataset::from(row)];
        columns::fill(&self.ctx, &mut renamed).await?;
        let [dataset] = renamed;
        Ok(dataset)
    }

    /// Deletes the dataset, then its file. Its analyses stay, with `dataset_id` NULL (the
    /// schema's `ON DELETE SET NULL`). The month's count is not given back. When this
    /// returns `Ok`, the file is gone.
    pub async fn delete(&self, actor: impl Into<Actor>, id: Id) -> Result<()> {
        let actor = actor.into();
        let user_id = actor.user_id;
        // Own task: once the row is gone, its file must go too, even if the caller leaves.
        let deleted = tokio::spawn(delete_dataset(self.ctx.clone(), actor, id))
            .await
            .map_err(|e| Error::Internal(format!("dataset delete task failed: {e}")))?;
        match deleted {
            Err(Error::NotFound) => Err(self.refusal(user_id, id).await),
            other => other,
        }
    }

    /// Why a change to dataset `id` matched nothing: someone who can read it through a
    /// shared analysis is refused ([`Error::Forbidden`]: only its owner changes it); anyone
    /// else is told it does not exist.
    async fn refusal(&self, user_id: Id, id: Id) -> Error {
        match self.get(user_id, id).await {
            Ok(_) => Error::Forbidden(crate::access::NOT_YOUR_ROLE),
            Err(Error::NotFound) => Error::NotFound,
            Err(other) => other,
        }
    }
}

async fn delete_dataset(ctx: Context, actor: Actor, id: Id) -> Result<()> {
    let user_id = actor.user_id;
    // `file_path` is read first and not taken from `DELETE ... RETURNING`: sea-orm's
    // delete-returning skips the id columns' text cast, which PostgreSQL's `uuid` needs.
    // A dataset's file_path never changes, so the read cannot go stale.
    let dataset = datasets::Entity::find()
        .filter(datasets::Column::Id.eq(id))
        .filter(datasets::Column::UserId.eq(user_id))
        .one(&ctx.db)
        .await?
        .ok_or(Error::NotFound)?;
    // The row is deleted first: a failure after it leaves a stray file (harmless), never
    // a dataset whose file is missing.
    let now = ctx.clock.now_naive();
    let txn = begin_write(&ctx.db).await?;
    let deleted = datasets::Entity::delete_many()
        .filter(datasets::Column::Id.eq(id))
        .filter(datasets::Column::UserId.eq(user_id))
        .exec(&txn)
        .await?;
    if deleted.rows_affected == 0 {
        // A concurrent delete won; it removes the file.
        return Err(Error::NotFound);
    }
    log(&txn, &actor, now, &dataset, "dataset.deleted").await?;
    txn.commit().await?;
    ctx.report_pages_changed();
    if let Some(key) = dataset.file_path {
        match columnar::remove_files(ctx.store()?.as_ref(), &key).await {
            Ok(()) => {}
            // Not a key of this store (a machine path from another era): nothing here to
            // remove, and the row is already gone.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                tracing::warn!(dataset_id = %id, error = %e, "dataset file_path is not a store key");
            }
            Err(e) => return Err(Error::Storage(e)),
        }
    }
    Ok(())
}

fn validate_name(name: String) -> Result<String> {
    crate::text::validate_name(name, false)
}

/// Streams `body` into the staged file at `path` and, at the same time, through the
/// parser of `format` on a blocking thread and into `columns`, so that parsing and reading
/// the columns cost no time of their own after the last byte. Returns the size and the
/// shape; refuses to write a byte past `max_bytes`.
///
/// The body's pieces go on as they are (no copy), in batches of [`CHUNK`] bytes or so: the
/// parser's thread writes each batch to the file with one `writev`, just before parsing
/// it. A batch then crosses threads once and is copied once more (by the kernel), where
/// writing it from this task took a copy into tokio's file buffer and a hop to its
/// blocking pool per chunk (a tenth of the server's CPU during uploads), and gathering
/// the pieces into chunks took a copy of the whole file (docs/performance.md).
///
/// A file that fails to parse is refused only once the body has been read to its end (and
/// no more of it written): the client gets its answer on an intact HTTP exchange, and a
/// body over the size limit is still "too large" first, as it would be without the parse.
async fn receive<S>(
    path: &Path,
    body: S,
    max_bytes: u64,
    format: Format,
    columns: &mut columns::EarlyColumns,
) -> Result<(u64, Shape)>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
{
    // The staged file is new and empty: it is opened without truncating it, because ext4
    // flushes a truncated file at its close (`auto_da_alloc`), and every fsync on the same
    // file system (PostgreSQL's next commit, this upload's own) then waited for the whole
    // file to reach the disk: 10-20 ms for 50 MB (docs/performance.md).
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .await?
        .into_std()
        .await;
    let (batches, queue) = tokio::sync::mpsc::channel::<Vec<Bytes>>(PARSE_QUEUE);
    // The parser reads the queue on its own thread, NDJSON piece by piece (its lines are
    // parsed where the pieces lie), the other formats as a blocking `BufRead`; the end of
    // the queue (every sender dropped) is the end of the file. Whatever the parser leaves
    // unread (nothing, for a well-formed file) is still part of the file.
    let parser = tokio::task::spawn_blocking(move || {
        // A batch written, as its pieces (or the write's error, where the parser reads).
        let mut written = move |batch: Vec<Bytes>| match write_batch(&mut file, &batch) {
            Ok(()) => batch.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        if format == Format::Ndjson {
            let mut queue = queue;
            let mut pieces = std::iter::from_fn(|| queue.blocking_recv()).flat_map(&mut written);
            let shape = parse::ndjson_shape(&mut pieces)?;
            pieces.try_for_each(|piece| piece.map(drop))?;
            return Ok(shape);
        }
        let pieces = ReceiverStream::new(queue)
            .flat_map(move |batch| futures_util::stream::iter(written(batch)));
        let mut reader = SyncIoBridge::new(StreamReader::new(pieces));
        let shape = parse::shape_of(format, &mut reader)?;
        std::io::copy(&mut reader, &mut std::io::sink())?;
        Ok::<_, Error>(shape)
    });
    // `None` once the parser has stopped (it failed; its error is the answer).
    let mut batches = Some(batches);
    let mut body = body.fuse();
    let mut size: u64 = 0;
    loop {
        let batch = next_batch(&mut body).await?;
        if batch.is_empty() {
            break;
        }
        size += batch.iter().map(|piece| piece.len() as u64).sum::<u64>();
        if size > max_bytes {
            return Err(Error::PayloadTooLarge { max_bytes });
        }
        let Some(sender) = &batches else {
            continue;
        };
        batch.iter().for_each(|piece| columns.feed(piece));
        if sender.send(batch).await.is_err() {
            batches = None;
        }
    }
    // The end of the queue is the end of the file for the parser.
    drop(batches);
    let shape = parser
        .await
        .map_err(|e| Error::Internal(format!("dataset parser failed: {e}")))??;
    Ok((size, shape))
}

/// The body's next pieces, [`CHUNK`] bytes of them or a little more (fewer at its end;
/// none after it). A body arrives in network-sized pieces (a few KiB): handing the parser
/// and the file whole batches instead costs a fraction of the thread wake-ups and system
/// calls.
async fn next_batch<S>(body: &mut S) -> std::io::Result<Vec<Bytes>>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    let (mut batch, mut len) = (Vec::new(), 0);
    while len < CHUNK {
        let Some(piece) = body.next().await.transpose()? else {
            break;
        };
        if !piece.is_empty() {
            len += piece.len();
            batch.push(piece);
        }
    }
    Ok(batch)
}

/// Writes all of `batch` to `file`, as few `writev` calls as it takes
/// (`Write::write_all_vectored` is not stable yet).
fn write_batch(file: &mut std::fs::File, batch: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice> = batch.iter().map(|piece| IoSlice::new(piece)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A received upload waiting in staging.
struct Staged {
    path: PathBuf,
    size: u64,
    format: Format,
    shape: Shape,
    /// What the engine read of its columns (`None` without an engine).
    columns: Option<std::result::Result<Vec<DataColumn>, QueryFailure>>,
    /// The data connection an import came through.
    connection_id: Option<Id>,
}

/// Parses, counts, inserts and publishes a received upload; the staged file is gone
/// afterwards whatever the outcome.
async fn finish_upload(
    ctx: Context,
    actor: Actor,
    name: String,
    upload: Staged,
) -> Result<Dataset> {
    let result = store_upload(&ctx, &actor, name, &upload).await;
    // After a success the file has moved to its key and this finds nothing to remove.
    let Ok(store) = ctx.store() else {
        return result;
    };
    if let Err(e) = store.discard(&upload.path).await {
        tracing::warn!(error = %e, "discarding a staged upload failed");
    }
    result
}

async fn store_upload(
    ctx: &Context,
    actor: &Actor,
    name: String,
    upload: &Staged,
) -> Result<Dataset> {
    let user_id = actor.user_id;
    let shape = upload.shape;
    let row_count = i32::try_from(shape.rows)
        .map_err(|_| Error::validation("too many rows for one dataset"))?;
    let column_count = i32::try_from(shape.columns)
        .map_err(|_| Error::validation("too many columns for one dataset"))?;
    let size_bytes = i64::try_from(upload.size).map_err(|_| Error::PayloadTooLarge {
        max_bytes: ctx.settings.max_upload_bytes,
    })?;

    let now = ctx.clock.now();
    let stamp = stored_instant(now);
    let id = Id(uuid::Uuid::new_v4());
    let key = format!("{user_id}/{id}.{}", upload.format.extension());
    let model = datasets::Model {
        id,
        user_id,
        name,
        file_path: Some(key.clone()),
        connection_id: upload.connection_id,
        row_count: Some(row_count),
        column_count: Some(column_count),
        size_bytes: Some(size_bytes),
        created_at: stamp,
        updated_at: stamp,
    };

    // Published before the transaction, so a committed row always has its file, and no
    // transaction (nor its connection, nor SQLite's write lock) waits on a network upload.
    // Any failure from here on takes the file back; a crash leaves it unreferenced, for
    // `Store::collect_garbage`.
    let store = ctx.store()?;
    store.publish(&upload.path, &key).await?;
    // A file the engine could not read is still stored (its columns are then read again
    // from the file when it is shown).
    let found = upload
        .columns
        .clone()
        .and_then(|read| columns::noted(ctx, id, read));
    let table = columns::table_of(Some(&key), DATA_ALIAS);
    if let Err(err) = insert_counted(ctx, actor, now, &model, found.as_deref()).await {
        if let Err(e) = store.remove(&key).await {
            tracing::warn!(error = %e, key, "removing the file of a failed upload failed");
        }
        return Err(err);
    }
    // Only once the row is there: a copy is for a dataset, never for a refused upload.
    if let Some(table) = &table {
        columnar::write_later(ctx, table, model.size_bytes);
    }
    let props = serde_json::json!({"format": upload.format.extension(), "rows": row_count, "columns": column_count, "size_bytes": size_bytes});
    ctx.record_event("dataset.uploaded", user_id, props).await;
    let mut dataset = Dataset::from(model);
    dataset.columns = found;
    Ok(dataset)
}

/// Counts the upload against the month and inserts its row, in one write transaction.
async fn insert_counted(
    ctx: &Context,
    actor: &Actor,
    now: DateTime<Utc>,
    model: &datasets::Model,
    found: Option<&[DataColumn]>,
) -> Result<()> {
    let stamp = model.created_at;
    let txn = begin_write(&ctx.db).await?;
    // Counted in the same transaction as the insert: both commit, or neither does.
    usage::consume(&txn, now, model.user_id, LimitKind::Datasets).await?;
    datasets::Entity::insert(datasets::ActiveModel {
        id: Set(model.id),
        user_id: Set(model.user_id),
        name: Set(model.name.clone()),
        file_path: Set(model.file_path.clone()),
        connection_id: Set(model.connection_id),
        row_count: Set(model.row_count),
        column_count: Set(model.column_count),
        size_bytes: Set(model.size_bytes),
        created_at: Set(stamp),
        updated_at: Set(stamp),
    })
    .exec_without_returning(&txn)
    .await?;
    if let Some(found) = found {
        columns::keep(&txn, model.id, found, stamp).await?;
    }
    log(&txn, actor, stamp, model, "dataset.created").await?;
    txn.commit().await?;
    Ok(())
}

/// The dataset's activity row, in the transaction of its change.
async fn log<C: sea_orm::ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    now: NaiveDateTime,
    dataset: &datasets::Model,
    verb: &'static str,
) -> Result<()> {
    activity::record(
        conn,
        actor,
        now,
        Entry {
            owner_id: dataset.user_id,
            analysis_id: None,
            verb,
            object_type: "dataset",
            object_id: dataset.id,
            metadata: serde_json::json!({ "name": dataset.name }),
        },
    )
    .await
}

/// `now` as the database keeps it: naive UTC at microsecond precision, so the returned
/// model equals the stored row.
fn stored_instant(now: DateTime<Utc>) -> NaiveDateTime {
    DateTime::from_timestamp_micros(now.timestamp_micros())
        .map_or_else(|| now.naive_utc(), |t| t.naive_utc())
}

/// Removes a staged file if the upload future is dropped while receiving the body (a
/// client that disconnects); the normal paths discard or hand over explicitly.
struct StagedGuard {
    store: Arc<dyn DatasetStore>,
    path: Option<PathBuf>,
}

impl StagedGuard {
    fn new(store: Arc<dyn DatasetStore>, path: PathBuf) -> Self {
        Self {
            store,
            path: Some(path),
        }
    }

    fn disarm(mut self) {
        self.path = None;
    }

    async fn discard(mut self) {
        if let Some(path) = self.path.take()
            && let Err(e) = self.store.discard(&path).await
        {
            tracing::warn!(error = %e, "discarding a staged upload failed");
        }
    }
}

impl Drop for StagedGuard {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else {
            return;
        };
        // Without a runtime (shutdown) the file stays: staging is cleared when the store
        // next opens.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            runtime.spawn(async move {
                if let Err(e) = store.discard(&path).await {
                    tracing::warn!(error = %e, "discarding an abandoned upload failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_is_stored() {
        assert_eq!(validate_name("sales.csv".into()).unwrap(), "sales.csv");
        for bad in ["", "   ", "a\0b"] {
            assert!(
                matches!(validate_name(bad.into()), Err(Error::Validation(_))),
                "{bad:?}"
            );
        }
        assert!(validate_name("é".repeat(crate::MAX_NAME_CHARS)).is_ok());
        assert!(validate_name("é".repeat(crate::MAX_NAME_CHARS + 1)).is_err());
    }
}
