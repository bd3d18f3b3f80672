//! The OpenAPI 3.1 document: each routes module documents its own paths in its `Doc`;
//! this module merges them and adds what is global (info, the bearer scheme, problems).
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes;

/// Name of the security scheme the routes' `security(("bearer" = []))` refer to.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "iOps API",
        description = "Datasets, analyses and shareable reports. Errors are RFC 9457 \
            `application/problem+json` documents (`Problem`). Authenticated endpoints take \
            `Authorization: Bearer <token>` from `POST /api/v1/auth/login`.",
        license(name = "MIT"),
    ),
    components(schemas(super::problem::Problem)),
    modifiers(&BearerScheme),
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token from POST /api/v1/auth/login (opaque, not a JWT)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for part in [
        routes::ops::Doc::openapi(),
        routes::accounts::Doc::openapi(),
        routes::admin::Doc::openapi(),
        routes::datasets::Doc::openapi(),
        routes::analyses::Doc::openapi(),
        routes::reports::Doc::openapi(),
        routes::public::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}
