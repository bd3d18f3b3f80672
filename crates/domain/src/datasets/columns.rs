//! A dataset's columns as queries see them: read by the query engine from the file, kept
//! in `dataset_columns` (written with the upload, or the first time an older dataset is
//! shown), and a dataset's file as a table a query may name.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::NaiveDateTime;
use entity::{dataset_columns, datasets};
use futures_util::StreamExt;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::parse::is_blank_ndjson_line;
use crate::query::{
    COLUMNS_SAMPLE_BYTES, COLUMNS_SAMPLE_RECORDS, FailureReason, QueryEngine, QueryFailure,
    TableSource,
};
use crate::{Context, DataColumn, Dataset, Format, Id, Result};

/// Files read at once when datasets shown together have columns not kept yet.
const READS_AT_ONCE: usize = 4;
/// How long the columns of a file the engine could not read are not asked for again:
/// every list would otherwise read it anew, and the answer changes only if the store
/// was down.
const UNREADABLE_FOR: Duration = Duration::from_secs(300);

/// Datasets whose columns could not be read lately, and when.
#[derive(Debug, Default)]
pub(crate) struct Unreadable(Mutex<HashMap<Id, Instant>>);

impl Unreadable {
    fn lately(&self, id: Id) -> bool {
        self.0
            .lock()
            .is_ok_and(|seen| seen.get(&id).is_some_and(|t| t.elapsed() < UNREADABLE_FOR))
    }

    fn note(&self, id: Id) {
        if let Ok(mut seen) = self.0.lock() {
            seen.retain(|_, t| t.elapsed() < UNREADABLE_FOR);
            seen.insert(id, Instant::now());
        }
    }
}

/// The file of `dataset` as the table `alias`, or `None` for a dataset without a file in
/// the store (rows of other origins).
pub(crate) fn table_of(file_path: Option<&str>, alias: &str) -> Option<TableSource> {
    let key = file_path?;
    let format = Format::detect(key, None).ok()?;
    Some(TableSource {
        alias: alias.to_owned(),
        key: key.to_owned(),
        format,
        columnar: None,
    })
}

/// The columns of the file under `table`, by the engine; `None` (logged) when there is no
/// engine or it cannot read the file: columns are shown when known, never invented.
pub(crate) async fn read(
    ctx: &Context,
    dataset_id: Id,
    table: &TableSource,
) -> Option<Vec<DataColumn>> {
    let engine = ctx.engine.as_ref()?;
    noted(ctx, dataset_id, engine.columns(table).await)
}

/// The columns the engine read for `dataset_id`, or `None` after noting and logging why it
/// could not.
pub(crate) fn noted(
    ctx: &Context,
    dataset_id: Id,
    read: std::result::Result<Vec<DataColumn>, QueryFailure>,
) -> Option<Vec<DataColumn>> {
    match read {
        Ok(columns) => Some(columns),
        Err(failure) => {
            ctx.unreadable.note(dataset_id);
            tracing::warn!(%dataset_id, reason = failure.reason.as_str(), error = %failure.message, "reading a dataset's columns failed");
            None
        }
    }
}

/// An upload's columns, read by the engine from the upload's first bytes while the rest of
/// it arrives: a file's columns depend only on its first [`COLUMNS_SAMPLE_BYTES`], so the
/// answer is the one the stored file gives, and it no longer costs a read of the file, in
/// line, after the last byte (docs/performance.md).
///
/// It holds the chunks of the start (shared with the file and the parser, not copied) until
/// there are more than [`COLUMNS_SAMPLE_BYTES`] of them or the body ends, then hands one
/// copy of those bytes to the engine: an upload holds at most that much more, as the read
/// after the last byte did. An NDJSON start is handed over as soon as it holds
/// [`COLUMNS_SAMPLE_RECORDS`] whole records (non-blank lines), all the inference reads:
/// the same answer, from a fraction of the bytes. Dropped early (a refused upload), it
/// stops the engine's work.
pub(crate) struct EarlyColumns {
    engine: Option<Arc<dyn QueryEngine>>,
    format: Format,
    start: Vec<Bytes>,
    held: usize,
    /// NDJSON: the records (non-blank lines) ended so far in `start`.
    records: usize,
    /// NDJSON: whether the line not ended yet has shown more than whitespace.
    in_record: bool,
    reading: Option<ColumnsTask>,
}

type ColumnsTask = tokio::task::JoinHandle<std::result::Result<Vec<DataColumn>, QueryFailure>>;

impl EarlyColumns {
    /// Columns of an upload in `format`; without an engine it reads none.
    pub(crate) fn new(ctx: &Context, format: Format) -> Self {
        Self {
            engine: ctx.engine.clone(),
            format,
            start: Vec::new(),
            held: 0,
            records: 0,
            in_record: false,
            reading: None,
        }
    }

    /// The upload's next chunk; the reading starts once the start is complete.
    pub(crate) fn feed(&mut self, chunk: &Bytes) {
        if self.engine.is_none() || self.reading.is_some() {
            return;
        }
        self.start.push(chunk.clone());
        self.held += chunk.len();
        // More than the sample, or (NDJSON) every record the inference reads: the reading
        // is told the file may go on, so it drops a last record that may be cut.
        if self.held > COLUMNS_SAMPLE_BYTES
            || (self.format == Format::Ndjson
                && self.records_after(chunk) >= COLUMNS_SAMPLE_RECORDS)
        {
            self.begin(false);
        }
    }

