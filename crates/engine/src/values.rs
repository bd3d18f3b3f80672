//! Arrow values in ANALYSES.md's JSON forms: integers as numbers (strings beyond ±2^53),
//! floats as numbers (NaN and infinities as null: JSON has no word for them), decimals as
//! exact strings, dates as `YYYY-MM-DD`, timestamps as RFC 3339 in UTC, and every type
//! without a form of its own as its text.
use chrono::{DateTime, SecondsFormat};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use domain::{DataColumn, DataType as ValueType};
use serde_json::Value;

/// Largest integer a JSON number carries exactly in every client (2^53).
const EXACT_IN_JSON: i128 = 1 << 53;

/// The port's type of an Arrow type.
pub(crate) fn value_type(data_type: &DataType) -> ValueType {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => ValueType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ValueType::Float,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => ValueType::Decimal,
        DataType::Boolean => ValueType::Boolean,
        DataType::Date32 | DataType::Date64 => ValueType::Date,
        DataType::Timestamp(..) => ValueType::Timestamp,
        DataType::Null => ValueType::Null,
        _ => ValueType::String,
    }
}

/// The columns of a schema.
pub(crate) fn columns_of(schema: &Schema) -> Vec<DataColumn> {
    schema
        .fields()
        .iter()
        .map(|field| DataColumn {
            name: field.name().clone(),
            kind: value_type(field.data_type()),
        })
        .collect()
}

/// Appends at most `room` rows of `batch` to `rows`.
pub(crate) fn append_rows(batch: &RecordBatch, room: usize, rows: &mut Vec<Vec<Value>>) {
    let take = batch.num_rows().min(room);
    if take == 0 {
        return;
    }
    let columns: Vec<Vec<Value>> = batch
        .columns()
        .iter()
        .map(|array| column_values(array, take))
        .collect();
    let start = rows.len();
    rows.extend((0..take).map(|_| Vec::with_capacity(columns.len())));
    for column in columns {
        for (row, value) in rows[start..].iter_mut().zip(column) {
            row.push(value);
        }
    }
}

/// The first `take` values of one column.
fn column_values(array: &ArrayRef, take: usize) -> Vec<Value> {
    let value_at = |i: usize, f: &dyn Fn(usize) -> Value| {
        if array.is_null(i) { Value::Null } else { f(i) }
    };
    macro_rules! integers {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            (0..take)
                .map(|i| value_at(i, &|i| integer(i128::from(a.value(i)))))
                .collect()
        }};
    }
    macro_rules! floats {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            (0..take)
                .map(|i| value_at(i, &|i| float(f64::from(a.value(i)))))
                .collect()
        }};
    }
    macro_rules! timestamps {
        ($t:ty, $unit:expr) => {{
            let a = array.as_primitive::<$t>();
            (0..take)
                .map(|i| value_at(i, &|i| timestamp_text(a.value(i), $unit)))
                .collect()
        }};
    }
    match array.data_type() {
        DataType::Int8 => integers!(Int8Type),
        DataType::Int16 => integers!(Int16Type),
        DataType::Int32 => integers!(Int32Type),
        DataType::Int64 => integers!(Int64Type),
        DataType::UInt8 => integers!(UInt8Type),
        DataType::UInt16 => integers!(UInt16Type),
        DataType::UInt32 => integers!(UInt32Type),
        DataType::UInt64 => integers!(UInt64Type),
        DataType::Float16 => floats!(Float16Type),
        DataType::Float32 => floats!(Float32Type),
        DataType::Float64 => floats!(Float64Type),
        DataType::Boolean => {
            let a = array.as_boolean();
            (0..take)
                .map(|i| value_at(i, &|i| Value::Bool(a.value(i))))
                .collect()
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            (0..take)
                .map(|i| value_at(i, &|i| date_text(i64::from(a.value(i)) * 86_400_000)))
                .collect()
        }
        DataType::Date64 => {
            let a = array.as_primitive::<Date64Type>();
            (0..take)
                .map(|i| value_at(i, &|i| date_text(a.value(i))))
                .collect()
        }
        // The stored number is UTC whatever the zone; the zone only changes display.
        DataType::Timestamp(TimeUnit::Second, _) => {
            timestamps!(TimestampSecondType, TimeUnit::Second)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            timestamps!(TimestampMillisecondType, TimeUnit::Millisecond)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            timestamps!(TimestampMicrosecondType, TimeUnit::Microsecond)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            timestamps!(TimestampNanosecondType, TimeUnit::Nanosecond)
        }
        DataType::Null => vec![Value::Null; take],
        _ => text_values(array, take),
    }
}

/// Decimals (exact) and every type without a JSON form of its own, as Arrow displays them.
fn text_values(array: &ArrayRef, take: usize) -> Vec<Value> {
    let options = FormatOptions::default();
    match ArrayFormatter::try_new(array.as_ref(), &options) {
        Ok(formatter) => (0..take)
            .map(|i| {
                if array.is_null(i) {
                    Value::Null
                } else {
                    Value::String(formatter.value(i).to_string())
                }
            })
            .collect(),
        Err(_) => vec![Value::Null; take],
    }
}

fn integer(value: i128) -> Value {
    if (-EXACT_IN_JSON..=EXACT_IN_JSON).contains(&value) {
        Value::from(value as i64)
    } else {
        Value::String(value.to_string())
    }
}

fn float(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

fn date_text(millis: i64) -> Value {
    DateTime::from_timestamp_millis(millis).map_or(Value::Null, |d| {
        Value::String(d.format("%Y-%m-%d").to_string())
    })
}

fn timestamp_text(value: i64, unit: TimeUnit) -> Value {
    let instant = match unit {
        TimeUnit::Second => DateTime::from_timestamp(value, 0),
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(value),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(value),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(value)),
    };
    instant.map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::Field;
    use serde_json::json;

    use super::*;

    #[test]
    fn values_take_their_json_forms() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new("s", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(1 << 60), None])),
                Arc::new(Float64Array::from(vec![Some(0.5), Some(f64::NAN), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), Some(-1), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                Arc::new(StringArray::from(vec![Some("a\"b"), Some(""), None])),
                Arc::new(Date32Array::from(vec![Some(20_423), Some(0), None])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(1_764_583_200_000_000),
                    Some(1),
                    None,
                ])),
            ],
        )
        .unwrap();
        let mut rows = Vec::new();
        append_rows(&batch, 10, &mut rows);
        assert_eq!(
            rows,
            vec![
                vec![
                    json!(1),
                    json!(0.5),
                    json!("123.45"),
                    json!("a\"b"),
                    json!("2025-12-01"),
                    json!("2025-12-01T10:00:00Z")
                ],
                vec![
                    json!("1152921504606846976"),
                    Value::Null,
                    json!("-0.01"),
                    json!(""),
                    json!("1970-01-01"),
                    json!("1970-01-01T00:00:00.000001Z")
                ],
                vec![Value::Null; 6],
            ]
        );
        let types: Vec<ValueType> = columns_of(&schema).iter().map(|c| c.kind).collect();
        assert_eq!(
            types,
            [
                ValueType::Integer,
                ValueType::Float,
                ValueType::Decimal,
                ValueType::String,
                ValueType::Date,
                ValueType::Timestamp
            ]
        );
        let mut capped = Vec::new();
        append_rows(&batch, 2, &mut capped);
        assert_eq!(capped.len(), 2);
    }
}
