//! clinicflow's storage adapter: the SeaORM entities and the implementations of every
//! repository port of `clinicflow-ports`, on SQLite (the embedded default) and PostgreSQL.
//! Besides `clinicflow-migration`, this is the only crate that knows SeaORM or sqlx; no
//! SeaORM type leaves it. It depends on `domain` and `ports` and must never depend on
//! `services`, `api` or `server`.
//!
//! One [`Store`] implements [`Database`] and every repository trait, so the server can hand
//! one `Arc<Store>` out as each `Arc<dyn …Repo>`. Every query is scoped by `clinic_id`, and
//! rows read back are parsed into domain types again (a row that no longer parses is
//! [`RepoError::Other`]).
//!
//! # Booking conflicts
//! PostgreSQL enforces "no two active appointments of one practitioner or patient overlap"
//! with exclusion constraints, whose violations `error.rs` maps to [`RepoError::Overlap`].
//! SQLite has no such constraint, so there every [`TxMode::Write`] unit of work runs inside
//! the group commit's `BEGIN IMMEDIATE` transaction (`group.rs`): the write lock is taken up
//! front, units take turns one at a time (each in its own savepoint, waiting at most
//! `busy_timeout` for its turn), and the services' overlap check and insert run with no
//! other writer in between. A deferred `BEGIN` would not do: two
//! transactions could both read "free", and the second would then fail to upgrade its read
//! lock with `SQLITE_BUSY` (the contract suite's concurrency test fails that way).
//!
//! # The audit log and refresh tokens
//! `audit_events` is append-only in the database itself: triggers on both backends (see
//! `clinicflow-migration`) refuse every update and delete, and the store only inserts.
//! Rotating a refresh token is a compare-and-set on `rotated_at IS NULL AND revoked_at IS
//! NULL`, so of two refreshes racing with one token exactly one wins (`token.rs`).
//!
//! # The queue
//! Queue entries are read in serve order (deadline, category rank, arrival, id), an index
//! scan because each deadline is stored when the entry joins. Calling the next patient locks
//! the first waiting entry with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent callers
//! each get a different patient; on SQLite the `BEGIN IMMEDIATE` write transaction does the
//! same by keeping other writers out (`queue.rs`). A partial unique index keeps one
//! appointment to at most one open entry; its violation is `Duplicate("appointment_id")`.
//!
//! # The outbox
//! Messages are enqueued in the caller's transaction. Dispatchers claim due pending ones the
//! way the queue's next patient is taken: `FOR UPDATE SKIP LOCKED` on PostgreSQL, the
//! `BEGIN IMMEDIATE` write transaction on SQLite, so each message goes to one dispatcher at
//! a time (`outbox.rs`). A partial index on pending rows keeps that scan short.
//!
//! # Instants
//! Every instant is written truncated to whole microseconds (PostgreSQL's precision), so it
//! reads back equal on both databases; on SQLite it is RFC 3339 text that sorts in time
//! order (see `entity.rs`).

mod appointment;
mod audit;
mod clinic;
mod encounter;
mod entity;
mod error;
mod group;
mod idempotency;
mod outbox;
mod page;
mod patient;
mod practitioner;
mod query;
mod queue;
mod schedule;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;
mod token;
mod transaction;
mod user;
mod version;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use clinicflow_migration::{Migrator, MigratorTrait};
use clinicflow_ports::{Database, RepoError, Tx, TxMode};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

pub use error::StoreError;

use crate::error::repo_error;
use crate::transaction::StoreTx;

/// Key of the PostgreSQL advisory lock that keeps concurrent starts from migrating at once.
const MIGRATION_LOCK_KEY: i64 = 0x636c_696e_6963_666c; // "clinicfl"

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Connection pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a caller waits for a free connection before the store reports itself unavailable.
    pub acquire_timeout: Duration,
    /// How long an unused connection stays open.
    pub idle_timeout: Duration,
    /// How long any connection is kept before it is replaced.
    pub max_lifetime: Duration,
    /// A connection idle at least this long is tested with a round trip before it is handed
    /// out; one in steady use is not.
    pub test_idle_after: Duration,
    /// Statements slower than this are logged as warnings (their SQL, never their values).
    pub slow_statement: Option<Duration>,
    /// Bounds on the database's side that keep one stuck request from holding others up.
    pub bounds: DatabaseBounds,
}

/// How long the database lets a statement run or wait, set on every pooled connection. A
/// statement cut short is [`RepoError::Timeout`]. Zero turns a PostgreSQL bound off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseBounds {
    /// PostgreSQL `statement_timeout`: the longest any statement runs.
    pub statement_timeout: Duration,
    /// PostgreSQL `lock_timeout`: the longest a statement waits for a lock (a row, an
    /// advisory lock, another request's uncommitted idempotency key).
    pub lock_timeout: Duration,
    /// PostgreSQL `idle_in_transaction_session_timeout`: a connection whose transaction sits
    /// idle this long is closed by the server, releasing its locks.
    pub idle_in_transaction_timeout: Duration,
    /// SQLite `busy_timeout`: the longest a writer waits for the database's write lock.
    pub sqlite_busy_timeout: Duration,
}

