//! Analyses: create, read, update, delete, list.
//!
//! Every statement carries `id IN (the analyses the caller reaches with the role needed)`
//! in its own WHERE clause ([`crate::access::analyses_reachable`]), so another user's
//! analysis is indistinguishable from a missing one (both are [`Error::NotFound`]), a
//! collaborator beyond their role is told so ([`Error::Forbidden`]), and no read-then-check
//! window exists between finding a row and using it. Each change writes its activity row
//! in its own transaction.
use entity::analyses;
use entity::datasets;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::Value;

use crate::access::{self, Actor, Role, Through, analyses_reachable};
use crate::activity::{self, Entry};
use crate::datasets::columnar;
use crate::db::begin_write;
use crate::error::{Error, Result};
use crate::pagination::{Page, PageRequest, page_from};
use crate::query::{DATA_ALIAS, Query, QueryFailure, QueryOutput, QueryRequest, TableSource};
use crate::{Analysis, Context, Id, Status};

/// Largest accepted `config` or `results`, as serialized JSON bytes. Bounds what one
/// request can make every later read (and every public report view) carry.
pub(crate) const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Largest stored results of a run, as serialized JSON bytes: the rows past it are left
/// out and `truncated` says so. Larger than [`MAX_JSON_BYTES`] (what a client may write)
/// because a run's row cap is counted in rows, not bytes.
pub(crate) const MAX_RESULT_BYTES: usize = 8 * 1024 * 1024;

/// The rows of `rows` that fit in `max_bytes` of JSON, and whether any were left out.
fn within_bytes(rows: &[Vec<Value>], max_bytes: usize) -> (&[Vec<Value>], bool) {
    let mut used = 0;
    for (i, row) in rows.iter().enumerate() {
        used += serde_json::to_vec(row).map_or(0, |bytes| bytes.len() + 1);
        if used > max_bytes {
            return (&rows[..i], true);
        }
    }
    (rows, false)
}

/// What a caller gives to create an analysis.
#[derive(Clone, Debug, Default)]
pub struct NewAnalysis {
    /// 1 to 255 characters, stored trimmed.
    pub name: String,
    /// One of the caller's datasets.
    pub dataset_id: Option<Id>,
    /// A JSON object (or null), at most 1 MiB serialized.
    pub config: Option<Value>,
}

/// A partial update: the outer `None` leaves a field unchanged, `Some(None)` sets it NULL.
#[derive(Clone, Debug, Default)]
pub struct AnalysisChange {
    /// New name.
    pub name: Option<String>,
    /// New dataset (one of the caller's), or none.
    pub dataset_id: Option<Option<Id>>,
    /// New configuration: a JSON object, or none.
    pub config: Option<Option<Value>>,
    /// New results: a JSON object, or none.
    pub results: Option<Option<Value>>,
    /// New status.
    pub status: Option<Status>,
}

/// Analyses of a user.
#[derive(Clone)]
pub struct Analyses {
    ctx: Context,
}

