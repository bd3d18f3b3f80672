//! Product events: `POST /api/v1/events` (anyone; the user is recorded when the request
//! has a token) and the admin summary `GET /api/v1/admin/events/summary`. The rules are
//! the domain's `Events` (docs/events.md): the handler validates and hands the events to
//! a bounded buffer without waiting for the database.
use actix_web::{FromRequest, HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::http::AppState;
use crate::http::auth::{AdminUser, CurrentUser, bearer_token};
use crate::http::extract::Json;
use crate::http::problem::{Problem, responses};

/// Registers this module's operations.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(ingest).service(summary);
}

/// `POST /api/v1/events` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostEvents {
    /// 1 to 100 events, accepted or refused together.
    #[schema(min_items = 1, max_items = 100)]
    pub events: Vec<EventIn>,
    /// The client's own id for a visitor without an account (1 to 100 characters), stored
    /// with every event of the request. With a token, the user is recorded too (and an
    /// `anonymous_id` given alongside is kept, linking the visitor to the account).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub anonymous_id: Option<String>,
}

/// One product event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// `^[a-z][a-z0-9_.]{0,99}$`, e.g. `chart.viewed`.
    #[schema(pattern = "^[a-z][a-z0-9_.]{0,99}$", min_length = 1, max_length = 100)]
    pub event: String,
    /// When it happened (RFC 3339); default now. At most a day ahead, and not older than
    /// the server's retention (`IOPS_EVENTS_RETENTION_DAYS`, 400 days by default).
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Any JSON object of at most 8 KB (8192 bytes as compact JSON).
    #[serde(default)]
    #[schema(value_type = Option<crate::http::dto::JsonObject>)]
    pub properties: Option<serde_json::Value>,
}

/// What became of the request's events.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IngestedDto {
    /// Events taken (they are written within moments).
    pub accepted: usize,
    /// Events dropped because the server's event buffer was full: all of the request's,
    /// or none. Counted in `/metrics` as `iops_analytics_events_dropped_total`.
    pub dropped: usize,
}

/// `?from=&to=` of the summary.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryRange {
    /// First day (UTC, `YYYY-MM-DD`), inclusive; default 29 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day (UTC, `YYYY-MM-DD`), inclusive; default today. At most 366 days in all.
    pub to: Option<NaiveDate>,
}

/// Events of one UTC day.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SummaryDayDto {
    pub day: NaiveDate,
    /// Count per event name.
    pub events: std::collections::BTreeMap<String, i64>,
}

/// Event counts per day.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SummaryDto {
    /// Only days with events, oldest first.
    pub days: Vec<SummaryDayDto>,
}

/// Record product events
///
/// With or without a token: with one, each event records the user; without one, give an
/// `anonymous_id` if you have one. The events are checked together (one bad event refuses
/// the request, and nothing is kept), then buffered and written in batches: the answer
/// never waits for the database. `202` says how many were taken and how many were
/// dropped because the buffer was full.
#[utoipa::path(
    operation_id = "post_events",
    tag = "events",
    request_body = PostEvents,
    responses(
        (status = 202, description = "Taken (or dropped, when the buffer is full: see `dropped`)", body = IngestedDto),
        responses::NotJson,
        (status = 401, description = "A token was given and is invalid, expired or revoked (send none to post anonymously)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No events or more than 100; a bad event name, properties that are not an object or larger than 8 KB, occurred_at more than a day ahead or older than the retention; a bad anonymous_id; an unknown field. Nothing is kept", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database does not answer when the token is checked (or, on a server without an event buffer, when the events are written)", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
#[post("/api/v1/events")]
async fn ingest(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<PostEvents>,
) -> Result<HttpResponse, Problem> {
    let user = match bearer_token(&req) {
        None => None,
        Some(_) => Some(CurrentUser::extract(&req).await?.id()),
    };
    let body = body.into_inner();
    let events = body
        .events
        .into_iter()
        .map(|e| domain::NewEvent {
            event: e.event,
            occurred_at: e.occurred_at,
            properties: e.properties,
        })
        .collect();
    let ingested = state
        .domain
        .events
        .ingest(user, body.anonymous_id, events)
        .await?;
    Ok(HttpResponse::Accepted().json(IngestedDto {
        accepted: ingested.accepted,
        dropped: ingested.dropped,
    }))
}

/// Product events per day
///
/// Counts per event name per UTC day, client and server events alike (`user.registered`,
/// `dataset.uploaded`, `analysis.ran`, `report.created`). Administrators only.
#[utoipa::path(
    operation_id = "events_summary",
    tag = "events",
    params(SummaryRange),
    responses(
        (status = 200, description = "Days with events", body = SummaryDto),
        responses::Unauthenticated,
        responses::NotAdmin,
        (status = 422, description = "Bad dates, `from` after `to`, or more than 366 days", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/admin/events/summary")]
async fn summary(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    range: web::Query<SummaryRange>,
) -> Result<web::Json<SummaryDto>, Problem> {
    let days = state
        .domain
        .events
        .summary(&admin, range.from, range.to)
        .await?;
    Ok(web::Json(SummaryDto {
        days: days
            .into_iter()
            .map(|d| SummaryDayDto {
                day: d.day,
                events: d.events,
            })
            .collect(),
    }))
}
