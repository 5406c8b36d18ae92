//! Repository traits, one per aggregate. Every method takes the open transaction and,
//! except for login's lookup by e-mail and the refresh token's lookup by its hash (both
//! before any clinic is known), the clinic id: tenant isolation is part of each
//! signature, so no query can be written without it.
//!
//! Reads never return soft-deleted rows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clinicflow_domain::page::{AppointmentKey, PatientKey};
use clinicflow_domain::{
    Appointment, AppointmentId, AppointmentStatus, AuditEvent, AuditEventId, Claimed, Clinic,
    ClinicId, DeliveryStatus, Email, Encounter, EncounterId, EventKind, ExceptionKind, Interval,
    KeyClaim, LockoutPolicy, OutboxMessage, OutboxMessageId, Page, PageRequest, Patient, PatientId,
    Phone, Practitioner, PractitionerId, QueueEntry, QueueEntryId, RefreshToken, RefreshTokenId,
    Schedule, ScheduleException, ScheduleExceptionId, StoredAnswer, TokenFamilyId, User, UserId,
    WebhookEndpoint,
};

use crate::{RepoError, Tx};

/// Clinics (tenants).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ClinicRepo: Send + Sync {
    /// Stores a new clinic.
    async fn insert(&self, tx: &mut Tx, clinic: &Clinic) -> Result<(), RepoError>;

    /// The clinic, if it exists.
    async fn get(&self, tx: &mut Tx, id: ClinicId) -> Result<Option<Clinic>, RepoError>;

    /// The clinic with this exact name, if any (used to make seeding idempotent).
    async fn find_by_name(&self, tx: &mut Tx, name: &str) -> Result<Option<Clinic>, RepoError>;

    /// Every clinic, for workers that serve them all (the no-show sweeper), ordered by id.
    async fn list_ids(&self, tx: &mut Tx) -> Result<Vec<ClinicId>, RepoError>;

    /// Writes every setting of `clinic` but its id, its version included, if the stored
    /// version is still `expected_version`; MUST return `StaleVersion` if it changed meanwhile
    /// and `NotFound` if absent.
    async fn update(
        &self,
        tx: &mut Tx,
        clinic: &Clinic,
        expected_version: i32,
    ) -> Result<(), RepoError>;

    /// The clinic's webhook, if it has one.
    async fn webhook(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
    ) -> Result<Option<WebhookEndpoint>, RepoError>;

    /// Sets (`Some`) or removes (`None`) the clinic's webhook.
    async fn set_webhook(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        webhook: Option<WebhookEndpoint>,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError>;
}

/// Staff users.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Stores a new user; MUST return `Duplicate("email")` if the clinic already has that e-mail.
    async fn insert(&self, tx: &mut Tx, user: &User) -> Result<(), RepoError>;

    /// The user of this clinic, if any.
    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: UserId,
    ) -> Result<Option<User>, RepoError>;

    /// Every user with this e-mail in any clinic: login knows no clinic yet.
    async fn find_by_email(&self, tx: &mut Tx, email: &Email) -> Result<Vec<User>, RepoError>;

    /// Writes every field of `user` but its id, clinic and e-mail (its `version` included) if
    /// the stored version is `expected_version`; MUST return `StaleVersion` if it is not and
    /// `NotFound` if the user is absent (or of another clinic).
    async fn update(
        &self,
        tx: &mut Tx,
        user: &User,
        expected_version: i32,
    ) -> Result<(), RepoError>;

    /// Counts one failed login in a single statement, so concurrent failures lose no
    /// increment and no other field is written back: `failed_logins + 1`, and when that
    /// reaches `policy.max_failures`, the counter starts again at 0 and `locked_until` becomes
    /// `now + policy.lock_for` in the same statement (`LockoutPolicy::after_failure`). Bumps
    /// the version. Does nothing while the account is locked at `now`. Returns the user as
    /// stored afterwards, `None` when absent.
    async fn record_failed_login(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: UserId,
        policy: &LockoutPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, RepoError>;

    /// After a successful login: sets the failed-login counter to 0 and clears an expired
    /// lock, in a single statement that writes only while there is something to clear and
    /// the account is not locked at `now` (a lock a concurrent failure just set stays), and
    /// then bumps the version.
    async fn clear_failed_logins(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError>;

    /// One page of the clinic's users, ordered by e-mail.
    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        page: PageRequest,
    ) -> Result<Page<User>, RepoError>;
}

/// How `GET /patients?q=` searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientSearch {
    /// Normalized `family given` starts with this (see `domain::patient::normalize_name`);
    /// also matches when `given family` starts with it.
    NamePrefix(String),
    /// Exact phone number.
    Phone(Phone),
    /// Exact e-mail address.
    Email(Email),
}

