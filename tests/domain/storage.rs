//! Dataset files on both kinds of store: the local folder and a real S3-compatible server
//! (moto, started on 127.0.0.1 by `support/s3.rs`). The upload, delete, failure, garbage and
//! migration rules run on each store, each on SQLite and on PostgreSQL.
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use chrono::Utc;
use domain::NewDataset;
use domain::Tier;
use domain::storage::{DatasetStore, Location, STALE_STAGING, Store};
use domain::{Domain, Error, FixedClock, Id, LimitKind, Settings};
use iops_tests::{TestDb, count};
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde_json::json;

use crate::support::default_now;
use crate::usage::{new_user, usage_row};

#[allow(dead_code, reason = "shared with the api tests, which use all of it")]
#[path = "../support/s3.rs"]
pub(crate) mod s3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Local,
    S3,
}

/// Runs `$body(TestDb, Kind)` on the four combinations, as tests in a module `$name`.
macro_rules! on_every_store {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::Kind;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn local_sqlite() {
                super::$body(iops_tests::TestDb::sqlite().await, Kind::Local).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn local_postgres() {
                super::$body(iops_tests::TestDb::postgres().await, Kind::Local).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn s3_sqlite() {
                super::$body(iops_tests::TestDb::sqlite().await, Kind::S3).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn s3_postgres() {
                super::$body(iops_tests::TestDb::postgres().await, Kind::S3).await;
            }
        }
    };
}

/// A domain over a migrated database and a fresh store of `kind`.
struct Env {
    domain: Domain,
    store: Store,
    kind: Kind,
    db: TestDb,
}

impl Env {
    async fn new(db: TestDb, kind: Kind) -> Self {
        Self::with_settings(db, kind, Settings::default()).await
    }

    async fn with_settings(db: TestDb, kind: Kind, settings: Settings) -> Self {
        let conn = db.migrated().await;
        let store = new_store(&db, kind).await;
        let domain = iops_tests::domain(
            conn,
            Arc::new(FixedClock::new(default_now())),
            Arc::new(store.clone()),
            settings,
        );
        Self {
            domain,
            store,
            kind,
            db,
        }
    }

    fn conn(&self) -> &sea_orm::DatabaseConnection {
        self.domain.database().connection()
    }

    /// Every dataset object in the store, sorted.
    async fn keys(&self) -> Vec<String> {
        keys_of(&self.store).await
    }

    fn staging_is_empty(&self) -> bool {
        std::fs::read_dir(self.store.staging_dir())
            .expect("read staging")
            .next()
            .is_none()
    }

    /// Nothing stored, staged, recorded or counted for `user` (and no one else).
    async fn assert_nothing_left(&self, user: Id) {
        assert_eq!(self.keys().await, Vec::<String>::new(), "{:?}", self.kind);
        assert!(self.staging_is_empty(), "staging not empty");
        assert_eq!(count(self.conn(), "datasets").await, 0);
        assert_eq!(
            usage_row(self.conn(), user, "2026-03")
                .await
                .map_or(0, |u| u.datasets_count),
            0
        );
    }
}

/// A new store of `kind` for the test: a folder in its temporary dir, or a new bucket
/// (with a key prefix, as deployments use) staging in its temporary dir.
async fn new_store(db: &TestDb, kind: Kind) -> Store {
    match kind {
        Kind::Local => Store::folder(db.data_dir().join("datasets"))
            .await
            .expect("open folder store"),
        Kind::S3 => {
            let server = s3::server();
            let bucket = server.new_bucket().await;
            Store::s3(
                server.builder(),
                &bucket,
                "iops/datasets",
                db.data_dir().join("staging"),
            )
            .await
            .expect("open S3 store")
        }
    }
}

async fn keys_of(store: &Store) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list()
        .await
        .expect("list store")
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    keys
}

fn csv(name: &str) -> NewDataset {
    NewDataset {
        content_type: Some("text/csv".to_owned()),
        ..file(name)
    }
}

/// An upload named `name`, its format told by the extension alone.
fn file(name: &str) -> NewDataset {
    NewDataset {
        name: None,
        file_name: name.to_owned(),
        content_type: None,
    }
}

/// `rows` lines of CSV after a header.
fn csv_body(rows: usize) -> Vec<u8> {
    let mut body = b"id,label,value\n".to_vec();
    for i in 0..rows {
        body.extend_from_slice(format!("{i},row number {i:08},{}.25\n", i * 3).as_bytes());
    }
    body
}

/// Publishes `bytes` under `key` the way an upload does (stage, write, publish).
async fn put(store: &Store, key: &str, bytes: &[u8]) {
    let staged = store.stage().await.expect("stage");
    std::fs::write(&staged, bytes).expect("write staged");
    store.publish(&staged, key).await.expect("publish");
    assert!(!staged.exists(), "publish consumes the staged file");
}

