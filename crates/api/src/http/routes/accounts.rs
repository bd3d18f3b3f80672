//! Accounts: registration, login and logout, the caller's profile, password and usage.
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web::{delete, get, patch, post};
use domain::{NewAccount, ProfileChange};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::http::AppState;
use crate::http::auth::CurrentUser;
use crate::http::dto::{self, TokenDto, UsageDto, UserDto};
use crate::http::extract::{Json, client_id};
use crate::http::problem::{Problem, responses};

/// Registers this module's operations: each handler carries its path and method (actix's
/// route macro) and its documentation (`utoipa::path`), so the route table and the
/// OpenAPI document are one list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(register)
        .service(login)
        .service(logout)
        .service(get_me)
        .service(patch_me)
        .service(delete_me)
        .service(change_password)
        .service(usage)
        .service(count_ai_message);
}

type Answer = Result<HttpResponse, Problem>;

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// Trimmed and compared case-insensitively.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// 8 characters to 1024 bytes.
    #[schema(example = "correct horse battery", min_length = 8)]
    pub password: String,
    pub full_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(example = "ada@example.com")]
    pub email: String,
    pub password: String,
}

/// A profile edit: an absent field stays as it is; `full_name: null` clears the name;
/// `email: null` is refused (`422`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMeBody {
    #[serde(default, deserialize_with = "dto::double_option")]
    #[schema(value_type = Option<String>, nullable)]
    pub full_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "dto::non_null")]
    #[schema(value_type = String)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub current_password: String,
    /// 8 characters to 1024 bytes.
    #[schema(min_length = 8)]
    pub new_password: String,
}

#[utoipa::path(
    tag = "accounts",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "The account, `free` and not admin", body = UserDto),
        responses::NotJson,
        (status = 409, description = "The email is already registered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad email, short password, unknown or missing field", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/auth/register")]
pub async fn register(state: web::Data<AppState>, body: Json<RegisterBody>) -> Answer {
    let body = body.into_inner();
    let user = state
        .domain
        .accounts
        .register(NewAccount {
            email: body.email,
            password: body.password,
            full_name: body.full_name,
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, "/api/v1/me"))
        .json(UserDto::from(user)))
}

#[utoipa::path(
    tag = "accounts",
    request_body = LoginBody,
    description = "Opens a session. An unknown email and a wrong password give the same `401`. \
        After 10 failures for one account from one client (the TCP peer address; \
        `X-Forwarded-For` is not trusted) within 15 minutes, attempts are `429` with \
        `Retry-After` until the window passes.",
    responses(
        (status = 200, description = "A bearer token and the user", body = TokenDto),
        responses::NotJson,
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/auth/login")]
pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: Json<LoginBody>) -> Answer {
    let session = state
        .domain
        .accounts
        .login(&body.email, &body.password, &client_id(&req))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TokenDto {
            access_token: session.token.secret,
            token_type: "bearer".to_owned(),
            expires_at: session.token.expires_at,
            user: session.user.into(),
        }))
}

#[utoipa::path(
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The token no longer works"),
        responses::Unauthenticated,
    )
)]
#[post("/api/v1/auth/logout")]
pub async fn logout(state: web::Data<AppState>, me: CurrentUser) -> Answer {
    state.domain.accounts.logout(&me.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserDto),
        responses::Unauthenticated,
    )
)]
#[get("/api/v1/me")]
pub async fn get_me(me: CurrentUser) -> Answer {
    Ok(HttpResponse::Ok().json(UserDto::from(me.caller.into_user())))
}

#[utoipa::path(
    tag = "accounts",
    security(("bearer" = [])),
    request_body = PatchMeBody,
    responses(
        (status = 200, description = "The updated caller", body = UserDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 409, description = "The new email belongs to another account", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad email, `email: null`, unknown field", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/api/v1/me")]
pub async fn patch_me(
    state: web::Data<AppState>,
    me: CurrentUser,
    body: Json<PatchMeBody>,
) -> Answer {
    let body = body.into_inner();
    let user = state
        .domain
        .accounts
        .update_profile(
            me.id(),
            ProfileChange {
                full_name: body.full_name,
                email: body.email,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(UserDto::from(user)))
}

#[utoipa::path(
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The account and everything it owned (stored files included) are gone"),
        responses::Unauthenticated,
    )
)]
#[delete("/api/v1/me")]
pub async fn delete_me(state: web::Data<AppState>, me: CurrentUser) -> Answer {
    state.domain.accounts.delete(me.id()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "accounts",
    security(("bearer" = [])),
    request_body = PasswordBody,
    description = "Changes the password. Every other token of the user stops working; the \
        one making the change stays valid. A wrong `current_password` is `401` (and counts \
        toward a failed-attempt limit of its own, `429` beyond it).",
    responses(
        (status = 204, description = "Changed"),
        responses::NotJson,
        (status = 401, description = "Bad token, or wrong current password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password breaks the rules", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong current passwords", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    me: CurrentUser,
    body: Json<PasswordBody>,
) -> Answer {
    let result = state
        .domain
        .accounts
        .change_password(
            me.id(),
            &body.current_password,
            &body.new_password,
            &me.token,
        )
        .await;
    result?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "This month's counters; `limit: null` is unlimited", body = UsageDto),
        responses::Unauthenticated,
    )
)]
#[get("/api/v1/me/usage")]
pub async fn usage(state: web::Data<AppState>, me: CurrentUser) -> Answer {
    let report = state.domain.usage.report(me.id()).await?;
    Ok(HttpResponse::Ok().json(UsageDto::from(report)))
}

#[utoipa::path(
    tag = "accounts",
    security(("bearer" = [])),
    description = "Counts one AI message (the AI chat service calls this before it answers).",
    responses(
        (status = 200, description = "The usage after counting", body = UsageDto),
        responses::Unauthenticated,
        (status = 402, description = "The month's `ai_messages` limit is reached; nothing was counted", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/me/usage/ai-messages")]
pub async fn count_ai_message(state: web::Data<AppState>, me: CurrentUser) -> Answer {
    let report = state.domain.usage.consume_ai_message(me.id()).await?;
    Ok(HttpResponse::Ok().json(UsageDto::from(report)))
}
