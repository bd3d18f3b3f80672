//! Crash safety (issue item 1): `kill -9` of `iops serve` while 20 uploads are in flight,
//! then a restart. Whatever stage each upload had reached (receiving, parsing, counting,
//! committing), afterwards every dataset row has its file, no stored file lacks its row
//! (the start-up sweep clears what the crash left; a single server may use
//! `IOPS_STORAGE_GRACE_SECS=0`), every upload answered `201` kept its row, and the month's
//! usage equals the datasets that committed.
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use iops_tests::{TestDb, on_both};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::support::{Process, client, login, register, upload_form};

const UPLOADS: usize = 20;

/// Relative keys of the published dataset files (the staging folder is not the store's
/// content, and columnar copies are derived from them).
fn stored_keys(root: &Path) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let Ok(users) = std::fs::read_dir(root) else {
        return keys;
    };
    for user in users.flatten() {
        let name = user.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !user.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(user.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let key = format!("{name}/{}", file.file_name().to_string_lossy());
            if !is_copy(&key) {
                keys.insert(key);
            }
        }
    }
    keys
}

/// Whether `path` is a dataset file's columnar copy.
fn is_copy(path: &str) -> bool {
    path.ends_with(&domain::storage::columnar_key(""))
}

/// Files directly in `dir`.
fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every file under `dir`, relative, except the database's own files, the key file and the
/// server logs the test writes there.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.ends_with(".log")
                || name == domain::KEY_FILE
                || name.contains(".db")
                || name.ends_with(".sqlite");
            if !ours {
                let relative = path.strip_prefix(dir).expect("under dir");
                found.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    found
}

async fn rows(conn: &DatabaseConnection) -> (BTreeSet<String>, BTreeSet<String>) {
    let found = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT CAST(id AS TEXT), file_path FROM datasets",
        ))
        .await
        .expect("datasets");
    let ids = found
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    let keys = found
        .iter()
        .map(|r| r.try_get_by_index(1).unwrap())
        .collect();
    (ids, keys)
}

async fn counted(conn: &DatabaseConnection) -> i64 {
    conn.query_one_raw(Statement::from_string(
        conn.get_database_backend(),
        "SELECT COALESCE(SUM(datasets_count), 0) FROM usage_tracking",
    ))
    .await
    .expect("usage")
    .expect("usage row")
    .try_get_by_index::<i64>(0)
    .expect("sum")
}

on_both!(kill_9_during_uploads, kill_9_during_uploads_body);
async fn kill_9_during_uploads_body(db: TestDb) {
    let data_dir = db.data_dir();
    let server = Process::serve(&db.url, &data_dir, &[]).await;
    let c = client();
    register(&c, &server.base, "crash@example.com").await;
    let conn = db.connect().await;
    conn.execute_unprepared("UPDATE users SET tier = 'pro'")
        .await
        .expect("pro tier");
    let token = login(&c, &server.base, "crash@example.com").await;

    // A client that sends the start of its file and then nothing: its upload is surely
    // mid-flight, with a partial file in staging, when the process dies.
    let staging = data_dir.join("datasets").join(".staging");
    let slow = {
        let body = reqwest::Body::wrap_stream(
            futures_util::stream::iter([Ok::<_, std::io::Error>(b"id,value\n1,2\n".to_vec())])
                .chain(futures_util::stream::pending()),
        );
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::stream(body).file_name("slow.csv"),
        );
        let request = c
            .post(format!("{}/api/v1/datasets", server.base))
            .bearer_auth(&token)
            .multipart(form)
            .send();
        tokio::spawn(request)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while files_in(&staging).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the slow upload never reached staging"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // ~2 MB each, so that the uploads are spread over receiving, parsing and committing
    // when the process dies.
    let csv: Vec<u8> = std::iter::once("id,value,label\n".to_owned())
        .chain((0..60_000).map(|i| format!("{i},{},row-{i}\n", i * 7)))
        .collect::<String>()
        .into_bytes();
    // The kill comes the moment the first upload is acknowledged: the others are then
    // spread over every stage of their way.
    let first_done = tokio::sync::Notify::new();
    let uploads = (0..UPLOADS).map(|i| {
        let (c, base, token, csv, first_done) =
            (&c, &server.base, &token, csv.clone(), &first_done);
        async move {
            let res = c
                .post(format!("{base}/api/v1/datasets"))
                .bearer_auth(token)
                .multipart(upload_form(&format!("u{i}.csv"), csv))
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .ok()?;
            if res.status() != 201 {
                return None;
            }
            let body: serde_json::Value = res.json().await.ok()?;
            first_done.notify_one();
            body["id"].as_str().map(str::to_owned)
        }
    });
    let kill = async {
        first_done.notified().await;
        server.signal("KILL");
    };
    let (acknowledged, ()) = tokio::join!(join_all(uploads), kill);
    let acknowledged: BTreeSet<String> = acknowledged.into_iter().flatten().collect();
    drop(server);
    slow.abort();
    assert!(
        !files_in(&staging).is_empty(),
        "the crash left partial uploads behind"
    );

    let restarted = Process::serve(&db.url, &data_dir, &[("IOPS_STORAGE_GRACE_SECS", "0")]).await;
    let store_root = data_dir.join("datasets");
    // The sweep runs in the background after start: give it a bounded moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (ids, keys) = loop {
        let (ids, keys) = rows(&conn).await;
        if stored_keys(&store_root) == keys || Instant::now() > deadline {
            break (ids, keys);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        stored_keys(&store_root),
        keys,
        "files and rows match one to one"
    );
    // The start-up sweep (grace 0) cleared the partial uploads: nothing is under the data
    // dir but the database, the key file, the logs and the committed datasets' files.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !files_in(&staging).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Columnar copies of committed datasets may be there (written after their uploads,
    // before the kill): derived files, each with its original.
    let expected: BTreeSet<String> = keys.iter().map(|k| format!("datasets/{k}")).collect();
    let (copies, files): (BTreeSet<String>, BTreeSet<String>) =
        files_under(&data_dir).into_iter().partition(|f| is_copy(f));
    assert_eq!(files, expected, "files left under IOPS_DATA_DIR");
    for copy in &copies {
        assert!(
            keys.iter()
                .any(|k| format!("datasets/{}", domain::storage::columnar_key(k)) == *copy),
            "a columnar copy without its dataset: {copy}"
        );
    }
    assert!(
        acknowledged.is_subset(&ids),
        "every upload answered 201 kept its row: {acknowledged:?} vs {ids:?}"
    );
    assert_eq!(
        counted(&conn).await,
        ids.len() as i64,
        "usage = committed datasets"
    );

    // And the service works as before.
    let token = login(&c, &restarted.base, "crash@example.com").await;
    let res = c
        .post(format!("{}/api/v1/datasets", restarted.base))
        .bearer_auth(&token)
        .multipart(upload_form("after.csv", b"a,b\n1,2\n".to_vec()))
        .send()
        .await
        .expect("upload after restart");
    assert_eq!(res.status(), 201);
    assert!(
        acknowledged.len() < UPLOADS,
        "the kill came after every upload finished: nothing was in flight"
    );
    eprintln!(
        "kill -9: {} of {UPLOADS} uploads acknowledged, {} committed",
        acknowledged.len(),
        ids.len()
    );
}
