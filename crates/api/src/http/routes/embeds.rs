//! Embedded charts, no login: `GET /e/{code}` (a minimal HTML page with the chart),
//! `/e/{code}.svg` and `/e/{code}.json`; and the owner's embed keys for signed embeds
//! (`/api/v1/me/embed-keys`).
//!
//! The `.svg` and `.json` routes are registered before `/e/{code}`, which would otherwise
//! take `abc.svg` as a code (and answer `404`, since codes are base62 only).
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web::{delete, get, post};
use chrono::{DateTime, Utc};
use domain::{ChartConfig, ChartType, DataColumn, EmbedView, Visit};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::http::AppState;
use crate::http::auth::CurrentUser;
use crate::http::extract::client_id;
use crate::http::html;
use crate::http::problem::{Problem, responses};

/// Registers this module's operations: each handler carries its path and method (actix's
/// route macro) and its documentation (`utoipa::path`), so the route table and the
/// OpenAPI document are one list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(embed_svg)
        .service(embed_json)
        .service(embed_page)
        .service(create_key)
        .service(list_keys)
        .service(revoke_key);
}

/// `?token=` of a signed embed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmbedToken {
    /// For signed embeds: an HS256 JWT with `kid` (one of the owner's embed keys) in its
    /// header and `{"sub": code, "exp": ...}` (at most 24 h ahead) as claims.
    pub token: Option<String>,
}

/// The snapshot an embed shows.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EmbedDataDto {
    pub name: String,
    pub chart_type: ChartType,
    pub config: ChartConfig,
    /// The columns the chart draws (`{name, type}`).
    #[schema(value_type = Vec<crate::http::dto::JsonObject>)]
    pub columns: Vec<DataColumn>,
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub rows: Vec<Vec<serde_json::Value>>,
    pub published_at: DateTime<Utc>,
}

/// A new embed key; `secret` is shown this once.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IssuedEmbedKeyDto {
    /// Put it in the token's `kid` header.
    pub kid: String,
    /// The HS256 key: the UTF-8 bytes of this string.
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// An embed key as listed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EmbedKeyDto {
    pub kid: String,
    pub created_at: DateTime<Utc>,
}

/// The caller's embed keys.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EmbedKeysDto {
    pub items: Vec<EmbedKeyDto>,
}

/// Show an embedded chart
///
/// A minimal HTML page holding the chart as inline SVG (no scripts). Framing is allowed
/// from the embed's `allowed_origins` (`Content-Security-Policy: frame-ancestors`; any
/// origin when none). Counts as a view.
#[utoipa::path(
    operation_id = "embed_page",
    tag = "public",
    params(("code" = String, Path, description = "The embed code"), EmbedToken),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 401, description = "A signed embed without a valid token", body = String, content_type = "text/html"),
        (status = 404, description = "Unknown, stopped or rotated code", body = String, content_type = "text/html"),
    )
)]
#[get("/e/{code}")]
async fn embed_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    code: web::Path<String>,
    query: web::Query<EmbedToken>,
) -> HttpResponse {
    let visit = visit_of(&req);
    match state
        .domain
        .embeds
        .open(&code, query.token.as_deref(), Some(&visit))
        .await
    {
        Ok(view) => html::embed(&view.name, &view.svg(), &view.allowed_origins),
        Err(err) => html::embed_error(Problem::from(err).status_code()),
    }
}

/// An embedded chart as SVG
///
/// Counts as a view.
#[utoipa::path(
    operation_id = "embed_svg",
    tag = "public",
    params(("code" = String, Path, description = "The embed code"), EmbedToken),
    responses(
        (status = 200, description = "The chart", body = String, content_type = "image/svg+xml"),
        (status = 401, description = "A signed embed without a valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, stopped or rotated code", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/e/{code}.svg")]
async fn embed_svg(
    state: web::Data<AppState>,
    req: HttpRequest,
    code: web::Path<String>,
    query: web::Query<EmbedToken>,
) -> Result<HttpResponse, Problem> {
    let visit = visit_of(&req);
    let view = state
        .domain
        .embeds
        .open(&code, query.token.as_deref(), Some(&visit))
        .await?;
    let mut res = html::svg(view.svg());
    html::frame_ancestors(&mut res, &view.allowed_origins);
    Ok(res)
}

/// An embedded chart's data
///
/// The snapshot as JSON. Not counted as a view.
#[utoipa::path(
    operation_id = "embed_data",
    tag = "public",
    params(("code" = String, Path, description = "The embed code"), EmbedToken),
    responses(
        (status = 200, description = "The snapshot", body = EmbedDataDto),
        (status = 401, description = "A signed embed without a valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, stopped or rotated code", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/e/{code}.json")]
async fn embed_json(
    state: web::Data<AppState>,
    code: web::Path<String>,
    query: web::Query<EmbedToken>,
) -> Result<HttpResponse, Problem> {
    let view: EmbedView = state
        .domain
        .embeds
        .open(&code, query.token.as_deref(), None)
        .await?;
    let body = EmbedDataDto {
        name: view.name,
        chart_type: view.chart_type,
        config: view.config,
        columns: view.data.columns,
        rows: view.data.rows,
        published_at: view.published_at,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

/// Create an embed key
///
/// For signed embeds. The `secret` is in this answer only; it is stored encrypted.
#[utoipa::path(
    operation_id = "create_embed_key",
    tag = "charts",
    responses(
        (status = 201, description = "Created", body = IssuedEmbedKeyDto),
        responses::Unauthenticated,
        (status = 422, description = "The account already holds 20 keys", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/me/embed-keys")]
async fn create_key(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let key = state.domain.embeds.create_key(user.id()).await?;
    let mut res = HttpResponse::Created().json(IssuedEmbedKeyDto {
        kid: key.kid,
        secret: key.secret,
        created_at: key.created_at,
    });
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

/// List embed keys
///
/// Newest first; never the secrets.
#[utoipa::path(
    operation_id = "list_embed_keys",
    tag = "charts",
    responses(
        (status = 200, description = "The caller's keys", body = EmbedKeysDto),
        responses::Unauthenticated,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/me/embed-keys")]
async fn list_keys(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<web::Json<EmbedKeysDto>, Problem> {
    let keys = state.domain.embeds.list_keys(user.id()).await?;
    Ok(web::Json(EmbedKeysDto {
        items: keys
            .into_iter()
            .map(|k| EmbedKeyDto {
                kid: k.kid,
                created_at: k.created_at,
            })
            .collect(),
    }))
}

/// Revoke an embed key
///
/// Tokens it signed are refused from the next request on.
#[utoipa::path(
    operation_id = "revoke_embed_key",
    tag = "charts",
    params(("kid" = String, Path, description = "The key id")),
    responses(
        (status = 204, description = "Revoked"),
        responses::Unauthenticated,
        (status = 404, description = "No such key of the caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/api/v1/me/embed-keys/{kid}")]
async fn revoke_key(
    user: CurrentUser,
    state: web::Data<AppState>,
    kid: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    state.domain.embeds.revoke_key(user.id(), &kid).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What the analytics may derive from a request; the domain keeps only hashes and hosts.
fn visit_of(req: &HttpRequest) -> Visit {
    let text = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let dest = text(header::HeaderName::from_static("sec-fetch-dest"));
    Visit {
        client: client_id(req),
        user_agent: text(header::USER_AGENT).unwrap_or_default(),
        referrer: text(header::REFERER),
        framed: matches!(
            dest.as_deref(),
            Some("iframe" | "frame" | "embed" | "object")
        ),
    }
}
