//! Comments on charts: anyone who can see the chart's analysis reads and comments (one
//! level of replies); the author edits; the author or the analysis owner deletes (the row
//! stays with its body cleared, so replies keep their place); the owner, an editor or the
//! author resolves. Every change writes its activity row in its own transaction.
use chrono::{DateTime, NaiveDateTime, Utc};
use entity::{comments, users};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::json;

use crate::access::{self, Actor, Role};
use crate::activity::{self, Entry};
use crate::db::begin_write;
use crate::pagination::{Page, PageRequest, page_from};
use crate::{Context, Error, Id, Result};

/// Longest comment body, in characters.
pub const MAX_COMMENT_CHARS: usize = 10_000;

/// A comment as readers see it. A deleted one has an empty `body`.
#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    /// Its id.
    pub id: Id,
    /// The chart it is on.
    pub chart_id: Id,
    /// The comment it replies to.
    pub parent_id: Option<Id>,
    /// Its author (`None` once the account is deleted).
    pub author_id: Option<Id>,
    /// The author's display name.
    pub author_name: Option<String>,
    /// The text, as written (escape it wherever it is shown).
    pub body: String,
    /// Whether it is resolved.
    pub resolved: bool,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Whether it was deleted.
    pub deleted: bool,
    /// When its body last changed.
    pub edited_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn comment_of(row: comments::Model, author_name: Option<String>) -> Comment {
    Comment {
        id: row.id,
        chart_id: row.chart_id,
        parent_id: row.parent_id,
        author_id: row.author_id,
        author_name,
        body: row.body,
        resolved: row.resolved,
        resolved_at: row.resolved_at.map(|t| t.and_utc()),
        deleted: row.deleted,
        edited_at: row.edited_at.map(|t| t.and_utc()),
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    }
}

/// Comments on charts.
#[derive(Clone)]
pub struct Comments {
    ctx: Context,
}

/// The chart's analysis, as `user_id` reaches it with at least `role`: (analysis id,
/// owner id, the caller's role).
async fn chart_access<C: ConnectionTrait>(
    conn: &C,
    user_id: Id,
    chart_id: Id,
    role: Role,
) -> Result<(Id, Id, Role)> {
    let analysis_id = access::analysis_of_chart(conn, chart_id)
        .await?
        .ok_or(Error::NotFound)?;
    let (analysis, actual) = access::analysis_for(conn, user_id, analysis_id, role).await?;
    Ok((analysis.id, analysis.user_id, actual))
}

fn validate_body(body: &str) -> Result<String> {
    if body.trim().is_empty() {
        return Err(Error::validation("body must not be empty"));
    }
    if body.chars().count() > MAX_COMMENT_CHARS {
        return Err(Error::validation(format!(
            "body is at most {MAX_COMMENT_CHARS} characters"
        )));
    }
    if body.contains('\0') {
        return Err(Error::validation("body must not contain NUL characters"));
    }
    Ok(body.to_owned())
}

