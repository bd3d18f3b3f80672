//! Request parsing with the API's error rules: a body that is not JSON or has the wrong
//! `Content-Type` is `400`; JSON of the wrong shape (unknown, missing or mistyped field)
//! is `422`; a body over the limit is `413`; bad path or query values are `422`.
//!
//! The configs below are registered once as app data, so every `web::Query<T>` and
//! `web::Path<T>` in the routes follows these rules. JSON bodies should use this module's
//! [`Json`] rather than `web::Json`: serde_json reports some shape errors (a `null` or a
//! number where an enum is expected) as syntax errors, which `web::Json` cannot tell from
//! a body that is not JSON at all.
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use domain::PageRequest;
use futures_util::Stream;
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::problem::Problem;

/// Largest JSON body accepted (uploads are multipart and have their own limit).
pub const JSON_LIMIT_BYTES: usize = 1024 * 1024;

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT_BYTES)
        .error_handler(|err, _req| json_problem(err).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| query_problem(err).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| path_problem(err).into())
}

pub fn json_problem(err: JsonPayloadError) -> Problem {
    match err {
        JsonPayloadError::ContentType => {
            Problem::bad_request("this endpoint takes a JSON body (Content-Type: application/json)")
        }
        JsonPayloadError::Deserialize(e) => {
            use serde_json::error::Category;
            match e.classify() {
                // The body has the wrong shape for this endpoint: a validation failure.
                Category::Data => Problem::validation(e.to_string()),
                Category::Syntax | Category::Eof | Category::Io => {
                    Problem::bad_request(format!("the body is not valid JSON: {e}"))
                }
            }
        }
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => Problem::payload_too_large(limit as u64),
        JsonPayloadError::Payload(PayloadError::Overflow) => {
            Problem::payload_too_large(JSON_LIMIT_BYTES as u64)
        }
        JsonPayloadError::Payload(PayloadError::Io(ref e))
            if e.kind() == std::io::ErrorKind::TimedOut =>
        {
            Problem::request_timeout()
        }
        JsonPayloadError::Payload(e) => {
            Problem::bad_request(format!("could not read the body: {e}"))
        }
        other => Problem::bad_request(other.to_string()),
    }
}

pub fn query_problem(err: QueryPayloadError) -> Problem {
    match err {
        QueryPayloadError::Deserialize(e) => {
            Problem::validation(format!("bad query parameter: {e}"))
        }
        other => Problem::validation(other.to_string()),
    }
}

pub fn path_problem(err: PathError) -> Problem {
    match err {
        PathError::Deserialize(e) => Problem::validation(format!("bad path parameter: {e}")),
        other => Problem::validation(other.to_string()),
    }
}

/// A JSON body: `400` unless it is JSON sent as `application/json`, `413` beyond
/// [`JSON_LIMIT_BYTES`], `422` unless it has the shape of `T` (unknown, missing or
/// mistyped fields). The body is first read as any JSON value, so that every failure to
/// fit `T` is a shape failure, whatever serde_json would have called it.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = value.await?.into_inner();
            from_json_value(value).map(Json).map_err(Into::into)
        })
    }
}

/// A body already parsed as JSON, read as `T` by the rules of [`Json`]: any failure to
/// fit `T` is `422`.
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Problem> {
    // serde also accepts a struct written as an array of its fields in order (`["x"]`).
    // Every body of this API is an object (or `null` where the body is optional), so an
    // array is refused rather than taken as a second, undocumented spelling.
    if value.is_array() {
        return Err(Problem::validation("the body must be a JSON object"));
    }
    if domain::json_contains_nul(&value) {
        return Err(Problem::validation(
            "text must not contain NUL characters (\\u0000)",
        ));
    }
    T::deserialize(value).map_err(|e| Problem::validation(e.to_string()))
}

/// [`from_json_value`] over raw bytes: `400` when they are not JSON at all.
pub fn from_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let value = serde_json::from_slice::<serde_json::Value>(bytes)
        .map_err(|e| json_problem(JsonPayloadError::Deserialize(e)))?;
    from_json_value(value)
}

/// The client identity attempts are throttled under (failed logins, report unlocks): the
/// TCP peer's IP address. `X-Forwarded-For` is deliberately ignored: anyone can send it,
/// so trusting it would let an attacker pick a fresh identity per guess. Behind a reverse
/// proxy every client shares the proxy's address (stricter, never looser); a deployment
/// that needs per-client limits there must make the proxy's address trustworthy first.
pub fn client_id(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Parses an id from a path segment (`422` when it is not a UUID).
pub fn parse_id(raw: &str) -> Result<domain::Id, Problem> {
    uuid::Uuid::parse_str(raw)
        .map(domain::Id)
        .map_err(|_| Problem::validation(format!("'{raw}' is not a valid id (a UUID)")))
}

/// The raw `?limit=&cursor=` query parameters, for documentation and for routes that
/// read them along with other filters.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn page_request(&self) -> Result<PageRequest, Problem> {
        PageRequest::new(self.limit, self.cursor.as_deref()).map_err(Problem::from)
    }
}

/// Extractor: the validated page request of `?limit=&cursor=` (other query keys are
/// ignored, so a route can read its own filters with another `web::Query`).
#[derive(Clone, Debug)]
pub struct Pagination(pub PageRequest);

impl FromRequest for Pagination {
    type Error = Problem;
    type Future = std::future::Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            web::Query::<PageQuery>::from_query(req.query_string())
                .map_err(query_problem)
                .and_then(|q| q.page_request())
                .map(Pagination),
        )
    }
}

