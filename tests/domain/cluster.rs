//! Analyses on an Apache Ballista cluster (`IOPS_ENGINE_URL=df://HOST:PORT`): a real
//! scheduler and executor (`iops cluster ...` processes) started on this machine, reading
//! the datasets from moto's S3, as a deployment of several servers would. Each query's
//! answer is checked against a plain fold over the generated rows.
use std::collections::BTreeMap;
use std::sync::Arc;

use domain::query::FailureReason;
use domain::storage::{DatasetStore, Store};
use domain::{Error, FixedClock, Id, NewAnalysis, NewDataset, Settings, Tier};
use iops_tests::TestDb;
use iops_tests::cluster::Cluster;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::storage::s3;
use crate::support::default_now;
use crate::usage::new_user;

/// Where the shared cluster's datasets live: one bucket, the tests' keys are their users'.
struct Shared {
    cluster: Cluster,
    bucket: String,
    _dir: tempfile::TempDir,
}

const PREFIX: &str = "iops/datasets";

/// One cluster per test binary (a scheduler and executor take seconds to start).
async fn shared() -> &'static Shared {
    static SHARED: OnceCell<Shared> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let server = s3::server();
            let bucket = server.new_bucket().await;
            let dir = tempfile::tempdir().expect("cluster folder");
            let cluster = Cluster::start(
                &format!("s3://{bucket}/{PREFIX}"),
                &server.aws_env(),
                dir.path(),
            );
            Shared {
                cluster,
                bucket,
                _dir: dir,
            }
        })
        .await
}

/// The domain over `db` with the shared bucket as its store and analyses sent to
/// `cluster`, and that store.
async fn domain_on(
    db: &TestDb,
    cluster: engine::ClusterAddress,
    settings: Settings,
) -> (domain::Domain, Store) {
    let shared = shared().await;
    let store = Store::s3(
        s3::server().builder(),
        &shared.bucket,
        PREFIX,
        db.data_dir().join("staging"),
    )
    .await
    .expect("open the S3 store");
    let domain = iops_tests::domain_with(
        db.migrated().await,
        Arc::new(FixedClock::new(default_now())),
        Arc::new(store.clone()),
        settings,
        None,
        engine::EngineSettings {
            cluster: Some(cluster),
            ..iops_tests::query_settings()
        },
    );
    (domain, store)
}

/// One generated sale.
struct Sale {
    id: i64,
    region: &'static str,
    product: String,
    qty: i64,
    /// In cents, written as a decimal.
    cents: i64,
    month: i64,
}

const REGIONS: [&str; 4] = ["east", "north", "south", "west"];

fn sales(n: i64) -> Vec<Sale> {
    (0..n)
        .map(|id| {
            let day = (id * 7) % 180;
            Sale {
                id,
                region: REGIONS[(id % 4) as usize],
                product: format!("p{:02}", (id * 13) % 50),
                qty: 1 + (id * 31) % 9,
                cents: 100 + (id * 7919) % 90_000,
                month: 1 + day / 30,
            }
        })
        .collect()
}

fn csv_of(sales: &[Sale]) -> Vec<u8> {
    let mut out = String::from("id,region,product,qty,price,day\n");
    for s in sales {
        let day = 1 + (s.id * 7 % 180) % 30;
        out.push_str(&format!(
            "{},{},{},{},{}.{:02},2026-{:02}-{:02}\n",
            s.id,
            s.region,
            s.product,
            s.qty,
            s.cents / 100,
            s.cents % 100,
            s.month,
            day.min(28)
        ));
    }
    out.into_bytes()
}

async fn upload(domain: &domain::Domain, user: Id, rows: &[Sale]) -> domain::Dataset {
    domain
        .datasets
        .upload(
            user,
            NewDataset {
                name: None,
                file_name: "sales.csv".into(),
                content_type: Some("text/csv".into()),
            },
            &csv_of(rows)[..],
        )
        .await
        .expect("upload")
}

async fn run_sql(domain: &domain::Domain, user: Id, dataset: Id, sql: &str) -> Value {
    run(domain, user, dataset, json!({"sql": sql})).await
}

