//! Counting public views together: the views that arrive while a counting statement is
//! on its way are counted by the next one, all at once.
//!
//! Why: every view must be counted before its page is sent, and on PostgreSQL each
//! counting statement is a transaction of its own, with its commit (a WAL flush) and its
//! round trip. Under load most of a view's cost was that statement, in PostgreSQL's CPU,
//! not the counting itself (docs/performance.md). Here one task per worker thread takes
//! every view waiting at that moment (up to [`MAX_BATCH`]) and counts them with ONE
//! statement; the views that arrive meanwhile wait for the next. A lone view is counted at
//! once, so a quiet server adds no delay; a busy one makes fewer, larger transactions.
//!
//! What does not change: each view is counted by the database before its page is sent,
//! and gets its own count. The statement adds `n` to a report seen `n` times in the
//! batch and returns the new total; those `n` views get the totals up to it, in the order
//! they arrived. The rules (public, unexpired, no password) are still decided by the
//! statement's WHERE clause at the instant it runs, so several processes still agree.
//!
//! Deadlocks: a batch updates several rows in one transaction. Two batches (of two
//! threads, or two processes) that took the same rows in opposite orders would wait on
//! each other. So every batch hands PostgreSQL its distinct codes sorted, and the
//! statement's plan (a nested loop over the codes, an index lookup for each) locks the
//! rows in that order: batches that share rows take them in the same order. A plan that
//! walked the rows otherwise (PostgreSQL picks plans by its statistics) could still
//! deadlock; PostgreSQL then rolls one statement back whole, so it is run again. (Locking
//! the rows first in a step of their own guarantees the order too, but cost PostgreSQL a
//! quarter of its rate per statement: docs/performance.md.) SQLite has one writer at a
//! time and cannot deadlock.
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use sea_orm::{DbErr, FromQueryResult};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{CountedRow, ViewCounting};
use crate::db::Direct;
use crate::error::{Error, Result, is_deadlock};

/// Counting statements one worker thread runs at once. As many as PostgreSQL's hot-path
/// connections per thread, so a view never waits for a slot while a connection is free;
/// fewer (1, 2 and 4 were measured, twice) did no better (docs/performance.md).
const IN_FLIGHT: usize = 8;

/// The most views one statement counts. A burst larger than this is split into several
/// statements that run side by side on the thread's connections: one statement of 30-60
/// views held every one of them for its whole run, and 64 put the p99 at 64 connections
/// at 20-37 ms where 16 gave 7-10 ms (8 made statements too small: docs/performance.md).
const MAX_BATCH: usize = 16;

/// How many times a batch's statement is run again after PostgreSQL rolled it back to
/// break a deadlock (see the module's note): then it counted nothing, so running it
/// again counts each view once.
const DEADLOCK_RETRIES: usize = 3;

/// PostgreSQL's counting statement for a batch: the raw counting `UPDATE ... RETURNING`
/// plus the view rules, over the batch's distinct codes (`$1`, sorted) and how many times
/// each was seen (`$2`). The rows are locked in the order of `$1` (see the module's note
/// on deadlocks). It returns only what the page shows of the report, and the analysis id
/// as text (the form [`crate::Id`] decodes on both backends).
const COUNT_BATCH_SQL: &str = "\
    UPDATE reports r SET view_count = r.view_count + seen.n \
      FROM unnest($1::text[], $2::int4[]) AS seen(code, n) \
     WHERE r.short_code = seen.code AND r.is_public AND r.password_hash IS NULL \
       AND (r.expires_at IS NULL OR r.expires_at > $3) \
    RETURNING r.short_code, r.view_count, r.expires_at, r.created_at, \
              CAST(r.analysis_id AS text) AS analysis_id";

/// [`COUNT_BATCH_SQL`] for SQLite: the codes and how many times each was seen come as
/// one JSON object (`json_each` gives its keys and values), and no lock order is needed.
const COUNT_BATCH_SQLITE: &str = "\
    UPDATE reports SET view_count = view_count + seen.value \
      FROM json_each($1) AS seen \
     WHERE reports.short_code = seen.key AND reports.is_public \
       AND reports.password_hash IS NULL \
       AND (reports.expires_at IS NULL OR reports.expires_at > $2) \
    RETURNING short_code, view_count, expires_at, created_at, \
              CAST(analysis_id AS text) AS analysis_id";

