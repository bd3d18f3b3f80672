//! [`DataFusionEngine`]: one DataFusion runtime per process (memory pool, spill folder, the
//! dataset store), one short-lived session per query holding only that query's tables.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ballista_core::extension::SessionStateExt;
use bytes::Bytes;
use datafusion::arrow::datatypes::Schema;
use datafusion::dataframe::DataFrame;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{
    CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext,
};
use domain::query::{FailureReason, Query, QueryEngine, QueryFailure, QueryOutput, TableSource};
use domain::storage::StoreObjects;
use domain::{DataColumn, Format};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use tokio::sync::Semaphore;

use crate::cluster::ClusterAddress;
use crate::failure::{Scrub, Scrubbed, failure_of};
use crate::{guard, schema, structured, values};

/// The URL the dataset store is registered under; a dataset's key is its path below it.
const STORE_URL: &str = "iops://datasets/";
/// Rows per row group of a columnar copy: the unit a reader skips by its statistics, and
/// what the writer holds in memory before it writes one out.
const COPY_ROW_GROUP: usize = 256 * 1024;
/// Longest a columnar copy may take to write (a file of the largest accepted size, read
/// from a slow store, is well inside it).
const COPY_TIME_LIMIT: Duration = Duration::from_secs(3600);

/// The engine's limits, read once from the environment by the binary.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Longest a query may run (`IOPS_QUERY_TIMEOUT_SECS`).
    pub timeout: Duration,
    /// Memory all running queries share, in bytes, before they spill and then fail
    /// (`IOPS_QUERY_MEMORY_MB`).
    pub memory_bytes: usize,
    /// Rows kept of a result (`IOPS_QUERY_MAX_ROWS`).
    pub max_rows: usize,
    /// Queries at once; the rest wait in line (`IOPS_QUERY_CONCURRENCY`).
    pub concurrency: usize,
    /// Where spilled intermediate data goes (under `IOPS_DATA_DIR`).
    pub spill_dir: PathBuf,
    /// A Ballista scheduler to run the plans on instead of this process
    /// (`IOPS_ENGINE_URL`); the limits above still bound each query's time and rows.
    pub cluster: Option<ClusterAddress>,
}

/// What can stop the engine from being built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The spill folder or the query threads could not be made.
    #[error("cannot start the query engine: {0}")]
    Start(String),
    /// `IOPS_ENGINE_URL` is not a scheduler address.
    #[error("the engine URL must look like df://HOST:PORT, got '{0}'")]
    BadAddress(String),
}

/// Apache DataFusion behind the [`QueryEngine`] port.
pub struct DataFusionEngine {
    sessions: Arc<Sessions>,
    /// The engine's own threads: queries are CPU work, and the web workers must stay free.
    threads: Option<tokio::runtime::Runtime>,
    line: Arc<Semaphore>,
    /// One columnar copy written at a time, beside the queries (not in their line: a copy
    /// must not make a user's query wait, and is written once per dataset).
    copies: Arc<Semaphore>,
    settings: EngineSettings,
}

impl std::fmt::Debug for DataFusionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataFusionEngine")
            .field("settings", &self.settings)
            .finish()
    }
}

/// What a query's session is made from. Shared with the engine's threads: a session is
/// built there too (reading a CSV sample to infer its columns is CPU work, and the web
/// workers must stay free).
struct Sessions {
    runtime_env: Arc<RuntimeEnv>,
    /// The dataset store (its client without the key prefix, and the prefix): read
    /// directly too, to tell a missing file from a query that is wrong.
    objects: StoreObjects,
    cluster: Option<ClusterAddress>,
}

