//! Product events (PHASES.md, phase 7): `analytics_events`.
//!
//! - **Ingest** ([`Events::ingest`], `POST /api/v1/events`): 1 to
//!   [`MAX_EVENTS_PER_REQUEST`] events, validated all together (one bad event refuses the
//!   request and nothing is kept), then handed to the [`EventSink`] without waiting: a
//!   bounded queue whose one worker writes them in multi-row `INSERT`s of up to
//!   [`BATCH_ROWS`] rows (while one `INSERT` runs, the next batch gathers). A request's
//!   events go in together or not at all: when the queue has no room for all of them they
//!   are dropped and counted ([`Events::dropped`], `iops_analytics_events_dropped_total` in
//!   `/metrics`), so that a slow database never slows a request. Rows the worker cannot
//!   write (after retries) are counted the same way: every event is stored or counted.
//! - **Without a sink** (tests, one-shot commands, programs using this crate on their
//!   own) events are inserted at once by the call that makes them: nothing is buffered,
//!   nothing dropped. `iops serve` always starts a sink.
//! - **Server-side events** (`user.registered`, `dataset.uploaded`, `analysis.ran`,
//!   `report.created`) go through the same path once their change has committed
//!   ([`Context::record_event`]); they never fail the operation that makes them.
//! - **Partitions** (PostgreSQL): the table is partitioned by month of `occurred_at`, with
//!   a default partition for anything else. [`Events::create_partitions`] creates
//!   `analytics_events_YYYY_MM` for this month and the next two; rows of that month
//!   already waiting in the default partition are moved into the new one in the same
//!   transaction. SQLite has one table and nothing to do.
//! - **Retention**: [`Events::prune`] drops whole monthly partitions older than the
//!   retention and deletes older rows everywhere else.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, Utc};
use entity::analytics_events;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, Statement, TransactionTrait, Value,
};
use serde_json::Value as Json;
use tokio::sync::{mpsc, watch};

use crate::clock::stored;
use crate::{Admin, Context, Error, Id, Result};

/// Most events in one ingest call.
pub const MAX_EVENTS_PER_REQUEST: usize = 100;
/// Longest event name (`^[a-z][a-z0-9_.]{0,99}$`).
pub const MAX_EVENT_NAME_CHARS: usize = 100;
/// Largest `properties` object, serialized as compact JSON, in bytes.
pub const MAX_EVENT_PROPERTIES_BYTES: usize = 8 * 1024;
/// Longest `anonymous_id` (the column's size).
pub const MAX_ANONYMOUS_ID_CHARS: usize = 100;
/// Most days one summary covers.
pub const MAX_SUMMARY_DAYS: i64 = 366;
/// Days of the summary when no range is given.
pub const DEFAULT_SUMMARY_DAYS: i64 = 30;
/// [`crate::Settings::events_retention_days`] unless configured.
pub const DEFAULT_EVENTS_RETENTION_DAYS: u32 = 400;
/// Events the sink of `iops serve` holds before it drops new ones.
pub const DEFAULT_EVENT_BUFFER: usize = 10_000;
/// Rows per `INSERT`.
pub const BATCH_ROWS: usize = 500;
/// How far ahead of the clock an event may say it happened (client clocks drift).
const FUTURE_SLACK_HOURS: i64 = 24;
/// Monthly partitions created after the current one.
const MONTHS_AHEAD: u32 = 2;
/// Name prefix of the monthly partitions; the default partition is `<prefix>default`.
const PARTITION_PREFIX: &str = "analytics_events_";
const DEFAULT_PARTITION: &str = "analytics_events_default";
/// Tries per batch before its events are counted as dropped, and the first wait.
const INSERT_ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// One event as a client sends it.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// `^[a-z][a-z0-9_.]{0,99}$`, e.g. `chart.viewed`.
    pub event: String,
    /// When it happened; default now. At most a day ahead, and not older than the
    /// retention.
    pub occurred_at: Option<DateTime<Utc>>,
    /// A JSON object of at most [`MAX_EVENT_PROPERTIES_BYTES`] bytes.
    pub properties: Option<Json>,
}