async fn run(domain: &domain::Domain, user: Id, dataset: Id, query: Value) -> Value {
    let analysis = domain
        .analyses
        .create(
            user,
            NewAnalysis {
                name: "on the cluster".into(),
                dataset_id: Some(dataset),
                config: Some(json!({ "query": query })),
            },
        )
        .await
        .expect("create the analysis");
    match domain.analyses.run(user, analysis.id).await {
        Ok(ran) => ran.results.expect("results stored"),
        Err(e) => panic!("run failed: {e:?}\n{}", shared().await.cluster.log_text()),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

iops_tests::on_both!(analyses_run_on_a_ballista_cluster, on_a_cluster_body);
async fn on_a_cluster_body(db: TestDb) {
    let address = shared().await.cluster.address.clone();
    let settings = Settings {
        columnar_min_bytes: Some(0),
        ..Settings::default()
    };
    let (domain, store) = domain_on(&db, address, settings).await;
    let user = new_user(domain.database().connection(), Tier::Pro).await;
    let rows = sales(20_000);
    let dataset = upload(&domain, user, &rows).await;
    // The executors read the dataset's columnar copy from the bucket.
    let copy = domain::storage::columnar_key(dataset.file_path.as_deref().expect("a file"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !store.exists(&copy).await.expect("look in the bucket") {
        assert!(std::time::Instant::now() < deadline, "no columnar copy");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A group-by aggregate: counts and integer sums exact, the decimal sum to 1e-9.
    let results = run_sql(
        &domain,
        user,
        dataset.id,
        "SELECT region, COUNT(*) AS n, SUM(qty) AS units, SUM(price) AS revenue \
         FROM data GROUP BY region ORDER BY region",
    )
    .await;
    let mut expected: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for s in &rows {
        let e = expected.entry(s.region).or_default();
        *e = (e.0 + 1, e.1 + s.qty, e.2 + s.cents);
    }
    let got = results["rows"].as_array().expect("rows");
    assert_eq!(got.len(), expected.len(), "{results}");
    for (row, (region, (n, units, cents))) in got.iter().zip(&expected) {
        assert_eq!(row[0], json!(region));
        assert_eq!(row[1], json!(n));
        assert_eq!(row[2], json!(units));
        let revenue = row[3].as_f64().expect("revenue is a float");
        assert!(
            close(revenue, *cents as f64 / 100.0),
            "{revenue} vs {cents}"
        );
    }

    // A filtered top 10.
    let results = run_sql(
        &domain,
        user,
        dataset.id,
        "SELECT id, qty FROM data WHERE product = 'p07' ORDER BY qty DESC, id LIMIT 10",
    )
    .await;
    let mut top: Vec<&Sale> = rows.iter().filter(|s| s.product == "p07").collect();
    top.sort_by_key(|s| (-s.qty, s.id));
    let expected: Vec<Value> = top[..10].iter().map(|s| json!([s.id, s.qty])).collect();
    assert_eq!(results["rows"], json!(expected));

    // A monthly sum.
    let results = run_sql(
        &domain,
        user,
        dataset.id,
        "SELECT CAST(date_part('month', day) AS BIGINT) AS month, SUM(qty) AS units \
         FROM data GROUP BY 1 ORDER BY 1",
    )
    .await;
    let mut monthly: BTreeMap<i64, i64> = BTreeMap::new();
    for s in &rows {
        *monthly.entry(s.month).or_default() += s.qty;
    }
    let expected: Vec<Value> = monthly.iter().map(|(m, u)| json!([m, u])).collect();
    assert_eq!(results["rows"], json!(expected));

    // The structured form (compiled to a plan, never to SQL text) on the cluster too.
    let results = run(
        &domain,
        user,
        dataset.id,
        json!({"filters": [{"column": "qty", "op": ">=", "value": 5}],
               "group_by": ["region"],
               "aggregates": [{"op": "count", "as": "orders"}, {"op": "max", "column": "qty", "as": "most"}],
               "order_by": [{"column": "region"}]}),
    )
    .await;
    let expected: Vec<Value> = REGIONS
        .iter()
        .map(|r| {
            let big: Vec<&Sale> = rows
                .iter()
                .filter(|s| s.region == *r && s.qty >= 5)
                .collect();
            json!([r, big.len(), big.iter().map(|s| s.qty).max()])
        })
        .collect();
    assert_eq!(results["rows"], json!(expected));
}

// The cluster is really where plans go: with its scheduler unreachable, a run fails with a
// message that says so (and names no address), and stores that failure.
iops_tests::on_both!(
    a_cluster_that_does_not_answer_fails_the_run,
    no_cluster_body
);
async fn no_cluster_body(db: TestDb) {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let address = engine::ClusterAddress::parse(&format!("df://127.0.0.1:{nobody}")).unwrap();
    let (domain, _) = domain_on(&db, address, Settings::default()).await;
    let user = new_user(domain.database().connection(), Tier::Pro).await;
    let dataset = upload(&domain, user, &sales(10)).await;
    let analysis = domain
        .analyses
        .create(
            user,
            NewAnalysis {
                name: "nowhere to run".into(),
                dataset_id: Some(dataset.id),
                config: Some(json!({"query": {"sql": "SELECT COUNT(*) FROM data"}})),
            },
        )
        .await
        .unwrap();
    match domain.analyses.run(user, analysis.id).await {
        Err(Error::QueryFailed(failure)) => {
            assert_eq!(failure.reason, FailureReason::Data, "{failure:?}");
            assert!(
                failure.message.contains("cluster") && !failure.message.contains("127.0.0.1"),
                "{failure:?}"
            );
        }
        other => panic!("expected a failed run, got {other:?}"),
    }
    let stored = domain.analyses.get(user, analysis.id).await.unwrap();
    assert_eq!(stored.status, domain::Status::Failed);
}
