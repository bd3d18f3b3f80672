//! Domain tests: datasets.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use domain::NewDataset;
use domain::PageRequest;
use domain::Tier;
use domain::{Clock, Error, Id, LimitKind, Settings};
use domain::{Format, Shape, shape_of};
use iops_tests::{TestDb, count, on_both};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};

use crate::support::{Harness, harness, harness_with};
use crate::usage::{new_user, usage_row};

// ---------------------------------------------------------------------------------------
// Parsing (no database involved)
// ---------------------------------------------------------------------------------------

fn shape(format: Format, bytes: &[u8]) -> domain::Result<Shape> {
    shape_of(format, bytes)
}

fn ok(format: Format, bytes: &[u8]) -> (i64, i64) {
    let s = shape(format, bytes).unwrap_or_else(|e| panic!("{format:?} refused: {e}"));
    (s.rows, s.columns)
}

fn refused(format: Format, bytes: &[u8]) -> String {
    match shape(format, bytes) {
        Err(Error::Validation(message)) => message,
        other => panic!(
            "{format:?} {:?}: expected Validation, got {other:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

#[test]
fn detects_format_by_extension_then_content_type() {
    let cases = [
        ("sales.csv", None, Format::Csv),
        ("Sales.CSV", None, Format::Csv),
        ("a.b.tsv", None, Format::Tsv),
        ("events.JSON", None, Format::Json),
        ("events.ndjson", None, Format::Ndjson),
        ("events.jsonl", None, Format::Ndjson),
        // The extension wins over the content type.
        ("data.tsv", Some("text/csv"), Format::Tsv),
        ("blob", Some("text/csv; charset=utf-8"), Format::Csv),
        ("blob.txt", Some("Text/Tab-Separated-Values"), Format::Tsv),
        ("upload", Some("application/json"), Format::Json),
        ("upload", Some("application/x-ndjson"), Format::Ndjson),
        ("upload", Some("application/ndjson"), Format::Ndjson),
        ("upload", Some("application/jsonl"), Format::Ndjson),
    ];
    for (name, content_type, expected) in cases {
        assert_eq!(
            Format::detect(name, content_type).unwrap(),
            expected,
            "{name} {content_type:?}"
        );
    }
    for (name, content_type) in [
        ("report.xlsx", None),
        ("report.xlsx", Some("application/vnd.ms-excel")),
        ("notes.txt", Some("text/plain")),
        ("csv", None),
        ("", None),
    ] {
        assert!(
            matches!(
                Format::detect(name, content_type),
                Err(Error::Validation(_))
            ),
            "{name} {content_type:?}"
        );
    }
}

#[test]
fn csv_follows_rfc_4180() {
    let quoted = b"name,notes,amount\r\n\"Smith, J\",\"line one\nline two, with comma\",3\r\n\"O\"\"Brien\",plain,4\r\n";
    assert_eq!(ok(Format::Csv, quoted), (2, 3));
    // No trailing newline, and an empty last field.
    assert_eq!(ok(Format::Csv, b"a,b\n1,2\n3,"), (2, 2));
    // A BOM is not data: the header still has two fields, and the quoted first header
    // parses as a quoted field.
    assert_eq!(ok(Format::Csv, b"\xEF\xBB\xBF\"a\",b\n1,2\n"), (1, 2));
    assert_eq!(
        ok(Format::Csv, "\u{feff}id,name\n1,Zoë\n".as_bytes()),
        (1, 2)
    );
}

#[test]
fn csv_header_only_is_zero_rows() {
    assert_eq!(ok(Format::Csv, b"a,b,c\n"), (0, 3));
    assert_eq!(ok(Format::Csv, b"a,b,c"), (0, 3));
    assert_eq!(ok(Format::Tsv, b"a\tb\n"), (0, 2));
}

#[test]
fn empty_files_are_refused() {
    for format in [Format::Csv, Format::Tsv, Format::Json, Format::Ndjson] {
        assert_eq!(refused(format, b""), "empty file", "{format:?}");
    }
    // A BOM alone is no header either.
    refused(Format::Csv, b"\xEF\xBB\xBF");
    refused(Format::Csv, b"\n\n");
}

#[test]
fn csv_ragged_rows_and_bad_utf8_are_refused() {
    let message = refused(Format::Csv, b"a,b\n1,2\n3\n4,5\n");
    assert!(message.contains("line 3"), "{message}");
    refused(Format::Csv, b"a,b\n1,2,3\n");
    let message = refused(Format::Csv, b"a,b\n1,\xFF\n");
    assert!(message.contains("UTF-8"), "{message}");
    refused(Format::Csv, b"a,\xC3\n1,2\n");
}

#[test]
fn tsv_splits_on_tabs_only() {
    let tsv = b"a\tb\tc\n1,5\t2\t3\n4\t\"x\ty\"\t6\n";
    assert_eq!(ok(Format::Tsv, tsv), (2, 3));
    refused(Format::Tsv, b"a\tb\n1\t2\t3\n");
    // The same bytes read as CSV are one column wide and ragged.
    refused(Format::Csv, tsv);
}

#[test]
fn json_is_an_array_of_objects() {
    let json = br#"[{"a": 1, "b": "x"}, {"b": 2, "c": {"nested": [1, {"d": null}]}}, {}]"#;
    // Columns are the distinct keys of the top-level objects.
    assert_eq!(ok(Format::Json, json), (3, 3));
    assert_eq!(ok(Format::Json, b"[]"), (0, 0));
    assert_eq!(ok(Format::Json, b" \n[ ]\n"), (0, 0));
    assert_eq!(
        ok(Format::Json, "\u{feff}[{\"é\": \"ü\"}]".as_bytes()),
        (1, 1)
    );

    for bad in [
        &b"[{\"a\": 1},"[..],
        b"[{\"a\": 1}] trailing",
        b"{\"a\": 1}",
        b"[1, 2]",
        b"[{\"a\": 1}, 2]",
        b"[[{\"a\": 1}]]",
        b"\"text\"",
        b"null",
        b"   \n",
        b"a,b\n1,2\n",
        b"[{\"a\": \"\xFF\"}]",
        b"[{\"a\": 1, \"b\": \"\xE2\x82\"}]",
    ] {
        refused(Format::Json, bad);
    }
    // Deeply nested values are skipped without recursion: no stack overflow.
    let deep = format!(
        "[{{\"a\": {}{}}}]",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(ok(Format::Json, deep.as_bytes()), (1, 1));
    let deep = format!(
        "{{\"a\": {}{}}}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(ok(Format::Ndjson, deep.as_bytes()), (1, 1));
    // Unclosed nesting is refused.
    let unclosed = format!("[{{\"a\": {}}}]", "[".repeat(100_000));
    assert!(matches!(
        shape(Format::Json, unclosed.as_bytes()),
        Err(Error::Validation(_))
    ));
}

#[test]
fn ndjson_is_one_object_per_line() {
    let ndjson = b"{\"a\": 1}\n\n{\"b\": 2, \"a\": 3}\r\n  \n{\"c\": [1, 2]}";
    assert_eq!(ok(Format::Ndjson, ndjson), (3, 3));
    assert_eq!(ok(Format::Ndjson, b"\xEF\xBB\xBF{\"a\":1}\n"), (1, 1));

    let message = refused(Format::Ndjson, b"{\"a\": 1}\nnot json\n{\"a\": 2}\n");
    assert!(message.contains("line 2"), "{message}");
    let message = refused(Format::Ndjson, b"{\"a\": 1}\n[1]\n");
    assert!(message.contains("line 2"), "{message}");
    refused(Format::Ndjson, b"{\"a\": 1} {\"b\": 2}\n");
    refused(Format::Ndjson, b"{\"a\": \"\xFF\"}\n");
    refused(Format::Ndjson, b"[{\"a\": 1}]\n");
}

#[test]
fn distinct_keys_are_capped() {
    let mut many = String::new();
    for i in 0..=domain::MAX_COLUMNS {
        many.push_str(&format!("{{\"k{i}\": 1}}\n"));
    }
    refused(Format::Ndjson, many.as_bytes());
    // Repeating keys is fine however many rows there are.
    let repeated = "{\"a\": 1, \"b\": 2}\n".repeat(20_000);
    assert_eq!(ok(Format::Ndjson, repeated.as_bytes()), (20_000, 2));
}

// ---------------------------------------------------------------------------------------
// The service, on both databases
// ---------------------------------------------------------------------------------------

fn csv_file(name: &str) -> NewDataset {
    NewDataset {
        name: None,
        file_name: name.to_owned(),
        content_type: Some("text/csv".to_owned()),
    }
}

/// Every file under the store root, staging excluded, as keys.
fn stored_files(h: &Harness) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read store dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == ".staging") {
                    continue;
                }
                walk(&path, root, out);
            } else {
                let key = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push(key);
            }
        }
    }
    let mut out = Vec::new();
    walk(h.store.root(), h.store.root(), &mut out);
    out.sort();
    out
}

