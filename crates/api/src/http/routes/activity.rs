//! `GET /api/v1/activity`: the caller's feed of the activity log.
use actix_web::{get, web};
use chrono::{DateTime, Utc};
use domain::ActivityFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::http::AppState;
use crate::http::auth::CurrentUser;
use crate::http::dto::PageDto;
use crate::http::extract::{PageQuery, Pagination};
use crate::http::problem::{Problem, responses};

/// Registers this module's operation.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(feed);
}

/// Who acted.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActorDto {
    /// `null` once the account is deleted.
    pub id: Option<Uuid>,
    /// `user` (through the API), `operator` (the command line) or `system`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// One change: who, what, when, and the request that made it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActivityItemDto {
    pub id: Uuid,
    pub actor: ActorDto,
    /// `<object_type>.created|updated|deleted`, `analysis.ran`,
    /// `collaboration.accepted|declined|revoked`, `comment.resolved`,
    /// `embed.published|rotated|stopped`.
    #[schema(example = "analysis.updated")]
    pub verb: String,
    /// `dataset`, `analysis`, `chart`, `report`, `embed`, `collaboration` or `comment`.
    pub object_type: String,
    /// The object's id (for `embed`: the chart's).
    pub object_id: Uuid,
    /// A small object about the change (a name, the fields changed, a role); never a
    /// secret.
    #[schema(value_type = crate::http::dto::JsonObject)]
    pub metadata: serde_json::Value,
    /// The `x-request-id` of the request that made the change.
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<domain::ActivityItem> for ActivityItemDto {
    fn from(a: domain::ActivityItem) -> Self {
        Self {
            id: a.id.0,
            actor: ActorDto {
                id: a.actor_id.map(|id| id.0),
                kind: a.actor_type,
            },
            verb: a.verb,
            object_type: a.object_type,
            object_id: a.object_id.0,
            metadata: a.metadata,
            request_id: a.request_id,
            created_at: a.created_at,
        }
    }
}

/// `?object_type=&object_id=` of the feed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedFilter {
    /// Only changes of this kind of object (`analysis`, `chart`, ...); empty means any.
    pub object_type: Option<String>,
    /// Only changes of this object.
    pub object_id: Option<Uuid>,
}

/// Activity feed
///
/// Newest first: your own changes, what collaborators did to your analyses, and the
/// history of the analyses shared with you. Append-only: nothing changes or deletes a row.
#[utoipa::path(
    operation_id = "activity_feed",
    tag = "collaboration",
    params(FeedFilter, PageQuery),
    responses(
        (status = 200, description = "A page of the feed", body = PageDto<ActivityItemDto>),
        responses::Unauthenticated,
        (status = 422, description = "Bad `object_type`, `object_id`, `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/activity")]
async fn feed(
    user: CurrentUser,
    state: web::Data<AppState>,
    filter: web::Query<FeedFilter>,
    page: Pagination,
) -> Result<web::Json<PageDto<ActivityItemDto>>, Problem> {
    let filter = filter.into_inner();
    let filter = ActivityFilter {
        object_type: filter.object_type,
        object_id: filter.object_id.map(domain::Id),
    };
    let page = state
        .domain
        .activity
        .feed(user.id(), &filter, &page.0)
        .await?;
    Ok(web::Json(PageDto::from_page(page)))
}
