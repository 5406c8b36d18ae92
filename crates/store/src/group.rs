//! Group commit of SQLite's write units of work.
//!
//! With `synchronous=FULL` every SQLite commit waits for an fsync, so one commit per request
//! caps writes at the disk's sync rate. Here the write units of concurrent requests share one
//! SQLite transaction (a *batch*): units run one at a time, as under `BEGIN IMMEDIATE`, each
//! inside its own `SAVEPOINT`, so a unit that fails or is dropped is rolled back alone. A unit
//! that commits releases its savepoint and, when no other unit is queued to run, commits the
//! batch at once; otherwise it leaves the commit to the batch and waits for its outcome. Every
//! unit is answered only once its batch is durable, and a failed batch fails each of its
//! units, so nothing is acknowledged that a crash could lose.
//!
//! Units read what earlier units of their batch wrote, uncommitted; that is safe because a
//! unit commits with or after every unit before it, never alone. Read-only units of work do
//! not come here: they read committed data on the pool's other connections, which WAL keeps
//! from waiting for the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clinicflow_ports::RepoError;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::error::{batch_error, repo_error};

/// The most units one batch holds: bounds how long its first unit waits to be answered.
const BATCH_MAX: usize = 256;

/// The outcome of a batch, as each of its units learns it.
type Outcome = Result<(), DbErr>;

/// The shared SQLite transaction and the units waiting for it to commit.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    txn: Option<DatabaseTransaction>,
    /// Units that released their savepoint and wait for the batch's commit.
    waiters: Vec<oneshot::Sender<Outcome>>,
    /// A unit's savepoint is still open: its unit is running, or was dropped without
    /// committing and its writes are still to be rolled back.
    open_savepoint: bool,
}

/// The group commit of one SQLite database (see the module's documentation).
#[derive(Debug)]
pub(crate) struct GroupCommit {
    conn: DatabaseConnection,
    batch: Arc<Mutex<Batch>>,
    /// Units waiting to run: while there are some, a committing unit leaves the commit to them.
    queued: AtomicUsize,
    /// The longest a unit waits for its turn, as `busy_timeout` bounds a wait for the write lock.
    wait_bound: Duration,
}

impl GroupCommit {
    /// A group commit over `conn`'s pool; a unit waits at most `wait_bound` for its turn.
    pub(crate) fn new(conn: DatabaseConnection, wait_bound: Duration) -> Arc<Self> {
        Arc::new(Self {
            conn,
            batch: Arc::default(),
            queued: AtomicUsize::new(0),
            wait_bound,
        })
    }

    /// Waits for the turn of a new unit, then opens its savepoint (and the batch if none is open).
    pub(crate) async fn begin(self: &Arc<Self>) -> Result<Unit, RepoError> {
        let mut batch = {
            self.queued.fetch_add(1, Ordering::SeqCst);
            let turn = tokio::time::timeout(self.wait_bound, self.batch.clone().lock_owned()).await;
            self.queued.fetch_sub(1, Ordering::SeqCst);
            turn.map_err(|elapsed| RepoError::Timeout(Box::new(elapsed)))?
        };
        settle(&mut batch).await;
        if batch.txn.is_none() {
            let options = TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            };
            batch.txn = Some(
                self.conn
                    .begin_with_options(options)
                    .await
                    .map_err(repo_error)?,
            );
        }
        let savepoint = transaction(&batch)
            .execute_unprepared("SAVEPOINT unit")
            .await;
        if let Err(e) = savepoint {
            fail(&mut batch, &e).await;
            return Err(batch_error(e));
        }
        batch.open_savepoint = true;
        Ok(Unit {
            group: Arc::clone(self),
            batch: Some(batch),
        })
    }

    /// Whether other units wait to run, so that the batch will be committed without this one.
    fn others_queued(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0
    }
}

/// One write unit of work inside the current batch; it holds the writer until it commits or
/// is dropped (which rolls its writes back).
#[derive(Debug)]
pub(crate) struct Unit {
    group: Arc<GroupCommit>,
    batch: Option<OwnedMutexGuard<Batch>>,
}

