//! Sharing an analysis: invitations by email, roles, acceptance, revocation.
//!
//! An invitation is a row of `collaborations` and a 256-bit token shown once (only its
//! SHA-256 is stored). The collaborator limit is a *standing* count, the distinct emails
//! with a pending (unexpired) or accepted invitation on any of the owner's analyses. It is
//! decided inside one write transaction that first locks the owner's `users` row
//! (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already admits one
//! writer): two invitations of one owner never count at the same time, whichever process
//! serves them, so the count they see is the truth.
use chrono::{DateTime, NaiveDateTime, Utc};
use entity::{analyses, collaborations, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use serde_json::json;

use crate::access::{self, ACCEPTED, Actor, Role};
use crate::activity::{self, Entry};
use crate::db::{begin_write, id_value, lock_user};
use crate::mail::InvitationMail;
use crate::pagination::{Page, PageRequest, page_from};
use crate::tokens::{hash_secret, new_secret, well_formed};
use crate::usage::allowance;
use crate::{Analysis, Context, Error, Id, LimitKind, Result, normalize_email};

/// How long an invitation can be accepted.
pub const INVITATION_TTL_DAYS: i64 = 7;

const PENDING: &str = "pending";
const DECLINED: &str = "declined";
const REVOKED: &str = "revoked";
const EXPIRED: &str = "expired";

/// Where an invitation stands. A pending invitation past its expiry shows as `Expired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollaborationStatus {
    /// Sent, not answered yet.
    Pending,
    /// The invitee accepted: they have the role.
    Accepted,
    /// The invitee declined.
    Declined,
    /// The owner revoked it.
    Revoked,
    /// Not answered within seven days.
    Expired,
}

impl CollaborationStatus {
    /// `pending`, `accepted`, `declined`, `revoked`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            CollaborationStatus::Pending => PENDING,
            CollaborationStatus::Accepted => ACCEPTED,
            CollaborationStatus::Declined => DECLINED,
            CollaborationStatus::Revoked => REVOKED,
            CollaborationStatus::Expired => EXPIRED,
        }
    }
}

/// One invitation of an email to an analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct Collaboration {
    /// Its id.
    pub id: Id,
    /// The analysis shared.
    pub analysis_id: Id,
    /// The invited address (normalized).
    pub email: String,
    /// `Viewer` or `Editor`.
    pub role: Role,
    /// Where it stands now.
    pub status: CollaborationStatus,
    /// The account that accepted it.
    pub invitee_id: Option<Id>,
    /// Until when it can be accepted.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted or declined.
    pub responded_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn collaboration_of(row: collaborations::Model, now: NaiveDateTime) -> Result<Collaboration> {
    let status = match row.status.as_str() {
        PENDING if row.expires_at <= now => CollaborationStatus::Expired,
        PENDING => CollaborationStatus::Pending,
        ACCEPTED => CollaborationStatus::Accepted,
        DECLINED => CollaborationStatus::Declined,
        REVOKED => CollaborationStatus::Revoked,
        EXPIRED => CollaborationStatus::Expired,
        other => {
            return Err(Error::Internal(format!(
                "unknown collaboration status {other:?}"
            )));
        }
    };
    Ok(Collaboration {
        id: row.id,
        analysis_id: row.analysis_id,
        email: row.email,
        role: Role::of_collaborator(&row.role)?,
        status,
        invitee_id: row.invitee_id,
        expires_at: row.expires_at.and_utc(),
        responded_at: row.responded_at.map(|t| t.and_utc()),
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    })
}

/// A new invitation and its token: the token is shown here once and never again.
#[derive(Clone)]
pub struct Invitation {
    /// The invitation.
    pub collaboration: Collaboration,
    /// The secret of the invitation link (`/invitations/{token}`).
    pub token: String,
}

/// The token is a credential: a logged invitation shows its collaboration only.
impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("collaboration", &self.collaboration)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Invitation {
    /// The path that opens it: `/invitations/{token}`.
    pub fn path(&self) -> String {
        invitation_path(&self.token)
    }
}

fn invitation_path(token: &str) -> String {
    format!("/invitations/{token}")
}

/// What the holder of an invitation link sees before answering it.
#[derive(Clone, Debug)]
pub struct InvitationPreview {
    /// The analysis offered.
    pub analysis_name: String,
    /// Who invites (their name, or their email when they have none).
    pub inviter: String,
    /// The address that must accept.
    pub email: String,
    /// The role offered.
    pub role: Role,
    /// Until when it can be answered.
    pub expires_at: DateTime<Utc>,
}

