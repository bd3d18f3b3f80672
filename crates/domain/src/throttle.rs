//! Failed-attempt limits for logins and report unlocks, counted in the database.
//!
//! Failures are counted, not attempts ([`verify`]): a guess is checked only while the
//! window holds fewer than [`MAX_FAILURES`] failures, a wrong password adds one (one
//! atomic upsert), and a right one forgets the window. So simultaneous logins with the
//! right password are never refused, however many arrive at once.
//!
//! The check, the hash and the recording all happen under one of the password hasher's
//! permits: a burst of guesses can therefore overshoot the limit by at most the hashes
//! running at once (`IOPS_HASH_CONCURRENCY` per process, minus one) before every further
//! guess is refused, whichever process it reaches.
use chrono::NaiveDateTime;
use entity::attempt_limits;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement, Value};

use crate::error::{Error, Result};
use crate::passwords::{Hasher, Verified};

/// Attempts allowed per window; the next one is refused.
pub const MAX_FAILURES: i32 = 10;
/// Length of a window, counted from its first attempt.
pub const WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// Longest stored `client` (the column is `VARCHAR(64)`).
const MAX_CLIENT_CHARS: usize = 64;
/// Longest stored `subject` (the column is `VARCHAR(255)`).
const MAX_SUBJECT_CHARS: usize = 255;

/// What is being guessed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// An account password; subject = the normalized email.
    Login,
    /// A report password; subject = the report id.
    Unlock,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Login => "login",
            Scope::Unlock => "unlock",
        }
    }
}

fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The key of a window as stored: long values are cut to the columns' sizes, so that an
/// oversized input is still counted (under its prefix) instead of failing the write.
fn key(scope: Scope, subject: &str, client: &str) -> (String, String, String) {
    (
        scope.as_str().to_owned(),
        truncate_chars(subject, MAX_SUBJECT_CHARS).to_owned(),
        truncate_chars(client, MAX_CLIENT_CHARS).to_owned(),
    )
}

/// One statement that both counts the attempt and decides whether it may proceed.
///
/// Why it is atomic: it is a single `INSERT ... ON CONFLICT DO UPDATE`, which both
/// databases execute as one indivisible read-modify-write of the row. PostgreSQL locks
/// the conflicting row and evaluates the `SET` and `WHERE` against its latest committed
/// version (a concurrent first insert makes the loser wait and then take the update
/// path); SQLite runs the whole statement under its single write lock. There is no
/// separate read whose answer could be stale by the time of the write.
///
/// - no row yet: insert it with `failures = 1` (a new window starts now);
/// - window over (`window_start <= $5`, i.e. older than [`WINDOW`]): restart it at 1;
/// - window running with room (`failures < $6`): add one;
/// - window full: the `WHERE` refuses the update, nothing is written, and `RETURNING`
///   yields no row, which is the "refused" answer.
///
/// `$1, $2...` placeholders work on both backends; on SQLite a repeated `$n` is one
/// parameter. Timestamps are bound values, never the database's own clock, so the
/// injected clock rules here too (SQLite's text timestamps compare in time order
/// because sqlx writes them all in one `YYYY-MM-DD HH:MM:SS[.ffffff]` form).
const RESERVE_SQL: &str = "
    INSERT INTO attempt_limits (scope, subject, client, window_start, failures)
    VALUES ($1, $2, $3, $4, 1)
    ON CONFLICT (scope, subject, client) DO UPDATE SET
        failures = CASE WHEN attempt_limits.window_start <= $5 THEN 1
                        ELSE attempt_limits.failures + 1 END,
        window_start = CASE WHEN attempt_limits.window_start <= $5 THEN $4
                            ELSE attempt_limits.window_start END
    WHERE attempt_limits.window_start <= $5 OR attempt_limits.failures < $6
    RETURNING failures";

/// Checks `password` against `stored` (`None`: no such account, a decoy hash is checked)
/// under the failed-attempt limit of `client` on `subject`: [`Error::RateLimited`] without
/// hashing when the window holds [`MAX_FAILURES`] failures; otherwise the verdict, with a
/// failure counted or the window forgotten.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn verify<C: ConnectionTrait>(
    conn: &C,
    hasher: &Hasher,
    now: NaiveDateTime,
    scope: Scope,
    subject: &str,
    client: &str,
    password: &str,
    stored: Option<String>,
) -> Result<Verified> {
    // Check, hash and record under one permit: a guess waiting for a permit sees every
    // failure of the guesses that held it before.
    let permit = hasher.permit().await?;
    check(conn, now, scope, subject, client).await?;
    let verdict = hasher
        .verify_holding(&permit, password.to_owned(), stored)
        .await?;
    if verdict.ok() {
        clear(conn, scope, subject, client).await?;
    } else {
        // Refused by the full window means a concurrent guess filled it meanwhile: this
        // one was already checked, and the window is full either way.
        let _ = reserve(conn, now, scope, subject, client).await;
    }
    drop(permit);
    Ok(verdict)
}