/// Records a dataset row pointing at `file_path` without any upload.
async fn insert_row(env: &Env, user: Id, file_path: &str) -> Id {
    let id = Id(uuid::Uuid::new_v4());
    let now = Utc::now().naive_utc();
    entity::datasets::ActiveModel {
        id: Set(id),
        user_id: Set(user),
        name: Set("hand-made".to_owned()),
        file_path: Set(Some(file_path.to_owned())),
        connection_id: Set(None),
        row_count: Set(Some(1)),
        column_count: Set(Some(1)),
        size_bytes: Set(Some(1)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(env.conn())
    .await
    .expect("insert dataset row");
    id
}

// ---------------------------------------------------------------------------------------
// Upload and delete
// ---------------------------------------------------------------------------------------

on_every_store!(upload_then_delete_leaves_nothing, upload_then_delete_body);
async fn upload_then_delete_body(db: TestDb, kind: Kind) {
    let env = Env::new(db, kind).await;
    let user = new_user(env.conn(), Tier::Free).await;
    let body = b"region,revenue\r\nNorth,125000.5\r\nSouth,98231.25\r\n";

    let dataset = env
        .domain
        .datasets
        .upload(user, csv("sales.csv"), &body[..])
        .await
        .unwrap();
    let key = format!("{user}/{}.csv", dataset.id);
    assert_eq!(dataset.file_path.as_deref(), Some(key.as_str()));
    assert_eq!(dataset.row_count, Some(2));
    assert_eq!(env.keys().await, vec![key.clone()]);
    assert_eq!(env.store.read(&key).await.unwrap(), body);
    assert!(env.store.exists(&key).await.unwrap());
    assert!(env.staging_is_empty());
    if let Location::Folder(root) = env.store.location() {
        // The default layout: the file at <root>/<key>, nothing else.
        assert_eq!(std::fs::read(root.join(&key)).unwrap(), body);
    }

    env.domain.datasets.delete(user, dataset.id).await.unwrap();
    assert_eq!(env.keys().await, Vec::<String>::new());
    assert!(!env.store.exists(&key).await.unwrap());
    assert_eq!(count(env.conn(), "datasets").await, 0);
    if let Location::Folder(root) = env.store.location() {
        // The user's folder went with its last file.
        assert!(!root.join(user.to_string()).exists());
    }
    // Deleting again: not found, and still nothing stored.
    assert!(matches!(
        env.domain.datasets.delete(user, dataset.id).await,
        Err(Error::NotFound)
    ));
}

on_every_store!(large_upload_goes_in_parts, large_upload_body);
async fn large_upload_body(db: TestDb, kind: Kind) {
    let env = Env::new(db, kind).await;
    let user = new_user(env.conn(), Tier::Free).await;
    // In a bucket: over two parts of the multipart upload (8 MiB each), and a partial last.
    let body = csv_body(600_000);
    assert!(body.len() > 2 * 8 * 1024 * 1024, "{}", body.len());

    let dataset = env
        .domain
        .datasets
        .upload(user, csv("big.csv"), body.as_slice())
        .await
        .unwrap();
    assert_eq!(dataset.row_count, Some(600_000));
    assert_eq!(dataset.size_bytes, Some(body.len() as i64));
    let key = dataset.file_path.clone().unwrap();
    let stored = env.store.list().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].size, body.len() as u64);
    assert!(env.store.read(&key).await.unwrap() == body, "bytes differ");
    assert!(env.staging_is_empty());

    env.domain.datasets.delete(user, dataset.id).await.unwrap();
    env.assert_nothing_left_but_usage().await;
}

impl Env {
    async fn assert_nothing_left_but_usage(&self) {
        assert_eq!(self.keys().await, Vec::<String>::new());
        assert!(self.staging_is_empty());
        assert_eq!(count(self.conn(), "datasets").await, 0);
    }
}

/// A body that gives `good` bytes, then fails.
struct BreaksAfter {
    good: Vec<u8>,
}

impl tokio::io::AsyncRead for BreaksAfter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.good.is_empty() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "client went away",
            )));
        }
        let n = buf.remaining().min(self.good.len());
        let chunk: Vec<u8> = self.good.drain(..n).collect();
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

/// A body that gives `good` bytes, then never anything more (a stalled client).
struct StallsAfter {
    good: Vec<u8>,
}

impl tokio::io::AsyncRead for StallsAfter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.good.is_empty() {
            return Poll::Pending;
        }
        let n = buf.remaining().min(self.good.len());
        let chunk: Vec<u8> = self.good.drain(..n).collect();
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

