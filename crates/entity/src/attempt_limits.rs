//! `attempt_limits` (revision 003): failed-attempt windows for logins and report unlocks.
//!
//! One row per `(scope, subject, client)`: `scope` is `login` or `unlock`, `subject` the
//! account email or the report id, `client` the caller's address. The count lives in the
//! database so that every `iops serve` process sees the same window.
use sea_orm::entity::prelude::*;

#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "attempt_limits"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    pub scope: String,
    pub subject: String,
    pub client: String,
    pub window_start: DateTime,
    pub failures: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Scope,
    Subject,
    Client,
    WindowStart,
    Failures,
}

#[derive(Copy, Clone, Debug, EnumIter, DerivePrimaryKey)]
pub enum PrimaryKey {
    Scope,
    Subject,
    Client,
}

impl PrimaryKeyTrait for PrimaryKey {
    type ValueType = (String, String, String);

    fn auto_increment() -> bool {
        false
    }
}

impl ColumnTrait for Column {
    type EntityName = Entity;

    fn def(&self) -> ColumnDef {
        match self {
            Self::Scope => ColumnType::String(StringLen::N(16)).def(),
            Self::Subject => ColumnType::String(StringLen::N(255)).def(),
            Self::Client => ColumnType::String(StringLen::N(64)).def(),
            Self::WindowStart => ColumnType::DateTime.def(),
            Self::Failures => ColumnType::Integer.def(),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
