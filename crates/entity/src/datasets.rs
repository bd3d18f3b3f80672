//! `datasets`: uploaded files (or, later, data connections) and their computed shape.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "datasets"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub user_id: Id,
    pub name: String,
    /// Storage key of the file, relative to the dataset store (never a machine path).
    pub file_path: Option<String>,
    /// Reference to `data_connections.id`, a table that does not exist yet.
    pub connection_id: Option<Id>,
    pub row_count: Option<i32>,
    pub column_count: Option<i32>,
    pub size_bytes: Option<i64>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    UserId,
    Name,
    FilePath,
    ConnectionId,
    RowCount,
    ColumnCount,
    SizeBytes,
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
            Self::ConnectionId => ColumnType::Uuid.def().null(),
            Self::Name => ColumnType::String(StringLen::N(255)).def(),
            Self::FilePath => ColumnType::String(StringLen::N(500)).def().null(),
            Self::RowCount | Self::ColumnCount => ColumnType::Integer.def().null(),
            Self::SizeBytes => ColumnType::BigInteger.def().null(),
            Self::CreatedAt | Self::UpdatedAt => ColumnType::DateTime.def(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id | Self::UserId | Self::ConnectionId => uuid_column::select_as(expr),
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id | Self::UserId | Self::ConnectionId => uuid_column::save_as(val),
            _ => self.save_enum_as(val),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter)]
pub enum Relation {
    User,
    Analyses,
}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        match self {
            Self::User => Entity::belongs_to(super::users::Entity)
                .from(Column::UserId)
                .to(super::users::Column::Id)
                .into(),
            Self::Analyses => Entity::has_many(super::analyses::Entity).into(),
        }
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::analyses::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Analyses.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