/// A view waiting to be counted.
struct Pending {
    code: String,
    /// When the view arrived; the batch decides expiry at its latest view's instant.
    now: NaiveDateTime,
    /// The counted report, or `None` when the report is not open (unknown, private,
    /// expired or behind a password).
    reply: oneshot::Sender<Result<Option<CountedRow>, DbErr>>,
}

/// Views counted and the statements that counted them, over every thread of the
/// process: their ratio is how much counting together saves (`/metrics`).
#[derive(Debug, Default)]
pub(crate) struct CountingTotals {
    statements: AtomicU64,
    views: AtomicU64,
}

impl CountingTotals {
    /// The totals so far.
    pub(crate) fn read(&self) -> ViewCounting {
        ViewCounting {
            statements: self.statements.load(Ordering::Relaxed),
            views: self.views.load(Ordering::Relaxed),
        }
    }

    fn add(&self, views: usize) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.views.fetch_add(views as u64, Ordering::Relaxed);
    }
}

/// The view counter of one worker thread (see [`crate::Domain::for_this_thread`]): it
/// starts its task on the runtime of the first view it counts, next to the thread's
/// hot-path connections.
pub(crate) struct ViewCounter {
    direct: Option<Direct>,
    queue: Mutex<Option<mpsc::UnboundedSender<Pending>>>,
    totals: Arc<CountingTotals>,
}

impl ViewCounter {
    /// A counter over `direct` that adds to `totals`; without a hot-path pool it counts
    /// nothing.
    pub(crate) fn new(direct: Option<Direct>, totals: Arc<CountingTotals>) -> Self {
        Self {
            direct,
            queue: Mutex::new(None),
            totals,
        }
    }

    /// The totals this counter adds to.
    pub(crate) fn totals(&self) -> &Arc<CountingTotals> {
        &self.totals
    }

    /// Counts one view of `code` with the views waiting beside it. `None` when the
    /// report is not open, or there is no hot-path pool: the caller then applies the
    /// rules one by one.
    pub(super) async fn count(&self, code: &str, now: NaiveDateTime) -> Result<Option<CountedRow>> {
        let Some(direct) = &self.direct else {
            return Ok(None);
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            code: code.to_owned(),
            now,
            reply,
        };
        self.queue(direct).send(pending).map_err(|_| stopped())?;
        Ok(answer.await.map_err(|_| stopped())??)
    }

    /// The queue of the counting task, started (again) when there is none: the runtime
    /// that ran it may have ended (a test's runtime, a server restarted in-process).
    fn queue(&self, direct: &Direct) -> mpsc::UnboundedSender<Pending> {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match queue.as_ref() {
            Some(sender) if !sender.is_closed() => sender.clone(),
            _ => {
                let (sender, receiver) = mpsc::unbounded_channel();
                tokio::spawn(run(direct.clone(), receiver, self.totals.clone()));
                *queue = Some(sender.clone());
                sender
            }
        }
    }
}

fn stopped() -> Error {
    Error::Internal("the view counter stopped".to_owned())
}

/// The counting task: takes what is waiting, counts it with one statement, answers, and
/// again, until the counter is dropped. Up to [`IN_FLIGHT`] statements run at once: the
/// views that arrive while they do are the next batch.
async fn run(
    direct: Direct,
    mut queue: mpsc::UnboundedReceiver<Pending>,
    totals: Arc<CountingTotals>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let (direct, totals) = (direct.clone(), totals.clone());
        tokio::spawn(async move {
            let counted = count_batch(&direct, &batch).await;
            if counted.is_ok() {
                totals.add(batch.len());
            }
            answer(batch, counted);
            drop(slot);
        });
    }
}

