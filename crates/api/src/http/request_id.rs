//! `x-request-id`: every answer carries one (the caller's when it is sane, else a new
//! UUID), the request's tracing span carries the same, and one log line per request
//! records how it ended.
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest caller-supplied id that is echoed back.
pub const MAX_LEN: usize = 128;

/// The request's id, in the request extensions for handlers that want it.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The caller's id if it is 1 to 128 visible ASCII characters.
pub fn sane(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let ok =
        !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|b| b.is_ascii_graphic());
    ok.then(|| String::from_utf8_lossy(bytes).into_owned())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(sane)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
    );
    // No clone of the request may live across `next.call`: routing needs it unshared.
    let started = Instant::now();

    let mut res = match next.call(req).instrument(span.clone()).await {
        Ok(res) => res.map_into_boxed_body(),
        // Handler and extractor errors arrive as responses; only a failing middleware
        // could get here, and actix answers for it.
        Err(err) => {
            span.in_scope(|| tracing::error!(error = %err, "request failed in middleware"));
            return Err(err);
        }
    };

    let status = res.status().as_u16();
    let route = res.request().match_pattern();
    span.in_scope(|| {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let route = route.as_deref().unwrap_or("unmatched");
        if status >= 500 {
            tracing::error!(status, route, elapsed_ms, "request failed");
        } else {
            tracing::info!(status, route, elapsed_ms, "request");
        }
    });

    if let Ok(value) = HeaderValue::from_str(&id) {
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
}
