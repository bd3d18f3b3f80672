//! Reports: publish, manage, and the public view with its rules.
//!
//! Owner-side statements are scoped with `analysis_id IN (SELECT id FROM analyses WHERE
//! user_id = caller)` inside the statement itself, so another user's report is a plain
//! [`Error::NotFound`]. The public side ([`Reports::view`], [`Reports::unlock`]) is keyed
//! by short code and applies the contract's rules in their fixed order.
mod content;
mod counting;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use entity::{analyses, datasets, reports};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Statement, TryInsertResult,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::access::{self, Actor, Role, Through, analyses_reachable};
use crate::activity::{self, Entry};
use crate::db::Direct;
use crate::error::{Error, LimitKind, Result};
use crate::pagination::{Page, PageRequest, page_from};
use crate::passwords::{self, Hasher, Verified};
use crate::throttle::{self, Scope};
use crate::tokens::{IssuedToken, Tokens};
use crate::{ChartConfig, ChartType, Context, Id, Report, Status, codes, db, usage};
use content::Content;
pub(crate) use content::ContentCache;
pub(crate) use counting::ViewCounter;

/// Length of a new short code. Each character is drawn uniformly from the 62 base62
/// characters (the contract's alphabet), so a code carries 10 * log2(62) ≈ 59.5 bits from
/// a CSPRNG seeded by the OS: guessing a live code is hopeless, and a collision (retried
/// anyway) is a one-in-10^17 event per pair.
const SHORT_CODE_LEN: usize = 10;
/// Fresh codes to try when one is already taken, before giving up.
const SHORT_CODE_ATTEMPTS: usize = 5;

/// What a caller gives to publish a report of an analysis.
#[derive(Clone, Debug, Default)]
pub struct NewReport {
    /// A password viewers must give (8 characters to 1024 bytes), or none.
    pub password: Option<String>,
    /// When the link stops working; must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// `None` means public.
    pub is_public: Option<bool>,
}

/// A partial update: the outer `None` leaves a field unchanged, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct ReportChange {
    /// Whether the link works at all.
    pub is_public: Option<bool>,
    /// A new password, or `Some(None)` to remove it (unlock tokens are revoked either way).
    pub password: Option<Option<String>>,
    /// A new expiry (in the future), or `Some(None)` for none.
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// What the public sees of a report: exactly the fields its page shows, with `view_count`
/// including the view that produced it. Nothing private (ids, owner, password hash) is in
/// it, and nothing more is read from the database than this.
#[derive(Clone, Debug)]
pub struct PublicView {
    /// The link's code.
    pub short_code: String,
    /// Views so far, this one included.
    pub view_count: i32,
    /// When the link stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Publication time.
    pub created_at: DateTime<Utc>,
    /// The analysis shown.
    pub analysis: PublicAnalysis,
    /// `None` when the analysis has no dataset (or it was deleted).
    pub dataset: Option<PublicDataset>,
    /// The analysis's charts, oldest first (the order the page shows them in).
    pub charts: Vec<PublicChart>,
}

/// A chart as a report shows it: drawn from the analysis's current results.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PublicChart {
    /// Its id.
    pub id: Id,
    /// Its name.
    pub name: String,
    /// How it draws.
    pub chart_type: ChartType,
    /// What it draws.
    pub config: ChartConfig,
}

impl PublicView {
    /// Each chart with its SVG drawing, from the results shown (parsed once for all).
    pub fn drawings(&self) -> Vec<(&PublicChart, String)> {
        if self.charts.is_empty() {
            return Vec::new();
        }
        let results = self
            .analysis
            .results
            .as_deref()
            .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok());
        let table = crate::charts::data_of(results.as_ref());
        self.charts
            .iter()
            .map(|c| {
                (
                    c,
                    crate::charts::draw(&c.name, c.chart_type, &c.config, &table),
                )
            })
            .collect()
    }
}

