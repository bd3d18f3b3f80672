//! Reading an analysis's results into a [`Table`], and the value helpers the charts share.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::{Column, ColumnType, Table};

impl ColumnType {
    /// The type named `name` (case-insensitive, common SQL spellings accepted); any name it
    /// does not know is [`ColumnType::String`], so unknown types still draw as text.
    pub fn from_name(name: &str) -> ColumnType {
        match name.trim().to_ascii_lowercase().as_str() {
            "integer" | "int" | "bigint" | "smallint" | "int2" | "int4" | "int8" | "int32"
            | "int64" | "long" => ColumnType::Integer,
            "float" | "double" | "real" | "float4" | "float8" | "float32" | "float64"
            | "number" | "double precision" => ColumnType::Float,
            "decimal" | "numeric" => ColumnType::Decimal,
            "boolean" | "bool" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "timestamp" | "timestamptz" | "datetime" | "time" => ColumnType::Timestamp,
            "null" => ColumnType::Null,
            _ => ColumnType::String,
        }
    }

    /// Whether values of this type are numbers (`integer`, `float`, `decimal`).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            ColumnType::Integer | ColumnType::Float | ColumnType::Decimal
        )
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Lenient: any string is accepted, unknown names read as `String`.
        let name = String::deserialize(deserializer)?;
        Ok(ColumnType::from_name(&name))
    }
}

impl Table {
    /// Reads an analysis's `results` JSON: `{"columns": [...], "rows": [[...], ...], ...other keys ignored}`.
    ///
    /// `columns` items are either `{"name": "region", "type": "string"}` or plain strings "region"
    /// (type then inferred from the values). Returns None when the shape is not that (no columns array,
    /// rows not arrays of arrays...). Rows shorter/longer than columns are padded with null / truncated.
    pub fn from_results(results: &Value) -> Option<Table> {
        let obj = results.as_object()?;
        let raw_columns = obj.get("columns")?.as_array()?;
        let mut names = Vec::with_capacity(raw_columns.len());
        let mut declared = Vec::with_capacity(raw_columns.len());
        for c in raw_columns {
            match c {
                Value::String(s) => {
                    names.push(s.clone());
                    declared.push(None);
                }
                Value::Object(o) => {
                    let name = match o.get("name")? {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    names.push(name);
                    declared.push(
                        o.get("type")
                            .and_then(Value::as_str)
                            .map(ColumnType::from_name),
                    );
                }
                _ => return None,
            }
        }
        let rows = match obj.get("rows") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rows)) => {
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let mut row = r.as_array()?.clone();
                    row.resize(names.len(), Value::Null);
                    out.push(row);
                }
                out
            }
            Some(_) => return None,
        };
        let columns = names
            .into_iter()
            .zip(declared)
            .enumerate()
            .map(|(i, (name, kind))| Column {
                kind: kind.unwrap_or_else(|| infer_type(rows.iter().map(|r| &r[i]))),
                name,
            })
            .collect();
        Some(Table { columns, rows })
    }

    /// The names of the columns, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// A table holding only the named columns (in the given order, de-duplicated), all rows: used to
    /// freeze exactly what a chart draws. Names that are not columns of this table are left out.
    pub fn project(&self, names: &[&str]) -> Table {
        let mut seen = HashSet::new();
        let idx: Vec<usize> = names
            .iter()
            .filter(|n| seen.insert(**n))
            .filter_map(|n| self.index_of(n))
            .collect();
        Table {
            columns: idx.iter().map(|&i| self.columns[i].clone()).collect(),
            rows: self
                .rows
                .iter()
                .map(|r| {
                    idx.iter()
                        .map(|&i| r.get(i).cloned().unwrap_or(Value::Null))
                        .collect()
                })
                .collect(),
        }
    }

    /// The position of the first column called `name`.
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The value at (row, column), null when the row is short.
    pub(crate) fn cell(&self, row: usize, col: usize) -> &Value {
        self.rows
            .get(row)
            .and_then(|r| r.get(col))
            .unwrap_or(&Value::Null)
    }

    /// Whether a column is drawn as numbers: by its type, or (untyped) by its values.
    pub(crate) fn is_numeric_column(&self, col: usize) -> bool {
        let kind = &self.columns[col].kind;
        kind.is_numeric()
            || (*kind == ColumnType::Null && self.all_values(col, |v| num(v).is_some()))
    }

    /// Whether a column is a time axis: dates/timestamps by type, or strings that all parse as such.
    pub(crate) fn is_time_column(&self, col: usize) -> bool {
        match self.columns[col].kind {
            ColumnType::Date | ColumnType::Timestamp => true,
            ColumnType::String | ColumnType::Null => self.all_values(col, |v| time(v).is_some()),
            _ => false,
        }
    }

    /// True when at least one value is not null and every non-null value passes `f`.
    fn all_values(&self, col: usize, f: impl Fn(&Value) -> bool) -> bool {
        let mut any = false;
        for r in 0..self.rows.len() {
            let v = self.cell(r, col);
            if v.is_null() {
                continue;
            }
            if !f(v) {
                return false;
            }
            any = true;
        }
        any
    }
}

