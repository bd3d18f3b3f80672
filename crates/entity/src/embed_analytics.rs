//! `embed_analytics` (revision 004): embed views and unique visitors per chart, UTC day and
//! referrer host (`''` when none). No address, user agent or referrer URL is kept.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "embed_analytics"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub chart_id: Id,
    pub day: Date,
    pub referrer_host: String,
    pub views: i32,
    pub unique_visitors: i32,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    ChartId,
    Day,
    ReferrerHost,
    Views,
    UniqueVisitors,
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
            Self::Id => ColumnType::Uuid.def(),
            Self::ChartId => ColumnType::Uuid.def(),
            Self::Day => ColumnType::Date.def(),
            Self::ReferrerHost => ColumnType::String(StringLen::N(255)).def(),
            Self::Views => ColumnType::Integer.def(),
            Self::UniqueVisitors => ColumnType::Integer.def(),
            Self::CreatedAt => ColumnType::DateTime.def(),
            Self::UpdatedAt => ColumnType::DateTime.def(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id | Self::ChartId => uuid_column::select_as(expr),
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id | Self::ChartId => uuid_column::save_as(val),
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
