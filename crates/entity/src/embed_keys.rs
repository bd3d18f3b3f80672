//! `embed_keys` (revision 004): a user's HS256 keys for signed embeds. The secret is kept
//! encrypted (AES-256-GCM, see the domain's `secrets` module): checking a signature needs it
//! back, so it cannot be hashed.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "embed_keys"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub user_id: Id,
    pub kid: String,
    pub secret_encrypted: String,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    UserId,
    Kid,
    SecretEncrypted,
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
            Self::UserId => ColumnType::Uuid.def(),
            Self::Kid => ColumnType::String(StringLen::N(32)).def().unique(),
            Self::SecretEncrypted => ColumnType::String(StringLen::N(255)).def(),
            Self::CreatedAt => ColumnType::DateTime.def(),
            Self::UpdatedAt => ColumnType::DateTime.def(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id | Self::UserId => uuid_column::select_as(expr),
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id | Self::UserId => uuid_column::save_as(val),
            _ => self.save_enum_as(val),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter)]
pub enum Relation {
    User,
}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        match self {
            Self::User => Entity::belongs_to(super::users::Entity)
                .from(Column::UserId)
                .to(super::users::Column::Id)
                .into(),
        }
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
