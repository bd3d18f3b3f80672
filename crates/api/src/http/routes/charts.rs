//! Charts of an analysis (`/api/v1/analyses/{id}/charts`, `/api/v1/charts/{id}`), their SVG
//! image, their embed (publish, stop, rotate) and its analytics.
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch, post};
use chrono::{DateTime, NaiveDate, Utc};
use domain::{ChartChange, ChartConfig, ChartType, EmbedMode, NewChart};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::http::AppState;
use crate::http::auth::CurrentUser;
use crate::http::dto::{PageDto, non_null};
use crate::http::extract::{Json, PageQuery, Pagination};
use crate::http::problem::{Problem, responses};

/// Registers this module's operations: each handler carries its path and method (actix's
/// route macro) and its documentation (`utoipa::path`), so the route table and the
/// OpenAPI document are one list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete)
        .service(image)
        .service(publish_embed)
        .service(stop_embed)
        .service(rotate_embed)
        .service(analytics);
}

/// A chart of an analysis.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChartDto {
    pub id: Uuid,
    pub analysis_id: Uuid,
    pub name: String,
    pub chart_type: ChartType,
    pub config: ChartConfig,
    /// The live embed, `null` when the chart is not published.
    pub embed: Option<EmbedDto>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<domain::Chart> for ChartDto {
    fn from(c: domain::Chart) -> Self {
        Self {
            id: c.id.0,
            analysis_id: c.analysis_id.0,
            name: c.name,
            chart_type: c.chart_type,
            config: c.config,
            embed: c.embed.map(EmbedDto::from),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A chart's embed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EmbedDto {
    /// 10 base62 characters; never reused.
    pub embed_code: String,
    /// `/e/{embed_code}` (also `.svg` and `.json`).
    pub embed_url: String,
    pub mode: EmbedMode,
    /// Origins allowed to frame `/e/{embed_code}` (empty: any).
    pub allowed_origins: Vec<String>,
    /// When the snapshot it shows was taken.
    pub published_at: DateTime<Utc>,
}

impl From<domain::Embed> for EmbedDto {
    fn from(e: domain::Embed) -> Self {
        Self {
            embed_url: format!("/e/{}", e.code),
            embed_code: e.code,
            mode: e.mode,
            allowed_origins: e.allowed_origins,
            published_at: e.published_at,
        }
    }
}

/// `POST /api/v1/analyses/{id}/charts` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChart {
    /// 1 to 255 characters (trimmed).
    #[schema(min_length = 1)]
    pub name: String,
    pub chart_type: ChartType,
    /// `x`/`y` name columns of the analysis's `results.columns`; `x` and `y` are required
    /// where the type draws them (`table` needs neither, `number` needs `y[0]`).
    pub config: ChartConfig,
}

/// `PATCH /api/v1/charts/{id}` body: absent fields are unchanged; `config` replaces the
/// old one whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChart {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = String, min_length = 1)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = ChartType)]
    pub chart_type: Option<ChartType>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = ChartConfig)]
    pub config: Option<ChartConfig>,
}

/// `POST /api/v1/charts/{id}/embed` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEmbed {
    pub mode: EmbedMode,
    /// Origins (`https://example.com`) allowed to frame the embed; none or empty: any.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub allowed_origins: Vec<String>,
}

/// `?from=&to=` of the analytics.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayRange {
    /// First day (UTC, `YYYY-MM-DD`); default 29 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day (UTC, `YYYY-MM-DD`); default today. At most 366 days in all.
    pub to: Option<NaiveDate>,
}

/// Embed views of one UTC day.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AnalyticsDayDto {
    pub day: NaiveDate,
    pub views: i64,
    /// Distinct visitors, summed over referrer hosts.
    pub unique_visitors: i64,
    /// Views by referrer host (`""`: no referrer).
    pub referrers: std::collections::BTreeMap<String, i64>,
}

/// A chart's embed analytics.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AnalyticsDto {
    /// Only days with views, oldest first.
    pub days: Vec<AnalyticsDayDto>,
}

/// Add a chart to an analysis
#[utoipa::path(
    operation_id = "create_chart",
    tag = "charts",
    params(("id" = Uuid, Path, description = "Analysis id")),
    request_body = CreateChart,
    responses(
        (status = 201, description = "Created", body = ChartDto),
        responses::NotJson,
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such analysis of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad name, type or config; a config naming a column the results do not have; an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/analyses/{id}/charts")]
async fn create(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<CreateChart>,
) -> Result<HttpResponse, Problem> {
    let body = body.into_inner();
    let new = NewChart {
        name: body.name,
        chart_type: body.chart_type,
        config: body.config,
    };
    let chart = state
        .domain
        .charts
        .create(user.actor(), domain::Id(*id), new)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/charts/{}", chart.id)))
        .json(ChartDto::from(chart)))
}

/// List an analysis's charts
///
/// Newest first.
#[utoipa::path(
    operation_id = "list_charts",
    tag = "charts",
    params(("id" = Uuid, Path, description = "Analysis id"), PageQuery),
    responses(
        (status = 200, description = "A page of charts", body = PageDto<ChartDto>),
        responses::Unauthenticated,
        (status = 404, description = "No such analysis of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/analyses/{id}/charts")]
async fn list(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    page: Pagination,
) -> Result<web::Json<PageDto<ChartDto>>, Problem> {
    let page = state
        .domain
        .charts
        .list(user.id(), domain::Id(*id), &page.0)
        .await?;
    Ok(web::Json(PageDto::from_page(page)))
}

