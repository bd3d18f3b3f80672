//! Templates: reusable analyses that authors publish, buyers purchase and rate (PHASES.md,
//! phase 5).
//!
//! - An author makes a template from an analysis they own: a copy of its `config` and its
//!   charts, and `inputs`, the columns of its dataset that the query and the charts name
//!   (with their types). It starts as a draft, seen by its author only; publishing puts
//!   it in the gallery, which anyone may read without logging in.
//! - A free template is bought at once; a paid one through a Checkout Session of the
//!   payment provider, and the purchase is recorded when its webhook arrives
//!   ([`complete_purchase`]). One purchase per buyer and template; an author does not buy
//!   their own template ([`Error::Conflict`]).
//! - Using a template makes a new analysis (and its charts) of the caller's on one of
//!   their datasets, through the very code paths that create analyses and charts; it needs
//!   a purchase, a free template or authorship ([`Error::PurchaseRequired`]), and a
//!   dataset with every input column ([`Error::Validation`] naming those missing).
//! - Buyers rate (1 to 5, one rating each, a second replaces the first). The template's
//!   `rating_count`/`rating_sum` are recomputed from the ratings while the template row is
//!   locked, so they stay exact under concurrent ratings.
//!
//! A paid template's `config` and chart configs are what is sold: they are shown to its
//! author and its buyers only (`unlocked`); everyone else sees its name, description,
//! chart names and types, inputs, price and stats.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDateTime, Utc};
use entity::{charts, datasets, template_purchases, templates, users};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::{self, Actor, Role};
use crate::activity::{self, Entry};
use crate::billing::{CheckoutMode, CheckoutRequest};
use crate::charts::{ChartConfig, ChartType, NewChart};
use crate::db::{begin_write, id_value};
use crate::pagination::{Page, PageRequest};
use crate::query::{Query, QueryRequest};
use crate::{Analysis, Chart, Context, DataColumn, DataType, Error, Id, Result};

/// Longest template description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Longest rating review, in characters.
pub const MAX_REVIEW_CHARS: usize = 10_000;
/// Highest price, in the currency's smallest unit (Stripe's limit for one payment).
pub const MAX_PRICE_CENTS: i64 = 99_999_999;
/// Longest gallery search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 255;

const DRAFT: &str = "draft";
const PUBLISHED: &str = "published";

/// Whether a template is in the gallery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TemplateStatus {
    /// Seen by its author only.
    Draft,
    /// In the gallery.
    Published,
}

impl TemplateStatus {
    fn parse_stored(s: &str) -> Result<Self> {
        match s {
            DRAFT => Ok(Self::Draft),
            PUBLISHED => Ok(Self::Published),
            other => Err(Error::Internal(format!(
                "unknown stored template status {other:?}"
            ))),
        }
    }
}

/// A chart as a template holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateChart {
    /// The chart's name.
    pub name: String,
    /// How it draws.
    pub chart_type: ChartType,
    /// What it draws; `None` where the template is not unlocked for the reader.
    pub config: Option<ChartConfig>,
}

/// A template, as the gallery and its author see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// Its id.
    pub id: Id,
    /// Its author.
    pub author_id: Id,
    /// The author's full name, if they gave one.
    pub author_name: Option<String>,
    /// The analysis it was made from (`None` once that analysis is deleted).
    pub source_analysis_id: Option<Id>,
    /// 1 to 255 characters.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The analysis's `config` as copied; `None` where the template is not unlocked for the
    /// reader (or the analysis had none).
    pub config: Option<Value>,
    /// The charts as copied.
    pub charts: Vec<TemplateChart>,
    /// The dataset columns the query and the charts need, with their types.
    pub inputs: Vec<DataColumn>,
    /// The price in the currency's smallest unit; 0 is free.
    pub price_cents: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    /// Draft or published.
    pub status: TemplateStatus,
    /// When it was first published.
    pub published_at: Option<DateTime<Utc>>,
    /// Ratings given.
    pub rating_count: i64,
    /// Their mean (`None` without ratings).
    pub rating_avg: Option<f64>,
    /// Purchases recorded.
    pub purchase_count: i64,
    /// Whether the reader sees `config` and the chart configs: the author, a buyer, or
    /// anyone for a free template.
    pub unlocked: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change by its author.
    pub updated_at: DateTime<Utc>,
}

/// What an author gives to make a template.
#[derive(Clone, Debug)]
pub struct NewTemplate {
    /// One of the author's analyses.
    pub analysis_id: Id,
    /// 1 to 255 characters, stored trimmed.
    pub name: String,
    /// At most [`MAX_DESCRIPTION_CHARS`] characters.
    pub description: Option<String>,
    /// 0 (free) to [`MAX_PRICE_CENTS`].
    pub price_cents: i64,
    /// Three lower-case letters; `usd` when absent.
    pub currency: Option<String>,
}

