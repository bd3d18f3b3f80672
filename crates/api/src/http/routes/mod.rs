//! One module per resource; each registers its routes and documents them in its `Doc`.
pub mod accounts;
pub mod admin;
pub mod analyses;
pub mod datasets;
pub mod ops;
pub mod public;
pub mod reports;

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use super::problem::Problem;

pub fn configure(cfg: &mut web::ServiceConfig) {
    ops::configure(cfg);
    accounts::configure(cfg);
    admin::configure(cfg);
    datasets::configure(cfg);
    analyses::configure(cfg);
    reports::configure(cfg);
    public::configure(cfg);
}

/// Answer for a path no route matches.
pub async fn not_found() -> Result<HttpResponse, Problem> {
    Err(Problem::not_found())
}

/// Answer for a known path asked with a method it does not take (use as a resource's
/// `default_service`). RFC 9110 requires a `405` to list the methods the resource takes
/// in `Allow`; they come from the OpenAPI document, so the two cannot disagree.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut res = Problem::method_not_allowed().error_response();
    let allow = req
        .match_pattern()
        .and_then(|pattern| allowed_methods().get(&pattern).cloned())
        .and_then(|methods| header::HeaderValue::from_str(&methods).ok());
    if let Some(allow) = allow {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}

/// Route pattern → its documented methods (`GET, PATCH, DELETE`), built once.
fn allowed_methods() -> &'static HashMap<String, String> {
    static ALLOWED: OnceLock<HashMap<String, String>> = OnceLock::new();
    ALLOWED.get_or_init(|| {
        super::openapi::document()
            .paths
            .paths
            .into_iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ];
                let allow: Vec<&str> = methods
                    .iter()
                    .filter(|(_, documented)| *documented)
                    .map(|(name, _)| *name)
                    .collect();
                (path, allow.join(", "))
            })
            .collect()
    })
}
