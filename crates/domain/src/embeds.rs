//! Embeds: a chart published as a frozen snapshot at `/e/{code}`, public or guarded by
//! HS256 tokens signed with one of the owner's embed keys, with privacy-respecting view
//! counts.
//!
//! - **Snapshot.** Publishing copies the chart's config and the columns it draws out of the
//!   analysis's results into `chart_embeds.snapshot`; later edits and runs change nothing
//!   an embed shows until it is published again (which keeps the code).
//! - **Codes.** 10 random base62 characters, first reserved in `embed_codes`, a table whose
//!   rows are never deleted: a stopped, rotated or deleted code can never come back.
//! - **Tokens.** HS256 only (the header's `alg` is checked before anything else), `kid`
//!   naming a key of the chart's owner, `sub` the code, `exp` required and at most 24 h
//!   ahead, 60 s leeway, all against the domain clock.
//! - **Counting.** One upsert per view adds to `(chart, UTC day, referrer host)`. A visitor
//!   is `sha256(daily salt, chart, client address, user agent)`; the hash is inserted into
//!   `embed_visitors` in the same statement (PostgreSQL) or transaction (SQLite) as the
//!   count, so `unique_visitors` is exact under concurrency. Salts and hashes older than
//!   the previous day are deleted; addresses, user agents and referrer URLs are never
//!   stored.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::{chart_embeds, charts, embed_codes, embed_keys};
use sea_orm::sea_query::{OnConflict, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, Statement, TryInsertResult,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::access::{self, Actor, Role, Through, analyses_reachable};
use crate::activity::{self, Entry};
use crate::charts::{self as chart_rules, ChartConfig, ChartType, Charts, Embed, EmbedMode};
use crate::db::begin_write;
use crate::error::{Error, Result, Unauthenticated};
use crate::{Context, Id, codes, db};

/// Length of a new embed code (10 * log2(62) ≈ 59.5 random bits, as report codes).
const CODE_LEN: usize = 10;
/// Most origins one embed may list.
pub const MAX_ALLOWED_ORIGINS: usize = 20;
/// Most embed keys one user may hold.
pub const MAX_EMBED_KEYS: u64 = 20;
/// How far ahead a token's `exp` may be.
const MAX_TOKEN_LIFETIME: Duration = Duration::hours(24);
/// Clock skew tolerated on `exp`, in seconds.
const TOKEN_LEEWAY_SECS: i64 = 60;
/// Longest referrer host kept (`VARCHAR(255)`).
const MAX_HOST_LEN: usize = 255;
/// Longest analytics range, in days.
pub const MAX_ANALYTICS_DAYS: i64 = 366;

/// The caller of an embed view, as the HTTP layer saw it. Only a salted hash of `client`
/// and `user_agent`, and the host of `referrer`, are ever kept.
#[derive(Clone, Debug, Default)]
pub struct Visit {
    /// The client's address.
    pub client: String,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The `Referer` header.
    pub referrer: Option<String>,
    /// Whether the browser is loading it into a frame (`Sec-Fetch-Dest: iframe`, ...). A
    /// frame whose page is not one of the allowed origins is refused by the browser after
    /// the answer arrives, so it is not counted as a view.
    pub framed: bool,
}

/// The columns and rows a chart draws, as frozen in a snapshot or read from results.
pub use plot::{Column as DataColumn, ColumnType as DataType, Table as DataTable};

/// What an embed shows: the snapshot taken when it was published.
#[derive(Clone, Debug)]
pub struct EmbedView {
    /// The chart's name then.
    pub name: String,
    /// Its type then.
    pub chart_type: ChartType,
    /// Its config then.
    pub config: ChartConfig,
    /// The columns it drew and their rows.
    pub data: DataTable,
    /// Origins allowed to frame it (empty: any).
    pub allowed_origins: Vec<String>,
    /// When it was published.
    pub published_at: DateTime<Utc>,
}

impl EmbedView {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        chart_rules::draw(&self.name, self.chart_type, &self.config, &self.data)
    }
}