on_every_store!(failed_uploads_leave_nothing, failed_uploads_body);
async fn failed_uploads_body(db: TestDb, kind: Kind) {
    let env = Env::with_settings(
        db,
        kind,
        Settings {
            max_upload_bytes: 64 * 1024,
            ..Settings::default()
        },
    )
    .await;
    let user = new_user(env.conn(), Tier::Free).await;
    let datasets = &env.domain.datasets;

    // Does not parse.
    let result = datasets
        .upload(user, csv("ragged.csv"), &b"a,b\n1,2\n3\n"[..])
        .await;
    assert!(matches!(result, Err(Error::Validation(_))), "{result:?}");
    env.assert_nothing_left(user).await;

    // Too large.
    let result = datasets
        .upload(user, csv("big.csv"), csv_body(5_000).as_slice())
        .await;
    assert!(
        matches!(result, Err(Error::PayloadTooLarge { .. })),
        "{result:?}"
    );
    env.assert_nothing_left(user).await;

    // The body breaks mid-way.
    let result = datasets
        .upload(
            user,
            csv("broken.csv"),
            BreaksAfter {
                good: csv_body(100),
            },
        )
        .await;
    assert!(matches!(result, Err(Error::Storage(_))), "{result:?}");
    env.assert_nothing_left(user).await;

    // The client stalls and the request is abandoned (the upload future is dropped).
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        datasets.upload(
            user,
            csv("stalled.csv"),
            StallsAfter {
                good: csv_body(100),
            },
        ),
    )
    .await;
    assert!(abandoned.is_err(), "the upload should still be waiting");
    wait_for(|| env.staging_is_empty()).await;
    env.assert_nothing_left(user).await;

    // An unknown user: the file was published before the insert failed, and taken back.
    let ghost = Id(uuid::Uuid::new_v4());
    let result = datasets.upload(ghost, csv("ok.csv"), &b"a\n1\n"[..]).await;
    assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
    env.assert_nothing_left(user).await;

    // The month's allowance: the refused sixth upload leaves no file.
    let mut kept = Vec::new();
    for i in 0..5 {
        let d = datasets
            .upload(user, csv(&format!("f{i}.csv")), &b"a\n1\n"[..])
            .await
            .unwrap();
        kept.push(d.file_path.unwrap());
    }
    let refused = datasets.upload(user, csv("f5.csv"), &b"a\n1\n"[..]).await;
    assert!(
        matches!(
            refused,
            Err(Error::LimitExceeded {
                limit: LimitKind::Datasets,
                ..
            })
        ),
        "{refused:?}"
    );
    kept.sort();
    assert_eq!(env.keys().await, kept);
    assert!(env.staging_is_empty());
    assert_eq!(count(env.conn(), "datasets").await, 5);
}

async fn wait_for(condition: impl Fn() -> bool) {
    for _ in 0..100 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(condition(), "condition not met within 5 s");
}

on_every_store!(a_failing_store_records_nothing, failing_store_body);
async fn failing_store_body(db: TestDb, kind: Kind) {
    let env = Env::new(db, kind).await;
    let user = new_user(env.conn(), Tier::Free).await;
    // A store that cannot take the file: a bucket that does not exist, or a folder where
    // the user's directory is taken by a file.
    let broken = match kind {
        Kind::S3 => Store::s3(
            s3::server().builder(),
            "iops-test-no-such-bucket",
            "",
            env.db.data_dir().join("broken-staging"),
        )
        .await
        .unwrap(),
        Kind::Local => {
            let Location::Folder(root) = env.store.location() else {
                unreachable!("a local store is a folder")
            };
            std::fs::write(root.join(user.to_string()), b"in the way").unwrap();
            env.store.clone()
        }
    };
    let domain = env.domain.with_store(Arc::new(broken.clone()));

    let result = domain
        .datasets
        .upload(user, csv("ok.csv"), &b"a\n1\n"[..])
        .await;
    assert!(matches!(result, Err(Error::Storage(_))), "{result:?}");
    if kind == Kind::Local {
        std::fs::remove_file(env.db.data_dir().join("datasets").join(user.to_string())).unwrap();
    }
    assert_eq!(count(env.conn(), "datasets").await, 0);
    assert!(usage_row(env.conn(), user, "2026-03").await.is_none());
    assert!(
        std::fs::read_dir(broken.staging_dir())
            .unwrap()
            .next()
            .is_none(),
        "staging not empty"
    );
    assert_eq!(env.keys().await, Vec::<String>::new());
}

on_every_store!(deleting_an_account_deletes_its_files, account_delete_body);
async fn account_delete_body(db: TestDb, kind: Kind) {
    let env = Env::new(db, kind).await;
    let alice = new_user(env.conn(), Tier::Pro).await;
    let bob = new_user(env.conn(), Tier::Pro).await;
    let mut bobs = Vec::new();
    for i in 0..3 {
        env.domain
            .datasets
            .upload(alice, csv(&format!("a{i}.csv")), &b"a\n1\n"[..])
            .await
            .unwrap();
        let d = env
            .domain
            .datasets
            .upload(bob, csv(&format!("b{i}.csv")), &b"b\n2\n"[..])
            .await
            .unwrap();
        bobs.push(d.file_path.unwrap());
    }
    assert_eq!(env.keys().await.len(), 6);

    env.domain.accounts.delete(alice).await.unwrap();
    bobs.sort();
    assert_eq!(env.keys().await, bobs);
    assert_eq!(count(env.conn(), "datasets").await, 3);
}

// ---------------------------------------------------------------------------------------
// Garbage collection
// ---------------------------------------------------------------------------------------