fn staging_files(h: &Harness) -> Vec<PathBuf> {
    std::fs::read_dir(h.store.root().join(".staging"))
        .expect("read staging")
        .map(|e| e.unwrap().path())
        .collect()
}

async fn datasets_count(h: &Harness, user: Id) -> i32 {
    usage_row(h.domain.database().connection(), user, "2026-03")
        .await
        .map_or(0, |row| row.datasets_count)
}

/// Asserts that nothing of any upload is left: no file, no staged file, no row, no count.
async fn assert_nothing_stored(h: &Harness, user: Id) {
    assert_eq!(stored_files(h), Vec::<String>::new());
    assert_eq!(staging_files(h), Vec::<PathBuf>::new());
    assert_eq!(count(h.domain.database().connection(), "datasets").await, 0);
    assert_eq!(datasets_count(h, user).await, 0);
}

/// A body that must never be read.
struct Unreadable;

impl tokio::io::AsyncRead for Unreadable {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Err(std::io::Error::other("the body was read")))
    }
}

on_both!(
    a_files_shape_does_not_depend_on_how_its_body_is_cut,
    body_cut_body
);
/// A body handed over as the pieces a server received (`upload_with_rest`): whatever their
/// sizes, the stored bytes and the shape are those of the file in one piece, the start of
/// a CSV with two byte order marks included (csv-core drops the second only when it
/// arrives in one read, so the parser reads a file's first bytes whatever the pieces).
async fn body_cut_body(db: TestDb) {
    let h = harness(db).await;
    let user = new_user(h.domain.database().connection(), Tier::Enterprise).await;
    let files: [(&str, &[u8]); 4] = [
        ("two marks.csv", b"\xEF\xBB\xBF\xEF\xBB\xBFa,b\n1,2\n3,4\n"),
        ("quoted.csv", b"a,b\n\"x\ny\",2\n3,4"),
        (
            "lines.ndjson",
            b"\xEF\xBB\xBF{\"a\":1}\n\n{\"b\":\"\xC3\xA9\"}\n",
        ),
        ("rows.json", b"[{\"a\": 1}, {\"b\": 2}]"),
    ];
    for (name, bytes) in files {
        let meta = || NewDataset {
            name: None,
            file_name: name.to_owned(),
            content_type: None,
        };
        let whole = h.domain.datasets.upload(user, meta(), bytes).await.unwrap();
        for size in 1..=bytes.len() {
            let pieces: Vec<std::io::Result<bytes::Bytes>> = bytes
                .chunks(size)
                .map(|piece| Ok(bytes::Bytes::copy_from_slice(piece)))
                .collect();
            let cut = h
                .domain
                .datasets
                .upload_with_rest(
                    user,
                    meta(),
                    futures_util::stream::iter(pieces),
                    std::future::ready(Ok(None)),
                )
                .await
                .unwrap_or_else(|e| panic!("{name} in pieces of {size}: {e}"));
            assert_eq!(
                (cut.row_count, cut.column_count),
                (whole.row_count, whole.column_count),
                "{name} in pieces of {size}"
            );
            let stored = h.store.root().join(cut.file_path.as_deref().unwrap());
            assert_eq!(std::fs::read(stored).unwrap(), bytes, "{name}");
        }
    }
}

