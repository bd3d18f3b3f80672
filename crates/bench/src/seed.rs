//! Seeds the public reports the view benchmark reads, straight through the entities (the
//! HTTP API would take minutes for 10,000 reports, and creation is not what is measured).
use std::io::Write;
use std::path::Path;

use entity::{Id, analyses, datasets, reports, users};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::json;

use crate::Result;

/// Rows per multi-row INSERT: far below the bind-parameter limits of both backends.
const BATCH: usize = 500;
/// Reports are spread over this many analyses (each with its dataset), like real accounts.
const ANALYSES: usize = 100;

/// The short code of seeded report `i`: 13 base62 characters, and computable by a
/// `pgbench` script (`'bench' || lpad(i, 8, '0')`), so the raw statement and the API pick
/// from the very same codes.
pub fn short_code(i: usize) -> String {
    format!("bench{i:08}")
}

/// Inserts one owner, [`ANALYSES`] analyses with datasets and `count` public reports
/// (codes `short_code(1..=count)`), and writes the codes, one a line, to `codes_file`.
pub async fn seed(url: &str, count: usize, codes_file: &Path) -> Result<()> {
    let database = domain::Database::connect(url, 2).await?;
    let db = database.connection();
    let now = chrono::Utc::now().naive_utc();
    let owner = Id::new_v4();
    // A bulk seed of a fresh database: a plain transaction is enough.
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    users::Entity::insert(users::ActiveModel {
        id: Set(owner),
        email: Set("bench-owner@example.com".to_owned()),
        // Not a valid hash: nobody logs in as the owner.
        password_hash: Set("!".to_owned()),
        full_name: Set(Some("Benchmark owner".to_owned())),
        tier: Set(users::Tier::Pro),
        stripe_customer_id: Set(None),
        stripe_subscription_id: Set(None),
        is_admin: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;

    let analyses_count = ANALYSES.min(count.max(1));
    let mut analysis_ids = Vec::with_capacity(analyses_count);
    let mut dataset_rows = Vec::with_capacity(analyses_count);
    let mut analysis_rows = Vec::with_capacity(analyses_count);
    for n in 0..analyses_count {
        let dataset_id = Id::new_v4();
        let analysis_id = Id::new_v4();
        analysis_ids.push(analysis_id);
        dataset_rows.push(datasets::ActiveModel {
            id: Set(dataset_id),
            user_id: Set(owner),
            name: Set(format!("sales-{n}.csv")),
            file_path: Set(None),
            connection_id: Set(None),
            row_count: Set(Some(10_000 + n as i32)),
            column_count: Set(Some(7)),
            size_bytes: Set(Some(1_000_000)),
            created_at: Set(now),
            updated_at: Set(now),
        });
        analysis_rows.push(analyses::ActiveModel {
            id: Set(analysis_id),
            user_id: Set(owner),
            name: Set(format!("Quarterly sales {n}")),
            dataset_id: Set(Some(dataset_id)),
            config: Set(Some(json!({
                "chart": "bar",
                "x": "region",
                "y": "revenue",
                "filters": [{"column": "year", "op": "=", "value": 2026}],
            }))),
            results: Set(Some(results(n))),
            status: Set(analyses::Status::Completed),
            created_at: Set(now),
            updated_at: Set(now),
        });
    }
    datasets::Entity::insert_many(dataset_rows)
        .exec_without_returning(&txn)
        .await?;
    analyses::Entity::insert_many(analysis_rows)
        .exec_without_returning(&txn)
        .await?;

    let mut codes = std::io::BufWriter::new(std::fs::File::create(codes_file)?);
    let mut batch = Vec::with_capacity(BATCH);
    for i in 1..=count {
        let code = short_code(i);
        writeln!(codes, "{code}")?;
        batch.push(reports::ActiveModel {
            id: Set(Id::new_v4()),
            analysis_id: Set(analysis_ids[i % analysis_ids.len()]),
            short_code: Set(code),
            is_public: Set(true),
            password_hash: Set(None),
            expires_at: Set(None),
            view_count: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        });
        if batch.len() == BATCH || i == count {
            reports::Entity::insert_many(std::mem::take(&mut batch))
                .exec_without_returning(&txn)
                .await?;
        }
    }
    codes.flush()?;
    txn.commit().await?;
    database.close().await;
    Ok(())
}

/// Results of a typical small analysis: a dozen aggregated rows, about 1 KB of JSON.
fn results(n: usize) -> serde_json::Value {
    let rows: Vec<_> = (0..12)
        .map(|m| {
            let region = ["north", "south", "east", "west"][m % 4];
            json!({
                "month": format!("2026-{:02}", m + 1),
                "region": region,
                "revenue": 10_000.0 + (n * 131 + m * 17) as f64 * 1.5,
                "orders": 100 + n + m,
            })
        })
        .collect();
    json!({"rows": rows, "total": rows.len()})
}