/// A partial update: `None` leaves a field unchanged; `description: Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct TemplateChange {
    /// New name.
    pub name: Option<String>,
    /// New description, or none.
    pub description: Option<Option<String>>,
    /// New price.
    pub price_cents: Option<i64>,
    /// New currency.
    pub currency: Option<String>,
}

/// The gallery's orders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum GallerySort {
    /// Highest mean rating first (unrated last), then most ratings.
    Rating,
    /// Most purchases first.
    Popular,
    /// Most recently published first.
    #[default]
    New,
}

/// A gallery request.
#[derive(Clone, Debug, Default)]
pub struct GalleryQuery {
    /// The order.
    pub sort: GallerySort,
    /// Only templates whose name contains this text (case-insensitive).
    pub q: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A recorded purchase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purchase {
    /// Its id.
    pub id: Id,
    /// The template bought.
    pub template_id: Id,
    /// The buyer.
    pub buyer_id: Id,
    /// The price paid, in the currency's smallest unit.
    pub price_cents: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// What a purchase request led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PurchaseOutcome {
    /// A free template: bought.
    Purchased(Purchase),
    /// A paid template: pay on this page; the purchase is recorded when the provider
    /// confirms the payment.
    Checkout {
        /// The Checkout Session's page.
        url: String,
    },
}

/// The analysis a template was used for, and its charts.
#[derive(Clone, Debug, PartialEq)]
pub struct UsedTemplate {
    /// The new analysis, the caller's.
    pub analysis: Analysis,
    /// Its charts, in the template's order.
    pub charts: Vec<Chart>,
}

/// Templates: authoring, the gallery, purchases, use and ratings.
#[derive(Clone)]
pub struct Templates {
    ctx: Context,
}

impl Templates {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// Makes a draft template of the analysis `new.analysis_id`, which the actor owns
    /// (a collaborator: [`Error::Forbidden`]; anyone else: [`Error::NotFound`]). The
    /// query may read only the analysis's own dataset (`config.query.tables` is refused).
    pub async fn create(&self, actor: impl Into<Actor>, new: NewTemplate) -> Result<Template> {
        let actor = actor.into();
        let name = crate::text::validate_name(new.name, true)?;
        let description = validate_description(new.description)?;
        let price_cents = validate_price(new.price_cents)?;
        let currency = validate_currency(new.currency.as_deref().unwrap_or("usd"))?;
        let (analysis, _) =
            access::analysis_for(&self.ctx.db, actor.user_id, new.analysis_id, Role::Owner).await?;
        let request = QueryRequest::from_config(analysis.config.as_ref())
            .map_err(|failure| Error::validation(failure.message))?;
        if request.as_ref().is_some_and(|r| !r.tables.is_empty()) {
            return Err(Error::validation(
                "a template's query reads only its analysis's dataset: remove config.query.tables",
            ));
        }
        let chart_rows = charts::Entity::find()
            .filter(charts::Column::AnalysisId.eq(analysis.id))
            .order_by_asc(charts::Column::CreatedAt)
            .order_by_asc(charts::Column::Id)
            .all(&self.ctx.db)
            .await?;
        let template_charts = chart_rows
            .into_iter()
            .map(|row| {
                Ok(TemplateChart {
                    chart_type: row.chart_type.parse()?,
                    config: Some(serde_json::from_value(row.config).map_err(|e| {
                        Error::Internal(format!("stored chart config unreadable: {e}"))
                    })?),
                    name: row.name,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let known = match analysis.dataset_id {
            Some(dataset_id) => {
                match crate::Datasets::new(self.ctx.clone())
                    .get(actor.user_id, dataset_id)
                    .await
                {
                    Ok(dataset) => dataset.columns,
                    Err(Error::NotFound) => None,
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let inputs = inputs_of(
            request.as_ref().map(|r| &r.query),
            &template_charts,
            known.as_deref(),
        );
        let now = self.ctx.clock.now_naive();
        let row = templates::Model {
            id: Id::new_v4(),
            author_id: actor.user_id,
            source_analysis_id: Some(analysis.id),
            name,
            description,
            config: analysis.config.clone(),
            charts: to_json(&template_charts)?,
            inputs: to_json(&inputs)?,
            price_cents,
            currency,
            status: DRAFT.to_owned(),
            published_at: None,
            rating_count: 0,
            rating_sum: 0,
            purchase_count: 0,
            created_at: now,
            updated_at: now,
        };
        let txn = begin_write(&self.ctx.db).await?;
        templates::Entity::insert(active_of(&row))
            .exec_without_returning(&txn)
            .await
            .map_err(Error::parent_gone)?;
        log(&txn, &actor, now, &row, "template.created").await?;
        let author_name = name_of(&txn, row.author_id).await?;
        txn.commit().await?;
        template_of(row, author_name, true)
    }

    /// The template `id`: a published one for anyone (`viewer` `None` without a login),
    /// a draft for its author only ([`Error::NotFound`] for everyone else).
    pub async fn get(&self, viewer: Option<Id>, id: Id) -> Result<Template> {
        let row = visible(&self.ctx.db, viewer, id).await?;
        let unlocked = match viewer {
            Some(viewer) => entitled(&self.ctx.db, viewer, &row).await?,
            None => row.price_cents == 0,
        };
        let author_name = name_of(&self.ctx.db, row.author_id).await?;
        template_of(row, author_name, unlocked)
    }

    /// The gallery: published templates only, in `query.sort` order, optionally only
    /// those whose name contains `query.q`. Pages are positions in that order (the
    /// cursor is an offset): a template that moves between two pages (a new rating, a
    /// purchase) may be seen twice or not at all.
    pub async fn gallery(&self, query: &GalleryQuery) -> Result<Page<Template>> {
        let limit = PageRequest::new(query.limit, None)?.limit;
        let offset = match query.cursor.as_deref() {
            Some(raw) => decode_offset(raw)?,
            None => 0,
        };
        let mut select = templates::Entity::find().filter(templates::Column::Status.eq(PUBLISHED));
        if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            if q.chars().count() > MAX_SEARCH_CHARS {
                return Err(Error::validation(format!(
                    "q is at most {MAX_SEARCH_CHARS} characters"
                )));
            }
            let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
            select = select.filter(
                Expr::expr(Func::lower(Expr::col((
                    templates::Entity,
                    templates::Column::Name,
                ))))
                .like(LikeExpr::new(pattern).escape('\\')),
            );
        }
        select = match query.sort {
            GallerySort::New => select,
            GallerySort::Popular => select.order_by_desc(templates::Column::PurchaseCount),
            GallerySort::Rating => select
                .order_by(
                    Expr::cust(
                        "CASE WHEN rating_count > 0 THEN rating_sum * 1.0 / rating_count ELSE 0 END",
                    ),
                    Order::Desc,
                )
                .order_by_desc(templates::Column::RatingCount),
        };
        let rows = select
            .order_by_desc(templates::Column::PublishedAt)
            .order_by_desc(templates::Column::Id)
            .offset(offset)
            .limit(limit + 1)
            .all(&self.ctx.db)
            .await?;
        let has_more = rows.len() as u64 > limit;
        let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
        let authors: Vec<Id> = rows.iter().map(|t| t.author_id).collect();
        let names: Vec<(Id, Option<String>)> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .column(users::Column::FullName)
            .filter(users::Column::Id.is_in(authors))
            .into_tuple()
            .all(&self.ctx.db)
            .await?;
        let next_cursor = has_more.then(|| encode_offset(offset + limit));
        let items = rows
            .into_iter()
            .map(|row| {
                let name = names
                    .iter()
                    .find(|(id, _)| *id == row.author_id)
                    .and_then(|(_, n)| n.clone());
                let free = row.price_cents == 0;
                template_of(row, name, free)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next_cursor })
    }

    /// Changes the name, description, price or currency (the author only; anyone else:
    /// [`Error::NotFound`]). A price change applies to purchases not yet made.
    pub async fn update(
        &self,
        actor: impl Into<Actor>,
        id: Id,
        change: TemplateChange,
    ) -> Result<Template> {
        let actor = actor.into();
        let now = self.ctx.clock.now_naive();
        let mut active = templates::ActiveModel {
            updated_at: Set(now),
            ..Default::default()
        };
        if let Some(name) = change.name {
            active.name = Set(crate::text::validate_name(name, true)?);
        }
        if let Some(description) = change.description {
            active.description = Set(validate_description(description)?);
        }
        if let Some(price_cents) = change.price_cents {
            active.price_cents = Set(validate_price(price_cents)?);
        }
        if let Some(currency) = change.currency {
            active.currency = Set(validate_currency(&currency)?);
        }
        let txn = begin_write(&self.ctx.db).await?;
        let row = templates::Entity::update_many()
            .set(active)
            .filter(templates::Column::Id.eq(id))
            .filter(templates::Column::AuthorId.eq(actor.user_id))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
            .ok_or(Error::NotFound)?;
        log(&txn, &actor, now, &row, "template.updated").await?;
        let author_name = name_of(&txn, row.author_id).await?;
        txn.commit().await?;
        template_of(row, author_name, true)
    }

    /// Deletes the template (the author only; anyone else: [`Error::NotFound`]), with its
    /// purchases and ratings. Analyses made from it stay: they are their users' copies.
    pub async fn delete(&self, actor: impl Into<Actor>, id: Id) -> Result<()> {
        let actor = actor.into();
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let row = templates::Entity::find_by_id(id)
            .filter(templates::Column::AuthorId.eq(actor.user_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let deleted = templates::Entity::delete_many()
            .filter(templates::Column::Id.eq(id))
            .filter(templates::Column::AuthorId.eq(actor.user_id))
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(Error::NotFound);
        }
        log(&txn, &actor, now, &row, "template.deleted").await?;
        txn.commit().await?;
        Ok(())
    }

    /// Publishes the template to the gallery (the author only; anyone else:
    /// [`Error::NotFound`]). Publishing again changes nothing; `published_at` stays the
    /// first publication's.
    pub async fn publish(&self, actor: impl Into<Actor>, id: Id) -> Result<Template> {
        let actor = actor.into();
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let row = templates::Entity::find_by_id(id)
            .filter(templates::Column::AuthorId.eq(actor.user_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let row = if row.status == PUBLISHED {
            row
        } else {
            let row = templates::Entity::update_many()
                .set(templates::ActiveModel {
                    status: Set(PUBLISHED.to_owned()),
                    published_at: Set(Some(row.published_at.unwrap_or(now))),
                    updated_at: Set(now),
                    ..Default::default()
                })
                .filter(templates::Column::Id.eq(id))
                .filter(templates::Column::AuthorId.eq(actor.user_id))
                .exec_with_returning(&txn)
                .await?
                .into_iter()
                .next()
                .ok_or(Error::NotFound)?;
            log(&txn, &actor, now, &row, "template.published").await?;
            row
        };
        let author_name = name_of(&txn, row.author_id).await?;
        txn.commit().await?;
        template_of(row, author_name, true)
    }

    /// Buys the published template `id`. Free: the purchase is recorded now
    /// ([`PurchaseOutcome::Purchased`]). Paid: a Checkout Session of the payment provider
    /// (one-time payment of the price, `client_reference_id` = the buyer,
    /// `metadata[template_id]`), whose page is returned; the webhook records the purchase
    /// (`complete_purchase`). The provider sends the buyer back to
    /// `{public_url}/templates/{id}?checkout=success|cancel` (the billing configuration's
    /// public URL).
    ///
    /// A second purchase, and the author buying their own template, are
    /// [`Error::Conflict`]; a draft is [`Error::NotFound`] to all but its author; paid
    /// without a payment provider: [`Error::NotConfigured`].
    pub async fn purchase(&self, actor: impl Into<Actor>, id: Id) -> Result<PurchaseOutcome> {
        let actor = actor.into();
        let buyer = actor.user_id;
        let row = visible(&self.ctx.db, Some(buyer), id).await?;
        if row.author_id == buyer {
            return Err(Error::Conflict(
                "you are this template's author: it is yours to use already".to_owned(),
            ));
        }
        if purchased(&self.ctx.db, buyer, id).await? {
            return Err(already_bought());
        }
        if row.price_cents == 0 {
            let now = self.ctx.clock.now_naive();
            let txn = begin_write(&self.ctx.db).await?;
            let purchase = record_purchase(&txn, now, id, buyer, None).await?;
            let Some(purchase) = purchase else {
                return Err(already_bought());
            };
            txn.commit().await?;
            return Ok(PurchaseOutcome::Purchased(purchase));
        }
        let payments = self.ctx.payments()?.clone();
        let email: Option<String> = users::Entity::find_by_id(buyer)
            .select_only()
            .column(users::Column::Email)
            .into_tuple()
            .one(&self.ctx.db)
            .await?;
        let session = payments
            .create_checkout(&CheckoutRequest {
                mode: CheckoutMode::Payment {
                    amount_cents: i64::from(row.price_cents),
                    currency: row.currency.clone(),
                    product_name: row.name.clone(),
                },
                client_reference_id: buyer,
                customer: None,
                customer_email: email,
                metadata: vec![("template_id".to_owned(), id.to_string())],
                success_url: self
                    .ctx
                    .billing
                    .return_url(&format!("/templates/{id}?checkout=success")),
                cancel_url: self
                    .ctx
                    .billing
                    .return_url(&format!("/templates/{id}?checkout=cancel")),
            })
            .await?;
        Ok(PurchaseOutcome::Checkout { url: session.url })
    }

    /// Makes a new analysis of the actor's on their dataset `dataset_id` from the template
    /// `id` (named `name`, or the template's name), with the template's charts, through
    /// the rules that create analyses and charts. Needs authorship, a free published
    /// template or a purchase ([`Error::PurchaseRequired`]); the dataset must be the
    /// actor's ([`Error::NotFound`]) and have every input column ([`Error::Validation`]
    /// naming the missing ones). Should a chart be refused, the new analysis is deleted
    /// again.
    pub async fn use_template(
        &self,
        actor: impl Into<Actor>,
        id: Id,
        dataset_id: Id,
        name: Option<String>,
    ) -> Result<UsedTemplate> {
        let actor = actor.into();
        let row = visible(&self.ctx.db, Some(actor.user_id), id).await?;
        if !entitled(&self.ctx.db, actor.user_id, &row).await? {
            return Err(Error::PurchaseRequired);
        }
        let owned = datasets::Entity::find()
            .filter(datasets::Column::Id.eq(dataset_id))
            .filter(datasets::Column::UserId.eq(actor.user_id))
            .count(&self.ctx.db)
            .await?;
        if owned == 0 {
            return Err(Error::NotFound);
        }
        let inputs: Vec<DataColumn> = from_json(row.inputs.clone(), "inputs")?;
        if !inputs.is_empty() {
            let dataset = crate::Datasets::new(self.ctx.clone())
                .get(actor.user_id, dataset_id)
                .await?;
            let Some(columns) = dataset.columns else {
                return Err(Error::validation(format!(
                    "the columns of dataset {dataset_id} are not known (its file could not be read), \
                     so the template's inputs cannot be checked: {}",
                    names(&inputs)
                )));
            };
            let missing: Vec<DataColumn> = inputs
                .into_iter()
                .filter(|input| !columns.iter().any(|c| c.name == input.name))
                .collect();
            if !missing.is_empty() {
                return Err(Error::validation(format!(
                    "the dataset lacks the template's input columns: {}",
                    names(&missing)
                )));
            }
        }
        let template_charts: Vec<TemplateChart> = from_json(row.charts.clone(), "charts")?;
        let analyses = crate::Analyses::new(self.ctx.clone());
        let analysis = analyses
            .create(
                actor.clone(),
                crate::NewAnalysis {
                    name: name.unwrap_or_else(|| row.name.clone()),
                    dataset_id: Some(dataset_id),
                    config: row.config.clone(),
                },
            )
            .await?;
        let charts = crate::Charts::new(self.ctx.clone());
        let mut made = Vec::with_capacity(template_charts.len());
        for chart in template_charts {
            let created = charts
                .create(
                    actor.clone(),
                    analysis.id,
                    NewChart {
                        name: chart.name,
                        chart_type: chart.chart_type,
                        config: chart.config.unwrap_or_default(),
                    },
                )
                .await;
            match created {
                Ok(chart) => made.push(chart),
                Err(e) => {
                    if let Err(undo) = analyses.delete(actor.clone(), analysis.id).await {
                        tracing::warn!(error = %undo, analysis_id = %analysis.id, "removing a half-made analysis failed");
                    }
                    return Err(e);
                }
            }
        }
        Ok(UsedTemplate {
            analysis,
            charts: made,
        })
    }

    /// Rates the template `id` (1 to 5, with an optional review): buyers only, never the
    /// author ([`Error::Forbidden`] for both). One rating per user: a second replaces the
    /// first. Returns the template with its new stats, exact under concurrent ratings:
    /// the template row is locked first, then the rating written, then the stats
    /// recomputed from the ratings by a statement of their own.
    pub async fn rate(
        &self,
        actor: impl Into<Actor>,
        id: Id,
        rating: i64,
        review: Option<String>,
    ) -> Result<Template> {
        let actor = actor.into();
        let user = actor.user_id;
        if !(1..=5).contains(&rating) {
            return Err(Error::validation("rating must be an integer from 1 to 5"));
        }
        let review = match review {
            Some(text) => {
                if text.chars().count() > MAX_REVIEW_CHARS {
                    return Err(Error::validation(format!(
                        "review is at most {MAX_REVIEW_CHARS} characters"
                    )));
                }
                if text.contains('\0') {
                    return Err(Error::validation("review must not contain NUL characters"));
                }
                Some(text)
            }
            None => None,
        };
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let row = lock_template(&txn, id).await?.ok_or(Error::NotFound)?;
        if row.status != PUBLISHED && row.author_id != user {
            return Err(Error::NotFound);
        }
        if row.author_id == user {
            return Err(Error::Forbidden(
                "an author does not rate their own template",
            ));
        }
        if !purchased(&txn, user, id).await? {
            return Err(Error::Forbidden("only buyers of this template rate it"));
        }
        let backend = txn.get_database_backend();
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "INSERT INTO template_ratings \
                 (id, template_id, user_id, rating, review, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (template_id, user_id) DO UPDATE \
                SET rating = excluded.rating, review = excluded.review, \
                    updated_at = excluded.updated_at",
            [
                id_value(backend, Id::new_v4()),
                id_value(backend, id),
                id_value(backend, user),
                (rating as i32).into(),
                review.into(),
                now.into(),
            ],
        ))
        .await
        .map_err(Error::parent_gone)?;
        // A statement of its own: under READ COMMITTED it sees every rating committed
        // before it, and no other rating of this template can commit meanwhile (the row
        // lock above).
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "UPDATE templates SET \
                 rating_count = (SELECT COUNT(*) FROM template_ratings WHERE template_id = $1), \
                 rating_sum = (SELECT COALESCE(SUM(rating), 0) FROM template_ratings WHERE template_id = $1) \
             WHERE id = $1",
            [id_value(backend, id)],
        ))
        .await?;
        let row = templates::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let author_name = name_of(&txn, row.author_id).await?;
        txn.commit().await?;
        template_of(row, author_name, true)
    }
}

/// Records that `buyer_id` bought `template_id` (the payment webhook's
/// `checkout.session.completed`), inside the caller's transaction. Idempotent: a purchase
/// that exists already changes nothing and returns `false`. An unknown (deleted) template
/// or buyer records nothing and returns `false` too: the payment happened, the webhook
/// must not fail forever over it.
pub(crate) async fn complete_purchase<C: ConnectionTrait>(
    conn: &C,
    now: NaiveDateTime,
    template_id: Id,
    buyer_id: Id,
    stripe_session_id: Option<&str>,
) -> Result<bool> {
    Ok(
        record_purchase(conn, now, template_id, buyer_id, stripe_session_id)
            .await?
            .is_some(),
    )
}

/// Inserts the purchase and counts it, unless the buyer has one already (or the session
/// was recorded already): `None` then, and nothing changes. The template row is locked
/// first (PostgreSQL; SQLite's write transaction is exclusive already), so a template
/// deleted meanwhile is seen as gone rather than failing the insert.
async fn record_purchase<C: ConnectionTrait>(
    conn: &C,
    now: NaiveDateTime,
    template_id: Id,
    buyer_id: Id,
    stripe_session_id: Option<&str>,
) -> Result<Option<Purchase>> {
    let Some(template) = lock_template(conn, template_id).await? else {
        return Ok(None);
    };
    let backend = conn.get_database_backend();
    let buyer = users::Entity::find_by_id(buyer_id)
        .select_only()
        .column(users::Column::Id);
    let buyer = if backend == DbBackend::Postgres {
        buyer.lock(LockType::KeyShare)
    } else {
        buyer
    };
    let buyer: Option<Id> = buyer.into_tuple().one(conn).await?;
    if buyer.is_none() {
        return Ok(None);
    }
    let purchase = Purchase {
        id: Id::new_v4(),
        template_id,
        buyer_id,
        price_cents: i64::from(template.price_cents),
        currency: template.currency.clone(),
        created_at: now.and_utc(),
    };
    let inserted = conn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            "INSERT INTO template_purchases \
                 (id, template_id, buyer_id, price_cents, currency, stripe_session_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT DO NOTHING",
            [
                id_value(backend, purchase.id),
                id_value(backend, template_id),
                id_value(backend, buyer_id),
                template.price_cents.into(),
                template.currency.into(),
                stripe_session_id.map(str::to_owned).into(),
                now.into(),
            ],
        ))
        .await?
        .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        "UPDATE templates SET purchase_count = purchase_count + 1 WHERE id = $1",
        [id_value(backend, template_id)],
    ))
    .await?;
    Ok(Some(purchase))
}

fn already_bought() -> Error {
    Error::Conflict("you have bought this template already".to_owned())
}

/// The template row, locked until the transaction ends on PostgreSQL (`FOR NO KEY
/// UPDATE`: purchases and ratings, which only reference it, still insert).
async fn lock_template<C: ConnectionTrait>(conn: &C, id: Id) -> Result<Option<templates::Model>> {
    let query = templates::Entity::find_by_id(id);
    let query = if conn.get_database_backend() == DbBackend::Postgres {
        query.lock(LockType::NoKeyUpdate)
    } else {
        query
    };
    Ok(query.one(conn).await?)
}

/// The template `id` as `viewer` may see it: published, or a draft of theirs.
async fn visible<C: ConnectionTrait>(
    conn: &C,
    viewer: Option<Id>,
    id: Id,
) -> Result<templates::Model> {
    let row = templates::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(Error::NotFound)?;
    if row.status == PUBLISHED || Some(row.author_id) == viewer {
        Ok(row)
    } else {
        Err(Error::NotFound)
    }
}

/// Whether `user_id` may use the template: its author, anyone for a free published one,
/// or a buyer.
async fn entitled<C: ConnectionTrait>(
    conn: &C,
    user_id: Id,
    row: &templates::Model,
) -> Result<bool> {
    if row.author_id == user_id || (row.price_cents == 0 && row.status == PUBLISHED) {
        return Ok(true);
    }
    purchased(conn, user_id, row.id).await
}

async fn purchased<C: ConnectionTrait>(conn: &C, user_id: Id, template_id: Id) -> Result<bool> {
    let found = template_purchases::Entity::find()
        .filter(template_purchases::Column::TemplateId.eq(template_id))
        .filter(template_purchases::Column::BuyerId.eq(user_id))
        .count(conn)
        .await?;
    Ok(found > 0)
}

async fn name_of<C: ConnectionTrait>(conn: &C, user_id: Id) -> Result<Option<String>> {
    let name: Option<Option<String>> = users::Entity::find_by_id(user_id)
        .select_only()
        .column(users::Column::FullName)
        .into_tuple()
        .one(conn)
        .await?;
    Ok(name.flatten())
}

async fn log<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    now: NaiveDateTime,
    row: &templates::Model,
    verb: &'static str,
) -> Result<()> {
    activity::record(
        conn,
        actor,
        now,
        Entry {
            owner_id: row.author_id,
            analysis_id: None,
            verb,
            object_type: "template",
            object_id: row.id,
            metadata: json!({ "name": row.name }),
        },
    )
    .await
}

fn active_of(row: &templates::Model) -> templates::ActiveModel {
    templates::ActiveModel {
        id: Set(row.id),
        author_id: Set(row.author_id),
        source_analysis_id: Set(row.source_analysis_id),
        name: Set(row.name.clone()),
        description: Set(row.description.clone()),
        config: Set(row.config.clone()),
        charts: Set(row.charts.clone()),
        inputs: Set(row.inputs.clone()),
        price_cents: Set(row.price_cents),
        currency: Set(row.currency.clone()),
        status: Set(row.status.clone()),
        published_at: Set(row.published_at),
        rating_count: Set(row.rating_count),
        rating_sum: Set(row.rating_sum),
        purchase_count: Set(row.purchase_count),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    }
}

fn template_of(
    row: templates::Model,
    author_name: Option<String>,
    unlocked: bool,
) -> Result<Template> {
    let mut charts: Vec<TemplateChart> = from_json(row.charts, "charts")?;
    if !unlocked {
        for chart in &mut charts {
            chart.config = None;
        }
    }
    let rating_count = i64::from(row.rating_count);
    Ok(Template {
        id: row.id,
        author_id: row.author_id,
        author_name,
        source_analysis_id: row.source_analysis_id,
        name: row.name,
        description: row.description,
        config: if unlocked { row.config } else { None },
        charts,
        inputs: from_json(row.inputs, "inputs")?,
        price_cents: i64::from(row.price_cents),
        currency: row.currency,
        status: TemplateStatus::parse_stored(&row.status)?,
        published_at: row.published_at.map(|t| t.and_utc()),
        rating_count,
        rating_avg: (rating_count > 0).then(|| f64::from(row.rating_sum) / rating_count as f64),
        purchase_count: i64::from(row.purchase_count),
        unlocked,
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    })
}

fn to_json<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::Internal(format!("serializing: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::Internal(format!("stored template {what} unreadable: {e}")))
}

fn names(columns: &[DataColumn]) -> String {
    columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn validate_description(description: Option<String>) -> Result<Option<String>> {
    let Some(text) = description else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::validation(format!(
            "description is at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    if text.contains('\0') {
        return Err(Error::validation(
            "description must not contain NUL characters",
        ));
    }
    Ok(Some(text))
}

fn validate_price(price_cents: i64) -> Result<i32> {
    if !(0..=MAX_PRICE_CENTS).contains(&price_cents) {
        return Err(Error::validation(format!(
            "price_cents must be an integer from 0 (free) to {MAX_PRICE_CENTS}"
        )));
    }
    Ok(price_cents as i32)
}

fn validate_currency(currency: &str) -> Result<String> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(currency.to_owned())
    } else {
        Err(Error::validation(
            "currency is an ISO 4217 code in three lower-case letters, such as usd",
        ))
    }
}

/// `%`, `_` and `\` taken literally in a `LIKE ... ESCAPE '\'` pattern.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn encode_offset(offset: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("o{offset}"))
}

fn decode_offset(raw: &str) -> Result<u64> {
    let invalid = || Error::validation("cursor is not one this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let digits = text.strip_prefix('o').ok_or_else(invalid)?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    digits.parse().map_err(|_| invalid())
}

/// The dataset columns a template needs: those its query and its charts name. With the
/// dataset's columns known, exactly those of them that are named (a structured query
/// without grouping, or SQL selecting `*`, names them all); unknown, the names the
/// structured query (and, for one without grouping, the charts) gives, of unknown type.
fn inputs_of(
    query: Option<&Query>,
    charts: &[TemplateChart],
    known: Option<&[DataColumn]>,
) -> Vec<DataColumn> {
    let mut named: Vec<String> = Vec::new();
    let mut all = false;
    let mut sql: Option<SqlNames> = None;
    let mut charts_are_columns = false;
    match query {
        Some(Query::Structured(s)) => {
            let aggregating = !s.group_by.is_empty() || !s.aggregates.is_empty();
            named.extend(s.filters.iter().map(|f| f.column.clone()));
            named.extend(s.group_by.iter().cloned());
            named.extend(s.aggregates.iter().filter_map(|a| a.column.clone()));
            if !aggregating {
                all = true;
                charts_are_columns = true;
                named.extend(s.order_by.iter().map(|o| o.column.clone()));
            }
        }
        Some(Query::Sql(text)) => {
            let found = sql_names(text);
            all = found.star;
            sql = Some(found);
        }
        None => {}
    }
    let chart_names = charts
        .iter()
        .filter_map(|c| c.config.as_ref())
        .flat_map(|c| c.columns().into_iter().map(str::to_owned));
    match known {
        Some(columns) => {
            named.extend(chart_names);
            columns
                .iter()
                .filter(|c| {
                    all || named.contains(&c.name) || sql.as_ref().is_some_and(|s| s.names(&c.name))
                })
                .cloned()
                .collect()
        }
        None => {
            if charts_are_columns {
                named.extend(chart_names);
            }
            let mut inputs: Vec<DataColumn> = Vec::new();
            for name in named {
                if !inputs.iter().any(|c| c.name == name) {
                    inputs.push(DataColumn {
                        name,
                        kind: DataType::Null,
                    });
                }
            }
            inputs
        }
    }
}

/// The identifiers of a SQL text, and whether it selects `*`.
#[derive(Debug, Default)]
struct SqlNames {
    /// `"Quoted"` identifiers, as written.
    quoted: Vec<String>,
    /// Bare words, lower-cased (the SQL dialect folds them so).
    bare: Vec<String>,
    star: bool,
}

impl SqlNames {
    fn names(&self, column: &str) -> bool {
        self.quoted.iter().any(|q| q == column)
            || self.bare.iter().any(|b| *b == column.to_lowercase())
    }
}

/// Reads identifiers out of SQL text: string literals and comments skipped; `*` counts
/// as "every column" after `SELECT`, `DISTINCT`, `,` or `.` (not in `count(*)` nor as a
/// product).
fn sql_names(sql: &str) -> SqlNames {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = SqlNames::default();
    // The previous token, for telling `SELECT *` from `a * b`.
    let mut previous = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            previous = "'".to_owned();
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            let mut name = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '"' {
                    if chars.get(i + 1) == Some(&'"') {
                        name.push('"');
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.quoted.push(name.clone());
            previous = name;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            out.bare.push(word.clone());
            previous = word;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            if c == '*' && matches!(previous.as_str(), "select" | "distinct" | "," | ".") {
                out.star = true;
            }
            previous = c.to_string();
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: DataType) -> DataColumn {
        DataColumn {
            name: name.to_owned(),
            kind,
        }
    }

    #[test]
    fn sql_names_skip_literals_and_tell_star_from_product() {
        let found = sql_names(
            "SELECT region, \"Net Sales\" * 2, count(*) FROM data -- amount\n\
             WHERE note = 'price' /* qty */ GROUP BY region",
        );
        assert!(found.names("region"));
        assert!(found.names("Net Sales"));
        assert!(!found.names("price") && !found.names("amount") && !found.names("qty"));
        assert!(!found.star);
        assert!(sql_names("select * from data").star);
        assert!(sql_names("SELECT data.* FROM data").star);
        assert!(sql_names("SELECT DISTINCT * FROM data").star);
    }

    #[test]
    fn inputs_are_the_named_dataset_columns() {
        let known = [
            col("region", DataType::String),
            col("amount", DataType::Float),
            col("day", DataType::Date),
        ];
        let query = Query::Sql("SELECT region, SUM(amount) AS total FROM data GROUP BY 1".into());
        let charts = [TemplateChart {
            name: "c".into(),
            chart_type: ChartType::Bar,
            config: Some(ChartConfig {
                x: Some("region".into()),
                y: vec!["total".into()],
                ..Default::default()
            }),
        }];
        let inputs = inputs_of(Some(&query), &charts, Some(&known));
        assert_eq!(inputs, vec![known[0].clone(), known[1].clone()]);
        let everything = Query::Structured(Default::default());
        assert_eq!(
            inputs_of(Some(&everything), &[], Some(&known)),
            known.to_vec()
        );
        assert_eq!(
            inputs_of(None, &charts, Some(&known)),
            vec![known[0].clone()]
        );
    }

    #[test]
    fn offsets_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_offset(&encode_offset(40)).unwrap(), 40);
        for bad in ["", "!!", "bzEyYQ", &URL_SAFE_NO_PAD.encode("o")] {
            assert!(decode_offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currency_and_price_rules() {
        assert!(validate_currency("usd").is_ok());
        for bad in ["USD", "us", "usdd", "u$d", ""] {
            assert!(validate_currency(bad).is_err(), "{bad}");
        }
        assert!(validate_price(-1).is_err());
        assert!(validate_price(MAX_PRICE_CENTS + 1).is_err());
        assert_eq!(validate_price(0).unwrap(), 0);
    }
}