on_both!(
    upload_stores_file_unmodified,
    upload_stores_file_unmodified_body
);
async fn upload_stores_file_unmodified_body(db: TestDb) {
    let h = harness(db).await;
    let user = new_user(h.domain.database().connection(), Tier::Free).await;
    let bytes = b"\xEF\xBB\xBFregion,notes,revenue\r\nNorth,\"multi\nline, quoted\",125000.5\r\nSouth,,98231.25\r\n";

    let dataset = h
        .domain
        .datasets
        .upload(user, csv_file("Q1 sales.csv"), &bytes[..])
        .await
        .unwrap();
    assert_eq!(dataset.user_id, user);
    assert_eq!(dataset.name, "Q1 sales.csv");
    assert_eq!(dataset.row_count, Some(2));
    assert_eq!(dataset.column_count, Some(3));
    assert_eq!(dataset.size_bytes, Some(bytes.len() as i64));
    assert_eq!(dataset.connection_id, None);
    assert_eq!(dataset.created_at, h.clock.now());
    assert_eq!(dataset.updated_at, dataset.created_at);
    let key = format!("{user}/{}.csv", dataset.id);
    assert_eq!(dataset.file_path.as_deref(), Some(key.as_str()));

    // The stored bytes are the uploaded bytes, BOM and CRLF included.
    assert_eq!(std::fs::read(h.store.root().join(&key)).unwrap(), bytes);
    assert_eq!(stored_files(&h), vec![key]);
    assert!(staging_files(&h).is_empty());
    assert_eq!(datasets_count(&h, user).await, 1);
    // What upload returned is what is stored.
    assert_eq!(
        h.domain.datasets.get(user, dataset.id).await.unwrap(),
        dataset
    );

    // The other formats, one detected only by content type, one with an explicit name.
    let json = br#"[{"a": 1}, {"b": 2}]"#;
    let from_json = h
        .domain
        .datasets
        .upload(
            user,
            NewDataset {
                name: Some("Events".to_owned()),
                file_name: "export".to_owned(),
                content_type: Some("application/json".to_owned()),
            },
            &json[..],
        )
        .await
        .unwrap();
    assert_eq!(from_json.name, "Events");
    assert_eq!(
        (from_json.row_count, from_json.column_count),
        (Some(2), Some(2))
    );
    assert!(from_json.file_path.as_deref().unwrap().ends_with(".json"));

    let ndjson = b"{\"a\": 1}\n{\"a\": 2, \"b\": 3}\n{\"c\": 4}\n";
    let from_ndjson = h
        .domain
        .datasets
        .upload(user, csv_file("log.JSONL"), &ndjson[..])
        .await
        .unwrap();
    assert_eq!(
        (from_ndjson.row_count, from_ndjson.column_count),
        (Some(3), Some(3))
    );
    assert!(
        from_ndjson
            .file_path
            .as_deref()
            .unwrap()
            .ends_with(".ndjson")
    );

    let tsv = b"a\tb\n1\t2\n";
    let from_tsv = h
        .domain
        .datasets
        .upload(user, csv_file("t.tsv"), &tsv[..])
        .await
        .unwrap();
    assert_eq!(
        (from_tsv.row_count, from_tsv.column_count),
        (Some(1), Some(2))
    );

    for (dataset, bytes) in [
        (&from_json, &json[..]),
        (&from_ndjson, &ndjson[..]),
        (&from_tsv, &tsv[..]),
    ] {
        let path = h.store.root().join(dataset.file_path.as_deref().unwrap());
        assert_eq!(std::fs::read(path).unwrap(), bytes);
    }
    assert_eq!(stored_files(&h).len(), 4);
    assert_eq!(datasets_count(&h, user).await, 4);
}

