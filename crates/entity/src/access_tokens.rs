//! `access_tokens` (revision 003): bearer tokens, stored only as a SHA-256 of the secret.
//!
//! A token belongs either to a user (a login session) or to a report (the right to view
//! one password-protected report after unlocking it); exactly one of the two is set.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "access_tokens"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    /// Hex SHA-256 of the token secret; the secret itself is never stored.
    pub token_hash: String,
    pub user_id: Option<Id>,
    pub report_id: Option<Id>,
    pub expires_at: DateTime,
    pub revoked_at: Option<DateTime>,
    pub created_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    TokenHash,
    UserId,
    ReportId,
    ExpiresAt,
    RevokedAt,
    CreatedAt,
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
            Self::UserId | Self::ReportId => ColumnType::Uuid.def().null(),
            Self::TokenHash => ColumnType::String(StringLen::N(64)).def().unique(),
            Self::ExpiresAt | Self::CreatedAt => ColumnType::DateTime.def(),
            Self::RevokedAt => ColumnType::DateTime.def().null(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id | Self::UserId | Self::ReportId => uuid_column::select_as(expr),
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id | Self::UserId | Self::ReportId => uuid_column::save_as(val),
            _ => self.save_enum_as(val),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter)]
pub enum Relation {
    User,
    Report,
}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        match self {
            Self::User => Entity::belongs_to(super::users::Entity)
                .from(Column::UserId)
                .to(super::users::Column::Id)
                .into(),
            Self::Report => Entity::belongs_to(super::reports::Entity)
                .from(Column::ReportId)
                .to(super::reports::Column::Id)
                .into(),
        }
    }
}

impl ActiveModelBehavior for ActiveModel {}