/// Filters for listing patients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientFilter {
    /// Optional search.
    pub search: Option<PatientSearch>,
    /// Only patients with at least one appointment (of any status) with this practitioner.
    pub seen_by: Option<PractitionerId>,
}

/// Patients.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PatientRepo: Send + Sync {
    /// Stores a new patient.
    async fn insert(&self, tx: &mut Tx, patient: &Patient) -> Result<(), RepoError>;

    /// The patient, unless absent, of another clinic, or soft-deleted.
    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: PatientId,
    ) -> Result<Option<Patient>, RepoError>;

    /// Writes every field of `patient` (including `deleted_at`) if the stored version is `expected_version`;
    /// MUST return `StaleVersion` if it is not and `NotFound` if the row is absent or soft-deleted.
    async fn update(
        &self,
        tx: &mut Tx,
        patient: &Patient,
        expected_version: i32,
    ) -> Result<(), RepoError>;

    /// One page of the clinic's patients, ordered by family name, given name, id; a name-prefix
    /// search is ordered by the key each patient matched (the `family given` key if it starts
    /// with the prefix, else the `given family` key), then id.
    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &PatientFilter,
        page: PageRequest,
    ) -> Result<Page<Patient>, RepoError>;

    /// Up to `limit` of the clinic's patients in the order of [`PatientRepo::list`], strictly
    /// after `after` when given (keyset pagination: rows inserted or removed elsewhere in the
    /// list shift no page). MUST compare the key exactly as the order sorts.
    async fn list_after(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &PatientFilter,
        after: Option<PatientKey>,
        limit: u32,
    ) -> Result<Vec<Patient>, RepoError>;
}

/// Filters for listing practitioners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PractitionerFilter {
    /// Has this specialty.
    pub specialty: Option<String>,
    /// Belongs to this department.
    pub department: Option<String>,
    /// Only active (`Some(true)`) or only deactivated (`Some(false)`) practitioners.
    pub active: Option<bool>,
}

/// Practitioners.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PractitionerRepo: Send + Sync {
    /// Stores a new practitioner.
    async fn insert(&self, tx: &mut Tx, practitioner: &Practitioner) -> Result<(), RepoError>;

    /// The practitioner of this clinic, if any.
    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: PractitionerId,
    ) -> Result<Option<Practitioner>, RepoError>;

    /// Writes every field if the stored version is `expected_version`; MUST return `StaleVersion` or `NotFound` as for patients.
    async fn update(
        &self,
        tx: &mut Tx,
        practitioner: &Practitioner,
        expected_version: i32,
    ) -> Result<(), RepoError>;

    /// One page of the clinic's practitioners, ordered by family name, given name, id.
    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &PractitionerFilter,
        page: PageRequest,
    ) -> Result<Page<Practitioner>, RepoError>;
}

/// Weekly schedules and their exceptions.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ScheduleRepo: Send + Sync {
    /// The practitioner's schedule, if one was ever set.
    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
    ) -> Result<Option<Schedule>, RepoError>;

    /// Replaces the practitioner's schedule as a whole.
    async fn put(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        schedule: &Schedule,
    ) -> Result<(), RepoError>;

    /// Stores a time-off or extra-hours exception.
    async fn add_exception(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        exception: &ScheduleException,
    ) -> Result<(), RepoError>;

    /// The practitioner's exceptions of one kind, ordered by start, then id.
    async fn exceptions(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        kind: ExceptionKind,
    ) -> Result<Vec<ScheduleException>, RepoError>;

    /// Deletes one exception of that kind; MUST return `NotFound` when the practitioner of
    /// this clinic has no such exception of that kind.
    async fn remove_exception(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        kind: ExceptionKind,
        id: ScheduleExceptionId,
    ) -> Result<(), RepoError>;

    /// Exceptions that overlap `span`, ordered by start.
    async fn exceptions_overlapping(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        span: Interval,
    ) -> Result<Vec<ScheduleException>, RepoError>;
}

/// Filters for listing appointments; every field narrows the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppointmentFilter {
    /// With this practitioner.
    pub practitioner_id: Option<PractitionerId>,
    /// Of this patient.
    pub patient_id: Option<PatientId>,
    /// In this status.
    pub status: Option<AppointmentStatus>,
    /// Starting at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Starting before this instant.
    pub to: Option<DateTime<Utc>>,
}

