//! Tier limits and monthly usage.
//!
//! Counters live in `usage_tracking`, one row per user and UTC calendar month
//! (`month_year` = `"YYYY-MM"`). A new month needs no reset job: its row simply does not
//! exist yet, and [`consume`] creates it at zero.
//!
//! Every limit is enforced by the database in one conditional `UPDATE`, never by a read
//! followed by a write in Rust, so that concurrent requests — in one process or in
//! several — can never push a counter past the limit.
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use entity::{usage_tracking, user_limits, users};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    Statement,
};
use serde::Serialize;

use crate::db::{begin_write, id_value};
use crate::{Context, Error, Id, LimitKind, Result, Tier};

/// The allowance of `kind` for `tier` by the tier table (monthly, or standing for
/// collaborators and data connections); `None` is unlimited.
///
/// `enterprise` has no table value: each enterprise customer has their own limits
/// (`user_limits`, set by an admin, `None` for unlimited), which [`Usage::report`] and
/// every enforcement read from the database; without a row, everything is unlimited.
pub fn limit_for(tier: Tier, kind: LimitKind) -> Option<i64> {
    match (tier, kind) {
        (Tier::Free, LimitKind::Datasets) => Some(5),
        (Tier::Free, LimitKind::AiMessages) => Some(50),
        (Tier::Free, LimitKind::Reports) => Some(3),
        (Tier::Free | Tier::Pro, LimitKind::Collaborators) => Some(3),
        (Tier::Free | Tier::Pro, LimitKind::DataConnections) => Some(5),
        (Tier::Team, LimitKind::DataConnections) => Some(10),
        (Tier::Pro | Tier::Team | Tier::Enterprise, _) => None,
    }
}

/// The `user_limits` column of `kind`. Only these fixed names are ever spliced into SQL.
fn custom_column(kind: LimitKind) -> &'static str {
    match kind {
        LimitKind::Datasets => "datasets",
        LimitKind::AiMessages => "ai_messages",
        LimitKind::Reports => "reports",
        LimitKind::Collaborators => "collaborators",
        LimitKind::DataConnections => "data_connections",
    }
}

/// The allowance of `kind` for `user_id` whose tier is `tier`: the tier table's, or for
/// an enterprise account its own limit. Read on `conn`, so that inside a transaction
/// that locked the user's row it is the value in force.
pub(crate) async fn allowance<C: ConnectionTrait>(
    conn: &C,
    user_id: Id,
    tier: Tier,
    kind: LimitKind,
) -> Result<Option<i64>> {
    if tier != Tier::Enterprise {
        return Ok(limit_for(tier, kind));
    }
    let custom = user_limits::Entity::find_by_id(user_id).one(conn).await?;
    Ok(CustomLimits::of(custom.as_ref()).get(kind))
}

/// The `month_year` key of the UTC calendar month holding `now`: `"YYYY-MM"`.
pub fn month_of(now: DateTime<Utc>) -> String {
    now.format("%Y-%m").to_string()
}

/// When the counters of `now`'s month reset: 00:00 UTC on the 1st of the next month.
pub fn resets_at(now: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|midnight| Utc.from_utc_datetime(&midnight))
        // Only reachable at the very end of chrono's range; "never resets" is the honest answer.
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The counter column of `kind`, `None` for a standing limit (no monthly counter). Only
/// these fixed names are ever spliced into SQL.
fn count_column(kind: LimitKind) -> Option<&'static str> {
    match kind {
        LimitKind::Datasets => Some("datasets_count"),
        LimitKind::AiMessages => Some("ai_messages_count"),
        LimitKind::Reports => Some("reports_count"),
        LimitKind::Collaborators | LimitKind::DataConnections => None,
    }
}

/// A SQL expression giving the limit of `kind` for `users.tier`, NULL when unlimited,
/// generated from [`limit_for`] so that SQL and Rust cannot disagree; an enterprise
/// account's comes from its `user_limits` row (none: NULL, unlimited). A tier string the
/// code does not know gets the free tier's limit: the strictest, never accidental
/// unlimited use.
fn limit_case_sql(kind: LimitKind) -> String {
    let mut sql = String::from("CASE users.tier");
    for tier in Tier::ALL {
        let limit = if tier == Tier::Enterprise {
            format!(
                "(SELECT user_limits.{column} FROM user_limits \
                  WHERE user_limits.user_id = users.id)",
                column = custom_column(kind)
            )
        } else {
            limit_for(tier, kind).map_or_else(|| "NULL".to_owned(), |n| n.to_string())
        };
        sql.push_str(&format!(" WHEN '{}' THEN {limit}", tier.as_str()));
    }
    let strictest =
        limit_for(Tier::Free, kind).map_or_else(|| "NULL".to_owned(), |n| n.to_string());
    sql.push_str(&format!(" ELSE {strictest} END"));
    sql
}

