//! Data connections (`/api/v1/connections`): external PostgreSQL or MySQL databases a user
//! imports datasets from. The rules (the network guard, encrypted passwords, the limit,
//! read-only imports) are the domain's `Connections`; see docs/connections.md.
use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use domain::connections::{ConnectionChange, ConnectionKind, NewConnection};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::http::AppState;
use crate::http::auth::CurrentUser;
use crate::http::dto::{DatasetDto, PageDto, double_option, non_null};
use crate::http::extract::{Json, Pagination};
use crate::http::problem::{Problem, responses};

/// Registers this module's operations.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get_one)
        .service(update)
        .service(remove)
        .service(test)
        .service(import);
}

type Answer = Result<HttpResponse, Problem>;

/// Which database a connection speaks to.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Postgresql,
    Mysql,
}

impl From<Kind> for ConnectionKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Postgresql => ConnectionKind::Postgresql,
            Kind::Mysql => ConnectionKind::Mysql,
        }
    }
}

impl From<ConnectionKind> for Kind {
    fn from(k: ConnectionKind) -> Self {
        match k {
            ConnectionKind::Postgresql => Kind::Postgresql,
            ConnectionKind::Mysql => Kind::Mysql,
        }
    }
}

/// TLS towards the source database (no certificate verification modes: connections go
/// to the address the network guard checked, not to a name).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
}

impl SslMode {
    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
        }
    }
}

/// A data connection. The password is never shown: `has_password` says whether one is
/// stored.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConnectionDto {
    pub id: Uuid,
    pub name: String,
    pub kind: Kind,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub username: String,
    pub has_password: bool,
    pub sslmode: String,
    /// `untested`, `ok` or `failed`: the last test's outcome.
    pub status: String,
    pub last_tested_at: Option<DateTime<Utc>>,
    /// Why the last test failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<domain::connections::Connection> for ConnectionDto {
    fn from(c: domain::connections::Connection) -> Self {
        Self {
            id: c.id.0,
            name: c.name,
            kind: c.kind.into(),
            host: c.host,
            port: c.port,
            database: c.database,
            username: c.username,
            has_password: c.has_password,
            sslmode: c.sslmode,
            status: c.status,
            last_tested_at: c.last_tested_at,
            last_error: c.last_error,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// `POST /api/v1/connections` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    pub kind: Kind,
    /// Host name or address; it must resolve to public addresses unless the server's
    /// `IOPS_CONNECTIONS_ALLOW` allows it.
    #[schema(min_length = 1, max_length = 253)]
    pub host: String,
    #[schema(minimum = 1, maximum = 65535)]
    pub port: u16,
    #[schema(min_length = 1, max_length = 255)]
    pub database: String,
    #[schema(min_length = 1, max_length = 255)]
    pub username: String,
    /// Stored encrypted; never shown again.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 1024, format = Password)]
    pub password: Option<SecretString>,
    /// Default `prefer`.
    #[serde(default)]
    pub sslmode: Option<SslMode>,
}

/// `PATCH /api/v1/connections/{id}` body: absent fields stay; `password: null` removes the
/// stored password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnection {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = String, min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = String, min_length = 1, max_length = 253)]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = u16, minimum = 1, maximum = 65535)]
    pub port: Option<u16>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = String, min_length = 1, max_length = 255)]
    pub database: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = String, min_length = 1, max_length = 255)]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 1024, format = Password)]
    pub password: Option<Option<SecretString>>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = SslMode)]
    pub sslmode: Option<SslMode>,
}

/// The outcome of a connection test.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestDto {
    pub ok: bool,
    pub elapsed_ms: u64,
    /// Why it failed, in the source's words (never a setting or the password).
    pub error: Option<String>,
}

/// `POST /api/v1/connections/{id}/import` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// The new dataset's name.
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// One read-only query; its rows become the dataset (NDJSON, the source's column
    /// names and order).
    #[schema(min_length = 1, max_length = 100000)]
    pub sql: String,
}

/// Create a data connection
#[utoipa::path(
    tag = "connections",
    security(("bearer" = [])),
    request_body = CreateConnection,
    responses(
        (status = 201, description = "Created (untested)", body = ConnectionDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 402, description = "The `data_connections` limit of the tier is reached", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad field or unknown field; a host that does not resolve; `/host-not-allowed` for a loopback, private, link-local or metadata address", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/connections")]
