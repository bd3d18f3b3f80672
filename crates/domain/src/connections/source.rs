//! Talking to a connection's database (sqlx's PostgreSQL and MySQL drivers): the test
//! and the import. Every session is a read-only transaction with a statement timeout;
//! the user's SQL runs as ONE prepared statement (the extended protocol refuses several
//! statements, so `...; COMMIT; DELETE ...` cannot leave the read-only transaction), and
//! its rows stream out as NDJSON lines, never held whole in memory.
//!
//! Errors say what went wrong in the source's own words (its error messages never hold
//! the password) or by kind (refused, unreachable, TLS), never with connection settings.
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlRow, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{Column, ConnectOptions, Connection, Executor, Row, TypeInfo, ValueRef};
use tokio::sync::mpsc;

use crate::query::{FailureReason, QueryFailure};
use crate::{Error, Result};

/// How long connecting may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of NDJSON gathered before they are handed to the dataset store.
const CHUNK_BYTES: usize = 64 * 1024;

/// Which database a connection speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionKind {
    /// PostgreSQL (and servers speaking its protocol).
    Postgresql,
    /// MySQL or MariaDB.
    Mysql,
}

impl ConnectionKind {
    /// `postgresql` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Postgresql => "postgresql",
            ConnectionKind::Mysql => "mysql",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "postgresql" => Some(ConnectionKind::Postgresql),
            "mysql" => Some(ConnectionKind::Mysql),
            _ => None,
        }
    }
}

/// Where and as whom to connect: the address the guard checked, never the name again.
pub(crate) struct Target {
    pub kind: ConnectionKind,
    pub address: SocketAddr,
    pub database: String,
    pub username: String,
    pub password: Option<SecretString>,
    /// `disable`, `prefer` or `require`.
    pub sslmode: String,
}

enum Session {
    Postgres(PgConnection),
    Mysql(MySqlConnection),
}

/// Connects and opens the read-only transaction with `statement_timeout`.
async fn open(
    target: &Target,
    statement_timeout: Duration,
) -> std::result::Result<Session, String> {
    let host = target.address.ip().to_string();
    let port = target.address.port();
    let password = target
        .password
        .as_ref()
        .map(|p| p.expose_secret().to_owned())
        .unwrap_or_default();
    let millis = statement_timeout.as_millis().max(1);
    let connect = async {
        match target.kind {
            ConnectionKind::Postgresql => {
                let options = PgConnectOptions::new_without_pgpass()
                    .host(&host)
                    .port(port)
                    .database(&target.database)
                    .username(&target.username)
                    .password(&password)
                    .application_name("iops")
                    .ssl_mode(match target.sslmode.as_str() {
                        "disable" => PgSslMode::Disable,
                        "require" => PgSslMode::Require,
                        _ => PgSslMode::Prefer,
                    })
                    .disable_statement_logging();
                let mut conn = options.connect().await.map_err(|e| describe(&e))?;
                conn.execute("START TRANSACTION READ ONLY")
                    .await
                    .map_err(|e| describe(&e))?;
                // Our own number, formatted here: nothing of the user's is spliced.
                let limit = format!("SET LOCAL statement_timeout = {millis}");
                conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(limit)))
                    .await
                    .map_err(|e| describe(&e))?;
                Ok(Session::Postgres(conn))
            }
            ConnectionKind::Mysql => {
                let options = MySqlConnectOptions::new()
                    .host(&host)
                    .port(port)
                    .database(&target.database)
                    .username(&target.username)
                    .password(&password)
                    .ssl_mode(match target.sslmode.as_str() {
                        "disable" => MySqlSslMode::Disabled,
                        "require" => MySqlSslMode::Required,
                        _ => MySqlSslMode::Preferred,
                    })
                    .disable_statement_logging();
                let mut conn = options.connect().await.map_err(|e| describe(&e))?;
                let version: String = sqlx::query_scalar("SELECT VERSION()")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| describe(&e))?;
                // MariaDB and MySQL name the statement time limit differently.
                let limit = if version.contains("MariaDB") {
                    format!(
                        "SET SESSION max_statement_time = {}",
                        millis as f64 / 1000.0
                    )
                } else {
                    format!("SET SESSION MAX_EXECUTION_TIME = {millis}")
                };
                conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(limit)))
                    .await
                    .map_err(|e| describe(&e))?;
                conn.execute("START TRANSACTION READ ONLY")
                    .await
                    .map_err(|e| describe(&e))?;
                Ok(Session::Mysql(conn))
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| "the server did not answer in time".to_owned())?
}

