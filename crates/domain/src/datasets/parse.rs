//! Reading an uploaded file once, as a stream, to learn its shape and to refuse what is
//! not a well-formed dataset. Memory stays bounded: one CSV record, one JSON value's keys,
//! or a few blocks of NDJSON lines (`NDJSON_BLOCK` bytes or so, of an upload's pieces or
//! of a reader; one line if longer) at a time, plus the set of distinct keys (capped).
//!
//! The code is synchronous; callers run it on `spawn_blocking` over a buffered reader, or
//! for NDJSON over the chunks themselves (the upload's chunks as they arrive, in
//! `datasets::receive`).
use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, Read};

use bytes::Bytes;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::{Error, Result};

/// Which kind of file a dataset is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line (also known as JSON Lines).
    Ndjson,
}

impl Format {
    /// The format from the file name's extension (case-insensitive), else from the
    /// upload's content type; anything else is a [`Error::Validation`].
    pub fn detect(file_name: &str, content_type: Option<&str>) -> Result<Format> {
        let by_extension = file_name.rsplit_once('.').and_then(|(_, ext)| {
            match ext.to_ascii_lowercase().as_str() {
                "csv" => Some(Format::Csv),
                "tsv" => Some(Format::Tsv),
                "json" => Some(Format::Json),
                "ndjson" | "jsonl" => Some(Format::Ndjson),
                _ => None,
            }
        });
        let by_content_type = || {
            // Parameters (`; charset=utf-8`) do not change the format.
            let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
            match essence.as_str() {
                "text/csv" => Some(Format::Csv),
                "text/tab-separated-values" => Some(Format::Tsv),
                "application/json" => Some(Format::Json),
                "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                    Some(Format::Ndjson)
                }
                _ => None,
            }
        };
        by_extension.or_else(by_content_type).ok_or_else(|| {
            Error::validation(
                "unsupported file type: expected a .csv, .tsv, .json, .ndjson or .jsonl file",
            )
        })
    }

    /// The extension of the stored file.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        }
    }
}

/// Rows and columns of a dataset. Rows exclude a CSV/TSV header; the columns of JSON and
/// NDJSON are the distinct keys across all objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Data rows (the header excluded).
    pub rows: i64,
    /// Columns.
    pub columns: i64,
}

/// Most distinct keys a JSON or NDJSON dataset may have: beyond this it is not a table,
/// and the set of keys would grow with the file instead of staying small.
pub const MAX_COLUMNS: usize = 10_000;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a whole file of `format` and returns its shape, or a [`Error::Validation`]
/// saying what is wrong (with a line number where there is one). Read failures of the
/// underlying reader are [`Error::Storage`].
///
/// A file of zero bytes is refused in every format. An empty JSON array (`[]`) is
/// accepted as 0 rows and 0 columns: it is well-formed and says "no records", just as a
/// header-only CSV does.
pub fn shape_of<R: BufRead>(format: Format, reader: R) -> Result<Shape> {
    let reader = skip_bom(reader)?;
    match format {
        Format::Csv => delimited(reader, b','),
        Format::Tsv => delimited(reader, b'\t'),
        Format::Json => json_array(reader),
        Format::Ndjson => ndjson(reader),
    }
}

/// A UTF-8 byte order mark is allowed and is not data. (csv-core also drops it, but only
/// when it arrives in one read; doing it here makes it explicit and format-independent.)
/// The first eight bytes are read whatever sizes the reads come in, the mark dropped from
/// their front, and the rest put back in front of the reader: the parser's first read is
/// then those bytes, so a second mark right after the first is seen with more behind it
/// (csv-core drops a mark only at the start of its first read, and takes a first read of
/// nothing but the mark for the end of the file) however the input was cut, as when it
/// arrives in one read. An empty file is refused here.
fn skip_bom<R: BufRead>(mut reader: R) -> Result<impl BufRead> {
    let mut head = [0u8; 8];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    if filled == 0 {
        return Err(Error::validation("empty file"));
    }
    let head = &head[..filled];
    let head = head.strip_prefix(UTF8_BOM).unwrap_or(head).to_vec();
    Ok(std::io::Cursor::new(head).chain(reader))
}