/// Infers a column's type from its values (for columns given as plain names).
fn infer_type<'a>(values: impl Iterator<Item = &'a Value>) -> ColumnType {
    let (mut any, mut all_bool, mut all_int_num, mut all_num, mut all_numeric) =
        (false, true, true, true, true);
    let (mut all_date, mut all_time, mut any_string) = (true, true, false);
    for v in values {
        if v.is_null() {
            continue;
        }
        any = true;
        all_bool &= v.is_boolean();
        all_num &= v.is_number();
        all_numeric &= num(v).is_some() || is_big_integer(v);
        all_int_num &= v.is_i64() || v.is_u64() || is_integer_string(v);
        any_string |= v.is_string();
        all_date &= v.as_str().is_some_and(|s| parse_date(s).is_some());
        all_time &= v.is_string() && time(v).is_some();
    }
    if !any {
        ColumnType::Null
    } else if all_bool {
        ColumnType::Boolean
    } else if all_numeric && all_int_num {
        ColumnType::Integer
    } else if all_num {
        ColumnType::Float
    } else if all_numeric {
        ColumnType::Decimal
    } else if all_date && any_string {
        ColumnType::Date
    } else if all_time {
        ColumnType::Timestamp
    } else {
        ColumnType::String
    }
}

fn is_integer_string(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        let t = s.trim();
        let digits = t.strip_prefix('-').unwrap_or(t);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn is_big_integer(v: &Value) -> bool {
    is_integer_string(v)
}

/// A value as a drawable number: JSON numbers and numeric strings (decimals, big integers);
/// anything else, NaN, infinities and absurd magnitudes are missing.
pub(crate) fn num(v: &Value) -> Option<f64> {
    let x = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => {
            let t = s.trim();
            let ok = !t.is_empty()
                && t.bytes().any(|b| b.is_ascii_digit())
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
            if !ok {
                return None;
            }
            t.parse::<f64>().ok()?
        }
        _ => return None,
    };
    (x.is_finite() && x.abs() <= 1e300).then_some(x)
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// A date or timestamp string as seconds since the Unix epoch (UTC).
pub(crate) fn time(v: &Value) -> Option<f64> {
    let s = v.as_str()?.trim();
    if s.len() < 10 || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let secs = if let Some(d) = parse_date(s) {
        d.and_hms_opt(0, 0, 0)?.and_utc().timestamp()
    } else if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.timestamp()
    } else {
        [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?
        .and_utc()
        .timestamp()
    };
    Some(secs as f64)
}

/// A value as category text.
pub(crate) fn label(v: &Value) -> String {
    match v {
        Value::Null => "(null)".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}
