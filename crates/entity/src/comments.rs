//! `comments` (revision 007): comments on a chart, with one level of replies. A deleted
//! comment keeps its row (`deleted`, body cleared) so that its replies keep their place.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "comments"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub chart_id: Id,
    pub parent_id: Option<Id>,
    pub author_id: Option<Id>,
    pub body: String,
    pub resolved: bool,
    pub resolved_at: Option<DateTime>,
    pub resolved_by: Option<Id>,
    pub deleted: bool,
    pub edited_at: Option<DateTime>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    ChartId,
    ParentId,
    AuthorId,
    Body,
    Resolved,
    ResolvedAt,
    ResolvedBy,
    Deleted,
    EditedAt,
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
            Self::Id | Self::ChartId => ColumnType::Uuid.def(),
            Self::ParentId | Self::AuthorId | Self::ResolvedBy => ColumnType::Uuid.def().null(),
            Self::Body => ColumnType::Text.def(),
            Self::Resolved | Self::Deleted => ColumnType::Boolean.def(),
            Self::ResolvedAt | Self::EditedAt => ColumnType::DateTime.def().null(),
            Self::CreatedAt | Self::UpdatedAt => ColumnType::DateTime.def(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id | Self::ChartId | Self::ParentId | Self::AuthorId | Self::ResolvedBy => {
                uuid_column::select_as(expr)
            }
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id | Self::ChartId | Self::ParentId | Self::AuthorId | Self::ResolvedBy => {
                uuid_column::save_as(val)
            }
            _ => self.save_enum_as(val),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter)]
pub enum Relation {
    Chart,
}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        match self {
            Self::Chart => Entity::belongs_to(super::charts::Entity)
                .from(Column::ChartId)
                .to(super::charts::Column::Id)
                .into(),
        }
    }
}

impl Related<super::charts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Chart.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
