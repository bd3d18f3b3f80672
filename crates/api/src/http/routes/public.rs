//! Public report access, no login: `GET /r/{short_code}` and `POST /r/{short_code}/unlock`.
//!
//! Two audiences share these URLs. API clients get JSON (problems on failure) and present
//! an unlock token as `Authorization: Bearer`. Browsers (`Accept: text/html`) get a small
//! HTML page for every outcome, with the same status code; their password form posts
//! `application/x-www-form-urlencoded` to the unlock endpoint, which answers with a cookie
//! scoped to this one report and a `303` back to the report.
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use actix_web::{get, post};
use chrono::{DateTime, Utc};
use domain::PublicView;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::http::AppState;
use crate::http::auth::bearer_token;
use crate::http::dto::AnalysisStatus;
use crate::http::extract::{client_id, from_json_bytes};
use crate::http::problem::Problem;

use crate::http::html;

/// Largest unlock body: a password is at most 1024 bytes, three times that once
/// form-encoded, plus the field name and JSON framing.
const UNLOCK_BODY_LIMIT: usize = 8 * 1024;
/// Registers this module's operations: each handler carries its path and method (actix's
/// route macro) and its documentation (`utoipa::path`), so the route table and the
/// OpenAPI document are one list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(view_report).service(unlock_report);
}

/// A report as the public sees it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PublicReportDto {
    pub short_code: String,
    /// Views so far, this one included.
    pub view_count: i32,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub analysis: PublicAnalysisDto,
    /// `null` when the analysis has no dataset (or it was deleted).
    pub dataset: Option<PublicDatasetDto>,
    /// The analysis's charts, oldest first; the HTML page draws each above the data.
    pub charts: Vec<PublicChartDto>,
}

/// A chart of a public report.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PublicChartDto {
    pub id: uuid::Uuid,
    pub name: String,
    pub chart_type: domain::ChartType,
    pub config: domain::ChartConfig,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PublicAnalysisDto {
    pub name: String,
    pub status: AnalysisStatus,
    #[schema(value_type = Option<crate::http::dto::JsonObject>)]
    pub config: Option<Box<serde_json::value::RawValue>>,
    #[schema(value_type = Option<crate::http::dto::JsonObject>)]
    pub results: Option<Box<serde_json::value::RawValue>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PublicDatasetDto {
    pub name: String,
    pub row_count: Option<i32>,
    pub column_count: Option<i32>,
}

impl From<PublicView> for PublicReportDto {
    fn from(view: PublicView) -> Self {
        Self {
            short_code: view.short_code,
            view_count: view.view_count,
            expires_at: view.expires_at,
            created_at: view.created_at,
            analysis: PublicAnalysisDto {
                name: view.analysis.name,
                status: view.analysis.status,
                config: view.analysis.config,
                results: view.analysis.results,
                updated_at: view.analysis.updated_at,
            },
            dataset: view.dataset.map(|d| PublicDatasetDto {
                name: d.name,
                row_count: d.row_count,
                column_count: d.column_count,
            }),
            charts: view
                .charts
                .into_iter()
                .map(|c| PublicChartDto {
                    id: c.id.0,
                    name: c.name,
                    chart_type: c.chart_type,
                    config: c.config,
                })
                .collect(),
        }
    }
}

/// `POST /r/{short_code}/unlock` body, as JSON or as a form.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    pub password: String,
}

/// An unlock's answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UnlockDto {
    /// Present as `Authorization: Bearer <access_token>` on `GET /r/{short_code}`.
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
}