/// `config` and `results` are the stored JSON text, checked but not decoded: the public
/// view only passes them on, and decoding then re-encoding them was the largest part of
/// a view's CPU time in the server (docs/performance.md).
#[derive(Clone, Debug)]
pub struct PublicAnalysis {
    /// Its name.
    pub name: String,
    /// Where it stands.
    pub status: Status,
    /// Its configuration, as stored JSON text.
    pub config: Option<Box<RawValue>>,
    /// Its results, as stored JSON text.
    pub results: Option<Box<RawValue>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What the public sees of the dataset behind a report.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicDataset {
    /// Its name.
    pub name: String,
    /// Data rows, when known.
    pub row_count: Option<i32>,
    /// Columns, when known.
    pub column_count: Option<i32>,
}

impl PublicView {
    /// The view of a counted report with its page content.
    fn new(counted: CountedRow, content: &Content) -> Self {
        Self {
            short_code: counted.short_code,
            view_count: counted.view_count,
            expires_at: counted.expires_at.map(|at| at.and_utc()),
            created_at: counted.created_at.and_utc(),
            analysis: content.analysis.clone(),
            dataset: content.dataset.clone(),
            charts: content.charts.clone(),
        }
    }

    fn of(
        report: reports::Model,
        analysis: analyses::Model,
        dataset: Option<datasets::Model>,
        charts: Vec<PublicChart>,
    ) -> Result<Self> {
        // The same shapes as the rows of the hot path, so that both paths build the view
        // in one place.
        let content = Content::try_from(ContentRow {
            analysis_name: analysis.name,
            analysis_status: analysis.status,
            analysis_config: analysis.config.map(|v| v.to_string()),
            analysis_results: analysis.results.map(|v| v.to_string()),
            analysis_updated_at: analysis.updated_at,
            dataset_name: dataset.as_ref().map(|d| d.name.clone()),
            dataset_row_count: dataset.as_ref().and_then(|d| d.row_count),
            dataset_column_count: dataset.as_ref().and_then(|d| d.column_count),
            charts: None,
        })?;
        let counted = CountedRow {
            short_code: report.short_code,
            view_count: report.view_count,
            expires_at: report.expires_at,
            created_at: report.created_at,
            analysis_id: report.analysis_id,
        };
        Ok(PublicView {
            charts,
            ..PublicView::new(counted, &content)
        })
    }
}

/// A row of the counting statement ([`counting`]): the counted report.
#[derive(Clone, Debug, FromQueryResult)]
struct CountedRow {
    short_code: String,
    view_count: i32,
    expires_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    analysis_id: Id,
}

/// The row of [`CONTENT_SQL`] (and [`CONTENT_SQLITE`]): what a report of the analysis
/// shows, flattened by the join.
#[derive(FromQueryResult)]
struct ContentRow {
    analysis_name: String,
    analysis_status: analyses::Status,
    /// JSON text (`CAST(... AS text)`), see [`PublicAnalysis`].
    analysis_config: Option<String>,
    analysis_results: Option<String>,
    analysis_updated_at: NaiveDateTime,
    // NOT NULL in the table: `None` means the LEFT JOIN found no dataset.
    dataset_name: Option<String>,
    dataset_row_count: Option<i32>,
    dataset_column_count: Option<i32>,
    /// The charts as a JSON array (`json_agg`), `None` when there are none.
    charts: Option<String>,
}

impl TryFrom<ContentRow> for Content {
    type Error = Error;

    fn try_from(row: ContentRow) -> Result<Self> {
        let raw = |text: Option<String>| {
            text.map(RawValue::from_string)
                .transpose()
                .map_err(|e| Error::Internal(format!("stored JSON does not parse: {e}")))
        };
        Ok(Self {
            analysis: PublicAnalysis {
                name: row.analysis_name,
                status: row.analysis_status.into(),
                config: raw(row.analysis_config)?,
                results: raw(row.analysis_results)?,
                updated_at: row.analysis_updated_at.and_utc(),
            },
            dataset: row.dataset_name.map(|name| PublicDataset {
                name,
                row_count: row.dataset_row_count,
                column_count: row.dataset_column_count,
            }),
            charts: match row.charts {
                // SQLite's `json_group_array` of no rows is `[]`.
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| Error::Internal(format!("stored charts do not parse: {e}")))?,
                None => Vec::new(),
            },
        })
    }
}

/// How this process has counted public views since it started: with one statement per
/// batch of views that arrived together (see [`Reports::view`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewCounting {
    /// Counting statements that succeeded.
    pub statements: u64,
    /// Views those statements counted.
    pub views: u64,
}