/// Appointments.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AppointmentRepo: Send + Sync {
    /// Makes later bookings of this practitioner or patient wait until `tx` ends, and tells
    /// whether the patient is a live (not deleted) patient of the clinic: a booking asks both
    /// first, in one round trip. Taken before the booking rules are checked, so concurrent
    /// bookings see each other's result instead of deadlocking in the database's no-overlap
    /// check; that check stays the guarantee.
    async fn lock_parties(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        patient: PatientId,
    ) -> Result<bool, RepoError>;

    /// Stores a new appointment. MUST return `Overlap(party)` when the database's no-overlap
    /// rule rejects it (PostgreSQL exclusion constraint), and `NotFound` when its patient
    /// or practitioner does not exist in the clinic.
    async fn insert(&self, tx: &mut Tx, appointment: &Appointment) -> Result<(), RepoError>;

    /// The appointment of this clinic, unless absent or soft-deleted.
    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: AppointmentId,
    ) -> Result<Option<Appointment>, RepoError>;

    /// The appointments of this clinic among `ids` that are neither absent nor soft-deleted,
    /// in one query, in no particular order.
    async fn get_many(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        ids: &[AppointmentId],
    ) -> Result<Vec<Appointment>, RepoError>;

    /// Writes every field if the stored version is `expected_version`; MUST return `StaleVersion`
    /// or `NotFound` as for patients, and `Overlap` as for inserts.
    async fn update(
        &self,
        tx: &mut Tx,
        appointment: &Appointment,
        expected_version: i32,
    ) -> Result<(), RepoError>;

    /// Active, non-deleted appointments of the practitioner that overlap `span`, ordered by start.
    async fn active_for_practitioner(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        span: Interval,
    ) -> Result<Vec<Appointment>, RepoError>;

    /// Active, non-deleted appointments of the patient that overlap `span`, ordered by start.
    async fn active_for_patient(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        patient: PatientId,
        span: Interval,
    ) -> Result<Vec<Appointment>, RepoError>;

    /// The booking check's overlaps in one read: active, non-deleted appointments of the
    /// practitioner that overlap `practitioner_span` and those of the patient that overlap
    /// `patient_span`, each once (an appointment of both parties may satisfy either), ordered
    /// by start, then id.
    async fn active_for_parties(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        practitioner_span: Interval,
        patient: PatientId,
        patient_span: Interval,
    ) -> Result<Vec<Appointment>, RepoError>;

    /// One page of the clinic's appointments, ordered by start, then id.
    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &AppointmentFilter,
        page: PageRequest,
    ) -> Result<Page<Appointment>, RepoError>;

    /// Up to `limit` of the clinic's appointments ordered by start, then id, strictly after
    /// `after` when given (keyset pagination: rows inserted or removed elsewhere in the list
    /// shift no page). MUST compare the key exactly as the order sorts.
    async fn list_after(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &AppointmentFilter,
        after: Option<AppointmentKey>,
        limit: u32,
    ) -> Result<Vec<Appointment>, RepoError>;

    /// Up to `limit` non-deleted appointments of the clinic still booked or confirmed (nobody
    /// checked in) that started strictly before `started_before`, oldest start first, then by
    /// id: the no-show sweeper's candidates. MUST lock the rows it returns until `tx` ends and
    /// skip rows another transaction holds (PostgreSQL `FOR UPDATE SKIP LOCKED`), so that
    /// concurrent sweepers never take the same appointment.
    async fn overdue_unattended(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        started_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Appointment>, RepoError>;
}

/// Filters for reading the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// About this patient.
    pub patient_id: Option<PatientId>,
    /// By this user.
    pub actor_id: Option<UserId>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

/// The append-only audit log.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AuditRepo: Send + Sync {
    /// Appends an event in the caller's transaction, so it commits with the change it records;
    /// as with [`OutboxRepo::enqueue`], the write MAY be held back until the commit.
    async fn append(&self, tx: &mut Tx, event: &AuditEvent) -> Result<(), RepoError>;

    /// Appends an event of a read outside any unit of work and returns only once it is
    /// durable, so that the read it records may be answered. Adapters may write the events of
    /// concurrent callers together (one statement, one commit); when that write fails, every
    /// caller of the batch gets the error and MUST NOT answer the read it records.
    async fn record(&self, event: &AuditEvent) -> Result<(), RepoError>;

    /// Up to `limit` events newest first, strictly older than `before` when given (keyset pagination by id).
    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &AuditFilter,
        before: Option<AuditEventId>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, RepoError>;
}