impl DataFusionEngine {
    /// An engine reading dataset files from `objects` (the dataset store's client).
    pub fn new(objects: StoreObjects, settings: EngineSettings) -> Result<Self, EngineError> {
        std::fs::create_dir_all(&settings.spill_dir)
            .map_err(|e| EngineError::Start(format!("spill folder: {e}")))?;
        let runtime_env = store_runtime(
            RuntimeEnvBuilder::new()
                .with_memory_pool(Arc::new(FairSpillPool::new(settings.memory_bytes))),
            &objects,
            Some(&settings.spill_dir),
        )?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("iops-query")
            .enable_all()
            .build()
            .map_err(|e| EngineError::Start(format!("query threads: {e}")))?;
        Ok(Self {
            sessions: Arc::new(Sessions {
                runtime_env,
                objects,
                cluster: settings.cluster.clone(),
            }),
            threads: Some(threads),
            line: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            copies: Arc::new(Semaphore::new(1)),
            settings,
        })
    }

    /// The limits in force.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Runs `work` on the engine's threads, in line, within the time limit; dropping the
    /// returned future stops it.
    async fn in_line<T, F>(&self, work: F) -> Result<T, QueryFailure>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, QueryFailure>> + Send + 'static,
    {
        self.on_threads(&self.line, self.settings.timeout, work)
            .await
    }

    /// Runs `work` on the engine's threads once `line` lets it, within `timeout`;
    /// dropping the returned future stops it.
    async fn on_threads<T, F>(
        &self,
        line: &Arc<Semaphore>,
        timeout: Duration,
        work: F,
    ) -> Result<T, QueryFailure>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, QueryFailure>> + Send + 'static,
    {
        let threads = self
            .threads
            .as_ref()
            .ok_or_else(|| QueryFailure::new(FailureReason::Data, "the engine is stopping"))?;
        let permit = line
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| QueryFailure::new(FailureReason::Data, "the engine is stopping"))?;
        let task = threads.spawn(async move {
            let _permit = permit;
            tokio::time::timeout(timeout, work)
                .await
                .unwrap_or_else(|_| {
                    Err(QueryFailure::new(
                        FailureReason::Timeout,
                        format!("the query ran longer than {} s", timeout.as_secs()),
                    ))
                })
        });
        let mut task = AbortOnDrop(task);
        match (&mut task.0).await {
            Ok(outcome) => outcome,
            Err(e) => {
                // A panic inside the engine: this query's task ends, the server goes on.
                tracing::error!(error = %e, "query task failed");
                Err(QueryFailure::new(
                    FailureReason::Data,
                    "the engine could not run this query; try another form of it",
                ))
            }
        }
    }
}

impl Sessions {
    /// `table` with its keys as paths in the store (the store's key prefix added).
    fn located(&self, table: &TableSource) -> TableSource {
        TableSource {
            key: self.objects.path_of(&table.key),
            columnar: table
                .columnar
                .as_deref()
                .map(|key| self.objects.path_of(key)),
            ..table.clone()
        }
    }

    /// A session that knows only `tables`, with no table functions, no catalog views and no
    /// URL tables; planned by the cluster when there is one and `where_` says so.
    async fn session(
        &self,
        tables: &[TableSource],
        where_: Place,
    ) -> Result<SessionContext, QueryFailure> {
        let config = SessionConfig::new()
            .with_information_schema(false)
            // A byte range of a CSV file cannot know whether it starts inside a quoted
            // field holding a line break: each file is read whole, by one partition.
            .with_repartition_file_scans(false)
            .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.runtime_env.clone())
            .with_default_features()
            // No `generate_series(...)` and the like in FROM, no `CREATE EXTERNAL TABLE`
            // factories: a query reaches the registered tables and nothing else.
            .with_table_functions(HashMap::new())
            .with_table_factories(HashMap::new())
            .build();
        let state = match (&self.cluster, where_) {
            (None, _) | (_, Place::Here) => state,
            // The same session, planned by a Ballista scheduler and run by its executors.
            (Some(cluster), Place::Cluster) => state
                .upgrade_for_ballista(cluster.scheduler_url())
                .map_err(|e| failure_of(e, &Scrub::default()))?,
        };
        let ctx = SessionContext::new_with_state(state);
        for table in tables {
            // Checked first: DataFusion would call a missing file an empty table and fail
            // to plan, which reads as the user's mistake.
            let located = self.located(table);
            let size = match self
                .objects
                .store
                .head(&object_store::path::Path::from(located.key.as_str()))
                .await
            {
                Ok(meta) => meta.size,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(QueryFailure::new(
                        FailureReason::Data,
                        format!(
                            "the file of table '{}' is missing from the dataset store",
                            table.alias
                        ),
                    ));
                }
                Err(e) => return Err(unreadable(table, &e)),
            };
            if let Some(copy) = &located.columnar {
                register_copy(&ctx, &table.alias, copy)
                    .await
                    .map_err(|e| failure_of(e, &scrub_of(std::slice::from_ref(&located))))?;
                continue;
            }
            let schema = schema::schema(&self.objects.store, &located, size).await?;
            register(&ctx, &located, &schema)
                .await
                .map_err(|e| failure_of(e, &scrub_of(std::slice::from_ref(&located))))?;
        }
        Ok(ctx)
    }
}