/// Reports: publishing and managing them, and the public view.
#[derive(Clone)]
pub struct Reports {
    ctx: Context,
    tokens: Tokens,
}

impl Reports {
    pub(crate) fn new(ctx: Context) -> Self {
        Self {
            tokens: Tokens::new(ctx.clone()),
            ctx,
        }
    }

    /// Publishes `analysis_id` (which must be the caller's). Counts once toward the
    /// month's `reports`; the count and the insert share one write transaction, so a
    /// refused report ([`Error::LimitExceeded`]) leaves nothing behind.
    pub async fn create(
        &self,
        actor: impl Into<Actor>,
        analysis_id: Id,
        new: NewReport,
    ) -> Result<Report> {
        let actor = actor.into();
        let user_id = actor.user_id;
        access::analysis_for(&self.ctx.db, user_id, analysis_id, Role::Owner).await?;
        let now = self.ctx.clock.now();
        let expires_at = new
            .expires_at
            .map(|at| self.future_expiry(at))
            .transpose()?;
        // Hashing is slow: do it before taking the write lock.
        let password_hash = match new.password {
            Some(password) => Some(hash_password(&self.ctx.hasher, password).await?),
            None => None,
        };
        let naive_now = self.ctx.clock.now_naive();
        let mut model = reports::Model {
            id: Id(uuid::Uuid::new_v4()),
            analysis_id,
            short_code: String::new(),
            is_public: new.is_public.unwrap_or(true),
            password_hash,
            expires_at,
            view_count: 0,
            created_at: naive_now,
            updated_at: naive_now,
        };

        let txn = db::begin_write(&self.ctx.db).await?;
        usage::consume(&txn, now, user_id, LimitKind::Reports).await?;
        let mut inserted = false;
        for _ in 0..SHORT_CODE_ATTEMPTS {
            model.short_code = new_short_code()?;
            // ON CONFLICT DO NOTHING rather than catching the unique violation: on
            // PostgreSQL a failed statement would abort the whole transaction.
            let outcome = reports::Entity::insert(active_model(&model))
                .on_conflict_do_nothing_on([reports::Column::ShortCode])
                .exec_without_returning(&txn)
                .await
                .map_err(Error::parent_gone)?;
            if matches!(outcome, TryInsertResult::Inserted(n) if n > 0) {
                inserted = true;
                break;
            }
        }
        if !inserted {
            return Err(Error::Internal(
                "no free short code after several attempts".into(),
            ));
        }
        log(&txn, &actor, naive_now, &model, "report.created").await?;
        txn.commit().await?;
        let props = serde_json::json!({"is_public": model.is_public, "has_password": model.password_hash.is_some()});
        self.ctx
            .record_event("report.created", user_id, props)
            .await;
        Ok(model.into())
    }

    /// The report `id`, if it shows one of `user_id`'s analyses.
    pub async fn get(&self, user_id: Id, id: Id) -> Result<Report> {
        let found = reports::Entity::find()
            .filter(reports::Column::Id.eq(id))
            .filter(
                reports::Column::AnalysisId.in_subquery(analyses_reachable(user_id, Role::Owner)),
            )
            .one(&self.ctx.db)
            .await?;
        match found {
            Some(report) => Ok(report.into()),
            None => Err(
                access::refusal(&self.ctx.db, user_id, Through::Report(id), Role::Owner).await?,
            ),
        }
    }

    /// The caller's reports (those of their analyses), newest first.
    pub async fn list(&self, user_id: Id, page: &PageRequest) -> Result<Page<Report>> {
        let mut query = reports::Entity::find().filter(
            reports::Column::AnalysisId.in_subquery(analyses_reachable(user_id, Role::Owner)),
        );
        if let Some(after) = &page.after {
            query = query.filter(after.older_than(reports::Column::CreatedAt, reports::Column::Id));
        }
        let rows = query
            .order_by_desc(reports::Column::CreatedAt)
            .order_by_desc(reports::Column::Id)
            .limit(page.limit + 1)
            .all(&self.ctx.db)
            .await?;
        Ok(page_from(rows, page.limit, |r| (r.created_at, r.id)).map(Report::from))
    }

