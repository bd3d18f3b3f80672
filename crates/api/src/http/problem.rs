//! RFC 9457 problem details: the one shape of every error answer, and THE mapping from
//! [`domain::Error`] to HTTP.
use std::fmt;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};

/// Base of every problem `type` URI.
pub const TYPE_BASE: &str = "https://iops.dev/problems/";

/// An `application/problem+json` answer.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `https://iops.dev/problems/<slug>`.
    #[serde(rename = "type", serialize_with = "type_uri")]
    #[schema(value_type = String, example = "https://iops.dev/problems/not-found")]
    pub slug: &'static str,
    #[schema(value_type = String, example = "Not Found")]
    pub title: &'static str,
    #[schema(example = 404)]
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members (`limit`, `allowed`, `used`, `resets_at` on limit-exceeded).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
    /// Seconds for `Retry-After` (rate-limited).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` challenge (401 answers).
    #[serde(skip)]
    pub challenge: Option<&'static str>,
}

fn type_uri<S: serde::Serializer>(slug: &&'static str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{TYPE_BASE}{slug}"))
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<Option<String>>,
    ) -> Self {
        // RFC 9110: a 401 names the scheme that would work.
        let challenge = (status == StatusCode::UNAUTHORIZED).then_some("Bearer");
        Self {
            slug,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            extensions: Map::new(),
            retry_after: None,
            challenge,
        }
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Validation Failed",
            Some(detail.into()),
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad Request",
            Some(detail.into()),
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            Some(detail.into()),
        )
    }

    pub fn password_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "password-required",
            "Password Required",
            Some("this report needs its password".to_owned()),
        )
    }

    pub fn forbidden(reason: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            Some(reason.to_owned()),
        )
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            Some("no such resource".to_owned()),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method Not Allowed",
            Some("this resource does not take that method".to_owned()),
        )
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "conflict",
            "Conflict",
            Some(detail.into()),
        )
    }

    pub fn gone(what: &str) -> Self {
        Self::new(StatusCode::GONE, "gone", "Gone", Some(what.to_owned()))
    }

    pub fn payload_too_large(max_bytes: u64) -> Self {
        let mut p = Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload Too Large",
            Some(format!("the body is larger than {max_bytes} bytes")),
        );
        p.extensions.insert("max_bytes".into(), max_bytes.into());
        p
    }

    /// The client took too long to send its request (a stalled body).
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request Timeout",
            Some("the request body stopped arriving; send it again".to_owned()),
        )
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too Many Requests",
            Some(format!(
                "too many attempts; retry in {retry_after_secs} seconds"
            )),
        );
        p.retry_after = Some(retry_after_secs);
        p
    }

    /// The client closed its connection before the answer (nobody reads this; the request
    /// log and the metrics do).
    pub fn client_gone() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "client-gone",
            "Client Closed Request",
            Some("the client closed the connection; the work was stopped".to_owned()),
        )
    }

    pub fn service_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service Unavailable",
            Some("the database is not answering; retry later".to_owned()),
        )
    }

    /// A 500 whose detail says nothing about the cause; the cause goes to the log (inside
    /// the request's span, so it carries the request id).
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error_chain(cause), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error",
            Some(
                "something went wrong on our side; the request id identifies it in our logs"
                    .to_owned(),
            ),
        )
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The full `type` URI.
    pub fn type_uri(&self) -> String {
        format!("{TYPE_BASE}{}", self.slug)
    }

    pub fn with_extension(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        Problem::status_code(self)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(challenge) = self.challenge {
            res.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        let body = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"type":"https://iops.dev/problems/internal","title":"Internal Server Error","status":500}"#.to_vec()
        });
        res.body(body)
    }
}

/// The error answers many operations share, for their `responses(...)` lists: one
/// wording each, written once.
pub mod responses {
    use super::Problem;

    /// `401`.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 401,
        description = "Missing, invalid or revoked token",
        content_type = "application/problem+json"
    )]
    pub struct Unauthenticated(#[allow(dead_code)] Problem);

    /// `403` on operations on a shared analysis (and what belongs to it) that the
    /// caller's role does not allow.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 403,
        description = "A collaborator of the analysis whose role does not allow this",
        content_type = "application/problem+json"
    )]
    pub struct NotYourRole(#[allow(dead_code)] Problem);

    /// `403` on the admin operations.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 403,
        description = "The caller is not an administrator",
        content_type = "application/problem+json"
    )]
    pub struct NotAdmin(#[allow(dead_code)] Problem);

    /// `400` on the operations that take a JSON body.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 400,
        description = "Not JSON, or not `application/json`",
        content_type = "application/problem+json"
    )]
    pub struct NotJson(#[allow(dead_code)] Problem);

    /// `422` on the operations whose only input is an id in the path.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 422,
        description = "The id is not a UUID",
        content_type = "application/problem+json"
    )]
    pub struct BadId(#[allow(dead_code)] Problem);
}

