//! `collaborations` (revision 007): one invitation of an email to an analysis, as `viewer` or
//! `editor`, and its fate. The token is stored as its SHA-256 (hex) only.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "collaborations"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub analysis_id: Id,
    pub owner_id: Id,
    pub email: String,
    pub role: String,
    pub status: String,
    pub token_hash: String,
    pub invitee_id: Option<Id>,
    pub expires_at: DateTime,
    pub responded_at: Option<DateTime>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    AnalysisId,
    OwnerId,
    Email,
    Role,
    Status,
    TokenHash,
    InviteeId,
    ExpiresAt,
    RespondedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(Copy, Clone, Debug, EnumIter, DerivePrimaryKey)]
pub enum PrimaryKey {
    Id,
}

impl PrimaryKeyTrait for PrimaryKey {
    type ValueType = Id;

    fn auto_increment() -> bool {
        false
    }
}

impl ColumnTrait for Column {
    type EntityName = Entity;

    fn def(&self) -> ColumnDef {
        match self {
            Self::Id | Self::AnalysisId | Self::OwnerId => ColumnType::Uuid.def(),
            Self::InviteeId => ColumnType::Uuid.def().null(),
            Self::Email => ColumnType::String(StringLen::N(255)).def(),
            Self::Role | Self::Status => ColumnType::String(StringLen::N(10)).def(),
            Self::TokenHash => ColumnType::String(StringLen::N(64)).def().unique(),
            Self::ExpiresAt | Self::CreatedAt | Self::UpdatedAt => ColumnType::DateTime.def(),
            Self::RespondedAt => ColumnType::DateTime.def().null(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id | Self::AnalysisId | Self::OwnerId | Self::InviteeId => {
                uuid_column::select_as(expr)
            }
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id | Self::AnalysisId | Self::OwnerId | Self::InviteeId => {
                uuid_column::save_as(val)
            }
            _ => self.save_enum_as(val),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter)]
pub enum Relation {
    Analysis,
}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        match self {
            Self::Analysis => Entity::belongs_to(super::analyses::Entity)
                .from(Column::AnalysisId)
                .to(super::analyses::Column::Id)
                .into(),
        }
    }
}

impl Related<super::analyses::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Analysis.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