on_both!(
    failed_upload_leaves_nothing,
    failed_upload_leaves_nothing_body
);
async fn failed_upload_leaves_nothing_body(db: TestDb) {
    let h = harness(db).await;
    let user = new_user(h.domain.database().connection(), Tier::Free).await;
    let bad: [(&str, &[u8]); 9] = [
        ("empty.csv", b""),
        ("ragged.csv", b"a,b\n1,2\n3\n"),
        ("utf16.csv", b"\xFF\xFEa\x00,\x00b\x00\n\x00"),
        ("ragged.tsv", b"a\tb\n1\n"),
        ("broken.json", b"[{\"a\": 1},"),
        ("object.json", b"{\"a\": 1}"),
        ("numbers.json", b"[1, 2, 3]"),
        ("bad-line.ndjson", b"{\"a\": 1}\n{oops}\n"),
        ("empty.jsonl", b""),
    ];
    // More uploads fail than the month allows: a failure must not count.
    for (file_name, bytes) in bad {
        let result = h
            .domain
            .datasets
            .upload(user, csv_file(file_name), bytes)
            .await;
        assert!(
            matches!(result, Err(Error::Validation(_))),
            "{file_name}: {result:?}"
        );
        assert_nothing_stored(&h, user).await;
    }

    // A file that stops parsing at its second line is still read to its end (the client
    // gets its answer on an intact exchange), and nothing of it is kept.
    let mut bad_start = b"a,b\n1\n".to_vec();
    bad_start.extend(std::iter::repeat_n(b"1,2\n", 300_000).flatten());
    let mut body = std::io::Cursor::new(bad_start);
    let result = h
        .domain
        .datasets
        .upload(user, csv_file("bad-start.csv"), &mut body)
        .await;
    assert!(matches!(result, Err(Error::Validation(_))), "{result:?}");
    assert_eq!(body.position() as usize, body.get_ref().len(), "drained");
    assert_nothing_stored(&h, user).await;

    // Refused before the body is read: an unsupported type, a bad name.
    let unsupported = h
        .domain
        .datasets
        .upload(
            user,
            NewDataset {
                name: None,
                file_name: "report.xlsx".to_owned(),
                content_type: Some("application/vnd.ms-excel".to_owned()),
            },
            Unreadable,
        )
        .await;
    assert!(
        matches!(unsupported, Err(Error::Validation(_))),
        "{unsupported:?}"
    );
    for name in [String::new(), "   ".to_owned(), "x".repeat(256)] {
        let result = h
            .domain
            .datasets
            .upload(
                user,
                NewDataset {
                    name: Some(name.clone()),
                    ..csv_file("ok.csv")
                },
                Unreadable,
            )
            .await;
        assert!(
            matches!(result, Err(Error::Validation(_))),
            "{name:?}: {result:?}"
        );
    }
    // A body that fails mid-way is a storage error, and leaves nothing either.
    let broken = h
        .domain
        .datasets
        .upload(user, csv_file("ok.csv"), Unreadable)
        .await;
    assert!(matches!(broken, Err(Error::Storage(_))), "{broken:?}");
    assert_nothing_stored(&h, user).await;

    // An unknown user: nothing stored either.
    let ghost = Id(uuid::Uuid::new_v4());
    let result = h
        .domain
        .datasets
        .upload(ghost, csv_file("ok.csv"), &b"a\n1\n"[..])
        .await;
    assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
    assert_nothing_stored(&h, user).await;

    // The longest allowed name (in characters, not bytes) is fine.
    let long = "é".repeat(255);
    let dataset = h
        .domain
        .datasets
        .upload(
            user,
            NewDataset {
                name: Some(long.clone()),
                ..csv_file("ok.csv")
            },
            &b"a\n1\n"[..],
        )
        .await
        .unwrap();
    assert_eq!(dataset.name, long);
    assert_eq!(datasets_count(&h, user).await, 1);
}

