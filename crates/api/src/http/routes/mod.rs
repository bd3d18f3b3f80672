//! One module per resource; each registers its routes and documents them in its `Doc`.
pub mod accounts;
pub mod admin;
pub mod analyses;
pub mod datasets;
pub mod ops;
pub mod public;
pub mod reports;

use actix_web::{HttpResponse, web};

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
/// `default_service`).
pub async fn method_not_allowed() -> Result<HttpResponse, Problem> {
    Err(Problem::method_not_allowed())
}
