//! `activity_log` (revision 007): who did what, one row per change, written in the change's
//! own transaction. Append-only (the schema refuses updates). `owner_id` is whose feed the row
//! is in (the owner of the analysis it concerns, or the actor's own account); `analysis_id`
//! lets collaborators see the rows of the analyses shared with them.
use sea_orm::entity::prelude::*;

use crate::{Id, uuid_column};

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "activity_log"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub id: Id,
    pub owner_id: Id,
    pub analysis_id: Option<Id>,
    pub actor_id: Option<Id>,
    pub actor_type: String,
    pub verb: String,
    pub object_type: String,
    pub object_id: Id,
    pub metadata: Json,
    pub request_id: Option<String>,
    pub created_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    OwnerId,
    AnalysisId,
    ActorId,
    ActorType,
    Verb,
    ObjectType,
    ObjectId,
    Metadata,
    RequestId,
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
            Self::Id | Self::OwnerId | Self::ObjectId => ColumnType::Uuid.def(),
            Self::AnalysisId | Self::ActorId => ColumnType::Uuid.def().null(),
            Self::ActorType => ColumnType::String(StringLen::N(20)).def(),
            Self::Verb => ColumnType::String(StringLen::N(64)).def(),
            Self::ObjectType => ColumnType::String(StringLen::N(32)).def(),
            Self::Metadata => ColumnType::Json.def(),
            Self::RequestId => ColumnType::String(StringLen::N(128)).def().null(),
            Self::CreatedAt => ColumnType::DateTime.def(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::Id | Self::OwnerId | Self::ObjectId | Self::AnalysisId | Self::ActorId => {
                uuid_column::select_as(expr)
            }
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::Id | Self::OwnerId | Self::ObjectId | Self::AnalysisId | Self::ActorId => {
                uuid_column::save_as(val)
            }
            _ => self.save_enum_as(val),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter)]
pub enum Relation {}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        unreachable!("activity_log rows are read on their own")
    }
}

impl ActiveModelBehavior for ActiveModel {}
