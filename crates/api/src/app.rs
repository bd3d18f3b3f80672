//! THE place the application is assembled: configuration in, a database with its schema,
//! the dataset store and the domain out. `iops serve` and every other command build it
//! here; tests that bring their own database, clock and store use [`assemble`], the same
//! wiring.
use std::sync::Arc;

use domain::storage::{DatasetStore, Store};
use domain::{
    Clock, Context, Database, Domain, EventSink, Hasher, Keyring, MailTransport, Outbox,
    SystemClock,
};

use crate::config::Config;
use crate::error::{Error, Result};

/// Pool size per `iops serve` process: enough for the workers, well under PostgreSQL's
/// default 100 connections when several processes share one database.
pub const SERVE_CONNECTIONS: u32 = 16;
/// Pool size of a one-shot command.
pub const COMMAND_CONNECTIONS: u32 = 2;

/// The assembled application.
#[derive(Clone)]
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// The one owner of the connection pools.
    pub database: Database,
    /// The dataset store, when the app was built with one.
    pub store: Option<Store>,
    /// The rules, over all of the above.
    pub domain: Domain,
}

/// How to build an [`App`]; [`App::build`] takes the defaults of `iops serve`.
pub struct Builder {
    config: Config,
    migrate: bool,
    open_store: bool,
    load_keys: bool,
    max_connections: u32,
}

impl App {
    /// The app as `iops serve` runs it: the schema brought up, the configured store opened
    /// and checked.
    pub async fn build(config: Config) -> Result<App> {
        App::builder(config).build().await
    }

    /// A builder starting from `iops serve`'s choices.
    pub fn builder(config: Config) -> Builder {
        Builder {
            config,
            migrate: true,
            open_store: true,
            load_keys: false,
            max_connections: SERVE_CONNECTIONS,
        }
    }

    /// A builder for a one-shot command that must not change the schema or touch dataset
    /// files: no migration, no store, a small pool.
    pub fn command(config: &Config) -> Builder {
        App::builder(config.clone())
            .migrate(false)
            .open_store(false)
            .max_connections(COMMAND_CONNECTIONS)
    }

    /// Closes the pools.
    pub async fn close(self) {
        self.database.close().await;
    }
}

impl Builder {
    /// Whether to apply pending schema revisions (`iops serve --no-migrate` says no).
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Whether to open the configured dataset store. Commands that never touch dataset
    /// files say no: opening a store also clears its stale staging files.
    pub fn open_store(mut self, open: bool) -> Self {
        self.open_store = open;
        self
    }

    /// Whether a one-shot command needs the encryption keys (`iops keys rotate`): they are
    /// then read like `iops serve` reads them, the key file included.
    pub fn load_keys(mut self, load: bool) -> Self {
        self.load_keys = load;
        self
    }

