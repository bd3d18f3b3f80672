//! Crash safety (issue item 1): `kill -9` of `iops serve` while 20 uploads are in flight,
//! then a restart. Whatever stage each upload had reached (receiving, parsing, counting,
//! committing), afterwards every dataset row has its file, no stored file lacks its row
//! (the start-up sweep clears what the crash left; a single server may use
//! `IOPS_STORAGE_GRACE_SECS=0`), every upload answered `201` kept its row, and the month's
//! usage equals the datasets that committed.
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use iops_tests::{TestDb, on_both};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::support::{Process, client, login, register, upload_form};

const UPLOADS: usize = 20;

/// Relative keys of the published files (the staging folder is not the store's content).
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
            keys.insert(format!("{name}/{}", file.file_name().to_string_lossy()));
        }
    }
    keys
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
