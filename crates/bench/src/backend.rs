//! The two databases a run measures: a fresh SQLite file, a fresh PostgreSQL database.
use std::fmt;
use std::path::Path;

use sea_orm::{ConnectionTrait, Database};

use crate::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Sqlite => "SQLite",
            Kind::Postgres => "PostgreSQL",
        })
    }
}

/// One fresh, empty database for one backend's run.
pub struct Backend {
    pub kind: Kind,
    pub url: String,
    /// PostgreSQL: the maintenance URL and the name of the database to drop afterwards.
    created: Option<(String, String)>,
}

impl Backend {
    /// A new empty database: `DIR/iops.db`, or `iops_bench_<pid>` next to `pg_url`.
    pub async fn create(kind: Kind, dir: &Path, pg_url: &str) -> Result<Backend> {
        match kind {
            Kind::Sqlite => Ok(Backend {
                kind,
                url: format!("sqlite://{}?mode=rwc", dir.join("iops.db").display()),
                created: None,
            }),
            Kind::Postgres => {
                let name = format!("iops_bench_{}", std::process::id());
                let admin = Database::connect(pg_url)
                    .await
                    .map_err(|e| format!("cannot connect to PostgreSQL at {pg_url}: {e}"))?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await?;
                admin.close().await?;
                let mut url = url::Url::parse(pg_url)
                    .map_err(|e| format!("bad PostgreSQL URL {pg_url}: {e}"))?;
                url.set_path(&name);
                Ok(Backend {
                    kind,
                    url: url.to_string(),
                    created: Some((pg_url.to_owned(), name)),
                })
            }
        }
    }

    /// PostgreSQL: the name of the database, for `pgbench`.
    pub fn pg_database(&self) -> Option<&str> {
        self.created.as_ref().map(|(_, name)| name.as_str())
    }

    /// Drops the PostgreSQL database (SQLite lives in the run's temporary directory).
    pub async fn drop_database(self) -> Result<()> {
        if let Some((admin_url, name)) = self.created {
            let admin = Database::connect(&admin_url).await?;
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
            admin.close().await?;
        }
        Ok(())
    }
}