/// Where a session's plans run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// On the cluster when one is configured, here otherwise: users' queries.
    Cluster,
    /// In this process: the engine's own work (columns, columnar copies).
    Here,
}

impl Sessions {
    /// The whole of `table`, read in this process (the engine's own work, never sent to
    /// a cluster).
    async fn frame_here(
        &self,
        table: &TableSource,
        scrub: &Scrub,
    ) -> Result<DataFrame, QueryFailure> {
        let ctx = self
            .session(std::slice::from_ref(table), Place::Here)
            .await?;
        ctx.table(table.alias.as_str())
            .await
            .map_err(|e| failure_of(e, scrub))
    }
}

impl Drop for DataFusionEngine {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which panics inside another
        // runtime (the server's); let them end in the background instead.
        if let Some(threads) = self.threads.take() {
            threads.shutdown_background();
        }
    }
}

/// A runtime that reads the dataset store under [`STORE_URL`]: the engine's, a Ballista
/// scheduler's and every executor's, so that a plan made in one process names files the
/// others find. Built from `builder` (the engine's adds its memory pool); spilled data goes
/// to `spill` when given.
pub(crate) fn store_runtime(
    builder: RuntimeEnvBuilder,
    objects: &StoreObjects,
    spill: Option<&Path>,
) -> Result<Arc<RuntimeEnv>, EngineError> {
    let builder = match spill {
        Some(dir) => builder.with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![dir.to_path_buf()])),
        ),
        None => builder,
    };
    let runtime_env = builder
        .build_arc()
        .map_err(|e| EngineError::Start(e.to_string()))?;
    let url = url::Url::parse(STORE_URL).map_err(|e| EngineError::Start(e.to_string()))?;
    runtime_env.register_object_store(&url, objects.store.clone());
    Ok(runtime_env)
}

/// Aborts the query task when the caller stops waiting (a client that went away).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl QueryEngine for DataFusionEngine {
    async fn run(
        &self,
        query: &Query,
        tables: &[TableSource],
    ) -> Result<QueryOutput, QueryFailure> {
        let sessions = self.sessions.clone();
        let (query, tables) = (query.clone(), tables.to_vec());
        let located: Vec<TableSource> = tables.iter().map(|t| sessions.located(t)).collect();
        let scrub = scrub_of(&located);
        let max_rows = self.settings.max_rows;
        self.in_line(async move {
            let ctx = sessions.session(&tables, Place::Cluster).await?;
            let frame = plan(&ctx, &query).await.map_err(|f| f.scrubbed(&scrub))?;
            collect(frame, max_rows)
                .await
                .map_err(|f| f.scrubbed(&scrub))
        })
        .await
    }

    async fn columns(&self, table: &TableSource) -> Result<Vec<DataColumn>, QueryFailure> {
        let sessions = self.sessions.clone();
        let table = table.clone();
        let scrub = scrub_of(&[sessions.located(&table)]);
        self.in_line(async move {
            let frame = sessions.frame_here(&table, &scrub).await?;
            Ok(values::columns_of(frame.schema().as_arrow()))
        })
        .await
    }

    async fn columns_of_start(
        &self,
        format: Format,
        start: Bytes,
        whole: bool,
    ) -> Result<Vec<DataColumn>, QueryFailure> {
        // The same inference as a stored file's (`Sessions::session`), whose table schema is
        // exactly the inferred one, without a session: only the bytes are needed.
        self.in_line(async move {
            schema::schema_of_start(format, &start, !whole)
                .map(|schema| values::columns_of(&schema))
                .map_err(|e| schema::columns_unreadable("the file", e))
        })
        .await
    }

    async fn write_columnar(&self, table: &TableSource, out: &Path) -> Result<(), QueryFailure> {
        let sessions = self.sessions.clone();
        // Always from the original: a copy is made of the file, never of another copy.
        let table = TableSource {
            columnar: None,
            ..table.clone()
        };
        let scrub = scrub_of(&[sessions.located(&table)]);
        let out = out.to_path_buf();
        self.on_threads(&self.copies, COPY_TIME_LIMIT, async move {
            let frame = sessions.frame_here(&table, &scrub).await?;
            write_parquet(frame, &out)
                .await
                .map_err(|e| failure_of(e, &scrub))
        })
        .await
    }
}