/// `SELECT 1` in a read-only transaction: `Ok` or the sanitised reason.
pub(crate) async fn test(target: &Target) -> std::result::Result<(), String> {
    let work = async {
        match open(target, CONNECT_TIMEOUT).await? {
            Session::Postgres(mut conn) => {
                conn.execute("SELECT 1").await.map_err(|e| describe(&e))?;
                let _ = conn.close().await;
            }
            Session::Mysql(mut conn) => {
                conn.execute("SELECT 1").await.map_err(|e| describe(&e))?;
                let _ = conn.close().await;
            }
        }
        Ok(())
    };
    tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .map_err(|_| "the server did not answer in time".to_owned())?
}

/// Runs `sql` on `target` and sends its rows as NDJSON chunks into `out`, in order.
/// Stops quietly when `out` is closed (the dataset store refused more: too large). A
/// failure also breaks the stream, so that the upload stops and reports this failure
/// rather than a short file.
pub(crate) async fn import(
    target: Target,
    sql: String,
    statement_timeout: Duration,
    out: mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<()> {
    let result = rows_into(target, sql, statement_timeout, out.clone()).await;
    if result.is_err() {
        let _ = out
            .send(Err(std::io::Error::other("the import stopped")))
            .await;
    }
    result
}

async fn rows_into(
    target: Target,
    sql: String,
    statement_timeout: Duration,
    out: mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<()> {
    let mut session = open(&target, statement_timeout)
        .await
        .map_err(|why| Error::ConnectionFailed(format!("the source database: {why}")))?;
    let mut chunk = Vec::with_capacity(CHUNK_BYTES);
    let send = |chunk: &mut Vec<u8>| {
        let full = std::mem::replace(chunk, Vec::with_capacity(CHUNK_BYTES));
        let out = out.clone();
        async move { out.send(Ok(Bytes::from(full))).await.is_ok() }
    };
    match &mut session {
        Session::Postgres(conn) => {
            // One prepared statement (the extended protocol refuses several, so the text
            // cannot close the CTE and add its own), materialized so rows come in the
            // query's order; row_to_json writes each row with the source's own names,
            // order and value forms (numbers exact, booleans, NULLs, escaped text). A
            // data-modifying statement is still one the read-only transaction refuses.
            let wrapped =
                format!("WITH q AS MATERIALIZED ({sql}\n) SELECT row_to_json(q)::text FROM q");
            // The user's SQL, on purpose: it runs read-only, as one statement.
            let mut rows =
                sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(wrapped)).fetch(&mut *conn);
            while let Some(line) = rows.next().await {
                let line = line.map_err(|e| failure(&e))?;
                chunk.extend_from_slice(line.as_bytes());
                chunk.push(b'\n');
                if chunk.len() >= CHUNK_BYTES && !send(&mut chunk).await {
                    return Ok(());
                }
            }
        }
        Session::Mysql(conn) => {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
            while let Some(row) = rows.next().await {
                let row = row.map_err(|e| failure(&e))?;
                write_mysql_row(&mut chunk, &row)?;
                chunk.push(b'\n');
                if chunk.len() >= CHUNK_BYTES && !send(&mut chunk).await {
                    return Ok(());
                }
            }
        }
    }
    if !chunk.is_empty() {
        send(&mut chunk).await;
    }
    Ok(())
}

/// One MySQL row as a JSON object, by each column's type, with the keys in the query's
/// column order (serde_json's map would sort them; the order is the dataset's).
fn write_mysql_row(out: &mut Vec<u8>, row: &MySqlRow) -> Result<()> {
    use serde_json::Value;
    let broken = |e: serde_json::Error| Error::Internal(format!("cannot write a row: {e}"));
    out.push(b'{');
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(|e| failure(&e))?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let type_name = raw.type_info().name().to_owned();
            let get = |e: sqlx::Error| failure(&e);
            match type_name.as_str() {
                "BOOLEAN" => Value::from(row.try_get::<bool, _>(i).map_err(get)?),
                "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
                    Value::from(row.try_get::<i64, _>(i).map_err(get)?)
                }
                "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED"
                | "INT UNSIGNED" | "BIGINT UNSIGNED" | "BIT" => {
                    Value::from(row.try_get::<u64, _>(i).map_err(get)?)
                }
                "FLOAT" => Value::from(f64::from(row.try_get::<f32, _>(i).map_err(get)?)),
                "DOUBLE" => Value::from(row.try_get::<f64, _>(i).map_err(get)?),
                // The binary protocol sends DECIMAL as its digits: kept as a number.
                "DECIMAL" => {
                    let digits = row.try_get_unchecked::<String, _>(i).map_err(get)?;
                    serde_json::from_str::<serde_json::Number>(&digits)
                        .map(Value::Number)
                        .unwrap_or(Value::String(digits))
                }
                "DATE" => Value::from(
                    row.try_get::<chrono::NaiveDate, _>(i)
                        .map_err(get)?
                        .format("%Y-%m-%d")
                        .to_string(),
                ),
                "DATETIME" | "TIMESTAMP" => Value::from(
                    row.try_get::<chrono::NaiveDateTime, _>(i)
                        .map_err(get)?
                        .format("%Y-%m-%dT%H:%M:%S%.f")
                        .to_string(),
                ),
                "TIME" => Value::from(
                    row.try_get::<chrono::NaiveTime, _>(i)
                        .map_err(get)?
                        .format("%H:%M:%S%.f")
                        .to_string(),
                ),
                "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB"
                | "GEOMETRY" => Value::from(hex::encode(
                    row.try_get_unchecked::<Vec<u8>, _>(i).map_err(get)?,
                )),
                _ => Value::from(row.try_get_unchecked::<String, _>(i).map_err(get)?),
            }
        };
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, column.name()).map_err(broken)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, &value).map_err(broken)?;
    }
    out.push(b'}');
    Ok(())
}

