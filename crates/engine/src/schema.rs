//! What the columns of a dataset file are, read from its first records: a CSV's types (by
//! Arrow's CSV reader, which knows quoted fields), a JSON file's types (by Arrow's JSON
//! inference) in the order the file shows its keys. Only the file's first
//! [`COLUMNS_SAMPLE_BYTES`] are read.
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{FieldRef, Schema};
use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
use domain::Format;
use domain::query::{COLUMNS_SAMPLE_BYTES, FailureReason, QueryFailure, TableSource};
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
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
/// page faults than the parsing itself. And only the records that show the inference
/// something new are handed to it at all ([`Shown`]).
fn json_schema_of(sample: &[u8], format: Format, cut: bool) -> Result<Schema, String> {
    let mut keys = KeyOrder::default();
    let mut shown = Shown::default();
    let mut failure = None;
    let inferred = if format == Format::Ndjson {
        // A cut sample ends inside a line: only its whole lines count.
        let whole = if cut {
            &sample[..sample.iter().rposition(|b| *b == b'\n').unwrap_or(0)]
        } else {
            sample
        };
        let records = ndjson_lines(whole)
            .enumerate()
            .filter(|(_, line)| !domain::is_blank_ndjson_line(line.bytes()))
            .take(INFER_RECORDS)
            .map_while(|(index, line)| {
                let record = match line {
                    Line::Checked(text) => read_record(
                        serde_json::Deserializer::from_str(text),
                        &mut keys,
                        &mut shown,
                    ),
                    Line::Unchecked(bytes) => read_record(
                        serde_json::Deserializer::from_slice(bytes),
                        &mut keys,
                        &mut shown,
                    ),
                };
                match record {
                    Ok(record) => Some(record),
                    Err(e) => {
                        failure = Some(format!("line {}: {e}", index + 1));
                        None
                    }
                }
            })
            .flatten()
            .map(Ok);
        infer_json_schema_from_iterator(records)
    } else {
        let mut records = Vec::new();
        let mut reader = serde_json::Deserializer::from_slice(sample);
        let read = TopLevel {
            keys: &mut keys,
            shown: &mut shown,
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
/// records (at most [`INFER_RECORDS`] of them are read; those that show the inference
/// something new are kept).
struct TopLevel<'a> {
    keys: &'a mut KeyOrder,
    shown: &'a mut Shown,
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
        let record = Record::new(self.keys, self.shown).visit_map(map)?;
        self.out.extend(record);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for _ in 0..INFER_RECORDS {
            match seq.next_element_seed(Record::new(&mut *self.keys, &mut *self.shown))? {
                Some(record) => self.out.extend(record),
                None => return Ok(()),
            }
        }
        // The rest of the array is only checked: the deserializer wants it read to `]`.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// A line of an NDJSON sample: known to be UTF-8, or (from the first line with a bad byte
/// on) not.
enum Line<'a> {
    Checked(&'a str),
    Unchecked(&'a [u8]),
}

impl Line<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Line::Checked(text) => text.as_bytes(),
            Line::Unchecked(bytes) => bytes,
        }
    }
}

/// The lines of `sample`, with one UTF-8 check for all of them
/// ([`domain::valid_utf8_lines`]): parsed from a `str`, serde_json checks no string again.
/// A line with a bad byte, and those after it, stay bytes, so their error is serde_json's.
fn ndjson_lines(sample: &[u8]) -> impl Iterator<Item = Line<'_>> {
    let (text, rest) = domain::valid_utf8_lines(sample);
    let rest = (!rest.is_empty()).then_some(rest);
    text.split_terminator('\n').map(Line::Checked).chain(
        rest.into_iter()
            .flat_map(|rest| rest.split(|b| *b == b'\n'))
            .map(Line::Unchecked),
    )
}

/// One NDJSON record (a whole line) read by [`Record`].
fn read_record<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    keys: &mut KeyOrder,
    shown: &mut Shown,
) -> serde_json::Result<Option<Value>> {
    let record = Record::new(keys, shown).deserialize(&mut de)?;
    de.end()?;
    Ok(record)
}

/// Reads one record, noting its keys in order, into what Arrow's inference needs of it:
/// `None` when it would show the inference nothing new ([`Shown`]).
struct Record<'a> {
    keys: &'a mut KeyOrder,
    shown: &'a mut Shown,
}

impl<'a> Record<'a> {
    fn new(keys: &'a mut KeyOrder, shown: &'a mut Shown) -> Self {
        Record { keys, shown }
    }
}