impl Unit {
    /// The batch's transaction, where this unit's statements run.
    pub(crate) fn transaction(&self) -> &DatabaseTransaction {
        transaction(
            self.batch
                .as_ref()
                .expect("a unit holds its batch until it ends"),
        )
    }

    /// Keeps this unit's writes and returns once the batch holding them is durable.
    pub(crate) async fn commit(mut self) -> Result<(), RepoError> {
        let mut batch = self
            .batch
            .take()
            .expect("a unit holds its batch until it ends");
        let released = transaction(&batch).execute_unprepared("RELEASE unit").await;
        if let Err(e) = released {
            fail(&mut batch, &e).await;
            return Err(batch_error(e));
        }
        batch.open_savepoint = false;
        let (done, mut outcome) = oneshot::channel();
        batch.waiters.push(done);
        if !self.group.others_queued() || batch.waiters.len() >= BATCH_MAX {
            commit(&mut batch).await;
            return received(outcome.await);
        }
        let writer = Arc::clone(OwnedMutexGuard::mutex(&batch));
        drop(batch);
        // The units queued behind this one run first; if none of them commits the batch by
        // the time this unit's turn comes again, it commits the batch itself. Waiting for the
        // turn, not for a later unit, means a unit whose request is cancelled strands nobody.
        tokio::select! {
            biased;
            done = &mut outcome => received(done),
            mut batch = writer.lock_owned() => {
                if let Ok(done) = outcome.try_recv() {
                    return received(Ok(done));
                }
                settle(&mut batch).await;
                commit(&mut batch).await;
                drop(batch);
                received(outcome.await)
            }
        }
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        let Some(mut batch) = self.batch.take() else {
            return;
        };
        // Roll the unit back now rather than when the next unit comes, so the batch's write
        // lock is not held by an idle server. Without a runtime the next unit rolls it back.
        let group = Arc::clone(&self.group);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                settle(&mut batch).await;
                if !group.others_queued() {
                    // The units waiting for this batch would commit it on their next turn;
                    // committing now answers them sooner.
                    commit(&mut batch).await;
                }
            });
        }
    }
}

/// Rolls back the writes of a unit that was dropped without committing.
async fn settle(batch: &mut Batch) {
    if !batch.open_savepoint {
        return;
    }
    batch.open_savepoint = false;
    let rolled_back = transaction(batch)
        .execute_unprepared("ROLLBACK TO unit; RELEASE unit")
        .await;
    if let Err(e) = rolled_back {
        fail(batch, &e).await;
    }
}

/// Commits the batch, if one is open, and tells each of its waiting units the outcome.
async fn commit(batch: &mut Batch) {
    let Some(txn) = batch.txn.take() else {
        return;
    };
    let started = std::time::Instant::now();
    let units = batch.waiters.len();
    let outcome = txn.commit().await;
    log::debug!(
        "write batch of {units} units committed in {:.2} ms (ok: {})",
        started.elapsed().as_secs_f64() * 1e3,
        outcome.is_ok()
    );
    for done in batch.waiters.drain(..) {
        // A unit whose request was cancelled no longer listens.
        let _ = done.send(outcome.clone());
    }
}

/// Rolls the whole batch back and fails every unit waiting for it.
async fn fail(batch: &mut Batch, error: &DbErr) {
    if let Some(txn) = batch.txn.take() {
        // The batch is lost either way; a failed rollback ends with the connection.
        let _ = txn.rollback().await;
    }
    batch.open_savepoint = false;
    for done in batch.waiters.drain(..) {
        let _ = done.send(Err(error.clone()));
    }
}

fn transaction(batch: &Batch) -> &DatabaseTransaction {
    batch
        .txn
        .as_ref()
        .expect("a unit runs only inside an open batch")
}

fn received(outcome: Result<Outcome, oneshot::error::RecvError>) -> Result<(), RepoError> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(batch_error(e)),
        Err(_) => Err(RepoError::Unavailable(
            "the write batch ended without an outcome".into(),
        )),
    }
}
