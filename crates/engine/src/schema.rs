//! What the columns of a dataset file are, read from its first records: a CSV's types (by
//! Arrow's CSV reader, which knows quoted fields), a JSON file's types (by Arrow's JSON
//! inference) in the order the file shows its keys. Only the file's first
//! [`COLUMNS_SAMPLE_BYTES`] are read.
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{FieldRef, Schema};
use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
use domain::Format;
use domain::query::{COLUMNS_SAMPLE_BYTES, FailureReason, QueryFailure, TableSource};
use object_store::{ObjectStore, ObjectStoreExt};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::run::unreadable;

/// Records read to infer a file's column types.
const INFER_RECORDS: usize = domain::query::COLUMNS_SAMPLE_RECORDS;

/// The columns of the file under `table` (of `size` bytes), from its first
/// [`COLUMNS_SAMPLE_BYTES`]: see [`schema_of_start`].
pub(crate) async fn schema(
    store: &Arc<dyn ObjectStore>,
    table: &TableSource,
    size: u64,
) -> Result<Schema, QueryFailure> {
    let path = object_store::path::Path::from(table.key.as_str());
    let sample = store
        .get_range(&path, 0..size.min(COLUMNS_SAMPLE_BYTES as u64))
        .await
        .map_err(|e| unreadable(table, &e))?;
    let cut = size > sample.len() as u64;
    schema_of_start(table.format, &sample, cut)
        .map_err(|e| columns_unreadable(&format!("table '{}'", table.alias), e))
}

/// The failure of a start whose columns cannot be inferred; `whose` names the file.
pub(crate) fn columns_unreadable(whose: &str, e: impl fmt::Display) -> QueryFailure {
    QueryFailure::new(
        FailureReason::Data,
        format!("the columns of {whose} cannot be read: {e}"),
    )
}

/// The columns of a file of `format` from `start`, its first bytes (`cut`: the file goes
/// on after them, so its last record may be cut short). What a file's columns are depends
/// on these bytes alone, so an upload's can be read while the rest of it arrives.
///
/// A CSV's types come from Arrow's CSV reader (the `csv` crate underneath, which knows
/// quoted fields): DataFusion's own inference splits the file at line breaks first, and
/// object_store 0.13's splitter loses track of quotes when a quoted field holds a line
/// break. A JSON file's come from Arrow's JSON inference, in the order the file shows its
/// keys ([`json_schema_of`]).
pub(crate) fn schema_of_start(format: Format, start: &[u8], cut: bool) -> Result<Schema, String> {
    let delimiter = match format {
        Format::Json | Format::Ndjson => return json_schema_of(start, format, cut),
        Format::Csv => b',',
        Format::Tsv => b'\t',
    };
    let usable = if cut {
        complete_records(start, delimiter)
    } else {
        start.len()
    };
    datafusion::arrow::csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter)
        .infer_schema(&start[..usable], Some(INFER_RECORDS))
        .map(|(schema, _)| schema)
        .map_err(|e| e.to_string())
}

/// How many bytes of `sample` (the start of a longer file) hold whole records: the last
/// record read from it may have been cut.
fn complete_records(sample: &[u8], delimiter: u8) -> usize {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(sample);
    let mut record = csv::ByteRecord::new();
    let (mut before_last, mut end) = (0, 0);
    while let Ok(true) = reader.read_byte_record(&mut record) {
        before_last = end;
        end = usize::try_from(reader.position().byte()).unwrap_or(0);
    }
    before_last
}

/// The columns of a JSON (an array of objects) or NDJSON file from `sample`, the whole
/// file or (`cut`) its start, in one pass: the first [`INFER_RECORDS`] records, typed by
/// Arrow's JSON inference (the function DataFusion's own inference calls, which would read
/// the file again and lose the keys' order), in the order the file first shows their keys.
/// When the sample was cut, it may end inside a record: the records before it count.
/// Anywhere else, JSON that does not parse is a failure.
///
/// NDJSON records are handed to the inference one at a time as they are parsed, not
/// collected first: ten thousand parsed objects held at once cost more in allocation and
/// page faults than the parsing itself.
fn json_schema_of(sample: &[u8], format: Format, cut: bool) -> Result<Schema, String> {
    let mut keys = KeyOrder::default();
    let mut failure = None;
    let inferred = if format == Format::Ndjson {
        // A cut sample ends inside a line: only its whole lines count.
        let whole = if cut {
            &sample[..sample.iter().rposition(|b| *b == b'\n').unwrap_or(0)]
        } else {
            sample
        };
        let records = whole
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.trim_ascii().is_empty())
            .take(INFER_RECORDS)
            .map_while(|(index, line)| {
                let mut de = serde_json::Deserializer::from_slice(line);
                let record = Record(&mut keys)
                    .deserialize(&mut de)
                    .and_then(|record| de.end().map(|()| record));
                match record {
                    Ok(record) => Some(Ok(record)),
                    Err(e) => {
                        failure = Some(format!("line {}: {e}", index + 1));
                        None
                    }
                }
            });
        infer_json_schema_from_iterator(records)
    } else {
        let mut records = Vec::new();
        let mut reader = serde_json::Deserializer::from_slice(sample);
        let read = TopLevel {
            keys: &mut keys,
            out: &mut records,
        }
        .deserialize(&mut reader);
        // Whatever follows the array must be whitespace.
        let read = read.and_then(|()| reader.end());
        // A cut sample ends inside the array; the records before the cut count.
        if let Err(e) = read
            && !cut
        {
            failure = Some(e.to_string());
        }
        infer_json_schema_from_iterator(records.into_iter().map(Ok))
    }
    .map_err(|e| e.to_string())?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    Ok(in_key_order(&inferred, &keys.keys).unwrap_or(inferred))
}