impl<'de> DeserializeSeed<'de> for Record<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<Value>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let mut entries = Vec::new();
        let mut new = false;
        while let Some(key) = map.next_key_seed(KeyText)? {
            let value = map.next_value_seed(ValueSeen)?;
            new |= !self.shown.knows(entries.len(), &key, &value);
            entries.push((key, value));
        }
        if !new {
            return Ok(None);
        }
        let mut record = serde_json::Map::new();
        for (key, value) in entries {
            // Looked up before it is copied: records repeat their keys.
            if !self.keys.seen.contains(key.as_ref()) {
                self.keys.seen.insert(key.to_string());
                self.keys.keys.push(key.to_string());
            }
            record.insert(key.into_owned(), value.into_value());
        }
        self.shown.add(&record);
        Ok(Some(Value::Object(record)))
    }
}

/// A key, borrowed from the input unless it holds escapes.
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

/// What Arrow's JSON inference looks at in a scalar: its kind, never its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    /// A number that fits an `i64` (Arrow: `Int64`); any other number is a `Float`.
    Int,
    Float,
    Text,
}

impl Kind {
    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The kind the inference sees in `value`; `None` for an array or an object.
    fn of(value: &Value) -> Option<Kind> {
        Some(match value {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(n) if n.is_i64() => Kind::Int,
            Value::Number(_) => Kind::Float,
            Value::String(_) => Kind::Text,
            Value::Array(_) | Value::Object(_) => return None,
        })
    }

    /// A value of this kind, for the inference.
    fn value(self) -> Value {
        match self {
            Kind::Null => Value::Null,
            Kind::Bool => Value::Bool(false),
            Kind::Int => Value::from(0_i64),
            Kind::Float => Value::from(0.5_f64),
            Kind::Text => Value::String(String::new()),
        }
    }
}

/// A record's value as the inference sees it: a scalar's kind, or a nested value whole
/// (Arrow looks into arrays and objects).
enum Seen {
    Scalar(Kind),
    Nested(Value),
}

impl Seen {
    fn into_value(self) -> Value {
        match self {
            Seen::Scalar(kind) => kind.value(),
            Seen::Nested(value) => value,
        }
    }
}

/// Reads a value as [`Seen`]: the same parse as a [`Value`]'s (the same errors), without
/// keeping a scalar's text.
struct ValueSeen;

