//! Sharing an analysis: invitations (`/api/v1/analyses/{id}/collaborators`,
//! `/api/v1/collaborations/{id}`), answering them (`/api/v1/invitations/{token}/...`) and
//! what is shared with the caller (`/api/v1/shared`). The rules (roles, the collaborator
//! limit, tokens) are the domain's `Collaborations`.
use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use domain::{CollaborationStatus, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::http::AppState;
use crate::http::auth::CurrentUser;
use crate::http::dto::{AnalysisDto, PageDto};
use crate::http::extract::{Json, PageQuery, Pagination};
use crate::http::problem::{Problem, responses};

/// Registers this module's operations (route and documentation in one place each).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(invite)
        .service(list)
        .service(change_role)
        .service(revoke)
        .service(accept)
        .service(decline)
        .service(shared)
        .service(invitation_page);
}

/// What a collaborator may do: a `viewer` reads and comments; an `editor` also edits the
/// analysis, runs it and manages its charts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CollaboratorRole {
    Viewer,
    Editor,
}

impl From<CollaboratorRole> for Role {
    fn from(role: CollaboratorRole) -> Self {
        match role {
            CollaboratorRole::Viewer => Role::Viewer,
            CollaboratorRole::Editor => Role::Editor,
        }
    }
}

impl From<Role> for CollaboratorRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Editor | Role::Owner => CollaboratorRole::Editor,
            Role::Viewer => CollaboratorRole::Viewer,
        }
    }
}

/// Where an invitation stands (`expired`: not answered within seven days).
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CollaborationStatusDto {
    Pending,
    Accepted,
    Declined,
    Revoked,
    Expired,
}

impl From<CollaborationStatus> for CollaborationStatusDto {
    fn from(status: CollaborationStatus) -> Self {
        match status {
            CollaborationStatus::Pending => Self::Pending,
            CollaborationStatus::Accepted => Self::Accepted,
            CollaborationStatus::Declined => Self::Declined,
            CollaborationStatus::Revoked => Self::Revoked,
            CollaborationStatus::Expired => Self::Expired,
        }
    }
}

/// An invitation of an email to an analysis.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CollaborationDto {
    pub id: Uuid,
    pub analysis_id: Uuid,
    pub email: String,
    pub role: CollaboratorRole,
    pub status: CollaborationStatusDto,
    /// Until when it can be accepted.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted or declined.
    pub responded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<domain::Collaboration> for CollaborationDto {
    fn from(c: domain::Collaboration) -> Self {
        Self {
            id: c.id.0,
            analysis_id: c.analysis_id.0,
            email: c.email,
            role: c.role.into(),
            status: c.status.into(),
            expires_at: c.expires_at,
            responded_at: c.responded_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A new invitation: the invitation and, this once, its link.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct InvitationDto {
    #[serde(flatten)]
    pub collaboration: CollaborationDto,
    /// `/invitations/{token}`: the token appears here only, never again. Send it to the
    /// invitee (it is also mailed when the server has SMTP configured).
    #[schema(example = "/invitations/3q2-7wEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    pub invite_url: String,
}

/// `POST /api/v1/analyses/{id}/collaborators` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Who to invite; they accept while logged in with this email.
    #[schema(example = "colleague@example.com")]
    pub email: String,
    pub role: CollaboratorRole,
}

/// `PATCH /api/v1/collaborations/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleBody {
    pub role: CollaboratorRole,
}

/// The owner of a shared analysis.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OwnerDto {
    pub id: Uuid,
    pub full_name: Option<String>,
}

/// An analysis shared with the caller.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SharedDto {
    pub analysis: AnalysisDto,
    /// The caller's role on it.
    pub role: CollaboratorRole,
    pub owner: OwnerDto,
}

impl From<domain::SharedAnalysis> for SharedDto {
    fn from(s: domain::SharedAnalysis) -> Self {
        Self {
            analysis: s.analysis.into(),
            role: s.role.into(),
            owner: OwnerDto {
                id: s.owner_id.0,
                full_name: s.owner_name,
            },
        }
    }
}

