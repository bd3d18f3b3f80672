//! Operations: liveness, readiness, metrics, the OpenAPI document and its browser view.
use actix_web::get;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::http::AppState;

/// Registers this module's operations: each handler carries its path and method (actix's
/// route macro) and its documentation (`utoipa::path`), so the route table and the
/// OpenAPI document are one list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(live).service(ready).service(metrics);
    // Not an API operation: the browser view of the document (its UI is mounted where the
    // document is complete, in `http::build_server`).
    cfg.route("/docs", web::get().to(docs_redirect));
}

/// Health of one dependency.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Whether the database answers (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<bool>,
    /// Whether the dataset store answers (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<bool>,
}

#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The process runs", body = Health))
)]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        database: None,
        storage: None,
    })
}

#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The database and the dataset store answer", body = Health),
        (status = 503, description = "The database or the dataset store does not answer", body = Health),
    )
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let database = state.domain.stats.database_ready().await;
    let storage = state.domain.stats.store_ready().await;
    let body = Health {
        status: if database && storage {
            "ok"
        } else {
            "unavailable"
        },
        database: Some(database),
        storage: Some(storage),
    };
    if database && storage {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let stats = &state.domain.stats;
    let table_rows = if state.metrics.table_rows_stale() {
        match stats.table_counts().await {
            Ok(counts) => Some(counts),
            Err(e) => {
                tracing::warn!(error = %e, "could not count table rows for metrics");
                None
            }
        }
    } else {
        None
    };
    let text = state.metrics.render(
        stats.pool_connections(),
        table_rows.as_deref(),
        state.domain.events.dropped(),
        state.domain.reports.view_counting(),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}
