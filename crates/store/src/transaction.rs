//! The store's side of the ports' unit of work.

use std::any::Any;
use std::time::Instant;

use async_trait::async_trait;
use clinicflow_ports::{RepoError, Transaction, Tx};
use sea_orm::DatabaseTransaction;

use crate::error::repo_error;

/// An open SeaORM transaction behind the ports' opaque [`Tx`].
///
/// Dropping it without a commit rolls back: SeaORM sends the rollback at once on SQLite
/// (so the write lock of a `BEGIN IMMEDIATE` is released) and before the connection's
/// next use on PostgreSQL.
pub(crate) struct StoreTx {
    txn: DatabaseTransaction,
    _timer: Timer,
}

impl StoreTx {
    /// Wraps a transaction begun at `started` (before waiting for a connection).
    pub(crate) fn new(txn: DatabaseTransaction, started: Instant) -> Self {
        Self {
            txn,
            _timer: Timer(started),
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
        self.txn.commit().await.map_err(repo_error)
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The SeaORM transaction inside a unit of work this store began.
///
/// # Panics
/// When `tx` was begun by another adapter: mixing adapters in one unit of work is a wiring bug.
pub(crate) fn db(tx: &mut Tx) -> &DatabaseTransaction {
    &tx.downcast_mut::<StoreTx>()
        .expect("the unit of work was begun by clinicflow-store, the adapter of every repository")
        .txn
}
