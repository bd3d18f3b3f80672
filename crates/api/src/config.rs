//! Configuration from the environment, read and validated once, then passed down.
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use domain::storage::Location;

use crate::error::{Error, Result};

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 52_428_800;
/// Longest accepted `IOPS_EVENTS_RETENTION_DAYS`: a hundred years.
pub const MAX_EVENTS_RETENTION_DAYS: u32 = 36_500;
/// Longest accepted `IOPS_REPORT_CACHE_MS`: a minute. Longer, an edit could stay unseen on
/// other servers for longer than anyone would wait for it.
pub const MAX_REPORT_CACHE_MS: u64 = 60_000;

#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// True when `DATABASE_URL` was not set and the default SQLite file is used.
    pub database_url_is_default: bool,
    pub data_dir: PathBuf,
    /// `IOPS_BIND` as given (resolved when `serve` binds).
    pub bind: String,
    pub max_upload_bytes: u64,
    /// `RUST_LOG`, default `info`.
    pub log_filter: String,
    /// Where dataset files live: `IOPS_STORAGE_URL`, default the folder
    /// `IOPS_DATA_DIR/datasets`.
    pub storage: Location,
    /// `IOPS_STORAGE_GRACE_SECS`, default 3600: how old an unreferenced stored file must be
    /// before the start-up sweep and `iops storage gc` remove it. An upload publishes its
    /// file just before its row commits, so a younger one may belong to an upload still in
    /// flight on another server; a deployment with a single `iops serve` can set 0, so
    /// that a restart after a crash clears the crash's leftovers at once.
    pub storage_grace: std::time::Duration,
    /// `IOPS_HASH_CONCURRENCY`, default twice the cores: password hashes run at once.
    pub hash_concurrency: usize,
    /// `IOPS_EVENTS_RETENTION_DAYS`, default 400: product events older than this are
    /// refused at ingest and deleted (hourly, and by `iops events prune`).
    pub events_retention_days: u32,
    /// `IOPS_REPORT_CACHE_MS`, default 1000: how long a public report's page content (not
    /// its view count) read by this process serves further views; 0 reads it every time.
    pub report_cache: std::time::Duration,
    /// `IOPS_ENCRYPTION_KEYS`/`IOPS_ENCRYPTION_KEY_ID` when set; otherwise the key file
    /// in the data dir is used (created on first start). Key bytes never print.
    pub encryption: Option<std::sync::Arc<domain::Keyring>>,
    /// `IOPS_SMTP_URL` and `IOPS_SMTP_FROM`: where invitation mail goes; `None` sends no
    /// mail (the invitation link is shown to the owner either way).
    pub smtp: Option<SmtpSettings>,
    /// `IOPS_PUBLIC_URL`: where people reach this server, for links in mail [default:
    /// `http://` + `IOPS_BIND`].
    pub public_url: String,
    /// S3 client settings from the standard AWS variables (`AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`, ...).
    pub s3: S3Settings,
    /// The query engine's limits (`IOPS_QUERY_*`).
    pub query: QuerySettings,
    /// `IOPS_STRIPE_WEBHOOK_SECRET`, `IOPS_STRIPE_PRICES` and the public URL checkouts
    /// return to. The secret never prints.
    pub billing: domain::billing::BillingConfig,
    /// `IOPS_STRIPE_API_KEY` and `IOPS_STRIPE_API_BASE`: where checkouts are created;
    /// `None` without a key.
    pub stripe: Option<StripeSettings>,
    /// `IOPS_CONNECTIONS_ALLOW`: what data connections may reach although the network
    /// guard would refuse it.
    pub connections_allow: domain::connections::AllowList,
    /// `IOPS_IMPORT_TIMEOUT_SECS`, default 60.
    pub import_timeout_secs: u64,
}

/// How to reach Stripe's API. The key never prints.
#[derive(Clone)]
pub struct StripeSettings {
    pub api_base: String,
    api_key: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("api_base", &self.api_base)
            .field("api_key", &"[redacted]")
            .finish()
    }
}

impl StripeSettings {
    /// The client checkouts go through.
    pub fn client(&self) -> Result<domain::billing::StripeClient> {
        Ok(domain::billing::StripeClient::new(
            &self.api_base,
            self.api_key.to_string(),
            domain::billing::STRIPE_TIMEOUT,
        )?)
    }
}