/// The plan of `query`: SQL after the guard's checks, or the structured form compiled.
async fn plan(ctx: &SessionContext, query: &Query) -> Result<DataFrame, QueryFailure> {
    match query {
        Query::Sql(sql) => {
            let statement = guard::checked_statement(ctx, sql)?;
            let plan = ctx
                .state()
                .statement_to_plan(statement)
                .await
                .map_err(|e| failure_of(e, &Scrub::default()))?;
            // The planner's own read-only check as well (defence in depth).
            guard::read_only()
                .verify_plan(&plan)
                .map_err(|e| failure_of(e, &Scrub::default()))?;
            ctx.execute_logical_plan(plan)
                .await
                .map_err(|e| failure_of(e, &Scrub::default()))
        }
        Query::Structured(form) => structured::compile(ctx, form).await,
    }
}

/// Streams the result, keeping at most `max_rows` rows: the rest is not computed beyond
/// the first row that proves there is more.
async fn collect(frame: DataFrame, max_rows: usize) -> Result<QueryOutput, QueryFailure> {
    let columns = values::columns_of(frame.schema().as_arrow());
    let mut stream = frame
        .execute_stream()
        .await
        .map_err(|e| failure_of(e, &Scrub::default()))?;
    let mut rows = Vec::new();
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| failure_of(e, &Scrub::default()))?;
        let room = max_rows - rows.len();
        values::append_rows(&batch, room, &mut rows);
        if batch.num_rows() > room {
            // Dropping the stream stops the rest of the query.
            truncated = true;
            break;
        }
    }
    Ok(QueryOutput {
        columns,
        rows,
        truncated,
    })
}

/// Writes `frame` to the local file `out` as Parquet, one batch at a time (in the order
/// the file holds its rows: one partition reads it).
async fn write_parquet(frame: DataFrame, out: &Path) -> datafusion::error::Result<()> {
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let mut batches = frame.execute_stream().await?;
    // `out` is a staged file, new and empty: not truncated, since ext4 would flush a
    // truncated file at its close and make the next fsync on the disk wait for it.
    let file = tokio::fs::OpenOptions::new().write(true).open(out).await?;
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(COPY_ROW_GROUP))
        .build();
    let mut writer = AsyncArrowWriter::try_new(file, schema, Some(properties))?;
    while let Some(batch) = batches.next().await {
        writer.write(&batch?).await?;
    }
    writer.close().await?;
    Ok(())
}

/// Registers a columnar copy (at `path` in the store) under `alias`.
async fn register_copy(
    ctx: &SessionContext,
    alias: &str,
    path: &str,
) -> datafusion::error::Result<()> {
    let options = ParquetReadOptions::default().file_extension(".parquet");
    ctx.register_parquet(alias, format!("{STORE_URL}{path}"), options)
        .await
}

