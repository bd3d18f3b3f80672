//! `templates` (revision 006): a reusable copy of an analysis (its `config`, its charts and
//! the dataset columns they need), drafted by its author, published to the gallery free
//! or at a price. The gallery's stats (`rating_count`, `rating_sum`, `purchase_count`) are
//! kept on the row.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "templates"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub author_id: Id,
    pub source_analysis_id: Option<Id>,
    pub name: String,
    pub description: Option<String>,
    pub config: Option<Json>,
    /// `[{name, chart_type, config}]`, the charts copied from the analysis.
    pub charts: Json,
    /// `[{name, type}]`, the dataset columns the query and the charts name.
    pub inputs: Json,
    pub price_cents: i32,
    pub currency: String,
    /// `draft` or `published`.
    pub status: String,
    pub published_at: Option<DateTime>,
    pub rating_count: i32,
    pub rating_sum: i32,
    pub purchase_count: i32,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    AuthorId,
    SourceAnalysisId,
    Name,
    Description,
    Config,
    Charts,
    Inputs,
    PriceCents,
    Currency,
    Status,
    PublishedAt,
    RatingCount,
    RatingSum,
    PurchaseCount,
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
            Self::Id | Self::AuthorId => ColumnType::Uuid.def(),
            Self::SourceAnalysisId => ColumnType::Uuid.def().null(),
            Self::Name => ColumnType::String(StringLen::N(255)).def(),
            Self::Description => ColumnType::Text.def().null(),
            Self::Config => ColumnType::Json.def().null(),
            Self::Charts | Self::Inputs => ColumnType::Json.def(),
            Self::PriceCents | Self::RatingCount | Self::RatingSum | Self::PurchaseCount => {
                ColumnType::Integer.def()
            }
            Self::Currency => ColumnType::String(StringLen::N(3)).def(),
            Self::Status => ColumnType::String(StringLen::N(10)).def(),
            Self::PublishedAt => ColumnType::DateTime.def().null(),
            Self::CreatedAt | Self::UpdatedAt => ColumnType::DateTime.def(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id | Self::AuthorId | Self::SourceAnalysisId => uuid_column::select_as(expr),
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id | Self::AuthorId | Self::SourceAnalysisId => uuid_column::save_as(val),
            _ => self.save_enum_as(val),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter)]
pub enum Relation {
    Author,
    Purchases,
    Ratings,
}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        match self {
            Self::Author => Entity::belongs_to(super::users::Entity)
                .from(Column::AuthorId)
                .to(super::users::Column::Id)
                .into(),
            Self::Purchases => Entity::has_many(super::template_purchases::Entity).into(),
            Self::Ratings => Entity::has_many(super::template_ratings::Entity).into(),
        }
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Author.def()
    }
}

impl Related<super::template_purchases::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Purchases.def()
    }
}

impl Related<super::template_ratings::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Ratings.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
