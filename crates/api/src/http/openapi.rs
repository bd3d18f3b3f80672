//! The OpenAPI 3.1 document: the paths and schemas are collected by utoipa-actix-web from
//! the very calls that register the routes (`routes::configure`); this module adds what is
//! global (info, tags, security schemes, links).
use utoipa::openapi::HttpMethod;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use super::routes;

/// Name of the security scheme the routes' `security(("bearer" = []))` refer to.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "iOps API",
        description = "Datasets, analyses, charts, shareable reports and collaboration. Errors are RFC 9457 \
            `application/problem+json` documents (`Problem`). Authenticated endpoints take \
            `Authorization: Bearer <token>` from `POST /api/v1/auth/login`.",
        license(name = "MIT"),
    ),
    components(schemas(super::problem::Problem, super::dto::JsonObject)),
    tags(
        (name = "operations", description = "Health, metrics and this document (GET /api/openapi.json; GET /docs shows it in a browser)"),
        (name = "accounts", description = "Registration, sessions, the caller's profile and usage"),
        (name = "admin", description = "User administration (administrators only)"),
        (name = "datasets", description = "Uploaded data files (CSV, TSV, JSON, NDJSON)"),
        (name = "analyses", description = "Analyses of datasets, with their configuration and results"),
        (name = "reports", description = "Published reports of analyses (owner side)"),
        (name = "public", description = "Public report pages at /r/{short_code}, JSON or HTML; embedded charts at /e/{code}"),
        (name = "charts", description = "Charts of analyses drawn as SVG on the server; their embeds, the owner's embed keys and embed analytics"),
        (name = "billing", description = "Tiers that follow Stripe subscriptions: the webhook Stripe calls, subscription checkouts, the caller's billing state (docs/billing.md)"),
        (name = "connections", description = "Data connections: external PostgreSQL or MySQL databases whose query results are imported as datasets. Passwords are stored encrypted and never shown; hosts must resolve to public addresses unless the server allows them (docs/connections.md)"),
        (name = "collaboration", description = "Sharing an analysis by email as viewer or editor (a viewer reads and comments; an editor also edits, runs and manages charts; only the owner deletes, shares and publishes), comments on charts, and the activity log. A collaborator beyond their role gets 403; anyone else 404"),
        (name = "templates", description = "Reusable analyses: authors publish templates (free or paid) to a gallery anyone may browse; buyers purchase, use them on their own datasets, and rate them"),
        (name = "events", description = "Product events: clients post theirs (with or without a token), the server records its own; buffered and written in batches (docs/events.md). Administrators read counts per day"),
    ),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

/// Name of the scheme of the public report routes' `security(("report_token" = []))`.
pub const REPORT_TOKEN: &str = "report_token";

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            BEARER,
            bearer("An access token from POST /api/v1/auth/login (opaque, not a JWT)"),
        );
        components.add_security_scheme(
            REPORT_TOKEN,
            bearer(
                "An access token from POST /r/{short_code}/unlock, valid for that one report \
                 (browsers get it as the HttpOnly cookie iops_report_{short_code})",
            ),
        );
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, collected) = actix_web::App::new()
        .into_utoipa_app()
        .configure(routes::configure)
        .split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.merge(collected);
    add_links(&mut doc);
    doc
}