impl Default for DatabaseBounds {
    fn default() -> Self {
        Self {
            statement_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(2),
            idle_in_transaction_timeout: Duration::from_secs(10),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10 * 60),
            max_lifetime: Duration::from_secs(30 * 60),
            test_idle_after: Duration::from_secs(5),
            slow_statement: None,
            bounds: DatabaseBounds::default(),
        }
    }
}

/// A moment's view of the connection pool, for the pool metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open, in use or idle.
    pub open: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// Callers waiting for a connection (or for their transaction to begin).
    pub waiting: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// The database: opens transactions and implements every repository port.
#[derive(Debug, Clone)]
pub struct Store {
    conn: DatabaseConnection,
    backend: Backend,
    max_connections: u32,
    waiting: Arc<AtomicU32>,
    audit_writer: Arc<audit::AuditWriter>,
    /// SQLite's group commit of write units of work; `None` on PostgreSQL.
    group: Option<Arc<group::GroupCommit>>,
    /// Set once pooled connections may have stopped working all at once; every connection is
    /// then tested before it is handed out.
    distrusted: Arc<AtomicBool>,
}

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`); SQLite runs in WAL
    /// mode with foreign keys on. Every connection gets `pool.bounds`.
    pub async fn connect(url: &str, pool: &PoolOptions) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let distrusted = Arc::new(AtomicBool::new(false));
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(pool.max_connections)
            .min_connections(pool.min_connections)
            .acquire_timeout(pool.acquire_timeout)
            .idle_timeout(pool.idle_timeout)
            .max_lifetime(pool.max_lifetime)
            // sqlx tests every connection with a round trip before it hands it out, and again
            // when it takes it back. The test on release stays (it is what finds a broken
            // connection); the one on acquire is spent only on a connection that sat idle long
            // enough to have been cut off, so a busy pool pays no extra round trip per statement.
            .test_before_acquire_if_idle_for(pool.test_idle_after)
            // Statement logs would carry search terms; the server logs requests instead.
            .sqlx_logging(false);
        if let Some(threshold) = pool.slow_statement {
            // Only the slow ones, and sqlx logs their SQL with placeholders, not the values.
            options
                .sqlx_logging(true)
                .sqlx_logging_level(log::LevelFilter::Off)
                .sqlx_slow_statements_logging_settings(log::LevelFilter::Warn, threshold);
        }
        if backend == Backend::Sqlite {
            if url.contains(":memory:") || url.contains("mode=memory") {
                // Every connection to an in-memory database opens a database of its own,
                // which vanishes when the connection closes: keep exactly one, forever.
                options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
            let busy_timeout = pool.bounds.sqlite_busy_timeout;
            options.map_sqlx_sqlite_opts(move |o| {
                // FULL syncs the WAL at every commit: with NORMAL, a commit already answered
                // 201 could vanish in a power cut or OS crash (a process crash loses nothing
                // either way), and an acknowledged booking must never be lost.
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(busy_timeout)
            });
        } else {
            let distrusted = Arc::clone(&distrusted);
            options.map_sqlx_postgres_before_acquire(move |_, _| {
                let distrusted = distrusted.load(Ordering::Relaxed);
                Box::pin(async move {
                    // Once shutdown begins, no pooled connection is handed out: each is closed
                    // and the pool opens a new one on the runtime of the task that asks, which
                    // lives as long as that task's request. A round-trip test would not do: a
                    // connection can pass it while the worker that opened it is stopping and
                    // fail the statement right after (seen under a loaded test run).
                    Ok(!distrusted)
                })
            });
            let bounds = pool.bounds;
            // Startup parameters: set when each connection opens, with no extra round trip,
            // and in force for every statement it ever runs.
            options.map_sqlx_postgres_opts(move |o| {
                o.options([
                    ("statement_timeout", bounds.statement_timeout.as_millis()),
                    ("lock_timeout", bounds.lock_timeout.as_millis()),
                    (
                        "idle_in_transaction_session_timeout",
                        bounds.idle_in_transaction_timeout.as_millis(),
                    ),
                ])
            });
        }
        let conn = sea_orm::Database::connect(options)
            .await
            .map_err(|e| StoreError::Connect(Box::new(e)))?;
        let group = (backend == Backend::Sqlite)
            .then(|| group::GroupCommit::new(conn.clone(), pool.bounds.sqlite_busy_timeout));
        Ok(Store {
            audit_writer: Arc::new(audit::AuditWriter::new(conn.clone(), group.clone())),
            group,
            conn,
            backend,
            max_connections: pool.max_connections,
            waiting: Arc::default(),
            distrusted,
        })
    }

    /// Applies every pending migration of `clinicflow-migration`, atomically.
    ///
    /// Concurrent callers are serialized (an advisory lock on PostgreSQL, the write lock on
    /// SQLite), so several instances may start against one database at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrate_error = |e: sea_orm::DbErr| StoreError::Migrate(Box::new(e));
        let txn = self
            .conn
            .begin_with_options(self.transaction_options(TxMode::Write))
            .await
            .map_err(migrate_error)?;
        if self.backend == Backend::Postgres {
            // The request bounds are not for migrations: another instance may hold the lock
            // while it migrates, and building an index may take longer than any request.
            for bound in [
                "statement_timeout",
                "lock_timeout",
                "idle_in_transaction_session_timeout",
            ] {
                txn.execute_unprepared(&format!("SET LOCAL {bound} = 0"))
                    .await
                    .map_err(migrate_error)?;
            }
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .await
            .map_err(migrate_error)?;
        }
        Migrator::up(&txn, None).await.map_err(migrate_error)?;
        txn.commit().await.map_err(migrate_error)
    }

    /// Whether this store's connection to PostgreSQL is encrypted (TLS, as `sslmode` in the
    /// URL asks); always false for SQLite.
    pub async fn uses_tls(&self) -> Result<bool, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(false);
        }
        let failed = |e: sea_orm::DbErr| StoreError::Connect(Box::new(e));
        let row = sea_orm::ConnectionTrait::query_one_raw(
            &self.conn,
            sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            ),
        )
        .await
        .map_err(failed)?;
        match row {
            Some(row) => row.try_get::<bool>("", "ssl").map_err(failed),
            None => Ok(false),
        }
    }

    /// The database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// From now on, hands out no pooled PostgreSQL connection: each acquire opens a new one.
    ///
    /// A PostgreSQL connection works only while the runtime it was opened on runs. The server
    /// calls this as its graceful shutdown begins: the HTTP workers' runtimes stop one by one,
    /// and a request still in flight on another worker must only get a connection opened on
    /// its own, which runs until that request is answered. A connection per statement costs
    /// nothing that matters for the seconds a shutdown lasts.
    pub fn distrust_connections(&self) {
        self.distrusted.store(true, Ordering::Relaxed);
    }

    /// How many pooled connections are open and idle now.
    pub fn pool_stats(&self) -> PoolStats {
        let (open, idle) = match self.backend {
            Backend::Sqlite => {
                let pool = self.conn.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            Backend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
        };
        PoolStats {
            open,
            // sqlx derives the idle count from racing counters; it can briefly exceed the size.
            idle: u32::try_from(idle).unwrap_or(u32::MAX).min(open),
            waiting: self.waiting.load(Ordering::Relaxed),
            max: self.max_connections,
        }
    }

    fn transaction_options(&self, mode: TxMode) -> TransactionOptions {
        let sqlite_transaction_mode = match (self.backend, mode) {
            (Backend::Sqlite, TxMode::Write) => Some(SqliteTransactionMode::Immediate),
            _ => None,
        };
        TransactionOptions {
            sqlite_transaction_mode,
            ..TransactionOptions::default()
        }
    }
}

/// Counts a caller as waiting for a connection until dropped, also when the caller gives up.
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicU32) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Database for Store {
    async fn begin(&self, mode: TxMode) -> Result<Tx, RepoError> {
        let started = std::time::Instant::now();
        let _waiting = Waiting::new(&self.waiting);
        let conn = if self.backend == Backend::Postgres && mode == TxMode::Read {
            transaction::Conn::Pool(self.conn.clone())
        } else if let (Some(group), TxMode::Write) = (&self.group, mode) {
            transaction::Conn::Batch(group.begin().await?)
        } else {
            transaction::Conn::Transaction(
                self.conn
                    .begin_with_options(self.transaction_options(mode))
                    .await
                    .map_err(repo_error)?,
            )
        };
        Ok(Tx::new(Box::new(StoreTx::new(conn, started))))
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.conn.ping().await.map_err(repo_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn other_databases_are_refused() {
        let refused =
            Store::connect("mysql://root@127.0.0.1/clinicflow", &PoolOptions::default()).await;
        assert!(
            matches!(refused, Err(StoreError::UnsupportedUrl)),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_to_connect() {
        let pool = PoolOptions {
            acquire_timeout: Duration::from_millis(500),
            ..PoolOptions::default()
        };
        // Port 1 is never a PostgreSQL server.
        let refused = Store::connect("postgres://postgres@127.0.0.1:1/clinicflow", &pool).await;
        assert!(
            matches!(refused, Err(StoreError::Connect(_))),
            "{refused:?}"
        );
    }
}