pub async fn create(
    state: web::Data<AppState>,
    me: CurrentUser,
    body: Json<CreateConnection>,
) -> Answer {
    let body = body.into_inner();
    let connection = state
        .domain
        .connections
        .create(
            me.actor(),
            NewConnection {
                name: body.name,
                kind: body.kind.into(),
                host: body.host,
                port: body.port,
                database: body.database,
                username: body.username,
                password: body.password,
                sslmode: body.sslmode.map(|m| m.as_str().to_owned()),
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(ConnectionDto::from(connection)))
}

/// List data connections
#[utoipa::path(
    tag = "connections",
    security(("bearer" = [])),
    params(crate::http::extract::PageQuery),
    responses(
        (status = 200, description = "The caller's connections, newest first", body = PageDto<ConnectionDto>),
        responses::Unauthenticated,
        (status = 422, description = "Bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/connections")]
pub async fn list(state: web::Data<AppState>, me: CurrentUser, page: Pagination) -> Answer {
    let page = state.domain.connections.list(me.id(), &page.0).await?;
    Ok(HttpResponse::Ok().json(PageDto::<ConnectionDto>::from_page(page)))
}

/// Get a data connection
#[utoipa::path(
    tag = "connections",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionDto),
        responses::Unauthenticated,
        (status = 404, description = "No such connection of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/connections/{id}")]
pub async fn get_one(state: web::Data<AppState>, me: CurrentUser, id: web::Path<Uuid>) -> Answer {
    let connection = state
        .domain
        .connections
        .get(me.id(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::Ok().json(ConnectionDto::from(connection)))
}

/// Change a data connection
#[utoipa::path(
    tag = "connections",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Connection id")),
    request_body = UpdateConnection,
    responses(
        (status = 200, description = "The changed connection (untested again)", body = ConnectionDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 404, description = "No such connection of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id or field, unknown field, `/host-not-allowed`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/api/v1/connections/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    me: CurrentUser,
    id: web::Path<Uuid>,
    body: Json<UpdateConnection>,
) -> Answer {
    let body = body.into_inner();
    let connection = state
        .domain
        .connections
        .update(
            me.actor(),
            domain::Id(*id),
            ConnectionChange {
                name: body.name,
                host: body.host,
                port: body.port,
                database: body.database,
                username: body.username,
                password: body.password,
                sslmode: body.sslmode.map(|m| m.as_str().to_owned()),
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(ConnectionDto::from(connection)))
}

/// Delete a data connection
#[utoipa::path(
    tag = "connections",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Connection id")),
    responses(
        (status = 204, description = "Deleted; datasets imported through it stay"),
        responses::Unauthenticated,
        (status = 404, description = "No such connection of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/api/v1/connections/{id}")]
pub async fn remove(state: web::Data<AppState>, me: CurrentUser, id: web::Path<Uuid>) -> Answer {
    state
        .domain
        .connections
        .delete(me.actor(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Test a data connection
#[utoipa::path(
    tag = "connections",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Connection id")),
    description = "Connects and runs `SELECT 1` in a read-only transaction (10 s at most). \
        A failure to connect is `200` with `ok: false` and the reason.",
    responses(
        (status = 200, description = "The outcome", body = TestDto),
        responses::Unauthenticated,
        (status = 404, description = "No such connection of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id; `/host-not-allowed` (checked again at every connect)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/connections/{id}/test")]
pub async fn test(state: web::Data<AppState>, me: CurrentUser, id: web::Path<Uuid>) -> Answer {
    let outcome = state
        .domain
        .connections
        .test(me.actor(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::Ok().json(TestDto {
        ok: outcome.ok,
        elapsed_ms: outcome.elapsed_ms,
        error: outcome.error,
    }))
}

/// Import a query's rows as a dataset
#[utoipa::path(
    tag = "connections",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Connection id")),
    request_body = ImportBody,
    description = "Runs one read-only query on the source (a read-only transaction with \
        a statement timeout, `IOPS_IMPORT_TIMEOUT_SECS`) and stores its rows as a new \
        NDJSON dataset with `connection_id` set, streamed, at most `IOPS_MAX_UPLOAD_BYTES`, \
        counted once toward the monthly `datasets` limit.",
    responses(
        (status = 201, description = "The new dataset", body = DatasetDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 402, description = "The month's `datasets` limit is reached", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The result is larger than the upload limit; nothing was stored or counted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id or field; `/host-not-allowed`; `/query-failed` with `reason` `refused` (the statement writes), `timeout` or `invalid`; `/connection-failed` when the source cannot be reached or refuses the login; an empty result", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/connections/{id}/import")]
pub async fn import(
    state: web::Data<AppState>,
    me: CurrentUser,
    id: web::Path<Uuid>,
    body: Json<ImportBody>,
) -> Answer {
    let body = body.into_inner();
    let dataset = state
        .domain
        .connections
        .import(me.actor(), domain::Id(*id), body.name, body.sql)
        .await?;
    Ok(HttpResponse::Created().json(DatasetDto::from(dataset)))
}
