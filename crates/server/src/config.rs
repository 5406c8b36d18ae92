//! Typed configuration: defaults, then an optional TOML file, then the environment.
//! Invalid values fail at start with a message naming the key.
//!
//! Environment keys: `DATABASE_URL`, `REDIS_URL`, `CLINICFLOW_BIND`, `CLINICFLOW_JWT_SECRET`,
//! `CLINICFLOW_PROFILE`, and `CLINICFLOW_<SECTION>_<KEY>` for the rest (for example
//! `CLINICFLOW_DB_MAX_CONNECTIONS`); the file uses the same names in sections
//! (`[db] max_connections = 20`), with `database_url`, `bind` … at the top. `ENV_KEYS` is the
//! one list of environment keys: each is laid over the file's tree at its file key, and the
//! tree is deserialized once. A new setting is a field here and a row there, and a row of the
//! configuration table in docs/operations.md (a test holds the two lists equal).

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The longest database bound accepted, in milliseconds.
const MAX_DB_BOUND_MS: u64 = 86_400_000;

/// Shortest JWT secret accepted outside development.
pub const MIN_SECRET_BYTES: usize = 32;

/// Where the server runs; production demands explicit secrets and logs JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A developer's machine: a generated JWT secret is allowed, logs are human-readable.
    Development,
    /// A deployment: the JWT secret must be set and long, logs are JSON.
    Production,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Database pool settings (`[db]`, `CLINICFLOW_DB_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbSettings {
    /// Most pooled connections.
    pub max_connections: u32,
    /// Connections kept while idle.
    pub min_connections: u32,
    /// Seconds a request waits for a connection before answering 503.
    pub acquire_timeout_secs: u64,
    /// Seconds an idle connection is kept.
    pub idle_timeout_secs: u64,
    /// Seconds any connection is kept.
    pub max_lifetime_secs: u64,
    /// Seconds a connection sits idle before it is tested with a round trip on its next use.
    pub test_idle_after_secs: u64,
    /// Statements slower than this many milliseconds are logged; 0 turns that off.
    pub slow_query_ms: u64,
    /// PostgreSQL `statement_timeout` in milliseconds: the longest any statement runs (0: no bound).
    pub statement_timeout_ms: u64,
    /// PostgreSQL `lock_timeout` in milliseconds: the longest a statement waits for a lock
    /// held by another request (0: no bound).
    pub lock_timeout_ms: u64,
    /// PostgreSQL `idle_in_transaction_session_timeout` in milliseconds (0: no bound).
    pub idle_in_transaction_timeout_ms: u64,
    /// SQLite `busy_timeout` in milliseconds: the longest a writer waits for the write lock.
    pub sqlite_busy_timeout_ms: u64,
}

impl Default for DbSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 1,
            acquire_timeout_secs: 5,
            idle_timeout_secs: 600,
            max_lifetime_secs: 1800,
            test_idle_after_secs: 5,
            slow_query_ms: 500,
            statement_timeout_ms: 5_000,
            lock_timeout_ms: 2_000,
            idle_in_transaction_timeout_ms: 10_000,
            sqlite_busy_timeout_ms: 5_000,
        }
    }
}

/// Authentication settings (`[auth]`, `CLINICFLOW_AUTH_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Lifetime of access tokens in seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Login attempts per client IP per minute.
    pub login_per_ip_per_minute: u32,
    /// Login attempts per account per minute.
    pub login_per_account_per_minute: u32,
    /// Consecutive failed logins that lock an account.
    pub lockout_failures: u32,
    /// Seconds a locked account stays locked.
    pub lockout_secs: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 14 * 24 * 3600,
            login_per_ip_per_minute: 10,
            login_per_account_per_minute: 5,
            lockout_failures: 5,
            lockout_secs: 900,
        }
    }
}

/// HTTP server settings (`[http]`, `CLINICFLOW_HTTP_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Worker threads (default: one per core).
    pub workers: Option<usize>,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
    /// Longest JSON string accepted, in characters.
    pub max_json_string_chars: usize,
    /// Requests per hour of one authenticated user.
    pub per_user_per_hour: u32,
    /// Requests per hour from one IP without a token.
    pub per_ip_per_hour: u32,
    /// Origins allowed to call the API from a browser (CORS), comma-separated; none by default.
    pub cors_origins: Vec<String>,
    /// Live streams (queue board) one user may hold open at once.
    pub max_streams_per_user: u32,
    /// Seconds between keep-alive comments on a live stream.
    pub stream_heartbeat_secs: u64,
    /// Requests slower than this many milliseconds are logged as warnings.
    pub slow_request_ms: u64,
    /// Smallest response body in bytes that is compressed (gzip or brotli, as the client asks).
    pub compress_min_bytes: usize,
    /// Seconds the first answer to a write with an `Idempotency-Key` is given again to retries.
    pub idempotency_ttl_secs: u64,
    /// Reverse proxies (IP addresses or CIDR networks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            workers: None,
            shutdown_timeout_secs: 30,
            max_body_bytes: 256 * 1024,
            max_json_depth: 16,
            max_json_string_chars: 10_000,
            per_user_per_hour: 1000,
            per_ip_per_hour: 100,
            cors_origins: Vec::new(),
            max_streams_per_user: 5,
            stream_heartbeat_secs: 15,
            slow_request_ms: 1000,
            compress_min_bytes: 1024,
            idempotency_ttl_secs: 24 * 60 * 60,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Outbox dispatch settings (`[outbox]`, `CLINICFLOW_OUTBOX_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxSettings {
    /// Milliseconds between rounds when nothing was due.
    pub poll_interval_ms: u64,
    /// Messages claimed per round.
    pub claim_limit: u32,
    /// Messages of one clinic sent in one request.
    pub batch_size: usize,
    /// Seconds of the first retry delay (doubling, with full jitter).
    pub retry_base_secs: u64,
    /// Longest retry delay in seconds.
    pub retry_cap_secs: u64,
    /// Attempts before a message is dead.
    pub max_attempts: u32,
    /// Seconds a webhook receiver gets to accept a connection.
    pub webhook_connect_timeout_secs: u64,
    /// Seconds a webhook receiver gets to answer, connection included.
    pub webhook_timeout_secs: u64,
    /// Seconds claimed messages stay with their dispatcher before another may take them.
    pub lease_secs: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1000,
            claim_limit: 100,
            batch_size: 50,
            retry_base_secs: 5,
            retry_cap_secs: 3600,
            max_attempts: 8,
            webhook_connect_timeout_secs: 5,
            webhook_timeout_secs: 10,
            lease_secs: 120,
        }
    }
}

/// No-show sweeper settings (`[sweeper]`, `CLINICFLOW_SWEEPER_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SweeperSettings {
    /// Seconds between sweeps; 0 turns the sweeper off.
    pub interval_secs: u64,
    /// Appointments marked per clinic in one sweep.
    pub batch: u32,
    /// Hours after its start within which a swept no-show is still announced.
    pub announce_within_hours: u32,
}

impl Default for SweeperSettings {
    fn default() -> Self {
        Self {
            interval_secs: 60,
            batch: 100,
            announce_within_hours: 24,
        }
    }
}

/// Cache settings (`[cache]`, `CLINICFLOW_CACHE_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Bytes the in-process cache may hold.
    pub local_max_bytes: u64,
    /// Seconds between dashboard refreshes by the warmer; 0 turns the warmer off (dashboards
    /// are then computed on request and kept 30 s).
    pub dashboard_refresh_secs: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            local_max_bytes: 64 * 1024 * 1024,
            dashboard_refresh_secs: 15,
        }
    }
}

