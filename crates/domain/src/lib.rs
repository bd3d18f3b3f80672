//! The rules of iOps as a library: accounts and tokens, tier limits and usage (with
//! enterprise accounts' own limits), billing through Stripe (behind the
//! [`billing::Payments`] port), datasets, analyses (run on a query engine behind the
//! [`query::QueryEngine`] port), charts and their embeds, reports, templates, sharing with
//! collaborators, comments and the activity log. It works over SQLite or PostgreSQL and knows nothing of HTTP;
//! `crates/api` maps it to REST, and any other Rust program can import it and behave the
//! same.
//!
//! # Using it
//! 1. Open the database with [`Database::connect`] (`sqlite://...` or `postgres://...`).
//! 2. Bring the schema up. This crate does not own the schema revisions: add the workspace's
//!    `migration` crate and call `migration::schema::upgrade(db.connection(), None)`, or run
//!    `iops migrate upgrade`, or `sea-orm-cli migrate up`.
//! 3. Build a [`Context`] with [`Context::new`] (database, clock, password hasher) and, if
//!    datasets are used, [`Context::with_store`]; hand it to [`Domain::new`]. Every service
//!    hangs off the returned [`Domain`].
//!
//! `examples/first_steps.rs` does all of this and walks through registering, hitting a
//! tier limit and publishing a report.
//!
//! # Who may do what
//! Operations take the caller's user id (or an [`Actor`], which adds the request id the
//! activity log records) and answer [`Error::NotFound`] for anything the caller cannot
//! reach. An analysis is reached by its owner and by the people it is shared with, each
//! with a [`Role`]; a collaborator beyond their role gets [`Error::Forbidden`]. Admin operations take an [`Admin`] proof, which only
//! [`Caller::admin`] (an authenticated admin account) or [`Admin::local_operator`] (a
//! program that holds the database credentials anyway, such as the `iops` command line)
//! can produce.
//!
//! # Performance note
//! Password hashing is Argon2id and deliberately expensive. In an unoptimized (debug)
//! build it is some 30 times slower; a program that depends on this crate should add
//! `[profile.dev.package.argon2] opt-level = 3` (and the same for `blake2`) to its own
//! `Cargo.toml`, as this workspace does.
#![warn(missing_docs)]

mod access;
mod accounts;
mod activity;
mod analyses;
pub mod billing;
mod charts;
mod clock;
mod codes;
mod collaborations;
mod comments;
pub mod connections;
mod datasets;
mod db;
mod embeds;
mod error;
mod events;
mod keys;
mod mail;
mod model;
mod pagination;
mod passwords;
pub mod query;
mod reports;
mod secrets;
mod stats;
pub mod storage;
mod templates;
mod text;
mod throttle;
mod tokens;
mod usage;

use std::sync::Arc;

