//! (being written)
use utoipa_actix_web::service_config::ServiceConfig;

/// Registers this module's operations.
pub fn configure(_cfg: &mut ServiceConfig) {}
