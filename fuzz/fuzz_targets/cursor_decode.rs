//! The pagination cursor decoder on arbitrary text (a cursor arrives in a query string,
//! so anyone can send anything): it must refuse or decode, never panic, and whatever it
//! accepts must survive a round trip through the encoder.
#![no_main]

use domain::pagination::{Cursor, PageRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Cursor::decode(text) {
        Ok(cursor) => {
            let again = Cursor::decode(&cursor.encode()).expect("an issued cursor decodes");
            assert_eq!(again, cursor);
            let page = PageRequest::new(Some(1), Some(text)).expect("the same cursor in a page");
            assert_eq!(page.after, Some(cursor));
        }
        Err(err) => assert!(
            matches!(err, domain::Error::Validation(_)),
            "a bad cursor is a validation error, got {err:?}"
        ),
    }
});