/// Everything the server reads at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// host:port to listen on.
    pub bind: String,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: SecretString,
    /// `redis://…`, optional.
    pub redis_url: Option<SecretString>,
    /// HMAC secret for access tokens.
    pub jwt_secret: Option<SecretString>,
    /// development or production.
    pub profile: Profile,
    /// pretty or json (default: pretty in development, json in production).
    pub log_format: Option<LogFormat>,
    /// Database pool.
    pub db: DbSettings,
    /// Authentication.
    pub auth: AuthSettings,
    /// HTTP server.
    pub http: HttpSettings,
    /// Cache.
    pub cache: CacheSettings,
    /// Outbox dispatch.
    pub outbox: OutboxSettings,
    /// The no-show sweeper.
    pub sweeper: SweeperSettings,
    /// Where webhooks may point.
    pub webhook: WebhookSettings,
    /// Who may read `/metrics`.
    pub metrics: MetricsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            database_url: SecretString::from("sqlite://clinicflow.db?mode=rwc"),
            redis_url: None,
            jwt_secret: None,
            profile: Profile::Development,
            log_format: None,
            db: DbSettings::default(),
            auth: AuthSettings::default(),
            http: HttpSettings::default(),
            cache: CacheSettings::default(),
            outbox: OutboxSettings::default(),
            sweeper: SweeperSettings::default(),
            webhook: WebhookSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, naming the key.
        message: String,
    },
    /// A value is invalid.
    #[error("invalid {key}: {message}")]
    Invalid {
        /// The environment key (or file key).
        key: &'static str,
        /// Why.
        message: String,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// How the text of an environment value becomes a value of the settings tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A whole number, surrounding blanks ignored.
    Int,
    /// Text, surrounding blanks ignored (addresses, enum words).
    Text,
    /// Text taken byte for byte and never shown in an error.
    Secret,
    /// Comma-separated text; blanks around items and empty items are dropped.
    List,
}

use Kind::{Int, List, Secret, Text};

