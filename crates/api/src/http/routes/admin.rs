//! Administration of users (callers with `is_admin`; anyone else gets `403`).
use actix_web::{HttpResponse, web};
use actix_web::{get, patch, put};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::http::AppState;
use crate::http::auth::AdminUser;
use crate::http::dto::{self, PageDto, Tier, UsageDto, UserDto};
use crate::http::extract::{Json, PageQuery, parse_id};
use crate::http::problem::{Problem, responses};

/// Registers this module's operations: each handler carries its path and method (actix's
/// route macro) and its documentation (`utoipa::path`), so the route table and the
/// OpenAPI document are one list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_users)
        .service(update_user)
        .service(user_usage)
        .service(user_limits)
        .service(set_user_limits);
}

type Answer = Result<HttpResponse, Problem>;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Only users of this tier.
    pub tier: Option<Tier>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// What an administrator may change; absent fields stay as they are, `null` is `422`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminPatchBody {
    #[serde(default, deserialize_with = "dto::non_null")]
    #[schema(value_type = Tier)]
    pub tier: Option<Tier>,
    #[serde(default, deserialize_with = "dto::non_null")]
    #[schema(value_type = bool)]
    pub is_admin: Option<bool>,
}

#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(UsersQuery),
    responses(
        (status = 200, description = "Users, newest first", body = PageDto<UserDto>),
        responses::Unauthenticated,
        responses::NotAdmin,
        (status = 422, description = "Bad tier, limit or cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/admin/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    query: web::Query<UsersQuery>,
) -> Answer {
    let query = query.into_inner();
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page_request()?;
    let users = state
        .domain
        .accounts
        .list(&admin, query.tier, &page)
        .await?;
    Ok(HttpResponse::Ok().json(PageDto::<UserDto>::from_page(users)))
}

#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = AdminPatchBody,
    description = "Sets a user's tier and/or admin flag. Applies at once, to the user's \
        existing tokens too.",
    responses(
        (status = 200, description = "The updated user", body = UserDto),
        responses::NotJson,
        responses::Unauthenticated,
        responses::NotAdmin,
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, tier, or unknown field", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/api/v1/admin/users/{id}")]
pub async fn update_user(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
    body: Json<AdminPatchBody>,
) -> Answer {
    let id = parse_id(&id)?;
    let body = body.into_inner();
    let user = state
        .domain
        .accounts
        .admin_update(&admin, id, body.tier, body.is_admin)
        .await?;
    Ok(HttpResponse::Ok().json(UserDto::from(user)))
}

#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user's usage this month, as `/api/v1/me/usage`", body = UsageDto),
        responses::Unauthenticated,
        responses::NotAdmin,
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/admin/users/{id}/usage")]
pub async fn user_usage(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
) -> Answer {
    let id = parse_id(&id)?;
    let report = state.domain.usage.report_of(&admin, id).await?;
    Ok(HttpResponse::Ok().json(UsageDto::from(report)))
}

/// An enterprise account's own limits. `null` (or a field left out of a `PUT`) is
/// unlimited: a `PUT` replaces all five.
#[derive(Debug, Default, Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsDto {
    /// Dataset uploads a month.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2147483647)]
    pub datasets: Option<i64>,
    /// AI messages a month.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2147483647)]
    pub ai_messages: Option<i64>,
    /// Published reports a month.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2147483647)]
    pub reports: Option<i64>,
    /// Distinct collaborators at once.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2147483647)]
    pub collaborators: Option<i64>,
    /// Data connections at once.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2147483647)]
    pub data_connections: Option<i64>,
}

impl From<domain::CustomLimits> for LimitsDto {
    fn from(l: domain::CustomLimits) -> Self {
        Self {
            datasets: l.datasets,
            ai_messages: l.ai_messages,
            reports: l.reports,
            collaborators: l.collaborators,
            data_connections: l.data_connections,
        }
    }
}

impl From<LimitsDto> for domain::CustomLimits {
    fn from(l: LimitsDto) -> Self {
        Self {
            datasets: l.datasets,
            ai_messages: l.ai_messages,
            reports: l.reports,
            collaborators: l.collaborators,
            data_connections: l.data_connections,
        }
    }
}

/// An enterprise account's limits
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    description = "An enterprise account's own limits (`null` is unlimited; an account \
        whose limits were never set is unlimited).",
    responses(
        (status = 200, description = "The limits", body = LimitsDto),
        responses::Unauthenticated,
        responses::NotAdmin,
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/admin/users/{id}/limits")]
pub async fn user_limits(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
) -> Answer {
    let id = parse_id(&id)?;
    let limits = state.domain.usage.custom_limits(&admin, id).await?;
    Ok(HttpResponse::Ok().json(LimitsDto::from(limits)))
}

/// Set an enterprise account's limits
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = LimitsDto,
    description = "Replaces an enterprise account's own limits. They apply to the next \
        request on every server; a lower limit keeps what exists and refuses what is new. \
        Only for accounts whose tier is `enterprise` (others follow their tier's table).",
    responses(
        (status = 200, description = "The limits now in force", body = LimitsDto),
        responses::NotJson,
        responses::Unauthenticated,
        responses::NotAdmin,
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, a value out of range, an unknown field, or the account is not enterprise", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/api/v1/admin/users/{id}/limits")]
pub async fn set_user_limits(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
    body: Json<LimitsDto>,
) -> Answer {
    let id = parse_id(&id)?;
    let change = domain::LimitsChange::replace_all(body.into_inner().into());
    let limits = state.domain.usage.change_limits(&admin, id, change).await?;
    Ok(HttpResponse::Ok().json(LimitsDto::from(limits)))
}
