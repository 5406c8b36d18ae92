//! The store's side of the ports' unit of work.

use std::any::Any;
use std::time::Instant;

use async_trait::async_trait;
use clinicflow_ports::{RepoError, Transaction, Tx};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement,
};

use crate::error::repo_error;
use crate::group::Unit;

/// An open SeaORM transaction behind the ports' opaque [`Tx`].
///
/// Dropping it without a commit rolls back: SeaORM sends the rollback at once on SQLite
/// (so the write lock of a `BEGIN IMMEDIATE` is released) and before the connection's
/// next use on PostgreSQL.
pub(crate) struct StoreTx {
    conn: Conn,
    _timer: Timer,
}

impl StoreTx {
    /// Wraps a unit of work begun at `started` (before waiting for a connection).
    pub(crate) fn new(conn: Conn, started: Instant) -> Self {
        Self {
            conn,
            _timer: Timer(started),
        }
    }
}

/// Where a unit of work's statements run.
///
/// A read-only unit of work on PostgreSQL runs each statement on a pooled connection, with no
/// `BEGIN` and `COMMIT` around it: under READ COMMITTED each statement sees its own snapshot
/// inside a transaction as well, so the two round trips would buy nothing. Every other unit
/// of work is a transaction (on SQLite a deferred one keeps a read's statements on one snapshot,
/// and a write is a savepoint of the group commit's batch, see `group.rs`).
#[derive(Debug)]
pub(crate) enum Conn {
    /// An open transaction.
    Transaction(DatabaseTransaction),
    /// The pool, one statement at a time (read-only units of work on PostgreSQL).
    Pool(DatabaseConnection),
    /// A write unit of work on SQLite, inside the group commit's shared transaction.
    Batch(Unit),
}

#[async_trait]
impl ConnectionTrait for Conn {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Conn::Transaction(t) => t.get_database_backend(),
            Conn::Pool(p) => p.get_database_backend(),
            Conn::Batch(u) => u.transaction().get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Conn::Transaction(t) => t.execute_raw(stmt).await,
            Conn::Pool(p) => p.execute_raw(stmt).await,
            Conn::Batch(u) => u.transaction().execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Conn::Transaction(t) => t.execute_unprepared(sql).await,
            Conn::Pool(p) => p.execute_unprepared(sql).await,
            Conn::Batch(u) => u.transaction().execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Conn::Transaction(t) => t.query_one_raw(stmt).await,
            Conn::Pool(p) => p.query_one_raw(stmt).await,
            Conn::Batch(u) => u.transaction().query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Conn::Transaction(t) => t.query_all_raw(stmt).await,
            Conn::Pool(p) => p.query_all_raw(stmt).await,
            Conn::Batch(u) => u.transaction().query_all_raw(stmt).await,
        }
    }

    fn support_returning(&self) -> bool {
        match self {
            Conn::Transaction(t) => t.support_returning(),
            Conn::Pool(p) => p.support_returning(),
            Conn::Batch(u) => u.transaction().support_returning(),
        }
    }
}

/// Adds the transaction's lifetime to the request's database time when it ends, committed or not.
struct Timer(Instant);

impl Drop for Timer {
    fn drop(&mut self) {
        clinicflow_ports::timing::add_db(self.0.elapsed());
    }
}

#[async_trait]
impl Transaction for StoreTx {
    async fn commit(self: Box<Self>) -> Result<(), RepoError> {
        match self.conn {
            Conn::Transaction(t) => t.commit().await.map_err(repo_error),
            Conn::Pool(_) => Ok(()),
            Conn::Batch(u) => u.commit().await,
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Where the statements of a unit of work this store began run.
///
/// # Panics
/// When `tx` was begun by another adapter: mixing adapters in one unit of work is a wiring bug.
pub(crate) fn db(tx: &mut Tx) -> &Conn {
    &tx.downcast_mut::<StoreTx>()
        .expect("the unit of work was begun by clinicflow-store, the adapter of every repository")
        .conn
}