/// Counts one unit of `kind` for `user_id` in `now`'s month, if the user's tier allows it,
/// and returns the new count.
///
/// Pass the transaction of the write being counted (the dataset insert, the report
/// insert...): the count then commits or rolls back with it. A refused attempt changes
/// nothing and returns [`Error::LimitExceeded`]; an unknown user is [`Error::NotFound`].
pub(crate) async fn consume<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    user_id: Id,
    kind: LimitKind,
) -> Result<i64> {
    let backend = conn.get_database_backend();
    let month = month_of(now);
    let now_naive = now.naive_utc();
    let Some(column) = count_column(kind) else {
        return Err(Error::Internal(format!(
            "{} is a standing limit, not a monthly counter",
            kind.as_str()
        )));
    };

    // Step 1: make sure this month's row exists. ON CONFLICT DO NOTHING makes concurrent
    // first uses of a month race-free (the unique (user_id, month_year) key decides; the
    // loser waits for the winner and inserts nothing). Selecting from `users` inserts
    // nothing for an unknown user instead of failing on the foreign key.
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        "INSERT INTO usage_tracking \
             (id, user_id, month_year, datasets_count, ai_messages_count, reports_count, \
              created_at, updated_at) \
         SELECT $1, users.id, $3, 0, 0, 0, $4, $4 FROM users WHERE users.id = $2 \
         ON CONFLICT (user_id, month_year) DO NOTHING",
        [
            id_value(backend, Id(uuid::Uuid::new_v4())),
            id_value(backend, user_id),
            month.clone().into(),
            now_naive.into(),
        ],
    ))
    .await?;

    // Step 2: the check and the increment are ONE statement. The database evaluates the
    // WHERE clause against the row it is about to update while holding that row's write
    // lock (PostgreSQL re-checks it on the newest row version after waiting for a
    // concurrent updater; SQLite runs writers one at a time), so two requests can never
    // both see "4 < 5". The limit is read in the same statement from the user's current
    // tier, so a tier change applies to the very next request. An unlimited tier yields
    // NULL; `count < NULL` is unknown, which COALESCE turns into "allowed".
    // No row returned = refused, and nothing was written.
    let sql = format!(
        "UPDATE usage_tracking \
            SET {column} = {column} + 1, updated_at = $3 \
          WHERE user_id = $1 AND month_year = $2 \
            AND COALESCE({column} < (SELECT {limit} FROM users WHERE users.id = $1), TRUE) \
         RETURNING {column}",
        limit = limit_case_sql(kind),
    );
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [id_value(backend, user_id), month.into(), now_naive.into()],
    );
    // A second attempt only when the tier was raised between the refused update and the
    // read that explains it (PostgreSQL, read committed): the new tier must apply.
    for _ in 0..2 {
        if let Some(row) = conn.query_one_raw(statement.clone()).await? {
            return Ok(i64::from(row.try_get_by_index::<i32>(0)?));
        }
        if let Some(refused) = refusal(conn, now, user_id, kind).await? {
            return Err(refused);
        }
    }
    Err(Error::Internal(format!(
        "{} limit of user {user_id} kept changing while counting",
        kind.as_str()
    )))
}

/// Explains why [`consume`] updated nothing: unknown user, or the limit is reached.
/// `None` when the user's tier is now unlimited, i.e. the update should run again.
async fn refusal<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    user_id: Id,
    kind: LimitKind,
) -> Result<Option<Error>> {
    let Some(user) = users::Entity::find_by_id(user_id).one(conn).await? else {
        return Ok(Some(Error::NotFound));
    };
    let Some(allowed) = allowance(conn, user_id, user.tier.into(), kind).await? else {
        return Ok(None);
    };
    let used = usage_row(conn, user_id, &month_of(now))
        .await?
        .map_or(0, |row| counter_of(&row, kind));
    Ok(Some(Error::LimitExceeded {
        limit: kind,
        allowed,
        used,
        resets_at: Some(resets_at(now)),
    }))
}

async fn usage_row<C: ConnectionTrait>(
    conn: &C,
    user_id: Id,
    month: &str,
) -> Result<Option<usage_tracking::Model>> {
    Ok(usage_tracking::Entity::find()
        .filter(usage_tracking::Column::UserId.eq(user_id))
        .filter(usage_tracking::Column::MonthYear.eq(month))
        .one(conn)
        .await?)
}

fn counter_of(row: &usage_tracking::Model, kind: LimitKind) -> i64 {
    i64::from(match kind {
        LimitKind::Datasets => row.datasets_count,
        LimitKind::AiMessages => row.ai_messages_count,
        LimitKind::Reports => row.reports_count,
        LimitKind::Collaborators | LimitKind::DataConnections => 0,
    })
}

