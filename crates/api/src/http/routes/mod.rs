//! One module per resource. Each handler carries its route (actix's macro) and its
//! documentation (`utoipa::path`); `configure` registers them through utoipa-actix-web,
//! which collects the OpenAPI document from the same calls.
pub mod accounts;
pub mod activity;
pub mod admin;
pub mod analyses;
pub mod billing;
pub mod charts;
pub mod collaborations;
pub mod comments;
pub mod connections;
pub mod datasets;
pub mod embeds;
pub mod events;
pub mod ops;
pub mod public;
pub mod reports;
pub mod templates;

use actix_web::dev::ResourceDef;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::problem::Problem;

/// Every route of the application.
pub fn configure(cfg: &mut ServiceConfig) {
    ops::configure(cfg);
    // The public pages first: actix tries resources in the order they are registered, and
    // every pattern with a `{segment}` tried before the one that matches is a regex run
    // (twice, with the metrics' route label). No other pattern can match their paths
    // (`/r/…`, `/e/…`, `/api/v1/me/embed-keys…`), so the order changes no answer.
    public::configure(cfg);
    embeds::configure(cfg);
    accounts::configure(cfg);
    admin::configure(cfg);
    datasets::configure(cfg);
    analyses::configure(cfg);
    charts::configure(cfg);
    comments::configure(cfg);
    collaborations::configure(cfg);
    activity::configure(cfg);
    reports::configure(cfg);
    billing::configure(cfg);
    templates::configure(cfg);
    connections::configure(cfg);
    events::configure(cfg);
}

/// The documented paths and their methods, taken from the OpenAPI document when the
/// server is built: what `405` answers list in `Allow` (RFC 9110), so the two cannot
/// disagree.
pub struct KnownPaths(Vec<(ResourceDef, String)>);

impl KnownPaths {
    /// The paths of `document`.
    pub fn of(document: &utoipa::openapi::OpenApi) -> Self {
        let paths = document
            .paths
            .paths
            .iter()
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
                (ResourceDef::new(path.as_str()), allow.join(", "))
            })
            .collect();
        Self(paths)
    }

    fn allowed(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, allow)| allow.as_str())
    }
}

/// Answer for a request no route took: `405` with `Allow` for a known path asked with
/// another method, else `404`.
pub async fn fallback(req: HttpRequest, known: web::Data<KnownPaths>) -> HttpResponse {
    let Some(allow) = known.allowed(req.path()) else {
        return Problem::not_found().error_response();
    };
    let mut res = Problem::method_not_allowed().error_response();
    if let Ok(allow) = header::HeaderValue::from_str(allow) {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}
