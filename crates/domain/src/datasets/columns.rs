//! A dataset's columns as queries see them: read by the query engine from the file, kept
//! in `dataset_columns` (written with the upload, or the first time an older dataset is
//! shown), and a dataset's file as a table a query may name.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use entity::{dataset_columns, datasets};
use futures_util::StreamExt;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::query::TableSource;
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
    match engine.columns(table).await {
        Ok(columns) => Some(columns),
        Err(failure) => {
            ctx.unreadable.note(dataset_id);
            tracing::warn!(%dataset_id, reason = failure.reason.as_str(), error = %failure.message, "reading a dataset's columns failed");
            None
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
