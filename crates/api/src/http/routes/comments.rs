//! Comments on charts (`/api/v1/charts/{id}/comments`, `/api/v1/comments/{id}`). Who may
//! do what is the domain's `Comments`: anyone who can see the chart comments; the author
//! edits; the author or the analysis owner deletes; the owner, an editor or the author
//! resolves.
use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::http::AppState;
use crate::http::auth::CurrentUser;
use crate::http::dto::PageDto;
use crate::http::extract::{Json, PageQuery, Pagination};
use crate::http::problem::{Problem, responses};

/// Registers this module's operations (route and documentation in one place each).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(edit)
        .service(delete)
        .service(resolve);
}

/// A comment's author (`id` and `full_name` are `null` once the account is deleted).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuthorDto {
    pub id: Option<Uuid>,
    pub full_name: Option<String>,
}

/// A comment on a chart. A deleted comment keeps its place with `body: ""`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CommentDto {
    pub id: Uuid,
    pub chart_id: Uuid,
    /// The comment this one replies to (one level of replies).
    pub parent_id: Option<Uuid>,
    pub author: AuthorDto,
    /// The text as written: escape it wherever you show it.
    pub body: String,
    pub resolved: bool,
    pub resolved_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    /// When the body last changed.
    pub edited_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<domain::Comment> for CommentDto {
    fn from(c: domain::Comment) -> Self {
        Self {
            id: c.id.0,
            chart_id: c.chart_id.0,
            parent_id: c.parent_id.map(|p| p.0),
            author: AuthorDto {
                id: c.author_id.map(|a| a.0),
                full_name: c.author_name,
            },
            body: c.body,
            resolved: c.resolved,
            resolved_at: c.resolved_at,
            deleted: c.deleted,
            edited_at: c.edited_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// `POST /api/v1/charts/{id}/comments` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateComment {
    /// 1 to 10,000 characters, not only whitespace.
    #[schema(min_length = 1, max_length = 10000)]
    pub body: String,
    /// A top-level comment of the same chart to reply to.
    #[serde(default)]
    pub parent_id: Option<Uuid>,
}

/// `PATCH /api/v1/comments/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditComment {
    /// 1 to 10,000 characters, not only whitespace.
    #[schema(min_length = 1, max_length = 10000)]
    pub body: String,
}

/// Comment on a chart
///
/// Anyone who can see the chart's analysis: its owner and its collaborators.
#[utoipa::path(
    operation_id = "create_comment",
    tag = "collaboration",
    params(("id" = Uuid, Path, description = "Chart id")),
    request_body = CreateComment,
    responses(
        (status = 201, description = "Created", body = CommentDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 404, description = "No such chart the caller can see", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or too long body; a parent that is a reply or on another chart; an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/charts/{id}/comments")]
async fn create(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<CreateComment>,
) -> Result<HttpResponse, Problem> {
    let body = body.into_inner();
    let comment = state
        .domain
        .comments
        .create(
            user.actor(),
            domain::Id(*id),
            &body.body,
            body.parent_id.map(domain::Id),
        )
        .await?;
    Ok(HttpResponse::Created().json(CommentDto::from(comment)))
}

/// List a chart's comments
///
/// Oldest first, replies included (each has its `parent_id`).
#[utoipa::path(
    operation_id = "list_comments",
    tag = "collaboration",
    params(("id" = Uuid, Path, description = "Chart id"), PageQuery),
    responses(
        (status = 200, description = "A page of comments", body = PageDto<CommentDto>),
        responses::Unauthenticated,
        (status = 404, description = "No such chart the caller can see", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/charts/{id}/comments")]
async fn list(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    page: Pagination,
) -> Result<web::Json<PageDto<CommentDto>>, Problem> {
    let page = state
        .domain
        .comments
        .list(user.id(), domain::Id(*id), &page.0)
        .await?;
    Ok(web::Json(PageDto::from_page(page)))
}

/// Edit a comment
///
/// Its author only.
#[utoipa::path(
    operation_id = "edit_comment",
    tag = "collaboration",
    params(("id" = Uuid, Path, description = "Comment id")),
    request_body = EditComment,
    responses(
        (status = 200, description = "The edited comment", body = CommentDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 403, description = "Not the author", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such (undeleted) comment the caller can see", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or too long body, an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/api/v1/comments/{id}")]
async fn edit(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<EditComment>,
) -> Result<web::Json<CommentDto>, Problem> {
    let comment = state
        .domain
        .comments
        .edit(user.actor(), domain::Id(*id), &body.body)
        .await?;
    Ok(web::Json(comment.into()))
}

/// Delete a comment
///
/// Its author or the analysis owner. The comment keeps its place, `deleted: true`, with
/// its body cleared.
#[utoipa::path(
    operation_id = "delete_comment",
    tag = "collaboration",
    params(("id" = Uuid, Path, description = "Comment id")),
    responses(
        (status = 204, description = "Deleted"),
        responses::Unauthenticated,
        (status = 403, description = "Neither the author nor the analysis owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such (undeleted) comment the caller can see", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[delete("/api/v1/comments/{id}")]
async fn delete(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    state
        .domain
        .comments
        .delete(user.actor(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Resolve a comment
///
/// The analysis owner, an editor, or the comment's author.
#[utoipa::path(
    operation_id = "resolve_comment",
    tag = "collaboration",
    params(("id" = Uuid, Path, description = "Comment id")),
    responses(
        (status = 200, description = "The resolved comment", body = CommentDto),
        responses::Unauthenticated,
        (status = 403, description = "A viewer who is not the author", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such (undeleted) comment the caller can see", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/comments/{id}/resolve")]
async fn resolve(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<CommentDto>, Problem> {
    let comment = state
        .domain
        .comments
        .resolve(user.actor(), domain::Id(*id))
        .await?;
    Ok(web::Json(comment.into()))
}