impl Analyses {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// Creates a draft analysis of the actor's.
    pub async fn create(&self, actor: impl Into<Actor>, new: NewAnalysis) -> Result<Analysis> {
        let actor = actor.into();
        let user_id = actor.user_id;
        let name = validate_name(&new.name)?;
        let config = validate_json("config", new.config)?;
        if let Some(dataset_id) = new.dataset_id {
            self.require_own_dataset(user_id, dataset_id).await?;
        }
        let now = self.ctx.clock.now_naive();
        let model = analyses::Model {
            id: Id(uuid::Uuid::new_v4()),
            user_id,
            name,
            dataset_id: new.dataset_id,
            config,
            results: None,
            status: analyses::Status::Draft,
            created_at: now,
            updated_at: now,
        };
        let active = analyses::ActiveModel {
            id: Set(model.id),
            user_id: Set(model.user_id),
            name: Set(model.name.clone()),
            dataset_id: Set(model.dataset_id),
            config: Set(model.config.clone()),
            results: Set(None),
            status: Set(model.status),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let txn = begin_write(&self.ctx.db).await?;
        analyses::Entity::insert(active)
            .exec_without_returning(&txn)
            .await
            .map_err(Error::parent_gone)?;
        log(
            &txn,
            &actor,
            now,
            &model,
            "analysis.created",
            serde_json::json!({ "name": model.name }),
        )
        .await?;
        txn.commit().await?;
        Ok(model.into())
    }

    /// The analysis `id`, if `user_id` owns it or it is shared with them.
    pub async fn get(&self, user_id: Id, id: Id) -> Result<Analysis> {
        analyses::Entity::find()
            .filter(analyses::Column::Id.eq(id))
            .filter(analyses::Column::Id.in_subquery(analyses_reachable(user_id, Role::Viewer)))
            .one(&self.ctx.db)
            .await?
            .map(Analysis::from)
            .ok_or(Error::NotFound)
    }

    /// The caller's analyses, newest first, optionally only those in `status`.
    pub async fn list(
        &self,
        user_id: Id,
        status: Option<Status>,
        page: &PageRequest,
    ) -> Result<Page<Analysis>> {
        let mut query = analyses::Entity::find().filter(analyses::Column::UserId.eq(user_id));
        if let Some(status) = status {
            query = query.filter(analyses::Column::Status.eq(analyses::Status::from(status)));
        }
        if let Some(after) = &page.after {
            query =
                query.filter(after.older_than(analyses::Column::CreatedAt, analyses::Column::Id));
        }
        let rows = query
            .order_by_desc(analyses::Column::CreatedAt)
            .order_by_desc(analyses::Column::Id)
            .limit(page.limit + 1)
            .all(&self.ctx.db)
            .await?;
        Ok(page_from(rows, page.limit, |a| (a.created_at, a.id)).map(Analysis::from))
    }

    /// Applies `change` and bumps `updated_at`, in one `UPDATE ... RETURNING` scoped to
    /// the analyses the caller may edit: an editor changes the name, config, results and
    /// status; changing the dataset is the owner's.
    pub async fn update(
        &self,
        actor: impl Into<Actor>,
        id: Id,
        change: AnalysisChange,
    ) -> Result<Analysis> {
        let actor = actor.into();
        let user_id = actor.user_id;
        let needed = if change.dataset_id.is_some() {
            Role::Owner
        } else {
            Role::Editor
        };
        let fields = changed_fields(&change);
        let mut active = analyses::ActiveModel {
            id: NotSet,
            user_id: NotSet,
            name: NotSet,
            dataset_id: NotSet,
            config: NotSet,
            results: NotSet,
            status: NotSet,
            created_at: NotSet,
            updated_at: Set(self.ctx.clock.now_naive()),
        };
        if let Some(name) = change.name {
            active.name = Set(validate_name(&name)?);
        }
        if let Some(config) = change.config {
            active.config = Set(validate_json("config", config)?);
        }
        if let Some(results) = change.results {
            active.results = Set(validate_json("results", results)?);
        }
        if let Some(status) = change.status {
            active.status = Set(status.into());
        }
        if let Some(dataset_id) = change.dataset_id {
            // The role first: an editor naming the owner's dataset is refused for their
            // role, not told that the dataset is missing.
            access::analysis_for(&self.ctx.db, user_id, id, Role::Owner).await?;
            if let Some(dataset_id) = dataset_id {
                self.require_own_dataset(user_id, dataset_id).await?;
            }
            active.dataset_id = Set(dataset_id);
        }
        let txn = begin_write(&self.ctx.db).await?;
        let updated = analyses::Entity::update_many()
            .set(active)
            .filter(analyses::Column::Id.eq(id))
            .filter(analyses::Column::Id.in_subquery(analyses_reachable(user_id, needed)))
            .exec_with_returning(&txn)
            .await
            .map_err(Error::parent_gone)?;
        let Some(row) = updated.into_iter().next() else {
            return Err(access::refusal(&txn, user_id, Through::Analysis(id), needed).await?);
        };
        log(
            &txn,
            &actor,
            row.updated_at,
            &row,
            "analysis.updated",
            serde_json::json!({ "fields": fields }),
        )
        .await?;
        txn.commit().await?;
        self.ctx.report_pages_changed();
        Ok(row.into())
    }

    /// Deletes the analysis (the owner only); its reports (and their unlock tokens),
    /// charts, comments and invitations go with it through the schema's
    /// `ON DELETE CASCADE`. Its activity rows stay.
    pub async fn delete(&self, actor: impl Into<Actor>, id: Id) -> Result<()> {
        let actor = actor.into();
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        // Read, then delete, in one transaction: sea-orm's `DELETE ... RETURNING` skips the
        // id columns' text cast that PostgreSQL's `uuid` needs.
        let found = analyses::Entity::find()
            .filter(analyses::Column::Id.eq(id))
            .filter(analyses::Column::UserId.eq(actor.user_id))
            .one(&txn)
            .await?;
        let Some(row) = found else {
            return Err(
                access::refusal(&txn, actor.user_id, Through::Analysis(id), Role::Owner).await?,
            );
        };
        let deleted = analyses::Entity::delete_many()
            .filter(analyses::Column::Id.eq(id))
            .filter(analyses::Column::UserId.eq(actor.user_id))
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(Error::NotFound);
        }
        log(
            &txn,
            &actor,
            now,
            &row,
            "analysis.deleted",
            serde_json::json!({ "name": row.name }),
        )
        .await?;
        txn.commit().await?;
        self.ctx.report_pages_changed();
        Ok(())
    }