/// Every environment key the server reads: the key, the setting it sets (`section.key`, as in
/// the file's `[section] key`), and how its text is read. The merged file-and-environment tree
/// is then deserialized once, so serde's types and `deny_unknown_fields` do the checking.
#[rustfmt::skip] // One row a line, so the table reads as one.
const ENV_KEYS: &[(&str, &str, Kind)] = &[
    ("DATABASE_URL", "database_url", Secret),
    ("REDIS_URL", "redis_url", Secret),
    ("CLINICFLOW_BIND", "bind", Text),
    ("CLINICFLOW_JWT_SECRET", "jwt_secret", Secret),
    ("CLINICFLOW_PROFILE", "profile", Text),
    ("CLINICFLOW_LOG_FORMAT", "log_format", Text),
    ("CLINICFLOW_DB_MAX_CONNECTIONS", "db.max_connections", Int),
    ("CLINICFLOW_DB_MIN_CONNECTIONS", "db.min_connections", Int),
    ("CLINICFLOW_DB_ACQUIRE_TIMEOUT_SECS", "db.acquire_timeout_secs", Int),
    ("CLINICFLOW_DB_IDLE_TIMEOUT_SECS", "db.idle_timeout_secs", Int),
    ("CLINICFLOW_DB_MAX_LIFETIME_SECS", "db.max_lifetime_secs", Int),
    ("CLINICFLOW_DB_TEST_IDLE_AFTER_SECS", "db.test_idle_after_secs", Int),
    ("CLINICFLOW_DB_SLOW_QUERY_MS", "db.slow_query_ms", Int),
    ("CLINICFLOW_DB_STATEMENT_TIMEOUT_MS", "db.statement_timeout_ms", Int),
    ("CLINICFLOW_DB_LOCK_TIMEOUT_MS", "db.lock_timeout_ms", Int),
    ("CLINICFLOW_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "db.idle_in_transaction_timeout_ms", Int),
    ("CLINICFLOW_DB_SQLITE_BUSY_TIMEOUT_MS", "db.sqlite_busy_timeout_ms", Int),
    ("CLINICFLOW_AUTH_ACCESS_TOKEN_TTL_SECS", "auth.access_token_ttl_secs", Int),
    ("CLINICFLOW_AUTH_REFRESH_TOKEN_TTL_SECS", "auth.refresh_token_ttl_secs", Int),
    ("CLINICFLOW_AUTH_LOGIN_PER_IP_PER_MINUTE", "auth.login_per_ip_per_minute", Int),
    ("CLINICFLOW_AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE", "auth.login_per_account_per_minute", Int),
    ("CLINICFLOW_AUTH_LOCKOUT_FAILURES", "auth.lockout_failures", Int),
    ("CLINICFLOW_AUTH_LOCKOUT_SECS", "auth.lockout_secs", Int),
    ("CLINICFLOW_HTTP_WORKERS", "http.workers", Int),
    ("CLINICFLOW_HTTP_SHUTDOWN_TIMEOUT_SECS", "http.shutdown_timeout_secs", Int),
    ("CLINICFLOW_HTTP_MAX_BODY_BYTES", "http.max_body_bytes", Int),
    ("CLINICFLOW_HTTP_MAX_JSON_DEPTH", "http.max_json_depth", Int),
    ("CLINICFLOW_HTTP_MAX_JSON_STRING_CHARS", "http.max_json_string_chars", Int),
    ("CLINICFLOW_HTTP_PER_USER_PER_HOUR", "http.per_user_per_hour", Int),
    ("CLINICFLOW_HTTP_PER_IP_PER_HOUR", "http.per_ip_per_hour", Int),
    ("CLINICFLOW_HTTP_CORS_ORIGINS", "http.cors_origins", List),
    ("CLINICFLOW_HTTP_MAX_STREAMS_PER_USER", "http.max_streams_per_user", Int),
    ("CLINICFLOW_HTTP_SLOW_REQUEST_MS", "http.slow_request_ms", Int),
    ("CLINICFLOW_HTTP_COMPRESS_MIN_BYTES", "http.compress_min_bytes", Int),
    ("CLINICFLOW_HTTP_IDEMPOTENCY_TTL_SECS", "http.idempotency_ttl_secs", Int),
    ("CLINICFLOW_HTTP_STREAM_HEARTBEAT_SECS", "http.stream_heartbeat_secs", Int),
    ("CLINICFLOW_HTTP_TRUSTED_PROXIES", "http.trusted_proxies", List),
    ("CLINICFLOW_OUTBOX_POLL_INTERVAL_MS", "outbox.poll_interval_ms", Int),
    ("CLINICFLOW_OUTBOX_CLAIM_LIMIT", "outbox.claim_limit", Int),
    ("CLINICFLOW_OUTBOX_BATCH_SIZE", "outbox.batch_size", Int),
    ("CLINICFLOW_OUTBOX_RETRY_BASE_SECS", "outbox.retry_base_secs", Int),
    ("CLINICFLOW_OUTBOX_RETRY_CAP_SECS", "outbox.retry_cap_secs", Int),
    ("CLINICFLOW_OUTBOX_MAX_ATTEMPTS", "outbox.max_attempts", Int),
    ("CLINICFLOW_OUTBOX_WEBHOOK_CONNECT_TIMEOUT_SECS", "outbox.webhook_connect_timeout_secs", Int),
    ("CLINICFLOW_OUTBOX_WEBHOOK_TIMEOUT_SECS", "outbox.webhook_timeout_secs", Int),
    ("CLINICFLOW_OUTBOX_LEASE_SECS", "outbox.lease_secs", Int),
    ("CLINICFLOW_SWEEPER_INTERVAL_SECS", "sweeper.interval_secs", Int),
    ("CLINICFLOW_SWEEPER_BATCH", "sweeper.batch", Int),
    ("CLINICFLOW_SWEEPER_ANNOUNCE_WITHIN_HOURS", "sweeper.announce_within_hours", Int),
    ("CLINICFLOW_CACHE_DASHBOARD_REFRESH_SECS", "cache.dashboard_refresh_secs", Int),
    ("CLINICFLOW_CACHE_LOCAL_MAX_BYTES", "cache.local_max_bytes", Int),
    ("CLINICFLOW_WEBHOOK_ALLOWED_HOSTS", "webhook.allowed_hosts", List),
    ("CLINICFLOW_METRICS_BIND", "metrics.bind", Text),
    ("CLINICFLOW_METRICS_TOKEN", "metrics.token", Secret),
];

impl Kind {
    fn read(self, raw: &str) -> Result<toml::Value, String> {
        Ok(match self {
            Int => toml::Value::Integer(
                raw.trim()
                    .parse()
                    .map_err(|_| format!("`{raw}` is not a whole number"))?,
            ),
            Text => toml::Value::String(raw.trim().to_owned()),
            Secret => toml::Value::String(raw.to_owned()),
            List => raw
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect::<Vec<_>>()
                .into(),
        })
    }
}

/// Sets `section.key` (or a top-level `key`) in a settings tree.
fn set(tree: &mut toml::Table, path: &str, value: toml::Value) {
    match path.split_once('.') {
        Some((section, key)) => {
            // A section that is not a table was refused with the file already.
            let section = tree
                .entry(section)
                .or_insert_with(|| toml::Table::new().into());
            if let Some(table) = section.as_table_mut() {
                table.insert(key.to_owned(), value);
            }
        }
        None => {
            tree.insert(path.to_owned(), value);
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, &|k| std::env::var(k).ok())
    }

    /// Loads with an explicit environment, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let s = Self::read(file, env)?;
        s.validate()?;
        s.validate_security()?;
        Ok(s)
    }

    /// Reads the file and the environment into settings without checking their rules.
    fn read(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut tree = match file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        for &(key, path, kind) in ENV_KEYS {
            let Some(raw) = env(key) else { continue };
            let value = kind.read(&raw).map_err(|m| invalid(key, m))?;
            // Checked alone first, so a value of the wrong type or range names its key; serde's
            // message quotes the value, so a secret's is left out.
            let mut alone = toml::Table::new();
            set(&mut alone, path, value.clone());
            alone.try_into::<Settings>().map_err(|e| match kind {
                Secret => invalid(key, "is not a valid value"),
                _ => invalid(key, e.message()),
            })?;
            set(&mut tree, path, value);
        }
        // The file and every value were checked above, so this can only fail on a bug here.
        let mut s: Settings = tree.try_into().map_err(|e| ConfigError::Parse {
            path: file.map_or_else(|| "(none)".into(), |p| p.display().to_string()),
            message: e.message().to_owned(),
        })?;
        // An empty metrics address means no listener of its own, as an unset one does.
        s.metrics.bind = s.metrics.bind.filter(|b| !b.is_empty());
        Ok(s)
    }
}