impl<'de> DeserializeSeed<'de> for ValueSeen {
    type Value = Seen;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Seen, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeen {
    type Value = Seen;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Seen, E> {
        Ok(Seen::Scalar(Kind::Null))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Seen, E> {
        Ok(Seen::Scalar(Kind::Bool))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Seen, E> {
        Ok(Seen::Scalar(Kind::Int))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Seen, E> {
        Ok(Seen::Scalar(match i64::try_from(n) {
            Ok(_) => Kind::Int,
            Err(_) => Kind::Float,
        }))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Seen, E> {
        Ok(Seen::Scalar(Kind::Float))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Seen, E> {
        Ok(Seen::Scalar(Kind::Text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Seen, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Seen::Nested)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Seen, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Seen::Nested)
    }
}

/// The keys the inference has been shown holding each kind of scalar.
///
/// Arrow's inference of a scalar column is the union of the kinds its records showed
/// it, so a record of scalars whose every (key, kind) it has already been shown cannot
/// change its answer, and is not parsed into a [`Value`] for it: in a file of like
/// records, only the first is. Records with nested values are always shown.
#[derive(Default)]
struct Shown {
    kinds: HashMap<String, u8>,
    /// The previous record's (key, kind) pairs known to be shown, by position: a record
    /// like the one before it is checked without hashing.
    previous: Vec<(String, Kind)>,
}

impl Shown {
    /// Whether `value` under `key`, the `position`-th of its record, was shown already.
    fn knows(&mut self, position: usize, key: &str, value: &Seen) -> bool {
        let Seen::Scalar(kind) = *value else {
            return false;
        };
        if let Some((seen, seen_kind)) = self.previous.get(position)
            && *seen_kind == kind
            && seen == key
        {
            return true;
        }
        let known = self
            .kinds
            .get(key)
            .is_some_and(|kinds| kinds & kind.bit() != 0);
        if known {
            let remembered = self.previous.len();
            match self.previous.get_mut(position) {
                Some((seen, seen_kind)) => {
                    seen.clear();
                    seen.push_str(key);
                    *seen_kind = kind;
                }
                None if position == remembered => {
                    self.previous.push((key.to_owned(), kind));
                }
                None => {}
            }
        }
        known
    }

    /// Notes what `record` shows the inference (what it holds after repeated keys).
    fn add(&mut self, record: &serde_json::Map<String, Value>) {
        for (key, value) in record {
            if let Some(kind) = Kind::of(value) {
                *self.kinds.entry(key.clone()).or_default() |= kind.bit();
            }
        }
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

    /// The sample is checked as UTF-8 once, and a bad byte is still named by its line,
    /// with the lines before it read (a cut sample too), whatever line it is on.
    #[test]
    fn bad_utf8_is_named_by_its_line() {
        let ndjson = |sample: &[u8], cut| json_schema_of(sample, Format::Ndjson, cut);
        let lines = ["{\"a\":1}", "", "{\"b\":\"\u{e9}\"}", "{\"c\":2}"];
        for bad in 0..lines.len() {
            let mut sample: Vec<u8> = Vec::new();
            for (index, line) in lines.iter().enumerate() {
                sample.extend_from_slice(line.as_bytes());
                if index == bad {
                    sample.extend_from_slice(b"\xFF");
                }
                sample.push(b'\n');
            }
            for cut in [false, true] {
                let error = ndjson(&sample, cut).unwrap_err();
                assert!(
                    error.starts_with(&format!("line {}:", bad + 1)),
                    "{bad}: {error}"
                );
            }
        }
        let good = lines.join("\n");
        assert_eq!(
            names(&ndjson(good.as_bytes(), false).unwrap()),
            ["a", "b", "c"]
        );
        let ended = format!("{good}\n");
        assert_eq!(
            names(&ndjson(ended.as_bytes(), true).unwrap()),
            ["a", "b", "c"]
        );
    }

    /// Records that show the inference nothing new are not handed to it; the types
    /// must be what Arrow infers from every record, in every way a later record could
    /// change them (or make the inference fail).
    #[test]
    fn skipped_records_change_no_type() {
        let samples = [
            "{\"a\":1}\n{\"a\":2.5}\n{\"a\":3}",
            "{\"a\":1}\n{\"a\":1}\n{\"a\":18446744073709551615}\n{\"a\":-4}",
            "{\"a\":null}\n{\"a\":null}\n{\"a\":\"x\"}\n{\"a\":null}",
            "{\"a\":1,\"a\":\"x\"}\n{\"a\":1}\n{\"a\":1}",
            "{\"a\":[1,2]}\n{\"a\":[1.5]}\n{\"a\":3}\n{\"a\":[null]}\n{\"a\":3}",
            "{\"o\":{\"x\":1}}\n{\"o\":{\"y\":\"s\"}}\n{\"o\":{\"x\":2.5}}",
            "{\"a\":1}\n{\"a\":[2]}\n{\"a\":1}\n{\"a\":1.5}",
            "{\"b\":true}\n{\"b\":\"t\"}\n{\"b\":false}",
            "{\"a\":1,\"b\":\"x\"}\n{\"b\":\"y\",\"a\":2}\n{\"b\":1.5,\"a\":2}\n{\"c\":null}",
            "{\"a\\u0062\":1}\n{\"ab\":2.5}\n{\"ab\":1}",
            "{\"a\":{\"b\":1}}\n{\"a\":{\"b\":1}}\n{\"a\":2}",
            "{\"a\":1}\n{\"a\":1}\n{\"a\":{\"b\":1}}",
            "{\"a\":1.0}\n{\"a\":1}\n{\"a\":-0}",
        ];
        let sorted = |schema: Schema| {
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.sort_by(|a, b| a.name().cmp(b.name()));
            fields
        };
        for sample in samples {
            let every_record = infer_json_schema_from_iterator(sample.lines().map(|line| {
                serde_json::from_str::<Value>(line)
                    .map_err(|e| datafusion::arrow::error::ArrowError::JsonError(e.to_string()))
            }));
            let ours = json_schema_of(sample.as_bytes(), Format::Ndjson, false);
            match (ours, every_record) {
                (Ok(ours), Ok(every)) => assert_eq!(sorted(ours), sorted(every), "{sample}"),
                (Err(_), Err(_)) => {}
                (ours, every) => panic!("{sample}: {ours:?} against {every:?}"),
            }
            let array = format!("[{}]", sample.replace('\n', ","));
            let ours = json_schema_of(array.as_bytes(), Format::Json, false);
            let ndjson = json_schema_of(sample.as_bytes(), Format::Ndjson, false);
            assert_eq!(ours.map(sorted), ndjson.map(sorted), "{array}");
        }
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