pub use access::{Actor, Admin, Caller, Role};
pub use accounts::{Accounts, NewAccount, ProfileChange, Session, normalize_email};
pub use activity::{Activity, ActivityFilter, ActivityItem};
pub use analyses::{Analyses, AnalysisChange, NewAnalysis};
pub use billing::Billing;
pub use charts::{
    Chart, ChartChange, ChartConfig, ChartType, Charts, Embed, EmbedMode, MAX_CHARTS_PER_ANALYSIS,
    MAX_Y_COLUMNS, NewChart,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use collaborations::{
    Collaboration, CollaborationStatus, Collaborations, INVITATION_TTL_DAYS, Invitation,
    InvitationPreview, SharedAnalysis,
};
pub use comments::{Comment, Comments, MAX_COMMENT_CHARS};
pub use connections::Connections;
pub use datasets::parse::{
    Format, MAX_COLUMNS, Shape, is_blank_ndjson_line, ndjson_shape, shape_of, valid_utf8_lines,
};
pub use datasets::{Datasets, NewDataset, UploadPart};
pub use db::Database;
pub use embeds::{
    AnalyticsDay, DataColumn, DataTable, DataType, EmbedKey, EmbedView, Embeds, IssuedEmbedKey,
    MAX_ALLOWED_ORIGINS, MAX_ANALYTICS_DAYS, MAX_EMBED_KEYS, Visit,
};
pub use entity::Id;
pub use error::{Error, LimitKind, Result, Unauthenticated};
pub use events::{
    DEFAULT_EVENT_BUFFER, DEFAULT_EVENTS_RETENTION_DAYS, EventSink, Events, Ingested,
    MAX_EVENT_PROPERTIES_BYTES, MAX_EVENTS_PER_REQUEST, MAX_SUMMARY_DAYS, NewEvent, SummaryDay,
};
pub use keys::{Keys, Rotation};
pub use mail::{InvitationMail, MailTransport, Outbox, SmtpTransport};
pub use model::{Analysis, Dataset, Report, Status, Tier, User};
pub use pagination::{DEFAULT_LIMIT, MAX_LIMIT, Page, PageRequest};
pub use passwords::Hasher;
pub use reports::{
    NewReport, PublicAnalysis, PublicChart, PublicDataset, PublicView, ReportChange, Reports,
    ViewCounting,
};
pub use secrets::{KEY_FILE, Keyring};
pub use stats::{Stats, TableCount};
pub use templates::{
    GalleryQuery, GallerySort, MAX_DESCRIPTION_CHARS, MAX_PRICE_CENTS, MAX_REVIEW_CHARS,
    MAX_SEARCH_CHARS, NewTemplate, Purchase, PurchaseOutcome, Template, TemplateChange,
    TemplateChart, TemplateStatus, Templates, UsedTemplate,
};
pub use text::json_contains_nul;
pub use throttle::{MAX_FAILURES, WINDOW as FAILURE_WINDOW};
pub use tokens::{IssuedToken, Tokens};
pub use usage::{
    Counter, CustomLimits, LimitsChange, Usage, UsageReport, limit_for, month_of, resets_at,
};

/// Longest accepted name of a dataset or an analysis, in characters (the columns are
/// `VARCHAR(255)`).
pub const MAX_NAME_CHARS: usize = 255;

/// The `iops` binary's default of [`Settings::columnar_min_bytes`]: below a megabyte,
/// reading the file itself is already quick.
pub const DEFAULT_COLUMNAR_MIN_BYTES: u64 = 1 << 20;

/// Tunables of the rules, read once by the caller and passed down.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest accepted dataset upload, in bytes.
    pub max_upload_bytes: u64,
    /// How long a login token stays valid.
    pub session_ttl: chrono::Duration,
    /// How long a report unlock token stays valid.
    pub unlock_ttl: chrono::Duration,
    /// Dataset files at least this large get a columnar copy for runs to read
    /// ([`storage::columnar_key`]); `None`, the default here, makes none.
    pub columnar_min_bytes: Option<u64>,
    /// What data connections may reach although the network guard would refuse it.
    pub connections_allow: connections::AllowList,
    /// Longest an import's statement may run on the source.
    pub import_timeout: std::time::Duration,
    /// Product events older than this many days are refused at ingest and deleted by
    /// [`Events::prune`].
    pub events_retention_days: u32,
    /// How long a public report's page content (its analysis, dataset and charts) read by
    /// this process may serve further views; zero reads it on every view. The view count
    /// and the view rules are never cached. See [`Reports::view`].
    pub report_cache_ttl: std::time::Duration,
}

/// The default of [`Settings::report_cache_ttl`].
pub const DEFAULT_REPORT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 52_428_800,
            session_ttl: chrono::Duration::days(7),
            unlock_ttl: chrono::Duration::hours(12),
            columnar_min_bytes: None,
            connections_allow: connections::AllowList::default(),
            import_timeout: std::time::Duration::from_secs(60),
            events_retention_days: DEFAULT_EVENTS_RETENTION_DAYS,
            report_cache_ttl: DEFAULT_REPORT_CACHE_TTL,
        }
    }
}

