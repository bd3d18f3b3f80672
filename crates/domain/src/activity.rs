//! The activity log: who did what, one row per change, written by [`record`] inside the
//! transaction of the change it describes. The row commits with the change or not at all:
//! a change that rolls back leaves no row, and a row that cannot be written rolls the change
//! back. Nothing here updates or deletes a row (the schema refuses updates outright).
use chrono::{DateTime, NaiveDateTime, Utc};
use entity::activity_log;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::Value;

use crate::access::{ACCEPTED, Actor};
use crate::pagination::{Page, PageRequest, page_from};
use crate::{Context, Error, Id, Result};

/// Longest request id kept (the column's size); a longer one is cut, never refused.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// One change to log. `owner_id` is whose feed it lands in: the owner of the analysis it
/// concerns (so an owner sees what collaborators did), or the actor's own account.
pub(crate) struct Entry {
    pub owner_id: Id,
    pub analysis_id: Option<Id>,
    /// `<object_type>.<what happened>`, e.g. `analysis.updated`.
    pub verb: &'static str,
    pub object_type: &'static str,
    pub object_id: Id,
    /// A small object; never a secret, a password, a token or an email.
    pub metadata: Value,
}

/// Appends `entry` through `conn`: pass the transaction of the change it records.
pub(crate) async fn record<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    now: NaiveDateTime,
    entry: Entry,
) -> Result<()> {
    let request_id = actor
        .request_id
        .as_deref()
        .map(|id| id.chars().take(MAX_REQUEST_ID_CHARS).collect::<String>());
    activity_log::Entity::insert(activity_log::ActiveModel {
        // Time-ordered: rows of one instant keep the order they were written in.
        id: Set(Id::new_v7()),
        owner_id: Set(entry.owner_id),
        analysis_id: Set(entry.analysis_id),
        actor_id: Set(Some(actor.user_id)),
        actor_type: Set("user".to_owned()),
        verb: Set(entry.verb.to_owned()),
        object_type: Set(entry.object_type.to_owned()),
        object_id: Set(entry.object_id),
        metadata: Set(entry.metadata),
        request_id: Set(request_id),
        created_at: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// One row of a feed.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityItem {
    /// Its id.
    pub id: Id,
    /// Who acted (`None` once that account is deleted).
    pub actor_id: Option<Id>,
    /// `user` (a request), `operator` (the command line) or `system`.
    pub actor_type: String,
    /// `<object_type>.created|updated|deleted`, or a specific verb (`analysis.ran`,
    /// `collaboration.accepted`, `comment.resolved`, `embed.published`...).
    pub verb: String,
    /// `dataset`, `analysis`, `chart`, `report`, `embed`, `collaboration`, `comment`.
    pub object_type: String,
    /// The object's id (for `embed`, the chart's).
    pub object_id: Id,
    /// A small object about the change (a name, the changed fields, a role).
    pub metadata: Value,
    /// The request that made the change, when it came through the API.
    pub request_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<activity_log::Model> for ActivityItem {
    fn from(row: activity_log::Model) -> Self {
        Self {
            id: row.id,
            actor_id: row.actor_id,
            actor_type: row.actor_type,
            verb: row.verb,
            object_type: row.object_type,
            object_id: row.object_id,
            metadata: row.metadata,
            request_id: row.request_id,
            created_at: row.created_at.and_utc(),
        }
    }
}

/// Narrows a feed to one kind of object, or one object.
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter {
    /// Only rows about this kind of object.
    pub object_type: Option<String>,
    /// Only rows about this object.
    pub object_id: Option<Id>,
}

/// Reading the activity log.
#[derive(Clone)]
pub struct Activity {
    ctx: Context,
}

impl Activity {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// `user_id`'s feed, newest first: everything in their own feed (their changes, and
    /// collaborators' changes to their analyses) and the history of the analyses shared with
    /// them now.
    pub async fn feed(
        &self,
        user_id: Id,
        filter: &ActivityFilter,
        page: &PageRequest,
    ) -> Result<Page<ActivityItem>> {
        let object_type = filter.object_type.as_deref().filter(|t| !t.is_empty());
        if let Some(object_type) = object_type {
            let known = object_type.len() <= 32
                && object_type
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_');
            if !known {
                return Err(Error::validation(
                    "object_type is a lower-case name such as analysis or chart",
                ));
            }
        }
        // Two queries, merged here, instead of one `owner_id = $1 OR analysis_id IN (...)`:
        // with the OR the database cannot walk an index in order and sorts every row of
        // the feed to return a page (the soak found feeds slowing as the log grew); each
        // half below reads at most a page along its own index.
        let narrow = |query: sea_orm::Select<activity_log::Entity>| {
            let mut query = query;
            if let Some(object_type) = object_type {
                query = query.filter(activity_log::Column::ObjectType.eq(object_type));
            }
            if let Some(object_id) = filter.object_id {
                query = query.filter(activity_log::Column::ObjectId.eq(object_id));
            }
            if let Some(after) = &page.after {
                query = query.filter(
                    after.older_than(activity_log::Column::CreatedAt, activity_log::Column::Id),
                );
            }
            query
                .order_by_desc(activity_log::Column::CreatedAt)
                .order_by_desc(activity_log::Column::Id)
                .limit(page.limit + 1)
        };
        let mut rows =
            narrow(activity_log::Entity::find().filter(activity_log::Column::OwnerId.eq(user_id)))
                .all(&self.ctx.db)
                .await?;
        // The analyses shared with the user, by themselves first: most users have none, and
        // then the second half is not asked at all. Given as values, they let the database
        // walk the analyses' own index; asked as a subquery, PostgreSQL planned a scan of
        // the whole log for rows of other owners, which grew with the log (the soak's
        // slowing feed, docs/performance.md).
        let shared: Vec<Id> = entity::collaborations::Entity::find()
            .filter(entity::collaborations::Column::InviteeId.eq(user_id))
            .filter(entity::collaborations::Column::Status.eq(ACCEPTED))
            .all(&self.ctx.db)
            .await?
            .into_iter()
            .map(|c| c.analysis_id)
            .collect();
        if !shared.is_empty() {
            rows.extend(
                narrow(
                    activity_log::Entity::find()
                        .filter(activity_log::Column::AnalysisId.is_in(shared))
                        .filter(activity_log::Column::OwnerId.ne(user_id)),
                )
                .all(&self.ctx.db)
                .await?,
            );
        }
        rows.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
        rows.truncate(page.limit as usize + 1);
        Ok(page_from(rows, page.limit, |r| (r.created_at, r.id)).map(ActivityItem::from))
    }
}
