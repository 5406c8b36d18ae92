//! The unit of work: begin a transaction, hand it to repositories, commit.
//!
//! Every repository method takes the open [`Transaction`], so a use case that writes
//! several things (an appointment, later its audit event and outbox message) commits
//! them together or not at all. The transaction is opaque here; each storage adapter
//! downcasts it to its own type.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use futures_core::future::BoxFuture;

use crate::RepoError;

/// Whether a transaction will write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// Only reads: adapters need not hold one snapshot across statements (PostgreSQL runs
    /// them on the pool without `BEGIN`/`COMMIT`), so a read that needs one must say `Write`.
    Read,
    /// Reads then writes: adapters take the write lock up front where the
    /// database needs it (SQLite `BEGIN IMMEDIATE`) so a read-check-write is serialized.
    Write,
}

/// An open database transaction. Dropping it without [`Transaction::commit`] rolls it back.
#[async_trait]
pub trait Transaction: Send {
    /// Commits every write made through this transaction.
    async fn commit(self: Box<Self>) -> Result<(), RepoError>;

    /// The adapter's own transaction type, for repositories of the same adapter.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// What runs after a unit of work committed, with the cache tags its writes touched.
pub type AfterCommit = Arc<dyn Fn(Vec<String>) -> BoxFuture<'static, ()> + Send + Sync>;

/// An open unit of work, handed to repositories and committed at the end of a use case.
/// Dropping it without [`Tx::commit`] rolls every write back.
///
/// A unit of work in which a write failed (a stale version included) MUST be dropped, not
/// committed, unless that write's contract says otherwise (`RefreshTokenRepo::mark_rotated`): an
/// adapter may have sent writes it held back (an audit event, an outbox message) with the
/// statement that failed, and they ran whatever that statement did.
///
/// Repositories note the cache tags their writes make stale ([`Tx::touch`]); once the unit
/// of work has committed, they are invalidated (see `crate::cache`), so no use case has to
/// remember which cached reads a write affects.
pub struct Tx {
    inner: Box<dyn Transaction>,
    touched: Vec<String>,
    after_commit: Option<AfterCommit>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx {
    /// Wraps an adapter's transaction.
    pub fn new(inner: Box<dyn Transaction>) -> Self {
        Self {
            inner,
            touched: Vec::new(),
            after_commit: None,
        }
    }

    /// Commits every write made through this unit of work, then runs the after-commit hook
    /// with the tags touched (after, so that nothing read before the commit is cached as new).
    pub async fn commit(self) -> Result<(), RepoError> {
        let Tx {
            inner,
            touched,
            after_commit,
        } = self;
        inner.commit().await?;
        if let Some(hook) = after_commit
            && !touched.is_empty()
        {
            hook(touched).await;
        }
        Ok(())
    }

    /// Notes that a write of this unit of work makes values cached under `tag` stale.
    pub fn touch(&mut self, tag: String) {
        if !self.touched.contains(&tag) {
            self.touched.push(tag);
        }
    }

    /// The tags touched so far.
    pub fn touched(&self) -> &[String] {
        &self.touched
    }

    /// Sets what runs after a successful commit.
    pub fn set_after_commit(&mut self, hook: AfterCommit) {
        self.after_commit = Some(hook);
    }

    /// The adapter's own transaction, if it is of type `T`.
    pub fn downcast_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.inner.as_any_mut().downcast_mut::<T>()
    }
}

/// Opens transactions.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Database: Send + Sync {
    /// Begins a transaction; MUST return [`RepoError::Unavailable`] when no connection can be had
    /// in time, and [`RepoError::Timeout`] when a write transaction waited past its bound for
    /// the database's write lock (SQLite's `busy_timeout`). A [`TxMode::Read`] unit of work
    /// may take a connection per statement instead (no `BEGIN` round trip); then its first
    /// read returns `Unavailable` instead.
    async fn begin(&self, mode: TxMode) -> Result<Tx, RepoError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), RepoError>;
}

/// A transaction that touches nothing and counts its commits, for service tests with mocked repositories.
#[cfg(feature = "mock")]
#[derive(Debug, Default, Clone)]
pub struct FakeTransaction {
    commits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[cfg(feature = "mock")]
impl FakeTransaction {
    /// A unit of work over a fresh fake, and the counter of its commits.
    pub fn begin() -> (Tx, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let commits = std::sync::Arc::default();
        (Self::counting(std::sync::Arc::clone(&commits)), commits)
    }

    /// A unit of work over a fake that adds its commit to a shared counter.
    pub fn counting(commits: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Tx {
        Tx::new(Box::new(Self { commits }))
    }
}

#[cfg(feature = "mock")]
#[async_trait]
impl Transaction for FakeTransaction {
    async fn commit(self: Box<Self>) -> Result<(), RepoError> {
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
