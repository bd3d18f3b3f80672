//! Reports: publish an analysis at `/r/{short_code}` and manage the caller's reports.
use actix_web::error::JsonPayloadError;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use actix_web::{delete, get, patch, post};
use chrono::{DateTime, Utc};
use domain::{NewReport, ReportChange};
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::http::AppState;
use crate::http::auth::CurrentUser;
use crate::http::dto::{PageDto, ReportDto, double_option, non_null};
use crate::http::extract::{
    JSON_LIMIT_BYTES, Json, PageQuery, Pagination, from_json_bytes, json_problem,
};
use crate::http::problem::{Problem, responses};

/// Registers this module's operations: each handler carries its path and method (actix's
/// route macro) and its documentation (`utoipa::path`), so the route table and the
/// OpenAPI document are one list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete);
}

/// `POST /api/v1/analyses/{id}/reports` body; every field is optional, and an empty (or
/// `null`) body is the same as `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReport {
    /// Viewers must give this password (8 characters at least) to open the report.
    #[serde(default)]
    #[schema(min_length = 8)]
    pub password: Option<String>,
    /// When the report stops opening; must be in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Defaults to `true`; a report that is not public is `404` for everyone.
    #[serde(default)]
    pub is_public: Option<bool>,
}

/// `PATCH /api/v1/reports/{id}` body: an absent field is unchanged; `null` clears
/// `password` or `expires_at`. Setting, changing or clearing the password ends every
/// access its earlier unlocks gave.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateReport {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = bool)]
    pub is_public: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, min_length = 8)]
    pub password: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// Publish a report of an analysis
///
/// Counts once toward the month's `reports`. The report opens at its `url`
/// (`/r/{short_code}`).
#[utoipa::path(
    operation_id = "create_report",
    tag = "reports",
    params(("id" = Uuid, Path, description = "Analysis id")),
    request_body(content = Option<CreateReport>, description = "Optional; an empty body publishes a public report without password or expiry"),
    responses(
        (status = 201, description = "Published", body = ReportDto),
        (status = 400, description = "A body that is not JSON", body = Problem, content_type = "application/problem+json"),
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 402, description = "The month's `reports` limit is reached", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such analysis of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, a short password, `expires_at` in the past, or an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/analyses/{id}/reports")]
async fn create(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    // No body, and a `null` body, both mean "all defaults".
    let body: CreateReport = optional_json::<Option<CreateReport>>(&req, payload)
        .await?
        .flatten()
        .unwrap_or_default();
    let report = state
        .domain
        .reports
        .create(
            user.actor(),
            domain::Id(*id),
            NewReport {
                password: body.password,
                expires_at: body.expires_at,
                is_public: body.is_public,
            },
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/reports/{}", report.id)))
        .json(ReportDto::from(report)))
}

/// List reports
///
/// The reports of the caller's analyses, newest first.
#[utoipa::path(
    operation_id = "list_reports",
    tag = "reports",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of reports", body = PageDto<ReportDto>),
        responses::Unauthenticated,
        (status = 422, description = "Bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/reports")]
async fn list(
    user: CurrentUser,
    state: web::Data<AppState>,
    page: Pagination,
) -> Result<web::Json<PageDto<ReportDto>>, Problem> {
    let page = state.domain.reports.list(user.id(), &page.0).await?;
    Ok(web::Json(PageDto::from_page(page)))
}

/// Get a report
#[utoipa::path(
    operation_id = "get_report",
    tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    responses(
        (status = 200, description = "The report", body = ReportDto),
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such report of the caller", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/reports/{id}")]
async fn get(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ReportDto>, Problem> {
    let report = state.domain.reports.get(user.id(), domain::Id(*id)).await?;
    Ok(web::Json(report.into()))
}

/// Update a report
///
/// Absent fields are unchanged; `null` clears `password` or `expires_at`.
#[utoipa::path(
    operation_id = "update_report",
    tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    request_body = UpdateReport,
    responses(
        (status = 200, description = "The updated report", body = ReportDto),
        responses::NotJson,
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such report of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, a short password, `expires_at` in the past, `null` for `is_public`, or an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/api/v1/reports/{id}")]
async fn update(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<UpdateReport>,
) -> Result<web::Json<ReportDto>, Problem> {
    let body = body.into_inner();
    let change = ReportChange {
        is_public: body.is_public,
        password: body.password,
        expires_at: body.expires_at,
    };
    let report = state
        .domain
        .reports
        .update(user.actor(), domain::Id(*id), change)
        .await?;
    Ok(web::Json(report.into()))
}

/// Delete a report
///
/// Its short code stops opening at once and is never reused.
#[utoipa::path(
    operation_id = "delete_report",
    tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    responses(
        (status = 204, description = "Deleted"),
        responses::Unauthenticated,
        responses::NotYourRole,
        (status = 404, description = "No such report of the caller", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[delete("/api/v1/reports/{id}")]
async fn delete(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    state
        .domain
        .reports
        .delete(user.actor(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A JSON body that may be left out: `None` for an empty body, else the same rules as
/// `web::Json` (`application/json` required, `400` for bad JSON, `422` for a bad shape,
/// `413` past the JSON limit).
async fn optional_json<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<Option<T>, Problem> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| json_problem(JsonPayloadError::Payload(e)))?;
        if body.len() + chunk.len() > JSON_LIMIT_BYTES {
            return Err(json_problem(JsonPayloadError::Overflow {
                limit: JSON_LIMIT_BYTES,
            }));
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let is_json = matches!(
        req.mime_type(),
        Ok(Some(ct)) if ct.essence_str() == "application/json" || ct.suffix().is_some_and(|s| s == "json")
    );
    if !is_json {
        return Err(json_problem(JsonPayloadError::ContentType));
    }
    from_json_bytes(&body).map(Some)
}
