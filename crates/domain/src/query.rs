//! The query-engine port: what the domain asks of a query engine, and the two query forms a
//! user writes in an analysis's `config.query` (ANALYSES.md).
//!
//! The domain decides *what* may be read (which datasets, under which aliases) and stores
//! the outcome; an engine (the `engine` crate, Apache DataFusion) decides *how*. The port is
//! a trait so that this crate, and everything that depends only on it, never compiles the
//! engine: the `iops` binary wires the two together.
use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{DataColumn, Format};

/// Most rows a structured query's `limit` may ask for.
pub const MAX_STRUCTURED_LIMIT: u32 = 10_000;
/// Most rows a preview may ask for.
pub const MAX_PREVIEW_ROWS: u32 = 1_000;
/// Rows a preview shows when the caller does not say.
pub const DEFAULT_PREVIEW_ROWS: u32 = 100;
/// The alias of an analysis's own dataset.
pub const DATA_ALIAS: &str = "data";
/// How much of a dataset file's start decides its columns: an engine reads them from at
/// most this many of its first bytes (and from at most its first
/// [`COLUMNS_SAMPLE_RECORDS`] records).
pub const COLUMNS_SAMPLE_BYTES: usize = 8 << 20;
/// The most records of a dataset file's start its columns are inferred from.
pub const COLUMNS_SAMPLE_RECORDS: usize = 10_000;

/// A query, as `config.query` holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// Read-only SQL in DataFusion's dialect.
    Sql(String),
    /// The structured form, compiled by the engine to a plan (never to SQL text).
    Structured(StructuredQuery),
}

/// The structured form: filters, then grouping and aggregates, then order and limit, all
/// over the table `data`. Without `group_by` and `aggregates` it selects every column.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StructuredQuery {
    /// Conditions every row must meet (all of them).
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Columns to group by.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Aggregates computed per group (or over all rows when there is no group).
    #[serde(default)]
    pub aggregates: Vec<Aggregate>,
    /// Sort keys, in order: a group column or an aggregate's name when aggregating.
    #[serde(default)]
    pub order_by: Vec<OrderBy>,
    /// Most rows returned, 1 to [`MAX_STRUCTURED_LIMIT`].
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One condition of a structured query.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// The column tested.
    pub column: String,
    /// The comparison.
    pub op: FilterOp,
    /// The value compared with: a scalar, a list for `in`/`not_in`, absent for the null
    /// tests.
    #[serde(default)]
    pub value: Value,
}

/// Comparisons of a [`Filter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum FilterOp {
    /// Equal.
    #[serde(rename = "=")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    NotEq,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less than or equal.
    #[serde(rename = "<=")]
    LtEq,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater than or equal.
    #[serde(rename = ">=")]
    GtEq,
    /// One of a list.
    #[serde(rename = "in")]
    In,
    /// None of a list.
    #[serde(rename = "not_in")]
    NotIn,
    /// The column is null.
    #[serde(rename = "is_null")]
    IsNull,
    /// The column is not null.
    #[serde(rename = "not_null")]
    NotNull,
    /// The text contains the value (case-sensitive).
    #[serde(rename = "contains")]
    Contains,
}

/// One aggregate of a structured query.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// The function.
    pub op: AggregateOp,
    /// Its argument; `count` without a column counts rows.
    #[serde(default)]
    pub column: Option<String>,
    /// The result column's name; defaults to `op` or `op_column`.
    #[serde(default, rename = "as")]
    pub alias: Option<String>,
}

impl Aggregate {
    /// The result column's name.
    pub fn name(&self) -> String {
        match (&self.alias, &self.column) {
            (Some(alias), _) => alias.clone(),
            (None, Some(column)) => format!("{}_{column}", self.op.as_str()),
            (None, None) => self.op.as_str().to_owned(),
        }
    }
}

/// Aggregate functions of a structured query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateOp {
    /// Rows (or non-null values of the column).
    Count,
    /// Distinct non-null values.
    CountDistinct,
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Least value.
    Min,
    /// Greatest value.
    Max,
    /// Median.
    Median,
}

impl AggregateOp {
    /// The name the structured form uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateOp::Count => "count",
            AggregateOp::CountDistinct => "count_distinct",
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Median => "median",
        }
    }
}

/// One sort key.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrderBy {
    /// A column (or an aggregate's name).
    pub column: String,
    /// Descending.
    #[serde(default)]
    pub desc: bool,
}

/// The SQL form as `config.query` holds it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlForm {
    sql: String,
    #[serde(default)]
    tables: BTreeMap<String, crate::Id>,
}

/// `config.query` read: the query, and the datasets it names by alias besides `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryRequest {
    /// The query.
    pub query: Query,
    /// Aliases of further datasets (`tables`), each to be checked as readable by the caller.
    pub tables: BTreeMap<String, crate::Id>,
}