/// Get a chart
#[utoipa::path(
    operation_id = "get_chart",
    tag = "charts",
    params(("id" = Uuid, Path, description = "Chart id")),
    responses(
        (status = 200, description = "The chart", body = ChartDto),
        responses::Unauthenticated,
        (status = 404, description = "No such chart of the caller", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/charts/{id}")]
async fn get(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ChartDto>, Problem> {
    let chart = state.domain.charts.get(user.id(), domain::Id(*id)).await?;
    Ok(web::Json(chart.into()))
}

/// Update a chart
///
/// The resulting type and config are checked against the analysis's current results.
#[utoipa::path(
    operation_id = "update_chart",
    tag = "charts",
    params(("id" = Uuid, Path, description = "Chart id")),
    request_body = UpdateChart,
    responses(
        (status = 200, description = "The updated chart", body = ChartDto),
        responses::NotJson,
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such chart of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id or value, `null`, or an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/api/v1/charts/{id}")]
async fn update(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<UpdateChart>,
) -> Result<web::Json<ChartDto>, Problem> {
    let body = body.into_inner();
    let change = ChartChange {
        name: body.name,
        chart_type: body.chart_type,
        config: body.config,
    };
    let chart = state
        .domain
        .charts
        .update(user.actor(), domain::Id(*id), change)
        .await?;
    Ok(web::Json(chart.into()))
}

/// Delete a chart
///
/// Its embed stops (the code is never reused) and its analytics go with it.
#[utoipa::path(
    operation_id = "delete_chart",
    tag = "charts",
    params(("id" = Uuid, Path, description = "Chart id")),
    responses(
        (status = 204, description = "Deleted"),
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such chart of the caller", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[delete("/api/v1/charts/{id}")]
async fn delete(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    state
        .domain
        .charts
        .delete(user.actor(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Draw a chart
///
/// An SVG document (640×400, scalable) drawn on the server from the analysis's current
/// results: title, axes with ticks, labels and a legend; no scripts. Missing data draws a
/// "No data to draw" note rather than failing.
#[utoipa::path(
    operation_id = "chart_image",
    tag = "charts",
    params(("id" = Uuid, Path, description = "Chart id")),
    responses(
        (status = 200, description = "The chart", body = String, content_type = "image/svg+xml"),
        responses::Unauthenticated,
        (status = 404, description = "No such chart of the caller", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/charts/{id}/image.svg")]
async fn image(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    let svg = state
        .domain
        .charts
        .image(user.id(), domain::Id(*id))
        .await?;
    Ok(crate::http::html::svg(svg))
}

/// Publish a chart for embedding
///
/// Freezes a snapshot (config and the data it draws), so later edits and runs change
/// nothing the embed shows until it is published again. Publishing again keeps the code
/// and replaces the snapshot, mode and origins.
#[utoipa::path(
    operation_id = "publish_embed",
    tag = "charts",
    params(("id" = Uuid, Path, description = "Chart id")),
    request_body = PublishEmbed,
    responses(
        (status = 200, description = "Published", body = EmbedDto),
        responses::NotJson,
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such chart of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad mode or origin, or an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/charts/{id}/embed")]
async fn publish_embed(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<PublishEmbed>,
) -> Result<web::Json<EmbedDto>, Problem> {
    let body = body.into_inner();
    let embed = state
        .domain
        .embeds
        .publish(
            user.actor(),
            domain::Id(*id),
            body.mode,
            body.allowed_origins,
        )
        .await?;
    Ok(web::Json(embed.into()))
}

/// Stop a chart's embed
///
/// `/e/{code}` is `404` from now on; the code is never reused.
#[utoipa::path(
    operation_id = "stop_embed",
    tag = "charts",
    params(("id" = Uuid, Path, description = "Chart id")),
    responses(
        (status = 204, description = "Stopped"),
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such chart of the caller, or it is not published", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[delete("/api/v1/charts/{id}/embed")]
async fn stop_embed(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    state
        .domain
        .embeds
        .stop(user.actor(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Give a chart's embed a new code
///
/// The old code is `404` for ever; the snapshot is kept.
#[utoipa::path(
    operation_id = "rotate_embed",
    tag = "charts",
    params(("id" = Uuid, Path, description = "Chart id")),
    responses(
        (status = 200, description = "The embed with its new code", body = EmbedDto),
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such chart of the caller, or it is not published", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/charts/{id}/embed/rotate")]
async fn rotate_embed(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<EmbedDto>, Problem> {
    let embed = state
        .domain
        .embeds
        .rotate(user.actor(), domain::Id(*id))
        .await?;
    Ok(web::Json(embed.into()))
}

/// Embed analytics of a chart
///
/// Views (`/e/{code}` and `.svg`; `.json` is not counted) and unique visitors per UTC day
/// and referrer host. A visitor is a salted hash that changes every day; no address, user
/// agent or referrer URL is stored.
#[utoipa::path(
    operation_id = "chart_analytics",
    tag = "charts",
    params(("id" = Uuid, Path, description = "Chart id"), DayRange),
    responses(
        (status = 200, description = "Days with views", body = AnalyticsDto),
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such chart of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id or dates, `from` after `to`, or more than 366 days", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/charts/{id}/analytics")]
async fn analytics(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    range: web::Query<DayRange>,
) -> Result<web::Json<AnalyticsDto>, Problem> {
    let days = state
        .domain
        .embeds
        .analytics(user.id(), domain::Id(*id), range.from, range.to)
        .await?;
    Ok(web::Json(AnalyticsDto {
        days: days
            .into_iter()
            .map(|d| AnalyticsDayDto {
                day: d.day,
                views: d.views,
                unique_visitors: d.unique_visitors,
                referrers: d.referrers,
            })
            .collect(),
    }))
}