/// Limits of analysis runs, from `IOPS_QUERY_TIMEOUT_SECS` (30), `IOPS_QUERY_MEMORY_MB`
/// (512), `IOPS_QUERY_MAX_ROWS` (10,000) and `IOPS_QUERY_CONCURRENCY` (the cores), and
/// where they run: `IOPS_ENGINE_URL` (a Ballista scheduler) or, by default, here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuerySettings {
    pub timeout_secs: u64,
    pub memory_mb: u64,
    pub max_rows: u64,
    pub concurrency: u64,
    pub cluster: Option<engine::ClusterAddress>,
    /// `IOPS_QUERY_COLUMNAR_MIN_MB` (1; `off` for none): dataset files at least this large
    /// get a columnar copy that runs read instead.
    pub columnar_min_mb: Option<u64>,
}

impl Default for QuerySettings {
    fn default() -> Self {
        Self {
            timeout_secs: 30,
            memory_mb: 512,
            max_rows: 10_000,
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()) as u64,
            cluster: None,
            columnar_min_mb: Some(domain::DEFAULT_COLUMNAR_MIN_BYTES >> 20),
        }
    }
}

impl QuerySettings {
    /// The engine's settings, spilling under `data_dir/spill`.
    pub fn engine(&self, data_dir: &std::path::Path) -> engine::EngineSettings {
        engine::EngineSettings {
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            memory_bytes: usize::try_from(self.memory_mb.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
            max_rows: usize::try_from(self.max_rows).unwrap_or(usize::MAX),
            concurrency: usize::try_from(self.concurrency).unwrap_or(1),
            spill_dir: data_dir.join("spill"),
            cluster: self.cluster.clone(),
        }
    }
}

/// Invitation mail settings. The URL may hold a password: it is never printed.
#[derive(Clone)]
pub struct SmtpSettings {
    url: String,
    /// The sender, `Name <address>` or an address.
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

impl SmtpSettings {
    /// The SMTP transport these settings describe.
    pub fn transport(&self) -> Result<domain::SmtpTransport> {
        domain::SmtpTransport::new(&self.url, &self.from).map_err(|e| Error::config(e.to_string()))
    }
}

/// Sender of invitation mail when `IOPS_SMTP_FROM` is unset.
pub const DEFAULT_SMTP_FROM: &str = "iOps <noreply@localhost>";

/// The S3 client settings read from the environment; never printed (they hold a secret).
#[derive(Clone)]
pub struct S3Settings(domain::storage::object_store::aws::AmazonS3Builder);

impl S3Settings {
    /// A client builder carrying these settings.
    pub fn builder(&self) -> domain::storage::object_store::aws::AmazonS3Builder {
        self.0.clone()
    }
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S3Settings(<redacted>)")
    }
}

/// The settings as given, each from its option or, absent that, from its environment
/// variable (clap's `env`): raw text, validated into a [`Config`] by
/// [`Config::from_settings`] so that every bad value gets the same one-line error whichever
/// way it came. Values are never shown in `--help` (a URL may hold a password).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RawSettings {
    /// `postgres://...` or `sqlite://...` [default: sqlite://<data dir>/iops.db?mode=rwc]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// The default SQLite file and dataset files (created if missing) [default: ./data]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "IOPS_DATA_DIR",
        hide_env_values = true
    )]
    pub data_dir: Option<String>,
    /// Where dataset files live: `s3://bucket[/prefix]` or `file:///path` [default: <data dir>/datasets]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "IOPS_STORAGE_URL",
        hide_env_values = true
    )]
    pub storage_url: Option<String>,
    /// Age an unreferenced stored file must reach before it is removed [default: 3600]
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        env = "IOPS_STORAGE_GRACE_SECS",
        hide_env_values = true
    )]
    pub storage_grace_secs: Option<String>,
    /// Address `iops serve` listens on [default: 127.0.0.1:8080]
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        env = "IOPS_BIND",
        hide_env_values = true
    )]
    pub bind: Option<String>,
    /// Largest accepted upload in bytes [default: 52428800]
    #[arg(
        long,
        global = true,
        value_name = "BYTES",
        env = "IOPS_MAX_UPLOAD_BYTES",
        hide_env_values = true
    )]
    pub max_upload_bytes: Option<String>,
    /// Password hashes running at once [default: twice the cores]
    #[arg(
        long,
        global = true,
        value_name = "N",
        env = "IOPS_HASH_CONCURRENCY",
        hide_env_values = true
    )]
    pub hash_concurrency: Option<String>,
    /// Encryption keys for secrets at rest, `id:base64key,...` (32-byte keys) [default: the key file <data dir>/encryption.keys, created once]
    #[arg(
        long,
        global = true,
        value_name = "KEYS",
        env = "IOPS_ENCRYPTION_KEYS",
        hide_env_values = true
    )]
    pub encryption_keys: Option<String>,
    /// Which of the encryption keys new secrets use [default: the only one]
    #[arg(
        long,
        global = true,
        value_name = "ID",
        env = "IOPS_ENCRYPTION_KEY_ID",
        hide_env_values = true
    )]
    pub encryption_key_id: Option<String>,
    /// SMTP server for invitation mail, `smtp://[user:pass@]host:port` (add `?tls=required` for STARTTLS) or `smtps://...` [default: no mail]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "IOPS_SMTP_URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,
    /// Sender of invitation mail [default: iOps <noreply@localhost>]
    #[arg(
        long,
        global = true,
        value_name = "MAILBOX",
        env = "IOPS_SMTP_FROM",
        hide_env_values = true
    )]
    pub smtp_from: Option<String>,
    /// Where people reach this server, for links in mail [default: http://<IOPS_BIND>]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "IOPS_PUBLIC_URL",
        hide_env_values = true
    )]
    pub public_url: Option<String>,
    /// Stripe's signing secret of this server's webhook endpoint (`whsec_...`) [default: webhooks refused]
    #[arg(
        long,
        global = true,
        value_name = "SECRET",
        env = "IOPS_STRIPE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub stripe_webhook_secret: Option<String>,
    /// Stripe secret API key for checkouts (`sk_...`) [default: no checkouts]
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        env = "IOPS_STRIPE_API_KEY",
        hide_env_values = true
    )]
    pub stripe_api_key: Option<String>,
    /// Stripe's API base URL [default: https://api.stripe.com]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "IOPS_STRIPE_API_BASE",
        hide_env_values = true
    )]
    pub stripe_api_base: Option<String>,
    /// Which Stripe price is which tier, `price_x:pro,price_y:team` [default: none]
    #[arg(
        long,
        global = true,
        value_name = "PRICES",
        env = "IOPS_STRIPE_PRICES",
        hide_env_values = true
    )]
    pub stripe_prices: Option<String>,
    /// Hosts, addresses and CIDR ranges data connections may reach although they are loopback, private or link-local, `127.0.0.1,10.0.0.0/8,db.internal` [default: none]
    #[arg(
        long,
        global = true,
        value_name = "LIST",
        env = "IOPS_CONNECTIONS_ALLOW",
        hide_env_values = true
    )]
    pub connections_allow: Option<String>,
    /// Longest an import's statement may run on the source database, in seconds [default: 60]
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        env = "IOPS_IMPORT_TIMEOUT_SECS",
        hide_env_values = true
    )]
    pub import_timeout_secs: Option<String>,
    /// Longest an analysis run may take, in seconds [default: 30]
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        env = "IOPS_QUERY_TIMEOUT_SECS",
        hide_env_values = true
    )]
    pub query_timeout_secs: Option<String>,
    /// Memory the running queries share, in MiB, before they spill to disk and then fail [default: 512]
    #[arg(
        long,
        global = true,
        value_name = "MIB",
        env = "IOPS_QUERY_MEMORY_MB",
        hide_env_values = true
    )]
    pub query_memory_mb: Option<String>,
    /// Rows kept of a run's result [default: 10000]
    #[arg(
        long,
        global = true,
        value_name = "N",
        env = "IOPS_QUERY_MAX_ROWS",
        hide_env_values = true
    )]
    pub query_max_rows: Option<String>,
    /// Queries running at once per process; the rest wait in line [default: the cores]
    #[arg(
        long,
        global = true,
        value_name = "N",
        env = "IOPS_QUERY_CONCURRENCY",
        hide_env_values = true
    )]
    pub query_concurrency: Option<String>,
    /// Run analyses on the Apache Ballista cluster whose scheduler is at df://HOST:PORT
    /// [default: in this process]
    #[arg(long, global = true, value_name = "URL", env = "IOPS_ENGINE_URL")]
    pub engine_url: Option<String>,
    /// Dataset files at least this large (MiB; 0 for all) get a columnar copy that
    /// analyses read instead; `off` for none [default: 1]
    #[arg(
        long,
        global = true,
        value_name = "MIB",
        env = "IOPS_QUERY_COLUMNAR_MIN_MB",
        hide_env_values = true
    )]
    pub query_columnar_min_mb: Option<String>,
    /// Days product events are kept; older ones are refused and deleted [default: 400]
    #[arg(
        long,
        global = true,
        value_name = "DAYS",
        env = "IOPS_EVENTS_RETENTION_DAYS",
        hide_env_values = true
    )]
    pub events_retention_days: Option<String>,
    /// Milliseconds a public report's content is reused across views; 0 for never [default: 1000]
    #[arg(
        long,
        global = true,
        value_name = "MS",
        env = "IOPS_REPORT_CACHE_MS",
        hide_env_values = true
    )]
    pub report_cache_ms: Option<String>,
    /// Log filter [default: info]
    #[arg(
        long = "log",
        global = true,
        value_name = "FILTER",
        env = "RUST_LOG",
        hide_env_values = true
    )]
    pub log_filter: Option<String>,
}