impl QueryRequest {
    /// Reads `config.query`. `Ok(None)` when there is none; a query that is there but
    /// malformed is a [`QueryFailure`] with [`FailureReason::Invalid`] (it is stored as the
    /// run's outcome, so the user sees why).
    pub fn from_config(config: Option<&Value>) -> Result<Option<QueryRequest>, QueryFailure> {
        let Some(query) = config.and_then(|c| c.get("query")) else {
            return Ok(None);
        };
        if query.is_null() {
            return Ok(None);
        }
        let invalid = |message: String| QueryFailure::new(FailureReason::Invalid, message);
        let Some(object) = query.as_object() else {
            return Err(invalid("config.query must be an object".to_owned()));
        };
        let request = if object.contains_key("sql") {
            let form: SqlForm = serde_json::from_value(query.clone())
                .map_err(|e| invalid(format!("config.query: {e}")))?;
            if form.sql.trim().is_empty() {
                return Err(invalid("config.query.sql is empty".to_owned()));
            }
            QueryRequest {
                query: Query::Sql(form.sql),
                tables: form.tables,
            }
        } else {
            let form: StructuredQuery = serde_json::from_value(query.clone())
                .map_err(|e| invalid(format!("config.query: {e}")))?;
            form.check().map_err(invalid)?;
            QueryRequest {
                query: Query::Structured(form),
                tables: BTreeMap::new(),
            }
        };
        for alias in request.tables.keys() {
            if !valid_alias(alias) {
                return Err(invalid(format!(
                    "config.query.tables: '{alias}' is not a table alias ([a-z_][a-z0-9_]{{0,62}})"
                )));
            }
            if alias == DATA_ALIAS {
                return Err(invalid(
                    "config.query.tables: 'data' is the analysis's own dataset".to_owned(),
                ));
            }
        }
        Ok(Some(request))
    }
}

impl StructuredQuery {
    /// The rules the form's shape alone decides: the limit's range, lists where lists
    /// belong, order keys that exist after grouping, names not given twice.
    pub fn check(&self) -> Result<(), String> {
        if let Some(limit) = self.limit
            && !(1..=MAX_STRUCTURED_LIMIT).contains(&limit)
        {
            return Err(format!("limit must be 1 to {MAX_STRUCTURED_LIMIT}"));
        }
        for filter in &self.filters {
            match filter.op {
                FilterOp::In | FilterOp::NotIn => {
                    if !filter.value.is_array() {
                        return Err(format!(
                            "filter on '{}': '{}' needs a list value",
                            filter.column,
                            op_name(filter.op)
                        ));
                    }
                }
                FilterOp::IsNull | FilterOp::NotNull => {}
                _ => {
                    if !(filter.value.is_string()
                        || filter.value.is_number()
                        || filter.value.is_boolean())
                    {
                        return Err(format!(
                            "filter on '{}': '{}' needs a string, number or boolean value",
                            filter.column,
                            op_name(filter.op)
                        ));
                    }
                }
            }
        }
        for aggregate in &self.aggregates {
            if aggregate.column.is_none() && aggregate.op != AggregateOp::Count {
                return Err(format!(
                    "aggregate '{}' needs a column",
                    aggregate.op.as_str()
                ));
            }
        }
        let aggregating = !self.group_by.is_empty() || !self.aggregates.is_empty();
        if aggregating {
            let mut names: Vec<String> = self.group_by.clone();
            for aggregate in &self.aggregates {
                let name = aggregate.name();
                if names.contains(&name) {
                    return Err(format!("the result column '{name}' is named twice"));
                }
                names.push(name);
            }
            for key in &self.order_by {
                if !names.contains(&key.column) {
                    return Err(format!(
                        "order_by '{}' is neither a group_by column nor an aggregate's name",
                        key.column
                    ));
                }
            }
        }
        Ok(())
    }
}

fn op_name(op: FilterOp) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `[a-z_][a-z0-9_]{0,62}`.
fn valid_alias(alias: &str) -> bool {
    let mut chars = alias.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && alias.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// A dataset file an engine may read, under the name the query uses for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSource {
    /// The table name in the query (`data`, or an alias of `tables`).
    pub alias: String,
    /// The file's key in the dataset store.
    pub key: String,
    /// How the file is written.
    pub format: Format,
    /// The key of the file's columnar copy ([`crate::storage::columnar_key`]) when one is
    /// known to exist: read instead of the file (same columns, same rows).
    pub columnar: Option<String>,
}

/// What a query gave: typed columns and rows of JSON values (in the types' JSON forms).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryOutput {
    /// The columns, in order.
    pub columns: Vec<DataColumn>,
    /// At most the engine's row cap.
    pub rows: Vec<Vec<Value>>,
    /// Whether more rows existed than were kept.
    pub truncated: bool,
}

/// Why a query failed, as ANALYSES.md names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// Syntax, an unknown column or table, a type error, a malformed structured query.
    Invalid,
    /// Not a read-only query, or a way to reach something other than the named datasets.
    Refused,
    /// The time limit.
    Timeout,
    /// The memory limit, after spilling.
    Memory,
    /// The data: a missing or unreadable dataset file, a value that does not parse.
    Data,
}

