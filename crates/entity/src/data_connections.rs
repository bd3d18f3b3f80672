//! `data_connections` (revision 008): an external PostgreSQL or MySQL database a user
//! imports from. `password_encrypted` is the password sealed by `domain::Keyring` (key id
//! prefix, AES-256-GCM, this row's id as associated data), never the password itself.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "data_connections"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub user_id: Id,
    pub name: String,
    /// `postgresql` or `mysql`.
    pub kind: String,
    pub host: String,
    pub port: i32,
    pub database_name: String,
    pub username: String,
    pub password_encrypted: Option<String>,
    pub sslmode: Option<String>,
    /// `untested`, `ok` or `failed`.
    pub status: String,
    pub last_tested_at: Option<DateTime>,
    pub last_error: Option<String>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    UserId,
    Name,
    Kind,
    Host,
    Port,
    DatabaseName,
    Username,
    PasswordEncrypted,
    Sslmode,
    Status,
    LastTestedAt,
    LastError,
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
            Self::Id | Self::UserId => ColumnType::Uuid.def(),
            Self::Name | Self::Host | Self::DatabaseName | Self::Username => {
                ColumnType::String(StringLen::N(255)).def()
            }
            Self::Kind => ColumnType::String(StringLen::N(20)).def(),
            Self::Port => ColumnType::Integer.def(),
            Self::PasswordEncrypted | Self::LastError => ColumnType::Text.def().null(),
            Self::Sslmode => ColumnType::String(StringLen::N(20)).def().null(),
            Self::Status => ColumnType::String(StringLen::N(10)).def(),
            Self::LastTestedAt => ColumnType::DateTime.def().null(),
            Self::CreatedAt | Self::UpdatedAt => ColumnType::DateTime.def(),
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
