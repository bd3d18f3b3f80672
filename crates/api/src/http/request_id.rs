//! `x-request-id`: every answer carries one (the caller's when it is sane, else a new
//! UUID), the request's tracing span carries the same, and one log line per request
//! records how it ended.
//!
//! Spans and the log line are `tracing-actix-web`'s [`TracingLogger`], shaped by
//! [`RequestSpan`]. Its own `RequestId` is always a fresh UUID and it sets no response
//! header, so choosing the id (echoing a caller's, to follow one request across services)
//! and answering with it stay here, in [`RequestId::of`] and [`middleware`].
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Span;
use tracing_actix_web::{RootSpanBuilder, TracingLogger};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest caller-supplied id that is echoed back: a longer one is more likely garbage or
/// an attempt to bloat logs than a trace id.
pub const MAX_LEN: usize = 128;

/// The request's id, in the request extensions for handlers that want it. This, not
/// `tracing_actix_web::RequestId` (a UUID of its own that no answer shows), is the id the
/// caller sees in `x-request-id` and the logs carry.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    /// The request's id, chosen on first ask and then kept in its extensions, so the span
    /// and the response header agree whichever middleware asks first.
    pub fn of(req: &ServiceRequest) -> RequestId {
        if let Some(id) = req.extensions().get::<RequestId>() {
            return id.clone();
        }
        let id = RequestId(
            req.headers()
                .get(&HEADER)
                .and_then(sane)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        );
        req.extensions_mut().insert(id.clone());
        id
    }
}

/// The caller's id if it is 1 to 128 visible ASCII characters: anything else could forge
/// log lines or break the header on the way back.
pub fn sane(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let ok =
        !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|b| b.is_ascii_graphic());
    ok.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// When the request arrived, for the elapsed time of its log line.
#[derive(Clone, Copy)]
struct Started(Instant);

/// The path as the logs show it. An invitation link's token is a credential (whoever holds
/// it sees the invitation), so its segment is replaced; every other path is logged as is
/// (query strings, which may hold a signed embed's token, are never logged).
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in ["/invitations/", "/api/v1/invitations/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            return std::borrow::Cow::Owned(format!("{prefix}{{token}}{tail}"));
        }
    }
    std::borrow::Cow::Borrowed(path)
}

/// The span every request runs in (`request`, with the request id, method and raw path,
/// the fields the logs have always had) and its one closing log line.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(req: &ServiceRequest) -> Span {
        let id = RequestId::of(req);
        req.extensions_mut().insert(Started(Instant::now()));
        tracing::info_span!(
            "request",
            request_id = %id.0,
            method = %req.method(),
            path = %loggable_path(req.path()),
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let res = match outcome {
            Ok(res) => res,
            // Handler and extractor errors arrive as responses; only a failing middleware
            // could get here, and actix answers for it.
            Err(err) => {
                span.in_scope(|| tracing::error!(error = %err, "request failed in middleware"));
                return;
            }
        };
        let status = res.status().as_u16();
        // The line's fields cost a route lookup and a clock read: only when it is logged.
        if status < 500 && !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
        let request = res.request();
        // The pattern, not the path: ids in paths would make every line unique.
        let route = request.match_pattern();
        let route = route.as_deref().unwrap_or("unmatched");
        let started = request.extensions().get::<Started>().copied();
        let elapsed_ms = started.map_or(0.0, |s| s.0.elapsed().as_secs_f64() * 1000.0);
        span.in_scope(|| {
            if status >= 500 {
                tracing::error!(status, route, elapsed_ms, "request failed");
            } else {
                tracing::info!(status, route, elapsed_ms, "request");
            }
        });
    }
}

/// The span and log middleware; wrap it inside [`middleware`].
pub fn logger() -> TracingLogger<RequestSpan> {
    TracingLogger::new()
}

/// Puts the request's id on its answer.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = RequestId::of(&req);
    let mut res = next.call(req).await?.map_into_boxed_body();
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        res.headers_mut().insert(HEADER, value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ascii_ids_are_echoed() {
        assert_eq!(
            sane(&HeaderValue::from_static("abc-123")).as_deref(),
            Some("abc-123")
        );
        assert_eq!(sane(&HeaderValue::from_static("")), None);
        assert_eq!(sane(&HeaderValue::from_static("has space")), None);
        let long = "a".repeat(MAX_LEN + 1);
        assert_eq!(sane(&HeaderValue::from_str(&long).unwrap()), None);
        let max = "a".repeat(MAX_LEN);
        assert_eq!(sane(&HeaderValue::from_str(&max).unwrap()), Some(max));
    }

    #[test]
    fn the_id_is_chosen_once_per_request() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((HEADER, "trace-1"))
            .to_srv_request();
        assert_eq!(RequestId::of(&req).0, "trace-1");
        let fresh = actix_web::test::TestRequest::default().to_srv_request();
        let first = RequestId::of(&fresh).0;
        assert!(uuid::Uuid::parse_str(&first).is_ok());
        assert_eq!(RequestId::of(&fresh).0, first);
    }

    #[test]
    fn invitation_tokens_never_reach_the_logs() {
        assert_eq!(
            loggable_path("/api/v1/invitations/abcDEF123-_x/accept"),
            "/api/v1/invitations/{token}/accept"
        );
        assert_eq!(
            loggable_path("/invitations/abcDEF123-_x"),
            "/invitations/{token}"
        );
        assert_eq!(loggable_path("/r/Ab3dE5fG7h"), "/r/Ab3dE5fG7h");
        assert_eq!(
            loggable_path("/api/v1/analyses/1/collaborators"),
            "/api/v1/analyses/1/collaborators"
        );
    }
}