    /// Connections in the main pool.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Connects, migrates, opens the store and builds the domain.
    pub async fn build(self) -> Result<App> {
        let config = self.config;
        if config.database_url_is_default {
            config.ensure_data_dir()?;
        }
        let database = Database::connect(&config.database_url, self.max_connections).await?;
        if self.migrate {
            let applied = migration::schema::upgrade(database.connection(), None).await?;
            if !applied.is_empty() {
                tracing::info!(revisions = %applied.join(", "), "applied migrations");
            }
        }
        let opened = if self.open_store {
            Some(open_store(&config, &config.storage).await?)
        } else {
            None
        };
        // Serving needs the keys (embed keys); a one-shot command reads them only when
        // they are configured, and never creates the key file.
        let keyring = if self.open_store || self.load_keys {
            Some(config.keyring()?)
        } else {
            config.encryption.clone()
        };
        // Serving mails invitations when SMTP is configured; commands mail nothing.
        let outbox = match (&config.smtp, self.open_store) {
            (Some(smtp), true) => {
                let transport: Arc<dyn MailTransport> = Arc::new(smtp.transport()?);
                Some(Outbox::start(transport, &config.public_url).0)
            }
            _ => None,
        };
        // Analyses run where datasets are: only a process with the store has an engine.
        let query = opened
            .is_some()
            .then(|| config.query.engine(&config.data_dir));
        let domain = assemble(Parts {
            database: database.clone(),
            clock: Arc::new(SystemClock),
            store: opened
                .clone()
                .map(|store| Arc::new(store) as Arc<dyn DatasetStore>),
            keyring,
            outbox,
            query,
            settings: config.settings(),
            hash_concurrency: config.hash_concurrency,
            billing: config.billing.clone(),
            payments: match &config.stripe {
                Some(stripe) => Some(Arc::new(stripe.client()?)),
                None => None,
            },
        })?;
        // Serving buffers product events (a worker writes them in batches, so a request
        // never waits on that write); like mail, commands do without: the few events they
        // make are inserted at once.
        let domain = if self.open_store {
            domain.with_events(EventSink::start(&database, domain::DEFAULT_EVENT_BUFFER))
        } else {
            domain
        };
        Ok(App {
            config,
            database,
            store: opened,
            domain,
        })
    }
}

/// What the domain is assembled from.
pub struct Parts {
    pub database: Database,
    pub clock: Arc<dyn Clock>,
    /// Where dataset files live; without it, no uploads and no query engine.
    pub store: Option<Arc<dyn DatasetStore>>,
    pub keyring: Option<Arc<Keyring>>,
    pub outbox: Option<Outbox>,
    /// The query engine's limits; with a store, analyses run on DataFusion over it.
    pub query: Option<engine::EngineSettings>,
    pub settings: domain::Settings,
    pub hash_concurrency: usize,
    /// The webhook secret, tier prices and return URL of billing.
    pub billing: domain::billing::BillingConfig,
    /// Where checkouts are created (Stripe); `None`: checkouts answer "not configured".
    pub payments: Option<Arc<dyn domain::billing::Payments>>,
}

/// The domain over its parts: THE one place a [`Context`] is put together, for
/// [`Builder::build`] and for tests that bring a database of their own.
pub fn assemble(parts: Parts) -> Result<Domain> {
    let Parts {
        database,
        clock,
        store,
        keyring,
        outbox,
        query,
        settings,
        hash_concurrency,
        billing,
        payments,
    } = parts;
    let mut ctx = Context::new(database, clock, Hasher::new(hash_concurrency))
        .with_settings(settings)
        .with_billing(billing);
    if let Some(payments) = payments {
        ctx = ctx.with_payments(payments);
    }
    if let Some(store) = store {
        if let Some(query) = query {
            let engine = engine::DataFusionEngine::new(store.objects(), query)
                .map_err(|e| Error::config(e.to_string()))?;
            ctx = ctx.with_engine(Arc::new(engine));
        }
        ctx = ctx.with_store(store);
    }
    if let Some(keyring) = keyring {
        ctx = ctx.with_keyring(keyring);
    }
    if let Some(outbox) = outbox {
        ctx = ctx.with_outbox(outbox);
    }
    Ok(Domain::new(ctx))
}

/// Opens the dataset store at `location` (the configured one, or a migration's target) and
/// proves that it answers: a bad bucket, bad credentials or an unreachable endpoint end
/// the command here, with one line naming the store.
pub async fn open_store(config: &Config, location: &domain::storage::Location) -> Result<Store> {
    if matches!(location, domain::storage::Location::S3 { .. }) {
        // Staging for a bucket lives in the data dir.
        config.ensure_data_dir()?;
    }
    let store = Store::open(location, &config.data_dir, config.s3.builder())
        .await
        .map_err(|e| Error::io(format!("cannot open the dataset store {location}"), e))?;
    store
        .check()
        .await
        .map_err(|e| Error::io(format!("the dataset store {location} does not answer"), e))?;
    Ok(store)
}