/// What became of an ingest call's events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events stored or queued to be stored.
    pub accepted: usize,
    /// Events dropped because the buffer was full (counted in [`Events::dropped`]).
    pub dropped: usize,
}

/// Event counts of one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryDay {
    /// The day.
    pub day: NaiveDate,
    /// Events by name.
    pub events: BTreeMap<String, i64>,
}

type Row = analytics_events::Model;

/// The bounded buffer product events go through, and its worker (see the module
/// documentation). Cheap to clone; clones share the queue and the dropped counter.
#[derive(Clone)]
pub struct EventSink {
    inner: Arc<SinkInner>,
}

struct SinkInner {
    queue: mpsc::Sender<Row>,
    dropped: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl EventSink {
    /// Starts the worker on the current tokio runtime, writing through `database`'s main
    /// pool; the queue holds `capacity` events (at least [`MAX_EVENTS_PER_REQUEST`]).
    /// The worker stops at [`EventSink::close`], or when every clone is dropped, after
    /// writing what is queued.
    pub fn start(database: &crate::Database, capacity: usize) -> EventSink {
        let capacity = capacity.max(MAX_EVENTS_PER_REQUEST);
        let (queue, inbox) = mpsc::channel(capacity);
        let (stop, stopped) = watch::channel(false);
        let dropped = Arc::new(AtomicU64::new(0));
        let worker = tokio::spawn(drain(
            database.connection().clone(),
            inbox,
            stopped,
            dropped.clone(),
        ));
        EventSink {
            inner: Arc::new(SinkInner {
                queue,
                dropped,
                stop,
                worker: Mutex::new(Some(worker)),
            }),
        }
    }

    /// Queues all of `rows` or, without room for all of them, none (they are counted as
    /// dropped). Never waits.
    fn offer(&self, rows: Vec<Row>) -> bool {
        let n = rows.len();
        if n == 0 {
            return true;
        }
        match self.inner.queue.try_reserve_many(n) {
            Ok(permits) => {
                for (permit, row) in permits.zip(rows) {
                    permit.send(row);
                }
                true
            }
            Err(_) => {
                self.inner.dropped.fetch_add(n as u64, Ordering::Relaxed);
                false
            }
        }
    }

    /// Events dropped so far (full buffer, or rows that could not be written).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting in the buffer.
    pub fn queued(&self) -> usize {
        self.inner.queue.max_capacity() - self.inner.queue.capacity()
    }

    /// Stops taking events (later ones are counted as dropped) and writes what is queued,
    /// waiting at most `within`. For a graceful shutdown; only the first call waits.
    pub async fn close(&self, within: Duration) {
        self.inner.stop.send_replace(true);
        let worker = self
            .inner
            .worker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(worker) = worker
            && tokio::time::timeout(within, worker).await.is_err()
        {
            tracing::warn!(
                queued = self.queued(),
                "product events still queued at shutdown were not written in time"
            );
        }
    }
}

/// The worker: takes what is queued (up to a batch), writes it, repeats.
async fn drain(
    db: DatabaseConnection,
    mut inbox: mpsc::Receiver<Row>,
    mut stop: watch::Receiver<bool>,
    dropped: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    loop {
        tokio::select! {
            received = inbox.recv_many(&mut batch, BATCH_ROWS) => {
                if received == 0 {
                    // Every sink is gone and the queue is empty.
                    return;
                }
                store(&db, std::mem::take(&mut batch), &dropped).await;
            }
            _ = stop.changed() => {
                // No more events from now on; write what is already queued.
                inbox.close();
                while inbox.recv_many(&mut batch, BATCH_ROWS).await > 0 {
                    store(&db, std::mem::take(&mut batch), &dropped).await;
                }
                return;
            }
        }
    }
}

/// Writes a batch, retrying with backoff; what cannot be written is counted as dropped.
async fn store(db: &DatabaseConnection, mut rows: Vec<Row>, dropped: &AtomicU64) {
    let mut wait = FIRST_RETRY;
    for attempt in 1..=INSERT_ATTEMPTS {
        match insert(db, &rows).await {
            Ok(()) => return,
            Err(e) if attempt < INSERT_ATTEMPTS => {
                if is_foreign_key_violation(&e) {
                    // An account deleted since its events were queued: keep the events,
                    // without the account (what ON DELETE SET NULL would have done).
                    if let Err(e) = forget_deleted_users(db, &mut rows).await {
                        tracing::warn!(error = %e, "checking the users of product events failed");
                    }
                    continue;
                }
                tracing::warn!(attempt, error = %e, rows = rows.len(), "writing product events failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, rows = rows.len(), "writing product events failed; dropping them");
            }
        }
    }
    dropped.fetch_add(rows.len() as u64, Ordering::Relaxed);
}

/// One multi-row `INSERT` per [`BATCH_ROWS`] rows.
async fn insert<C: ConnectionTrait>(db: &C, rows: &[Row]) -> std::result::Result<(), DbErr> {
    for chunk in rows.chunks(BATCH_ROWS) {
        analytics_events::Entity::insert_many(chunk.iter().map(|row| {
            analytics_events::ActiveModel {
                id: Set(row.id),
                event: Set(row.event.clone()),
                user_id: Set(row.user_id),
                anonymous_id: Set(row.anonymous_id.clone()),
                properties: Set(row.properties.clone()),
                occurred_at: Set(row.occurred_at),
                created_at: Set(row.created_at),
                updated_at: Set(row.updated_at),
            }
        }))
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

fn is_foreign_key_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
    )
}

/// Clears the `user_id` of rows whose account no longer exists.
async fn forget_deleted_users(
    db: &DatabaseConnection,
    rows: &mut [Row],
) -> std::result::Result<(), DbErr> {
    let mut ids: Vec<Id> = rows.iter().filter_map(|r| r.user_id).collect();
    ids.sort_by_key(|id| id.0);
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let existing: std::collections::HashSet<Id> = entity::users::Entity::find()
        .filter(entity::users::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    for row in rows {
        if row.user_id.is_some_and(|id| !existing.contains(&id)) {
            row.user_id = None;
        }
    }
    Ok(())
}

impl Context {
    /// Records a server-side event after the change it describes has committed: through
    /// the sink when there is one (never waiting; a full buffer only counts a drop), else
    /// inserted at once. Never fails the caller: a failure is logged.
    pub(crate) async fn record_event(&self, event: &'static str, user_id: Id, properties: Json) {
        let now = self.clock.now_naive();
        let properties = properties.is_object().then_some(properties);
        let row = new_row(event.to_owned(), Some(user_id), None, properties, now, now);
        match &self.events {
            Some(sink) => {
                if !sink.offer(vec![row]) {
                    tracing::debug!(event, "product event dropped: the buffer is full");
                }
            }
            None => {
                let mut rows = vec![row];
                if let Err(e) = insert(&self.db, &rows).await {
                    if is_foreign_key_violation(&e)
                        && forget_deleted_users(&self.db, &mut rows).await.is_ok()
                        && insert(&self.db, &rows).await.is_ok()
                    {
                        return;
                    }
                    tracing::warn!(event, error = %e, "recording a product event failed");
                }
            }
        }
    }
}

fn new_row(
    event: String,
    user_id: Option<Id>,
    anonymous_id: Option<String>,
    properties: Option<Json>,
    occurred_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Row {
    Row {
        // Time-ordered ids keep inserts at the end of the primary key's index.
        id: Id::new_v7(),
        event,
        user_id,
        anonymous_id,
        properties,
        occurred_at,
        created_at: now,
        updated_at: now,
    }
}

/// Whether `name` matches `^[a-z][a-z0-9_.]{0,99}$`.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            first.is_ascii_lowercase()
                && rest.len() < MAX_EVENT_NAME_CHARS
                && rest.iter().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.')
                })
        }
        None => false,
    }
}