on_every_store!(gc_clears_partial_uploads_but_not_live_ones, staging_gc_body);
async fn staging_gc_body(db: TestDb, kind: Kind) {
    use domain::storage::DatasetStore;
    let env = Env::new(db, kind).await;
    // A crash's leftover: a partial upload no process is writing.
    let leftover = env.store.staging_dir().join("0123abcd.part");
    std::fs::write(&leftover, b"id,value\n1,").unwrap();
    // An upload of this process, in progress (its client is slow).
    let live = env.store.stage().await.unwrap();
    std::fs::write(&live, b"id,value\n").unwrap();

    // The default grace keeps both: the leftover is too young to be sure.
    let db = env.domain.database();
    let report = env
        .store
        .collect_garbage(db, Utc::now(), STALE_STAGING, false)
        .await
        .unwrap();
    assert_eq!(report.staging_removed, 0);
    assert!(leftover.exists() && live.exists());

    // A dry run with no grace names the leftover only and removes nothing.
    let zero = std::time::Duration::ZERO;
    let report = env
        .store
        .collect_garbage(db, Utc::now(), zero, true)
        .await
        .unwrap();
    assert_eq!(report.staging_removed, 1);
    assert!(leftover.exists());

    // No grace (one server): the leftover goes; the live upload is never touched.
    let report = env
        .store
        .collect_garbage(db, Utc::now(), zero, false)
        .await
        .unwrap();
    assert_eq!(report.staging_removed, 1);
    assert!(!leftover.exists());
    assert!(live.exists(), "an upload in progress lost its file");
    // Once the upload is over, its file is the store's no more.
    env.store.discard(&live).await.unwrap();
    assert!(env.staging_is_empty());
    let report = env
        .store
        .collect_garbage(db, Utc::now(), zero, false)
        .await
        .unwrap();
    assert_eq!(report.staging_removed, 0);
}

on_every_store!(gc_removes_old_unreferenced_files_only, gc_body);
async fn gc_body(db: TestDb, kind: Kind) {
    let env = Env::new(db, kind).await;
    let user = new_user(env.conn(), Tier::Pro).await;
    let kept = env
        .domain
        .datasets
        .upload(user, csv("kept.csv"), &b"a\n1\n"[..])
        .await
        .unwrap()
        .file_path
        .unwrap();
    // What a crash leaves: objects whose row never committed (or was deleted first).
    let orphans = [
        format!("{user}/{}.csv", Id(uuid::Uuid::new_v4())),
        format!(
            "{}/{}.json",
            Id(uuid::Uuid::new_v4()),
            Id(uuid::Uuid::new_v4())
        ),
    ];
    for key in &orphans {
        put(&env.store, key, b"x\n1\n").await;
    }
    // Not laid out as a dataset: never touched.
    put(&env.store, "notes/readme.txt", b"hello").await;
    let mut all = vec![kept.clone(), "notes/readme.txt".to_owned()];
    all.extend(orphans.iter().cloned());
    all.sort();
    assert_eq!(env.keys().await, all);

    // Now: everything is younger than an hour, so nothing goes.
    let report = env
        .store
        .collect_garbage(env.domain.database(), Utc::now(), STALE_STAGING, false)
        .await
        .unwrap();
    assert_eq!(report.examined, 3);
    assert_eq!(report.too_recent, 2);
    assert!(report.removed.is_empty());
    assert_eq!(env.keys().await, all);

    // Two hours on, a dry run names the orphans and removes nothing.
    let later = Utc::now() + chrono::Duration::hours(2);
    let mut expected = orphans.to_vec();
    expected.sort();
    let mut report = env
        .store
        .collect_garbage(env.domain.database(), later, STALE_STAGING, true)
        .await
        .unwrap();
    report.removed.sort();
    assert_eq!(report.removed, expected);
    assert_eq!(env.keys().await, all);

    // The real run removes exactly them.
    let mut report = env
        .store
        .collect_garbage(env.domain.database(), later, STALE_STAGING, false)
        .await
        .unwrap();
    report.removed.sort();
    assert_eq!(report.removed, expected);
    let mut left = vec![kept.clone(), "notes/readme.txt".to_owned()];
    left.sort();
    assert_eq!(env.keys().await, left);
    // The referenced file is intact.
    assert_eq!(env.store.read(&kept).await.unwrap(), b"a\n1\n");
}

// ---------------------------------------------------------------------------------------
// Migration between stores
// ---------------------------------------------------------------------------------------

