//! [`Id`]: the one id type of every table.
//!
//! It travels as the 36-character hyphenated text the Python era wrote. On SQLite that text
//! is what is stored, so the fixtures' `VARCHAR(36)` ids read and match as they are (a plain
//! `Uuid` would be bound as a 16-byte BLOB and never match them, sea-orm issue #2856). On
//! PostgreSQL the columns are native `uuid`, which refuses a text parameter; the id columns
//! therefore cast at the boundary through [`crate::uuid_column`].
//!
//! sea-orm 2 ships `Id` for the text half of this, but its decoder reports a NULL as
//! a type error, so `Option<Id>` cannot read a NULL `dataset_id`; this type decodes
//! NULL as `None` and is otherwise the same idea.
use std::fmt;
use std::str::FromStr;

use sea_orm::sea_query::{self, ArrayType, ValueType, ValueTypeErr};
use sea_orm::{ColIdx, ColumnType, DbErr, QueryResult, TryFromU64, TryGetError, TryGetable, Value};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub Uuid);

impl Id {
    pub fn new_v4() -> Self {
        Self(Uuid::new_v4())
    }

    /// A time-ordered id (UUIDv7, monotonic within a process): for rows listed in the
    /// order they were written, so that two rows of the same instant keep that order.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for Id {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Id)
    }
}

impl From<Uuid> for Id {
    fn from(value: Uuid) -> Self {
        Id(value)
    }
}

impl From<Id> for Uuid {
    fn from(value: Id) -> Self {
        value.0
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Uuid::deserialize(deserializer).map(Id)
    }
}

impl From<Id> for Value {
    fn from(value: Id) -> Self {
        Value::String(Some(value.0.hyphenated().to_string()))
    }
}

impl TryGetable for Id {
    fn try_get_by<I: ColIdx>(res: &QueryResult, index: I) -> Result<Self, TryGetError> {
        // The trait method keeps NULL as `TryGetError::Null`, which `Option<Id>` turns
        // into `None`.
        let text = <String as TryGetable>::try_get_by(res, index)?;
        Uuid::parse_str(&text).map(Id).map_err(|e| {
            TryGetError::DbErr(DbErr::Type(format!("id is not a UUID ({text:?}): {e}")))
        })
    }
}

impl ValueType for Id {
    fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
        match v {
            Value::String(Some(s)) => Uuid::parse_str(&s).map(Id).map_err(|_| ValueTypeErr),
            Value::Uuid(Some(u)) => Ok(Id(u)),
            _ => Err(ValueTypeErr),
        }
    }

    fn type_name() -> String {
        "Id".to_owned()
    }

    fn array_type() -> ArrayType {
        ArrayType::String
    }

    fn column_type() -> ColumnType {
        ColumnType::Uuid
    }
}

impl sea_query::Nullable for Id {
    fn null() -> Value {
        Value::String(None)
    }
}

impl TryFromU64 for Id {
    fn try_from_u64(_: u64) -> Result<Self, DbErr> {
        Err(DbErr::ConvertFromU64("Id"))
    }
}