fn delimited<R: Read>(reader: R, delimiter: u8) -> Result<Shape> {
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        // Every record must have the header's number of fields.
        .flexible(false)
        .from_reader(reader);
    let columns = csv.headers().map_err(csv_error)?.len();
    if columns == 0 {
        return Err(Error::validation("no header row"));
    }
    // One reused record: the file is never held in memory. A `StringRecord` checks UTF-8.
    let mut record = csv::StringRecord::new();
    let mut rows: i64 = 0;
    while csv.read_record(&mut record).map_err(csv_error)? {
        rows += 1;
    }
    Ok(Shape {
        rows,
        columns: columns as i64,
    })
}

fn csv_error(err: csv::Error) -> Error {
    let line = |pos: &Option<csv::Position>| {
        pos.as_ref()
            .map_or_else(String::new, |pos| format!("line {}: ", pos.line()))
    };
    match err.into_kind() {
        csv::ErrorKind::Io(e) => Error::Storage(e),
        csv::ErrorKind::Utf8 { pos, .. } => {
            Error::validation(format!("{}not valid UTF-8", line(&pos)))
        }
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => Error::validation(format!(
            "{}record has {len} fields, the header has {expected_len}",
            line(&pos)
        )),
        other => Error::validation(format!("not a valid delimited file: {other:?}")),
    }
}

/// The distinct keys seen so far, refusing to grow past [`MAX_COLUMNS`].
///
/// Rows of a table repeat the same keys in the same order, so the keys of the previous
/// object are kept by position: a key equal to the one at its position last time is known
/// without hashing it (a compare of a few bytes), and nothing is allocated in the steady
/// state.
#[derive(Default)]
struct Keys {
    distinct: HashSet<String>,
    previous: Vec<String>,
}

impl Keys {
    /// Records `key`, the `position`-th key of the current object.
    ///
    /// Inlined into the parser's loop, with the rare case out of line: the call per key
    /// was a twentieth of the parse (docs/performance.md).
    #[inline]
    fn add<E: serde::de::Error>(
        &mut self,
        position: usize,
        key: &str,
    ) -> std::result::Result<(), E> {
        if self
            .previous
            .get(position)
            .is_some_and(|seen| same_key(seen, key))
        {
            return Ok(());
        }
        self.add_other(position, key)
    }

    /// [`Keys::add`] for a key that differs from the one at its position last time.
    #[cold]
    #[inline(never)]
    fn add_other<E: serde::de::Error>(
        &mut self,
        position: usize,
        key: &str,
    ) -> std::result::Result<(), E> {
        if !self.distinct.contains(key) {
            if self.distinct.len() >= MAX_COLUMNS {
                return Err(E::custom(format_args!(
                    "more than {MAX_COLUMNS} distinct keys"
                )));
            }
            self.distinct.insert(key.to_owned());
        }
        let remembered = self.previous.len();
        match self.previous.get_mut(position) {
            Some(seen) => {
                seen.clear();
                seen.push_str(key);
            }
            // Bounded even for an object that repeats one key endlessly.
            None if remembered < MAX_COLUMNS => self.previous.push(key.to_owned()),
            None => {}
        }
        Ok(())
    }

    fn count(&self) -> i64 {
        self.distinct.len() as i64
    }

    /// Adds the keys another thread has seen; refuses the union past [`MAX_COLUMNS`].
    fn merge(&mut self, other: Keys) -> Result<()> {
        self.distinct.extend(other.distinct);
        if self.distinct.len() > MAX_COLUMNS {
            return Err(Error::validation(format!(
                "the objects have more than {MAX_COLUMNS} distinct keys"
            )));
        }
        Ok(())
    }
}

/// Deserializes one JSON object, recording its keys and skipping its values unread.
struct ObjectKeys<'a>(&'a mut Keys);

impl<'de> DeserializeSeed<'de> for ObjectKeys<'_> {
    type Value = ();

    #[inline]
    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut position = 0;
        while map
            .next_key_seed(Key {
                keys: &mut *self.0,
                position,
            })?
            .is_some()
        {
            position += 1;
            // serde_json skips an ignored value with a loop, not recursion: however deep
            // it nests, it cannot overflow the stack.
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// `a == b` for keys, compared byte by byte in place: `==` calls `memcmp`, and for keys of
/// a few bytes the call cost more than the compare (8 % of an NDJSON upload's server time,
/// docs/performance.md).
#[inline]
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Deserializes one key of an object into [`Keys`], borrowing it from the input where
/// the deserializer can (no escapes), copying it only when it is new.
struct Key<'a> {
    keys: &'a mut Keys,
    position: usize,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    #[inline]
    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    #[inline]
    fn visit_str<E: serde::de::Error>(self, key: &str) -> std::result::Result<(), E> {
        self.keys.add(self.position, key)
    }
}

