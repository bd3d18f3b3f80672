//! Request parsing with the API's error rules: a body that is not JSON or has the wrong
//! `Content-Type` is `400`; JSON of the wrong shape (unknown, missing or mistyped field)
//! is `422`; a body over the limit is `413`; bad path or query values are `422`.
//!
//! The configs below are registered once as app data, so every `web::Query<T>` and
//! `web::Path<T>` in the routes follows these rules. JSON bodies should use this module's
//! [`Json`] rather than `web::Json`: serde_json reports some shape errors (a `null` or a
//! number where an enum is expected) as syntax errors, which `web::Json` cannot tell from
//! a body that is not JSON at all.
use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::{FromRequest, HttpRequest, web};
use domain::pagination::PageRequest;
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
            T::deserialize(value)
                .map(Json)
                .map_err(|e| Problem::validation(e.to_string()).into())
        })
    }
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

    #[test]
    fn ids_must_be_uuids() {
        assert_eq!(parse_id("nope").unwrap_err().status, 422);
        assert!(parse_id("6f1c2a9e-1c8e-4b8e-9a51-0d6f0f0e7b11").is_ok());
    }
}