/// What every service needs: the database, the time, the password hasher, where dataset
/// files live, and the settings. Cheap to clone (everything inside is shared).
#[derive(Clone)]
pub struct Context {
    database: Database,
    /// The main pool of `database`, for the services' statements.
    db: sea_orm::DatabaseConnection,
    clock: Arc<dyn Clock>,
    hasher: Hasher,
    store: Option<Arc<dyn storage::DatasetStore>>,
    keyring: Option<Arc<Keyring>>,
    outbox: Option<Outbox>,
    /// Where product events are buffered; without it they are inserted at once.
    events: Option<EventSink>,
    engine: Option<Arc<dyn query::QueryEngine>>,
    payments: Option<Arc<dyn billing::Payments>>,
    billing: Arc<billing::BillingConfig>,
    /// Columnar copies being written by this process.
    copies: Arc<datasets::columnar::Copies>,
    /// Datasets whose columns could not be read lately.
    unreadable: Arc<datasets::columns::Unreadable>,
    /// Public report pages' content read lately.
    report_content: Arc<reports::ContentCache>,
    /// Counts public views, several per statement, on this thread's hot-path pool.
    view_counter: Arc<reports::ViewCounter>,
    settings: Settings,
}

impl Context {
    /// A context without a dataset store (dataset uploads and deletions then fail with
    /// [`Error::Internal`]) and with default [`Settings`].
    pub fn new(database: Database, clock: Arc<dyn Clock>, hasher: Hasher) -> Self {
        Self {
            db: database.connection().clone(),
            view_counter: Arc::new(reports::ViewCounter::new(
                database.direct().cloned(),
                Arc::default(),
            )),
            database,
            clock,
            hasher,
            store: None,
            keyring: None,
            outbox: None,
            events: None,
            engine: None,
            payments: None,
            billing: Arc::default(),
            copies: Arc::default(),
            unreadable: Arc::default(),
            report_content: Arc::default(),
            settings: Settings::default(),
        }
    }