/// One counter of a [`UsageReport`]; `limit` is `None` when unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Counter {
    /// Used this month.
    pub used: i64,
    /// The tier's allowance.
    pub limit: Option<i64>,
}

/// A user's usage in the current month, against their tier's limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    /// `YYYY-MM`, UTC.
    pub month: String,
    /// The tier the limits come from.
    pub tier: Tier,
    /// When the counters go back to zero.
    pub resets_at: DateTime<Utc>,
    /// Dataset uploads.
    pub datasets: Counter,
    /// AI messages.
    pub ai_messages: Counter,
    /// Published reports.
    pub reports: Counter,
    /// People the user's analyses are shared with or offered to now (standing, not
    /// monthly).
    pub collaborators: Counter,
    /// The user's data connections (standing, not monthly).
    pub data_connections: Counter,
}

/// An enterprise account's own limits; `None` is unlimited. Monthly for datasets, AI
/// messages and reports; standing for collaborators and data connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CustomLimits {
    /// Dataset uploads a month.
    pub datasets: Option<i64>,
    /// AI messages a month.
    pub ai_messages: Option<i64>,
    /// Published reports a month.
    pub reports: Option<i64>,
    /// Distinct collaborators at once.
    pub collaborators: Option<i64>,
    /// Data connections at once.
    pub data_connections: Option<i64>,
}

/// A change of [`CustomLimits`]: `None` keeps a limit, `Some(None)` makes it unlimited,
/// `Some(Some(n))` sets it to `n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitsChange {
    /// Dataset uploads a month.
    pub datasets: Option<Option<i64>>,
    /// AI messages a month.
    pub ai_messages: Option<Option<i64>>,
    /// Published reports a month.
    pub reports: Option<Option<i64>>,
    /// Distinct collaborators at once.
    pub collaborators: Option<Option<i64>>,
    /// Data connections at once.
    pub data_connections: Option<Option<i64>>,
}

impl LimitsChange {
    /// The change that replaces every limit with `limits`.
    pub fn replace_all(limits: CustomLimits) -> Self {
        Self {
            datasets: Some(limits.datasets),
            ai_messages: Some(limits.ai_messages),
            reports: Some(limits.reports),
            collaborators: Some(limits.collaborators),
            data_connections: Some(limits.data_connections),
        }
    }
}

impl CustomLimits {
    fn of(row: Option<&user_limits::Model>) -> Self {
        let Some(row) = row else {
            return Self::default();
        };
        let widen = |n: Option<i32>| n.map(i64::from);
        Self {
            datasets: widen(row.datasets),
            ai_messages: widen(row.ai_messages),
            reports: widen(row.reports),
            collaborators: widen(row.collaborators),
            data_connections: widen(row.data_connections),
        }
    }

    /// The limit of `kind`; `None` is unlimited.
    pub fn get(&self, kind: LimitKind) -> Option<i64> {
        match kind {
            LimitKind::Datasets => self.datasets,
            LimitKind::AiMessages => self.ai_messages,
            LimitKind::Reports => self.reports,
            LimitKind::Collaborators => self.collaborators,
            LimitKind::DataConnections => self.data_connections,
        }
    }

    fn changed(mut self, change: LimitsChange) -> Result<Self> {
        for (limit, new, kind) in [
            (&mut self.datasets, change.datasets, LimitKind::Datasets),
            (
                &mut self.ai_messages,
                change.ai_messages,
                LimitKind::AiMessages,
            ),
            (&mut self.reports, change.reports, LimitKind::Reports),
            (
                &mut self.collaborators,
                change.collaborators,
                LimitKind::Collaborators,
            ),
            (
                &mut self.data_connections,
                change.data_connections,
                LimitKind::DataConnections,
            ),
        ] {
            if let Some(new) = new {
                if new.is_some_and(|n| !(0..=i64::from(i32::MAX)).contains(&n)) {
                    return Err(Error::validation(format!(
                        "{} must be a whole number from 0 to {} or unlimited",
                        kind.as_str(),
                        i32::MAX
                    )));
                }
                *limit = new;
            }
        }
        Ok(self)
    }
}

/// Monthly usage against tier limits.
#[derive(Clone)]
pub struct Usage {
    ctx: Context,
}