on_both!(
    oversized_upload_is_refused,
    oversized_upload_is_refused_body
);
async fn oversized_upload_is_refused_body(db: TestDb) {
    let h = harness_with(
        db,
        Settings {
            max_upload_bytes: 1_000,
            ..Settings::default()
        },
    )
    .await;
    let user = new_user(h.domain.database().connection(), Tier::Free).await;
    let mut body = b"n\n".to_vec();
    body.extend(std::iter::repeat_n(b"1\n", 499).flatten());
    assert_eq!(body.len(), 1_000);

    let mut too_big = body.clone();
    too_big.extend_from_slice(b"2\n");
    let result = h
        .domain
        .datasets
        .upload(user, csv_file("big.csv"), too_big.as_slice())
        .await;
    assert!(
        matches!(result, Err(Error::PayloadTooLarge { max_bytes: 1_000 })),
        "{result:?}"
    );
    assert_nothing_stored(&h, user).await;

    // Too large is too large even when the file stopped parsing long before the limit.
    let mut bad_and_big = b"n\n1,2\n".to_vec();
    bad_and_big.extend(std::iter::repeat_n(b'x', 1_000));
    let result = h
        .domain
        .datasets
        .upload(user, csv_file("bad-big.csv"), bad_and_big.as_slice())
        .await;
    assert!(
        matches!(result, Err(Error::PayloadTooLarge { max_bytes: 1_000 })),
        "{result:?}"
    );
    assert_nothing_stored(&h, user).await;

    // Exactly the limit is accepted.
    let dataset = h
        .domain
        .datasets
        .upload(user, csv_file("fits.csv"), body.as_slice())
        .await
        .unwrap();
    assert_eq!(dataset.size_bytes, Some(1_000));
    assert_eq!(dataset.row_count, Some(499));
}