impl FailureReason {
    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Invalid => "invalid",
            FailureReason::Refused => "refused",
            FailureReason::Timeout => "timeout",
            FailureReason::Memory => "memory",
            FailureReason::Data => "data",
        }
    }
}

/// A failed query: the reason and a message a user can act on (never a path or a stack).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryFailure {
    /// Which kind of failure.
    pub reason: FailureReason,
    /// What went wrong.
    pub message: String,
}

impl QueryFailure {
    /// A failure of `reason` saying `message`.
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What the domain needs from a query engine. Implementations run queries within their own
/// limits (time, memory, rows, queries at once) without blocking the caller's thread, and
/// stop a query whose future is dropped.
#[async_trait]
pub trait QueryEngine: Send + Sync {
    /// Runs `query` with `tables` as the only tables it can name.
    async fn run(&self, query: &Query, tables: &[TableSource])
    -> Result<QueryOutput, QueryFailure>;

    /// The columns of one dataset file, as queries see them.
    async fn columns(&self, table: &TableSource) -> Result<Vec<DataColumn>, QueryFailure>;

    /// The columns [`QueryEngine::columns`] finds in a file of `format` whose first bytes
    /// are `start`: its first [`COLUMNS_SAMPLE_BYTES`], or the whole file when it is no
    /// longer (`whole`). An upload's columns are read this way while the rest of it still
    /// arrives.
    async fn columns_of_start(
        &self,
        format: Format,
        start: Bytes,
        whole: bool,
    ) -> Result<Vec<DataColumn>, QueryFailure>;

    /// Writes a columnar copy of `table`'s file (its columns and rows, in the engine's
    /// columnar format) to the local file `out` (staged: it exists and is empty), for later
    /// queries to read instead. Fails as a query would when the file cannot be read whole;
    /// `out` is then incomplete.
    async fn write_columnar(&self, table: &TableSource, out: &Path) -> Result<(), QueryFailure>;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(query: Value) -> Result<Option<QueryRequest>, QueryFailure> {
        QueryRequest::from_config(Some(&json!({ "query": query })))
    }

    #[test]
    fn both_forms_are_read() {
        let id = crate::Id(uuid::Uuid::new_v4());
        let sql = read(json!({"sql": "SELECT 1", "tables": {"t2": id.to_string()}}))
            .unwrap()
            .unwrap();
        assert_eq!(sql.query, Query::Sql("SELECT 1".into()));
        assert_eq!(sql.tables.get("t2"), Some(&id));
        let structured = read(json!({
            "filters": [{"column": "year", "op": ">=", "value": 2024}],
            "group_by": ["region"],
            "aggregates": [{"op": "sum", "column": "revenue", "as": "revenue"}, {"op": "count"}],
            "order_by": [{"column": "revenue", "desc": true}],
            "limit": 100
        }))
        .unwrap()
        .unwrap();
        let Query::Structured(form) = structured.query else {
            panic!("not structured")
        };
        assert_eq!(form.aggregates[1].name(), "count");
        assert_eq!(form.filters[0].op, FilterOp::GtEq);
    }

    #[test]
    fn no_query_is_none_and_malformed_ones_are_invalid() {
        assert_eq!(QueryRequest::from_config(None).unwrap(), None);
        assert_eq!(
            QueryRequest::from_config(Some(&json!({"x": 1}))).unwrap(),
            None
        );
        for bad in [
            json!("SELECT 1"),
            json!({"sql": "  "}),
            json!({"sql": "SELECT 1", "extra": 1}),
            json!({"sql": "SELECT 1", "tables": {"Bad": "6f1c0000-0000-0000-0000-000000000000"}}),
            json!({"sql": "SELECT 1", "tables": {"data": "6f1c0000-0000-0000-0000-000000000000"}}),
            json!({"sql": "SELECT 1", "tables": {"t": "not-a-uuid"}}),
            json!({"limit": 0}),
            json!({"limit": 10_001}),
            json!({"filters": [{"column": "a", "op": "like", "value": 1}]}),
            json!({"filters": [{"column": "a", "op": "in", "value": 1}]}),
            json!({"filters": [{"column": "a", "op": "=", "value": [1]}]}),
            json!({"aggregates": [{"op": "sum"}]}),
            json!({"group_by": ["a"], "order_by": [{"column": "b"}]}),
            json!({"group_by": ["a"], "aggregates": [{"op": "max", "column": "b", "as": "a"}]}),
            json!({"select": ["a"]}),
        ] {
            let failure = read(bad.clone()).expect_err(&bad.to_string());
            assert_eq!(failure.reason, FailureReason::Invalid, "{bad}");
        }
    }

    #[test]
    fn aliases_follow_the_pattern() {
        assert!(valid_alias("_t9"));
        assert!(valid_alias(&"a".repeat(63)));
        assert!(!valid_alias(&"a".repeat(64)));
        assert!(!valid_alias("9a"));
        assert!(!valid_alias("a-b"));
        assert!(!valid_alias(""));
    }
}