/// The file as a tree; checked as settings first, so a wrong value is reported at its line.
fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
        path: shown.clone(),
        source,
    })?;
    let parse = |message: String| ConfigError::Parse {
        path: shown.clone(),
        message,
    };
    toml::from_str::<Settings>(&text).map_err(|e| parse(e.to_string()))?;
    toml::from_str(&text).map_err(|e| parse(e.to_string()))
}

impl Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.bind.parse::<std::net::SocketAddr>().is_err() && !self.bind.contains(':') {
            return Err(invalid(
                "CLINICFLOW_BIND",
                format!("`{}` is not host:port", self.bind),
            ));
        }
        let url = self.database_url.expose_secret();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "DATABASE_URL",
                "must start with sqlite: or postgres://",
            ));
        }
        if self.db.max_connections == 0 || self.db.min_connections > self.db.max_connections {
            return Err(invalid(
                "CLINICFLOW_DB_MAX_CONNECTIONS",
                "must be at least 1 and at least CLINICFLOW_DB_MIN_CONNECTIONS",
            ));
        }
        if self.db.acquire_timeout_secs == 0 {
            return Err(invalid(
                "CLINICFLOW_DB_ACQUIRE_TIMEOUT_SECS",
                "must be at least 1",
            ));
        }
        for (key, value) in [
            (
                "CLINICFLOW_DB_STATEMENT_TIMEOUT_MS",
                self.db.statement_timeout_ms,
            ),
            ("CLINICFLOW_DB_LOCK_TIMEOUT_MS", self.db.lock_timeout_ms),
            (
                "CLINICFLOW_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                self.db.idle_in_transaction_timeout_ms,
            ),
            (
                "CLINICFLOW_DB_SQLITE_BUSY_TIMEOUT_MS",
                self.db.sqlite_busy_timeout_ms,
            ),
        ] {
            // PostgreSQL takes at most i32::MAX milliseconds and would refuse every connection.
            if value > MAX_DB_BOUND_MS {
                return Err(invalid(
                    key,
                    format!("must be at most {MAX_DB_BOUND_MS} (one day)"),
                ));
            }
        }
        if !(60..=86_400).contains(&self.auth.access_token_ttl_secs) {
            return Err(invalid(
                "CLINICFLOW_AUTH_ACCESS_TOKEN_TTL_SECS",
                "must be between 60 and 86400",
            ));
        }
        for (key, value) in [
            (
                "CLINICFLOW_AUTH_LOGIN_PER_IP_PER_MINUTE",
                self.auth.login_per_ip_per_minute,
            ),
            (
                "CLINICFLOW_AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE",
                self.auth.login_per_account_per_minute,
            ),
            (
                "CLINICFLOW_AUTH_LOCKOUT_FAILURES",
                self.auth.lockout_failures,
            ),
            ("CLINICFLOW_AUTH_LOCKOUT_SECS", self.auth.lockout_secs),
            (
                "CLINICFLOW_HTTP_PER_USER_PER_HOUR",
                self.http.per_user_per_hour,
            ),
            ("CLINICFLOW_HTTP_PER_IP_PER_HOUR", self.http.per_ip_per_hour),
            (
                "CLINICFLOW_HTTP_MAX_STREAMS_PER_USER",
                self.http.max_streams_per_user,
            ),
            ("CLINICFLOW_OUTBOX_CLAIM_LIMIT", self.outbox.claim_limit),
            ("CLINICFLOW_OUTBOX_MAX_ATTEMPTS", self.outbox.max_attempts),
            ("CLINICFLOW_SWEEPER_BATCH", self.sweeper.batch),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.auth.refresh_token_ttl_secs < 60 {
            return Err(invalid(
                "CLINICFLOW_AUTH_REFRESH_TOKEN_TTL_SECS",
                "must be at least 60",
            ));
        }
        // A retry may come a day later (a client offline overnight); a week bounds the table.
        if !(60..=7 * 24 * 60 * 60).contains(&self.http.idempotency_ttl_secs) {
            return Err(invalid(
                "CLINICFLOW_HTTP_IDEMPOTENCY_TTL_SECS",
                "must be between 60 and 604800 (a week)",
            ));
        }
        if !(1..=300).contains(&self.http.stream_heartbeat_secs) {
            return Err(invalid(
                "CLINICFLOW_HTTP_STREAM_HEARTBEAT_SECS",
                "must be between 1 and 300",
            ));
        }
        if self.outbox.batch_size == 0
            || self.outbox.poll_interval_ms == 0
            || self.outbox.retry_base_secs == 0
        {
            return Err(invalid(
                "CLINICFLOW_OUTBOX_BATCH_SIZE",
                "batch size, poll interval and retry base must be at least 1",
            ));
        }
        if !(1..=300).contains(&self.outbox.webhook_timeout_secs)
            || !(1..=self.outbox.webhook_timeout_secs)
                .contains(&self.outbox.webhook_connect_timeout_secs)
        {
            return Err(invalid(
                "CLINICFLOW_OUTBOX_WEBHOOK_TIMEOUT_SECS",
                "must be 1 to 300 seconds, and the connect timeout 1 second up to it",
            ));
        }
        // A round's requests run at once, so one timeout bounds a round; the lease must
        // outlast it with room to record, or a slow receiver is sent a message twice.
        if self.outbox.lease_secs < 2 * self.outbox.webhook_timeout_secs {
            return Err(invalid(
                "CLINICFLOW_OUTBOX_LEASE_SECS",
                "must be at least twice CLINICFLOW_OUTBOX_WEBHOOK_TIMEOUT_SECS",
            ));
        }
        if self.outbox.retry_cap_secs < self.outbox.retry_base_secs {
            return Err(invalid(
                "CLINICFLOW_OUTBOX_RETRY_CAP_SECS",
                "must not be below CLINICFLOW_OUTBOX_RETRY_BASE_SECS",
            ));
        }
        if self.http.max_body_bytes < 1024 {
            return Err(invalid(
                "CLINICFLOW_HTTP_MAX_BODY_BYTES",
                "must be at least 1024",
            ));
        }
        if self.http.max_json_depth == 0 {
            return Err(invalid(
                "CLINICFLOW_HTTP_MAX_JSON_DEPTH",
                "must be at least 1",
            ));
        }
        if self.http.max_json_string_chars == 0 {
            return Err(invalid(
                "CLINICFLOW_HTTP_MAX_JSON_STRING_CHARS",
                "must be at least 1",
            ));
        }
        if let Some(bad) = self
            .http
            .cors_origins
            .iter()
            .find(|o| !(o.starts_with("https://") || o.starts_with("http://")))
        {
            return Err(invalid(
                "CLINICFLOW_HTTP_CORS_ORIGINS",
                format!("`{bad}` is not an origin such as https://app.example"),
            ));
        }
        if self.http.workers == Some(0) {
            return Err(invalid("CLINICFLOW_HTTP_WORKERS", "must be at least 1"));
        }
        match (&self.jwt_secret, self.profile) {
            (Some(secret), _) if secret.expose_secret().len() < MIN_SECRET_BYTES => Err(invalid(
                "CLINICFLOW_JWT_SECRET",
                format!("must be at least {MIN_SECRET_BYTES} bytes"),
            )),
            (None, Profile::Production) => Err(invalid(
                "CLINICFLOW_JWT_SECRET",
                "must be set in the production profile",
            )),
            _ => Ok(()),
        }
    }

    /// The log format in effect.
    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(match self.profile {
            Profile::Development => LogFormat::Pretty,
            Profile::Production => LogFormat::Json,
        })
    }

    /// The pool options for the store.
    pub fn pool(&self) -> clinicflow_store::PoolOptions {
        clinicflow_store::PoolOptions {
            max_connections: self.db.max_connections,
            min_connections: self.db.min_connections,
            acquire_timeout: Duration::from_secs(self.db.acquire_timeout_secs),
            idle_timeout: Duration::from_secs(self.db.idle_timeout_secs),
            max_lifetime: Duration::from_secs(self.db.max_lifetime_secs),
            test_idle_after: Duration::from_secs(self.db.test_idle_after_secs),
            slow_statement: (self.db.slow_query_ms > 0)
                .then(|| Duration::from_millis(self.db.slow_query_ms)),
            bounds: clinicflow_store::DatabaseBounds {
                statement_timeout: Duration::from_millis(self.db.statement_timeout_ms),
                lock_timeout: Duration::from_millis(self.db.lock_timeout_ms),
                idle_in_transaction_timeout: Duration::from_millis(
                    self.db.idle_in_transaction_timeout_ms,
                ),
                sqlite_busy_timeout: Duration::from_millis(self.db.sqlite_busy_timeout_ms),
            },
        }
    }
}