on_every_store!(migration_copies_referenced_files, migration_body);
async fn migration_body(db: TestDb, kind: Kind) {
    // From `kind` to the other kind.
    let env = Env::new(db, kind).await;
    let target_kind = match kind {
        Kind::Local => Kind::S3,
        Kind::S3 => Kind::Local,
    };
    let target = new_store(&env.db, target_kind).await;
    let user = new_user(env.conn(), Tier::Pro).await;

    let mut referenced = Vec::new();
    for i in 0..3 {
        let d = env
            .domain
            .datasets
            .upload(user, csv(&format!("f{i}.csv")), csv_body(i * 10).as_slice())
            .await
            .unwrap();
        referenced.push(d.file_path.unwrap());
    }
    // A file large enough to be copied in parts.
    let big_key = format!("{user}/{}.csv", Id(uuid::Uuid::new_v4()));
    let big = csv_body(400_000);
    put(&env.store, &big_key, &big).await;
    insert_row(&env, user, &big_key).await;
    referenced.push(big_key.clone());
    referenced.sort();
    // A row whose file is gone, a row of another era, and an unreferenced object.
    let lost = format!("{user}/{}.csv", Id(uuid::Uuid::new_v4()));
    insert_row(&env, user, &lost).await;
    insert_row(&env, user, "/var/lib/iops/uploads/old.csv").await;
    put(
        &env.store,
        &format!("{user}/{}.csv", Id(uuid::Uuid::new_v4())),
        b"orphan",
    )
    .await;

    let report = env
        .store
        .migrate_to(env.domain.database(), &target)
        .await
        .unwrap();
    assert_eq!(report.copied, 4);
    assert_eq!(report.already_there, 0);
    assert_eq!(report.missing, vec![lost.clone()]);
    assert_eq!(report.not_keys, vec!["/var/lib/iops/uploads/old.csv"]);
    assert_eq!(keys_of(&target).await, referenced);
    for key in &referenced {
        assert!(
            target.read(key).await.unwrap() == env.store.read(key).await.unwrap(),
            "{key} differs"
        );
    }

    // Idempotent: a second run copies nothing.
    let again = env
        .store
        .migrate_to(env.domain.database(), &target)
        .await
        .unwrap();
    assert_eq!((again.copied, again.already_there), (0, 4));

    // Resumable: what an interrupted run left out (or left wrong) is copied on the next.
    let small = referenced.iter().find(|k| **k != big_key).unwrap();
    target.remove(small).await.unwrap();
    put(&target, &big_key, b"truncated").await;
    let resumed = env
        .store
        .migrate_to(env.domain.database(), &target)
        .await
        .unwrap();
    assert_eq!((resumed.copied, resumed.already_there), (2, 2));
    assert!(target.read(&big_key).await.unwrap() == big);

    // The same database now works over the target: deleting through it leaves nothing.
    let moved = env.domain.with_store(Arc::new(target.clone()));
    moved.accounts.delete(user).await.unwrap();
    assert_eq!(keys_of(&target).await, Vec::<String>::new());
    assert_eq!(count(env.conn(), "datasets").await, 0);
}

// ---------------------------------------------------------------------------------------
// Readiness and start-up checks
// ---------------------------------------------------------------------------------------

on_every_store!(readiness_follows_the_store, readiness_body);
async fn readiness_body(db: TestDb, kind: Kind) {
    let env = Env::new(db, kind).await;
    assert!(env.store.ready().await);
    env.store.check().await.unwrap();

    let gone = match kind {
        Kind::Local => {
            let root = env.db.data_dir().join("elsewhere");
            let store = Store::folder(root.clone()).await.unwrap();
            std::fs::remove_dir_all(&root).unwrap();
            store
        }
        Kind::S3 => {
            // Nothing listens on this port.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            Store::s3(
                s3::server()
                    .builder()
                    .with_endpoint(format!("http://127.0.0.1:{port}")),
                "iops-test-unreachable",
                "",
                env.db.data_dir().join("unreachable-staging"),
            )
            .await
            .unwrap()
        }
    };
    assert!(!gone.ready().await);
    assert!(gone.check().await.is_err());
    if kind == Kind::S3 {
        // A reachable server without the bucket fails the start-up check too.
        let missing = Store::s3(
            s3::server().builder(),
            "iops-test-missing-bucket",
            "",
            env.db.data_dir().join("missing-staging"),
        )
        .await
        .unwrap();
        assert!(missing.check().await.is_err());
    }
}

// ---------------------------------------------------------------------------------------
// Analyses read the files where the store keeps them
// ---------------------------------------------------------------------------------------

on_every_store!(analyses_run_on_the_stored_file, analyses_run_body);
async fn analyses_run_body(db: TestDb, kind: Kind) {
    let env = Env::new(db, kind).await;
    let user = new_user(env.conn(), Tier::Free).await;
    let body = b"region,revenue,day\nnorth,10,2026-01-05\nsouth,7,2026-01-06\nnorth,5,2026-02-01\n";
    let dataset = env
        .domain
        .datasets
        .upload(user, csv("sales.csv"), &body[..])
        .await
        .unwrap();
    let columns: Vec<(String, domain::DataType)> = dataset
        .columns
        .clone()
        .expect("columns read at upload")
        .into_iter()
        .map(|c| (c.name, c.kind))
        .collect();
    use domain::DataType as T;
    assert_eq!(
        columns,
        [
            ("region".to_owned(), T::String),
            ("revenue".to_owned(), T::Integer),
            ("day".to_owned(), T::Date)
        ]
    );
    let preview = env
        .domain
        .datasets
        .preview(user, dataset.id, 2)
        .await
        .unwrap();
    assert_eq!(
        preview.rows,
        vec![
            vec![json!("north"), json!(10), json!("2026-01-05")],
            vec![json!("south"), json!(7), json!("2026-01-06")]
        ]
    );
    let analysis = env
        .domain
        .analyses
        .create(
            user,
            domain::NewAnalysis {
                name: "By region".into(),
                dataset_id: Some(dataset.id),
                config: Some(json!({"query": {"sql": "SELECT region, SUM(revenue) AS revenue FROM data GROUP BY region ORDER BY region"}})),
            },
        )
        .await
        .unwrap();
    let ran = env.domain.analyses.run(user, analysis.id).await.unwrap();
    let results = ran.results.expect("results stored");
    assert_eq!(results["rows"], json!([["north", 15], ["south", 7]]));
    // The file went with the dataset: a run then fails on the data, naming no location.
    env.domain.datasets.delete(user, dataset.id).await.unwrap();
    let failed = env.domain.analyses.run(user, analysis.id).await;
    assert!(
        matches!(failed, Err(Error::Validation(_))),
        "the analysis lost its dataset (ON DELETE SET NULL): nothing to read, {failed:?}"
    );
}