/// What each create operation's `201` answer leads to: `(create, target method, target
/// path, target parameter, runtime expression)`. A generated client follows these from a
/// new resource to the operations that take its id.
const LINKS: &[(&str, HttpMethod, &str, &str, &str)] = &[
    (
        "upload_dataset",
        HttpMethod::Get,
        "/api/v1/datasets/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "upload_dataset",
        HttpMethod::Patch,
        "/api/v1/datasets/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "upload_dataset",
        HttpMethod::Delete,
        "/api/v1/datasets/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "create_analysis",
        HttpMethod::Get,
        "/api/v1/analyses/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "create_analysis",
        HttpMethod::Patch,
        "/api/v1/analyses/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "create_analysis",
        HttpMethod::Delete,
        "/api/v1/analyses/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "create_analysis",
        HttpMethod::Post,
        "/api/v1/analyses/{id}/reports",
        "id",
        "$response.body#/id",
    ),
    (
        "create_report",
        HttpMethod::Get,
        "/api/v1/reports/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "create_report",
        HttpMethod::Patch,
        "/api/v1/reports/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "create_report",
        HttpMethod::Delete,
        "/api/v1/reports/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "create_report",
        HttpMethod::Get,
        "/r/{short_code}",
        "short_code",
        "$response.body#/short_code",
    ),
    (
        "create_report",
        HttpMethod::Post,
        "/r/{short_code}/unlock",
        "short_code",
        "$response.body#/short_code",
    ),
    (
        "create_chart",
        HttpMethod::Get,
        "/api/v1/charts/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "create_chart",
        HttpMethod::Patch,
        "/api/v1/charts/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "create_chart",
        HttpMethod::Delete,
        "/api/v1/charts/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "create_chart",
        HttpMethod::Get,
        "/api/v1/charts/{id}/image.svg",
        "id",
        "$response.body#/id",
    ),
    (
        "create_chart",
        HttpMethod::Post,
        "/api/v1/charts/{id}/embed",
        "id",
        "$response.body#/id",
    ),
    (
        "create_chart",
        HttpMethod::Get,
        "/api/v1/charts/{id}/analytics",
        "id",
        "$response.body#/id",
    ),
    (
        "create_embed_key",
        HttpMethod::Delete,
        "/api/v1/me/embed-keys/{kid}",
        "kid",
        "$response.body#/kid",
    ),
];

/// Adds [`LINKS`] to the `201` answers of the create operations. A row whose operation is
/// missing from the document is a bug, caught by the unit test below.
fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::link::LinkBuilder;
    let mut links = Vec::new();
    for (create, method, path, parameter, expression) in LINKS {
        let Some(target) = operation(doc, path, method).and_then(|op| op.operation_id.clone())
        else {
            continue;
        };
        let link = LinkBuilder::new()
            .operation_id(target.clone())
            .parameter(*parameter, serde_json::Value::from(*expression))
            .build();
        links.push((*create, target, link));
    }
    for path_item in doc.paths.paths.values_mut() {
        for op in operations_mut(path_item) {
            let Some(id) = op.operation_id.clone() else {
                continue;
            };
            let Some(RefOr::T(created)) = op.responses.responses.get_mut("201") else {
                continue;
            };
            for (create, target, link) in &links {
                if *create == id {
                    created.links.insert(target.clone(), RefOr::T(link.clone()));
                }
            }
        }
    }
}

fn operation<'a>(
    doc: &'a utoipa::openapi::OpenApi,
    path: &str,
    method: &HttpMethod,
) -> Option<&'a utoipa::openapi::path::Operation> {
    let item = doc.paths.paths.get(path)?;
    match method {
        HttpMethod::Get => item.get.as_ref(),
        HttpMethod::Post => item.post.as_ref(),
        HttpMethod::Patch => item.patch.as_ref(),
        HttpMethod::Delete => item.delete.as_ref(),
        _ => None,
    }
}

fn operations_mut(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_names_a_documented_operation() {
        let doc = document();
        for (create, method, path, _, _) in LINKS {
            assert!(
                operation(&doc, path, method).is_some_and(|op| op.operation_id.is_some()),
                "{path} (linked from {create}) is not documented"
            );
            let created = doc
                .paths
                .paths
                .values()
                .flat_map(|item| [&item.post])
                .flatten()
                .find(|op| op.operation_id.as_deref() == Some(*create))
                .unwrap_or_else(|| panic!("{create} is not documented"));
            let utoipa::openapi::RefOr::T(answer) = &created.responses.responses["201"] else {
                panic!("{create} has no inline 201 answer");
            };
            assert!(!answer.links.is_empty(), "{create} has no links");
        }
    }

    #[test]
    fn json_objects_accept_any_member() {
        let json = serde_json::to_value(document()).unwrap();
        let object = &json["components"]["schemas"]["JsonObject"];
        assert_eq!(object["type"], "object");
        assert_eq!(object["additionalProperties"], true);
    }
}
