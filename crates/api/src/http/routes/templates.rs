//! Templates (`/api/v1/templates`): reusable analyses that authors publish to a gallery,
//! free or at a price; buyers purchase, use and rate them. The rules are the domain's
//! `Templates`; the handlers only translate.
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use chrono::{DateTime, Utc};
use domain::{ChartConfig, ChartType, DataColumn, GallerySort, TemplateStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::http::AppState;
use crate::http::auth::{CurrentUser, bearer_token};
use crate::http::dto::{AnalysisDto, PageDto, double_option, non_null};
use crate::http::extract::Json;
use crate::http::problem::{Problem, responses};
use crate::http::routes::charts::ChartDto;
use crate::http::routes::comments::AuthorDto;

/// Registers this module's operations (route and documentation in one place each).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(gallery)
        .service(get_one)
        .service(update)
        .service(delete)
        .service(publish)
        .service(purchase)
        .service(use_template)
        .service(rate);
}

/// A chart as a template holds it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TemplateChartDto {
    pub name: String,
    pub chart_type: ChartType,
    /// What it draws; `null` unless the template is `unlocked` for the caller.
    pub config: Option<ChartConfig>,
}

/// A template. `config` and the charts' configs are what a paid template sells: they are
/// `null` unless `unlocked` (the author, a buyer, or anyone for a free template).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TemplateDto {
    pub id: Uuid,
    /// The author (`full_name` is `null` when they gave none).
    pub author: AuthorDto,
    /// The analysis it was made from; `null` once that analysis is deleted.
    pub source_analysis_id: Option<Uuid>,
    pub name: String,
    pub description: Option<String>,
    /// The analysis's `config`, as copied.
    #[schema(value_type = Option<crate::http::dto::JsonObject>)]
    pub config: Option<Value>,
    /// The analysis's charts, as copied.
    pub charts: Vec<TemplateChartDto>,
    /// The dataset columns the query and the charts name, with their types: a dataset the
    /// template is used on must have them all.
    pub inputs: Vec<DataColumn>,
    /// In the currency's smallest unit; 0 is free.
    pub price_cents: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    pub status: TemplateStatus,
    pub published_at: Option<DateTime<Utc>>,
    /// The mean rating, 1 to 5; `null` without ratings.
    pub rating_avg: Option<f64>,
    pub rating_count: i64,
    pub purchase_count: i64,
    /// Whether `config` and the chart configs are shown to the caller.
    pub unlocked: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<domain::Template> for TemplateDto {
    fn from(t: domain::Template) -> Self {
        Self {
            id: t.id.0,
            author: AuthorDto {
                id: Some(t.author_id.0),
                full_name: t.author_name,
            },
            source_analysis_id: t.source_analysis_id.map(|id| id.0),
            name: t.name,
            description: t.description,
            config: t.config,
            charts: t
                .charts
                .into_iter()
                .map(|c| TemplateChartDto {
                    name: c.name,
                    chart_type: c.chart_type,
                    config: c.config,
                })
                .collect(),
            inputs: t.inputs,
            price_cents: t.price_cents,
            currency: t.currency,
            status: t.status,
            published_at: t.published_at,
            rating_avg: t.rating_avg,
            rating_count: t.rating_count,
            purchase_count: t.purchase_count,
            unlocked: t.unlocked,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A recorded purchase.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PurchaseDto {
    pub id: Uuid,
    pub template_id: Uuid,
    pub buyer_id: Uuid,
    /// The price paid, in the currency's smallest unit (0: free).
    pub price_cents: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

impl From<domain::Purchase> for PurchaseDto {
    fn from(p: domain::Purchase) -> Self {
        Self {
            id: p.id.0,
            template_id: p.template_id.0,
            buyer_id: p.buyer_id.0,
            price_cents: p.price_cents,
            currency: p.currency,
            created_at: p.created_at,
        }
    }
}

/// Where to pay for a paid template.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CheckoutDto {
    /// The payment provider's Checkout page; the purchase is recorded once it is paid.
    pub url: String,
}

/// The analysis made from a template, with its charts.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UsedTemplateDto {
    #[serde(flatten)]
    pub analysis: AnalysisDto,
    /// The charts copied from the template, in its order.
    pub charts: Vec<ChartDto>,
}

/// `POST /api/v1/templates` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    /// One of the caller's analyses (its `config.query` may read only its own dataset).
    pub analysis_id: Uuid,
    /// 1 to 255 characters (trimmed).
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// At most 10,000 characters.
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// 0 (free) to 99,999,999, in the currency's smallest unit.
    #[schema(minimum = 0, maximum = 99_999_999)]
    pub price_cents: i64,
    /// ISO 4217 in three lower-case letters; default `usd`.
    #[serde(default)]
    #[schema(pattern = "^[a-z]{3}$")]
    pub currency: Option<String>,
}

/// `PATCH /api/v1/templates/{id}` body: absent fields are unchanged; `description: null`
/// clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTemplate {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = String, min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 10000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = i64, minimum = 0, maximum = 99_999_999)]
    pub price_cents: Option<i64>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = String, pattern = "^[a-z]{3}$")]
    pub currency: Option<String>,
}