/// An analysis shared with the caller, with their role and its owner.
#[derive(Clone, Debug)]
pub struct SharedAnalysis {
    /// The analysis.
    pub analysis: Analysis,
    /// The caller's role on it.
    pub role: Role,
    /// Its owner's account id.
    pub owner_id: Id,
    /// Its owner's display name.
    pub owner_name: Option<String>,
}

/// Invitations, roles and the analyses shared with a user.
#[derive(Clone)]
pub struct Collaborations {
    ctx: Context,
}

/// A live invitation: accepted, or pending and not yet expired at `now`.
fn live(now: NaiveDateTime) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(collaborations::Column::Status.eq(ACCEPTED))
        .add(
            sea_orm::Condition::all()
                .add(collaborations::Column::Status.eq(PENDING))
                .add(collaborations::Column::ExpiresAt.gt(now)),
        )
}

/// Distinct people with a live invitation (pending and unexpired, or accepted) to any of
/// `owner_id`'s analyses at `now`: the standing collaborator count.
pub(crate) async fn in_use<C: ConnectionTrait>(
    conn: &C,
    owner_id: Id,
    now: NaiveDateTime,
) -> Result<i64> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT COUNT(DISTINCT email) FROM collaborations \
              WHERE owner_id = $1 \
                AND (status = 'accepted' OR (status = 'pending' AND expires_at > $2))",
            [id_value(backend, owner_id), now.into()],
        ))
        .await?
        .ok_or_else(|| Error::Internal("COUNT returned no row".to_owned()))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

impl Collaborations {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// Invites `email` to `analysis_id` (the caller's) as `role` (viewer or editor). The
    /// collaborator limit of the owner's tier applies ([`Error::LimitExceeded`] with
    /// [`LimitKind::Collaborators`]); an email with a live invitation on this analysis is
    /// [`Error::Conflict`]. With an outbox configured, the invitation is mailed after it
    /// commits.
    pub async fn invite(
        &self,
        actor: impl Into<Actor>,
        analysis_id: Id,
        email: &str,
        role: Role,
    ) -> Result<Invitation> {
        let actor = actor.into();
        if role == Role::Owner {
            return Err(Error::validation("role must be viewer or editor"));
        }
        let email = normalize_email(email)?;
        let token = new_secret()?;
        let now = self.ctx.clock.now_naive();
        let expires_at = now + chrono::Duration::days(INVITATION_TTL_DAYS);

        let txn = begin_write(&self.ctx.db).await?;
        let (analysis, _) =
            access::analysis_for(&txn, actor.user_id, analysis_id, Role::Owner).await?;
        let owner = lock_user(&txn, analysis.user_id).await?;
        if owner.email.eq_ignore_ascii_case(&email) {
            return Err(Error::validation("you cannot invite yourself"));
        }
        // A pending invitation past its expiry is dead: mark it so, which also frees the
        // (analysis, email) pair for this new one.
        collaborations::Entity::update_many()
            .col_expr(collaborations::Column::Status, Expr::value(EXPIRED))
            .col_expr(collaborations::Column::UpdatedAt, Expr::value(now))
            .filter(collaborations::Column::AnalysisId.eq(analysis_id))
            .filter(collaborations::Column::Email.eq(email.as_str()))
            .filter(collaborations::Column::Status.eq(PENDING))
            .filter(collaborations::Column::ExpiresAt.lte(now))
            .exec(&txn)
            .await?;
        let live = collaborations::Entity::find()
            .select_only()
            .column(collaborations::Column::AnalysisId)
            .filter(collaborations::Column::OwnerId.eq(owner.id))
            .filter(collaborations::Column::Email.eq(email.as_str()))
            .filter(live(now))
            .into_tuple::<Id>()
            .all(&txn)
            .await?;
        if live.contains(&analysis_id) {
            return Err(Error::Conflict(
                "this email already has a pending or accepted invitation to this analysis"
                    .to_owned(),
            ));
        }
        if live.is_empty() {
            // Someone new: they count toward the limit. (Already invited elsewhere by the
            // same owner, they are counted already.)
            if let Some(allowed) =
                allowance(&txn, owner.id, owner.tier.into(), LimitKind::Collaborators).await?
            {
                let used = in_use(&txn, owner.id, now).await?;
                if used >= allowed {
                    return Err(Error::LimitExceeded {
                        limit: LimitKind::Collaborators,
                        allowed,
                        used,
                        resets_at: None,
                    });
                }
            }
        }
        let row = collaborations::Model {
            id: Id::new_v4(),
            analysis_id,
            owner_id: owner.id,
            email: email.clone(),
            role: role.as_str().to_owned(),
            status: PENDING.to_owned(),
            token_hash: hash_secret(&token),
            invitee_id: None,
            expires_at,
            responded_at: None,
            created_at: now,
            updated_at: now,
        };
        collaborations::Entity::insert(active(&row))
            .exec_without_returning(&txn)
            .await
            .map_err(Error::parent_gone)?;
        activity::record(
            &txn,
            &actor,
            now,
            Entry {
                owner_id: owner.id,
                analysis_id: Some(analysis_id),
                verb: "collaboration.created",
                object_type: "collaboration",
                object_id: row.id,
                metadata: json!({ "role": role.as_str() }),
            },
        )
        .await?;
        txn.commit().await?;

        let invitation = Invitation {
            collaboration: collaboration_of(row, now)?,
            token,
        };
        if let Some(outbox) = &self.ctx.outbox {
            outbox.post(InvitationMail {
                to: email,
                inviter: owner.full_name.clone().unwrap_or(owner.email.clone()),
                analysis: analysis.name,
                role,
                url: outbox.link(&invitation.path()),
                expires_at: expires_at.and_utc(),
            });
        }
        Ok(invitation)
    }