/// Waits (up to a minute: a debug build writes copies slowly) until the store holds `key`.
async fn wait_for_key(store: &Store, key: &str) {
    for _ in 0..600 {
        if store.exists(key).await.expect("look in the store") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} did not appear within a minute");
}

/// A CSV with every kind of value a copy must keep: integers, decimals, text with quotes,
/// commas and line breaks, dates, booleans and empty (null) fields.
fn mixed_csv(rows: usize) -> Vec<u8> {
    let mut body = String::from("id,label,amount,day,flag,note\n");
    for i in 0..rows {
        let note = match i % 4 {
            0 => String::new(),
            1 => format!("\"said \"\"hi\"\", {i}\""),
            2 => format!("\"two\nlines {i}\""),
            _ => format!("plain {i}"),
        };
        body.push_str(&format!(
            "{i},l{},{}.{:02},2026-{:02}-{:02},{},{note}\n",
            i % 7,
            i * 3,
            i % 100,
            1 + i % 12,
            1 + i % 28,
            i % 3 == 0
        ));
    }
    body.into_bytes()
}

async fn run_sql(domain: &Domain, user: Id, dataset: Id, sql: &str) -> serde_json::Value {
    let analysis = domain
        .analyses
        .create(
            user,
            domain::NewAnalysis {
                name: "copy check".into(),
                dataset_id: Some(dataset),
                config: Some(json!({ "query": { "sql": sql } })),
            },
        )
        .await
        .unwrap();
    let results = domain
        .analyses
        .run(user, analysis.id)
        .await
        .unwrap()
        .results
        .expect("results stored");
    json!({"columns": results["columns"], "rows": results["rows"]})
}