    /// Runs the analysis's `config.query` on the query engine now and stores the outcome
    /// (an editor's right, as writing results is): `completed` with `results = {columns,
    /// rows, row_count, truncated, elapsed_ms, ran_at}`, or `failed` with `results =
    /// {error: {reason, message}, ran_at}` and [`Error::QueryFailed`] returned.
    ///
    /// The query reads `data` (the analysis's dataset) and the datasets `tables` names,
    /// each of which the caller must be able to read ([`Error::NotFound`] otherwise, before
    /// anything runs). No `config.query`, or nothing to read: [`Error::Validation`], and
    /// nothing is stored. Concurrent runs of one analysis each store their outcome; the
    /// last to finish is what stays.
    pub async fn run(&self, actor: impl Into<Actor>, id: Id) -> Result<Analysis> {
        let actor = actor.into();
        let (analysis, _) =
            access::analysis_for(&self.ctx.db, actor.user_id, id, Role::Editor).await?;
        let engine = self.ctx.engine()?.clone();
        let started = std::time::Instant::now();
        let outcome = match QueryRequest::from_config(analysis.config.as_ref()) {
            Ok(None) => {
                return Err(Error::validation(
                    "the analysis has no config.query to run (see ANALYSES.md for its two forms)",
                ));
            }
            Err(malformed) => Err(malformed),
            Ok(Some(request)) => {
                let tables = self.tables_of(&actor, &analysis, &request).await?;
                engine.run(&request.query, &tables).await
            }
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.keep_outcome(&actor, id, outcome, elapsed_ms).await
    }

    /// The tables a run may read: `data` and the aliases of `tables`, each readable by the
    /// caller.
    async fn tables_of(
        &self,
        actor: &Actor,
        analysis: &analyses::Model,
        request: &QueryRequest,
    ) -> Result<Vec<TableSource>> {
        let mut tables = Vec::with_capacity(request.tables.len() + 1);
        if let Some(dataset_id) = analysis.dataset_id {
            // Whoever reaches the analysis reads its dataset (the sharing rule).
            let dataset = datasets::Entity::find_by_id(dataset_id)
                .one(&self.ctx.db)
                .await?
                .ok_or(Error::NotFound)?;
            let mut table = crate::datasets::columns::no_file(&dataset, DATA_ALIAS)?;
            columnar::attach(&self.ctx, &mut table, dataset.size_bytes).await;
            tables.push(table);
        } else if matches!(request.query, Query::Structured(_)) {
            return Err(Error::validation(
                "the structured form reads the analysis's dataset: set dataset_id first",
            ));
        }
        for (alias, dataset_id) in &request.tables {
            let dataset = crate::Datasets::new(self.ctx.clone())
                .get_row(actor.user_id, *dataset_id)
                .await?;
            let mut table = crate::datasets::columns::no_file(&dataset, alias)?;
            columnar::attach(&self.ctx, &mut table, dataset.size_bytes).await;
            tables.push(table);
        }
        if tables.is_empty() {
            return Err(Error::validation(
                "nothing to read: set the analysis's dataset_id or name datasets in config.query.tables",
            ));
        }
        Ok(tables)
    }

    /// Stores a run's outcome in one `UPDATE ... RETURNING` scoped to the analyses the
    /// caller may edit (a role revoked while the query ran is seen here), with its
    /// activity row.
    async fn keep_outcome(
        &self,
        actor: &Actor,
        id: Id,
        outcome: std::result::Result<QueryOutput, QueryFailure>,
        elapsed_ms: u64,
    ) -> Result<Analysis> {
        let now = self.ctx.clock.now_naive();
        let ran_at = now
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (status, results, metadata) = match &outcome {
            Ok(output) => {
                let (rows, cut) = within_bytes(&output.rows, MAX_RESULT_BYTES);
                let results = serde_json::json!({
                    "columns": output.columns,
                    "rows": rows,
                    "row_count": rows.len(),
                    "truncated": output.truncated || cut,
                    "elapsed_ms": elapsed_ms,
                    "ran_at": ran_at,
                });
                let metadata = serde_json::json!({"status": "completed", "row_count": rows.len()});
                (analyses::Status::Completed, results, metadata)
            }
            Err(failure) => (
                analyses::Status::Failed,
                serde_json::json!({
                    "error": {"reason": failure.reason, "message": failure.message},
                    "ran_at": ran_at,
                }),
                serde_json::json!({"status": "failed", "reason": failure.reason}),
            ),
        };
        let change = analyses::ActiveModel {
            id: NotSet,
            user_id: NotSet,
            name: NotSet,
            dataset_id: NotSet,
            config: NotSet,
            results: Set(Some(results)),
            status: Set(status),
            created_at: NotSet,
            updated_at: Set(now),
        };
        let txn = begin_write(&self.ctx.db).await?;
        let updated = analyses::Entity::update_many()
            .set(change)
            .filter(analyses::Column::Id.eq(id))
            .filter(
                analyses::Column::Id.in_subquery(analyses_reachable(actor.user_id, Role::Editor)),
            )
            .exec_with_returning(&txn)
            .await?;
        let Some(row) = updated.into_iter().next() else {
            return Err(
                access::refusal(&txn, actor.user_id, Through::Analysis(id), Role::Editor).await?,
            );
        };
        log(&txn, actor, now, &row, "analysis.ran", metadata).await?;
        txn.commit().await?;
        self.ctx.report_pages_changed();
        let props =
            serde_json::json!({"status": if outcome.is_ok() { "completed" } else { "failed" }});
        self.ctx
            .record_event("analysis.ran", actor.user_id, props)
            .await;
        match outcome {
            Ok(_) => Ok(row.into()),
            Err(failure) => Err(failure.into()),
        }
    }

    async fn require_own_dataset(&self, user_id: Id, dataset_id: Id) -> Result<()> {
        let found = datasets::Entity::find()
            .filter(datasets::Column::Id.eq(dataset_id))
            .filter(datasets::Column::UserId.eq(user_id))
            .count(&self.ctx.db)
            .await?;
        if found == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }
}

/// The analysis's activity row, in the transaction of its change.
async fn log<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    now: chrono::NaiveDateTime,
    row: &analyses::Model,
    verb: &'static str,
    metadata: Value,
) -> Result<()> {
    activity::record(
        conn,
        actor,
        now,
        Entry {
            owner_id: row.user_id,
            analysis_id: Some(row.id),
            verb,
            object_type: "analysis",
            object_id: row.id,
            metadata,
        },
    )
    .await
}