/// View a report
///
/// Rules, in this order: unknown code or a report that is not public → `404`; past its
/// `expires_at` → `410`; password set and no valid access token for this report → `401`
/// (`/password-required`); otherwise `200`, and `view_count` (in the body, this view
/// included) goes up by one. The access token comes from `Authorization: Bearer` or, for
/// browsers, from the cookie the form unlock sets. With `Accept: text/html` every outcome
/// is an HTML page with the same status (the `401` page has the password form).
///
/// The count and the rules are decided by the database on every view. The page content
/// (analysis, dataset, charts) a server has read serves its views for up to
/// `IOPS_REPORT_CACHE_MS` (1 s by default): edits made through the same server show at
/// once, edits made through another server within that time.
#[utoipa::path(
    operation_id = "view",
    tag = "public",
    params(("short_code" = String, Path, description = "The report's short code")),
    responses(
        (status = 200, description = "The report", content(
            (PublicReportDto = "application/json"),
            (String = "text/html"),
        )),
        (status = 401, description = "The report needs its password (HTML: the password form)", content(
            (Problem = "application/problem+json"),
            (String = "text/html"),
        )),
        (status = 404, description = "Unknown, deleted or not public", content(
            (Problem = "application/problem+json"),
            (String = "text/html"),
        )),
        (status = 410, description = "Expired", content(
            (Problem = "application/problem+json"),
            (String = "text/html"),
        )),
    ),
    security((), ("report_token" = []))
)]
#[get("/r/{short_code}")]
async fn view_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    code: web::Path<String>,
) -> HttpResponse {
    let code = code.into_inner();
    let browser = html::wants_html(&req);
    let cookie = report_cookie(&req, &code);
    let token = bearer_token(&req).or_else(|| cookie.clone());
    let outcome = state.domain.reports.view(&code, token.as_deref()).await;
    let mut res = match outcome {
        Ok(view) if browser => html::report(&page_of(&view, view.drawings())),
        Ok(view) => HttpResponse::Ok().json(PublicReportDto::from(view)),
        Err(err) if browser => {
            let mut res = crate::http::problem::html_page(err, &code);
            // A stale cookie (expired, or the password changed) only gets in the way.
            if res.status() == StatusCode::UNAUTHORIZED && cookie.is_some() {
                let _ = res.add_removal_cookie(&unlock_cookie(&req, &code, String::new(), 0));
            }
            res
        }
        Err(err) => Problem::from(err).error_response(),
    };
    no_store(&mut res);
    res
}

/// Unlock a password-protected report
///
/// Trades the report's password for an access token valid for this report only. A JSON
/// body answers JSON. A form post (`application/x-www-form-urlencoded`, the HTML password
/// form) answers `303` to `/r/{short_code}` with the token in an HttpOnly, SameSite=Strict
/// cookie scoped to that path; a wrong password there is the `401` form again, with a
/// message. Repeated wrong passwords for one report from one client are `429` (with
/// `Retry-After`) after 10 failures in 15 minutes, the right password included.
#[utoipa::path(
    operation_id = "unlock",
    tag = "public",
    params(("short_code" = String, Path, description = "The report's short code")),
    request_body(content(
        (UnlockRequest = "application/json"),
        (UnlockRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Unlocked (JSON request)", body = UnlockDto),
        (status = 303, description = "Unlocked (form request): the cookie is set, and the report is at `Location`",
            headers(("Set-Cookie" = String, description = "iops_report_{short_code}=<token>; HttpOnly; SameSite=Strict; Path=/r/{short_code}"))),
        (status = 400, description = "Neither JSON nor a form, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong password (form request: the password form with a message)", content(
            (Problem = "application/problem+json"),
            (String = "text/html"),
        )),
        (status = 404, description = "Unknown, deleted or not public", content(
            (Problem = "application/problem+json"),
            (String = "text/html"),
        )),
        (status = 410, description = "Expired", content(
            (Problem = "application/problem+json"),
            (String = "text/html"),
        )),
        (status = 422, description = "No password field, or the report has no password", content(
            (Problem = "application/problem+json"),
            (String = "text/html"),
        )),
        (status = 429, description = "Too many wrong passwords from this client; see `Retry-After`", content(
            (Problem = "application/problem+json"),
            (String = "text/html"),
        ), headers(("Retry-After" = u64, description = "Seconds until attempts are accepted again"))),
    )
)]
#[post("/r/{short_code}/unlock")]
async fn unlock_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    code: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let code = code.into_inner();
    let mut res = match req.mime_type() {
        Ok(Some(ct)) if ct.essence_str() == "application/x-www-form-urlencoded" => {
            unlock_form(&state, &req, &code, payload).await
        }
        Ok(Some(ct)) if ct.essence_str() == "application/json" => {
            match unlock_json(&state, &req, &code, payload).await {
                Ok(res) => res,
                Err(problem) => problem.error_response(),
            }
        }
        _ => Problem::bad_request(
            "unlock takes a JSON body {\"password\": ...} or a form post (application/x-www-form-urlencoded)",
        )
        .error_response(),
    };
    no_store(&mut res);
    res
}

