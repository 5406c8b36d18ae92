//! Mocked ports for service tests: a mock of every port, with only what every use case
//! needs answered up front (transactions that count their commits, a fixed clock, an empty
//! cache); each test adds the expectations it is about.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use chrono::{DateTime, Utc};
use clinicflow_ports::{
    FakeTransaction, MockAppointmentRepo, MockAuditRepo, MockCache, MockClinicRepo, MockClock,
    MockDatabase, MockEncounterRepo, MockEventBus, MockIdempotencyRepo, MockOutboxRepo,
    MockPasswordHasher, MockPatientRepo, MockPractitionerRepo, MockQueueRepo, MockRateLimiter,
    MockRefreshTokenRepo, MockScheduleRepo, MockStatsRepo, MockUserRepo,
};

use crate::Ports;

/// Every port, mocked.
pub(crate) struct Mocks {
    pub db: MockDatabase,
    pub clinics: MockClinicRepo,
    pub users: MockUserRepo,
    pub patients: MockPatientRepo,
    pub practitioners: MockPractitionerRepo,
    pub schedules: MockScheduleRepo,
    pub appointments: MockAppointmentRepo,
    pub audit: MockAuditRepo,
    pub queue: MockQueueRepo,
    pub stats: MockStatsRepo,
    pub encounters: MockEncounterRepo,
    pub events: MockEventBus,
    pub outbox: MockOutboxRepo,
    pub tokens: MockRefreshTokenRepo,
    pub idempotency: MockIdempotencyRepo,
    pub limiter: MockRateLimiter,
    pub hasher: MockPasswordHasher,
    /// Commits of every transaction begun through `db`.
    pub commits: Arc<AtomicUsize>,
    /// What the clock says.
    pub now: DateTime<Utc>,
}

impl Mocks {
    /// Mocks whose database hands out counting transactions and whose clock says `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        let commits = Arc::new(AtomicUsize::new(0));
        let mut db = MockDatabase::new();
        let counter = commits.clone();
        db.expect_begin()
            .returning(move |_| Ok(FakeTransaction::counting(counter.clone())));
        Self {
            db,
            clinics: MockClinicRepo::new(),
            users: MockUserRepo::new(),
            patients: MockPatientRepo::new(),
            practitioners: MockPractitionerRepo::new(),
            schedules: MockScheduleRepo::new(),
            appointments: MockAppointmentRepo::new(),
            audit: MockAuditRepo::new(),
            queue: MockQueueRepo::new(),
            stats: MockStatsRepo::new(),
            encounters: MockEncounterRepo::new(),
            events: MockEventBus::new(),
            outbox: MockOutboxRepo::new(),
            tokens: MockRefreshTokenRepo::new(),
            idempotency: MockIdempotencyRepo::new(),
            limiter: MockRateLimiter::new(),
            hasher: MockPasswordHasher::new(),
            commits,
            now,
        }
    }

    /// The ports over these mocks, and the commit counter.
    pub fn ports(self) -> (Ports, Arc<AtomicUsize>) {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(self.now);
        let mut cache = MockCache::new();
        cache.expect_get().returning(|_| None);
        cache.expect_get_derived().returning(|_, _| None);
        cache.expect_set().return_const(());
        cache.expect_stamp().returning(|_| None);
        cache.expect_set_tagged().return_const(());
        cache.expect_invalidate().return_const(());
        let ports = Ports {
            db: Arc::new(self.db),
            clinics: Arc::new(self.clinics),
            users: Arc::new(self.users),
            patients: Arc::new(self.patients),
            practitioners: Arc::new(self.practitioners),
            schedules: Arc::new(self.schedules),
            appointments: Arc::new(self.appointments),
            audit: Arc::new(self.audit),
            queue: Arc::new(self.queue),
            stats: Arc::new(self.stats),
            encounters: Arc::new(self.encounters),
            events: Arc::new(self.events),
            outbox: Arc::new(self.outbox),
            tokens: Arc::new(self.tokens),
            idempotency: Arc::new(self.idempotency),
            limiter: Arc::new(self.limiter),
            cache: Arc::new(cache),
            clock: Arc::new(clock),
            hasher: Arc::new(self.hasher),
        };
        (ports, self.commits)
    }
}