on_both!(
    concurrent_uploads_respect_the_limit,
    concurrent_uploads_body
);
async fn concurrent_uploads_body(db: TestDb) {
    let h = harness(db).await;
    let second = h.second_process().await;
    let user = new_user(h.domain.database().connection(), Tier::Free).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let domain = if i % 2 == 0 {
                h.domain.clone()
            } else {
                second.clone()
            };
            let body = format!("id,value\n{i},{}\n", i * 10).into_bytes();
            tokio::spawn(async move {
                domain
                    .datasets
                    .upload(user, csv_file(&format!("f{i}.csv")), body.as_slice())
                    .await
            })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(dataset) => created.push(dataset),
            Err(Error::LimitExceeded {
                limit: LimitKind::Datasets,
                allowed: 5,
                used: 5,
                ..
            }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created.len(), 5);
    assert_eq!(count(h.domain.database().connection(), "datasets").await, 5);
    assert_eq!(datasets_count(&h, user).await, 5);
    let mut keys: Vec<String> = created
        .iter()
        .map(|d| d.file_path.clone().unwrap())
        .collect();
    keys.sort();
    assert_eq!(stored_files(&h), keys);
    assert!(staging_files(&h).is_empty());
}

on_both!(other_users_datasets_are_not_found, other_users_body);
async fn other_users_body(db: TestDb) {
    let h = harness(db).await;
    let owner = new_user(h.domain.database().connection(), Tier::Free).await;
    let intruder = new_user(h.domain.database().connection(), Tier::Pro).await;
    let datasets = &h.domain.datasets;
    let dataset = datasets
        .upload(owner, csv_file("mine.csv"), &b"a\n1\n"[..])
        .await
        .unwrap();

    assert!(matches!(
        datasets.get(intruder, dataset.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        datasets
            .rename(intruder, dataset.id, "theirs".to_owned())
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        datasets.delete(intruder, dataset.id).await,
        Err(Error::NotFound)
    ));
    let page = datasets
        .list(intruder, &PageRequest::new(None, None).unwrap())
        .await
        .unwrap();
    assert!(page.items.is_empty());

    // Untouched.
    assert_eq!(datasets.get(owner, dataset.id).await.unwrap(), dataset);
    assert_eq!(stored_files(&h).len(), 1);

    let missing = Id(uuid::Uuid::new_v4());
    assert!(matches!(
        datasets.get(owner, missing).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        datasets.delete(owner, missing).await,
        Err(Error::NotFound)
    ));
}

on_both!(rename_changes_name_only, rename_body);
async fn rename_body(db: TestDb) {
    let h = harness(db).await;
    let user = new_user(h.domain.database().connection(), Tier::Free).await;
    let datasets = &h.domain.datasets;
    let dataset = datasets
        .upload(user, csv_file("raw.csv"), &b"a,b\n1,2\n"[..])
        .await
        .unwrap();
    h.clock.advance(chrono::Duration::minutes(3));

    let renamed = datasets
        .rename(user, dataset.id, "Cleaned sales".to_owned())
        .await
        .unwrap();
    assert_eq!(renamed.name, "Cleaned sales");
    assert_eq!(renamed.updated_at, h.clock.now());
    assert_eq!(
        domain::Dataset {
            name: dataset.name.clone(),
            updated_at: dataset.updated_at,
            ..renamed.clone()
        },
        dataset
    );
    assert_eq!(datasets.get(user, dataset.id).await.unwrap(), renamed);

    for bad in [String::new(), " ".to_owned(), "n".repeat(256)] {
        assert!(matches!(
            datasets.rename(user, dataset.id, bad).await,
            Err(Error::Validation(_))
        ));
    }
    assert_eq!(datasets.get(user, dataset.id).await.unwrap(), renamed);
}

on_both!(delete_removes_file_and_unlinks_analyses, delete_body);
async fn delete_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection();
    let user = new_user(conn, Tier::Free).await;
    let datasets = &h.domain.datasets;
    let doomed = datasets
        .upload(user, csv_file("doomed.csv"), &b"a\n1\n"[..])
        .await
        .unwrap();
    let kept = datasets
        .upload(user, csv_file("kept.csv"), &b"a\n1\n"[..])
        .await
        .unwrap();

    let analysis_id = Id(uuid::Uuid::new_v4());
    let now = h.clock.now().naive_utc();
    entity::analyses::ActiveModel {
        id: Set(analysis_id),
        user_id: Set(user),
        name: Set("on doomed".to_owned()),
        dataset_id: Set(Some(doomed.id)),
        config: Set(Some(serde_json::json!({"type": "aggregate"}))),
        results: Set(None),
        status: Set(entity::analyses::Status::Draft),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .unwrap();

    let doomed_path = h.store.root().join(doomed.file_path.as_deref().unwrap());
    assert!(doomed_path.exists());
    datasets.delete(user, doomed.id).await.unwrap();
    assert!(
        !doomed_path.exists(),
        "the file is gone once delete returns"
    );
    assert_eq!(stored_files(&h), vec![kept.file_path.clone().unwrap()]);
    assert!(matches!(
        datasets.get(user, doomed.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        datasets.delete(user, doomed.id).await,
        Err(Error::NotFound)
    ));

    let analysis = entity::analyses::Entity::find_by_id(analysis_id)
        .one(conn)
        .await
        .unwrap()
        .expect("the analysis stays");
    assert_eq!(analysis.dataset_id, None);
    // Deleting does not give the upload back.
    assert_eq!(datasets_count(&h, user).await, 2);

    // A dataset without a file (as the Python era wrote for a data connection) deletes
    // fine too.
    let connection = Id(uuid::Uuid::new_v4());
    entity::datasets::ActiveModel {
        id: Set(connection),
        user_id: Set(user),
        name: Set("Production Postgres: events".to_owned()),
        file_path: Set(None),
        connection_id: Set(None),
        row_count: Set(None),
        column_count: Set(None),
        size_bytes: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .unwrap();
    datasets.delete(user, connection).await.unwrap();
    assert_eq!(count(conn, "datasets").await, 1);
}

on_both!(list_pages_newest_first, list_body);
async fn list_body(db: TestDb) {
    let h = harness(db).await;
    let user = new_user(h.domain.database().connection(), Tier::Pro).await;
    let other = new_user(h.domain.database().connection(), Tier::Pro).await;
    let datasets = &h.domain.datasets;
    let mut uploaded = Vec::new();
    for i in 0..25 {
        h.clock.advance(chrono::Duration::seconds(1));
        let body = format!("n\n{i}\n").into_bytes();
        uploaded.push(
            datasets
                .upload(user, csv_file(&format!("d{i:02}.csv")), body.as_slice())
                .await
                .unwrap()
                .id,
        );
        datasets
            .upload(other, csv_file("theirs.csv"), &b"n\n1\n"[..])
            .await
            .unwrap();
    }
    let newest_first: Vec<Id> = uploaded.iter().rev().copied().collect();

    let first = datasets
        .list(user, &PageRequest::new(Some(10), None).unwrap())
        .await
        .unwrap();
    assert_eq!(first.items.len(), 10);

    // A dataset uploaded between pages is newer than everything: it shifts nothing.
    h.clock.advance(chrono::Duration::seconds(1));
    let late = datasets
        .upload(user, csv_file("late.csv"), &b"n\n1\n"[..])
        .await
        .unwrap();

    let cursor = first.next_cursor.clone().expect("a second page");
    let second = datasets
        .list(user, &PageRequest::new(Some(10), Some(&cursor)).unwrap())
        .await
        .unwrap();
    assert_eq!(second.items.len(), 10);
    let cursor = second.next_cursor.clone().expect("a third page");
    let third = datasets
        .list(user, &PageRequest::new(Some(10), Some(&cursor)).unwrap())
        .await
        .unwrap();
    assert_eq!(third.items.len(), 5);
    assert_eq!(third.next_cursor, None);

    let seen: Vec<Id> = first
        .items
        .iter()
        .chain(&second.items)
        .chain(&third.items)
        .map(|d| d.id)
        .collect();
    assert_eq!(seen, newest_first);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);
    assert!(
        first
            .items
            .iter()
            .chain(&second.items)
            .chain(&third.items)
            .all(|d| d.user_id == user)
    );

    // A fresh first page starts with the late upload.
    let fresh = datasets
        .list(user, &PageRequest::new(Some(10), None).unwrap())
        .await
        .unwrap();
    assert_eq!(fresh.items[0].id, late.id);
    assert_eq!(fresh.items[1].id, newest_first[0]);
}