impl Comments {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// Comments on `chart_id`, or replies to `parent_id` (a top-level comment of the same
    /// chart: replies have no replies).
    pub async fn create(
        &self,
        actor: impl Into<Actor>,
        chart_id: Id,
        body: &str,
        parent_id: Option<Id>,
    ) -> Result<Comment> {
        let actor = actor.into();
        let body = validate_body(body)?;
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let (analysis_id, owner_id, _) =
            chart_access(&txn, actor.user_id, chart_id, Role::Viewer).await?;
        if let Some(parent_id) = parent_id {
            let parent = comments::Entity::find_by_id(parent_id).one(&txn).await?;
            match parent {
                Some(parent) if parent.chart_id == chart_id => {
                    if parent.parent_id.is_some() {
                        return Err(Error::validation(
                            "replies have no replies: answer the top-level comment",
                        ));
                    }
                }
                _ => {
                    return Err(Error::validation(
                        "parent_id is not a comment on this chart",
                    ));
                }
            }
        }
        let row = comments::Model {
            // Time-ordered: comments of one instant keep the order they were written in.
            id: Id::new_v7(),
            chart_id,
            parent_id,
            author_id: Some(actor.user_id),
            body,
            resolved: false,
            resolved_at: None,
            resolved_by: None,
            deleted: false,
            edited_at: None,
            created_at: now,
            updated_at: now,
        };
        comments::Entity::insert(comments::ActiveModel {
            id: Set(row.id),
            chart_id: Set(row.chart_id),
            parent_id: Set(row.parent_id),
            author_id: Set(row.author_id),
            body: Set(row.body.clone()),
            resolved: Set(false),
            resolved_at: Set(None),
            resolved_by: Set(None),
            deleted: Set(false),
            edited_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(Error::parent_gone)?;
        log(
            &txn,
            &actor,
            now,
            owner_id,
            analysis_id,
            "comment.created",
            row.id,
        )
        .await?;
        let author_name = name_of(&txn, actor.user_id).await?;
        txn.commit().await?;
        Ok(comment_of(row, author_name))
    }

    /// The comments of `chart_id`, oldest first (replies among them, each after its
    /// parent in time).
    pub async fn list(
        &self,
        user_id: Id,
        chart_id: Id,
        page: &PageRequest,
    ) -> Result<Page<Comment>> {
        chart_access(&self.ctx.db, user_id, chart_id, Role::Viewer).await?;
        let mut query = comments::Entity::find().filter(comments::Column::ChartId.eq(chart_id));
        if let Some(after) = &page.after {
            query =
                query.filter(after.newer_than(comments::Column::CreatedAt, comments::Column::Id));
        }
        let rows = query
            .order_by_asc(comments::Column::CreatedAt)
            .order_by_asc(comments::Column::Id)
            .limit(page.limit + 1)
            .all(&self.ctx.db)
            .await?;
        let page = page_from(rows, page.limit, |c| (c.created_at, c.id));
        let author_ids: Vec<Id> = page.items.iter().filter_map(|c| c.author_id).collect();
        let names: Vec<(Id, Option<String>)> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .column(users::Column::FullName)
            .filter(users::Column::Id.is_in(author_ids))
            .into_tuple()
            .all(&self.ctx.db)
            .await?;
        Ok(page.map(|row| {
            let name = row.author_id.and_then(|author| {
                names
                    .iter()
                    .find(|(id, _)| *id == author)
                    .and_then(|(_, n)| n.clone())
            });
            comment_of(row, name)
        }))
    }

    /// Replaces the body (the author only, while they can still see the analysis).
    pub async fn edit(&self, actor: impl Into<Actor>, id: Id, body: &str) -> Result<Comment> {
        let actor = actor.into();
        let body = validate_body(body)?;
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let (row, analysis_id, owner_id, _) =
            self.reach(&txn, actor.user_id, id, Role::Viewer).await?;
        if row.author_id != Some(actor.user_id) {
            return Err(Error::Forbidden("only its author edits a comment"));
        }
        let row = self
            .change(
                &txn,
                id,
                comments::ActiveModel {
                    body: Set(body),
                    edited_at: Set(Some(now)),
                    updated_at: Set(now),
                    ..Default::default()
                },
            )
            .await?;
        log(
            &txn,
            &actor,
            now,
            owner_id,
            analysis_id,
            "comment.updated",
            id,
        )
        .await?;
        let name = name_of(&txn, actor.user_id).await?;
        txn.commit().await?;
        Ok(comment_of(row, name))
    }

    /// Deletes a comment (its author, or the analysis owner): the row stays, marked
    /// deleted, with its body cleared.
    pub async fn delete(&self, actor: impl Into<Actor>, id: Id) -> Result<()> {
        let actor = actor.into();
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let (row, analysis_id, owner_id, role) =
            self.reach(&txn, actor.user_id, id, Role::Viewer).await?;
        if row.author_id != Some(actor.user_id) && role != Role::Owner {
            return Err(Error::Forbidden(
                "only its author or the analysis owner deletes a comment",
            ));
        }
        self.change(
            &txn,
            id,
            comments::ActiveModel {
                body: Set(String::new()),
                deleted: Set(true),
                updated_at: Set(now),
                ..Default::default()
            },
        )
        .await?;
        log(
            &txn,
            &actor,
            now,
            owner_id,
            analysis_id,
            "comment.deleted",
            id,
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Marks a comment resolved (the owner, an editor, or its author).
    pub async fn resolve(&self, actor: impl Into<Actor>, id: Id) -> Result<Comment> {
        let actor = actor.into();
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let (row, analysis_id, owner_id, role) =
            self.reach(&txn, actor.user_id, id, Role::Viewer).await?;
        if row.author_id != Some(actor.user_id) && role < Role::Editor {
            return Err(Error::Forbidden(
                "only the owner, an editor or its author resolves a comment",
            ));
        }
        let row = self
            .change(
                &txn,
                id,
                comments::ActiveModel {
                    resolved: Set(true),
                    resolved_at: Set(Some(row.resolved_at.unwrap_or(now))),
                    resolved_by: Set(Some(row.resolved_by.unwrap_or(actor.user_id))),
                    updated_at: Set(now),
                    ..Default::default()
                },
            )
            .await?;
        log(
            &txn,
            &actor,
            now,
            owner_id,
            analysis_id,
            "comment.resolved",
            id,
        )
        .await?;
        let name = match row.author_id {
            Some(author) => name_of(&txn, author).await?,
            None => None,
        };
        txn.commit().await?;
        Ok(comment_of(row, name))
    }

    /// The live (not deleted) comment `id` as `user_id` reaches it with at least `role`,
    /// with its analysis, the analysis owner and the caller's role.
    async fn reach(
        &self,
        txn: &DatabaseTransaction,
        user_id: Id,
        id: Id,
        role: Role,
    ) -> Result<(comments::Model, Id, Id, Role)> {
        let row = comments::Entity::find_by_id(id)
            .one(txn)
            .await?
            .ok_or(Error::NotFound)?;
        let (analysis_id, owner_id, actual) =
            chart_access(txn, user_id, row.chart_id, role).await?;
        if row.deleted {
            return Err(Error::NotFound);
        }
        Ok((row, analysis_id, owner_id, actual))
    }

    async fn change(
        &self,
        txn: &DatabaseTransaction,
        id: Id,
        change: comments::ActiveModel,
    ) -> Result<comments::Model> {
        comments::Entity::update_many()
            .set(change)
            .filter(comments::Column::Id.eq(id))
            .filter(comments::Column::Deleted.eq(false))
            .exec_with_returning(txn)
            .await?
            .into_iter()
            .next()
            .ok_or(Error::NotFound)
    }
}

async fn name_of<C: ConnectionTrait>(conn: &C, user_id: Id) -> Result<Option<String>> {
    let name: Option<Option<String>> = users::Entity::find_by_id(user_id)
        .select_only()
        .column(users::Column::FullName)
        .into_tuple()
        .one(conn)
        .await?;
    Ok(name.flatten())
}

async fn log<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    now: NaiveDateTime,
    owner_id: Id,
    analysis_id: Id,
    verb: &'static str,
    comment_id: Id,
) -> Result<()> {
    activity::record(
        conn,
        actor,
        now,
        Entry {
            owner_id,
            analysis_id: Some(analysis_id),
            verb,
            object_type: "comment",
            object_id: comment_id,
            metadata: json!({}),
        },
    )
    .await
}