/// A new embed key: the secret is shown this once.
#[derive(Clone)]
pub struct IssuedEmbedKey {
    /// The id to put in a token's `kid` header.
    pub kid: String,
    /// The HMAC key (its UTF-8 bytes) for HS256.
    pub secret: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for IssuedEmbedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedEmbedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// An embed key as listed (no secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbedKey {
    /// Its id.
    pub kid: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// One UTC day of an embed's views.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalyticsDay {
    /// The day.
    pub day: NaiveDate,
    /// Views that day (`/e/{code}` and `.svg`).
    pub views: i64,
    /// Distinct visitors, summed over referrer hosts.
    pub unique_visitors: i64,
    /// Views by referrer host (`""`: none).
    pub referrers: BTreeMap<String, i64>,
}

/// Embeds, embed keys and embed analytics.
#[derive(Clone)]
pub struct Embeds {
    ctx: Context,
    charts: Charts,
    /// Today's salt, once read: salts never change once written, so a cached one is
    /// always the one every process uses.
    salt: Arc<Mutex<Option<(NaiveDate, String)>>>,
}

/// What `snapshot` holds.
#[derive(serde::Serialize, Deserialize)]
struct Snapshot {
    name: String,
    chart_type: ChartType,
    config: ChartConfig,
    #[serde(flatten)]
    data: serde_json::Value,
}

impl Embeds {
    pub(crate) fn new(ctx: Context) -> Self {
        Self {
            charts: Charts::new(ctx.clone()),
            ctx,
            salt: Arc::new(Mutex::new(None)),
        }
    }

