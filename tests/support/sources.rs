//! Source databases for data-connection tests, real ones: a PostgreSQL database with its
//! own login role and password on the test server (`IOPS_TEST_POSTGRES_URL`), and a
//! MariaDB database with its own user and password on 127.0.0.1:3306 (root, empty
//! password, as this machine and CI run it). Each test makes its own, so tests run in
//! parallel; never skipped: an unreachable server fails the test.
//!
//! Both hold the same table `items` with every common column type: integers, decimals,
//! floats, text with quotes and newlines, dates, timestamps, booleans and NULLs.
use sea_orm::{ConnectionTrait, Database};
use sqlx::{Connection, Executor};

/// Where MariaDB listens for the tests.
pub const MARIADB_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The hosts a source's MariaDB user is made for (and dropped from): the server reaches
/// MariaDB by name or by address, and MariaDB matches `localhost` apart from `%`.
const MARIADB_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "%"];

/// A source database and the login that reads it.
pub struct Source {
    pub kind: &'static str,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: String,
}

/// The rows of `items`, as the dataset shows them after an import (NDJSON: numbers,
/// booleans, text; dates and timestamps as ISO text).
pub fn expected_items() -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!([
            1,
            1_234_567_890_123_i64,
            12345.67,
            0.5,
            "plain",
            "2024-01-31",
            "2024-01-31T10:20:30",
            true,
            null
        ]),
        json!([
            2,
            -5,
            -0.01,
            -1.25,
            "say \"hi\", then\nleave; it's 'quoted'",
            "1999-12-31",
            "2000-01-01T00:00:00",
            false,
            "x"
        ]),
        json!([3, null, null, null, null, null, null, null, null]),
    ]
}

const ROWS: &str = "(1, 1234567890123, 12345.67, 0.5, 'plain', '2024-01-31', '2024-01-31 10:20:30', TRUE, NULL), \
     (2, -5, -0.01, -1.25, 'say \"hi\", then\nleave; it''s ''quoted''', '1999-12-31', '2000-01-01 00:00:00', FALSE, 'x'), \
     (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

impl Source {
    /// A PostgreSQL database owned by a new role with a password.
    pub async fn postgres() -> Source {
        let admin = Database::connect(crate::postgres_admin_url())
            .await
            .expect("PostgreSQL for the source database (IOPS_TEST_POSTGRES_URL)");
        let id = suffix();
        let (database, user, password) = (
            format!("iops_src_{id}"),
            format!("iops_src_{id}"),
            format!("pw-{id}"),
        );
        for sql in [
            format!("CREATE ROLE {user} LOGIN PASSWORD '{password}'"),
            format!("CREATE DATABASE {database} OWNER {user}"),
        ] {
            admin
                .execute_unprepared(&sql)
                .await
                .expect("create the source");
        }
        let url = format!("postgres://{user}:{password}@127.0.0.1:5432/{database}");
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .expect("connect to the source");
        conn.execute(
            "CREATE TABLE items (id INTEGER, big BIGINT, price NUMERIC(12,2), ratio DOUBLE PRECISION, \
             label TEXT, day DATE, at TIMESTAMP, flag BOOLEAN, note TEXT)",
        )
        .await
        .expect("create items");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "INSERT INTO items VALUES {ROWS}"
        )))
        .await
        .expect("fill items");
        conn.execute("CREATE SEQUENCE counter")
            .await
            .expect("sequence");
        let _ = conn.close().await;
        Source {
            kind: "postgresql",
            port: 5432,
            database,
            user,
            password,
        }
    }

    /// A MariaDB database with its own user and password.
    pub async fn mariadb() -> Source {
        let mut admin = sqlx::MySqlConnection::connect(MARIADB_ADMIN_URL)
            .await
            .expect("MariaDB at 127.0.0.1:3306 (root, empty password)");
        let id = suffix();
        let (database, user, password) = (
            format!("iops_src_{id}"),
            format!("src_{id}"),
            format!("pw-{id}"),
        );
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .await
            .expect("create the source database");
        for host in MARIADB_HOSTS {
            for sql in [
                format!("CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'"),
                format!("GRANT ALL ON {database}.* TO '{user}'@'{host}'"),
            ] {
                admin
                    .execute(sqlx::AssertSqlSafe(sql))
                    .await
                    .expect("create the source user");
            }
        }
        let _ = admin.close().await;
        let url = format!("mysql://{user}:{password}@127.0.0.1:3306/{database}");
        let mut conn = sqlx::MySqlConnection::connect(&url)
            .await
            .expect("connect to the source");
        conn.execute(
            "CREATE TABLE items (id INT, big BIGINT, price DECIMAL(12,2), ratio DOUBLE, \
             label TEXT, day DATE, at DATETIME, flag BOOLEAN, note VARCHAR(20))",
        )
        .await
        .expect("create items");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "INSERT INTO items VALUES {ROWS}"
        )))
        .await
        .expect("fill items");
        let _ = conn.close().await;
        Source {
            kind: "mysql",
            port: 3306,
            database,
            user,
            password,
        }
    }

    /// How many rows `items` has now (proof that nothing was written).
    pub async fn item_count(&self) -> i64 {
        match self.kind {
            "postgresql" => {
                let url = format!(
                    "postgres://{}:{}@127.0.0.1:5432/{}",
                    self.user, self.password, self.database
                );
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM items")
                    .fetch_one(&mut conn)
                    .await
                    .expect("count")
            }
            _ => {
                let url = format!(
                    "mysql://{}:{}@127.0.0.1:3306/{}",
                    self.user, self.password, self.database
                );
                let mut conn = sqlx::MySqlConnection::connect(&url).await.expect("connect");
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM items")
                    .fetch_one(&mut conn)
                    .await
                    .expect("count")
            }
        }
    }
}

/// Dropped with the test: the source database and its login (best effort, as
/// [`crate::TestDb`] does), so runs leave no databases or roles behind.
impl Drop for Source {
    fn drop(&mut self) {
        let (postgres, database, user) = (
            self.kind == "postgresql",
            self.database.clone(),
            self.user.clone(),
        );
        crate::clean_up(move || async move {
            if postgres {
                let admin = Database::connect(crate::postgres_admin_url()).await.ok()?;
                for sql in [
                    format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
                    format!("DROP ROLE IF EXISTS {user}"),
                ] {
                    admin.execute_unprepared(&sql).await.ok()?;
                }
            } else {
                let mut admin = sqlx::MySqlConnection::connect(MARIADB_ADMIN_URL)
                    .await
                    .ok()?;
                let drop_database = format!("DROP DATABASE IF EXISTS {database}");
                admin
                    .execute(sqlx::AssertSqlSafe(drop_database))
                    .await
                    .ok()?;
                for host in MARIADB_HOSTS {
                    let drop_user = format!("DROP USER IF EXISTS '{user}'@'{host}'");
                    admin.execute(sqlx::AssertSqlSafe(drop_user)).await.ok()?;
                }
                let _ = admin.close().await;
            }
            Some(())
        });
    }
}