// --- Security settings: webhook targets, `/metrics` access, trusted reverse proxies. ---

/// Where webhooks may point (`[webhook]`, `CLINICFLOW_WEBHOOK_*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Hosts, IP addresses or CIDR networks webhooks may reach although they are internal
    /// (loopback, private, link-local …), comma-separated; none by default.
    pub allowed_hosts: Vec<String>,
}

/// Who may read `/metrics` (`[metrics]`, `CLINICFLOW_METRICS_*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// host:port of a listener serving `/metrics` alone; the main one then does not serve it.
    pub bind: Option<String>,
    /// A bearer token every scrape must send (`Authorization: Bearer …`).
    pub token: Option<SecretString>,
}

impl Settings {
    fn validate_security(&self) -> Result<(), ConfigError> {
        clinicflow_domain::WebhookPolicy::new(false, &self.webhook.allowed_hosts)
            .map_err(|e| invalid("CLINICFLOW_WEBHOOK_ALLOWED_HOSTS", e.0))?;
        self.trusted_proxies()?;
        if let Some(bind) = &self.metrics.bind
            && bind.parse::<std::net::SocketAddr>().is_err()
            && !bind.contains(':')
        {
            return Err(invalid(
                "CLINICFLOW_METRICS_BIND",
                format!("`{bind}` is not host:port"),
            ));
        }
        if let Some(token) = &self.metrics.token
            && token.expose_secret().len() < MIN_SECRET_BYTES
        {
            return Err(invalid(
                "CLINICFLOW_METRICS_TOKEN",
                format!("must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        // In production the metrics (request rates, pool and outbox state) are not for the
        // public: they need a listener of their own or a token.
        if self.profile == Profile::Production
            && self.metrics.bind.is_none()
            && self.metrics.token.is_none()
        {
            return Err(invalid(
                "CLINICFLOW_METRICS_BIND",
                "the production profile needs CLINICFLOW_METRICS_BIND (a listener for /metrics \
                 alone) or CLINICFLOW_METRICS_TOKEN (a bearer token for scrapes), or both",
            ));
        }
        Ok(())
    }

    /// Where webhooks may point: https only in production, public addresses unless allowed.
    pub fn webhook_policy(&self) -> clinicflow_domain::WebhookPolicy {
        clinicflow_domain::WebhookPolicy::new(
            self.profile == Profile::Production,
            &self.webhook.allowed_hosts,
        )
        .unwrap_or_default()
    }

    /// The reverse proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> Result<Vec<clinicflow_domain::IpNetwork>, ConfigError> {
        self.http
            .trusted_proxies
            .iter()
            .map(|p| {
                clinicflow_domain::IpNetwork::parse(p)
                    .map_err(|e| invalid("CLINICFLOW_HTTP_TRUSTED_PROXIES", e.0))
            })
            .collect()
    }
}

// --- End of the security settings. ---

impl Settings {
    /// The login limits and token lifetimes for the services.
    pub fn auth_policy(&self) -> clinicflow_services::AuthPolicy {
        clinicflow_services::AuthPolicy {
            lockout: clinicflow_domain::LockoutPolicy {
                max_failures: self.auth.lockout_failures,
                lock_for: chrono::Duration::seconds(i64::from(self.auth.lockout_secs)),
            },
            login_per_ip_per_minute: self.auth.login_per_ip_per_minute,
            login_per_account_per_minute: self.auth.login_per_account_per_minute,
            refresh_ttl: chrono::Duration::seconds(
                i64::try_from(self.auth.refresh_token_ttl_secs).unwrap_or(i64::MAX / 2),
            ),
        }
    }

    /// How the no-show sweeper works; `None` when it is turned off.
    pub fn sweep(&self) -> Option<crate::sweeper::SweepSettings> {
        (self.sweeper.interval_secs > 0).then(|| crate::sweeper::SweepSettings {
            interval: Duration::from_secs(self.sweeper.interval_secs),
            batch: self.sweeper.batch,
            announce_within: chrono::Duration::hours(i64::from(self.sweeper.announce_within_hours)),
        })
    }

    /// How often the warmer refreshes dashboards; `None` when it is turned off.
    pub fn dashboard_refresh(&self) -> Option<Duration> {
        (self.cache.dashboard_refresh_secs > 0)
            .then(|| Duration::from_secs(self.cache.dashboard_refresh_secs))
    }

    /// How long webhook receivers get.
    pub fn webhook_timeouts(&self) -> crate::webhook::WebhookTimeouts {
        crate::webhook::WebhookTimeouts {
            connect: Duration::from_secs(self.outbox.webhook_connect_timeout_secs),
            request: Duration::from_secs(self.outbox.webhook_timeout_secs),
        }
    }

    /// How the outbox dispatcher works.
    pub fn dispatch(&self) -> crate::dispatcher::DispatchSettings {
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        crate::dispatcher::DispatchSettings {
            poll_interval: Duration::from_millis(self.outbox.poll_interval_ms),
            claim_limit: self.outbox.claim_limit,
            batch_size: self.outbox.batch_size,
            lease: secs(self.outbox.lease_secs),
            retry: clinicflow_domain::RetryPolicy {
                base: secs(self.outbox.retry_base_secs),
                cap: secs(self.outbox.retry_cap_secs),
                max_attempts: self.outbox.max_attempts,
            },
        }
    }

    /// The request limits for the API.
    pub fn api_limits(&self) -> clinicflow_api::ApiLimits {
        clinicflow_api::ApiLimits {
            max_body_bytes: self.http.max_body_bytes,
            max_json_depth: self.http.max_json_depth,
            max_json_string_chars: self.http.max_json_string_chars,
            per_user_per_hour: self.http.per_user_per_hour,
            per_ip_per_hour: self.http.per_ip_per_hour,
            stream_heartbeat_secs: self.http.stream_heartbeat_secs,
            slow_request_ms: self.http.slow_request_ms,
            compress_min_bytes: self.http.compress_min_bytes,
            idempotency_ttl_secs: self.http.idempotency_ttl_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_run_embedded_on_loopback() {
        let s = Settings::load_from(None, &env_of(&[])).expect("defaults are valid");
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert!(s.database_url.expose_secret().starts_with("sqlite:"));
        assert_eq!(s.log_format(), LogFormat::Pretty);
    }

    #[test]
    fn the_environment_overrides_and_bad_values_name_their_key() {
        let s = Settings::load_from(
            None,
            &env_of(&[
                ("CLINICFLOW_DB_MAX_CONNECTIONS", "20"),
                ("CLINICFLOW_BIND", "0.0.0.0:9000"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            (s.db.max_connections, s.bind.as_str()),
            (20, "0.0.0.0:9000")
        );
        let err = Settings::load_from(None, &env_of(&[("CLINICFLOW_DB_MAX_CONNECTIONS", "many")]))
            .expect_err("invalid");
        assert!(
            err.to_string().contains("CLINICFLOW_DB_MAX_CONNECTIONS"),
            "{err}"
        );
    }

    #[test]
    fn the_idempotency_window_defaults_to_a_day_and_is_bounded() {
        let s = Settings::load_from(None, &env_of(&[])).expect("valid");
        assert_eq!(s.api_limits().idempotency_ttl_secs, 86_400);
        let s = Settings::load_from(
            None,
            &env_of(&[("CLINICFLOW_HTTP_IDEMPOTENCY_TTL_SECS", "3600")]),
        )
        .expect("valid");
        assert_eq!(s.api_limits().idempotency_ttl_secs, 3600);
        let cases: [&'static [(&str, &str)]; 3] = [
            &[("CLINICFLOW_HTTP_IDEMPOTENCY_TTL_SECS", "59")],
            &[("CLINICFLOW_HTTP_IDEMPOTENCY_TTL_SECS", "604801")],
            &[("CLINICFLOW_HTTP_IDEMPOTENCY_TTL_SECS", "soon")],
        ];
        for env in cases {
            let bad = env[0].1;
            let err = Settings::load_from(None, &env_of(env)).expect_err("out of range");
            assert!(
                err.to_string()
                    .contains("CLINICFLOW_HTTP_IDEMPOTENCY_TTL_SECS"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_database_bounds_default_safe_and_are_configurable() {
        let s = Settings::load_from(None, &env_of(&[])).expect("valid");
        assert_eq!(
            s.pool().bounds,
            clinicflow_store::DatabaseBounds {
                statement_timeout: Duration::from_secs(5),
                lock_timeout: Duration::from_secs(2),
                idle_in_transaction_timeout: Duration::from_secs(10),
                sqlite_busy_timeout: Duration::from_secs(5),
            }
        );
        let s = Settings::load_from(
            None,
            &env_of(&[
                ("CLINICFLOW_DB_STATEMENT_TIMEOUT_MS", "800"),
                ("CLINICFLOW_DB_LOCK_TIMEOUT_MS", "0"),
                ("CLINICFLOW_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "30000"),
                ("CLINICFLOW_DB_SQLITE_BUSY_TIMEOUT_MS", "250"),
            ]),
        )
        .expect("valid");
        let bounds = s.pool().bounds;
        assert_eq!(bounds.statement_timeout, Duration::from_millis(800));
        assert_eq!(bounds.lock_timeout, Duration::ZERO);
        assert_eq!(bounds.idle_in_transaction_timeout, Duration::from_secs(30));
        assert_eq!(bounds.sqlite_busy_timeout, Duration::from_millis(250));
        for key in [
            "CLINICFLOW_DB_STATEMENT_TIMEOUT_MS",
            "CLINICFLOW_DB_LOCK_TIMEOUT_MS",
            "CLINICFLOW_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
            "CLINICFLOW_DB_SQLITE_BUSY_TIMEOUT_MS",
        ] {
            for bad in ["86400001", "-1", "soon"] {
                let env = |k: &str| (k == key).then(|| bad.to_owned());
                let err = Settings::load_from(None, &env).expect_err("out of range");
                assert!(err.to_string().contains(key), "{key}={bad}: {err}");
            }
        }
    }

    #[test]
    fn production_refuses_a_missing_or_short_secret() {
        let err = Settings::load_from(None, &env_of(&[("CLINICFLOW_PROFILE", "production")]))
            .expect_err("no secret");
        assert!(err.to_string().contains("CLINICFLOW_JWT_SECRET"));
        let err = Settings::load_from(
            None,
            &env_of(&[
                ("CLINICFLOW_PROFILE", "production"),
                ("CLINICFLOW_JWT_SECRET", "short"),
            ]),
        )
        .expect_err("short secret");
        assert!(err.to_string().contains("at least 32 bytes"));
    }

    #[test]
    fn production_needs_a_metrics_listener_or_token() {
        const SECRET: &str = "a jwt secret that is long enough for hs256";
        let err = Settings::load_from(
            None,
            &env_of(&[
                ("CLINICFLOW_PROFILE", "production"),
                ("CLINICFLOW_JWT_SECRET", SECRET),
            ]),
        )
        .expect_err("no way to protect /metrics");
        assert!(err.to_string().contains("CLINICFLOW_METRICS_BIND"), "{err}");
        let s = Settings::load_from(
            None,
            &env_of(&[
                ("CLINICFLOW_PROFILE", "production"),
                ("CLINICFLOW_JWT_SECRET", SECRET),
                ("CLINICFLOW_METRICS_BIND", "127.0.0.1:9464"),
            ]),
        )
        .expect("a listener of its own");
        assert_eq!(s.metrics.bind.as_deref(), Some("127.0.0.1:9464"));
        let err = Settings::load_from(None, &env_of(&[("CLINICFLOW_METRICS_TOKEN", "short")]))
            .expect_err("a short token");
        assert!(
            err.to_string().contains("CLINICFLOW_METRICS_TOKEN"),
            "{err}"
        );
        // Development serves /metrics on the main listener without either.
        let s = Settings::load_from(None, &env_of(&[])).expect("valid");
        assert!(s.metrics.bind.is_none() && s.metrics.token.is_none());
    }

    #[test]
    fn webhook_allow_lists_and_trusted_proxies_are_parsed_and_checked() {
        let s = Settings::load_from(
            None,
            &env_of(&[
                (
                    "CLINICFLOW_WEBHOOK_ALLOWED_HOSTS",
                    "127.0.0.1, 10.0.0.0/8,relay.internal",
                ),
                ("CLINICFLOW_HTTP_TRUSTED_PROXIES", "10.1.0.0/16, ::1"),
            ]),
        )
        .expect("valid");
        let policy = s.webhook_policy();
        assert!(
            !policy.require_https,
            "plain http is allowed in development"
        );
        assert_eq!(policy.allowed_hosts, ["relay.internal"]);
        assert_eq!(policy.allowed_networks.len(), 2);
        assert_eq!(s.trusted_proxies().expect("valid").len(), 2);
        for (key, bad) in [
            ("CLINICFLOW_WEBHOOK_ALLOWED_HOSTS", "10.0.0.0/99"),
            ("CLINICFLOW_HTTP_TRUSTED_PROXIES", "proxy.internal"),
        ] {
            let err = Settings::load_from(None, &|k: &str| (k == key).then(|| bad.to_owned()))
                .expect_err("invalid");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    /// Keys docs/operations.md names that the server does not read: `cargo xtask test` and the
    /// test suites read them.
    const READ_BY_THE_TESTS: &[&str] = &[
        "CLINICFLOW_REQUIRE_SERVICES",
        "CLINICFLOW_TEST_PG_URL",
        "CLINICFLOW_TEST_REDIS_URL",
    ];

    const OPERATIONS: &str = include_str!("../../../docs/operations.md");

    /// `db.max_connections` as the file writes it: `[db] max_connections`.
    fn file_key(path: &str) -> String {
        match path.split_once('.') {
            Some((section, key)) => format!("[{section}] {key}"),
            None => path.to_owned(),
        }
    }

    #[test]
    fn every_environment_key_is_documented_with_its_file_key_and_nothing_more() {
        let (_, section) = OPERATIONS
            .split_once("\n## Configuration\n")
            .expect("docs/operations.md has a Configuration section");
        let documented: BTreeSet<(String, String)> = section
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| {
                let mut cells = line.split('|').skip(1).map(str::trim);
                let mut code = || {
                    let cell = cells.next()?;
                    Some(cell.strip_prefix('`')?.strip_suffix('`')?.to_owned())
                };
                Some((code()?, code()?))
            })
            .collect();
        let table: BTreeSet<(String, String)> = ENV_KEYS
            .iter()
            .map(|&(key, path, _)| (key.to_owned(), file_key(path)))
            .collect();
        assert_eq!(
            documented.len(),
            ENV_KEYS.len(),
            "a row is documented twice"
        );
        let undocumented: Vec<_> = table.difference(&documented).collect();
        let unread: Vec<_> = documented.difference(&table).collect();
        assert!(
            undocumented.is_empty() && unread.is_empty(),
            "read but not documented so: {undocumented:?}; documented but not read so: {unread:?}"
        );
    }

    #[test]
    fn every_clinicflow_key_the_operations_page_names_is_read() {
        for (at, _) in OPERATIONS.match_indices("CLINICFLOW_") {
            let rest = &OPERATIONS[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            let known = if rest[end..].starts_with('*') {
                ENV_KEYS.iter().any(|(key, _, _)| key.starts_with(name))
            } else {
                ENV_KEYS.iter().any(|(key, _, _)| *key == name) || READ_BY_THE_TESTS.contains(&name)
            };
            assert!(
                known,
                "docs/operations.md names `{name}`, which nothing reads"
            );
        }
    }

    #[test]
    fn every_row_sets_a_field_of_its_type() {
        let defaults = format!("{:?}", Settings::default());
        for &(key, path, kind) in ENV_KEYS {
            let named = format!("CLINICFLOW_{}", path.replace('.', "_").to_uppercase());
            assert!(
                key == named || ["DATABASE_URL", "REDIS_URL"].contains(&key),
                "{key} breaks the CLINICFLOW_<SECTION>_<KEY> rule for {path}"
            );
            let value = match (kind, path) {
                (Int, _) => "7",
                (List, _) => "10.0.0.7, relay.internal",
                (Secret, _) => "postgres://a secret of the row",
                (Text, "profile") => "production",
                (Text, "log_format") => "json",
                (Text, _) => "127.0.0.7:7",
            };
            let env = |k: &str| (k == key).then(|| value.to_owned());
            // Unvalidated: no one number suits every field's rules, but any fits its type.
            let s = Settings::read(None, &env).unwrap_or_else(|e| panic!("{key} -> {path}: {e}"));
            // Debug hides secrets, so the one secret that is not optional is looked at directly.
            let changed = format!("{s:?}") != defaults || s.database_url.expose_secret() == value;
            assert!(changed, "{key} changed no setting");
        }
    }

    #[test]
    fn values_of_the_wrong_type_name_their_key_and_secrets_stay_hidden() {
        for (key, bad) in [
            ("CLINICFLOW_DB_MAX_CONNECTIONS", "5000000000"),
            ("CLINICFLOW_HTTP_WORKERS", "-2"),
            ("CLINICFLOW_PROFILE", "prod"),
            ("CLINICFLOW_LOG_FORMAT", "xml"),
        ] {
            let err = Settings::load_from(None, &|k: &str| (k == key).then(|| bad.to_owned()))
                .expect_err("wrong type");
            assert!(err.to_string().contains(key), "{key}={bad}: {err}");
        }
        const SECRET: &str = " a jwt secret that is long enough for hs256 ";
        let s = Settings::load_from(
            None,
            &env_of(&[
                ("CLINICFLOW_JWT_SECRET", SECRET),
                ("CLINICFLOW_METRICS_TOKEN", SECRET),
                ("REDIS_URL", SECRET),
            ]),
        )
        .expect("valid");
        let jwt = s.jwt_secret.as_ref().expect("set");
        assert_eq!(
            jwt.expose_secret(),
            SECRET,
            "a secret is taken byte for byte"
        );
        assert!(!format!("{s:?}").contains(SECRET.trim()), "{s:?}");
    }

    #[test]
    fn the_environment_overrides_the_file_key_by_key() {
        let dir = std::env::temp_dir().join(format!("clinicflow-config-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("clinicflow.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9999\"\n[db]\nmax_connections = 3\nmin_connections = 2\n",
        )
        .expect("write");
        let s = Settings::load_from(
            Some(&file),
            &env_of(&[
                ("CLINICFLOW_DB_MAX_CONNECTIONS", " 4 "),
                (
                    "CLINICFLOW_HTTP_CORS_ORIGINS",
                    "https://a.example, ,https://b.example",
                ),
                ("CLINICFLOW_METRICS_BIND", " "),
            ]),
        )
        .expect("valid");
        assert_eq!(
            (s.bind.as_str(), s.db.max_connections, s.db.min_connections),
            ("127.0.0.1:9999", 4, 2)
        );
        assert_eq!(
            s.http.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(s.metrics.bind, None, "an empty address is no address");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_config_file_is_read_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("clinicflow-config-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "bind = \"127.0.0.1:9999\"\n[db]\nmax_connections = 3\n",
        )
        .expect("write");
        let s = Settings::load_from(Some(&good), &env_of(&[])).expect("valid file");
        assert_eq!(
            (s.bind.as_str(), s.db.max_connections),
            ("127.0.0.1:9999", 3)
        );
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[db]\nmax_conections = 3\n").expect("write");
        let err = Settings::load_from(Some(&bad), &env_of(&[])).expect_err("typo");
        assert!(err.to_string().contains("max_conections"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