    /// The invitations of `analysis_id` (the caller's), newest first.
    pub async fn list(
        &self,
        user_id: Id,
        analysis_id: Id,
        page: &PageRequest,
    ) -> Result<Page<Collaboration>> {
        access::analysis_for(&self.ctx.db, user_id, analysis_id, Role::Owner).await?;
        let mut query = collaborations::Entity::find()
            .filter(collaborations::Column::AnalysisId.eq(analysis_id))
            .filter(collaborations::Column::OwnerId.eq(user_id));
        if let Some(after) = &page.after {
            query = query.filter(after.older_than(
                collaborations::Column::CreatedAt,
                collaborations::Column::Id,
            ));
        }
        let rows = query
            .order_by_desc(collaborations::Column::CreatedAt)
            .order_by_desc(collaborations::Column::Id)
            .limit(page.limit + 1)
            .all(&self.ctx.db)
            .await?;
        let now = self.ctx.clock.now_naive();
        let page = page_from(rows, page.limit, |c| (c.created_at, c.id));
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|row| collaboration_of(row, now))
                .collect::<Result<_>>()?,
            next_cursor: page.next_cursor,
        })
    }

    /// Changes the role of a pending or accepted invitation (the owner only). Applies to
    /// the collaborator's next request, on every process.
    pub async fn change_role(
        &self,
        actor: impl Into<Actor>,
        id: Id,
        role: Role,
    ) -> Result<Collaboration> {
        let actor = actor.into();
        if role == Role::Owner {
            return Err(Error::validation("role must be viewer or editor"));
        }
        let change = collaborations::ActiveModel {
            role: Set(role.as_str().to_owned()),
            ..Default::default()
        };
        let (row, now) = self
            .change_live(&actor, id, change, "collaboration.updated")
            .await?;
        collaboration_of(row, now)
    }

    /// Revokes a pending or accepted invitation (the owner only): the token stops
    /// working and the collaborator loses access on their next request, on every process.
    pub async fn revoke(&self, actor: impl Into<Actor>, id: Id) -> Result<()> {
        let change = collaborations::ActiveModel {
            status: Set(REVOKED.to_owned()),
            ..Default::default()
        };
        self.change_live(&actor.into(), id, change, "collaboration.revoked")
            .await?;
        Ok(())
    }

    /// Applies `change` to the live invitation `id` of the actor's (the owner's) and logs
    /// `verb`, in one write transaction; the refusal when nothing matched.
    async fn change_live(
        &self,
        actor: &Actor,
        id: Id,
        mut change: collaborations::ActiveModel,
        verb: &'static str,
    ) -> Result<(collaborations::Model, NaiveDateTime)> {
        let now = self.ctx.clock.now_naive();
        change.updated_at = Set(now);
        let txn = begin_write(&self.ctx.db).await?;
        let updated = collaborations::Entity::update_many()
            .set(change)
            .filter(collaborations::Column::Id.eq(id))
            .filter(collaborations::Column::OwnerId.eq(actor.user_id))
            .filter(live(now))
            .exec_with_returning(&txn)
            .await?;
        let Some(row) = updated.into_iter().next() else {
            return Err(self.refusal(&txn, actor.user_id, id).await?);
        };
        activity::record(
            &txn,
            actor,
            now,
            Entry {
                owner_id: row.owner_id,
                analysis_id: Some(row.analysis_id),
                verb,
                object_type: "collaboration",
                object_id: row.id,
                metadata: json!({ "role": row.role }),
            },
        )
        .await?;
        txn.commit().await?;
        Ok((row, now))
    }

    /// Accepts the invitation of `token` as the caller, whose account email must be the
    /// invited one ([`Error::Forbidden`] otherwise). Unknown, used or revoked:
    /// [`Error::NotFound`]; past its seven days: [`Error::Gone`].
    pub async fn accept(&self, actor: impl Into<Actor>, token: &str) -> Result<Collaboration> {
        self.respond(actor.into(), token, ACCEPTED).await
    }

    /// Declines the invitation of `token` (same rules as [`Collaborations::accept`]); the
    /// token is used up.
    pub async fn decline(&self, actor: impl Into<Actor>, token: &str) -> Result<()> {
        self.respond(actor.into(), token, DECLINED)
            .await
            .map(|_| ())
    }

    async fn respond(
        &self,
        actor: Actor,
        token: &str,
        answer: &'static str,
    ) -> Result<Collaboration> {
        if !well_formed(token) {
            return Err(Error::NotFound);
        }
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let found = collaborations::Entity::find()
            .filter(collaborations::Column::TokenHash.eq(hash_secret(token)))
            .one(&txn)
            .await?;
        // Pending, or expired (marked so when the email was invited again): anything else
        // was used or revoked.
        let Some(row) = found.filter(|row| row.status == PENDING || row.status == EXPIRED) else {
            return Err(Error::NotFound);
        };
        let caller = users::Entity::find_by_id(actor.user_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        if !caller.email.eq_ignore_ascii_case(&row.email) {
            return Err(Error::Forbidden(
                "this invitation is for another account's email",
            ));
        }
        if row.status == EXPIRED || row.expires_at <= now {
            return Err(Error::Gone("this invitation has expired"));
        }
        if row.owner_id == caller.id {
            return Err(Error::Conflict("you own this analysis".to_owned()));
        }
        if answer == ACCEPTED {
            // An account changed to a second invited address must not hold two roles on
            // one analysis (revoking one would leave the other).
            let already = collaborations::Entity::find()
                .filter(collaborations::Column::AnalysisId.eq(row.analysis_id))
                .filter(collaborations::Column::InviteeId.eq(caller.id))
                .filter(collaborations::Column::Status.eq(ACCEPTED))
                .count(&txn)
                .await?;
            if already > 0 {
                return Err(Error::Conflict(
                    "you already collaborate on this analysis".to_owned(),
                ));
            }
        }
        let mut change = collaborations::ActiveModel {
            status: Set(answer.to_owned()),
            responded_at: Set(Some(now)),
            updated_at: Set(now),
            ..Default::default()
        };
        if answer == ACCEPTED {
            change.invitee_id = Set(Some(caller.id));
        }
        // `status = 'pending'` again in the statement: of two answers racing, one wins.
        let updated = collaborations::Entity::update_many()
            .set(change)
            .filter(collaborations::Column::Id.eq(row.id))
            .filter(collaborations::Column::Status.eq(PENDING))
            .exec_with_returning(&txn)
            .await?;
        let row = updated.into_iter().next().ok_or(Error::NotFound)?;
        activity::record(
            &txn,
            &actor,
            now,
            Entry {
                owner_id: row.owner_id,
                analysis_id: Some(row.analysis_id),
                verb: if answer == ACCEPTED {
                    "collaboration.accepted"
                } else {
                    "collaboration.declined"
                },
                object_type: "collaboration",
                object_id: row.id,
                metadata: json!({ "role": row.role }),
            },
        )
        .await?;
        txn.commit().await?;
        collaboration_of(row, now)
    }

    /// What the invitation of `token` offers, for the page its link opens. Unknown, used
    /// or revoked: [`Error::NotFound`]; past its seven days: [`Error::Gone`].
    pub async fn preview(&self, token: &str) -> Result<InvitationPreview> {
        if !well_formed(token) {
            return Err(Error::NotFound);
        }
        let found = collaborations::Entity::find()
            .filter(collaborations::Column::TokenHash.eq(hash_secret(token)))
            .filter(collaborations::Column::Status.is_in([PENDING, EXPIRED]))
            .find_also_related(analyses::Entity)
            .one(&self.ctx.db)
            .await?;
        let Some((row, Some(analysis))) = found else {
            return Err(Error::NotFound);
        };
        if row.status == EXPIRED || row.expires_at <= self.ctx.clock.now_naive() {
            return Err(Error::Gone("this invitation has expired"));
        }
        let owner = users::Entity::find_by_id(row.owner_id)
            .one(&self.ctx.db)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(InvitationPreview {
            analysis_name: analysis.name,
            inviter: owner.full_name.unwrap_or(owner.email),
            email: row.email,
            role: Role::of_collaborator(&row.role)?,
            expires_at: row.expires_at.and_utc(),
        })
    }

    /// The analyses shared with `user_id` now (accepted invitations), newest first.
    pub async fn shared_with(
        &self,
        user_id: Id,
        page: &PageRequest,
    ) -> Result<Page<SharedAnalysis>> {
        let mut query = analyses::Entity::find().filter(
            analyses::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(collaborations::Column::AnalysisId)
                    .from(collaborations::Entity)
                    .and_where(collaborations::Column::InviteeId.eq(user_id))
                    .and_where(collaborations::Column::Status.eq(ACCEPTED))
                    .to_owned(),
            ),
        );
        if let Some(after) = &page.after {
            query =
                query.filter(after.older_than(analyses::Column::CreatedAt, analyses::Column::Id));
        }
        let rows = query
            .order_by_desc(analyses::Column::CreatedAt)
            .order_by_desc(analyses::Column::Id)
            .limit(page.limit + 1)
            .all(&self.ctx.db)
            .await?;
        let page = page_from(rows, page.limit, |a| (a.created_at, a.id));
        let ids: Vec<Id> = page.items.iter().map(|a| a.id).collect();
        let roles: Vec<(Id, String)> = collaborations::Entity::find()
            .select_only()
            .column(collaborations::Column::AnalysisId)
            .column(collaborations::Column::Role)
            .filter(collaborations::Column::InviteeId.eq(user_id))
            .filter(collaborations::Column::Status.eq(ACCEPTED))
            .filter(collaborations::Column::AnalysisId.is_in(ids))
            .into_tuple()
            .all(&self.ctx.db)
            .await?;
        let owner_ids: Vec<Id> = page.items.iter().map(|a| a.user_id).collect();
        let owners: Vec<(Id, Option<String>)> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .column(users::Column::FullName)
            .filter(users::Column::Id.is_in(owner_ids))
            .into_tuple()
            .all(&self.ctx.db)
            .await?;
        let mut items = Vec::with_capacity(page.items.len());
        for analysis in page.items {
            // Revoked between the two reads: leave it out rather than guess a role.
            let Some((_, role)) = roles.iter().find(|(id, _)| *id == analysis.id) else {
                continue;
            };
            let owner_name = owners
                .iter()
                .find(|(id, _)| *id == analysis.user_id)
                .and_then(|(_, name)| name.clone());
            items.push(SharedAnalysis {
                role: Role::of_collaborator(role)?,
                owner_id: analysis.user_id,
                owner_name,
                analysis: analysis.into(),
            });
        }
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    /// Why a change to collaboration `id` matched nothing: a collaborator of its analysis
    /// is refused ([`Error::Forbidden`]), anyone else told it does not exist.
    async fn refusal<C: ConnectionTrait>(&self, conn: &C, user_id: Id, id: Id) -> Result<Error> {
        let analysis_id: Option<Id> = collaborations::Entity::find_by_id(id)
            .select_only()
            .column(collaborations::Column::AnalysisId)
            .into_tuple()
            .one(conn)
            .await?;
        match analysis_id {
            Some(analysis_id) => {
                access::refusal(
                    conn,
                    user_id,
                    access::Through::Analysis(analysis_id),
                    Role::Owner,
                )
                .await
            }
            None => Ok(Error::NotFound),
        }
    }
}

fn active(row: &collaborations::Model) -> collaborations::ActiveModel {
    collaborations::ActiveModel {
        id: Set(row.id),
        analysis_id: Set(row.analysis_id),
        owner_id: Set(row.owner_id),
        email: Set(row.email.clone()),
        role: Set(row.role.clone()),
        status: Set(row.status.clone()),
        token_hash: Set(row.token_hash.clone()),
        invitee_id: Set(row.invitee_id),
        expires_at: Set(row.expires_at),
        responded_at: Set(row.responded_at),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    }
}