/// Refresh tokens, stored by hash.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RefreshTokenRepo: Send + Sync {
    /// Stores a new token.
    async fn insert(&self, tx: &mut Tx, token: &RefreshToken) -> Result<(), RepoError>;

    /// The token with this hash, in any state; a refresh knows no clinic until it finds the token.
    async fn find_by_hash(
        &self,
        tx: &mut Tx,
        token_hash: &str,
    ) -> Result<Option<RefreshToken>, RepoError>;

    /// Marks a token exchanged for its successor; MUST return `StaleVersion` when it was already
    /// rotated or revoked (or is unknown), so two concurrent refreshes with one token cannot both succeed.
    /// After that `StaleVersion` the unit of work stays usable (the refresh goes on to revoke the family).
    async fn mark_rotated(
        &self,
        tx: &mut Tx,
        id: RefreshTokenId,
        at: DateTime<Utc>,
    ) -> Result<(), RepoError>;

    /// Revokes every token of a family not yet revoked; returns how many.
    async fn revoke_family(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        family: TokenFamilyId,
        at: DateTime<Utc>,
    ) -> Result<u64, RepoError>;

    /// Revokes every token of a user not yet revoked; returns how many.
    async fn revoke_user(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<u64, RepoError>;
}

/// Which queue entries a practitioner (or a board) looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueScope {
    /// Entries waiting for this practitioner, plus (with `department`) that department's and
    /// the clinic's general entries (those naming neither). `None`: no practitioner filter.
    pub practitioner_id: Option<PractitionerId>,
    /// Entries waiting for this department (and, with a practitioner, the general ones).
    pub department: Option<String>,
}

/// The walk-in queue.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait QueueRepo: Send + Sync {
    /// Stores a new entry. MUST return `Duplicate("appointment_id")` when the appointment already
    /// has an open entry, `AlreadyQueued` when the patient already has an open entry (waiting,
    /// called or in service), and `NotFound` when the patient, practitioner or appointment is
    /// not of the clinic.
    async fn insert(&self, tx: &mut Tx, entry: &QueueEntry) -> Result<(), RepoError>;

    /// The entry of this clinic, if any.
    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: QueueEntryId,
    ) -> Result<Option<QueueEntry>, RepoError>;

    /// Writes every field if the stored version is `expected_version`; MUST return `StaleVersion` or `NotFound`.
    async fn update(
        &self,
        tx: &mut Tx,
        entry: &QueueEntry,
        expected_version: i32,
    ) -> Result<(), RepoError>;

    /// Open entries (waiting, called, in service) in `scope`, in serve order:
    /// deadline, category rank, arrival, id.
    ///
    /// With a practitioner in the scope, an entry is in it when it names that practitioner, or
    /// names no practitioner and either no department or the scope's department. With only a
    /// department, when it names that department. With neither, every open entry.
    async fn open(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        scope: &QueueScope,
    ) -> Result<Vec<QueueEntry>, RepoError>;

    /// The first waiting entry in `scope` in serve order, locked for the rest of `tx` so that a
    /// concurrent caller skips it (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the write
    /// transaction already excludes other writers). `None` when nobody waits. Commit soon after:
    /// until `tx` ends, the entry is hidden from every other caller.
    async fn lock_next_waiting(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        scope: &QueueScope,
    ) -> Result<Option<QueueEntry>, RepoError>;

    /// The patient's open entry (waiting, called or in service), if any.
    async fn open_for_patient(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        patient: PatientId,
    ) -> Result<Option<QueueEntry>, RepoError>;

    /// The open entry of an appointment, if it is in the queue.
    async fn for_appointment(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        appointment: AppointmentId,
    ) -> Result<Option<QueueEntry>, RepoError>;

    /// Every entry (any status) that arrived within `span` (start included, end excluded),
    /// optionally of one practitioner (called by or waiting for them), in arrival order, for
    /// daily statistics.
    async fn arrived_within(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        span: Interval,
        practitioner: Option<PractitionerId>,
    ) -> Result<Vec<QueueEntry>, RepoError>;
}