/// Registers one dataset file under its alias, with the reader its format needs and the
/// columns read from its sample (`schema.rs`): DataFusion infers nothing itself.
async fn register(
    ctx: &SessionContext,
    table: &TableSource,
    schema: &Schema,
) -> datafusion::error::Result<()> {
    let path = format!("{STORE_URL}{}", table.key);
    let extension = table.key.rfind('.').map_or("", |i| &table.key[i..]);
    match table.format {
        Format::Csv | Format::Tsv => {
            let delimiter = if table.format == Format::Tsv {
                b'\t'
            } else {
                b','
            };
            let options = CsvReadOptions::new()
                .has_header(true)
                .delimiter(delimiter)
                // Quoted fields may hold line breaks (the upload parser accepts them).
                .newlines_in_values(true)
                .file_extension(extension)
                .schema(schema);
            ctx.register_csv(table.alias.as_str(), &path, options).await
        }
        Format::Json | Format::Ndjson => {
            let mut options = JsonReadOptions::default()
                .file_extension(extension)
                .schema(schema);
            options.newline_delimited = table.format == Format::Ndjson;
            ctx.register_json(table.alias.as_str(), &path, options)
                .await
        }
    }
}

/// The failure of a store read other than "not found": the store's own message is logged,
/// not shown (it names the bucket or folder).
pub(crate) fn unreadable(table: &TableSource, err: &object_store::Error) -> QueryFailure {
    tracing::warn!(error = %err, "dataset store read failed");
    QueryFailure::new(
        FailureReason::Data,
        format!(
            "the file of table '{}' could not be read; retry later",
            table.alias
        ),
    )
}