    /// Applies `change` and bumps `updated_at`. Setting, changing or clearing the password
    /// revokes the report's unlock tokens in the same transaction: whoever unlocked with
    /// the old password must not keep access.
    pub async fn update(
        &self,
        actor: impl Into<Actor>,
        id: Id,
        change: ReportChange,
    ) -> Result<Report> {
        let actor = actor.into();
        let user_id = actor.user_id;
        let now = self.ctx.clock.now_naive();
        let mut active = reports::ActiveModel {
            id: NotSet,
            analysis_id: NotSet,
            short_code: NotSet,
            is_public: NotSet,
            password_hash: NotSet,
            expires_at: NotSet,
            view_count: NotSet,
            created_at: NotSet,
            updated_at: Set(now),
        };
        if let Some(is_public) = change.is_public {
            active.is_public = Set(is_public);
        }
        if let Some(expires_at) = change.expires_at {
            active.expires_at = Set(expires_at.map(|at| self.future_expiry(at)).transpose()?);
        }
        let password_changed = change.password.is_some();
        if let Some(password) = change.password {
            active.password_hash = Set(match password {
                Some(password) => Some(hash_password(&self.ctx.hasher, password).await?),
                None => None,
            });
        }

        let txn = db::begin_write(&self.ctx.db).await?;
        let updated = reports::Entity::update_many()
            .set(active)
            .filter(reports::Column::Id.eq(id))
            .filter(
                reports::Column::AnalysisId.in_subquery(analyses_reachable(user_id, Role::Owner)),
            )
            .exec_with_returning(&txn)
            .await?;
        let Some(report) = updated.into_iter().next() else {
            return Err(access::refusal(&txn, user_id, Through::Report(id), Role::Owner).await?);
        };
        if password_changed {
            entity::access_tokens::Entity::update_many()
                .set(entity::access_tokens::ActiveModel {
                    revoked_at: Set(Some(now)),
                    ..Default::default()
                })
                .filter(entity::access_tokens::Column::ReportId.eq(id))
                .filter(entity::access_tokens::Column::RevokedAt.is_null())
                .exec(&txn)
                .await?;
        }
        log(&txn, &actor, now, &report, "report.updated").await?;
        txn.commit().await?;
        Ok(report.into())
    }