/// A positive whole number from `raw`, or `default` when unset.
fn positive(name: &str, raw: Option<String>, default: u64) -> Result<u64> {
    match raw {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::config(format!(
                "{name} must be a positive whole number, got '{raw}'"
            ))),
        },
    }
}

impl Config {
    /// Validates `raw`. The S3 client settings come from the standard AWS variables.
    pub fn from_settings(raw: RawSettings) -> Result<Self> {
        let mut config = Self::validate(raw)?;
        config.s3 = S3Settings(domain::storage::object_store::aws::AmazonS3Builder::from_env());
        Ok(config)
    }

    fn validate(raw: RawSettings) -> Result<Self> {
        // An empty value counts as unset, as it always has for these variables.
        let set = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        let RawSettings {
            database_url,
            data_dir,
            storage_url,
            storage_grace_secs,
            bind,
            max_upload_bytes,
            hash_concurrency,
            encryption_keys,
            encryption_key_id,
            smtp_url,
            smtp_from,
            public_url,
            stripe_webhook_secret,
            stripe_api_key,
            stripe_api_base,
            stripe_prices,
            connections_allow,
            import_timeout_secs,
            query_timeout_secs,
            query_memory_mb,
            query_max_rows,
            query_concurrency,
            engine_url,
            query_columnar_min_mb,
            events_retention_days,
            report_cache_ms,
            log_filter,
        } = raw;
        let data_dir = PathBuf::from(set(data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into()));
        let (database_url, database_url_is_default) = match set(database_url) {
            Some(url) => (url, false),
            None => (default_database_url(&data_dir), true),
        };
        validate_database_url(&database_url)?;

        let bind = set(bind).unwrap_or_else(|| DEFAULT_BIND.into());
        if !bind.contains(':') {
            return Err(Error::config(format!(
                "IOPS_BIND must be host:port, got '{bind}'"
            )));
        }

        let max_upload_bytes = match set(max_upload_bytes) {
            None => DEFAULT_MAX_UPLOAD_BYTES,
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(Error::config(format!(
                        "IOPS_MAX_UPLOAD_BYTES must be a positive whole number of bytes, got '{raw}'"
                    )));
                }
            },
        };

        let log_filter = set(log_filter).unwrap_or_else(|| "info".into());

        let storage = match set(storage_url) {
            None => Location::Folder(data_dir.join("datasets")),
            Some(raw) => parse_storage_url("IOPS_STORAGE_URL", &raw)?,
        };

        let storage_grace = match set(storage_grace_secs) {
            None => domain::storage::STALE_STAGING,
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(secs) => std::time::Duration::from_secs(secs),
                Err(_) => {
                    return Err(Error::config(format!(
                        "IOPS_STORAGE_GRACE_SECS must be a whole number of seconds, got '{raw}'"
                    )));
                }
            },
        };

        let hash_concurrency = match set(hash_concurrency) {
            None => std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(Error::config(format!(
                        "IOPS_HASH_CONCURRENCY must be a positive whole number, got '{raw}'"
                    )));
                }
            },
        };

        let encryption = match (set(encryption_keys), set(encryption_key_id)) {
            (Some(keys), current) => Some(std::sync::Arc::new(
                domain::Keyring::parse(&keys, current.as_deref())
                    .map_err(|e| Error::config(format!("IOPS_ENCRYPTION_KEYS: {e}")))?,
            )),
            (None, Some(_)) => {
                return Err(Error::config(
                    "IOPS_ENCRYPTION_KEY_ID is set but IOPS_ENCRYPTION_KEYS is not",
                ));
            }
            (None, None) => None,
        };

        let smtp = match set(smtp_url) {
            None => None,
            Some(url) => {
                let smtp = SmtpSettings {
                    url,
                    from: set(smtp_from).unwrap_or_else(|| DEFAULT_SMTP_FROM.into()),
                };
                // Refused now, with one line, rather than at the first invitation.
                smtp.transport()?;
                Some(smtp)
            }
        };
        let public_url = match set(public_url) {
            None => format!("http://{bind}"),
            Some(raw) => {
                let raw = raw.trim().trim_end_matches('/').to_owned();
                match url::Url::parse(&raw) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => raw,
                    _ => {
                        return Err(Error::config(format!(
                            "IOPS_PUBLIC_URL must be an http:// or https:// URL, got '{raw}'"
                        )));
                    }
                }
            }
        };

        let defaults = QuerySettings::default();
        let query = QuerySettings {
            timeout_secs: positive(
                "IOPS_QUERY_TIMEOUT_SECS",
                set(query_timeout_secs),
                defaults.timeout_secs,
            )?,
            memory_mb: positive(
                "IOPS_QUERY_MEMORY_MB",
                set(query_memory_mb),
                defaults.memory_mb,
            )?,
            max_rows: positive(
                "IOPS_QUERY_MAX_ROWS",
                set(query_max_rows),
                defaults.max_rows,
            )?,
            concurrency: positive(
                "IOPS_QUERY_CONCURRENCY",
                set(query_concurrency),
                defaults.concurrency,
            )?,
            cluster: match set(engine_url) {
                None => None,
                Some(raw) => Some(
                    engine::ClusterAddress::parse(raw.trim())
                        .map_err(|e| Error::config(format!("IOPS_ENGINE_URL: {e}")))?,
                ),
            },
            columnar_min_mb: match set(query_columnar_min_mb) {
                None => defaults.columnar_min_mb,
                Some(raw) if raw.trim().eq_ignore_ascii_case("off") => None,
                Some(raw) => Some(raw.trim().parse::<u64>().map_err(|_| {
                    Error::config(format!(
                        "IOPS_QUERY_COLUMNAR_MIN_MB must be a whole number of MiB or 'off', got '{raw}'"
                    ))
                })?),
            },
        };

        let events_retention_days = positive(
            "IOPS_EVENTS_RETENTION_DAYS",
            set(events_retention_days.clone()),
            u64::from(domain::DEFAULT_EVENTS_RETENTION_DAYS),
        )
        .ok()
        .and_then(|days| u32::try_from(days).ok())
        .filter(|days| *days <= MAX_EVENTS_RETENTION_DAYS)
        .ok_or_else(|| {
            Error::config(format!(
                "IOPS_EVENTS_RETENTION_DAYS must be a whole number of days from 1 to {MAX_EVENTS_RETENTION_DAYS}, got '{}'",
                events_retention_days.unwrap_or_default()
            ))
        })?;

        let report_cache = match set(report_cache_ms) {
            None => domain::DEFAULT_REPORT_CACHE_TTL,
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(ms) if ms <= MAX_REPORT_CACHE_MS => std::time::Duration::from_millis(ms),
                _ => {
                    return Err(Error::config(format!(
                        "IOPS_REPORT_CACHE_MS must be a whole number of milliseconds from 0 to {MAX_REPORT_CACHE_MS}, got '{raw}'"
                    )));
                }
            },
        };

        let mut billing = domain::billing::BillingConfig::new(&public_url).with_prices(
            match set(stripe_prices) {
                None => Vec::new(),
                Some(raw) => domain::billing::BillingConfig::parse_prices(&raw)
                    .map_err(|why| Error::config(format!("IOPS_STRIPE_PRICES: {why}")))?,
            },
        );
        if let Some(secret) = set(stripe_webhook_secret) {
            billing = billing.with_webhook_secret(secret.trim().to_owned());
        }
        let stripe = match (set(stripe_api_key), set(stripe_api_base)) {
            (Some(key), base) => {
                let api_base = base
                    .map(|b| b.trim().trim_end_matches('/').to_owned())
                    .unwrap_or_else(|| domain::billing::STRIPE_API_BASE.to_owned());
                match url::Url::parse(&api_base) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                    _ => {
                        return Err(Error::config(format!(
                            "IOPS_STRIPE_API_BASE must be an http:// or https:// URL, got '{api_base}'"
                        )));
                    }
                }
                Some(StripeSettings {
                    api_base,
                    api_key: zeroize::Zeroizing::new(key.trim().to_owned()),
                })
            }
            (None, _) => None,
        };

        let connections_allow = match set(connections_allow) {
            None => domain::connections::AllowList::default(),
            Some(raw) => domain::connections::AllowList::parse(&raw)
                .map_err(|why| Error::config(format!("IOPS_CONNECTIONS_ALLOW: {why}")))?,
        };
        let import_timeout_secs =
            positive("IOPS_IMPORT_TIMEOUT_SECS", set(import_timeout_secs), 60)?;

        Ok(Self {
            connections_allow,
            import_timeout_secs,
            billing,
            stripe,
            query,
            hash_concurrency,
            events_retention_days,
            report_cache,
            encryption,
            smtp,
            public_url,
            // Only `from_env` reads the AWS variables, all at once.
            s3: S3Settings(domain::storage::object_store::aws::AmazonS3Builder::new()),
            database_url,
            database_url_is_default,
            data_dir,
            bind,
            max_upload_bytes,
            log_filter,
            storage,
            storage_grace,
        })
    }

    /// The default folder of dataset files (used when `IOPS_STORAGE_URL` is unset).
    pub fn datasets_dir(&self) -> PathBuf {
        self.data_dir.join("datasets")
    }

    /// Creates the data dir if missing and proves it writable. `serve` always needs it;
    /// other commands only when the default SQLite file lives there.
    pub fn ensure_data_dir(&self) -> Result<()> {
        ensure_writable_dir(&self.data_dir)
    }

    /// Resolves `IOPS_BIND` to socket addresses.
    pub fn bind_addrs(&self) -> Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = self
            .bind
            .to_socket_addrs()
            .map_err(|e| {
                Error::config(format!(
                    "IOPS_BIND '{}' is not a usable address: {e}",
                    self.bind
                ))
            })?
            .collect();
        if addrs.is_empty() {
            return Err(Error::config(format!(
                "IOPS_BIND '{}' resolves to no address",
                self.bind
            )));
        }
        Ok(addrs)
    }

    /// The keys secrets at rest use: the configured ones, or the data dir's key file
    /// (created once, 0600). Several servers on one database must share keys: set
    /// `IOPS_ENCRYPTION_KEYS` on each.
    pub fn keyring(&self) -> Result<std::sync::Arc<domain::Keyring>> {
        if let Some(keys) = &self.encryption {
            return Ok(keys.clone());
        }
        self.ensure_data_dir()?;
        domain::Keyring::load_or_create(&self.data_dir)
            .map(std::sync::Arc::new)
            .map_err(|e| {
                Error::config(format!(
                    "the key file {} cannot be used: {e}",
                    self.data_dir.join(domain::KEY_FILE).display()
                ))
            })
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    pub fn settings(&self) -> domain::Settings {
        domain::Settings {
            max_upload_bytes: self.max_upload_bytes,
            columnar_min_bytes: self
                .query
                .columnar_min_mb
                .map(|mb| mb.saturating_mul(1 << 20)),
            connections_allow: self.connections_allow.clone(),
            import_timeout: std::time::Duration::from_secs(self.import_timeout_secs),
            events_retention_days: self.events_retention_days,
            report_cache_ttl: self.report_cache,
            ..domain::Settings::default()
        }
    }
}