    /// Counts the NDJSON records `chunk` ends; the records ended so far.
    fn records_after(&mut self, chunk: &[u8]) -> usize {
        let mut from = 0;
        for end in memchr::memchr_iter(b'\n', chunk) {
            if self.in_record || !is_blank_ndjson_line(&chunk[from..end]) {
                self.records += 1;
            }
            self.in_record = false;
            from = end + 1;
        }
        if !is_blank_ndjson_line(&chunk[from..]) {
            self.in_record = true;
        }
        self.records
    }

    fn begin(&mut self, whole: bool) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        let mut start = Vec::with_capacity(self.held.min(COLUMNS_SAMPLE_BYTES));
        for chunk in self.start.drain(..) {
            let room = COLUMNS_SAMPLE_BYTES - start.len();
            start.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        let format = self.format;
        self.reading = Some(tokio::spawn(async move {
            engine
                .columns_of_start(format, Bytes::from(start), whole)
                .await
        }));
    }

    /// The columns, once the body has ended (`None` without an engine).
    pub(crate) async fn finish(
        mut self,
    ) -> Option<std::result::Result<Vec<DataColumn>, QueryFailure>> {
        if self.reading.is_none() {
            self.begin(true);
        }
        let reading = self.reading.take()?;
        Some(reading.await.unwrap_or_else(|e| {
            Err(QueryFailure::new(
                FailureReason::Data,
                format!("reading the columns failed: {e}"),
            ))
        }))
    }
}

impl Drop for EarlyColumns {
    fn drop(&mut self) {
        if let Some(reading) = &self.reading {
            reading.abort();
        }
    }
}

/// Keeps `columns` as the dataset's (a row already there wins: the file never changes).
pub(crate) async fn keep<C: ConnectionTrait>(
    conn: &C,
    dataset_id: Id,
    columns: &[DataColumn],
    now: NaiveDateTime,
) -> Result<()> {
    let json = serde_json::to_value(columns)
        .map_err(|e| crate::Error::Internal(format!("serializing columns: {e}")))?;
    let insert = dataset_columns::Entity::insert(dataset_columns::ActiveModel {
        dataset_id: Set(dataset_id),
        columns: Set(json),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(dataset_columns::Column::DatasetId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await;
    match insert {
        // The dataset went meanwhile: nothing to keep columns for.
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
            ) =>
        {
            Ok(())
        }
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// Fills in the columns of `datasets`: those kept are loaded in one query, the others read
/// from their files (a few at once) and kept; a file that could not be read lately is not
/// read again yet.
pub(crate) async fn fill(ctx: &Context, datasets: &mut [Dataset]) -> Result<()> {
    if datasets.is_empty() {
        return Ok(());
    }
    let ids: Vec<Id> = datasets.iter().map(|d| d.id).collect();
    let kept: HashMap<Id, Vec<DataColumn>> = dataset_columns::Entity::find()
        .filter(dataset_columns::Column::DatasetId.is_in(ids))
        .all(&ctx.db)
        .await?
        .into_iter()
        .filter_map(|row| {
            serde_json::from_value(row.columns)
                .ok()
                .map(|columns| (row.dataset_id, columns))
        })
        .collect();
    let mut missing = Vec::new();
    for (i, dataset) in datasets.iter_mut().enumerate() {
        if let Some(columns) = kept.get(&dataset.id) {
            dataset.columns = Some(columns.clone());
        } else if let Some(table) = table_of(dataset.file_path.as_deref(), crate::query::DATA_ALIAS)
            && !ctx.unreadable.lately(dataset.id)
        {
            missing.push((i, dataset.id, table));
        }
    }
    let found: Vec<(usize, Option<Vec<DataColumn>>)> = futures_util::stream::iter(missing)
        .map(|(i, id, table)| async move { (i, read(ctx, id, &table).await) })
        .buffer_unordered(READS_AT_ONCE)
        .collect()
        .await;
    for (i, columns) in found {
        if let Some(columns) = columns {
            keep(&ctx.db, datasets[i].id, &columns, ctx.clock.now_naive()).await?;
            datasets[i].columns = Some(columns);
        }
    }
    Ok(())
}

/// The dataset row `id` of `user_id` or readable by them, as [`crate::Datasets::get`]
/// decides, as a table named `alias`.
pub(crate) async fn readable_table(
    ctx: &Context,
    user_id: Id,
    id: Id,
    alias: &str,
) -> Result<TableSource> {
    let dataset = crate::Datasets::new(ctx.clone())
        .get_row(user_id, id)
        .await?;
    no_file(&dataset, alias)
}

/// The table of a dataset row, or the validation error of a dataset without a file.
pub(crate) fn no_file(dataset: &datasets::Model, alias: &str) -> Result<TableSource> {
    table_of(dataset.file_path.as_deref(), alias).ok_or_else(|| {
        crate::Error::validation(format!(
            "dataset {} has no file to read (it was not uploaded)",
            dataset.id
        ))
    })
}
