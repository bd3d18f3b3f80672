//! `template_purchases` (revision 006): one row per buyer and template, written at once for
//! a free template and by Stripe's `checkout.session.completed` for a paid one (a Checkout
//! Session records one purchase at most).
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "template_purchases"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub template_id: Id,
    pub buyer_id: Id,
    /// The price paid, in the currency's smallest unit (0 for a free template).
    pub price_cents: i32,
    pub currency: String,
    pub stripe_session_id: Option<String>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    TemplateId,
    BuyerId,
    PriceCents,
    Currency,
    StripeSessionId,
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
            Self::Id | Self::TemplateId | Self::BuyerId => ColumnType::Uuid.def(),
            Self::PriceCents => ColumnType::Integer.def(),
            Self::Currency => ColumnType::String(StringLen::N(3)).def(),
            Self::StripeSessionId => ColumnType::String(StringLen::N(255)).def().null(),
            Self::CreatedAt | Self::UpdatedAt => ColumnType::DateTime.def(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id | Self::TemplateId | Self::BuyerId => uuid_column::select_as(expr),
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id | Self::TemplateId | Self::BuyerId => uuid_column::save_as(val),
            _ => self.save_enum_as(val),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter)]
pub enum Relation {
    Template,
    Buyer,
}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        match self {
            Self::Template => Entity::belongs_to(super::templates::Entity)
                .from(Column::TemplateId)
                .to(super::templates::Column::Id)
                .into(),
            Self::Buyer => Entity::belongs_to(super::users::Entity)
                .from(Column::BuyerId)
                .to(super::users::Column::Id)
                .into(),
        }
    }
}

impl Related<super::templates::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Template.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