/// `schema` with its fields in the order of `keys` (fields not among them last, as they
/// were), or `None` when that is already its order.
pub(crate) fn in_key_order(schema: &Schema, keys: &[String]) -> Option<Schema> {
    let position = |field: &FieldRef| {
        keys.iter()
            .position(|k| k == field.name())
            .unwrap_or(usize::MAX)
    };
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    fields.sort_by_key(position);
    let ordered = Schema::new_with_metadata(fields, schema.metadata().clone());
    (ordered != *schema).then_some(ordered)
}

/// The top-level keys of the records read so far, in the order they first appeared.
#[derive(Default)]
struct KeyOrder {
    keys: Vec<String>,
    seen: HashSet<String>,
}

/// Reads one top-level JSON value into `out`: an object is a record, an array holds
/// records (at most [`INFER_RECORDS`] of them are kept).
struct TopLevel<'a> {
    keys: &'a mut KeyOrder,
    out: &'a mut Vec<Value>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or an array of them")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let record = Record(self.keys).visit_map(map)?;
        self.out.push(record);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while self.out.len() < INFER_RECORDS {
            match seq.next_element_seed(Record(&mut *self.keys))? {
                Some(record) => self.out.push(record),
                None => return Ok(()),
            }
        }
        // The rest of the array is only checked: the deserializer wants it read to `]`.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// Reads one record, noting its keys in order; its values are read whole, for inference.
struct Record<'a>(&'a mut KeyOrder);

impl<'de> DeserializeSeed<'de> for Record<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut record = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Value>()?;
            // Looked up before it is copied: records repeat their keys, and a copy per key
            // and record, dropped again at once, was a third of the allocations here.
            if !self.0.seen.contains(&key) {
                self.0.seen.insert(key.clone());
                self.0.keys.push(key.clone());
            }
            record.insert(key, value);
        }
        Ok(Value::Object(record))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field};

    use super::*;

    fn names(schema: &Schema) -> Vec<&str> {
        schema.fields().iter().map(|f| f.name().as_str()).collect()
    }

    #[test]
    fn columns_come_in_file_order_from_either_form_with_their_types() {
        let ndjson = b"{\"zeta\":1,\"alpha\":{\"b\":2,\"a\":1},\"mid\":\"x\"}\n\n{\"mid\":\"y\",\"new\":[1,2]}\n{\"cut";
        let schema = json_schema_of(ndjson, Format::Ndjson, true).unwrap();
        assert_eq!(names(&schema), ["zeta", "alpha", "mid", "new"]);
        let zeta = schema.field_with_name("zeta").unwrap();
        assert_eq!(zeta.data_type(), &DataType::Int64);
        let mid = schema.field_with_name("mid").unwrap();
        assert_eq!(mid.data_type(), &DataType::Utf8);
        let array = b"[{\"b\": 1, \"a\": 2.5}, {\"c\": null, \"a\": 3}, {\"d\"";
        let schema = json_schema_of(array, Format::Json, true).unwrap();
        assert_eq!(names(&schema), ["b", "a", "c"]);
        let a = schema.field_with_name("a").unwrap();
        assert_eq!(a.data_type(), &DataType::Float64);
        let whole = b"[{\"b\": 1}, {\"a\": true}]";
        assert_eq!(
            names(&json_schema_of(whole, Format::Json, false).unwrap()),
            ["b", "a"]
        );
    }

    #[test]
    fn broken_json_fails_unless_the_sample_was_cut_there() {
        let ndjson = |sample: &[u8], cut| json_schema_of(sample, Format::Ndjson, cut);
        let cut = b"{\"a\":1}\n{\"a\":";
        assert_eq!(names(&ndjson(cut, true).unwrap()), ["a"]);
        assert!(ndjson(cut, false).unwrap_err().starts_with("line 2:"));
        assert!(ndjson(b"{\"a\":1}\nnot json\n", false).is_err());
        assert!(ndjson(b"{\"a\":1}\n[1]\n", false).is_err());
        assert!(ndjson(b"{\"a\":1} {\"b\":2}\n", false).is_err());
        assert!(ndjson(b"", false).unwrap().fields().is_empty());
        let array = |sample: &[u8], cut| json_schema_of(sample, Format::Json, cut);
        assert_eq!(names(&array(b"[{\"a\":1}, {\"b\"", true).unwrap()), ["a"]);
        assert!(array(b"[{\"a\":1}, {\"b\"", false).is_err());
        assert!(array(b"[{\"a\":1}] x", false).is_err());
        // More records than inference reads: the later ones are checked, not typed.
        let many = format!("[{}{{\"late\":1}}]", "{\"a\":1},".repeat(INFER_RECORDS));
        assert_eq!(names(&array(many.as_bytes(), false).unwrap()), ["a"]);
        let many = format!("{}{{\"late\":1}}\n", "{\"a\":1}\n".repeat(INFER_RECORDS));
        assert_eq!(names(&ndjson(many.as_bytes(), false).unwrap()), ["a"]);
    }

    #[test]
    fn fields_follow_the_keys() {
        let field = |name: &str| Field::new(name, DataType::Int64, true);
        let sorted = Schema::new(vec![field("a"), field("b"), field("c")]);
        let keys = ["c".to_owned(), "a".to_owned(), "b".to_owned()];
        let ordered = in_key_order(&sorted, &keys).expect("reordered");
        let names: Vec<&str> = ordered.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
        assert_eq!(in_key_order(&ordered, &keys), None);
        // A field the sample did not show keeps its place after the others.
        let partial = in_key_order(&sorted, &["b".to_owned()]).expect("reordered");
        let names: Vec<&str> = partial.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
    }
}