/// The first instant of `day`.
fn start_of(day: NaiveDate) -> NaiveDateTime {
    day.and_time(chrono::NaiveTime::MIN)
}

/// The first day of the month `months` after the month of `day`.
fn month_start(day: NaiveDate, months: u32) -> NaiveDate {
    let first = day.with_day(1).unwrap_or(day);
    first
        .checked_add_months(Months::new(months))
        .unwrap_or(first)
}

/// `analytics_events_YYYY_MM`.
fn partition_name(month: NaiveDate) -> String {
    format!("{PARTITION_PREFIX}{:04}_{:02}", month.year(), month.month())
}

/// The month of a partition named by [`partition_name`].
fn partition_month(name: &str) -> Option<NaiveDate> {
    let rest = name.strip_prefix(PARTITION_PREFIX)?;
    let (year, month) = rest.split_once('_')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

/// Product events: ingest, server-side events, the admin summary, partitions, retention.
#[derive(Clone)]
pub struct Events {
    ctx: Context,
}

impl Events {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// Takes a client's events: `user_id` when the request is authenticated,
    /// `anonymous_id` (1 to 100 characters) when the client gives one; both are stored
    /// when both are given. All events are checked first ([`Error::Validation`] names
    /// the first bad one, and nothing is kept); then they are queued without waiting
    /// (or, without a sink, inserted).
    pub async fn ingest(
        &self,
        user_id: Option<Id>,
        anonymous_id: Option<String>,
        events: Vec<NewEvent>,
    ) -> Result<Ingested> {
        if events.is_empty() || events.len() > MAX_EVENTS_PER_REQUEST {
            return Err(Error::validation(format!(
                "events must hold 1 to {MAX_EVENTS_PER_REQUEST} events"
            )));
        }
        if let Some(id) = &anonymous_id {
            let chars = id.chars().count();
            if chars == 0 || chars > MAX_ANONYMOUS_ID_CHARS || id.chars().any(char::is_control) {
                return Err(Error::validation(format!(
                    "anonymous_id must be 1 to {MAX_ANONYMOUS_ID_CHARS} characters, without control characters"
                )));
            }
        }
        let now = self.ctx.clock.now();
        let latest = now + chrono::Duration::hours(FUTURE_SLACK_HOURS);
        let earliest = now - self.retention();
        let now = stored(now);
        let mut rows = Vec::with_capacity(events.len());
        for (i, new) in events.into_iter().enumerate() {
            if !valid_name(&new.event) {
                return Err(Error::validation(format!(
                    "events[{i}].event must match ^[a-z][a-z0-9_.]{{0,99}}$"
                )));
            }
            let properties = match new.properties {
                None | Some(Json::Null) => None,
                Some(Json::Object(map)) => {
                    let value = Json::Object(map);
                    let size = serde_json::to_vec(&value).map_or(usize::MAX, |b| b.len());
                    if size > MAX_EVENT_PROPERTIES_BYTES {
                        return Err(Error::validation(format!(
                            "events[{i}].properties must be at most {MAX_EVENT_PROPERTIES_BYTES} bytes of JSON"
                        )));
                    }
                    if crate::json_contains_nul(&value) {
                        return Err(Error::validation(format!(
                            "events[{i}].properties must not contain NUL characters (\\u0000)"
                        )));
                    }
                    Some(value)
                }
                Some(_) => {
                    return Err(Error::validation(format!(
                        "events[{i}].properties must be a JSON object"
                    )));
                }
            };
            let occurred_at = match new.occurred_at {
                None => now,
                Some(at) if at > latest => {
                    return Err(Error::validation(format!(
                        "events[{i}].occurred_at is more than a day in the future"
                    )));
                }
                Some(at) if at < earliest => {
                    return Err(Error::validation(format!(
                        "events[{i}].occurred_at is older than the retention of {} days",
                        self.ctx.settings.events_retention_days
                    )));
                }
                Some(at) => stored(at),
            };
            rows.push(new_row(
                new.event,
                user_id,
                anonymous_id.clone(),
                properties,
                occurred_at,
                now,
            ));
        }
        let n = rows.len();
        match &self.ctx.events {
            Some(sink) => Ok(if sink.offer(rows) {
                Ingested {
                    accepted: n,
                    dropped: 0,
                }
            } else {
                Ingested {
                    accepted: 0,
                    dropped: n,
                }
            }),
            None => {
                if let Err(e) = insert(&self.ctx.db, &rows).await {
                    if !is_foreign_key_violation(&e) {
                        return Err(e.into());
                    }
                    forget_deleted_users(&self.ctx.db, &mut rows).await?;
                    insert(&self.ctx.db, &rows).await?;
                }
                Ok(Ingested {
                    accepted: n,
                    dropped: 0,
                })
            }
        }
    }

    /// Events dropped since this process started (0 without a sink).
    pub fn dropped(&self) -> u64 {
        self.ctx.events.as_ref().map_or(0, EventSink::dropped)
    }

    /// Events waiting in the buffer (0 without a sink).
    pub fn queued(&self) -> usize {
        self.ctx.events.as_ref().map_or(0, EventSink::queued)
    }

    /// Writes what is buffered and stops the sink, waiting at most `within` (graceful
    /// shutdown). Without a sink, nothing to do.
    pub async fn close(&self, within: Duration) {
        if let Some(sink) = &self.ctx.events {
            sink.close(within).await;
        }
    }

    /// Counts per event name per UTC day, `from` to `to` inclusive (default: the
    /// `DEFAULT_SUMMARY_DAYS` days up to today), at most [`MAX_SUMMARY_DAYS`] days.
    /// Only days with events are listed, oldest first.
    pub async fn summary(
        &self,
        _admin: &Admin,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<SummaryDay>> {
        let today = self.ctx.clock.now().date_naive();
        let to = to.unwrap_or(today);
        let from = from.unwrap_or(to - chrono::Duration::days(DEFAULT_SUMMARY_DAYS - 1));
        if from > to {
            return Err(Error::validation("from must not be after to"));
        }
        if (to - from).num_days() + 1 > MAX_SUMMARY_DAYS {
            return Err(Error::validation(format!(
                "a range covers at most {MAX_SUMMARY_DAYS} days"
            )));
        }
        let Some(end) = to.succ_opt() else {
            return Err(Error::validation("to is out of range"));
        };
        let backend = self.ctx.db.get_database_backend();
        let day = match backend {
            DbBackend::Postgres => "to_char(occurred_at, 'YYYY-MM-DD')",
            _ => "substr(occurred_at, 1, 10)",
        };
        let sql = format!(
            "SELECT {day} AS day, event, COUNT(*) AS n FROM analytics_events \
             WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let rows = self
            .ctx
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [Value::from(start_of(from)), Value::from(start_of(end))],
            ))
            .await?;
        let mut days: Vec<SummaryDay> = Vec::new();
        for row in rows {
            let day: String = row.try_get("", "day")?;
            let event: String = row.try_get("", "event")?;
            let n: i64 = row.try_get("", "n")?;
            let day = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .map_err(|e| Error::Internal(format!("a stored event day '{day}': {e}")))?;
            if days.last().is_none_or(|d| d.day != day) {
                days.push(SummaryDay {
                    day,
                    events: BTreeMap::new(),
                });
            }
            if let Some(last) = days.last_mut() {
                *last.events.entry(event).or_default() += n;
            }
        }
        Ok(days)
    }

    fn retention(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.ctx.settings.events_retention_days))
    }

    /// PostgreSQL: creates the monthly partitions of this month and the next two that do
    /// not exist yet, and returns their names (SQLite: nothing to do). Rows of such a
    /// month already in the default partition are moved into the new partition in the
    /// same transaction. Safe to run from several processes at once (they take turns on
    /// an advisory lock, and a partition that appeared meanwhile counts as done).
    pub async fn create_partitions(&self) -> Result<Vec<String>> {
        if self.ctx.db.get_database_backend() != DbBackend::Postgres {
            return Ok(Vec::new());
        }
        let today = self.ctx.clock.now().date_naive();
        let mut created = Vec::new();
        for ahead in 0..=MONTHS_AHEAD {
            let month = month_start(today, ahead);
            let name = partition_name(month);
            match create_partition(&self.ctx.db, month, &name).await {
                Ok(true) => created.push(name),
                Ok(false) => {}
                // Another process may have created it between our check and ours.
                Err(_) if partition_exists(&self.ctx.db, &name).await? => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(created)
    }

    /// Deletes events older than the retention (`IOPS_EVENTS_RETENTION_DAYS`) and returns
    /// how many. PostgreSQL: monthly partitions entirely older are dropped whole first;
    /// then older rows are deleted from what remains (the default partition included).
    pub async fn prune(&self) -> Result<u64> {
        let cutoff = stored(self.ctx.clock.now() - self.retention());
        let mut removed = 0;
        if self.ctx.db.get_database_backend() == DbBackend::Postgres {
            for name in partitions(&self.ctx.db).await? {
                let Some(month) = partition_month(&name) else {
                    continue;
                };
                if start_of(month_start(month, 1)) > cutoff {
                    continue;
                }
                removed += drop_partition(&self.ctx.db, &name).await?;
            }
        }
        let deleted = analytics_events::Entity::delete_many()
            .filter(analytics_events::Column::OccurredAt.lt(cutoff))
            .exec(&self.ctx.db)
            .await?;
        Ok(removed + deleted.rows_affected)
    }
}

/// The monthly partitions (and the default one) of `analytics_events`, by name.
async fn partitions(db: &DatabaseConnection) -> Result<Vec<String>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname::text AS name FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'analytics_events'::regclass ORDER BY 1",
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String>("", "name").map_err(Error::from))
        .collect()
}