    /// Deletes the report (the owner only); its unlock tokens go by the schema's cascade.
    pub async fn delete(&self, actor: impl Into<Actor>, id: Id) -> Result<()> {
        let actor = actor.into();
        let now = self.ctx.clock.now_naive();
        let txn = db::begin_write(&self.ctx.db).await?;
        // Read, then delete, in one transaction: sea-orm's `DELETE ... RETURNING` skips the
        // id columns' text cast that PostgreSQL's `uuid` needs.
        let found = reports::Entity::find()
            .filter(reports::Column::Id.eq(id))
            .filter(
                reports::Column::AnalysisId
                    .in_subquery(analyses_reachable(actor.user_id, Role::Owner)),
            )
            .one(&txn)
            .await?;
        let Some(report) = found else {
            return Err(
                access::refusal(&txn, actor.user_id, Through::Report(id), Role::Owner).await?,
            );
        };
        let deleted = reports::Entity::delete_many()
            .filter(reports::Column::Id.eq(id))
            .filter(
                reports::Column::AnalysisId
                    .in_subquery(analyses_reachable(actor.user_id, Role::Owner)),
            )
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(Error::NotFound);
        }
        log(&txn, &actor, now, &report, "report.deleted").await?;
        txn.commit().await?;
        Ok(())
    }

    /// The public view at `/r/{short_code}`. Rules, in this order: unknown or not public
    /// → [`Error::NotFound`]; expired → [`Error::Gone`]; password set and `access_token`
    /// does not grant this report → [`Error::PasswordRequired`]; otherwise the view is
    /// counted.
    ///
    /// The hot path (an open report: public, unexpired, no password) is one counting
    /// statement, shared with the views that arrive at the same moment, plus the page
    /// content, kept by the process for a moment (`reports/counting.rs`, `reports/content.rs`).
    /// Every other case reads the report with its analysis and dataset, applies the rules
    /// one by one and, when the view is allowed (a password-protected report with a
    /// valid token), counts it with its own atomic increment.
    pub async fn view(&self, short_code: &str, access_token: Option<&str>) -> Result<PublicView> {
        if !codes::plausible(short_code) {
            return Err(Error::NotFound);
        }
        if let Some(view) = self.view_open_report(short_code).await? {
            return Ok(view);
        }
        let found = reports::Entity::find()
            .filter(reports::Column::ShortCode.eq(short_code))
            .find_also_related(analyses::Entity)
            .and_also_related(datasets::Entity)
            .one(&self.ctx.db)
            .await?;
        let Some((mut report, analysis, dataset)) = found else {
            return Err(Error::NotFound);
        };
        self.check_open(&report)?;
        if report.password_hash.is_some() {
            let granted = match access_token {
                Some(secret) => self.tokens.grants_report(secret, report.id).await?,
                None => false,
            };
            if !granted {
                return Err(Error::PasswordRequired);
            }
        }
        // The foreign key makes a report without its analysis impossible; treat the
        // impossible like a missing report rather than failing loudly on a public page.
        let analysis = analysis.ok_or(Error::NotFound)?;
        let charts = self.charts_of(analysis.id).await?;
        report.view_count = self.count_view(report.id).await?;
        PublicView::of(report, analysis, dataset, charts)
    }

    /// Views counted by this process (all its threads) so far, and by how many
    /// statements: views per statement is how much counting them together saved.
    pub fn view_counting(&self) -> ViewCounting {
        self.ctx.view_counter.totals().read()
    }

    /// Trades a report's password for an access token that [`Reports::view`] accepts.
    ///
    /// The same NotFound and Gone rules as the view come first. A report without a
    /// password is [`Error::Validation`]: there is nothing to unlock, and refusing keeps
    /// anonymous callers from minting token rows at will. Failures are counted per report
    /// and `client`; after 10 failures in 15 minutes even the right password is
    /// [`Error::RateLimited`].
    pub async fn unlock(
        &self,
        short_code: &str,
        password: &str,
        client: &str,
    ) -> Result<IssuedToken> {
        if !codes::plausible(short_code) {
            return Err(Error::NotFound);
        }
        let report = reports::Entity::find()
            .filter(reports::Column::ShortCode.eq(short_code))
            .one(&self.ctx.db)
            .await?
            .ok_or(Error::NotFound)?;
        self.check_open(&report)?;
        let Some(stored) = report.password_hash.clone() else {
            return Err(Error::NothingToUnlock);
        };
        let subject = report.id.0.hyphenated().to_string();
        let verdict = throttle::verify(
            &self.ctx.db,
            &self.ctx.hasher,
            self.ctx.clock.now_naive(),
            Scope::Unlock,
            &subject,
            client,
            password,
            Some(stored.clone()),
        )
        .await?;
        if verdict == Verified::No {
            return Err(Error::Unauthorized(crate::Unauthenticated::ReportPassword));
        }
        if verdict == Verified::YesRehash {
            self.rehash(report.id, &stored, password).await;
        }
        self.tokens.issue_for_report(&self.ctx.db, report.id).await
    }

    /// NotFound for a private report, Gone for an expired one: the first two view rules.
    fn check_open(&self, report: &reports::Model) -> Result<()> {
        if !report.is_public {
            return Err(Error::NotFound);
        }
        if report
            .expires_at
            .is_some_and(|at| at <= self.ctx.clock.now_naive())
        {
            return Err(Error::Gone("this report has expired"));
        }
        Ok(())
    }

    /// The hot path: a report that is public, unexpired and has no password is counted
    /// by ONE statement (`UPDATE ... RETURNING`, with the views waiting beside it: see
    /// [`counting`]), whose WHERE clause holds exactly the conditions under which the
    /// rules end in "count the view", so the count is still one atomic increment and the
    /// rules are decided by the database at that instant. The page's content comes from
    /// [`Reports::content_of`]. `None` sends every other case (unknown, private, expired,
    /// password) down the rule-by-rule path of [`Reports::view`].
    async fn view_open_report(&self, short_code: &str) -> Result<Option<PublicView>> {
        let now = self.ctx.clock.now_naive();
        let Some(counted) = self.ctx.view_counter.count(short_code, now).await? else {
            return Ok(None);
        };
        let content = self.content_of(counted.analysis_id).await?;
        Ok(Some(PublicView::new(counted, &content)))
    }

    /// What a report of `analysis_id` shows: from this process's cache while fresh
    /// (see [`content`] for how fresh), else read by one statement and kept.
    async fn content_of(&self, analysis_id: Id) -> Result<Arc<Content>> {
        let cache = &self.ctx.report_content;
        if let Some(content) = cache.fresh(analysis_id, self.ctx.settings.report_cache_ttl) {
            return Ok(content);
        }
        let generation = cache.generation();
        let read_at = Instant::now();
        let row = match self.ctx.database.direct() {
            Some(Direct::Postgres(pool)) => {
                let query = sea_orm::sqlx::query(CONTENT_SQL).bind(analysis_id.0);
                pool.fetch_all(query).await?.pop()
            }
            Some(Direct::Sqlite(pool)) => {
                let id = analysis_id.0.hyphenated().to_string();
                let query = sea_orm::sqlx::query(CONTENT_SQLITE).bind(id);
                pool.fetch_all(query).await?.pop()
            }
            None => None,
        };
        // Deleted since the view was counted: its reports are going with it.
        let row = row.ok_or(Error::NotFound)?;
        let content = Arc::new(Content::try_from(ContentRow::from_query_result(&row, "")?)?);
        cache.keep(analysis_id, content.clone(), generation, read_at);
        Ok(content)
    }

    /// The charts a report of `analysis_id` shows, oldest first.
    async fn charts_of(&self, analysis_id: Id) -> Result<Vec<PublicChart>> {
        let rows = entity::charts::Entity::find()
            .filter(entity::charts::Column::AnalysisId.eq(analysis_id))
            .order_by_asc(entity::charts::Column::CreatedAt)
            .order_by_asc(entity::charts::Column::Id)
            .all(&self.ctx.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                let chart = crate::charts::chart_of(row, None)?;
                Ok(PublicChart {
                    id: chart.id,
                    name: chart.name,
                    chart_type: chart.chart_type,
                    config: chart.config,
                })
            })
            .collect()
    }

    /// One atomic increment that also reads the new value, so concurrent views (in this
    /// process or another) each get their own count and none is lost.
    async fn count_view(&self, id: Id) -> Result<i32> {
        let backend = self.ctx.db.get_database_backend();
        let row = self
            .ctx
            .db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                "UPDATE reports SET view_count = view_count + 1 WHERE id = $1 RETURNING view_count",
                [db::id_value(backend, id)],
            ))
            .await?
            // Deleted between the lookup and now.
            .ok_or(Error::NotFound)?;
        Ok(row.try_get_by_index::<i32>(0)?)
    }

    /// Replaces a legacy (bcrypt) or weak hash with Argon2id after a successful unlock.
    /// Compare-and-set on the old hash, so a password the owner changed meanwhile is never
    /// overwritten. Best effort: a failure here must not refuse a correct password.
    async fn rehash(&self, id: Id, old_hash: &str, password: &str) {
        let new_hash = match self.ctx.hasher.hash(password.to_owned()).await {
            Ok(hash) => hash,
            Err(err) => {
                tracing::warn!(error = %err, "report password rehash failed");
                return;
            }
        };
        let outcome = reports::Entity::update_many()
            .col_expr(
                reports::Column::PasswordHash,
                sea_orm::sea_query::Expr::value(new_hash),
            )
            .filter(reports::Column::Id.eq(id))
            .filter(reports::Column::PasswordHash.eq(old_hash))
            .exec(&self.ctx.db)
            .await;
        if let Err(err) = outcome {
            tracing::warn!(error = %err, "storing the rehashed report password failed");
        }
    }

    /// An expiry for a new or changed report: strictly in the future, at the microsecond
    /// precision the database keeps.
    fn future_expiry(&self, at: DateTime<Utc>) -> Result<NaiveDateTime> {
        if at <= self.ctx.clock.now() {
            return Err(Error::validation("expires_at must be in the future"));
        }
        let micros = at.timestamp_micros();
        DateTime::from_timestamp_micros(micros)
            .map(|t| t.naive_utc())
            .ok_or_else(|| Error::validation("expires_at is out of range"))
    }
}