/// Deserializes a JSON array of objects, one element at a time.
struct ArrayOfObjects<'a> {
    keys: &'a mut Keys,
    rows: &'a mut i64,
}

impl<'de> DeserializeSeed<'de> for ArrayOfObjects<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArrayOfObjects<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(ObjectKeys(self.keys))?.is_some() {
            *self.rows += 1;
        }
        Ok(())
    }
}

fn json_array<R: Read>(reader: R) -> Result<Shape> {
    let mut keys = Keys::default();
    let mut rows = 0;
    // serde_json skips ignored strings without checking their UTF-8, so the bytes are
    // checked on the way in.
    let mut de = serde_json::Deserializer::from_reader(Utf8Checked::new(reader));
    ArrayOfObjects {
        keys: &mut keys,
        rows: &mut rows,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(json_error)?;
    Ok(Shape {
        rows,
        columns: keys.count(),
    })
}

fn json_error(err: serde_json::Error) -> Error {
    if err.is_io() {
        let io = std::io::Error::from(err);
        if io.kind() == std::io::ErrorKind::InvalidData {
            return Error::validation(format!("not valid UTF-8 ({io})"));
        }
        return Error::Storage(io);
    }
    Error::validation(format!("not a JSON array of objects: {err}"))
}

/// Whether `line` (without its `\n`) is a blank NDJSON line, skipped rather than counted
/// as a row: nothing but the whitespace JSON itself allows between tokens (space, tab,
/// carriage return). Any other byte makes it a line that must hold an object, so a line
/// of a form feed or a no-break space is refused at upload, as the query engine's reader
/// (Arrow's) would refuse it at every query. The upload's parser, its early column read
/// and the engine's column inference all decide with this one rule.
pub fn is_blank_ndjson_line(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// `lines` (whole lines) cut where UTF-8 stops: the longest run of whole lines that is
/// valid UTF-8, as a `str`, and the rest, from the start of the line that holds the first
/// bad byte (empty when all of it is valid). One check for all the lines, where a check per
/// line, or serde_json's per string when it parses bytes, costs a call each (a twentieth
/// of the upload's parse; most of the engine's column read; docs/performance.md). The
/// upload's parser and the engine's column inference both cut their lines with it.
pub fn valid_utf8_lines(lines: &[u8]) -> (&str, &[u8]) {
    match std::str::from_utf8(lines) {
        Ok(text) => (text, &lines[lines.len()..]),
        Err(e) => {
            let line_start = lines[..e.valid_up_to()]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |end| end + 1);
            // Valid by the check above, so the default is never taken.
            let text = std::str::from_utf8(&lines[..line_start]).unwrap_or_default();
            (text, &lines[line_start..])
        }
    }
}

/// Bytes of NDJSON parsed as one block, at least (whole lines: a block ends at the first
/// line end past this): large enough that handing a block to the other thread costs
/// little, small enough that the few blocks in flight keep an upload's memory small.
const NDJSON_BLOCK: usize = 256 * 1024;

/// Parses NDJSON on two threads: the lines are independent, and on an upload this parse
/// was the slowest stage of the pipeline (docs/performance.md), so the input is cut into
/// blocks of whole lines, and the reading thread parses every other block itself while a
/// helper thread parses the others. Each thread keeps its own keys and block-local line
/// numbers; the results are put back in block order, so the rows, the columns and the
/// error (the first line that fails, numbered from the start of the file) are those of
/// one pass. A file of one block starts no thread.
fn ndjson<R: BufRead>(reader: R) -> Result<Shape> {
    ndjson_in_blocks(reader, NDJSON_BLOCK)
}

/// [`ndjson`] over a reader, cut into blocks of `block_bytes` (copied out of the reader).
fn ndjson_in_blocks<R: BufRead>(mut reader: R, block_bytes: usize) -> Result<Shape> {
    let chunks = std::iter::from_fn(move || {
        let mut chunk = Vec::with_capacity(block_bytes);
        match (&mut reader)
            .take(block_bytes as u64)
            .read_to_end(&mut chunk)
        {
            Ok(0) => None,
            Ok(_) => Some(Ok(Bytes::from(chunk))),
            Err(e) => Some(Err(e)),
        }
    });
    ndjson_in_chunks(chunks, block_bytes)
}

/// The shape of an NDJSON file that arrives as `chunks` (an upload's pieces, as received),
/// parsed where the pieces lie: a block is the whole lines of the pieces that make it up,
/// not a copy of them (docs/performance.md). Like [`shape_of`], it drops a byte order
/// mark, refuses an empty file and reports a failing chunk as [`Error::Storage`].
pub fn ndjson_shape<I>(chunks: I) -> Result<Shape>
where
    I: Iterator<Item = std::io::Result<Bytes>>,
{
    ndjson_shape_in_blocks(chunks, NDJSON_BLOCK)
}

/// [`ndjson_shape`] with blocks of at least `block_bytes`.
fn ndjson_shape_in_blocks<I>(chunks: I, block_bytes: usize) -> Result<Shape>
where
    I: Iterator<Item = std::io::Result<Bytes>>,
{
    let mut chunks = chunks;
    // The mark may be cut across the first chunks (only tests send chunks that small):
    // those are put together, a first chunk long enough is taken as it is.
    let mut start: Vec<u8> = Vec::new();
    let mut first = None;
    while start.len() < UTF8_BOM.len() {
        let Some(chunk) = chunks.next().transpose()? else {
            break;
        };
        if start.is_empty() && chunk.len() >= UTF8_BOM.len() {
            first = Some(chunk);
            break;
        }
        start.extend_from_slice(&chunk);
    }
    let first = first.unwrap_or_else(|| Bytes::from(start));
    if first.is_empty() {
        return Err(Error::validation("empty file"));
    }
    let first = match first.starts_with(UTF8_BOM) {
        true => first.slice(UTF8_BOM.len()..),
        false => first,
    };
    ndjson_in_chunks(std::iter::once(Ok(first)).chain(chunks), block_bytes)
}

/// [`ndjson`] over `chunks`, in blocks of whole lines of at least `block_bytes` (or the
/// rest of the file): each chunk's whole lines are a part of a block where the chunk
/// lies; a line cut across chunks is the only thing copied, into a part of its own.
fn ndjson_in_chunks<I>(chunks: I, block_bytes: usize) -> Result<Shape>
where
    I: Iterator<Item = std::io::Result<Bytes>>,
{
    std::thread::scope(|scope| {
        let mut own = NdjsonLines::default();
        let mut helper: Option<(std::sync::mpsc::SyncSender<Numbered>, _)> = None;
        let mut index = 0;
        // Hands `block` to whichever thread's turn it is; false once neither should go on
        // (a line failed: no later block can change the answer).
        let mut dispatch = |block: Block| -> bool {
            let this = index;
            index += 1;
            if this % 2 == 0 {
                return own.parse(this, &block);
            }
            let (sender, _) = helper.get_or_insert_with(|| {
                // Two blocks queued at most: the reader waits rather than run ahead.
                let (sender, queue) = std::sync::mpsc::sync_channel::<Numbered>(2);
                let thread = scope.spawn(move || {
                    let mut lines = NdjsonLines::default();
                    for (index, block) in queue {
                        if !lines.parse(index, &block) {
                            break;
                        }
                    }
                    lines
                });
                (sender, thread)
            });
            // A closed queue: the helper stopped at a failed line.
            sender.send((this, block)).is_ok()
        };
        // The start of a line that has not ended yet (a line longer than a chunk grows
        // here until its newline).
        let mut unfinished: Vec<u8> = Vec::new();
        let mut block: Block = Vec::new();
        let mut block_len = 0;
        let mut read_to_end = true;
        for chunk in chunks {
            let mut rest = chunk?;
            if !unfinished.is_empty() {
                let Some(end) = memchr::memchr(b'\n', &rest) else {
                    unfinished.extend_from_slice(&rest);
                    continue;
                };
                unfinished.extend_from_slice(&rest[..=end]);
                block_len += unfinished.len();
                block.push(Bytes::from(std::mem::take(&mut unfinished)));
                rest = rest.slice(end + 1..);
            }
            match memchr::memrchr(b'\n', &rest) {
                Some(end) => {
                    unfinished.extend_from_slice(&rest[end + 1..]);
                    block_len += end + 1;
                    block.push(rest.slice(..=end));
                }
                None => unfinished.extend_from_slice(&rest),
            }
            if block_len >= block_bytes {
                block_len = 0;
                if !dispatch(std::mem::take(&mut block)) {
                    read_to_end = false;
                    break;
                }
            }
        }
        if read_to_end {
            if !unfinished.is_empty() {
                block.push(Bytes::from(unfinished));
            }
            if !block.is_empty() {
                dispatch(block);
            }
        }
        // Every block the helper was given is parsed (or it stopped at a failure) once
        // its queue is closed and it has ended.
        if let Some((sender, thread)) = helper {
            drop(sender);
            let lines = thread.join().map_err(|_| {
                Error::Internal("the NDJSON parser's helper thread panicked".into())
            })?;
            own.keys.merge(lines.keys)?;
            own.done.extend(lines.done);
        }
        own.done.sort_unstable_by_key(|(index, _)| *index);
        let (mut lines_before, mut rows) = (0u64, 0i64);
        for (_, block) in own.done {
            if let Some(LineError { number, message }) = block.error {
                return Err(Error::validation(format!(
                    "line {}: {message}",
                    lines_before + number
                )));
            }
            lines_before += block.lines;
            rows += block.rows;
        }
        Ok(Shape {
            rows,
            columns: own.keys.count(),
        })
    })
}

/// Whole NDJSON lines, in parts that each hold whole lines: the parts of received chunks
/// (where the chunks lie) and, between them, the lines cut across two chunks (copied).
/// Only the file's last line may lack its newline.
type Block = Vec<Bytes>;

/// A block of NDJSON lines with its place among the blocks.
type Numbered = (usize, Block);

/// What one block of NDJSON held: its lines (blank ones included), its rows, and the
/// first line that failed, numbered from the block's start.
struct BlockShape {
    lines: u64,
    rows: i64,
    error: Option<LineError>,
}

impl BlockShape {
    /// Records that the last line counted failed; always false (stop).
    fn fail(&mut self, message: String) -> bool {
        self.error = Some(LineError {
            number: self.lines,
            message,
        });
        false
    }
}

/// A line that is not a JSON object: its number and why (without the number).
struct LineError {
    number: u64,
    message: String,
}

/// What one thread has parsed: the keys it has seen and each of its blocks' shape.
#[derive(Default)]
struct NdjsonLines {
    keys: Keys,
    done: Vec<(usize, BlockShape)>,
}

impl NdjsonLines {
    /// Parses block number `index` and keeps its shape; false when a line of it failed.
    fn parse(&mut self, index: usize, block: &Block) -> bool {
        let shape = self.block(block);
        let failed = shape.error.is_some();
        self.done.push((index, shape));
        !failed
    }

    /// The lines of `block`, each without its `\n`; stops at the first that fails.
    fn block(&mut self, block: &Block) -> BlockShape {
        let mut shape = BlockShape {
            lines: 0,
            rows: 0,
            error: None,
        };
        for part in block {
            if !self.lines(part, &mut shape) {
                break;
            }
        }
        shape
    }

    /// Adds the lines of `part` (whole lines) to `shape`; false at the first that fails.
    fn lines(&mut self, part: &[u8], shape: &mut BlockShape) -> bool {
        // A part is whole lines, so no character is cut at its ends, and a bad byte is
        // reported at its line once the lines before it have been parsed (an earlier
        // failure is still the answer).
        let (text, from_bad_line) = valid_utf8_lines(part);
        let bad_line = !from_bad_line.is_empty();
        let mut rest = text;
        while !rest.is_empty() {
            let (line, after) = match memchr::memchr(b'\n', rest.as_bytes()) {
                Some(end) => (&rest[..end], &rest[end + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = after;
            shape.lines += 1;
            match self.line(line) {
                Ok(true) => shape.rows += 1,
                Ok(false) => {}
                Err(message) => return shape.fail(message),
            }
        }
        if bad_line {
            shape.lines += 1;
            return shape.fail("not valid UTF-8".to_owned());
        }
        true
    }

    /// One line: `Ok(true)` for an object, `Ok(false)` for a blank line.
    fn line(&mut self, text: &str) -> std::result::Result<bool, String> {
        if is_blank_ndjson_line(text.as_bytes()) {
            return Ok(false);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        ObjectKeys(&mut self.keys)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| format!("not a JSON object: {e}"))?;
        Ok(true)
    }
}

/// A reader that fails with `InvalidData` as soon as its bytes stop being UTF-8,
/// including a sequence cut short by the end of the input.
struct Utf8Checked<R> {
    inner: R,
    /// The start of a character whose remaining bytes have not arrived yet (at most 3).
    partial: Vec<u8>,
}

impl<R> Utf8Checked<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            partial: Vec::with_capacity(4),
        }
    }
}

fn invalid_utf8() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid UTF-8")
}

