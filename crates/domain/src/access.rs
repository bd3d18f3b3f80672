//! Who is calling, as values the services check: a [`Caller`] comes only from
//! [`crate::Tokens::authenticate`], and an [`Admin`] proof only from a caller whose account
//! is an admin *now* (or from [`Admin::local_operator`]). Admin operations take the proof,
//! so no code path can reach them with a forgotten check.
//!
//! Analyses are shared: a [`Role`] says what a caller may do with one. Statements reach an
//! analysis through [`analyses_reachable`] inside the statement itself, and a refusal is
//! explained afterwards by [`refusal`]: `403` for a collaborator beyond their role, `404`
//! for everyone else.
use entity::{analyses, charts, collaborations, reports};
use sea_orm::sea_query::{Query, SelectStatement, UnionType};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::{Error, Id, Result, User};

/// An authenticated caller: the account a live login token belongs to, as the row is now.
#[derive(Clone)]
pub struct Caller {
    user: User,
}

/// The email is personal data: a logged caller shows its id only.
impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("id", &self.user.id).finish()
    }
}

impl Caller {
    pub(crate) fn new(user: User) -> Self {
        Self { user }
    }

    /// The caller's account id.
    pub fn id(&self) -> Id {
        self.user.id
    }

    /// The caller's account.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The caller's account, by value.
    pub fn into_user(self) -> User {
        self.user
    }

    /// Proof that the caller may use admin operations; [`Error::Forbidden`] otherwise.
    pub fn admin(&self) -> Result<Admin> {
        if self.user.is_admin {
            Ok(Admin { _private: () })
        } else {
            Err(Error::Forbidden("this needs an administrator"))
        }
    }
}

/// Proof that the holder may use admin operations. It cannot be built outside this
/// crate except through [`Caller::admin`] and [`Admin::local_operator`].
#[derive(Debug)]
pub struct Admin {
    _private: (),
}

impl Admin {
    /// The proof for a program run by the operator on the database itself (the `iops`
    /// command line): whoever holds the database credentials can change any row anyway, so
    /// there is nothing further to check. Never call this on behalf of a remote client.
    pub fn local_operator() -> Self {
        Admin { _private: () }
    }
}

/// Who makes a change, as the activity log records it: an account (through the API, with
/// the request's id) or the operator at the command line.
///
/// Every operation that changes something takes `impl Into<Actor>`; an account id converts
/// to an actor without a request id, which is what programs other than the API use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The account acting.
    pub user_id: Id,
    /// The request that carried the change (`X-Request-Id`), for the log.
    pub request_id: Option<String>,
}

impl Actor {
    /// `user_id` acting within request `request_id`.
    pub fn new(user_id: Id, request_id: Option<String>) -> Self {
        Self {
            user_id,
            request_id,
        }
    }
}

impl From<Id> for Actor {
    fn from(user_id: Id) -> Self {
        Actor::new(user_id, None)
    }
}

/// What a caller may do with an analysis: its owner everything, a collaborator what the
/// owner's invitation granted. Ordered: `Viewer < Editor < Owner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads the analysis, its results, charts, dataset and comments, and comments.
    Viewer,
    /// Also edits the analysis (name, config, results, status) and manages its charts.
    Editor,
    /// Also deletes, shares, publishes reports and embeds, and changes the dataset.
    Owner,
}

impl Role {
    /// `"viewer"`, `"editor"`, `"owner"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }

    /// A collaborator's role as stored (`viewer` or `editor`).
    pub(crate) fn of_collaborator(stored: &str) -> Result<Role> {
        match stored {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            other => Err(Error::Internal(format!(
                "unknown collaborator role {other:?}"
            ))),
        }
    }

    /// The roles stored on collaborations that reach at least `self`.
    fn collaborator_roles(self) -> &'static [&'static str] {
        match self {
            Role::Viewer => &["viewer", "editor"],
            Role::Editor => &["editor"],
            Role::Owner => &[],
        }
    }
}

/// What an analysis-scoped operation is reached through: the analysis itself or something
/// that belongs to it. Used to explain a refusal.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Through {
    Analysis(Id),
    Chart(Id),
    Report(Id),
}