/// A query failure in ANALYSES.md's words: refused (it tried to write), timeout, or
/// invalid; a lost connection is the source's failure, not the query's.
fn failure(err: &sqlx::Error) -> Error {
    let Some(db) = err.as_database_error() else {
        return Error::ConnectionFailed(format!("the source database: {}", describe(err)));
    };
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let message = db.message();
    // PostgreSQL's read_only_sql_transaction, and MySQL's "in a READ ONLY transaction";
    // PostgreSQL's query_canceled (the statement timeout), MariaDB's and MySQL's.
    let reason = if code == "25006"
        || message.contains("READ ONLY")
        || message.contains("does not have a RETURNING clause")
        || message.contains("data-modifying statement")
    {
        FailureReason::Refused
    } else if code == "57014"
        || code == "70100"
        || message.contains("max_statement_time")
        || message.contains("maximum statement execution time")
    {
        FailureReason::Timeout
    } else {
        FailureReason::Invalid
    };
    Error::QueryFailed(QueryFailure {
        reason,
        message: db.message().to_owned(),
    })
}

/// What went wrong, without any connection setting.
fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => format!("cannot reach the server ({})", io.kind()),
        sqlx::Error::Tls(_) => "the TLS handshake failed".to_owned(),
        sqlx::Error::Protocol(_) => "the server answered something unexpected".to_owned(),
        _ => "the connection failed".to_owned(),
    }
}
