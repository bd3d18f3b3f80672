//! The pagination cursor decoder on arbitrary text (a cursor arrives in a query string,
//! so anyone can send anything): it must refuse or decode, never panic, and whatever it
//! accepts must survive a round trip through the encoder.
#![no_main]

use domain::PageRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PageRequest::new(Some(1), Some(text)) {
        Ok(page) => {
            let encoded = page.cursor().expect("a page request with a cursor keeps it");
            let again =
                PageRequest::new(Some(1), Some(&encoded)).expect("an issued cursor decodes");
            assert_eq!(again, page);
        }
        Err(err) => assert!(
            matches!(err, domain::Error::Validation(_)),
            "a bad cursor is a validation error, got {err:?}"
        ),
    }
});
