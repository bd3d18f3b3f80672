//! The values the services take and return. They are the domain's own: a caller never
//! needs the storage crate (`entity`) or sea-orm to name them, and no value here carries a
//! password hash. Timestamps are UTC.
use chrono::{DateTime, Utc};
use entity::{analyses, datasets, reports, users};
use serde::{Deserialize, Serialize};

use crate::Id;

/// Subscription tier of an account; it decides the monthly limits ([`crate::limit_for`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The default: small monthly allowances.
    Free,
    /// Paid, unlimited counters.
    Pro,
    /// Paid, for groups.
    Team,
    /// Custom contracts.
    Enterprise,
}

impl Tier {
    /// Every tier, cheapest first.
    pub const ALL: [Tier; 4] = [Tier::Free, Tier::Pro, Tier::Team, Tier::Enterprise];

    /// The lower-case name the schema stores and the API shows (`"free"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Pro => "pro",
            Tier::Team => "team",
            Tier::Enterprise => "enterprise",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Tier {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                crate::Error::validation("tier must be one of free, pro, team, enterprise")
            })
    }
}

impl From<users::Tier> for Tier {
    fn from(t: users::Tier) -> Self {
        match t {
            users::Tier::Free => Tier::Free,
            users::Tier::Pro => Tier::Pro,
            users::Tier::Team => Tier::Team,
            users::Tier::Enterprise => Tier::Enterprise,
        }
    }
}

impl From<Tier> for users::Tier {
    fn from(t: Tier) -> Self {
        match t {
            Tier::Free => users::Tier::Free,
            Tier::Pro => users::Tier::Pro,
            Tier::Team => users::Tier::Team,
            Tier::Enterprise => users::Tier::Enterprise,
        }
    }
}

/// Where an analysis stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AnalysisStatus))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being built; the default.
    Draft,
    /// Its results are final.
    Completed,
    /// The run failed.
    Failed,
}

impl Status {
    /// The lower-case name the schema stores and the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }
}

impl From<analyses::Status> for Status {
    fn from(s: analyses::Status) -> Self {
        match s {
            analyses::Status::Draft => Status::Draft,
            analyses::Status::Completed => Status::Completed,
            analyses::Status::Failed => Status::Failed,
        }
    }
}

impl From<Status> for analyses::Status {
    fn from(s: Status) -> Self {
        match s {
            Status::Draft => analyses::Status::Draft,
            Status::Completed => analyses::Status::Completed,
            Status::Failed => analyses::Status::Failed,
        }
    }
}

/// An account, without its password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: Id,
    /// Normalized (trimmed, lower-case) for accounts made by this version.
    pub email: String,
    /// Display name.
    pub full_name: Option<String>,
    /// Subscription tier.
    pub tier: Tier,
    /// Whether the account may use the admin operations ([`crate::Caller::admin`]).
    pub is_admin: bool,
    /// When the account was registered.
    pub created_at: DateTime<Utc>,
    /// Last change of the row.
    pub updated_at: DateTime<Utc>,
}

impl From<users::Model> for User {
    fn from(u: users::Model) -> Self {
        Self {
            id: u.id,
            email: u.email,
            full_name: u.full_name,
            tier: u.tier.into(),
            is_admin: u.is_admin,
            created_at: u.created_at.and_utc(),
            updated_at: u.updated_at.and_utc(),
        }
    }
}

/// An uploaded (or imported) dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// Its id.
    pub id: Id,
    /// The owner.
    pub user_id: Id,
    /// Display name.
    pub name: String,
    /// Key of its file in the dataset store (`None` for rows of other origins).
    pub file_path: Option<String>,
    /// The data connection it was imported from, if any.
    pub connection_id: Option<Id>,
    /// Data rows (header excluded), when known.
    pub row_count: Option<i32>,
    /// Columns, when known.
    pub column_count: Option<i32>,
    /// Size of the stored file in bytes, when known.
    pub size_bytes: Option<i64>,
    /// Names and types of its columns as queries see them; `None` while unknown (no query
    /// engine, or a file it cannot read).
    pub columns: Option<Vec<crate::DataColumn>>,
    /// Upload time.
    pub created_at: DateTime<Utc>,
    /// Last change of the row.
    pub updated_at: DateTime<Utc>,
}

impl From<datasets::Model> for Dataset {
    fn from(d: datasets::Model) -> Self {
        Self {
            id: d.id,
            user_id: d.user_id,
            name: d.name,
            file_path: d.file_path,
            connection_id: d.connection_id,
            row_count: d.row_count,
            column_count: d.column_count,
            size_bytes: d.size_bytes,
            columns: None,
            created_at: d.created_at.and_utc(),
            updated_at: d.updated_at.and_utc(),
        }
    }
}

/// An analysis: a named configuration over a dataset, and its results.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Its id.
    pub id: Id,
    /// The owner.
    pub user_id: Id,
    /// Display name.
    pub name: String,
    /// The dataset it reads, if any (cleared when the dataset is deleted).
    pub dataset_id: Option<Id>,
    /// Free-form configuration (a JSON object or any JSON value).
    pub config: Option<serde_json::Value>,
    /// Free-form results.
    pub results: Option<serde_json::Value>,
    /// Where it stands.
    pub status: Status,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change of the row.
    pub updated_at: DateTime<Utc>,
}

impl From<analyses::Model> for Analysis {
    fn from(a: analyses::Model) -> Self {
        Self {
            id: a.id,
            user_id: a.user_id,
            name: a.name,
            dataset_id: a.dataset_id,
            config: a.config,
            results: a.results,
            status: a.status.into(),
            created_at: a.created_at.and_utc(),
            updated_at: a.updated_at.and_utc(),
        }
    }
}

/// A published report of an analysis, as its owner sees it (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Its id.
    pub id: Id,
    /// The analysis it shows.
    pub analysis_id: Id,
    /// The public link's code: `/r/{short_code}`.
    pub short_code: String,
    /// Whether anyone with the link may view it.
    pub is_public: bool,
    /// Whether a password is needed to view it.
    pub has_password: bool,
    /// After this instant the link answers "gone".
    pub expires_at: Option<DateTime<Utc>>,
    /// Views so far.
    pub view_count: i32,
    /// Publication time.
    pub created_at: DateTime<Utc>,
    /// Last change of the row.
    pub updated_at: DateTime<Utc>,
}

impl From<reports::Model> for Report {
    fn from(r: reports::Model) -> Self {
        Self {
            id: r.id,
            analysis_id: r.analysis_id,
            short_code: r.short_code,
            is_public: r.is_public,
            has_password: r.password_hash.is_some(),
            expires_at: r.expires_at.map(|at| at.and_utc()),
            view_count: r.view_count,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
        }
    }
}