async fn hash_password(hasher: &Hasher, password: String) -> Result<String> {
    passwords::validate(&password)?;
    hasher.hash(password).await
}

fn active_model(model: &reports::Model) -> reports::ActiveModel {
    reports::ActiveModel {
        id: Set(model.id),
        analysis_id: Set(model.analysis_id),
        short_code: Set(model.short_code.clone()),
        is_public: Set(model.is_public),
        password_hash: Set(model.password_hash.clone()),
        expires_at: Set(model.expires_at),
        view_count: Set(model.view_count),
        created_at: Set(model.created_at),
        updated_at: Set(model.updated_at),
    }
}

/// A fresh random short code (see [`SHORT_CODE_LEN`] for its strength).
fn new_short_code() -> Result<String> {
    codes::random(SHORT_CODE_LEN)
}

/// The statement of [`Reports::content_of`] on PostgreSQL. It reads only what
/// [`PublicView`] shows: every column more is work for PostgreSQL, the wire and the
/// decoder. The JSON columns come as text, passed on without being decoded.
const CONTENT_SQL: &str = "\
    SELECT a.name AS analysis_name, a.status AS analysis_status, \
           CAST(a.config AS text) AS analysis_config, \
           CAST(a.results AS text) AS analysis_results, \
           a.updated_at AS analysis_updated_at, \
           d.name AS dataset_name, d.row_count AS dataset_row_count, \
           d.column_count AS dataset_column_count, \
           (SELECT CAST(json_agg(json_build_object('id', c.id, 'name', c.name, \
                       'chart_type', c.chart_type, 'config', c.config) \
                       ORDER BY c.created_at, c.id) AS text) \
              FROM charts c WHERE c.analysis_id = a.id) AS charts \
      FROM analyses a \
      LEFT JOIN datasets d ON d.id = a.dataset_id \
     WHERE a.id = $1";