/// `POST /api/v1/templates/{id}/use` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseTemplate {
    /// One of the caller's datasets, with every input column of the template.
    pub dataset_id: Uuid,
    /// The new analysis's name (1 to 255 characters); default the template's name.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
}

/// `PUT /api/v1/templates/{id}/rating` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateTemplate {
    /// 1 to 5.
    #[schema(minimum = 1, maximum = 5)]
    pub rating: i64,
    /// At most 10,000 characters.
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub review: Option<String>,
}

/// `?sort=&q=&limit=&cursor=` of the gallery.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GalleryParams {
    /// `rating` (highest mean first, unrated last), `popular` (most purchases first) or
    /// `new` (most recently published first, the default).
    #[param(inline)]
    pub sort: Option<GallerySort>,
    /// Only templates whose name contains this text, case-insensitively (at most 255
    /// characters).
    pub q: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The caller, when the request carries a token: `None` without one, `401` for a bad one.
async fn optional_user(req: &HttpRequest) -> Result<Option<CurrentUser>, Problem> {
    if bearer_token(req).is_none() {
        return Ok(None);
    }
    CurrentUser::extract(req).await.map(Some)
}

/// Make a template
///
/// A draft copy of one of the caller's analyses: its `config`, its charts, and the
/// dataset columns they name (`inputs`). Publish it to put it in the gallery.
#[utoipa::path(
    operation_id = "create_template",
    tag = "templates",
    request_body = CreateTemplate,
    responses(
        (status = 201, description = "Created (a draft)", body = TemplateDto),
        responses::NotJson,
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "`analysis_id` is not one of the caller's analyses", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad name, description, price or currency; a query reading other datasets (`config.query.tables`); an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/templates")]
async fn create(
    user: CurrentUser,
    state: web::Data<AppState>,
    body: Json<CreateTemplate>,
) -> Result<HttpResponse, Problem> {
    let body = body.into_inner();
    let template = state
        .domain
        .templates
        .create(
            user.actor(),
            domain::NewTemplate {
                analysis_id: domain::Id(body.analysis_id),
                name: body.name,
                description: body.description,
                price_cents: body.price_cents,
                currency: body.currency,
            },
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/templates/{}", template.id),
        ))
        .json(TemplateDto::from(template)))
}

/// The template gallery
///
/// Published templates, no login needed. Pages are positions in the chosen order: the
/// cursor is an offset, not a key (the rating and popularity orders change as people rate
/// and buy), so a template that moves meanwhile may show on two pages or on none.
#[utoipa::path(
    operation_id = "list_templates",
    tag = "templates",
    params(GalleryParams),
    responses(
        (status = 200, description = "A page of published templates", body = PageDto<TemplateDto>),
        (status = 422, description = "Bad `sort`, `q`, `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/templates")]
async fn gallery(
    state: web::Data<AppState>,
    params: web::Query<GalleryParams>,
) -> Result<web::Json<PageDto<TemplateDto>>, Problem> {
    let params = params.into_inner();
    let page = state
        .domain
        .templates
        .gallery(&domain::GalleryQuery {
            sort: params.sort.unwrap_or_default(),
            q: params.q,
            limit: params.limit,
            cursor: params.cursor,
        })
        .await?;
    Ok(web::Json(PageDto::from_page(page)))
}