impl<R: Read> Read for Utf8Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = &buf[..n];
        if n == 0 {
            return if self.partial.is_empty() || buf.is_empty() {
                Ok(0)
            } else {
                Err(invalid_utf8())
            };
        }
        // First finish the character left open by the previous read, byte by byte.
        let mut start = 0;
        while !self.partial.is_empty() && start < n {
            self.partial.push(chunk[start]);
            start += 1;
            match std::str::from_utf8(&self.partial) {
                Ok(_) => self.partial.clear(),
                Err(e) if e.error_len().is_some() => return Err(invalid_utf8()),
                Err(_) => {}
            }
        }
        if let Err(e) = std::str::from_utf8(&chunk[start..]) {
            if e.error_len().is_some() {
                return Err(invalid_utf8());
            }
            // Cut mid-character: keep the tail and check it with the next read.
            self.partial
                .extend_from_slice(&chunk[start + e.valid_up_to()..]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes `step` at a time, to cut characters at every position.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn check(data: &[u8], step: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Utf8Checked::new(Trickle { data, step }).read_to_end(&mut out)?;
        Ok(out)
    }

    /// The same file in every format-relevant way, read 1, 2, 3... bytes at a time: the
    /// byte order mark is dropped however the reads cut it.
    #[test]
    fn byte_order_mark_is_dropped_whatever_the_read_sizes() {
        let ndjson = b"\xEF\xBB\xBF{\"a\": 1}\n{\"b\": 2}\n";
        let csv = b"\xEF\xBB\xBFa,b\n1,2\n";
        // csv-core drops a second mark when it arrives in one read: the same whatever
        // the reads.
        let two_marks = b"\xEF\xBB\xBF\xEF\xBB\xBFa,b\n1,2\n3,4\n";
        for step in 1..=4 {
            let reader = |data| std::io::BufReader::with_capacity(step, Trickle { data, step });
            assert_eq!(
                shape_of(Format::Ndjson, reader(ndjson)).unwrap(),
                Shape {
                    rows: 2,
                    columns: 2
                },
                "step {step}"
            );
            assert_eq!(
                shape_of(Format::Csv, reader(csv)).unwrap(),
                Shape {
                    rows: 1,
                    columns: 2
                },
                "step {step}"
            );
            assert_eq!(
                shape_of(Format::Csv, reader(two_marks)).unwrap(),
                Shape {
                    rows: 2,
                    columns: 2
                },
                "two marks, step {step}"
            );
            assert!(matches!(
                shape_of(Format::Csv, reader(b"")),
                Err(Error::Validation(m)) if m == "empty file"
            ));
        }
    }

    /// Lines cut anywhere by the reader's buffers (every size from 1 byte up) are put
    /// back together: the same rows, and an error names the same line.
    #[test]
    fn ndjson_lines_cut_by_any_buffer_size() {
        let ndjson = "{\"a\": \"x\\ny\"}\r\n\n{\"b\": [1, {\"c\": \"é\"}]}\n  \n{\"a\": 3}";
        let bad = b"{\"a\": 1}\n{\"a\": 2}\n{\"a\": \n{\"a\": 4}\n";
        for step in 1..=ndjson.len() + 1 {
            let reader = |data| std::io::BufReader::with_capacity(step, Trickle { data, step });
            assert_eq!(
                shape_of(Format::Ndjson, reader(ndjson.as_bytes())).unwrap(),
                Shape {
                    rows: 3,
                    columns: 2
                },
                "step {step}"
            );
            assert!(
                matches!(
                    shape_of(Format::Ndjson, reader(bad)),
                    Err(Error::Validation(m)) if m.starts_with("line 3:")
                ),
                "step {step}"
            );
        }
    }

    /// Blocks of every size from 1 byte up, so that the lines go to both threads in every
    /// way they can be cut: the same rows and columns as one pass, and a bad line is
    /// named by its number in the file whichever thread parsed it.
    #[test]
    fn ndjson_in_blocks_is_one_pass() {
        let mut lines: Vec<String> = (0..40)
            .map(|i| match i % 5 {
                0 => format!("{{\"a\": {i}, \"b\": \"x\\ny\"}}"),
                1 => String::new(),
                2 => format!("{{\"b\": [{i}, {{\"c\": \"é\"}}], \"k{i}\": 1}}"),
                3 => "  \r".to_owned(),
                _ => format!("{{\"a\": {i}}}"),
            })
            .collect();
        let good = lines.join("\n");
        let expected = Shape {
            rows: 24,
            columns: 10,
        };
        for bad_at in [1, 2, 17, 40] {
            lines[bad_at - 1] = "{\"a\": ".to_owned();
            let bad = lines.join("\n");
            for block in 1..=good.len() + 1 {
                let read = |data: &str, step| {
                    let trickle = Trickle {
                        data: data.as_bytes(),
                        step,
                    };
                    ndjson_in_blocks(std::io::BufReader::with_capacity(step, trickle), block)
                };
                for step in [1, 7, 64] {
                    assert_eq!(read(&good, step).unwrap(), expected, "block {block}");
                    let prefix = format!("line {bad_at}:");
                    assert!(
                        matches!(read(&bad, step), Err(Error::Validation(m)) if m.starts_with(&prefix)),
                        "block {block} step {step} bad line {bad_at}"
                    );
                }
            }
            lines[bad_at - 1] = "{}".to_owned();
        }
    }

    /// An upload's NDJSON, parsed where its chunks lie, whatever their sizes (the mark
    /// and the lines cut anywhere, empty chunks among them) and however many of them make
    /// a block (so that blocks of several parts go to both threads): the answer of one
    /// pass over the whole file, error messages included.
    #[test]
    fn ndjson_chunks_give_the_answer_of_one_pass() {
        let files: [&[u8]; 7] = [
            b"\xEF\xBB\xBF{\"a\": 1}\n\n{\"b\": \"\xC3\xA9\"}\r\n{\"a\": 3}",
            b"\xEF\xBB\xBF\xEF\xBB\xBF{\"a\": 1}\n",
            b"{\"a\": 1}\n{\"a\": \n{\"c\": 4}\n",
            b"\xEF\xBB\xBF",
            b"{\"a\": 1}\n[1]\n",
            b"{\"a\": \"\xFF\"}\n",
            b"",
        ];
        for file in files {
            let one_pass = format!("{:?}", shape_of(Format::Ndjson, file));
            for (size, block) in
                (1..=file.len() + 1).flat_map(|s| [1, 4, 9, NDJSON_BLOCK].map(|b| (s, b)))
            {
                let chunks = file
                    .chunks(size)
                    .flat_map(|c| [Bytes::new(), Bytes::copy_from_slice(c)])
                    .map(Ok);
                assert_eq!(
                    format!("{:?}", ndjson_shape_in_blocks(chunks, block)),
                    one_pass,
                    "{} in chunks of {size}, blocks of {block}",
                    String::from_utf8_lossy(file)
                );
            }
        }
        assert!(matches!(
            ndjson_shape(std::iter::once(Ok(Bytes::new()))),
            Err(Error::Validation(m)) if m == "empty file"
        ));
        let failed = [
            Ok(Bytes::from_static(b"{}\n")),
            Err(std::io::Error::other("gone")),
        ];
        assert!(matches!(
            ndjson_shape(failed.into_iter()),
            Err(Error::Storage(_))
        ));
    }

    /// Bytes that are not UTF-8 are named by their line, in a block or cut across
    /// chunks, whichever thread parses it, and a line that failed before them is still
    /// the answer.
    #[test]
    fn ndjson_bad_utf8_is_named_by_its_line() {
        let cases: [(&[u8], &str); 4] = [
            (
                b"{\"a\": 1}\n\n{\"b\": \"\xC3\xA9\xFF\"}\n{\"c\": ",
                "line 3: not valid UTF-8",
            ),
            (b"\xFF\n{\"a\": 1}\n", "line 1: not valid UTF-8"),
            (
                b"{\"a\": 1}\n{\"a\": \n{\"b\": \"\xFF\"}\n",
                "line 2: not a JSON object",
            ),
            (b"{\"a\": 1}\n{\"b\": \"\xC3\"}", "line 2: not valid UTF-8"),
        ];
        for (file, expected) in cases {
            for (size, block) in (1..=file.len()).flat_map(|s| [1, 7, NDJSON_BLOCK].map(|b| (s, b)))
            {
                let chunks = file.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c)));
                let result = ndjson_shape_in_blocks(chunks, block);
                assert!(
                    matches!(&result, Err(Error::Validation(m)) if m.starts_with(expected)),
                    "{} in chunks of {size}, blocks of {block}: {result:?}",
                    String::from_utf8_lossy(file)
                );
            }
        }
    }

    /// Only JSON's own whitespace makes a line blank: a line of a form feed, a vertical
    /// tab or a no-break space is refused by its number (Arrow's reader, which every query
    /// of the file goes through, refuses it too), while spaces, tabs and a `\r` are
    /// skipped, not rows.
    #[test]
    fn ndjson_blank_lines_are_json_whitespace_only() {
        let good = "{\"a\": 1}\n \t\r\n\n\t\n{\"a\": 2}\r\n";
        assert_eq!(
            shape_of(Format::Ndjson, good.as_bytes()).unwrap(),
            Shape {
                rows: 2,
                columns: 1
            }
        );
        for blank_elsewhere in ["\x0c", "\x0b", "\u{a0}", " \u{3000} ", "\u{85}"] {
            let file = format!("{{\"a\": 1}}\n\n{blank_elsewhere}\n{{\"a\": 2}}\n");
            let result = shape_of(Format::Ndjson, file.as_bytes());
            assert!(
                matches!(&result, Err(Error::Validation(m)) if m.starts_with("line 3: not a JSON object")),
                "{blank_elsewhere:?}: {result:?}"
            );
        }
        assert!(is_blank_ndjson_line(b""));
        assert!(is_blank_ndjson_line(b" \t\r"));
        assert!(!is_blank_ndjson_line(b"\x0c"));
    }

    /// Past the limit, the keys both threads saw together are refused.
    #[test]
    fn ndjson_keys_are_capped_across_both_threads() {
        let file: String = (0..=MAX_COLUMNS)
            .map(|i| format!("{{\"k{i}\": 1}}\n"))
            .collect();
        let result = ndjson_in_blocks(file.as_bytes(), 1024);
        assert!(
            matches!(&result, Err(Error::Validation(m)) if m.contains("distinct keys")),
            "{result:?}"
        );
        let fewer: String = (0..MAX_COLUMNS)
            .map(|i| format!("{{\"k{i}\": 1}}\n"))
            .collect();
        assert_eq!(
            ndjson_in_blocks(fewer.as_bytes(), 1024).unwrap().columns,
            MAX_COLUMNS as i64
        );
    }

    #[test]
    fn json_keys_are_counted_whatever_their_order_and_repeats() {
        let ndjson =
            b"{\"a\":1,\"b\":2}\n{\"b\":1,\"a\":2}\n{\"a\":1,\"c\":3}\n{\"a\":1,\"a\":2}\n{}\n";
        assert_eq!(
            shape_of(Format::Ndjson, &ndjson[..]).unwrap(),
            Shape {
                rows: 5,
                columns: 3
            }
        );
        let json = br#"[{"x\u0041":1},{"xA":2,"y":{"z":1}},{"y":0,"xA":1}]"#;
        assert_eq!(
            shape_of(Format::Json, &json[..]).unwrap(),
            Shape {
                rows: 3,
                columns: 2
            },
            "an escaped key is the same key"
        );
    }

    #[test]
    fn utf8_checked_accepts_characters_split_anywhere() {
        let text = "héllo — 😀 ok".as_bytes();
        for step in 1..=5 {
            assert_eq!(check(text, step).unwrap(), text, "step {step}");
        }
    }

    #[test]
    fn utf8_checked_refuses_bad_and_truncated_bytes() {
        for bad in [&b"ab\xFFcd"[..], b"ab\xC3", b"\xE2\x82", b"a\xC3(b"] {
            for step in 1..=4 {
                let err = check(bad, step).unwrap_err();
                assert_eq!(
                    err.kind(),
                    std::io::ErrorKind::InvalidData,
                    "{bad:?} {step}"
                );
            }
        }
    }
}