async fn partition_exists(db: &DatabaseConnection, name: &str) -> Result<bool> {
    Ok(partitions(db).await?.iter().any(|p| p == name))
}

/// Creates the partition `name` of `month`, unless it exists (`false` then). The new
/// table is attached rather than created as a partition, so that rows of the month
/// waiting in the default partition can be moved into it first (PostgreSQL refuses a new
/// partition whose range the default partition holds rows of).
async fn create_partition(
    db: &DatabaseConnection,
    month: NaiveDate,
    name: &str,
) -> std::result::Result<bool, DbErr> {
    let from = month.format("%Y-%m-%d 00:00:00");
    let to = month_start(month, 1).format("%Y-%m-%d 00:00:00");
    let txn = db.begin().await?;
    // One creator at a time, across processes.
    txn.execute_unprepared("SELECT pg_advisory_xact_lock(hashtext('analytics_events partitions'))")
        .await?;
    let exists = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'analytics_events'::regclass AND c.relname = $1",
            [Value::from(name)],
        ))
        .await?
        .is_some();
    if exists {
        txn.commit().await?;
        return Ok(false);
    }
    // Only names made by `partition_name` and dates formatted above are spliced in.
    for sql in [
        format!("CREATE TABLE {name} (LIKE analytics_events INCLUDING DEFAULTS)"),
        // No row of the month may reach the default partition while they move (ATTACH
        // takes this lock anyway).
        format!("LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE"),
        format!(
            "INSERT INTO {name} SELECT * FROM {DEFAULT_PARTITION} \
             WHERE occurred_at >= '{from}' AND occurred_at < '{to}'"
        ),
        format!(
            "DELETE FROM {DEFAULT_PARTITION} WHERE occurred_at >= '{from}' AND occurred_at < '{to}'"
        ),
        format!(
            "ALTER TABLE analytics_events ATTACH PARTITION {name} \
             FOR VALUES FROM ('{from}') TO ('{to}')"
        ),
    ] {
        txn.execute_unprepared(&sql).await?;
    }
    txn.commit().await?;
    tracing::info!(
        partition = name,
        "created a monthly partition of analytics_events"
    );
    Ok(true)
}

/// Drops a whole monthly partition and returns the rows it held.
async fn drop_partition(db: &DatabaseConnection, name: &str) -> Result<u64> {
    let txn = db.begin().await?;
    let rows = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT COUNT(*) AS n FROM {name}"),
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    txn.execute_unprepared(&format!("DROP TABLE {name}"))
        .await?;
    txn.commit().await?;
    tracing::info!(
        partition = name,
        rows,
        "dropped a monthly partition of analytics_events past the retention"
    );
    Ok(u64::try_from(rows).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        for good in ["a", "chart.viewed", "x9_.", &format!("a{}", "b".repeat(99))] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "A",
            "9a",
            ".a",
            "a-b",
            "a b",
            "é",
            &format!("a{}", "b".repeat(100)),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn partition_names_round_trip() {
        let month = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(partition_name(month), "analytics_events_2026_12");
        assert_eq!(partition_month("analytics_events_2026_12"), Some(month));
        assert_eq!(partition_month(DEFAULT_PARTITION), None);
        assert_eq!(
            month_start(NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(), 2),
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
        );
    }
}
