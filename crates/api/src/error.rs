//! The error of the command-line side: what `iops` prints as its one line on stderr.
//! (HTTP answers use [`crate::http::problem::Problem`] instead.)

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad environment value or argument.
    #[error("{0}")]
    Config(String),
    /// A domain operation failed (database, validation, unknown user...).
    #[error(transparent)]
    Domain(#[from] domain::Error),
    /// `VACUUM INTO` failed.
    #[error("backup to {path} failed")]
    Backup {
        path: String,
        #[source]
        source: sea_orm::DbErr,
    },
    /// A schema revision could not be applied or rolled back.
    #[error(transparent)]
    Schema(#[from] migration::schema::Error),
    /// The query engine or a cluster node could not start.
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    /// A database operation outside the domain services failed.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A file or socket operation failed; `context` says which.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config(message.into())
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The message and every cause, on one line: what `iops` prints.
    pub fn one_line(&self) -> String {
        let mut line = self.to_string();
        let mut source = std::error::Error::source(self);
        // `Domain` is transparent: its own source is the first cause worth adding.
        while let Some(cause) = source {
            let text = cause.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = cause.source();
        }
        line.replace(['\n', '\r'], " ")
    }
}
