//! The use cases of clinicflow: each service method parses its input into domain
//! values, runs the domain rules and talks to storage only through the ports, in one
//! unit of work per use case.
//!
//! This crate must never depend on SeaORM, sqlx, actix, Redis or any other adapter;
//! its tests replace the ports with mockall mocks.

use std::sync::Arc;

use clinicflow_ports::{
    AppointmentRepo, AuditRepo, Cache, ClinicRepo, Clock, Database, EncounterRepo, EventBus,
    IdempotencyRepo, OutboxRepo, PasswordHasher, PatientRepo, PractitionerRepo, QueueRepo,
    RateLimiter, RefreshTokenRepo, ScheduleRepo, StatsRepo, UserRepo,
};

/// Implements `Debug` as the type's name alone (`NewPatient { .. }`), for inputs that carry
/// personal data or passwords, so that a stray `{:?}` in a log line cannot leak them.
macro_rules! opaque_debug {
    ($($t:ty),* $(,)?) => {
        $(impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        })*
    };
}

pub mod audit;
pub mod auth;
pub mod booking;
mod cached;
pub mod clinic;
pub mod dashboard;
pub mod encounter;
pub mod error;
mod flight;
pub mod idempotency;
pub mod input;
mod invalidate;
pub mod live;
#[cfg(test)]
mod mocks;
pub mod outbox;
pub mod patient;
pub mod practitioner;
pub mod queue;
pub mod schedule;
pub mod user;
mod versioned;

pub use audit::{AuditQuery, AuditService};
pub use auth::{AuthPolicy, AuthService, Profile, Session};
pub use booking::{
    AppointmentAction, AppointmentQuery, BookInput, BookingService, RescheduleInput, SweepReport,
};
pub use clinic::{ClinicPatch, ClinicService, NewClinic};
pub use dashboard::{Dashboard, DashboardService, PractitionerDay, RenderedDashboard};
pub use encounter::EncounterService;
pub use error::{Conflict, FieldErrors, ServiceError};
pub use idempotency::{Answered, IdempotencyService, Once};
pub use outbox::{DispatchReport, OutboxService};
pub use patient::{NewPatient, PatientChanges, PatientService};
pub use practitioner::{NewPractitioner, PractitionerChanges, PractitionerService};
pub use queue::{
    Board, BoardEntry, DayStats, JoinInput, LiveBoard, Priority, QueueAction, QueueService,
};
pub use schedule::{ScheduleInput, ScheduleService, SlotQuery, TimeOffInput};
pub use user::{NewUser, UserChanges, UserService};

/// Every port the services use, handed in by the composition root.
#[derive(Clone)]
pub struct Ports {
    /// Opens units of work.
    pub db: Arc<dyn Database>,
    /// Clinics.
    pub clinics: Arc<dyn ClinicRepo>,
    /// Staff users.
    pub users: Arc<dyn UserRepo>,
    /// Patients.
    pub patients: Arc<dyn PatientRepo>,
    /// Practitioners.
    pub practitioners: Arc<dyn PractitionerRepo>,
    /// Schedules and exceptions.
    pub schedules: Arc<dyn ScheduleRepo>,
    /// Appointments.
    pub appointments: Arc<dyn AppointmentRepo>,
    /// The audit log.
    pub audit: Arc<dyn AuditRepo>,
    /// The walk-in queue.
    pub queue: Arc<dyn QueueRepo>,
    /// Aggregates for the dashboard.
    pub stats: Arc<dyn StatsRepo>,
    /// Visit records.
    pub encounters: Arc<dyn EncounterRepo>,
    /// Change notifications to every instance.
    pub events: Arc<dyn EventBus>,
    /// Events to deliver to the outside, written with the changes that cause them.
    pub outbox: Arc<dyn OutboxRepo>,
    /// Refresh tokens.
    pub tokens: Arc<dyn RefreshTokenRepo>,
    /// The answers of idempotent writes.
    pub idempotency: Arc<dyn IdempotencyRepo>,
    /// Counters for login and API limits.
    pub limiter: Arc<dyn RateLimiter>,
    /// Cache for hot, rarely changing reads.
    pub cache: Arc<dyn Cache>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ports")
    }
}

/// All services, built once from the ports and shared by every request.
#[derive(Debug, Clone)]
pub struct Services {
    /// Login.
    pub auth: AuthService,
    /// Clinics and their first admin.
    pub clinics: ClinicService,
    /// Patients.
    pub patients: PatientService,
    /// Practitioners.
    pub practitioners: PractitionerService,
    /// Schedules, time off and slots.
    pub schedules: ScheduleService,
    /// Appointments.
    pub booking: BookingService,
    /// Staff users.
    pub users: UserService,
    /// The audit log.
    pub audit: AuditService,
    /// The walk-in queue.
    pub queue: QueueService,
    /// Visit records.
    pub encounters: EncounterService,
    /// The outbox and its dispatch.
    pub outbox: OutboxService,
    /// The dashboard.
    pub dashboard: DashboardService,
    /// The answers kept for idempotent retries.
    pub idempotency: IdempotencyService,
}

impl Services {
    /// Builds every service over the same ports; their units of work invalidate the cache
    /// tags their writes touched once committed.
    pub fn new(mut ports: Ports, policy: AuthPolicy) -> Self {
        ports.db = Arc::new(invalidate::Invalidating {
            inner: ports.db.clone(),
            cache: ports.cache.clone(),
        });
        Self {
            auth: AuthService::new(ports.clone(), policy),
            users: UserService::new(ports.clone()),
            audit: AuditService::new(ports.clone()),
            queue: QueueService::new(ports.clone()),
            encounters: EncounterService::new(ports.clone()),
            outbox: OutboxService::new(ports.clone()),
            dashboard: DashboardService::new(ports.clone()),
            idempotency: IdempotencyService::new(ports.clone()),
            clinics: ClinicService::new(ports.clone()),
            patients: PatientService::new(ports.clone()),
            practitioners: PractitionerService::new(ports.clone()),
            schedules: ScheduleService::new(ports.clone()),
            booking: BookingService::new(ports),
        }
    }

    /// The same services, holding webhook URLs to the operator's `policy`.
    pub fn with_webhook_policy(mut self, policy: clinicflow_domain::WebhookPolicy) -> Self {
        self.clinics = self.clinics.with_webhook_policy(policy);
        self
    }
}
