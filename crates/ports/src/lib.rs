//! The ports of clinicflow: the traits the services need from the outside world
//! (storage with transactions, cache, clock, password hashing), written on the
//! services' side of the seam.
//!
//! This crate must never depend on SeaORM, sqlx, actix, Redis or any other adapter:
//! adapters implement these traits, and only the server crate wires them in.
//! With the `mock` feature, mockall mocks of every trait are generated for service tests.

pub mod cache;
pub mod clock;
pub mod error;
pub mod events;
pub mod limit;
pub mod notify;
pub mod password;
pub mod repo;
pub mod stats;
pub mod timing;
pub mod transaction;

pub use cache::{
    Cache, Derive, Derived, TagStamp, practitioner_list_tag, practitioner_tag, schedule_tag,
    user_tag,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BoxError, OverlapParty, RepoError};
pub use events::{EventBus, EventStream};
pub use limit::{RateDecision, RateLimiter};
pub use notify::Notifier;
pub use password::PasswordHasher;
pub use repo::{
    AppointmentFilter, AppointmentRepo, AuditFilter, AuditRepo, ClinicRepo, EncounterRepo,
    IdempotencyRepo, OutboxRepo, PatientFilter, PatientRepo, PatientSearch, PractitionerFilter,
    PractitionerRepo, QueueRepo, QueueScope, RefreshTokenRepo, ScheduleRepo, UserRepo,
};
pub use stats::{StatsRepo, StatusCount};
pub use transaction::{AfterCommit, Database, Transaction, Tx, TxMode};

#[cfg(feature = "mock")]
pub use {
    cache::MockCache, clock::MockClock, events::MockEventBus, limit::MockRateLimiter,
    notify::MockNotifier, password::MockPasswordHasher, repo::MockAppointmentRepo,
    repo::MockAuditRepo, repo::MockClinicRepo, repo::MockEncounterRepo, repo::MockIdempotencyRepo,
    repo::MockOutboxRepo, repo::MockPatientRepo, repo::MockPractitionerRepo, repo::MockQueueRepo,
    repo::MockRefreshTokenRepo, repo::MockScheduleRepo, repo::MockUserRepo, stats::MockStatsRepo,
    transaction::FakeTransaction, transaction::MockDatabase,
};
