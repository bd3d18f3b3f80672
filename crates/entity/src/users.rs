//! `users`: accounts and their subscription tier.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "users"
    }
}

/// Subscription tier, stored as the lower-case strings of the schema document.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(50))")]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[sea_orm(string_value = "free")]
    Free,
    #[sea_orm(string_value = "pro")]
    Pro,
    #[sea_orm(string_value = "team")]
    Team,
    #[sea_orm(string_value = "enterprise")]
    Enterprise,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub email: String,
    pub password_hash: String,
    pub full_name: Option<String>,
    pub tier: Tier,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub is_admin: bool,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    Email,
    PasswordHash,
    FullName,
    Tier,
    StripeCustomerId,
    StripeSubscriptionId,
    IsAdmin,
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
            Self::Email => ColumnType::String(StringLen::N(255)).def().unique(),
            Self::PasswordHash => ColumnType::String(StringLen::N(255)).def(),
            Self::FullName => ColumnType::String(StringLen::N(255)).def().null(),
            Self::Tier => ColumnType::String(StringLen::N(50)).def(),
            Self::StripeCustomerId => ColumnType::String(StringLen::N(255)).def().null(),
            Self::StripeSubscriptionId => ColumnType::String(StringLen::N(255)).def().null(),
            Self::IsAdmin => ColumnType::Boolean.def(),
            Self::CreatedAt | Self::UpdatedAt => ColumnType::DateTime.def(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id => uuid_column::select_as(expr),
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id => uuid_column::save_as(val),
            _ => self.save_enum_as(val),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter)]
pub enum Relation {
    UsageTracking,
    Datasets,
    Analyses,
}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        match self {
            Self::UsageTracking => Entity::has_many(super::usage_tracking::Entity).into(),
            Self::Datasets => Entity::has_many(super::datasets::Entity).into(),
            Self::Analyses => Entity::has_many(super::analyses::Entity).into(),
        }
    }
}

impl Related<super::usage_tracking::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UsageTracking.def()
    }
}

impl Related<super::datasets::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Datasets.def()
    }
}

impl Related<super::analyses::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Analyses.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
