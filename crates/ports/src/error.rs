//! The error contract shared by every repository.

/// Any underlying error, kept with its chain for the log at the boundary.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whose time an overlapping appointment would take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapParty {
    /// The practitioner is already booked.
    Practitioner,
    /// The patient is already booked.
    Patient,
}

/// What a repository call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The row to update does not exist in this clinic (or is soft-deleted).
    #[error("not found")]
    NotFound,
    /// An active appointment would overlap another of the same practitioner or patient.
    /// Adapters MUST return this when the database's no-overlap rule rejects a write.
    #[error("the appointment overlaps another active appointment of the {0:?}")]
    Overlap(OverlapParty),
    /// A unique rule was broken; the value names the field (for example `email`).
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// The patient already has an open queue entry (waiting, called or in service).
    /// Adapters MUST return this when the database's one-open-entry-per-patient rule
    /// rejects a write.
    #[error("the patient already waits in the queue")]
    AlreadyQueued,
    /// An optimistic update found another version than it expected.
    #[error("the record changed since it was read")]
    StaleVersion,
    /// The database aborted the transaction to break a deadlock or a serialization conflict
    /// between concurrent writers; running the whole unit of work again is expected to succeed.
    /// Adapters MUST return this (not `Unavailable`) for such aborts.
    #[error("transaction aborted by a concurrent writer")]
    Retry(#[source] BoxError),
    /// The database cannot be reached or is overloaded; the request may be retried.
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// A statement ran longer, or waited for a lock (a row, an advisory lock, another
    /// request's idempotency key, SQLite's write lock) longer, than the configured bound.
    /// Adapters MUST return this (not `Unavailable` or `Other`) for those aborts, so a
    /// request stuck behind another answers quickly with a retryable error.
    #[error("database timeout")]
    Timeout(#[source] BoxError),
    /// Anything else: a bug or an unexpected database state.
    #[error(transparent)]
    Other(BoxError),
}