async fn unlock_json(
    state: &AppState,
    req: &HttpRequest,
    code: &str,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let body = read_body(payload).await?;
    let body: UnlockRequest = from_json_bytes(&body)?;
    let issued = state
        .domain
        .reports
        .unlock(code, &body.password, &client_id(req))
        .await?;
    Ok(HttpResponse::Ok().json(UnlockDto {
        access_token: issued.secret,
        expires_at: issued.expires_at,
    }))
}

async fn unlock_form(
    state: &AppState,
    req: &HttpRequest,
    code: &str,
    payload: web::Payload,
) -> HttpResponse {
    let body = match read_body(payload).await {
        Ok(body) => body,
        Err(problem) => return html::error(problem.status_code()),
    };
    // Browsers may add fields (a button's name); only `password` matters.
    let password = url::form_urlencoded::parse(&body)
        .find(|(key, _)| key == "password")
        .map(|(_, value)| value.into_owned())
        .filter(|p| !p.is_empty());
    let Some(password) = password else {
        return html::password_form(code, html::FormNotice::Missing);
    };
    match state
        .domain
        .reports
        .unlock(code, &password, &client_id(req))
        .await
    {
        Ok(issued) => {
            // Against the instant the expiry was computed from, at the stored precision.
            let now = state.domain.now();
            let max_age = (issued.expires_at - now).num_seconds().max(0);
            let cookie = unlock_cookie(req, code, issued.secret, max_age);
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, report_path(code)))
                .cookie(cookie)
                .finish()
        }
        Err(err) => crate::http::problem::html_page(err, code),
    }
}

async fn read_body(mut payload: web::Payload) -> Result<web::BytesMut, Problem> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Problem::bad_request(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > UNLOCK_BODY_LIMIT {
            return Err(Problem::payload_too_large(UNLOCK_BODY_LIMIT as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(crate) fn report_path(code: &str) -> String {
    format!("/r/{code}")
}

/// `iops_report_<code>`; `None` for a code that could not be a cookie name (and could
/// not be a report either).
fn cookie_name(code: &str) -> Option<String> {
    (!code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| format!("iops_report_{code}"))
}

fn report_cookie(req: &HttpRequest, code: &str) -> Option<String> {
    let name = cookie_name(code)?;
    req.cookie(&name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// The cookie that carries a report's unlock token: readable by no script, sent only to
/// this report's URLs and only from this site, and `Secure` when the request came over
/// HTTPS (a plain-HTTP deployment could not send it back otherwise).
fn unlock_cookie(
    req: &HttpRequest,
    code: &str,
    token: String,
    max_age_secs: i64,
) -> Cookie<'static> {
    let name = cookie_name(code).unwrap_or_else(|| "iops_report".to_owned());
    Cookie::build(name, token)
        .path(report_path(code))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .max_age(CookieDuration::seconds(max_age_secs))
        .finish()
}

/// Public answers depend on who asks (token, cookie, `Accept`) and count views: no cache
/// may keep or share them.
fn no_store(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::VARY,
        header::HeaderValue::from_static("Accept, Authorization, Cookie"),
    );
}

fn page_of<'a>(
    view: &'a PublicView,
    drawings: Vec<(&'a domain::PublicChart, String)>,
) -> html::ReportPage<'a> {
    html::ReportPage {
        short_code: &view.short_code,
        view_count: view.view_count,
        expires_at: view.expires_at,
        created_at: view.created_at,
        analysis_name: &view.analysis.name,
        analysis_status: view.analysis.status.as_str(),
        analysis_updated_at: view.analysis.updated_at,
        config: view.analysis.config.as_deref(),
        results: view.analysis.results.as_deref(),
        dataset: view
            .dataset
            .as_ref()
            .map(|d| (d.name.as_str(), d.row_count, d.column_count)),
        charts: drawings
            .into_iter()
            .map(|(chart, svg)| (chart.name.as_str(), svg))
            .collect(),
    }
}