/// How long a request body may stall: app data read by [`body_idle_timeout`].
#[derive(Clone, Copy, Debug)]
pub struct BodyIdleTimeout(pub Duration);

/// Middleware: the request body ends in an error (`io::ErrorKind::TimedOut`, which the
/// JSON extractor answers with `408`) once no byte has arrived for [`BodyIdleTimeout`]
/// while the handler was waiting for one. The response then closes the connection, so a
/// client trickling its body cannot hold a connection (and its buffers) forever.
pub async fn body_idle_timeout(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(BodyIdleTimeout(limit)) = req.app_data::<BodyIdleTimeout>().copied() {
        let payload = req.take_payload();
        if !matches!(payload, Payload::None) {
            req.set_payload(Payload::Stream {
                payload: Box::pin(IdleTimeout {
                    inner: payload,
                    limit,
                    timer: None,
                    expired: false,
                }),
            });
        }
    }
    next.call(req).await
}

/// A body stream that fails after `limit` of waiting without a byte. The clock runs only
/// while the reader waits (between a `Pending` and the next item), so a handler that is
/// slow to read (backpressure from the disk or the database) never times its client out.
struct IdleTimeout {
    inner: Payload,
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    expired: bool,
}

impl Stream for IdleTimeout {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.expired {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(item) => {
                this.timer = None;
                Poll::Ready(item)
            }
            Poll::Pending => {
                let limit = this.limit;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        this.timer = None;
                        this.expired = true;
                        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "no part of the body arrived for {} seconds",
                                limit.as_secs_f64()
                            ),
                        )))))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_split_into_400_and_422() {
        let syntax = serde_json::from_str::<serde_json::Value>("{nope").unwrap_err();
        assert_eq!(
            json_problem(JsonPayloadError::Deserialize(syntax)).status,
            400
        );

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            a: i32,
        }
        let unknown = serde_json::from_str::<Body>(r#"{"a": 1, "b": 2}"#).unwrap_err();
        assert_eq!(
            json_problem(JsonPayloadError::Deserialize(unknown)).status,
            422
        );
        let typed = serde_json::from_str::<Body>(r#"{"a": "x"}"#).unwrap_err();
        assert_eq!(
            json_problem(JsonPayloadError::Deserialize(typed)).status,
            422
        );
        assert_eq!(json_problem(JsonPayloadError::ContentType).status, 400);
        assert_eq!(
            json_problem(JsonPayloadError::Overflow { limit: 10 }).status,
            413
        );
    }

    #[actix_web::test]
    async fn json_bodies_split_syntax_from_shape() {
        use actix_web::test::TestRequest;

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            tier: Option<crate::http::dto::Tier>,
        }
        async fn status(body: &str, content_type: &str) -> u16 {
            let (req, mut payload) = TestRequest::post()
                .insert_header(("content-type", content_type))
                .app_data(json_config())
                .set_payload(body.to_owned())
                .to_http_parts();
            match Json::<Body>::from_request(&req, &mut payload).await {
                Ok(_) => 200,
                Err(e) => e.as_response_error().status_code().as_u16(),
            }
        }
        assert_eq!(status(r#"{"tier": "pro"}"#, "application/json").await, 200);
        // serde_json calls these syntax errors when parsing straight into an enum.
        assert_eq!(status(r#"{"tier": 5}"#, "application/json").await, 422);
        assert_eq!(status(r#"{"tier": []}"#, "application/json").await, 422);
        assert_eq!(status(r#"{"tier": "gold"}"#, "application/json").await, 422);
        assert_eq!(status(r#"{"other": 1}"#, "application/json").await, 422);
        assert_eq!(status(r#"[1, 2]"#, "application/json").await, 422);
        assert_eq!(status(r#"{"tier": "#, "application/json").await, 400);
        assert_eq!(status("", "application/json").await, 400);
        assert_eq!(status(r#"{"tier": "pro"}"#, "text/plain").await, 400);
    }

    #[test]
    fn page_query_validates() {
        let q = PageQuery {
            limit: Some(101),
            cursor: None,
        };
        assert_eq!(q.page_request().unwrap_err().status, 422);
        let q = PageQuery {
            limit: None,
            cursor: Some("garbage".into()),
        };
        assert_eq!(q.page_request().unwrap_err().status, 422);
        assert_eq!(PageQuery::default().page_request().unwrap().limit, 20);
    }

    #[actix_web::test]
    async fn a_stalled_body_times_out_and_a_slow_reader_does_not() {
        use futures_util::StreamExt;

        // "abc" at once, then nothing ever again.
        let client = futures_util::stream::once(async { Ok(Bytes::from_static(b"abc")) })
            .chain(futures_util::stream::pending());
        let mut body = IdleTimeout {
            inner: Payload::Stream {
                payload: Box::pin(client),
            },
            limit: Duration::from_millis(50),
            timer: None,
            expired: false,
        };
        // The reader dawdles far longer than the limit: not the client's fault.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(body.next().await.unwrap().unwrap(), "abc");
        // Now it waits, and nothing comes.
        let err = body.next().await.unwrap().unwrap_err();
        assert!(
            matches!(&err, PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut),
            "{err:?}"
        );
        assert!(body.next().await.is_none());
        assert_eq!(json_problem(JsonPayloadError::Payload(err)).status, 408);
    }

    #[test]
    fn ids_must_be_uuids() {
        assert_eq!(parse_id("nope").unwrap_err().status, 422);
        assert!(parse_id("6f1c2a9e-1c8e-4b8e-9a51-0d6f0f0e7b11").is_ok());
    }
}