/// [`CONTENT_SQL`] for SQLite (JSON is stored as text there; `json_group_array`).
const CONTENT_SQLITE: &str = "\
    SELECT a.name AS analysis_name, a.status AS analysis_status, \
           a.config AS analysis_config, a.results AS analysis_results, \
           a.updated_at AS analysis_updated_at, \
           d.name AS dataset_name, d.row_count AS dataset_row_count, \
           d.column_count AS dataset_column_count, \
           (SELECT json_group_array(json_object('id', c.id, 'name', c.name, \
                       'chart_type', c.chart_type, 'config', json(c.config)) \
                       ORDER BY c.created_at, c.id) \
              FROM charts c WHERE c.analysis_id = a.id) AS charts \
      FROM analyses a \
      LEFT JOIN datasets d ON d.id = a.dataset_id \
     WHERE a.id = $1";

/// The report's activity row, in the transaction of its change (only the owner manages
/// reports, so the row lands in the actor's own feed).
async fn log<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    now: NaiveDateTime,
    report: &reports::Model,
    verb: &'static str,
) -> Result<()> {
    activity::record(
        conn,
        actor,
        now,
        Entry {
            owner_id: actor.user_id,
            analysis_id: Some(report.analysis_id),
            verb,
            object_type: "report",
            object_id: report.id,
            metadata: serde_json::json!({ "is_public": report.is_public }),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_codes_are_base62_of_fixed_length() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let code = new_short_code().unwrap();
            assert_eq!(code.len(), SHORT_CODE_LEN);
            assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()), "{code}");
            assert!(seen.insert(code));
        }
    }

    #[test]
    fn short_code_characters_are_roughly_uniform() {
        const ALPHABET: &[u8; 62] =
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut counts = [0u32; 62];
        for _ in 0..6200 {
            for b in new_short_code().unwrap().bytes() {
                let i = ALPHABET.iter().position(|&a| a == b).unwrap();
                counts[i] += 1;
            }
        }
        // 1000 expected per character, all 62 of them; a biased draw (a modulo over bytes,
        // say) would skew some by ~25%.
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn implausible_codes_are_rejected_before_any_query() {
        assert!(codes::plausible("Xk9Lm2Qa"));
        assert!(codes::plausible("a"));
        assert!(!codes::plausible(""));
        assert!(!codes::plausible(&"a".repeat(21)));
        assert!(!codes::plausible("abc-def"));
        assert!(!codes::plausible("ünïcode"));
    }
}