/// `SELECT id FROM analyses WHERE user_id = $u`, plus, below [`Role::Owner`],
/// `UNION SELECT analysis_id FROM collaborations WHERE invitee_id = $u AND status =
/// 'accepted' AND role IN (...)`: every analysis `user_id` reaches with at least `role`.
///
/// Written with sea-query directly: the entity's select would cast `id` to text on
/// PostgreSQL, and `uuid IN (text)` fails.
///
/// Meant for `analysis_id IN (...)` inside the very statement that reads or writes, so a
/// revocation or a role change that commits first is seen by that statement. (Inserts of
/// new rows check with [`analysis_for`] in their write transaction instead.) Nothing is
/// cached, on any process.
pub(crate) fn analyses_reachable(user_id: Id, role: Role) -> SelectStatement {
    let mut owned = Query::select()
        .column(analyses::Column::Id)
        .from(analyses::Entity)
        .and_where(analyses::Column::UserId.eq(user_id))
        .to_owned();
    let roles = role.collaborator_roles();
    if !roles.is_empty() {
        let shared = Query::select()
            .column(collaborations::Column::AnalysisId)
            .from(collaborations::Entity)
            .and_where(collaborations::Column::InviteeId.eq(user_id))
            .and_where(collaborations::Column::Status.eq(ACCEPTED))
            .and_where(collaborations::Column::Role.is_in(roles.iter().copied()))
            .to_owned();
        owned.union(UnionType::All, shared);
    }
    owned
}

/// The status of a collaboration that grants its role.
pub(crate) const ACCEPTED: &str = "accepted";

/// Why a statement scoped with [`analyses_reachable`] for `needed` found nothing: a
/// collaborator of the analysis below `needed` lacks the role ([`Error::Forbidden`]);
/// anyone else, or someone with the role (the object is then simply not there), is told
/// nothing exists ([`Error::NotFound`]), exactly as before sharing existed.
pub(crate) async fn refusal<C: ConnectionTrait>(
    conn: &C,
    user_id: Id,
    through: Through,
    needed: Role,
) -> Result<Error> {
    let analysis_id: Option<Id> = match through {
        Through::Analysis(id) => Some(id),
        Through::Chart(id) => analysis_of_chart(conn, id).await?,
        Through::Report(id) => {
            reports::Entity::find_by_id(id)
                .select_only()
                .column(reports::Column::AnalysisId)
                .into_tuple()
                .one(conn)
                .await?
        }
    };
    let Some(analysis_id) = analysis_id else {
        return Ok(Error::NotFound);
    };
    Ok(match role_of(conn, user_id, analysis_id).await? {
        Some(actual) if actual < needed => Error::Forbidden(NOT_YOUR_ROLE),
        _ => Error::NotFound,
    })
}

/// The analysis chart `chart_id` belongs to, if the chart exists.
pub(crate) async fn analysis_of_chart<C: ConnectionTrait>(
    conn: &C,
    chart_id: Id,
) -> Result<Option<Id>> {
    Ok(charts::Entity::find_by_id(chart_id)
        .select_only()
        .column(charts::Column::AnalysisId)
        .into_tuple()
        .one(conn)
        .await?)
}

/// What a collaborator beyond their role is told.
pub(crate) const NOT_YOUR_ROLE: &str = "your role on this analysis does not allow this";

/// The role `user_id` has on `analysis_id` now, or `None` when they have none (or it does
/// not exist).
pub(crate) async fn role_of<C: ConnectionTrait>(
    conn: &C,
    user_id: Id,
    analysis_id: Id,
) -> Result<Option<Role>> {
    let owner: Option<Id> = analyses::Entity::find_by_id(analysis_id)
        .select_only()
        .column(analyses::Column::UserId)
        .into_tuple()
        .one(conn)
        .await?;
    let Some(owner) = owner else {
        return Ok(None);
    };
    if owner == user_id {
        return Ok(Some(Role::Owner));
    }
    collaborator_role(conn, user_id, analysis_id).await
}

/// The role an accepted invitation gives `user_id` on `analysis_id`, if any.
async fn collaborator_role<C: ConnectionTrait>(
    conn: &C,
    user_id: Id,
    analysis_id: Id,
) -> Result<Option<Role>> {
    let role: Option<String> = collaborations::Entity::find()
        .select_only()
        .column(collaborations::Column::Role)
        .filter(collaborations::Column::AnalysisId.eq(analysis_id))
        .filter(collaborations::Column::InviteeId.eq(user_id))
        .filter(collaborations::Column::Status.eq(ACCEPTED))
        .into_tuple()
        .one(conn)
        .await?;
    role.map(|r| Role::of_collaborator(&r)).transpose()
}

/// The analysis `analysis_id` as `user_id` may use it with at least `role`: its row and
/// the caller's role, or the refusal ([`Error::NotFound`] / [`Error::Forbidden`]).
pub(crate) async fn analysis_for<C: ConnectionTrait>(
    conn: &C,
    user_id: Id,
    analysis_id: Id,
    role: Role,
) -> Result<(analyses::Model, Role)> {
    let found = analyses::Entity::find_by_id(analysis_id).one(conn).await?;
    let Some(analysis) = found else {
        return Err(Error::NotFound);
    };
    let actual = if analysis.user_id == user_id {
        Role::Owner
    } else {
        match collaborator_role(conn, user_id, analysis_id).await? {
            Some(actual) => actual,
            None => return Err(Error::NotFound),
        }
    };
    if actual < role {
        return Err(Error::Forbidden(NOT_YOUR_ROLE));
    }
    Ok((analysis, actual))
}
