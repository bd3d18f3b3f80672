//! `reports`: public, shareable views of an analysis at `/r/{short_code}`.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "reports"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub analysis_id: Id,
    pub short_code: String,
    pub is_public: bool,
    pub password_hash: Option<String>,
    pub expires_at: Option<DateTime>,
    pub view_count: i32,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    AnalysisId,
    ShortCode,
    IsPublic,
    PasswordHash,
    ExpiresAt,
    ViewCount,
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
            Self::Id | Self::AnalysisId => ColumnType::Uuid.def(),
            Self::ShortCode => ColumnType::String(StringLen::N(20)).def().unique(),
            Self::IsPublic => ColumnType::Boolean.def(),
            Self::PasswordHash => ColumnType::String(StringLen::N(255)).def().null(),
            Self::ExpiresAt => ColumnType::DateTime.def().null(),
            Self::ViewCount => ColumnType::Integer.def(),
            Self::CreatedAt | Self::UpdatedAt => ColumnType::DateTime.def(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id | Self::AnalysisId => uuid_column::select_as(expr),
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id | Self::AnalysisId => uuid_column::save_as(val),
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