/// The names of the fields a change touches, for the activity log (never their values).
fn changed_fields(change: &AnalysisChange) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if change.name.is_some() {
        fields.push("name");
    }
    if change.dataset_id.is_some() {
        fields.push("dataset_id");
    }
    if change.config.is_some() {
        fields.push("config");
    }
    if change.results.is_some() {
        fields.push("results");
    }
    if change.status.is_some() {
        fields.push("status");
    }
    fields
}

fn validate_name(name: &str) -> Result<String> {
    crate::text::validate_name(name.to_owned(), true)
}

/// `config` and `results` are JSON objects or null; anything else, or more than
/// [`MAX_JSON_BYTES`] serialized, is refused.
fn validate_json(field: &str, value: Option<Value>) -> Result<Option<Value>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => {
            // PostgreSQL's JSON types cannot hold U+0000 in a string (the write would fail
            // as a database error); refused on both backends alike.
            if crate::text::json_contains_nul(&value) {
                return Err(Error::validation(format!(
                    "{field} must not contain NUL characters (\\u0000)"
                )));
            }
            let size = serde_json::to_vec(&value)
                .map_err(|e| Error::Internal(format!("serializing {field}: {e}")))?
                .len();
            if size > MAX_JSON_BYTES {
                return Err(Error::validation(format!(
                    "{field} must be at most {MAX_JSON_BYTES} bytes of JSON"
                )));
            }
            Ok(Some(value))
        }
        Some(_) => Err(Error::validation(format!(
            "{field} must be a JSON object or null"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_characters_are_refused_in_names_and_json() {
        assert!(matches!(validate_name("a\0b"), Err(Error::Validation(_))));
        assert_eq!(validate_name("  ok  ").unwrap(), "ok");
        for bad in [
            json!({"k": "a\u{0}b"}),
            json!({"a\u{0}": 1}),
            json!({"k": [[{"x": "\u{0}"}]]}),
        ] {
            assert!(
                matches!(
                    validate_json("config", Some(bad.clone())),
                    Err(Error::Validation(_))
                ),
                "{bad}"
            );
        }
        assert!(validate_json("config", Some(json!({"k": "\\u0000 as text"}))).is_ok());
    }
}