on_every_store!(columnar_copies_are_read_kept_and_removed, columnar_body);
async fn columnar_body(db: TestDb, kind: Kind) {
    let env = Env::with_settings(
        db,
        kind,
        Settings {
            columnar_min_bytes: Some(0),
            ..Settings::default()
        },
    )
    .await;
    // The same database and store without copies: runs read the uploaded files only.
    let plain = iops_tests::domain(
        env.conn().clone(),
        Arc::new(FixedClock::new(default_now())),
        Arc::new(env.store.clone()),
        Settings::default(),
    );
    let user = new_user(env.conn(), Tier::Pro).await;
    let mixed = env
        .domain
        .datasets
        .upload(user, csv("mixed.csv"), mixed_csv(3_000).as_slice())
        .await
        .unwrap();
    let lines: String = (0..500)
        .map(|i| format!("{{\"k\":\"k{}\",\"n\":{i},\"x\":{}.5}}\n", i % 5, i * 2))
        .collect();
    let ndjson = env
        .domain
        .datasets
        .upload(user, file("lines.ndjson"), lines.as_bytes())
        .await
        .unwrap();
    let (mixed_key, ndjson_key) = (mixed.file_path.unwrap(), ndjson.file_path.unwrap());
    let mixed_copy = domain::storage::columnar_key(&mixed_key);
    // Written after the upload, next to the original, which stays as it was.
    wait_for_key(&env.store, &mixed_copy).await;
    wait_for_key(&env.store, &domain::storage::columnar_key(&ndjson_key)).await;
    assert!(env.store.read(&mixed_key).await.unwrap() == mixed_csv(3_000));

    // Whichever file a run reads, the answer is the same: every value, type and null.
    let queries = [
        (mixed.id, "SELECT * FROM data ORDER BY id"),
        (
            mixed.id,
            "SELECT label, COUNT(*) AS n, SUM(amount) AS total, MIN(day) AS first, \
             COUNT(note) AS notes, SUM(CASE WHEN flag THEN 1 ELSE 0 END) AS flagged \
             FROM data GROUP BY label ORDER BY label",
        ),
        (
            ndjson.id,
            "SELECT k, SUM(n) AS n, AVG(x) AS x FROM data GROUP BY k ORDER BY k",
        ),
    ];
    for (dataset, sql) in queries {
        let from_copy = run_sql(&env.domain, user, dataset, sql).await;
        let from_original = run_sql(&plain, user, dataset, sql).await;
        assert_eq!(from_copy, from_original, "{sql}");
    }
    let all = run_sql(
        &env.domain,
        user,
        mixed.id,
        "SELECT * FROM data ORDER BY id",
    )
    .await;
    assert_eq!(all["rows"][2][5], json!("two\nlines 2"));
    assert_eq!(all["rows"][1][5], json!("said \"hi\", 1"));
    assert_eq!(all["rows"][0][5], json!(null));

    // Runs read the copy: put another dataset's copy in its place, and they answer with
    // that dataset's rows.
    let count = "SELECT COUNT(*) AS n FROM data";
    let copy_bytes = env
        .store
        .read(&domain::storage::columnar_key(&ndjson_key))
        .await
        .unwrap();
    put(&env.store, &mixed_copy, &copy_bytes).await;
    assert_eq!(
        run_sql(&env.domain, user, mixed.id, count).await["rows"],
        json!([[500]])
    );
    // A missing copy: the run reads the original, and the copy is written again.
    env.store.remove(&mixed_copy).await.unwrap();
    assert_eq!(
        run_sql(&env.domain, user, mixed.id, count).await["rows"],
        json!([[3000]])
    );
    wait_for_key(&env.store, &mixed_copy).await;
    assert_eq!(
        run_sql(&env.domain, user, mixed.id, count).await["rows"],
        json!([[3000]])
    );

    // Copies count toward no limit.
    let usage = env.domain.usage.report(user).await.unwrap();
    assert_eq!(usage.datasets.used, 2, "{usage:?}");

    // The garbage collection keeps a live dataset's copy and removes one whose original
    // no row references.
    let stray = domain::storage::columnar_key(&format!("{user}/{}.csv", Id(uuid::Uuid::new_v4())));
    put(&env.store, &stray, &copy_bytes).await;
    let report = env
        .store
        .collect_garbage(env.domain.database(), Utc::now(), Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(report.removed, vec![stray]);
    let mut expected = vec![
        mixed_key.clone(),
        mixed_copy.clone(),
        ndjson_key.clone(),
        domain::storage::columnar_key(&ndjson_key),
    ];
    expected.sort();
    assert_eq!(env.keys().await, expected);

    // A dataset's copy goes with it, and so do an account's.
    env.domain.datasets.delete(user, mixed.id).await.unwrap();
    let mut expected = vec![
        ndjson_key.clone(),
        domain::storage::columnar_key(&ndjson_key),
    ];
    expected.sort();
    assert_eq!(env.keys().await, expected);
    env.domain.accounts.delete(user).await.unwrap();
    assert_eq!(env.keys().await, Vec::<String>::new());
    assert!(env.staging_is_empty());
}

on_every_store!(
    an_uploads_columns_are_those_of_its_stored_file,
    upload_columns_body
);
async fn upload_columns_body(db: TestDb, kind: Kind) {
    use domain::DataType as T;
    use domain::query::COLUMNS_SAMPLE_BYTES;

    let env = Env::new(db, kind).await;
    let engine =
        engine::DataFusionEngine::new(env.store.objects(), iops_tests::query_settings()).unwrap();
    let user = new_user(env.conn(), Tier::Enterprise).await;
    // Rows of ~1 KiB: fewer than the 10,000 records inference reads fit in the sample, so
    // the records at and after its end would change `b`'s type (text there) if an upload
    // read its columns from more than the sample, or took the cut record as whole.
    for file_name in ["wide.csv", "wide.tsv", "wide.ndjson", "wide.json"] {
        let mut body = match file_name {
            "wide.csv" => b"a,b,pad\n".to_vec(),
            "wide.tsv" => b"a\tb\tpad\n".to_vec(),
            "wide.json" => b"[".to_vec(),
            _ => Vec::new(),
        };
        let mut i = 0;
        while body.len() < COLUMNS_SAMPLE_BYTES + (512 << 10) {
            let mut record = wide_record(file_name, i, &json!(i));
            if body.len() + record.len() > COLUMNS_SAMPLE_BYTES {
                record = wide_record(file_name, i, &json!(format!("late{i}")));
            }
            body.extend(record.bytes());
            i += 1;
        }
        if file_name == "wide.json" {
            body.push(b']');
        }
        assert!(i < 10_000, "{file_name}: {i} rows");
        let (at_upload, stored) =
            columns_at_upload_and_stored(&env.domain, &engine, user, file_name, &body).await;
        assert_eq!(
            kinds(&at_upload),
            [("a", T::Integer), ("b", T::Integer), ("pad", T::String)],
            "{file_name}"
        );
        assert_eq!(at_upload, stored, "{file_name}");
    }
}

/// Uploads `body` as `file_name` through `domain`: the columns the upload read, and those
/// `engine` reads from the stored file.
async fn columns_at_upload_and_stored(
    domain: &Domain,
    engine: &engine::DataFusionEngine,
    user: Id,
    file_name: &str,
    body: &[u8],
) -> (Vec<domain::DataColumn>, Vec<domain::DataColumn>) {
    use domain::query::{QueryEngine, TableSource};

    let dataset = domain
        .datasets
        .upload(user, file(file_name), body)
        .await
        .unwrap();
    let stored = engine
        .columns(&TableSource {
            alias: "data".to_owned(),
            key: dataset.file_path.clone().expect("stored"),
            format: domain::Format::detect(file_name, None).unwrap(),
            columnar: None,
        })
        .await
        .unwrap();
    (dataset.columns.expect("columns read at upload"), stored)
}

/// Each column's name and kind.
fn kinds(columns: &[domain::DataColumn]) -> Vec<(&str, domain::DataType)> {
    columns.iter().map(|c| (c.name.as_str(), c.kind)).collect()
}

iops_tests::on_both!(
    an_ndjson_uploads_columns_are_read_from_its_first_records_only,
    ndjson_first_records_body
);
async fn ndjson_first_records_body(db: TestDb) {
    use domain::DataType as T;
    use domain::query::COLUMNS_SAMPLE_RECORDS;

    let env = Env::new(db, Kind::Local).await;
    let counting = Arc::new(CountingEngine::new(&env));
    let domain = counting.domain(&env);
    let user = new_user(env.conn(), Tier::Enterprise).await;
    // Short records with a blank line after every hundredth (not records); from record
    // 10,001 on `b` is text, which would make it a text column if the upload read its
    // columns from more than the first 10,000 records.
    let mut body = Vec::new();
    for i in 0..3 * COLUMNS_SAMPLE_RECORDS {
        let b = match i < COLUMNS_SAMPLE_RECORDS {
            true => json!(i),
            false => json!(format!("late{i}")),
        };
        body.extend(format!("{}\n", json!({"a": i, "b": b})).bytes());
        if i % 100 == 0 {
            body.extend(b" \t\n");
        }
    }
    let (at_upload, stored) =
        columns_at_upload_and_stored(&domain, &counting.inner, user, "short.ndjson", &body).await;
    assert_eq!(kinds(&at_upload), [("a", T::Integer), ("b", T::Integer)]);
    assert_eq!(at_upload, stored);
    // Read from a start that holds those records, not from the whole file.
    let starts = counting.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert!(
        starts[0] < body.len() / 2,
        "{} of {}",
        starts[0],
        body.len()
    );
}

/// Record `i` of a file named `file_name`, ~1 KiB: `a` is `i`, `b` is `b`, then a long `pad`.
fn wide_record(file_name: &str, i: usize, b: &serde_json::Value) -> String {
    let pad = "p".repeat(1000);
    let text = b.as_str().map_or_else(|| b.to_string(), str::to_owned);
    let object = json!({"a": i, "b": b, "pad": pad});
    match file_name {
        "wide.csv" => format!("{i},{text},{pad}\n"),
        "wide.tsv" => format!("{i}\t{text}\t{pad}\n"),
        "wide.ndjson" => format!("{object}\n"),
        _ if i == 0 => object.to_string(),
        _ => format!(",\n{object}"),
    }
}

/// The real engine, counting the files whose columns it is asked for, and noting the size
/// of each upload's start it reads columns from.
struct CountingEngine {
    inner: engine::DataFusionEngine,
    asked: std::sync::atomic::AtomicUsize,
    starts: std::sync::Mutex<Vec<usize>>,
}

impl CountingEngine {
    fn new(env: &Env) -> Self {
        Self {
            inner: engine::DataFusionEngine::new(env.store.objects(), iops_tests::query_settings())
                .unwrap(),
            asked: Default::default(),
            starts: Default::default(),
        }
    }

    /// A domain on `env`'s database and store that reads columns through this engine.
    fn domain(self: &Arc<Self>, env: &Env) -> Domain {
        Domain::new(
            domain::Context::new(
                env.domain.database().clone(),
                Arc::new(FixedClock::new(default_now())),
                domain::Hasher::new(2),
            )
            .with_store(Arc::new(env.store.clone()))
            .with_engine(self.clone()),
        )
    }
}

#[async_trait::async_trait]
impl domain::query::QueryEngine for CountingEngine {
    async fn run(
        &self,
        query: &domain::query::Query,
        tables: &[domain::query::TableSource],
    ) -> Result<domain::query::QueryOutput, domain::query::QueryFailure> {
        self.inner.run(query, tables).await
    }

    async fn columns(
        &self,
        table: &domain::query::TableSource,
    ) -> Result<Vec<domain::DataColumn>, domain::query::QueryFailure> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.columns(table).await
    }

    async fn columns_of_start(
        &self,
        format: domain::Format,
        start: bytes::Bytes,
        whole: bool,
    ) -> Result<Vec<domain::DataColumn>, domain::query::QueryFailure> {
        self.starts.lock().unwrap().push(start.len());
        self.inner.columns_of_start(format, start, whole).await
    }

    async fn write_columnar(
        &self,
        table: &domain::query::TableSource,
        out: &std::path::Path,
    ) -> Result<(), domain::query::QueryFailure> {
        self.inner.write_columnar(table, out).await
    }
}