/// THE mapping table: each domain outcome is exactly one problem type.
impl From<domain::Error> for Problem {
    fn from(err: domain::Error) -> Self {
        use domain::Error as E;
        match err {
            E::Validation(msg) => Problem::validation(msg),
            E::BadRequest(msg) => Problem::bad_request(msg),
            E::NotFound => Problem::not_found(),
            E::Conflict(msg) => Problem::conflict(msg),
            E::Unauthorized(reason) => Problem::unauthorized(reason.message()),
            E::NothingToUnlock => Problem::validation(err.to_string()),
            E::Forbidden(reason) => Problem::forbidden(reason),
            E::PasswordRequired => Problem::password_required(),
            E::Gone(what) => Problem::gone(what),
            E::LimitExceeded {
                limit,
                allowed,
                used,
                resets_at,
            } => Problem::new(
                StatusCode::PAYMENT_REQUIRED,
                "limit-exceeded",
                "Limit Exceeded",
                Some(if limit.is_monthly() {
                    format!(
                        "the monthly {} limit of your tier ({allowed}) is reached",
                        limit.as_str()
                    )
                } else {
                    format!(
                        "the {} limit of your tier ({allowed}) is reached",
                        limit.as_str()
                    )
                }),
            )
            .with_extension("limit", limit.as_str())
            .with_extension("allowed", allowed)
            .with_extension("used", used)
            .with_extension("resets_at", resets_at.map(crate::http::dto::rfc3339)),
            E::QueryFailed(failure) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "query-failed",
                "Query Failed",
                Some(failure.message),
            )
            .with_extension("reason", failure.reason.as_str()),
            E::HostNotAllowed(why) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "host-not-allowed",
                "Host Not Allowed",
                Some(why),
            ),
            E::ConnectionFailed(why) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "connection-failed",
                "Connection Failed",
                Some(why),
            ),
            E::PurchaseRequired => Problem::new(
                StatusCode::PAYMENT_REQUIRED,
                "purchase-required",
                "Purchase Required",
                Some(err.to_string()),
            )
            .with_extension("limit", "purchase"),
            E::NotConfigured(what) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-configured",
                "Not Configured",
                Some(what.to_owned()),
            ),
            E::Upstream(ref what) => {
                tracing::warn!(error = %what, "upstream service failed");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream-unavailable",
                    "Upstream Unavailable",
                    Some(what.clone()),
                )
            }
            E::RateLimited { retry_after_secs } => Problem::rate_limited(retry_after_secs.max(1)),
            E::PayloadTooLarge { max_bytes } => Problem::payload_too_large(max_bytes),
            E::Unavailable(ref cause) => {
                tracing::warn!(error = %error_chain(cause), "database unavailable");
                Problem::service_unavailable()
            }
            E::Database(_) | E::Storage(_) | E::Internal(_) | E::Connect(_) => {
                Problem::internal(&err)
            }
        }
    }
}

/// THE mapping to pages, for browsers on the public report routes (`/r/{short_code}`) and
/// invitation links: each domain outcome is one page, with the status of its problem type.
pub fn html_page(err: domain::Error, short_code: &str) -> HttpResponse {
    use crate::http::html::{self, FormNotice};
    use domain::Error as E;
    match err {
        E::NotFound => html::not_found(),
        E::Gone(what) => html::gone(what),
        E::PasswordRequired => html::password_form(short_code, FormNotice::None),
        E::Unauthorized(_) => html::password_form(short_code, FormNotice::WrongPassword),
        // Nothing to unlock: the report opens as it is.
        E::NothingToUnlock => HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                crate::http::routes::public::report_path(short_code),
            ))
            .finish(),
        E::RateLimited { retry_after_secs } => html::rate_limited(retry_after_secs.max(1)),
        // The problem mapping logs what needs logging; the page shows only the status.
        other => html::error(Problem::from(other).status_code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_exceeded_carries_its_extensions() {
        let resets_at = chrono::DateTime::parse_from_rfc3339("2026-04-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let p = Problem::from(domain::Error::LimitExceeded {
            limit: domain::LimitKind::AiMessages,
            allowed: 50,
            used: 50,
            resets_at: Some(resets_at),
        });
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["status"], 402);
        assert_eq!(json["type"], "https://iops.dev/problems/limit-exceeded");
        assert_eq!(json["limit"], "ai_messages");
        assert_eq!(json["allowed"], 50);
        assert_eq!(json["used"], 50);
        assert_eq!(json["resets_at"], "2026-04-01T00:00:00Z");

        let standing = Problem::from(domain::Error::LimitExceeded {
            limit: domain::LimitKind::Collaborators,
            allowed: 3,
            used: 3,
            resets_at: None,
        });
        let json = serde_json::to_value(&standing).unwrap();
        assert_eq!(json["limit"], "collaborators");
        assert_eq!(json["resets_at"], serde_json::Value::Null);
    }

    #[test]
    fn problems_stay_small() {
        // Every handler returns `Result<_, Problem>`; clippy's large-error limit is 128.
        assert!(std::mem::size_of::<Problem>() <= 128);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let p = Problem::from(domain::Error::Internal("secret path /var/x".into()));
        let body = serde_json::to_string(&p).unwrap();
        assert_eq!(p.status, 500);
        assert!(!body.contains("/var/x"));
    }

    #[test]
    fn database_errors_without_a_sqlstate_stay_internal() {
        let err = sea_orm::DbErr::Custom("SELECT secret FROM x".into());
        let p = Problem::from(domain::Error::Database(err));
        assert_eq!(p.status, 500);
        assert!(!serde_json::to_string(&p).unwrap().contains("SELECT"));
    }

    #[test]
    fn unauthorized_challenges_for_a_bearer_token() {
        let res = Problem::from(domain::Error::Unauthorized(
            domain::Unauthenticated::Credentials,
        ))
        .error_response();
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
    }
}