/// [`Error::RateLimited`] when the window of `client` on `subject` is running and holds
/// [`MAX_FAILURES`] failures; a read only.
async fn check<C: ConnectionTrait>(
    conn: &C,
    now: NaiveDateTime,
    scope: Scope,
    subject: &str,
    client: &str,
) -> Result<()> {
    let window = attempt_limits::Entity::find_by_id(key(scope, subject, client))
        .one(conn)
        .await?;
    match window {
        Some(w) if w.window_start > now - WINDOW && w.failures >= MAX_FAILURES => {
            Err(Error::RateLimited {
                retry_after_secs: seconds_until(w.window_start + WINDOW, now),
            })
        }
        _ => Ok(()),
    }
}

/// Counts one failure of `client` on `subject`. Refused with [`Error::RateLimited`] when
/// the window already holds [`MAX_FAILURES`].
pub async fn reserve<C: ConnectionTrait>(
    conn: &C,
    now: NaiveDateTime,
    scope: Scope,
    subject: &str,
    client: &str,
) -> Result<()> {
    let (scope_text, subject, client) = key(scope, subject, client);
    let expired_before = now - WINDOW;
    let backend = conn.get_database_backend();
    let counted = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            RESERVE_SQL,
            [
                Value::from(scope_text.clone()),
                Value::from(subject.clone()),
                Value::from(client.clone()),
                Value::from(now),
                Value::from(expired_before),
                Value::from(MAX_FAILURES),
            ],
        ))
        .await?;
    if counted.is_some() {
        return Ok(());
    }
    // Refused. Only the Retry-After hint is read separately; if the window was cleared
    // meanwhile, "retry in a second" is still an honest answer.
    let window = attempt_limits::Entity::find_by_id((scope_text, subject, client))
        .one(conn)
        .await?;
    let retry_after_secs = window.map_or(1, |w| seconds_until(w.window_start + WINDOW, now));
    Err(Error::RateLimited { retry_after_secs })
}

/// Deletes windows that are over (older than [`WINDOW`]): they hold nothing a check would
/// read (an attempt after the window restarts it at 1), and a guessing client leaves one
/// row per subject it tried. Returns the rows removed.
pub(crate) async fn prune<C: ConnectionTrait>(conn: &C, now: NaiveDateTime) -> Result<u64> {
    let result = attempt_limits::Entity::delete_many()
        .filter(attempt_limits::Column::WindowStart.lte(now - WINDOW))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// Whole seconds from `now` until `at`, rounded up, at least 1.
fn seconds_until(at: NaiveDateTime, now: NaiveDateTime) -> u64 {
    let millis = (at - now).num_milliseconds();
    let secs = (millis + 999).div_euclid(1000);
    u64::try_from(secs).unwrap_or(0).max(1)
}

/// Forgets the window of `client` on `subject`: the attempt succeeded.
pub async fn clear<C: ConnectionTrait>(
    conn: &C,
    scope: Scope,
    subject: &str,
    client: &str,
) -> Result<()> {
    attempt_limits::Entity::delete_by_id(key(scope, subject, client))
        .exec(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_cut_on_character_boundaries() {
        let client = "é".repeat(70);
        let (scope, subject, cut) = key(Scope::Unlock, "r", &client);
        assert_eq!(scope, "unlock");
        assert_eq!(subject, "r");
        assert_eq!(cut.chars().count(), 64);
        assert_eq!(key(Scope::Login, "a", "short").2, "short");
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0)
            .unwrap()
            .naive_utc();
        assert_eq!(
            seconds_until(now + chrono::Duration::milliseconds(1500), now),
            2
        );
        assert_eq!(seconds_until(now + WINDOW, now), 900);
        assert_eq!(seconds_until(now, now), 1);
        assert_eq!(seconds_until(now - WINDOW, now), 1);
    }

    /// Client prefixes, scopes and subjects each have their own window (SQLite here; the
    /// same statements run on PostgreSQL through every login and unlock test).
    #[tokio::test]
    async fn windows_are_per_scope_subject_and_client_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let database = crate::Database::connect(&url, 1).await.unwrap();
        let conn = database.connection();
        migration::schema::upgrade(conn, None).await.unwrap();
        let now = chrono::Utc::now().naive_utc();
        let report = uuid::Uuid::new_v4().to_string();
        // Clients longer than the column are counted under their first 64 characters.
        let client = format!("{}-a", "x".repeat(64));
        let same_prefix = format!("{}-b", "x".repeat(64));

        for _ in 0..MAX_FAILURES {
            reserve(conn, now, Scope::Unlock, &report, &client)
                .await
                .unwrap();
        }
        let refused = reserve(conn, now, Scope::Unlock, &report, &same_prefix).await;
        assert!(
            matches!(
                refused,
                Err(Error::RateLimited {
                    retry_after_secs: 900
                })
            ),
            "{refused:?}"
        );
        reserve(conn, now, Scope::Login, &report, &client)
            .await
            .unwrap();
        reserve(conn, now, Scope::Unlock, "another report", &client)
            .await
            .unwrap();
        clear(conn, Scope::Unlock, &report, &client).await.unwrap();
        reserve(conn, now, Scope::Unlock, &report, &client)
            .await
            .unwrap();
    }
}