/// One statement for the whole batch: the counted reports, one row per distinct code.
async fn count_batch(direct: &Direct, batch: &[Pending]) -> Result<Vec<CountedRow>, DbErr> {
    let now = batch.iter().map(|p| p.now).max().unwrap_or_default();
    // Sorted by code: the order the rows are locked in.
    let mut seen: BTreeMap<&str, i32> = BTreeMap::new();
    for pending in batch {
        *seen.entry(pending.code.as_str()).or_default() += 1;
    }
    let rows = match direct {
        Direct::Postgres(pool) => {
            let codes: Vec<&str> = seen.keys().copied().collect();
            let counts: Vec<i32> = seen.values().copied().collect();
            let mut retries = 0;
            loop {
                let query = sea_orm::sqlx::query(COUNT_BATCH_SQL)
                    .bind(codes.as_slice())
                    .bind(counts.as_slice())
                    .bind(now);
                match pool.fetch_all(query).await {
                    Err(err) if is_deadlock(&err) && retries < DEADLOCK_RETRIES => retries += 1,
                    rows => break rows?,
                }
            }
        }
        Direct::Sqlite(pool) => {
            let seen = serde_json::to_string(&seen).map_err(|e| DbErr::Custom(e.to_string()))?;
            let query = sea_orm::sqlx::query(COUNT_BATCH_SQLITE)
                .bind(seen)
                .bind(now);
            pool.fetch_all(query).await?
        }
    };
    rows.iter()
        .map(|row| CountedRow::from_query_result(row, ""))
        .collect()
}

/// Gives each view its own count: a report counted `n` times by the batch returned its
/// new total `t`, and its views, in the order they arrived, get `t - n + 1` to `t`
/// (handed out from the last view back).
fn answer(batch: Vec<Pending>, counted: Result<Vec<CountedRow>, DbErr>) {
    let rows = match counted {
        Ok(rows) => rows,
        Err(err) => {
            for pending in batch {
                // A view whose request was dropped meanwhile was still counted; nobody
                // is left to tell.
                let _ = pending.reply.send(Err(err.clone()));
            }
            return;
        }
    };
    // The count the latest view of each report not yet answered gets.
    let mut latest: HashMap<String, CountedRow> = rows
        .into_iter()
        .map(|row| (row.short_code.clone(), row))
        .collect();
    for pending in batch.into_iter().rev() {
        let counted = latest.get_mut(&pending.code).map(|row| {
            let this = row.clone();
            row.view_count -= 1;
            this
        });
        let _ = pending.reply.send(Ok(counted));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Id;

    fn pending(
        code: &str,
    ) -> (
        Pending,
        oneshot::Receiver<Result<Option<CountedRow>, DbErr>>,
    ) {
        let (reply, answer) = oneshot::channel();
        let now = NaiveDateTime::default();
        let code = code.to_owned();
        (Pending { code, now, reply }, answer)
    }

    fn row(code: &str, view_count: i32) -> CountedRow {
        CountedRow {
            short_code: code.to_owned(),
            view_count,
            expires_at: None,
            created_at: NaiveDateTime::default(),
            analysis_id: Id(uuid::Uuid::nil()),
        }
    }

    fn count_of(answer: &mut oneshot::Receiver<Result<Option<CountedRow>, DbErr>>) -> Option<i32> {
        let counted = answer.try_recv().expect("answered").expect("no error");
        counted.map(|row| row.view_count)
    }

    #[test]
    fn each_view_gets_its_own_count_in_arrival_order() {
        let (batch, mut answers): (Vec<_>, Vec<_>) = ["a", "b", "a", "closed", "a", "b"]
            .map(pending)
            .into_iter()
            .unzip();
        // "a" was seen 3 times and now stands at 10, "b" twice and at 4.
        answer(batch, Ok(vec![row("b", 4), row("a", 10)]));
        let counts: Vec<Option<i32>> = answers.iter_mut().map(count_of).collect();
        assert_eq!(counts, [Some(8), Some(3), Some(9), None, Some(10), Some(4)]);
    }

    #[test]
    fn a_failed_statement_fails_every_view_of_the_batch() {
        let (batch, mut answers): (Vec<_>, Vec<_>) = ["a", "b"].map(pending).into_iter().unzip();
        answer(batch, Err(DbErr::Custom("gone".to_owned())));
        for answer in &mut answers {
            assert!(matches!(answer.try_recv(), Ok(Err(DbErr::Custom(_)))));
        }
    }
}