iops_tests::on_both!(unreadable_files_are_not_read_on_every_list, unreadable_body);
async fn unreadable_body(db: TestDb) {
    let env = Env::new(db, Kind::Local).await;
    let counting = Arc::new(CountingEngine::new(&env));
    let domain = counting.domain(&env);
    let user = new_user(env.conn(), Tier::Pro).await;
    // Rows of another era: files that are not there, and one that is, none with columns kept.
    for _ in 0..6 {
        insert_row(
            &env,
            user,
            &format!("{user}/{}.csv", Id(uuid::Uuid::new_v4())),
        )
        .await;
    }
    let there = format!("{user}/{}.csv", Id(uuid::Uuid::new_v4()));
    put(&env.store, &there, b"a,b\n1,x\n").await;
    let readable = insert_row(&env, user, &there).await;

    let page = domain
        .datasets
        .list(user, &crate::analyses::first_page())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 7);
    for dataset in &page.items {
        assert_eq!(
            dataset.columns.is_some(),
            dataset.id == readable,
            "{dataset:?}"
        );
    }
    assert_eq!(counting.asked.load(std::sync::atomic::Ordering::SeqCst), 7);
    // The readable one's columns are kept; the others are not asked for again yet.
    let page = domain
        .datasets
        .list(user, &crate::analyses::first_page())
        .await
        .unwrap();
    assert_eq!(page.items.iter().filter(|d| d.columns.is_some()).count(), 1);
    assert_eq!(counting.asked.load(std::sync::atomic::Ordering::SeqCst), 7);
}