    /// Where dataset files live.
    pub fn with_store(mut self, store: Arc<dyn storage::DatasetStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The keys secrets at rest are encrypted with (embed keys); without them, creating or
    /// checking embed keys fails with [`Error::Internal`].
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Where invitation mail goes; without it, invitations are only shared by their link.
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The buffer product events go through ([`EventSink::start`]); without it, events
    /// are inserted by the request that makes them (see [`Events`]).
    pub fn with_events(mut self, sink: EventSink) -> Self {
        self.events = Some(sink);
        self
    }

    /// The query engine analyses run on and dataset columns are read with; without it,
    /// runs fail with [`Error::Internal`] and datasets show no columns.
    pub fn with_engine(mut self, engine: Arc<dyn query::QueryEngine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// The payment provider checkouts go to; without it, checkouts and paid template
    /// purchases fail with [`Error::NotConfigured`].
    pub fn with_payments(mut self, payments: Arc<dyn billing::Payments>) -> Self {
        self.payments = Some(payments);
        self
    }

    /// The webhook secret, the prices of the tiers and where buyers come back to; without
    /// it, webhooks are refused as not configured and no tier can be bought.
    pub fn with_billing(mut self, billing: billing::BillingConfig) -> Self {
        self.billing = Arc::new(billing);
        self
    }

    /// Replaces the settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Something public report pages show (an analysis, a chart, a dataset) was changed
    /// and committed: the page content this process has read is no longer used.
    pub(crate) fn report_pages_changed(&self) {
        self.report_content.changed();
    }

    fn keyring(&self) -> Result<&Keyring> {
        self.keyring
            .as_deref()
            .ok_or_else(|| Error::Internal("no encryption keys are configured".to_owned()))
    }

    fn engine(&self) -> Result<&Arc<dyn query::QueryEngine>> {
        self.engine
            .as_ref()
            .ok_or_else(|| Error::Internal("no query engine is configured".to_owned()))
    }

    fn payments(&self) -> Result<&Arc<dyn billing::Payments>> {
        self.payments.as_ref().ok_or(Error::NotConfigured(
            "payments are not configured on this server (IOPS_STRIPE_API_KEY)",
        ))
    }

    fn store(&self) -> Result<&Arc<dyn storage::DatasetStore>> {
        self.store
            .as_ref()
            .ok_or_else(|| Error::Internal("no dataset store is configured".to_owned()))
    }
}

/// All services of the domain, sharing one [`Context`].
#[derive(Clone)]
pub struct Domain {
    ctx: Context,
    /// Registration, login, profiles, account deletion, admin operations on users.
    pub accounts: Accounts,
    /// Login tokens: authenticate and revoke.
    pub tokens: Tokens,
    /// Monthly usage against tier limits.
    pub usage: Usage,
    /// Dataset upload and management.
    pub datasets: Datasets,
    /// Analyses.
    pub analyses: Analyses,
    /// Reports and their public view.
    pub reports: Reports,
    /// Charts of analyses, drawn as SVG.
    pub charts: Charts,
    /// Chart embeds, embed keys and embed analytics.
    pub embeds: Embeds,
    /// Invitations, roles and what is shared with whom.
    pub collaborations: Collaborations,
    /// Comments on charts.
    pub comments: Comments,
    /// The activity log's feeds.
    pub activity: Activity,
    /// Stripe checkouts and webhooks, the billing state of accounts.
    pub billing: Billing,
    /// Templates: authoring, gallery, purchases, use and ratings.
    pub templates: Templates,
    /// External databases datasets are imported from.
    pub connections: Connections,
    /// Checks and rotation of the secrets at rest.
    pub keys: Keys,
    /// Product events: ingest, the admin summary, retention.
    pub events: Events,
    /// Row counts and readiness, for operators.
    pub stats: Stats,
}

impl Domain {
    /// Every service over `ctx`.
    pub fn new(ctx: Context) -> Self {
        Self {
            accounts: Accounts::new(ctx.clone()),
            tokens: Tokens::new(ctx.clone()),
            usage: Usage::new(ctx.clone()),
            datasets: Datasets::new(ctx.clone()),
            analyses: Analyses::new(ctx.clone()),
            reports: Reports::new(ctx.clone()),
            charts: Charts::new(ctx.clone()),
            embeds: Embeds::new(ctx.clone()),
            collaborations: Collaborations::new(ctx.clone()),
            comments: Comments::new(ctx.clone()),
            activity: Activity::new(ctx.clone()),
            billing: Billing::new(ctx.clone()),
            templates: Templates::new(ctx.clone()),
            connections: Connections::new(ctx.clone()),
            keys: Keys::new(ctx.clone()),
            events: Events::new(ctx.clone()),
            stats: Stats::new(ctx.clone()),
            ctx,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.ctx.settings
    }

    /// The same domain over another dataset store (after moving the files to it).
    pub fn with_store(&self, store: Arc<dyn storage::DatasetStore>) -> Domain {
        Domain::new(self.ctx.clone().with_store(store))
    }

    /// The same domain with product events going through `sink` (`iops serve` starts one).
    pub fn with_events(&self, sink: EventSink) -> Domain {
        Domain::new(self.ctx.clone().with_events(sink))
    }

    /// The current instant by the domain's clock, at the microsecond precision the
    /// database keeps (so that it compares exactly with stored instants and expiries).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.ctx.clock.now_naive().and_utc()
    }

    /// The database the services use.
    pub fn database(&self) -> &Database {
        &self.ctx.database
    }

    /// The same services over [`Database::for_this_thread`]: what each worker thread of
    /// a server with one async runtime per thread should use (everything else is
    /// shared).
    pub fn for_this_thread(&self) -> Self {
        let mut ctx = self.ctx.clone();
        ctx.database = ctx.database.for_this_thread();
        ctx.db = ctx.database.connection().clone();
        // A counter of the thread's own, adding to the process's totals.
        ctx.view_counter = Arc::new(reports::ViewCounter::new(
            ctx.database.direct().cloned(),
            ctx.view_counter.totals().clone(),
        ));
        Domain::new(ctx)
    }

    /// Deletes what has outlived its use, each kind on its own (one failing does not stop
    /// the others): embed salts and visitor hashes of days before yesterday, login and
    /// unlock tokens expired or revoked more than a day ago, failed-attempt windows that
    /// are over, and product events past their retention ([`Events::prune`]). For a periodic task (`iops serve` runs it every hour); several processes
    /// running it at once only repeat deletes.
    pub async fn housekeeping(&self) -> Vec<(&'static str, Result<u64>)> {
        let attempts = throttle::prune(&self.ctx.db, self.ctx.clock.now_naive()).await;
        vec![
            (
                "old embed salts and visitor hashes",
                self.embeds.prune().await,
            ),
            (
                "expired and revoked tokens",
                self.tokens.purge_expired().await,
            ),
            ("finished failed-attempt windows", attempts),
            (
                "billing event payloads past their retention",
                self.billing.prune().await,
            ),
            (
                "product events past their retention",
                self.events.prune().await,
            ),
        ]
    }
}