    /// Publishes (or publishes again) the chart `chart_id` of `user_id`: freezes its
    /// config and the data it draws now. A chart already published keeps its code.
    pub async fn publish(
        &self,
        actor: impl Into<Actor>,
        chart_id: Id,
        mode: EmbedMode,
        allowed_origins: Vec<String>,
    ) -> Result<Embed> {
        let actor = actor.into();
        let origins = normalize_origins(allowed_origins)?;
        let (chart, table) = self
            .charts
            .with_data(actor.user_id, chart_id, Role::Owner)
            .await?;
        let drawn: Vec<&str> = chart.config.columns();
        let frozen = if drawn.is_empty() {
            table
        } else {
            table.project(&drawn)
        };
        let snapshot = Snapshot {
            name: chart.name.clone(),
            chart_type: chart.chart_type,
            config: chart.config.clone(),
            data: serde_json::to_value(&frozen)
                .map_err(|e| Error::Internal(format!("snapshot: {e}")))?,
        };
        let now = self.ctx.clock.now_naive();
        let code = self.reserve_code().await?;
        let row = chart_embeds::ActiveModel {
            id: Set(Id::new_v4()),
            chart_id: Set(chart_id),
            code: Set(code),
            mode: Set(mode.as_str().to_owned()),
            allowed_origins: Set(serde_json::json!(origins)),
            snapshot: Set(serde_json::to_value(&snapshot)
                .map_err(|e| Error::Internal(format!("snapshot: {e}")))?),
            published_at: Set(now),
            created_at: Set(now),
            updated_at: Set(now),
        };
        // One statement whatever the state: a chart already published keeps its code
        // (the conflict on `chart_id` updates everything else), even when two publishes
        // race. The reserved code is then simply never used.
        let txn = begin_write(&self.ctx.db).await?;
        let saved = chart_embeds::Entity::insert(row)
            .on_conflict(
                OnConflict::column(chart_embeds::Column::ChartId)
                    .update_columns([
                        chart_embeds::Column::Mode,
                        chart_embeds::Column::AllowedOrigins,
                        chart_embeds::Column::Snapshot,
                        chart_embeds::Column::PublishedAt,
                        chart_embeds::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_with_returning(&txn)
            .await
            .map_err(Error::parent_gone)?;
        log(&txn, &actor, now, chart_id, "embed.published").await?;
        txn.commit().await?;
        chart_rules::embed_of(saved)
    }

    /// Stops the chart's embed (the owner only): its code answers not found from now on,
    /// for ever.
    pub async fn stop(&self, actor: impl Into<Actor>, chart_id: Id) -> Result<()> {
        let actor = actor.into();
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let result = chart_embeds::Entity::delete_many()
            .filter(chart_embeds::Column::ChartId.eq(chart_id))
            .filter(chart_embeds::Column::ChartId.in_subquery(charts_of(actor.user_id)))
            .exec(&txn)
            .await?;
        if result.rows_affected == 0 {
            return Err(access::refusal(
                &txn,
                actor.user_id,
                Through::Chart(chart_id),
                Role::Owner,
            )
            .await?);
        }
        log(&txn, &actor, now, chart_id, "embed.stopped").await?;
        txn.commit().await?;
        Ok(())
    }

    /// Gives the chart's embed a new code (the owner only); the old one answers not found
    /// for ever. The snapshot is kept.
    pub async fn rotate(&self, actor: impl Into<Actor>, chart_id: Id) -> Result<Embed> {
        let actor = actor.into();
        let user_id = actor.user_id;
        let now = self.ctx.clock.now_naive();
        let code = self.reserve_code().await?;
        let txn = begin_write(&self.ctx.db).await?;
        let updated = chart_embeds::Entity::update_many()
            .col_expr(
                chart_embeds::Column::Code,
                sea_orm::sea_query::Expr::value(code),
            )
            .col_expr(
                chart_embeds::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(chart_embeds::Column::ChartId.eq(chart_id))
            .filter(chart_embeds::Column::ChartId.in_subquery(charts_of(user_id)))
            .exec_with_returning(&txn)
            .await?;
        let Some(row) = updated.into_iter().next() else {
            return Err(
                access::refusal(&txn, user_id, Through::Chart(chart_id), Role::Owner).await?,
            );
        };
        log(&txn, &actor, now, chart_id, "embed.rotated").await?;
        txn.commit().await?;
        chart_rules::embed_of(row)
    }

    /// What `/e/{code}` shows. Unknown, stopped or rotated codes are [`Error::NotFound`];
    /// a signed embed without a valid `token` is [`Error::Unauthorized`]. With `visit`, the
    /// view is counted (after the checks, so refused requests count nothing).
    pub async fn open(
        &self,
        code: &str,
        token: Option<&str>,
        visit: Option<&Visit>,
    ) -> Result<EmbedView> {
        if !codes::plausible(code) {
            return Err(Error::NotFound);
        }
        let backend = self.ctx.db.get_database_backend();
        let row = OpenRow::find_by_statement(Statement::from_sql_and_values(
            backend,
            "SELECT CAST(e.chart_id AS TEXT) AS chart_id, e.mode, \
                    CAST(e.allowed_origins AS TEXT) AS allowed_origins, \
                    CAST(e.snapshot AS TEXT) AS snapshot, e.published_at, \
                    CAST(a.user_id AS TEXT) AS owner_id \
               FROM chart_embeds e \
               JOIN charts c ON c.id = e.chart_id \
               JOIN analyses a ON a.id = c.analysis_id \
              WHERE e.code = $1",
            [code.into()],
        ))
        .one(&self.ctx.db)
        .await?
        .ok_or(Error::NotFound)?;
        let owner: Id = parse_id(&row.owner_id)?;
        let chart_id: Id = parse_id(&row.chart_id)?;
        if EmbedMode::parse_stored(&row.mode)? == EmbedMode::Signed {
            self.verify_token(code, owner, token).await?;
        }
        let snapshot: Snapshot = serde_json::from_str(&row.snapshot)
            .map_err(|e| Error::Internal(format!("stored snapshot does not parse: {e}")))?;
        let view = EmbedView {
            data: chart_rules::data_of(Some(&snapshot.data)),
            name: snapshot.name,
            chart_type: snapshot.chart_type,
            config: snapshot.config,
            allowed_origins: serde_json::from_str(&row.allowed_origins)
                .map_err(|e| Error::Internal(format!("stored origins do not parse: {e}")))?,
            published_at: row.published_at.and_utc(),
        };
        if let Some(visit) = visit.filter(|v| frame_allowed(v, &view.allowed_origins)) {
            self.count(chart_id, visit).await?;
        }
        Ok(view)
    }

    /// Creates an embed key for `user_id`; the secret is in the answer only.
    pub async fn create_key(&self, user_id: Id) -> Result<IssuedEmbedKey> {
        let keyring = self.ctx.keyring()?;
        let held = embed_keys::Entity::find()
            .filter(embed_keys::Column::UserId.eq(user_id))
            .count(&self.ctx.db)
            .await?;
        if held >= MAX_EMBED_KEYS {
            return Err(Error::validation(format!(
                "at most {MAX_EMBED_KEYS} embed keys per account: revoke one first"
            )));
        }
        let id = Id::new_v4();
        let kid = format!("ek_{}", codes::random(16)?);
        let secret = format!("eks_{}", codes::random(43)?);
        let now = self.ctx.clock.now_naive();
        let stored = keyring.encrypt(secret.as_bytes(), id.to_string().as_bytes())?;
        embed_keys::Entity::insert(embed_keys::ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            kid: Set(kid.clone()),
            secret_encrypted: Set(stored),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&self.ctx.db)
        .await?;
        Ok(IssuedEmbedKey {
            kid,
            secret,
            created_at: now.and_utc(),
        })
    }

    /// The caller's embed keys, newest first.
    pub async fn list_keys(&self, user_id: Id) -> Result<Vec<EmbedKey>> {
        let rows = embed_keys::Entity::find()
            .filter(embed_keys::Column::UserId.eq(user_id))
            .order_by_desc(embed_keys::Column::CreatedAt)
            .order_by_desc(embed_keys::Column::Id)
            .all(&self.ctx.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|k| EmbedKey {
                kid: k.kid,
                created_at: k.created_at.and_utc(),
            })
            .collect())
    }

    /// Revokes a key: tokens it signed stop working at once.
    pub async fn revoke_key(&self, user_id: Id, kid: &str) -> Result<()> {
        let result = embed_keys::Entity::delete_many()
            .filter(embed_keys::Column::UserId.eq(user_id))
            .filter(embed_keys::Column::Kid.eq(kid))
            .exec(&self.ctx.db)
            .await?;
        if result.rows_affected == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// Views of the chart's embeds per UTC day from `from` to `to` (inclusive; default the
    /// last 30 days), at most [`MAX_ANALYTICS_DAYS`] days; only days with views.
    pub async fn analytics(
        &self,
        user_id: Id,
        chart_id: Id,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<AnalyticsDay>> {
        let today = self.ctx.clock.now().date_naive();
        let to = to.unwrap_or(today);
        let from = from.unwrap_or(to - Duration::days(29));
        if from > to {
            return Err(Error::validation("from must not be after to"));
        }
        if (to - from).num_days() + 1 > MAX_ANALYTICS_DAYS {
            return Err(Error::validation(format!(
                "a range covers at most {MAX_ANALYTICS_DAYS} days"
            )));
        }
        self.charts
            .find(&self.ctx.db, user_id, chart_id, Role::Owner)
            .await?;
        use entity::embed_analytics as ea;
        let rows = ea::Entity::find()
            .filter(ea::Column::ChartId.eq(chart_id))
            .filter(ea::Column::Day.gte(from))
            .filter(ea::Column::Day.lte(to))
            .order_by_asc(ea::Column::Day)
            .order_by_asc(ea::Column::ReferrerHost)
            .all(&self.ctx.db)
            .await?;
        let mut days: Vec<AnalyticsDay> = Vec::new();
        for row in rows {
            if days.last().is_none_or(|d| d.day != row.day) {
                days.push(AnalyticsDay {
                    day: row.day,
                    views: 0,
                    unique_visitors: 0,
                    referrers: BTreeMap::new(),
                });
            }
            if let Some(day) = days.last_mut() {
                day.views += i64::from(row.views);
                day.unique_visitors += i64::from(row.unique_visitors);
                *day.referrers.entry(row.referrer_host).or_default() += i64::from(row.views);
            }
        }
        Ok(days)
    }

    /// Deletes salts and visitor hashes of days before yesterday: after that no visitor
    /// can be linked to anything. Runs by itself when the day changes; exposed for the
    /// server's start-up and periodic sweeps. Returns the rows removed.
    pub async fn prune(&self) -> Result<u64> {
        let cutoff = self.ctx.clock.now().date_naive() - Duration::days(1);
        let salts = entity::embed_salts::Entity::delete_many()
            .filter(entity::embed_salts::Column::Day.lt(cutoff))
            .exec(&self.ctx.db)
            .await?;
        let visitors = entity::embed_visitors::Entity::delete_many()
            .filter(entity::embed_visitors::Column::Day.lt(cutoff))
            .exec(&self.ctx.db)
            .await?;
        Ok(salts.rows_affected + visitors.rows_affected)
    }

    async fn verify_token(&self, code: &str, owner: Id, token: Option<&str>) -> Result<()> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
        let refused = || Error::Unauthorized(Unauthenticated::EmbedToken);
        let token = token.filter(|t| !t.is_empty()).ok_or_else(refused)?;
        let header = decode_header(token).map_err(|_| refused())?;
        if header.alg != Algorithm::HS256 {
            return Err(refused());
        }
        let kid = header.kid.ok_or_else(refused)?;
        let key = embed_keys::Entity::find()
            .filter(embed_keys::Column::Kid.eq(kid.as_str()))
            .filter(embed_keys::Column::UserId.eq(owner))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(refused)?;
        let secret = self
            .ctx
            .keyring()?
            .decrypt(&key.secret_encrypted, key.id.to_string().as_bytes())?;
        #[derive(Deserialize)]
        struct Claims {
            exp: i64,
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the domain's clock; presence is checked here.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.sub = Some(code.to_owned());
        let claims = decode::<Claims>(token, &DecodingKey::from_secret(&secret), &validation)
            .map_err(|_| refused())?
            .claims;
        let now = self.ctx.clock.now().timestamp();
        let latest = now + MAX_TOKEN_LIFETIME.num_seconds() + TOKEN_LEEWAY_SECS;
        if claims.exp < now - TOKEN_LEEWAY_SECS || claims.exp > latest {
            return Err(refused());
        }
        Ok(())
    }

    /// Counts one view: see the module documentation.
    async fn count(&self, chart_id: Id, visit: &Visit) -> Result<()> {
        let now = self.ctx.clock.now_naive();
        let day = now.date();
        let salt = self.salt_of(day).await?;
        let host = referrer_host(visit.referrer.as_deref());
        let visitor = {
            let mut hash = Sha256::new();
            for part in [
                salt.as_bytes(),
                chart_id.to_string().as_bytes(),
                visit.client.as_bytes(),
                visit.user_agent.as_bytes(),
            ] {
                // Length-prefixed, so that no two different visits hash the same text.
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part);
            }
            hex::encode(hash.finalize())
        };
        let backend = self.ctx.db.get_database_backend();
        let chart = db::id_value(backend, chart_id);
        let row_id = db::id_value(backend, Id::new_v4());
        match backend {
            DbBackend::Postgres => {
                // The visitor insert and the count in ONE statement: the CTE's row exists
                // only for the first view of this visitor, so `unique_visitors` grows by
                // exactly one per visitor however many views race.
                self.ctx
                    .db
                    .execute_raw(Statement::from_sql_and_values(
                        backend,
                        "WITH seen AS ( \
                             INSERT INTO embed_visitors (chart_id, day, referrer_host, visitor_hash) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1 \
                         ) \
                         INSERT INTO embed_analytics \
                             (id, chart_id, day, referrer_host, views, unique_visitors, created_at, updated_at) \
                         VALUES ($5, $1, $2, $3, 1, (SELECT COUNT(*) FROM seen), $6, $6) \
                         ON CONFLICT (chart_id, day, referrer_host) DO UPDATE \
                            SET views = embed_analytics.views + 1, \
                                unique_visitors = embed_analytics.unique_visitors + EXCLUDED.unique_visitors, \
                                updated_at = EXCLUDED.updated_at",
                        [
                            chart,
                            day.into(),
                            host.into(),
                            visitor.into(),
                            row_id,
                            now.into(),
                        ],
                    ))
                    .await
                    .map_err(Error::parent_gone)?;
            }
            _ => {
                // SQLite cannot put an INSERT in a CTE; the write lock of BEGIN IMMEDIATE
                // makes the two statements one step for every other writer.
                let txn = db::begin_write(&self.ctx.db).await?;
                let seen = txn
                    .execute_raw(Statement::from_sql_and_values(
                        backend,
                        "INSERT INTO embed_visitors (chart_id, day, referrer_host, visitor_hash) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        [
                            chart.clone(),
                            day.into(),
                            host.clone().into(),
                            visitor.into(),
                        ],
                    ))
                    .await
                    .map_err(Error::parent_gone)?
                    .rows_affected();
                txn.execute_raw(Statement::from_sql_and_values(
                    backend,
                    "INSERT INTO embed_analytics \
                         (id, chart_id, day, referrer_host, views, unique_visitors, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 1, $5, $6, $6) \
                     ON CONFLICT (chart_id, day, referrer_host) DO UPDATE \
                        SET views = embed_analytics.views + 1, \
                            unique_visitors = embed_analytics.unique_visitors + excluded.unique_visitors, \
                            updated_at = excluded.updated_at",
                    [
                        row_id,
                        chart,
                        day.into(),
                        host.into(),
                        (seen as i32).into(),
                        now.into(),
                    ],
                ))
                .await?;
                txn.commit().await?;
            }
        }
        Ok(())
    }

    /// The salt of `day`: created by whichever process asks first (the insert that loses
    /// the race does nothing), then read back, so every process hashes with the same one.
    /// A new day also prunes what is now older than yesterday.
    async fn salt_of(&self, day: NaiveDate) -> Result<String> {
        if let Some((cached_day, salt)) = self.salt.lock().ok().and_then(|s| s.clone())
            && cached_day == day
        {
            return Ok(salt);
        }
        use entity::embed_salts as es;
        es::Entity::insert(es::ActiveModel {
            day: Set(day),
            salt: Set(hex::encode(rand::random::<[u8; 32]>())),
            created_at: Set(self.ctx.clock.now_naive()),
        })
        .on_conflict_do_nothing_on([es::Column::Day])
        .exec_without_returning(&self.ctx.db)
        .await?;
        let salt = es::Entity::find_by_id(day)
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::Internal("the day's salt vanished".to_owned()))?
            .salt;
        if let Err(err) = self.prune().await {
            tracing::warn!(error = %err, "pruning old embed salts failed");
        }
        if let Ok(mut cached) = self.salt.lock() {
            *cached = Some((day, salt.clone()));
        }
        Ok(salt)
    }

    /// A fresh code, reserved for ever in `embed_codes` (a taken one is drawn again).
    async fn reserve_code(&self) -> Result<String> {
        for _ in 0..5 {
            let code = codes::random(CODE_LEN)?;
            let outcome = embed_codes::Entity::insert(embed_codes::ActiveModel {
                code: Set(code.clone()),
                created_at: Set(self.ctx.clock.now_naive()),
            })
            .on_conflict_do_nothing_on([embed_codes::Column::Code])
            .exec_without_returning(&self.ctx.db)
            .await?;
            if matches!(outcome, TryInsertResult::Inserted(n) if n > 0) {
                return Ok(code);
            }
        }
        Err(Error::Internal(
            "no free embed code after several attempts".into(),
        ))
    }
}

#[derive(FromQueryResult)]
struct OpenRow {
    chart_id: String,
    mode: String,
    allowed_origins: String,
    snapshot: String,
    published_at: chrono::NaiveDateTime,
    owner_id: String,
}

fn parse_id(text: &str) -> Result<Id> {
    text.parse()
        .map_err(|_| Error::Internal(format!("stored id {text:?} is not a UUID")))
}

/// The embed's activity row (object: the chart), in the transaction of its change. Only
/// the owner manages embeds, so the row lands in the actor's own feed.
async fn log<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    now: chrono::NaiveDateTime,
    chart_id: Id,
    verb: &'static str,
) -> Result<()> {
    let analysis_id = access::analysis_of_chart(conn, chart_id).await?;
    activity::record(
        conn,
        actor,
        now,
        Entry {
            owner_id: actor.user_id,
            analysis_id,
            verb,
            object_type: "embed",
            object_id: chart_id,
            metadata: serde_json::json!({}),
        },
    )
    .await
}

/// `SELECT id FROM charts WHERE analysis_id IN (the caller's analyses)`.
fn charts_of(user_id: Id) -> SelectStatement {
    Query::select()
        .column(charts::Column::Id)
        .from(charts::Entity)
        .and_where(charts::Column::AnalysisId.in_subquery(analyses_reachable(user_id, Role::Owner)))
        .to_owned()
}

/// Each origin as `scheme://host[:port]`, lower-case, http or https, nothing else; de-
/// duplicated in the given order.
fn normalize_origins(origins: Vec<String>) -> Result<Vec<String>> {
    if origins.len() > MAX_ALLOWED_ORIGINS {
        return Err(Error::validation(format!(
            "allowed_origins lists at most {MAX_ALLOWED_ORIGINS} origins"
        )));
    }
    let mut normalized: Vec<String> = Vec::with_capacity(origins.len());
    for origin in origins {
        let bad = || {
            Error::validation(format!(
                "allowed_origins: {origin:?} is not an origin like https://example.com"
            ))
        };
        let url = url::Url::parse(&origin).map_err(|_| bad())?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && !origin.trim_end_matches('/').ends_with('.');
        if !plain || origin.len() > 255 {
            return Err(bad());
        }
        let text = url.origin().ascii_serialization();
        if !normalized.contains(&text) {
            normalized.push(text);
        }
    }
    Ok(normalized)
}

/// False only for a frame load whose embedding page (by its `Referer`) is not an allowed
/// origin: the browser will not show it, so it is no view.
fn frame_allowed(visit: &Visit, allowed_origins: &[String]) -> bool {
    if !visit.framed || allowed_origins.is_empty() {
        return true;
    }
    let Some(origin) = visit
        .referrer
        .as_deref()
        .and_then(|r| url::Url::parse(r).ok())
        .map(|u| u.origin().ascii_serialization())
    else {
        // No referrer (a page with `no-referrer`): the browser decides; count it.
        return true;
    };
    allowed_origins.contains(&origin)
}

/// The referrer's host, lower-case, without port; `""` when there is none or it is not a
/// URL with a host.
fn referrer_host(referrer: Option<&str>) -> String {
    referrer
        .and_then(|r| url::Url::parse(r).ok())
        .and_then(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
        .map(|h| h.trim_end_matches('.').to_owned())
        .filter(|h| h.len() <= MAX_HOST_LEN)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_plain_and_normalized() {
        let ok = normalize_origins(vec![
            "https://Example.com".into(),
            "https://example.com/".into(),
            "http://localhost:8080".into(),
        ])
        .unwrap();
        assert_eq!(ok, ["https://example.com", "http://localhost:8080"]);
        for bad in [
            "example.com",
            "https://example.com/page",
            "https://example.com?x=1",
            "javascript:alert(1)",
            "ftp://example.com",
            "https://user@example.com",
            "https://a.com; script-src *",
            "*",
        ] {
            assert!(normalize_origins(vec![bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn frames_refused_by_the_browser_are_not_views() {
        let allowed = vec!["https://blog.example.com".to_owned()];
        let framed_from = |referrer: Option<&str>| Visit {
            referrer: referrer.map(str::to_owned),
            framed: true,
            ..Visit::default()
        };
        assert!(frame_allowed(
            &framed_from(Some("https://blog.example.com/post")),
            &allowed
        ));
        assert!(!frame_allowed(
            &framed_from(Some("https://evil.example.com/")),
            &allowed
        ));
        assert!(!frame_allowed(
            &framed_from(Some("https://blog.example.com:444/")),
            &allowed
        ));
        assert!(frame_allowed(&framed_from(None), &allowed));
        assert!(frame_allowed(
            &framed_from(Some("https://evil.example.com/")),
            &[]
        ));
        let opened = Visit {
            referrer: Some("https://evil.example.com/".to_owned()),
            ..Visit::default()
        };
        assert!(frame_allowed(&opened, &allowed), "a link, not a frame");
    }

    #[test]
    fn only_the_referrer_host_is_kept() {
        assert_eq!(
            referrer_host(Some("https://Blog.Example.com:8443/post/1?utm=x#y")),
            "blog.example.com"
        );
        assert_eq!(referrer_host(None), "");
        assert_eq!(referrer_host(Some("not a url")), "");
        assert_eq!(referrer_host(Some("about:blank")), "");
    }
}
