//! The services' error type: every way a use case can fail, for the API to map.

use std::collections::BTreeMap;

use clinicflow_domain::{IllegalTransition, Interval, InvalidValue, PractitionerId};
use clinicflow_ports::{OverlapParty, RepoError};

/// Field name -> messages, for 422 answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a message for a field.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    /// Unwraps a parse result, recording its error under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, InvalidValue>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e.0);
                None
            }
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The recorded messages by field.
    pub fn fields(&self) -> &BTreeMap<String, Vec<String>> {
        &self.0
    }

    /// `Ok` when nothing was recorded, else the validation error.
    pub fn into_result(self) -> Result<(), ServiceError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Validation(self))
        }
    }

    /// A single-field validation error.
    pub fn single(field: &str, message: impl Into<String>) -> ServiceError {
        let mut e = Self::new();
        e.add(field, message);
        ServiceError::Validation(e)
    }
}

/// Why a booking could not be made, with what the client can do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// What the booking collided with.
    pub kind: ConflictKind,
    /// The practitioner's next free slots after the requested start.
    pub next_slots: Vec<Interval>,
    /// The practitioner asked for.
    pub practitioner_id: PractitionerId,
}

/// What a booking collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// Another active appointment of this party; the interval is given when known.
    Overlap {
        /// Whose time is taken.
        party: OverlapParty,
        /// The interval already booked (no other detail of it is ever shown).
        with: Option<Interval>,
    },
    /// The practitioner does not work then.
    OutsideAvailability,
}

/// Every failure of a use case.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input that parses but breaks a rule; field -> messages.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// The resource does not exist in the actor's clinic.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The booking collides with another appointment or with the schedule.
    #[error("booking conflict")]
    BookingConflict(Conflict),
    /// The booking would start in the past.
    #[error("the appointment would start in the past")]
    BookingInPast,
    /// A check-in outside the clinic's check-in window, without an override.
    #[error(transparent)]
    OutsideCheckInWindow(#[from] clinicflow_domain::OutsideCheckInWindow),
    /// The practitioner is deactivated and takes no new bookings or walk-ins.
    #[error("the practitioner is deactivated")]
    PractitionerInactive,
    /// The patient already has an open queue entry (waiting, called or in service).
    #[error("the patient already waits in the queue")]
    AlreadyInQueue,
    /// The status machine forbids the move.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The queue's status machine forbids the move.
    #[error(transparent)]
    IllegalQueueMove(#[from] clinicflow_domain::queue::IllegalQueueMove),
    /// The client's version (If-Match) is not the stored one.
    #[error("the resource changed since the version the client holds")]
    PreconditionFailed {
        /// The stored version, if known.
        current: Option<i32>,
    },
    /// A webhook URL points where the operator's policy forbids (plain http in production,
    /// or a loopback, private, link-local … address); the reason names which.
    #[error("webhook target refused: {0}")]
    WebhookTargetRefused(String),
    /// The `Idempotency-Key` was used before for a different request.
    #[error("the idempotency key was used for a different request")]
    IdempotencyKeyReused,
    /// A unique value is taken.
    #[error("{0} already exists")]
    Duplicate(&'static str),
    /// Wrong e-mail or password, unknown or disabled account: deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The actor's role does not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many attempts; the client may retry after the given time.
    #[error("too many requests")]
    RateLimited {
        /// Seconds until the limit resets.
        retry_after_secs: u64,
    },
    /// A concurrent writer made the database abort the unit of work; use cases that expect
    /// contention run again, and a client seeing it may retry.
    #[error("transaction aborted by a concurrent writer")]
    Transient(#[source] clinicflow_ports::BoxError),
    /// The database is unreachable or overloaded.
    #[error("service unavailable")]
    Unavailable(#[source] clinicflow_ports::BoxError),
    /// A statement or a wait for a lock held by another request ran past its configured
    /// bound; the client may retry.
    #[error("database timeout")]
    Timeout(#[source] clinicflow_ports::BoxError),
    /// A bug or an unexpected state; logged with its chain at the boundary.
    #[error(transparent)]
    Unexpected(clinicflow_ports::BoxError),
}

impl From<RepoError> for ServiceError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => ServiceError::NotFound("resource"),
            RepoError::Duplicate(field) => ServiceError::Duplicate(field),
            RepoError::AlreadyQueued => ServiceError::AlreadyInQueue,
            RepoError::StaleVersion => ServiceError::PreconditionFailed { current: None },
            RepoError::Unavailable(e) => ServiceError::Unavailable(e),
            RepoError::Timeout(e) => ServiceError::Timeout(e),
            RepoError::Retry(e) => ServiceError::Transient(e),
            RepoError::Overlap(party) => {
                ServiceError::Unexpected(format!("unexpected overlap of the {party:?}").into())
            }
            RepoError::Other(e) => ServiceError::Unexpected(e),
        }
    }
}

impl From<clinicflow_domain::permission::Denied> for ServiceError {
    fn from(d: clinicflow_domain::permission::Denied) -> Self {
        ServiceError::Forbidden(d.to_string())
    }
}

/// Attempts a unit of work gets when the database keeps aborting it for concurrency, or a
/// change without `If-Match` keeps losing to concurrent ones.
pub(crate) const ATTEMPTS: u32 = 3;

/// Runs `attempt` again when the database aborted it for a concurrent writer (a deadlock
/// between exclusion-constraint checks, for instance), up to [`ATTEMPTS`] times.
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, ServiceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ServiceError>>,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Err(ServiceError::Transient(e)) if n < ATTEMPTS => {
                tracing::debug!(attempt = n, error = %e, "unit of work aborted by a concurrent writer; running it again");
                n += 1;
            }
            other => return other,
        }
    }
}
