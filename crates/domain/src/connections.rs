//! Data connections (PHASES.md, phase 7): an external PostgreSQL or MySQL database a user
//! imports datasets from.
//!
//! - The password is stored only sealed by the [`crate::Keyring`] (AES-256-GCM, a fresh
//!   nonce per write, the row's id as associated data, the key id as prefix), held in a
//!   `secrecy::SecretString` while in memory, and never part of a [`Connection`], an
//!   error, a log line or the activity log.
//! - Every connect goes through the network guard (`connections/guard.rs`): the host is
//!   resolved, each address checked, and the checked address itself is what the driver
//!   connects to.
//! - The data-connection limit is a standing count decided inside one write transaction
//!   that locks the owner's row, like the collaborator limit.
//! - An import streams the query's rows (NDJSON) into the dataset upload path, so the file
//!   is staged, size-limited, counted once toward `datasets` and published exactly like an
//!   upload, with `connection_id` set.
pub(crate) mod guard;
mod source;

use chrono::{DateTime, NaiveDateTime, Utc};
use entity::data_connections;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;

pub use guard::AllowList;
pub use source::ConnectionKind;

use crate::access::Actor;
use crate::db::{begin_write, lock_user};
use crate::pagination::{Page, PageRequest, page_from};
use crate::usage::allowance;
use crate::{Context, Dataset, Error, Id, LimitKind, NewDataset, Result};

/// Longest accepted password, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest accepted import query, in bytes.
pub const MAX_IMPORT_SQL_BYTES: usize = 100_000;
const SSL_MODES: [&str; 3] = ["disable", "prefer", "require"];