/// Parses a storage URL given in `setting` (an environment variable or an option).
pub fn parse_storage_url(setting: &str, raw: &str) -> Result<Location> {
    Location::parse(raw).map_err(|why| Error::config(format!("{setting}: {why}")))
}

fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("iops.db").display())
}

fn validate_database_url(raw: &str) -> Result<()> {
    // Never echo the URL itself: it may hold a password.
    let scheme = raw.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" => Ok(()),
        "postgres" | "postgresql" => url::Url::parse(raw)
            .map(|_| ())
            .map_err(|e| Error::config(format!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))),
        _ => Err(Error::config(
            "DATABASE_URL must start with sqlite:// or postgres://",
        )),
    }
}

fn ensure_writable_dir(dir: &Path) -> Result<()> {
    let shown = dir.display();
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create data dir {shown}"), e))?;
    let probe = dir.join(format!(".iops-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| Error::io(format!("data dir {shown} is not writable"), e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Settings as if these environment variables were set.
    fn config(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let get = |key: &str| map.get(key).cloned();
        Config::validate(RawSettings {
            database_url: get("DATABASE_URL"),
            data_dir: get("IOPS_DATA_DIR"),
            storage_url: get("IOPS_STORAGE_URL"),
            storage_grace_secs: get("IOPS_STORAGE_GRACE_SECS"),
            bind: get("IOPS_BIND"),
            max_upload_bytes: get("IOPS_MAX_UPLOAD_BYTES"),
            hash_concurrency: get("IOPS_HASH_CONCURRENCY"),
            encryption_keys: get("IOPS_ENCRYPTION_KEYS"),
            encryption_key_id: get("IOPS_ENCRYPTION_KEY_ID"),
            smtp_url: get("IOPS_SMTP_URL"),
            smtp_from: get("IOPS_SMTP_FROM"),
            public_url: get("IOPS_PUBLIC_URL"),
            stripe_webhook_secret: get("IOPS_STRIPE_WEBHOOK_SECRET"),
            stripe_api_key: get("IOPS_STRIPE_API_KEY"),
            stripe_api_base: get("IOPS_STRIPE_API_BASE"),
            stripe_prices: get("IOPS_STRIPE_PRICES"),
            connections_allow: get("IOPS_CONNECTIONS_ALLOW"),
            import_timeout_secs: get("IOPS_IMPORT_TIMEOUT_SECS"),
            query_timeout_secs: get("IOPS_QUERY_TIMEOUT_SECS"),
            query_memory_mb: get("IOPS_QUERY_MEMORY_MB"),
            query_max_rows: get("IOPS_QUERY_MAX_ROWS"),
            query_concurrency: get("IOPS_QUERY_CONCURRENCY"),
            engine_url: get("IOPS_ENGINE_URL"),
            query_columnar_min_mb: get("IOPS_QUERY_COLUMNAR_MIN_MB"),
            events_retention_days: get("IOPS_EVENTS_RETENTION_DAYS"),
            report_cache_ms: get("IOPS_REPORT_CACHE_MS"),
            log_filter: get("RUST_LOG"),
        })
    }

    #[test]
    fn query_limits_have_defaults_and_refuse_nonsense() {
        let config = config(&[]).unwrap();
        assert_eq!(config.query.timeout_secs, 30);
        assert_eq!(config.query.memory_mb, 512);
        assert_eq!(config.query.max_rows, 10_000);
        assert!(config.query.concurrency >= 1);
        assert_eq!(config.query.cluster, None);
        assert_eq!(config.settings().columnar_min_bytes, Some(1 << 20));
        assert_eq!(
            super::tests::config(&[("IOPS_QUERY_COLUMNAR_MIN_MB", "off")])
                .unwrap()
                .settings()
                .columnar_min_bytes,
            None
        );
        assert_eq!(
            super::tests::config(&[("IOPS_QUERY_COLUMNAR_MIN_MB", "0")])
                .unwrap()
                .settings()
                .columnar_min_bytes,
            Some(0)
        );
        let set = super::tests::config(&[
            ("IOPS_QUERY_TIMEOUT_SECS", "5"),
            ("IOPS_QUERY_MEMORY_MB", "64"),
            ("IOPS_QUERY_MAX_ROWS", "7"),
            ("IOPS_QUERY_CONCURRENCY", "3"),
            ("IOPS_ENGINE_URL", "df://scheduler:50050"),
            ("IOPS_DATA_DIR", "/srv/iops"),
        ])
        .unwrap();
        let engine = set.query.engine(&set.data_dir);
        assert_eq!(engine.timeout, std::time::Duration::from_secs(5));
        assert_eq!(engine.memory_bytes, 64 * 1024 * 1024);
        assert_eq!((engine.max_rows, engine.concurrency), (7, 3));
        assert_eq!(
            engine.cluster.map(|c| c.to_string()).as_deref(),
            Some("df://scheduler:50050")
        );
        assert_eq!(
            engine.spill_dir,
            std::path::PathBuf::from("/srv/iops/spill")
        );
        for (name, bad) in [
            ("IOPS_QUERY_TIMEOUT_SECS", "0"),
            ("IOPS_QUERY_MEMORY_MB", "-1"),
            ("IOPS_QUERY_MAX_ROWS", "many"),
            ("IOPS_QUERY_CONCURRENCY", "1.5"),
            ("IOPS_ENGINE_URL", "http://scheduler:50050"),
            ("IOPS_QUERY_COLUMNAR_MIN_MB", "big"),
        ] {
            let err = super::tests::config(&[(name, bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(name) && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn mail_settings_are_checked_at_start_and_the_url_never_printed() {
        let ok = config(&[
            ("IOPS_SMTP_URL", "smtp://mailer:s3cret-pw@127.0.0.1:2525"),
            ("IOPS_BIND", "0.0.0.0:9000"),
        ])
        .unwrap();
        let smtp = ok.smtp.clone().unwrap();
        assert_eq!(smtp.from, DEFAULT_SMTP_FROM);
        assert!(!format!("{ok:?}").contains("s3cret-pw"));
        assert_eq!(ok.public_url, "http://0.0.0.0:9000");
        assert!(config(&[]).unwrap().smtp.is_none());

        let public = config(&[("IOPS_PUBLIC_URL", "https://iops.example.com/")]).unwrap();
        assert_eq!(public.public_url, "https://iops.example.com");

        for vars in [
            vec![("IOPS_SMTP_URL", "ftp://mailer:s3cret-pw@host")],
            vec![
                ("IOPS_SMTP_URL", "smtp://127.0.0.1:25"),
                ("IOPS_SMTP_FROM", "not a mailbox"),
            ],
            vec![("IOPS_PUBLIC_URL", "javascript:alert(1)")],
        ] {
            let Err(e) = config(&vars) else {
                panic!("{vars:?} must be refused")
            };
            let line = e.to_string();
            assert!(!line.contains("s3cret-pw"), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn encryption_keys_are_checked_at_start_and_never_echoed() {
        let key = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
        let ok = config(&[("IOPS_ENCRYPTION_KEYS", &format!("a:{key}"))]).unwrap();
        assert_eq!(ok.encryption.unwrap().current_id(), "a");
        for vars in [
            vec![
                ("IOPS_ENCRYPTION_KEYS", format!("a:{key}")),
                ("IOPS_ENCRYPTION_KEY_ID", "b".to_owned()),
            ],
            vec![("IOPS_ENCRYPTION_KEY_ID", "a".to_owned())],
            vec![("IOPS_ENCRYPTION_KEYS", "a:c2hvcnQ=".to_owned())],
        ] {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.contains("IOPS_ENCRYPTION_KEY"), "{err}");
            assert!(!err.contains(key) && !err.contains("c2hvcnQ="), "{err}");
        }
    }

    /// An option goes through the same validation as its variable.
    #[test]
    fn options_read_like_variables() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            settings: RawSettings,
        }
        let cli =
            Cli::try_parse_from(["iops", "--bind", "0.0.0.0:9000", "--max-upload-bytes", "10"])
                .unwrap();
        assert_eq!(cli.settings.bind.as_deref(), Some("0.0.0.0:9000"));
        let c = Config::validate(cli.settings).unwrap();
        assert_eq!((c.bind.as_str(), c.max_upload_bytes), ("0.0.0.0:9000", 10));
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind, DEFAULT_BIND);
        assert_eq!(c.max_upload_bytes, DEFAULT_MAX_UPLOAD_BYTES);
        assert_eq!(c.log_filter, "info");
        assert!(c.database_url_is_default);
        assert_eq!(c.database_url, "sqlite://./data/iops.db?mode=rwc");
        assert_eq!(
            c.storage,
            Location::Folder(PathBuf::from("./data/datasets"))
        );
    }

    #[test]
    fn storage_urls() {
        let c = config(&[("IOPS_STORAGE_URL", "s3://iops-files/prod")]).unwrap();
        assert_eq!(
            c.storage,
            Location::S3 {
                bucket: "iops-files".into(),
                prefix: "prod".into()
            }
        );
        let c = config(&[("IOPS_DATA_DIR", "/srv/iops"), ("IOPS_STORAGE_URL", " ")]).unwrap();
        assert_eq!(
            c.storage,
            Location::Folder(PathBuf::from("/srv/iops/datasets"))
        );
        for bad in [
            "bucket",
            "s3://",
            "https://s3.example.com/b",
            "file://relative",
        ] {
            let err = config(&[("IOPS_STORAGE_URL", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("IOPS_STORAGE_URL: "), "{bad}: {err}");
        }
    }

    #[test]
    fn report_cache_has_a_default_can_be_off_and_refuses_nonsense() {
        let ttl = |c: Config| c.settings().report_cache_ttl;
        assert_eq!(ttl(config(&[]).unwrap()), std::time::Duration::from_secs(1));
        let off = config(&[("IOPS_REPORT_CACHE_MS", "0")]).unwrap();
        assert_eq!(ttl(off), std::time::Duration::ZERO);
        let set = config(&[("IOPS_REPORT_CACHE_MS", "250")]).unwrap();
        assert_eq!(ttl(set), std::time::Duration::from_millis(250));
        for bad in ["-1", "1.5", "soon", "60001"] {
            let Err(err) = config(&[("IOPS_REPORT_CACHE_MS", bad)]) else {
                panic!("IOPS_REPORT_CACHE_MS={bad} was accepted");
            };
            let err = err.to_string();
            assert!(
                err.contains("IOPS_REPORT_CACHE_MS") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn events_retention_has_a_default_and_refuses_nonsense() {
        assert_eq!(config(&[]).unwrap().settings().events_retention_days, 400);
        let set = config(&[("IOPS_EVENTS_RETENTION_DAYS", "30")]).unwrap();
        assert_eq!(set.settings().events_retention_days, 30);
        for bad in ["0", "-1", "lots", "36501", "99999999999"] {
            let err = config(&[("IOPS_EVENTS_RETENTION_DAYS", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("IOPS_EVENTS_RETENTION_DAYS") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(config(&[("IOPS_MAX_UPLOAD_BYTES", "lots")]).is_err());
        assert!(config(&[("IOPS_MAX_UPLOAD_BYTES", "0")]).is_err());
        assert!(config(&[("DATABASE_URL", "mysql://x")]).is_err());
        assert!(config(&[("DATABASE_URL", "postgres://[bad")]).is_err());
        assert!(config(&[("IOPS_BIND", "8080")]).is_err());
    }

    #[test]
    fn url_errors_never_echo_the_url() {
        let err = config(&[("DATABASE_URL", "mysql://user:secret@x")]).unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