/// Invite someone to an analysis
///
/// The owner only. The token is in `invite_url`, shown once; it works for seven days, for
/// the account with this email. Counts toward the collaborator limit (distinct people
/// invited to any of your analyses, pending or accepted).
#[utoipa::path(
    operation_id = "invite_collaborator",
    tag = "collaboration",
    params(("id" = Uuid, Path, description = "Analysis id")),
    request_body = InviteBody,
    responses(
        (status = 201, description = "Invited", body = InvitationDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 402, description = "The collaborator limit of your tier is reached (`limit: \"collaborators\"`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A collaborator of the analysis (only the owner shares)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such analysis of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This email already has a pending or accepted invitation to the analysis", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad email or role (or your own email), an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/analyses/{id}/collaborators")]
async fn invite(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<InviteBody>,
) -> Result<HttpResponse, Problem> {
    let body = body.into_inner();
    let invitation = state
        .domain
        .collaborations
        .invite(user.actor(), domain::Id(*id), &body.email, body.role.into())
        .await?;
    let invite_url = invitation.path();
    Ok(HttpResponse::Created().json(InvitationDto {
        collaboration: invitation.collaboration.into(),
        invite_url,
    }))
}

/// List an analysis's invitations
///
/// The owner only; newest first, whatever their status.
#[utoipa::path(
    operation_id = "list_collaborators",
    tag = "collaboration",
    params(("id" = Uuid, Path, description = "Analysis id"), PageQuery),
    responses(
        (status = 200, description = "A page of invitations", body = PageDto<CollaborationDto>),
        responses::Unauthenticated,
        (status = 403, description = "A collaborator of the analysis", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such analysis of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/analyses/{id}/collaborators")]
async fn list(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    page: Pagination,
) -> Result<web::Json<PageDto<CollaborationDto>>, Problem> {
    let page = state
        .domain
        .collaborations
        .list(user.id(), domain::Id(*id), &page.0)
        .await?;
    Ok(web::Json(PageDto::from_page(page)))
}

/// Change a collaborator's role
///
/// The owner only, on a pending or accepted invitation; applies to the collaborator's
/// next request.
#[utoipa::path(
    operation_id = "change_collaborator_role",
    tag = "collaboration",
    params(("id" = Uuid, Path, description = "Collaboration id")),
    request_body = ChangeRoleBody,
    responses(
        (status = 200, description = "The invitation with its new role", body = CollaborationDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 403, description = "A collaborator of the analysis", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live invitation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id or role, an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/api/v1/collaborations/{id}")]
async fn change_role(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<ChangeRoleBody>,
) -> Result<web::Json<CollaborationDto>, Problem> {
    let collaboration = state
        .domain
        .collaborations
        .change_role(user.actor(), domain::Id(*id), body.role.into())
        .await?;
    Ok(web::Json(collaboration.into()))
}

/// Revoke an invitation
///
/// The owner only. The token stops working and the collaborator loses access on their
/// next request.
#[utoipa::path(
    operation_id = "revoke_collaborator",
    tag = "collaboration",
    params(("id" = Uuid, Path, description = "Collaboration id")),
    responses(
        (status = 204, description = "Revoked"),
        responses::Unauthenticated,
        (status = 403, description = "A collaborator of the analysis", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live invitation of the caller's", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[delete("/api/v1/collaborations/{id}")]
async fn revoke(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    state
        .domain
        .collaborations
        .revoke(user.actor(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Accept an invitation
///
/// Logged in with the invited email.
#[utoipa::path(
    operation_id = "accept_invitation",
    tag = "collaboration",
    params(("token" = String, Path, description = "The token of the invitation link")),
    responses(
        (status = 200, description = "Accepted: the analysis is in `/api/v1/shared`", body = CollaborationDto),
        responses::Unauthenticated,
        (status = 403, description = "The invitation is for another email", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, used, declined or revoked", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "You own the analysis", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/invitations/{token}/accept")]
async fn accept(
    user: CurrentUser,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<web::Json<CollaborationDto>, Problem> {
    let collaboration = state
        .domain
        .collaborations
        .accept(user.actor(), &token)
        .await?;
    Ok(web::Json(collaboration.into()))
}

/// Decline an invitation
///
/// Logged in with the invited email; the token is used up.
#[utoipa::path(
    operation_id = "decline_invitation",
    tag = "collaboration",
    params(("token" = String, Path, description = "The token of the invitation link")),
    responses(
        (status = 204, description = "Declined"),
        responses::Unauthenticated,
        (status = 403, description = "The invitation is for another email", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, used, declined or revoked", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "You own the analysis", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/invitations/{token}/decline")]
async fn decline(
    user: CurrentUser,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    state
        .domain
        .collaborations
        .decline(user.actor(), &token)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Analyses shared with me
///
/// Those whose invitation the caller accepted and that are not revoked, newest first,
/// with the caller's role and the owner.
#[utoipa::path(
    operation_id = "list_shared",
    tag = "collaboration",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of shared analyses", body = PageDto<SharedDto>),
        responses::Unauthenticated,
        (status = 422, description = "Bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/shared")]
async fn shared(
    user: CurrentUser,
    state: web::Data<AppState>,
    page: Pagination,
) -> Result<web::Json<PageDto<SharedDto>>, Problem> {
    let page = state
        .domain
        .collaborations
        .shared_with(user.id(), &page.0)
        .await?;
    Ok(web::Json(PageDto::from_page(page)))
}

/// The page of an invitation link
///
/// What `invite_url` opens in a browser: the analysis, who invites, the role, the expiry,
/// and how to answer. No login needed (the token is the credential to see it; answering
/// needs the invited account).
#[utoipa::path(
    operation_id = "invitation_page",
    tag = "collaboration",
    params(("token" = String, Path, description = "The token of the invitation link")),
    responses(
        (status = 200, description = "The invitation", content_type = "text/html"),
        (status = 404, description = "Unknown, used, declined or revoked", content_type = "text/html"),
        (status = 410, description = "Expired", content_type = "text/html"),
    )
)]
#[get("/invitations/{token}")]
async fn invitation_page(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    match state.domain.collaborations.preview(&token).await {
        Ok(preview) => crate::http::html::invitation(&preview, &token),
        // The one error-to-page table (an invitation has no password form to show).
        Err(err) => crate::http::problem::html_page(err, ""),
    }
}
