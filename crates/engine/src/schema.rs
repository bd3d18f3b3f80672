//! What the columns of a dataset file are, read from its first records: a CSV's types (by
//! Arrow's CSV reader, which knows quoted fields), and the order of a JSON file's keys.
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{FieldRef, Schema};
use domain::Format;
use domain::query::{FailureReason, QueryFailure, TableSource};
use object_store::{ObjectStore, ObjectStoreExt};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::run::unreadable;

/// Records read to infer a file's column types.
pub(crate) const INFER_RECORDS: usize = 10_000;

/// Bytes of a file read to infer its columns (at most [`INFER_RECORDS`] records of it).
const SAMPLE_BYTES: u64 = 8 << 20;

/// The columns of a CSV or TSV file, inferred by Arrow's CSV reader (the `csv` crate
/// underneath, which knows quoted fields) from its first records. DataFusion's own
/// inference splits the file at line breaks first, and object_store 0.13's splitter loses
/// track of quotes when a quoted field holds a line break.
pub(crate) async fn csv_schema(
    store: &Arc<dyn ObjectStore>,
    table: &TableSource,
    size: u64,
) -> Result<Schema, QueryFailure> {
    let path = object_store::path::Path::from(table.key.as_str());
    let bytes = store
        .get_range(&path, 0..size.min(SAMPLE_BYTES))
        .await
        .map_err(|e| unreadable(table, &e))?;
    let delimiter = if table.format == Format::Tsv {
        b'\t'
    } else {
        b','
    };
    let usable = if size <= SAMPLE_BYTES {
        bytes.len()
    } else {
        complete_records(&bytes, delimiter)
    };
    datafusion::arrow::csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter)
        .infer_schema(&bytes[..usable], Some(INFER_RECORDS))
        .map(|(schema, _)| schema)
        .map_err(|e| {
            QueryFailure::new(
                FailureReason::Data,
                format!("the columns of table '{}' cannot be read: {e}", table.alias),
            )
        })
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

/// The start of the file of `table` (of `size` bytes): what inference reads.
pub(crate) async fn sample(
    store: &Arc<dyn ObjectStore>,
    table: &TableSource,
    size: u64,
) -> Result<bytes::Bytes, QueryFailure> {
    let path = object_store::path::Path::from(table.key.as_str());
    store
        .get_range(&path, 0..size.min(SAMPLE_BYTES))
        .await
        .map_err(|e| unreadable(table, &e))
}

/// The top-level keys of the first records of a JSON (an array of objects) or NDJSON
/// sample, in the order they first appear. The sample may end inside a record: the
/// records before it count.
pub(crate) fn json_key_order(sample: &[u8]) -> Vec<String> {
    let mut order = KeyOrder::default();
    let mut reader = serde_json::Deserializer::from_slice(sample);
    // An NDJSON file is a stream of objects, a JSON file one array of them: the same
    // loop reads either, one top-level value at a time.
    while order.records < INFER_RECORDS && Records(&mut order).deserialize(&mut reader).is_ok() {}
    order.keys
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

#[derive(Default)]
struct KeyOrder {
    keys: Vec<String>,
    seen: HashSet<String>,
    records: usize,
}

/// Reads one top-level JSON value, noting the keys of the objects in it (the value itself,
/// or the elements of an array); values are skipped unread.
struct Records<'a>(&'a mut KeyOrder);

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or an array of them")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.records += 1;
        while let Some(key) = map.next_key::<String>()? {
            if self.0.seen.insert(key.clone()) {
                self.0.keys.push(key);
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while self.0.records < INFER_RECORDS && seq.next_element_seed(Records(self.0))?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field};

    use super::*;

    #[test]
    fn keys_come_in_file_order_from_either_form() {
        let ndjson = b"{\"zeta\":1,\"alpha\":{\"b\":2,\"a\":1},\"mid\":\"x\"}\n{\"mid\":\"y\",\"new\":[1,2]}\n{\"cut";
        assert_eq!(json_key_order(ndjson), ["zeta", "alpha", "mid", "new"]);
        let array = b"[{\"b\": 1, \"a\": 2}, {\"c\": null, \"a\": 3}, {\"d\"";
        assert_eq!(json_key_order(array), ["b", "a", "c", "d"]);
        assert!(json_key_order(b"not json").is_empty());
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