/// Get a template
///
/// A published template for anyone (no login needed); a draft for its author only.
#[utoipa::path(
    operation_id = "get_template",
    tag = "templates",
    params(("id" = Uuid, Path, description = "Template id")),
    responses(
        (status = 200, description = "The template", body = TemplateDto),
        (status = 401, description = "A token was given and is invalid, expired or revoked (send none to read as a guest)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such template, or a draft of someone else's", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security((), ("bearer" = []))
)]
#[get("/api/v1/templates/{id}")]
async fn get_one(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<TemplateDto>, Problem> {
    let user = optional_user(&req).await?;
    let template = state
        .domain
        .templates
        .get(user.map(|u| u.id()), domain::Id(*id))
        .await?;
    Ok(web::Json(template.into()))
}

/// Change a template
///
/// Its author only. A new price applies to purchases not made yet.
#[utoipa::path(
    operation_id = "update_template",
    tag = "templates",
    params(("id" = Uuid, Path, description = "Template id")),
    request_body = UpdateTemplate,
    responses(
        (status = 200, description = "The changed template", body = TemplateDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 404, description = "No such template of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, name, description, price or currency; an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/api/v1/templates/{id}")]
async fn update(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<UpdateTemplate>,
) -> Result<web::Json<TemplateDto>, Problem> {
    let body = body.into_inner();
    let template = state
        .domain
        .templates
        .update(
            user.actor(),
            domain::Id(*id),
            domain::TemplateChange {
                name: body.name,
                description: body.description,
                price_cents: body.price_cents,
                currency: body.currency,
            },
        )
        .await?;
    Ok(web::Json(template.into()))
}

/// Delete a template
///
/// Its author only; its purchases and ratings go with it. Analyses made from it stay.
#[utoipa::path(
    operation_id = "delete_template",
    tag = "templates",
    params(("id" = Uuid, Path, description = "Template id")),
    responses(
        (status = 204, description = "Deleted"),
        responses::Unauthenticated,
        (status = 404, description = "No such template of the caller's", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[delete("/api/v1/templates/{id}")]
async fn delete(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    state
        .domain
        .templates
        .delete(user.actor(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Publish a template
///
/// Its author only: puts it in the gallery. Publishing again changes nothing.
#[utoipa::path(
    operation_id = "publish_template",
    tag = "templates",
    params(("id" = Uuid, Path, description = "Template id")),
    responses(
        (status = 200, description = "The published template", body = TemplateDto),
        responses::Unauthenticated,
        (status = 404, description = "No such template of the caller's", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/templates/{id}/publish")]
async fn publish(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<TemplateDto>, Problem> {
    let template = state
        .domain
        .templates
        .publish(user.actor(), domain::Id(*id))
        .await?;
    Ok(web::Json(template.into()))
}

/// Buy a template
///
/// A free template is bought at once (`201`, the purchase). A paid one answers `200` with
/// the payment provider's Checkout page (a one-time payment of the price); the purchase
/// is recorded when the provider confirms the payment. One purchase per buyer; an author
/// does not buy their own template (`409` for both).
#[utoipa::path(
    operation_id = "purchase_template",
    tag = "templates",
    params(("id" = Uuid, Path, description = "Template id")),
    responses(
        (status = 201, description = "Bought (a free template)", body = PurchaseDto),
        (status = 200, description = "Pay on this page (a paid template)", body = CheckoutDto),
        responses::Unauthenticated,
        (status = 404, description = "No such published template", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Bought already, or the caller is its author", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
        (status = 502, description = "The payment provider failed or did not answer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A paid template, and no payment provider is configured", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/templates/{id}/purchase")]
async fn purchase(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    let outcome = state
        .domain
        .templates
        .purchase(user.actor(), domain::Id(*id))
        .await?;
    Ok(match outcome {
        domain::PurchaseOutcome::Purchased(purchase) => {
            HttpResponse::Created().json(PurchaseDto::from(purchase))
        }
        domain::PurchaseOutcome::Checkout { url } => HttpResponse::Ok().json(CheckoutDto { url }),
    })
}

/// Use a template
///
/// Makes a new analysis of the caller's on one of their datasets, with the template's
/// config and charts. Needs a purchase, a free template, or authorship (`402` with
/// `limit: "purchase"` otherwise). The dataset must have every input column: `422` names
/// those it lacks.
#[utoipa::path(
    operation_id = "use_template",
    tag = "templates",
    params(("id" = Uuid, Path, description = "Template id")),
    request_body = UseTemplate,
    responses(
        (status = 201, description = "The new analysis and its charts", body = UsedTemplateDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 402, description = "A paid template the caller has not bought (`limit: \"purchase\"`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such template the caller can see, or `dataset_id` is not one of the caller's datasets", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The dataset lacks input columns (named), a bad name, an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/templates/{id}/use")]
async fn use_template(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<UseTemplate>,
) -> Result<HttpResponse, Problem> {
    let body = body.into_inner();
    let used = state
        .domain
        .templates
        .use_template(
            user.actor(),
            domain::Id(*id),
            domain::Id(body.dataset_id),
            body.name,
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/analyses/{}", used.analysis.id),
        ))
        .json(UsedTemplateDto {
            analysis: used.analysis.into(),
            charts: used.charts.into_iter().map(ChartDto::from).collect(),
        }))
}

/// Rate a template
///
/// Buyers only, never the author (`403` for both). One rating per user: a second replaces
/// the first. Answers the template with its new stats.
#[utoipa::path(
    operation_id = "rate_template",
    tag = "templates",
    params(("id" = Uuid, Path, description = "Template id")),
    request_body = RateTemplate,
    responses(
        (status = 200, description = "The template with its new stats", body = TemplateDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 403, description = "The caller has not bought the template, or is its author", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such template the caller can see", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, a rating outside 1 to 5, a review too long, an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/api/v1/templates/{id}/rating")]
async fn rate(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<RateTemplate>,
) -> Result<web::Json<TemplateDto>, Problem> {
    let body = body.into_inner();
    let template = state
        .domain
        .templates
        .rate(user.actor(), domain::Id(*id), body.rating, body.review)
        .await?;
    Ok(web::Json(template.into()))
}
