//! `/api/v1/analyses`: an analysis workflow on (optionally) one of the caller's datasets.
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web::{delete, get, patch, post};
use domain::{AnalysisChange, NewAnalysis};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::http::auth::CurrentUser;
use crate::http::dto::{AnalysisDto, AnalysisStatus, PageDto, double_option, non_null};
use crate::http::extract::{Json, PageQuery, Pagination};
use crate::http::problem::{Problem, responses};
use crate::http::{AppState, peer};

/// Registers this module's operations: each handler carries its path and method (actix's
/// route macro) and its documentation (`utoipa::path`), so the route table and the
/// OpenAPI document are one list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete)
        .service(run);
}

/// `POST /api/v1/analyses` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAnalysis {
    /// 1 to 255 characters (trimmed).
    #[schema(min_length = 1)]
    pub name: String,
    /// One of the caller's datasets.
    #[serde(default)]
    pub dataset_id: Option<Uuid>,
    /// A JSON object, or null.
    #[serde(default)]
    #[schema(value_type = Option<crate::http::dto::JsonObject>)]
    pub config: Option<Value>,
}

/// `PATCH /api/v1/analyses/{id}` body: an absent field is unchanged; `null` clears
/// `dataset_id`, `config` and `results`; `name` and `status` cannot be null.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAnalysis {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = String, min_length = 1)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub dataset_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<crate::http::dto::JsonObject>)]
    pub config: Option<Option<Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<crate::http::dto::JsonObject>)]
    pub results: Option<Option<Value>>,
    #[serde(default, deserialize_with = "crate::http::dto::non_null")]
    #[schema(value_type = AnalysisStatus)]
    pub status: Option<AnalysisStatus>,
}

/// `?status=` of the list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusFilter {
    /// Only analyses in this status.
    pub status: Option<AnalysisStatus>,
}

/// Create an analysis
///
/// Starts as `draft`.
#[utoipa::path(
    operation_id = "create_analysis",
    tag = "analyses",
    request_body = CreateAnalysis,
    responses(
        (status = 201, description = "Created", body = AnalysisDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 404, description = "`dataset_id` is not one of the caller's datasets", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad name, a config that is not an object, or an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/analyses")]
async fn create(
    user: CurrentUser,
    state: web::Data<AppState>,
    body: Json<CreateAnalysis>,
) -> Result<HttpResponse, Problem> {
    let body = body.into_inner();
    let analysis = state
        .domain
        .analyses
        .create(
            user.actor(),
            NewAnalysis {
                name: body.name,
                dataset_id: body.dataset_id.map(domain::Id),
                config: body.config,
            },
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/analyses/{}", analysis.id),
        ))
        .json(AnalysisDto::from(analysis)))
}

/// List analyses
///
/// The caller's analyses, newest first, optionally only those in one `status`.
#[utoipa::path(
    operation_id = "list_analyses",
    tag = "analyses",
    params(StatusFilter, PageQuery),
    responses(
        (status = 200, description = "A page of analyses", body = PageDto<AnalysisDto>),
        responses::Unauthenticated,
        (status = 422, description = "Bad `status`, `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/analyses")]
async fn list(
    user: CurrentUser,
    state: web::Data<AppState>,
    filter: web::Query<StatusFilter>,
    page: Pagination,
) -> Result<web::Json<PageDto<AnalysisDto>>, Problem> {
    let status = filter.status;
    let page = state
        .domain
        .analyses
        .list(user.id(), status, &page.0)
        .await?;
    Ok(web::Json(PageDto::from_page(page)))
}

/// Get an analysis
#[utoipa::path(
    operation_id = "get_analysis",
    tag = "analyses",
    params(("id" = Uuid, Path, description = "Analysis id")),
    responses(
        (status = 200, description = "The analysis", body = AnalysisDto),
        responses::Unauthenticated,
        (status = 404, description = "No such analysis of the caller", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/analyses/{id}")]
async fn get(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<AnalysisDto>, Problem> {
    let analysis = state
        .domain
        .analyses
        .get(user.id(), domain::Id(*id))
        .await?;
    Ok(web::Json(analysis.into()))
}

/// Update an analysis
///
/// Absent fields are unchanged; `null` clears `dataset_id`, `config` or `results`.
#[utoipa::path(
    operation_id = "update_analysis",
    tag = "analyses",
    params(("id" = Uuid, Path, description = "Analysis id")),
    request_body = UpdateAnalysis,
    responses(
        (status = 200, description = "The updated analysis", body = AnalysisDto),
        responses::NotJson,
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such analysis, or `dataset_id` is not one of the caller's datasets", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id or value, `null` for `name` or `status`, or an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/api/v1/analyses/{id}")]
async fn update(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<UpdateAnalysis>,
) -> Result<web::Json<AnalysisDto>, Problem> {
    let body = body.into_inner();
    let change = AnalysisChange {
        name: body.name,
        dataset_id: body.dataset_id.map(|d| d.map(domain::Id)),
        config: body.config,
        results: body.results,
        status: body.status,
    };
    let analysis = state
        .domain
        .analyses
        .update(user.actor(), domain::Id(*id), change)
        .await?;
    Ok(web::Json(analysis.into()))
}

/// Delete an analysis
///
/// Its reports are deleted with it.
#[utoipa::path(
    operation_id = "delete_analysis",
    tag = "analyses",
    params(("id" = Uuid, Path, description = "Analysis id")),
    responses(
        (status = 204, description = "Deleted, reports included"),
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such analysis of the caller", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[delete("/api/v1/analyses/{id}")]
async fn delete(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    state
        .domain
        .analyses
        .delete(user.actor(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Run an analysis
///
/// Runs `config.query` (ANALYSES.md: SQL or the structured form) on the server's query
/// engine now and stores the outcome: `completed` with the results, or `failed` with the
/// error (then answered `422 /query-failed`, its `reason` one of `invalid`, `refused`,
/// `timeout`, `memory`, `data`). Editors and the owner may run it.
#[utoipa::path(
    operation_id = "run_analysis",
    tag = "analyses",
    params(("id" = Uuid, Path, description = "Analysis id")),
    responses(
        (status = 200, description = "Ran: `status` is `completed` and `results` holds `columns`, `rows`, `row_count`, `truncated`, `elapsed_ms` and `ran_at`", body = AnalysisDto),
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such analysis, or a dataset in `tables` the caller cannot read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No `config.query` or nothing to read (`/validation`), or the query failed (`/query-failed`, stored as `failed`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/analyses/{id}/run")]
async fn run(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<AnalysisDto>, Problem> {
    let run = state.domain.analyses.run(user.actor(), domain::Id(*id));
    // A client that leaves stops its query (dropping the run aborts it; nothing is stored).
    let analysis = tokio::select! {
        ran = run => ran?,
        () = peer::gone(&req) => return Err(Problem::client_gone()),
    };
    Ok(web::Json(analysis.into()))
}
