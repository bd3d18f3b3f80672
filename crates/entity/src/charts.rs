//! `charts` (revision 004): what to draw from an analysis's results: a chart type and its
//! config (`x`, `y`, `series`, `title`, `stacked`).
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "charts"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub analysis_id: Id,
    pub name: String,
    pub chart_type: String,
    pub config: Json,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    AnalysisId,
    Name,
    ChartType,
    Config,
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
            Self::AnalysisId => ColumnType::Uuid.def(),
            Self::Name => ColumnType::String(StringLen::N(255)).def(),
            Self::ChartType => ColumnType::String(StringLen::N(20)).def(),
            Self::Config => ColumnType::Json.def(),
            Self::CreatedAt => ColumnType::DateTime.def(),
            Self::UpdatedAt => ColumnType::DateTime.def(),
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
    Embed,
}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        match self {
            Self::Analysis => Entity::belongs_to(super::analyses::Entity)
                .from(Column::AnalysisId)
                .to(super::analyses::Column::Id)
                .into(),
            Self::Embed => Entity::has_one(super::chart_embeds::Entity).into(),
        }
    }
}

impl Related<super::analyses::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Analysis.def()
    }
}

impl Related<super::chart_embeds::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Embed.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