/// A data connection as its owner sees it: everything but the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Its id.
    pub id: Id,
    /// Display name.
    pub name: String,
    /// PostgreSQL or MySQL.
    pub kind: ConnectionKind,
    /// Host name or address, as given.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User name.
    pub username: String,
    /// Whether a password is stored.
    pub has_password: bool,
    /// `disable`, `prefer` or `require`.
    pub sslmode: String,
    /// `untested`, `ok` or `failed`: the last test's outcome.
    pub status: String,
    /// When it was last tested.
    pub last_tested_at: Option<DateTime<Utc>>,
    /// Why the last test failed (sanitised).
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<data_connections::Model> for Connection {
    type Error = Error;

    fn try_from(row: data_connections::Model) -> Result<Self> {
        Ok(Connection {
            id: row.id,
            name: row.name,
            kind: ConnectionKind::parse(&row.kind).ok_or_else(|| {
                Error::Internal(format!("unknown connection kind {:?}", row.kind))
            })?,
            host: row.host,
            port: u16::try_from(row.port)
                .map_err(|_| Error::Internal("stored port out of range".to_owned()))?,
            database: row.database_name,
            username: row.username,
            has_password: row.password_encrypted.is_some(),
            sslmode: row.sslmode.unwrap_or_else(|| "prefer".to_owned()),
            status: row.status,
            last_tested_at: row.last_tested_at.map(|t| t.and_utc()),
            last_error: row.last_error,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

/// A connection to create.
pub struct NewConnection {
    /// Display name, 1 to 255 characters.
    pub name: String,
    /// PostgreSQL or MySQL.
    pub kind: ConnectionKind,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User name.
    pub username: String,
    /// The password, if the server wants one.
    pub password: Option<SecretString>,
    /// `disable`, `prefer` (default) or `require`.
    pub sslmode: Option<String>,
}

/// A change of a connection: `None` keeps a field. `password: Some(None)` removes the
/// stored password.
#[derive(Default)]
pub struct ConnectionChange {
    /// New name.
    pub name: Option<String>,
    /// New host.
    pub host: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// New database.
    pub database: Option<String>,
    /// New user name.
    pub username: Option<String>,
    /// New password, or `Some(None)` to remove it.
    pub password: Option<Option<SecretString>>,
    /// New TLS mode.
    pub sslmode: Option<String>,
}

/// The outcome of [`Connections::test`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutcome {
    /// Whether `SELECT 1` ran.
    pub ok: bool,
    /// How long the test took.
    pub elapsed_ms: u64,
    /// Why it failed (sanitised: never a setting or the password).
    pub error: Option<String>,
}

fn text(field: &str, value: String, max: usize) -> Result<String> {
    let value = value.trim().to_owned();
    if value.is_empty() || value.chars().count() > max || value.contains('\0') {
        return Err(Error::validation(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    Ok(value)
}

fn sslmode(value: Option<String>) -> Result<String> {
    let mode = value.unwrap_or_else(|| "prefer".to_owned());
    if SSL_MODES.contains(&mode.as_str()) {
        Ok(mode)
    } else {
        Err(Error::validation(
            "sslmode must be disable, prefer or require",
        ))
    }
}

fn port(port: u16) -> Result<i32> {
    if port == 0 {
        return Err(Error::validation("port must be 1 to 65535"));
    }
    Ok(i32::from(port))
}

fn password(password: &SecretString) -> Result<()> {
    let bytes = password.expose_secret().len();
    if bytes == 0 || bytes > MAX_PASSWORD_BYTES || password.expose_secret().contains('\0') {
        return Err(Error::validation(format!(
            "password must be 1 to {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Whether `sql` starts (after comments and parentheses) with a query keyword.
fn is_query(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start().trim_start_matches('(');
        if let Some(line) = rest.strip_prefix("--") {
            rest = line.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(block) = rest.strip_prefix("/*") {
            rest = block.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(word.as_str(), "select" | "with" | "values" | "table")
}

/// How many connections `owner` has.
pub(crate) async fn in_use<C: ConnectionTrait>(conn: &C, owner: Id) -> Result<i64> {
    Ok(data_connections::Entity::find()
        .filter(data_connections::Column::UserId.eq(owner))
        .count(conn)
        .await? as i64)
}

/// External databases a user imports datasets from.
#[derive(Clone)]
pub struct Connections {
    ctx: Context,
}

impl Connections {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    fn seal(&self, id: Id, password: &SecretString) -> Result<String> {
        self.ctx.keyring()?.encrypt(
            password.expose_secret().as_bytes(),
            id.to_string().as_bytes(),
        )
    }

    /// Creates a connection. The host must pass the network guard now (and again at every
    /// connect); the data-connection limit is decided under the owner's row lock.
    pub async fn create(&self, actor: impl Into<Actor>, new: NewConnection) -> Result<Connection> {
        let actor = actor.into();
        let name = crate::text::validate_name(new.name, true)?;
        let host = text("host", new.host, 253)?;
        let port = port(new.port)?;
        let database = text("database", new.database, 255)?;
        let username = text("username", new.username, 255)?;
        let sslmode = sslmode(new.sslmode)?;
        if let Some(p) = &new.password {
            password(p)?;
        }
        guard::checked_address(&self.ctx.settings.connections_allow, &host, new.port).await?;
        let id = Id::new_v4();
        let sealed = new
            .password
            .as_ref()
            .map(|p| self.seal(id, p))
            .transpose()?;
        let now = self.ctx.clock.now_naive();

        let txn = begin_write(&self.ctx.db).await?;
        let owner = lock_user(&txn, actor.user_id).await?;
        if let Some(allowed) = allowance(
            &txn,
            owner.id,
            owner.tier.into(),
            LimitKind::DataConnections,
        )
        .await?
        {
            let used = in_use(&txn, owner.id).await?;
            if used >= allowed {
                return Err(Error::LimitExceeded {
                    limit: LimitKind::DataConnections,
                    allowed,
                    used,
                    resets_at: None,
                });
            }
        }
        let row = data_connections::ActiveModel {
            id: Set(id),
            user_id: Set(owner.id),
            name: Set(name),
            kind: Set(new.kind.as_str().to_owned()),
            host: Set(host),
            port: Set(port),
            database_name: Set(database),
            username: Set(username),
            password_encrypted: Set(sealed),
            sslmode: Set(Some(sslmode)),
            status: Set("untested".to_owned()),
            last_tested_at: Set(None),
            last_error: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Connection::try_from(row)
    }

    /// The caller's connections, newest first.
    pub async fn list(&self, user_id: Id, page: &PageRequest) -> Result<Page<Connection>> {
        let mut query =
            data_connections::Entity::find().filter(data_connections::Column::UserId.eq(user_id));
        if let Some(after) = &page.after {
            query = query.filter(after.older_than(
                data_connections::Column::CreatedAt,
                data_connections::Column::Id,
            ));
        }
        let rows = query
            .order_by_desc(data_connections::Column::CreatedAt)
            .order_by_desc(data_connections::Column::Id)
            .limit(page.limit + 1)
            .all(&self.ctx.db)
            .await?;
        let page = page_from(rows, page.limit, |c| (c.created_at, c.id));
        let items = page
            .items
            .into_iter()
            .map(Connection::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    async fn row(&self, user_id: Id, id: Id) -> Result<data_connections::Model> {
        data_connections::Entity::find_by_id(id)
            .filter(data_connections::Column::UserId.eq(user_id))
            .one(&self.ctx.db)
            .await?
            .ok_or(Error::NotFound)
    }

    /// One of the caller's connections.
    pub async fn get(&self, user_id: Id, id: Id) -> Result<Connection> {
        Connection::try_from(self.row(user_id, id).await?)
    }

    /// Changes a connection; a new host or port passes the guard first. A changed
    /// connection is untested again.
    pub async fn update(
        &self,
        actor: impl Into<Actor>,
        id: Id,
        change: ConnectionChange,
    ) -> Result<Connection> {
        let actor = actor.into();
        let current = self.row(actor.user_id, id).await?;
        let now = self.ctx.clock.now_naive();
        let mut row: data_connections::ActiveModel = current.clone().into();
        if let Some(name) = change.name {
            row.name = Set(crate::text::validate_name(name, true)?);
        }
        let host = change
            .host
            .map(|h| text("host", h, 253))
            .transpose()?
            .unwrap_or_else(|| current.host.clone());
        let new_port = change.port.map(port).transpose()?.unwrap_or(current.port);
        if host != current.host || new_port != current.port {
            let port_number = u16::try_from(new_port)
                .map_err(|_| Error::validation("port must be 1 to 65535"))?;
            guard::checked_address(&self.ctx.settings.connections_allow, &host, port_number)
                .await?;
        }
        row.host = Set(host);
        row.port = Set(new_port);
        if let Some(database) = change.database {
            row.database_name = Set(text("database", database, 255)?);
        }
        if let Some(username) = change.username {
            row.username = Set(text("username", username, 255)?);
        }
        if let Some(mode) = change.sslmode {
            row.sslmode = Set(Some(sslmode(Some(mode))?));
        }
        match change.password {
            None => {}
            Some(None) => row.password_encrypted = Set(None),
            Some(Some(p)) => {
                password(&p)?;
                row.password_encrypted = Set(Some(self.seal(id, &p)?));
            }
        }
        row.status = Set("untested".to_owned());
        row.last_error = Set(None);
        row.updated_at = Set(now);
        let updated = row.update(&self.ctx.db).await.map_err(|e| match e {
            sea_orm::DbErr::RecordNotUpdated => Error::NotFound,
            other => other.into(),
        })?;
        Connection::try_from(updated)
    }

    /// Deletes a connection; datasets imported through it stay (their `connection_id`
    /// becomes null).
    pub async fn delete(&self, actor: impl Into<Actor>, id: Id) -> Result<()> {
        let actor = actor.into();
        let deleted = data_connections::Entity::delete_many()
            .filter(data_connections::Column::Id.eq(id))
            .filter(data_connections::Column::UserId.eq(actor.user_id))
            .exec(&self.ctx.db)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// Where and as whom `row` connects, after the guard (on the address connected to).
    async fn target(&self, row: &data_connections::Model) -> Result<source::Target> {
        let kind = ConnectionKind::parse(&row.kind)
            .ok_or_else(|| Error::Internal("unknown connection kind".to_owned()))?;
        let port = u16::try_from(row.port)
            .map_err(|_| Error::Internal("stored port out of range".to_owned()))?;
        let address =
            guard::checked_address(&self.ctx.settings.connections_allow, &row.host, port).await?;
        let password = match &row.password_encrypted {
            None => None,
            Some(sealed) => {
                let plain = self
                    .ctx
                    .keyring()?
                    .decrypt(sealed, row.id.to_string().as_bytes())?;
                let text = String::from_utf8(plain.to_vec())
                    .map_err(|_| Error::Internal("stored password is not text".to_owned()))?;
                Some(SecretString::from(text))
            }
        };
        Ok(source::Target {
            kind,
            address,
            database: row.database_name.clone(),
            username: row.username.clone(),
            password,
            sslmode: row.sslmode.clone().unwrap_or_else(|| "prefer".to_owned()),
        })
    }

    /// Connects and runs `SELECT 1` in a read-only transaction (10 s at most), and records
    /// the outcome on the connection. A host the guard refuses is
    /// [`Error::HostNotAllowed`], before any packet is sent.
    pub async fn test(&self, actor: impl Into<Actor>, id: Id) -> Result<TestOutcome> {
        let actor = actor.into();
        let row = self.row(actor.user_id, id).await?;
        let target = self.target(&row).await?;
        let started = std::time::Instant::now();
        let outcome = source::test(&target).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let error = outcome.err();
        let now: NaiveDateTime = self.ctx.clock.now_naive();
        data_connections::Entity::update_many()
            .col_expr(
                data_connections::Column::Status,
                sea_orm::sea_query::Expr::value(if error.is_none() { "ok" } else { "failed" }),
            )
            .col_expr(
                data_connections::Column::LastTestedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .col_expr(
                data_connections::Column::LastError,
                sea_orm::sea_query::Expr::value(error.clone()),
            )
            .filter(data_connections::Column::Id.eq(id))
            .exec(&self.ctx.db)
            .await?;
        Ok(TestOutcome {
            ok: error.is_none(),
            elapsed_ms,
            error,
        })
    }

    /// Imports the rows of `sql` (one read-only statement, under the import time limit)
    /// as a new NDJSON dataset named `name`, with `connection_id` set: streamed, at most
    /// the upload size limit (else nothing is stored or counted), counted once toward the
    /// `datasets` limit. A statement that writes is [`Error::QueryFailed`] with reason
    /// `refused`; the time limit is reason `timeout`.
    pub async fn import(
        &self,
        actor: impl Into<Actor>,
        id: Id,
        name: String,
        sql: String,
    ) -> Result<Dataset> {
        let actor = actor.into();
        let name = crate::text::validate_name(name, true)?;
        let sql = sql.trim().trim_end_matches(';').trim().to_owned();
        if sql.is_empty() || sql.len() > MAX_IMPORT_SQL_BYTES || sql.contains('\0') {
            return Err(Error::validation(format!(
                "sql must be one statement of 1 to {MAX_IMPORT_SQL_BYTES} bytes"
            )));
        }
        if !is_query(&sql) {
            // Not only a courtesy: on MySQL a DDL statement commits the read-only
            // transaction implicitly and runs outside it.
            return Err(Error::QueryFailed(crate::query::QueryFailure::new(
                crate::query::FailureReason::Refused,
                "only a query (SELECT, WITH, VALUES or TABLE) can be imported",
            )));
        }
        let row = self.row(actor.user_id, id).await?;
        let target = self.target(&row).await?;
        let timeout = self.ctx.settings.import_timeout;
        let (sender, receiver) = mpsc::channel(4);
        let producer = tokio::spawn(source::import(target, sql, timeout, sender));
        // The whole import is bounded too: a source that stops sending cannot hold the
        // upload open forever.
        let rest = async move {
            match tokio::time::timeout(timeout + source::CONNECT_TIMEOUT, producer).await {
                Ok(Ok(Ok(()))) => Ok(None),
                Ok(Ok(Err(e))) => Err(e),
                Ok(Err(e)) => Err(Error::Internal(format!("the import task failed: {e}"))),
                Err(_) => Err(Error::QueryFailed(crate::query::QueryFailure::new(
                    crate::query::FailureReason::Timeout,
                    "the import took longer than its time limit",
                ))),
            }
        };
        let body = tokio_stream::wrappers::ReceiverStream::new(receiver);
        crate::Datasets::new(self.ctx.clone())
            .upload_imported(
                actor,
                NewDataset {
                    name: Some(name),
                    file_name: "import.ndjson".to_owned(),
                    content_type: Some("application/x-ndjson".to_owned()),
                },
                body,
                rest,
                row.id,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::is_query;

    #[test]
    fn only_queries_are_imported() {
        for ok in [
            "SELECT 1",
            "  select * from t",
            "(SELECT 1) UNION (SELECT 2)",
            "-- note\nWITH a AS (SELECT 1) SELECT * FROM a",
            "/* x */ VALUES (1)",
            "TABLE t",
        ] {
            assert!(is_query(ok), "{ok}");
        }
        for refused in [
            "DELETE FROM t",
            "drop table t",
            "INSERT INTO t VALUES (1)",
            "-- SELECT\nUPDATE t SET a = 1",
            "/* SELECT */ TRUNCATE t",
            "CALL p()",
            "",
        ] {
            assert!(!is_query(refused), "{refused}");
        }
    }
}
