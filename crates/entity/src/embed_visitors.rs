//! `embed_visitors` (revision 004): the salted visitor hashes of the current day, so that a
//! visitor counts once per chart, day and referrer host. Deleted with the day's salt.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "embed_visitors"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub chart_id: Id,
    pub day: Date,
    pub referrer_host: String,
    pub visitor_hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    ChartId,
    Day,
    ReferrerHost,
    VisitorHash,
}

#[derive(Copy, Clone, Debug, EnumIter, DerivePrimaryKey)]
pub enum PrimaryKey {
    ChartId,
    Day,
    ReferrerHost,
    VisitorHash,
}

impl PrimaryKeyTrait for PrimaryKey {
    type ValueType = (Id, Date, String, String);

    fn auto_increment() -> bool {
        false
    }
}

impl ColumnTrait for Column {
    type EntityName = Entity;

    fn def(&self) -> ColumnDef {
        match self {
            Self::ChartId => ColumnType::Uuid.def(),
            Self::Day => ColumnType::Date.def(),
            Self::ReferrerHost => ColumnType::String(StringLen::N(255)).def(),
            Self::VisitorHash => ColumnType::String(StringLen::N(64)).def(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::ChartId => uuid_column::select_as(expr),
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::ChartId => uuid_column::save_as(val),
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
