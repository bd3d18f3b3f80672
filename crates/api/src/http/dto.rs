//! JSON shapes of requests and responses shared by the routes. Timestamps are RFC 3339 in
//! UTC with `Z`; no DTO carries a password hash.
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// RFC 3339 with `Z` (for values put into untyped JSON, like problem extensions).
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// For PATCH fields that may be set to null: absent → `None`, `null` → `Some(None)`,
/// a value → `Some(Some(v))`. Use with `#[serde(default, deserialize_with = ...)]`.
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// For PATCH fields that may not be null: absent → `None`, a value → `Some(v)`, and an
/// explicit `null` is a deserialization error (hence `422`), not "leave unchanged".
/// Use with `#[serde(default, deserialize_with = ...)]`.
pub fn non_null<'de, T, D>(de: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    // Through `Option` rather than `T` directly: serde_json reports `null` where an enum is
    // expected as a syntax error (a 400), but a `null` for a non-nullable field is a
    // validation error (422).
    match Option::<T>::deserialize(de)? {
        Some(value) => Ok(Some(value)),
        None => Err(serde::de::Error::custom(
            "invalid type: null, expected a value",
        )),
    }
}

pub use domain::{Status as AnalysisStatus, Tier};

/// Any JSON object (`config`, `results`). Declared with `additionalProperties: true`, so a
/// generated client (openapi-typescript: `Record<string, unknown>`) accepts any object;
/// a bare `type: object` would come out as `Record<string, never>`.
pub struct JsonObject;

impl utoipa::PartialSchema for JsonObject {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .description(Some("Any JSON object."))
            .into()
    }
}

impl ToSchema for JsonObject {}

/// A user, as every endpoint shows it (never the password hash).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub tier: Tier,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<domain::User> for UserDto {
    fn from(u: domain::User) -> Self {
        Self {
            id: u.id.0,
            email: u.email,
            full_name: u.full_name,
            tier: u.tier,
            is_admin: u.is_admin,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// A login's answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TokenDto {
    /// Present as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserDto,
}

/// One monthly counter and its limit (`null` = unlimited).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CounterDto {
    pub used: i64,
    pub limit: Option<i64>,
}

/// A user's usage for the current month.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UsageDto {
    /// `YYYY-MM`, UTC.
    #[schema(example = "2026-03")]
    pub month: String,
    pub tier: Tier,
    /// When the counters go back to zero (00:00 UTC on the 1st of next month).
    pub resets_at: DateTime<Utc>,
    pub datasets: CounterDto,
    pub ai_messages: CounterDto,
    pub reports: CounterDto,
    /// Standing, not monthly: distinct people with a pending or accepted invitation to
    /// any of your analyses.
    pub collaborators: CounterDto,
    /// Standing, not monthly: your data connections.
    pub data_connections: CounterDto,
}

impl From<domain::UsageReport> for UsageDto {
    fn from(u: domain::UsageReport) -> Self {
        let counter = |c: domain::Counter| CounterDto {
            used: c.used,
            limit: c.limit,
        };
        Self {
            month: u.month,
            tier: u.tier,
            resets_at: u.resets_at,
            datasets: counter(u.datasets),
            ai_messages: counter(u.ai_messages),
            reports: counter(u.reports),
            collaborators: counter(u.collaborators),
            data_connections: counter(u.data_connections),
        }
    }
}

/// A dataset.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DatasetDto {
    pub id: Uuid,
    pub name: String,
    /// Data rows, header excluded.
    pub row_count: Option<i32>,
    pub column_count: Option<i32>,
    pub size_bytes: Option<i64>,
    /// Names and types of the columns as queries see them (ANALYSES.md); `null` while the
    /// file cannot be read.
    pub columns: Option<Vec<domain::DataColumn>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Rows of a dataset or a result: typed columns, and rows of values in the columns' JSON
/// forms.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RowsDto {
    pub columns: Vec<domain::DataColumn>,
    /// Each row's values in the columns' order and JSON forms (any JSON value).
    pub rows: Vec<Vec<serde_json::Value>>,
}

impl From<domain::query::QueryOutput> for RowsDto {
    fn from(output: domain::query::QueryOutput) -> Self {
        Self {
            columns: output.columns,
            rows: output.rows,
        }
    }
}

impl From<domain::Dataset> for DatasetDto {
    fn from(d: domain::Dataset) -> Self {
        Self {
            id: d.id.0,
            name: d.name,
            row_count: d.row_count,
            column_count: d.column_count,
            size_bytes: d.size_bytes,
            columns: d.columns,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// An analysis.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AnalysisDto {
    pub id: Uuid,
    pub name: String,
    pub dataset_id: Option<Uuid>,
    #[schema(value_type = Option<crate::http::dto::JsonObject>)]
    pub config: Option<serde_json::Value>,
    #[schema(value_type = Option<crate::http::dto::JsonObject>)]
    pub results: Option<serde_json::Value>,
    pub status: AnalysisStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<domain::Analysis> for AnalysisDto {
    fn from(a: domain::Analysis) -> Self {
        Self {
            id: a.id.0,
            name: a.name,
            dataset_id: a.dataset_id.map(|id| id.0),
            config: a.config,
            results: a.results,
            status: a.status,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A report (never its password hash; `has_password` instead).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReportDto {
    pub id: Uuid,
    pub analysis_id: Uuid,
    pub short_code: String,
    /// `/r/{short_code}`.
    pub url: String,
    pub is_public: bool,
    pub has_password: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub view_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<domain::Report> for ReportDto {
    fn from(r: domain::Report) -> Self {
        Self {
            id: r.id.0,
            analysis_id: r.analysis_id.0,
            url: format!("/r/{}", r.short_code),
            short_code: r.short_code,
            is_public: r.is_public,
            has_password: r.has_password,
            expires_at: r.expires_at,
            view_count: r.view_count,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One page of a list, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PageDto<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> PageDto<T> {
    pub fn from_page<M>(page: domain::Page<M>) -> Self
    where
        T: From<M>,
    {
        Self {
            items: page.items.into_iter().map(T::from).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Patch {
        #[serde(default, deserialize_with = "double_option")]
        nullable: Option<Option<String>>,
        #[serde(default, deserialize_with = "non_null")]
        required: Option<String>,
    }

    #[test]
    fn patch_fields_tell_absent_from_null() {
        let p: Patch = serde_json::from_str("{}").unwrap();
        assert_eq!((p.nullable, p.required), (None, None));
        let p: Patch = serde_json::from_str(r#"{"nullable": null, "required": "x"}"#).unwrap();
        assert_eq!((p.nullable, p.required), (Some(None), Some("x".into())));
        assert!(serde_json::from_str::<Patch>(r#"{"required": null}"#).is_err());
    }

    #[test]
    fn timestamps_end_in_z() {
        let at = chrono::NaiveDateTime::parse_from_str("2026-11-25 10:00:00", "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc();
        assert_eq!(serde_json::to_value(at).unwrap(), "2026-11-25T10:00:00Z");
        assert_eq!(rfc3339(at), "2026-11-25T10:00:00Z");
    }
}