impl Usage {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// The current month's counters of `user_id` (zeros before the first use of the
    /// month); [`Error::NotFound`] for an unknown user.
    pub async fn report(&self, user_id: Id) -> Result<UsageReport> {
        let now = self.ctx.clock.now();
        let user = users::Entity::find_by_id(user_id)
            .one(&self.ctx.db)
            .await?
            .ok_or(Error::NotFound)?;
        let month = month_of(now);
        let row = usage_row(&self.ctx.db, user_id, &month).await?;
        let tier: Tier = user.tier.into();
        let custom = if tier == Tier::Enterprise {
            CustomLimits::of(
                user_limits::Entity::find_by_id(user_id)
                    .one(&self.ctx.db)
                    .await?
                    .as_ref(),
            )
        } else {
            CustomLimits::default()
        };
        let limit = |kind| {
            if tier == Tier::Enterprise {
                custom.get(kind)
            } else {
                limit_for(tier, kind)
            }
        };
        let counter = |kind| Counter {
            used: row.as_ref().map_or(0, |row| counter_of(row, kind)),
            limit: limit(kind),
        };
        Ok(UsageReport {
            month,
            tier,
            resets_at: resets_at(now),
            datasets: counter(LimitKind::Datasets),
            ai_messages: counter(LimitKind::AiMessages),
            reports: counter(LimitKind::Reports),
            collaborators: Counter {
                used: crate::collaborations::in_use(&self.ctx.db, user_id, now.naive_utc()).await?,
                limit: limit(LimitKind::Collaborators),
            },
            data_connections: Counter {
                used: crate::connections::in_use(&self.ctx.db, user_id).await?,
                limit: limit(LimitKind::DataConnections),
            },
        })
    }

    /// Another account's usage (admin).
    pub async fn report_of(&self, _admin: &crate::Admin, user_id: Id) -> Result<UsageReport> {
        self.report(user_id).await
    }

    /// The own limits of the enterprise account `user_id` (all `None`, unlimited, until
    /// set). [`Error::NotFound`] for an unknown user.
    pub async fn custom_limits(&self, _admin: &crate::Admin, user_id: Id) -> Result<CustomLimits> {
        users::Entity::find_by_id(user_id)
            .one(&self.ctx.db)
            .await?
            .ok_or(Error::NotFound)?;
        let row = user_limits::Entity::find_by_id(user_id)
            .one(&self.ctx.db)
            .await?;
        Ok(CustomLimits::of(row.as_ref()))
    }

    /// Changes the own limits of the enterprise account `user_id` and returns them all.
    /// They apply to the next request on every process (each enforcement reads them in
    /// the statement that decides). A lower limit keeps what exists and refuses what is
    /// new. [`Error::Validation`] when the account is not enterprise (its tier decides
    /// its limits) or a value is out of range; nothing changes then.
    pub async fn change_limits(
        &self,
        _admin: &crate::Admin,
        user_id: Id,
        change: LimitsChange,
    ) -> Result<CustomLimits> {
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let user = crate::db::lock_user(&txn, user_id).await?;
        if Tier::from(user.tier) != Tier::Enterprise {
            return Err(Error::validation(
                "custom limits are for enterprise accounts: make the account enterprise first",
            ));
        }
        let existing = user_limits::Entity::find_by_id(user_id).one(&txn).await?;
        let limits = CustomLimits::of(existing.as_ref()).changed(change)?;
        let narrow = |n: Option<i64>| n.and_then(|n| i32::try_from(n).ok());
        let row = user_limits::ActiveModel {
            user_id: Set(user_id),
            datasets: Set(narrow(limits.datasets)),
            ai_messages: Set(narrow(limits.ai_messages)),
            reports: Set(narrow(limits.reports)),
            collaborators: Set(narrow(limits.collaborators)),
            data_connections: Set(narrow(limits.data_connections)),
            created_at: Set(existing.as_ref().map_or(now, |row| row.created_at)),
            updated_at: Set(now),
        };
        if existing.is_some() {
            row.update(&txn).await?;
        } else {
            row.insert(&txn).await?;
        }
        txn.commit().await?;
        Ok(limits)
    }

    /// Counts one AI message (the AI chat service asks before it answers) and returns the
    /// usage after it; [`Error::LimitExceeded`] when the month's allowance is used up.
    pub async fn consume_ai_message(&self, user_id: Id) -> Result<UsageReport> {
        self.consume(user_id, LimitKind::AiMessages).await?;
        self.report(user_id).await
    }

    /// Counts one use of `kind` on its own (for a service outside this crate whose work
    /// counts against a limit) and returns the month's new count. Exact under concurrency:
    /// one conditional statement decides, whatever the number of processes.
    /// [`Error::LimitExceeded`] when the month's allowance is used up; nothing changes then.
    pub async fn consume(&self, user_id: Id, kind: LimitKind) -> Result<i64> {
        let now = self.ctx.clock.now();
        let txn = begin_write(&self.ctx.db).await?;
        let used = consume(&txn, now, user_id, kind).await?;
        txn.commit().await?;
        Ok(used)
    }
}