/// Encounters (visit records).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait EncounterRepo: Send + Sync {
    /// Stores a new encounter.
    async fn insert(&self, tx: &mut Tx, encounter: &Encounter) -> Result<(), RepoError>;

    /// The encounter of this clinic, if any.
    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: EncounterId,
    ) -> Result<Option<Encounter>, RepoError>;

    /// Writes every field if the stored version is `expected_version`; MUST return `StaleVersion` or `NotFound`.
    async fn update(
        &self,
        tx: &mut Tx,
        encounter: &Encounter,
        expected_version: i32,
    ) -> Result<(), RepoError>;

    /// The open (not ended) encounter of a queue entry, if any.
    async fn open_for_entry(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        entry: QueueEntryId,
    ) -> Result<Option<Encounter>, RepoError>;

    /// The open (not ended) encounter of an appointment, if any.
    async fn open_for_appointment(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        appointment: AppointmentId,
    ) -> Result<Option<Encounter>, RepoError>;

    /// One page of a patient's encounters, newest first.
    async fn for_patient(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        patient: PatientId,
        page: PageRequest,
    ) -> Result<Page<Encounter>, RepoError>;

    /// The last `limit` ended encounters, newest first, optionally of some practitioners only:
    /// the history that wait estimates are made from.
    async fn recently_ended(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioners: &[PractitionerId],
        limit: u32,
    ) -> Result<Vec<Encounter>, RepoError>;
}

/// The transactional outbox.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait OutboxRepo: Send + Sync {
    /// Stores a message in the caller's transaction, so it exists exactly when the change that
    /// caused it commits. The write MAY be held back until the transaction commits (or until
    /// its next statement on the outbox), to travel with the other writes held back; an error
    /// then comes from the commit.
    async fn enqueue(&self, tx: &mut Tx, message: &OutboxMessage) -> Result<(), RepoError>;

    /// Stores every message of `messages` in the caller's transaction, as
    /// [`OutboxRepo::enqueue`] does for one, in one statement per few hundred messages (all the
    /// messages of one use case at once). MUST return the error `enqueue` would for any of them
    /// (the caller drops `tx`); nothing to store is no statement.
    async fn enqueue_many(&self, tx: &mut Tx, messages: &[OutboxMessage]) -> Result<(), RepoError>;

    /// Claims up to `limit` pending messages due at `now` (any clinic: the dispatcher serves
    /// them all), the oldest due first, in one statement: each claimed message gets one more
    /// attempt and `next_attempt_at = lease_until`, and is returned as stored after that, in
    /// id order. The rows stay locked for the rest of `tx`, so other dispatchers skip them
    /// (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the write transaction excludes other
    /// writers); once `tx` commits, the lease keeps them from being claimed until it ends.
    async fn claim_due(
        &self,
        tx: &mut Tx,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<OutboxMessage>, RepoError>;

    /// Writes a message's delivery state (status, attempts, next attempt, last error, delivered at).
    async fn record(&self, tx: &mut Tx, message: &OutboxMessage) -> Result<(), RepoError>;

    /// Writes the delivery state of every message in `messages` (of any clinics), as
    /// [`OutboxRepo::record`] does for one, in one statement per few hundred messages. MUST
    /// return `NotFound` when one of them does not exist (the caller drops `tx`).
    async fn record_all(&self, tx: &mut Tx, messages: &[OutboxMessage]) -> Result<(), RepoError>;

    /// Cancels the pending messages of `kind` about an appointment (reminders of a cancelled
    /// booking), in the caller's transaction; like [`OutboxRepo::enqueue`], the write MAY be
    /// held back until the commit, but it changes the messages that were pending in the order
    /// the calls were made.
    async fn cancel_pending(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        appointment: AppointmentId,
        kind: EventKind,
    ) -> Result<(), RepoError>;

    /// The message of this clinic, if any.
    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: OutboxMessageId,
    ) -> Result<Option<OutboxMessage>, RepoError>;

    /// One page of the clinic's messages, optionally in one status, newest first.
    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        status: Option<DeliveryStatus>,
        page: PageRequest,
    ) -> Result<Page<OutboxMessage>, RepoError>;

    /// Pending messages of every clinic, for the depth gauge.
    async fn pending_count(&self, tx: &mut Tx) -> Result<u64, RepoError>;
}

/// The answers of idempotent writes, kept per clinic, user and key.
///
/// A claim and its answer are written in the unit of work of the write they belong to, so
/// a key is remembered exactly when its write committed.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait IdempotencyRepo: Send + Sync {
    /// Claims the key for this request, or tells what its earlier, unexpired use answered.
    /// MUST wait for a concurrent unit of work holding the same key to end, so two requests
    /// with one key never both see [`Claimed::Fresh`].
    async fn claim(&self, tx: &mut Tx, claim: &KeyClaim) -> Result<Claimed, RepoError>;

    /// Stores the answer of the write that claimed the key in this unit of work.
    async fn answer(
        &self,
        tx: &mut Tx,
        claim: &KeyClaim,
        answer: &StoredAnswer,
    ) -> Result<(), RepoError>;

    /// Forgets the keys expired at `now`; returns how many.
    async fn purge_expired(&self, tx: &mut Tx, now: DateTime<Utc>) -> Result<u64, RepoError>;
}
