//! Operations: liveness, readiness, metrics, the OpenAPI document and its browser view.
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::SwaggerUi;

use crate::http::AppState;
use crate::http::openapi;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, handler) in [
        ("/health/live", web::get().to(live)),
        ("/health/ready", web::get().to(ready)),
        ("/metrics", web::get().to(metrics)),
    ] {
        cfg.service(
            web::resource(path)
                .route(handler)
                .default_service(web::to(super::method_not_allowed)),
        );
    }
    cfg
        // The UI's assets are relative to `/docs/`.
        .route("/docs", web::get().to(docs_redirect))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/api/openapi.json", openapi::document()));
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
    get,
    path = "/health/live",
    tag = "operations",
    responses((status = 200, description = "The process runs", body = Health))
)]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        database: None,
        storage: None,
    })
}

#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    responses(
        (status = 200, description = "The database and the dataset store answer", body = Health),
        (status = 503, description = "The database or the dataset store does not answer", body = Health),
    )
)]
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
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String))
)]
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
    let text = state
        .metrics
        .render(stats.pool_connections(), table_rows.as_deref());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(live, ready, metrics),
    tags((name = "operations", description = "Health, metrics and this document (GET /api/openapi.json; GET /docs shows it in a browser)")),
)]
pub struct Doc;