/// What must not appear in a message: each table's locations (its file's, its copy's),
/// replaced by its alias.
fn scrub_of(tables: &[TableSource]) -> Scrub {
    Scrub {
        replacements: tables
            .iter()
            .flat_map(|t| {
                let name = format!("table '{}'", t.alias);
                std::iter::once(&t.key)
                    .chain(&t.columnar)
                    .flat_map(move |path| {
                        [
                            (format!("{STORE_URL}{path}"), name.clone()),
                            (path.clone(), name.clone()),
                        ]
                    })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::query::StructuredQuery;

    pub(super) fn engine(dir: &std::path::Path) -> DataFusionEngine {
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
        DataFusionEngine::new(
            StoreObjects {
                store: Arc::new(store),
                prefix: String::new(),
            },
            EngineSettings {
                timeout: Duration::from_secs(10),
                memory_bytes: 64 << 20,
                max_rows: 3,
                concurrency: 2,
                spill_dir: dir.join("spill"),
                cluster: None,
            },
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn quoted_line_breaks_and_the_row_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = String::from("id,note\n");
        for i in 0..2000 {
            csv.push_str(&format!("{i},\"line\nbreak, \"\"quoted\"\" {i}\"\n"));
        }
        for i in 2000..6000 {
            csv.push_str(&format!("{i},\"said \"\"hi\"\", row {i}\"\n"));
        }
        std::fs::create_dir_all(dir.path().join("u")).unwrap();
        std::fs::write(dir.path().join("u/d.csv"), csv).unwrap();
        let engine = engine(dir.path());
        let table = TableSource {
            alias: "data".into(),
            key: "u/d.csv".into(),
            format: Format::Csv,
            columnar: None,
        };
        let columns = engine.columns(&table).await.unwrap();
        assert_eq!(columns.len(), 2);
        let out = engine
            .run(
                &Query::Structured(StructuredQuery::default()),
                std::slice::from_ref(&table),
            )
            .await
            .unwrap();
        assert_eq!(out.rows.len(), 3);
        assert!(out.truncated);
        assert_eq!(
            out.rows[1][1],
            serde_json::json!("line\nbreak, \"quoted\" 1")
        );
        let counted = engine
            .run(&Query::Sql("SELECT COUNT(*) FROM data".into()), &[table])
            .await
            .unwrap();
        assert_eq!(counted.rows, vec![vec![serde_json::json!(6000)]]);
        assert!(!counted.truncated);
    }
}

#[cfg(test)]
mod cancel_tests {
    use super::*;

    /// A caller that stops waiting stops its query: with one query at a time, the next
    /// one runs at once instead of after the abandoned one's time limit.
    #[tokio::test(flavor = "multi_thread")]
    async fn dropping_a_run_frees_its_place_in_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("u")).unwrap();
        let mut csv = String::from("k\n");
        for i in 0..3000 {
            csv.push_str(&format!("value number {i}\n"));
        }
        std::fs::write(dir.path().join("u/d.csv"), csv).unwrap();
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let engine = DataFusionEngine::new(
            StoreObjects {
                store: Arc::new(store),
                prefix: String::new(),
            },
            EngineSettings {
                timeout: Duration::from_secs(600),
                memory_bytes: 64 << 20,
                max_rows: 10,
                concurrency: 1,
                spill_dir: dir.path().join("spill"),
                cluster: None,
            },
        )
        .unwrap();
        let table = TableSource {
            alias: "data".into(),
            key: "u/d.csv".into(),
            format: Format::Csv,
            columnar: None,
        };
        // Nested-loop joins, not a cross join: DataFusion 55 can fail a three-way cross
        // join at once with a panic of its own ("partition not used yet",
        // docs/reliability.md), and then there is nothing to abandon.
        let slow = Query::Sql(
            "SELECT COUNT(*) FROM data a JOIN data b ON a.k <> b.k JOIN data c ON b.k <> c.k \
             WHERE regexp_like(a.k || b.k || c.k, '(x+x+)+y')"
                .into(),
        );
        let abandoned = tokio::time::timeout(
            Duration::from_millis(300),
            engine.run(&slow, std::slice::from_ref(&table)),
        )
        .await;
        assert!(abandoned.is_err(), "the slow query was still running");
        let quick = tokio::time::timeout(
            Duration::from_secs(60),
            engine.run(&Query::Sql("SELECT COUNT(*) FROM data".into()), &[table]),
        )
        .await
        .expect("the next query is not held up by the abandoned one")
        .unwrap();
        assert_eq!(quick.rows, vec![vec![serde_json::json!(3000)]]);
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn json_with_escaped_quotes_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("u")).unwrap();
        // Written by hand: `s` before `n`, which is not the keys' sorted order.
        let rows: Vec<String> = (0..30_000)
            .map(|i| {
                let s = serde_json::to_string(&format!("a \"q\" \\ {{b}}\n{i}")).unwrap();
                format!("{{\"s\":{s},\"n\":{i}}}")
            })
            .collect();
        std::fs::write(dir.path().join("u/l.ndjson"), rows.join("\n") + "\n").unwrap();
        std::fs::write(dir.path().join("u/a.json"), format!("[{}]", rows.join(","))).unwrap();
        let engine = super::tests::engine(dir.path());
        for (key, format) in [("u/l.ndjson", Format::Ndjson), ("u/a.json", Format::Json)] {
            let table = TableSource {
                alias: "data".into(),
                key: key.into(),
                format,
                columnar: None,
            };
            // In the order the file shows its keys, not sorted.
            let names: Vec<String> = engine
                .columns(&table)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.name)
                .collect();
            assert_eq!(names, ["s", "n"], "{key}");
            let out = engine
                .run(
                    &Query::Sql(
                        "SELECT COUNT(*), SUM(n), MAX(s) FROM data WHERE s LIKE 'a \"q\"%'".into(),
                    ),
                    &[table],
                )
                .await
                .unwrap_or_else(|e| panic!("{key}: {e:?}"));
            assert_eq!(out.rows[0][0], serde_json::json!(30_000), "{key}");
            assert_eq!(out.rows[0][1], serde_json::json!(449_985_000), "{key}");
            assert_eq!(
                out.rows[0][2],
                serde_json::json!("a \"q\" \\ {b}\n9999"),
                "{key}"
            );
        }
    }
}
