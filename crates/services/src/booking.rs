//! Booking: the conflict-free creation of appointments, their status moves and reschedules.
//!
//! The checks here answer early with a helpful conflict (the interval taken and the next
//! free slots), but correctness never rests on them alone: on PostgreSQL the exclusion
//! constraints reject an overlapping write that raced past the check, and on SQLite the
//! check runs inside a `BEGIN IMMEDIATE` transaction that no other writer can interleave.

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::appointment::{parse_duration_minutes, parse_reason, parse_start};
use clinicflow_domain::page::{AppointmentKey, Limit};
use clinicflow_domain::schedule::utc_span;
use clinicflow_domain::{
    Actor, Appointment, AppointmentId, AppointmentStatus, AuditAction, BookingRequest,
    BookingViolation, Clinic, ClinicId, EventKind, Interval, InvalidValue, Page, PageRequest,
    PatientId, Permission, PractitionerId, ResourceType, Urgency,
};
use clinicflow_ports::{AppointmentFilter, OverlapParty, RepoError, Tx, TxMode};
use uuid::Uuid;

use crate::audit::{self, Access, own_practitioner};
use crate::encounter::{Visit, close_visit, open_visit};
use crate::error::ConflictKind;
use crate::idempotency::{self, Answered, Once, Outcome};
use crate::outbox::{announce_appointment, withdraw_reminders};
use crate::schedule::{Calendar, next_free_slots};
use crate::{Conflict, FieldErrors, Ports, ServiceError, input};

/// An appointment to book, as sent by a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookInput {
    /// The patient's id.
    pub patient_id: String,
    /// The practitioner's id.
    pub practitioner_id: String,
    /// RFC 3339 start.
    pub starts_at: String,
    /// Length (default: the practitioner's slot length).
    pub duration_minutes: Option<u32>,
    /// routine, urgent or emergency (default routine).
    pub urgency: Option<String>,
    /// Why the patient comes.
    pub reason: Option<String>,
    /// Book outside availability or in the past (admins and practitioners only).
    pub overbook: bool,
}

/// A new time for an existing appointment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RescheduleInput {
    /// RFC 3339 start.
    pub starts_at: String,
    /// Length (default: the old appointment's length).
    pub duration_minutes: Option<u32>,
}

/// A status move requested through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppointmentAction {
    /// booked -> confirmed.
    Confirm,
    /// confirmed -> checked_in, inside the clinic's check-in window unless `override_window`
    /// (an audited override, for those who may).
    CheckIn {
        /// Check in outside the window.
        override_window: bool,
    },
    /// checked_in -> in_progress.
    Start,
    /// in_progress -> completed.
    Complete,
    /// booked|confirmed -> cancelled, with an optional reason.
    Cancel(Option<String>),
    /// booked|confirmed -> no_show, after start + grace.
    NoShow,
}

impl AppointmentAction {
    fn permission(&self) -> Permission {
        match self {
            AppointmentAction::Cancel(_) => Permission::BookAppointments,
            _ => Permission::RunAppointments,
        }
    }

    fn target(&self) -> AppointmentStatus {
        match self {
            AppointmentAction::Confirm => AppointmentStatus::Confirmed,
            AppointmentAction::CheckIn { .. } => AppointmentStatus::CheckedIn,
            AppointmentAction::Start => AppointmentStatus::InProgress,
            AppointmentAction::Complete => AppointmentStatus::Completed,
            AppointmentAction::Cancel(_) => AppointmentStatus::Cancelled,
            AppointmentAction::NoShow => AppointmentStatus::NoShow,
        }
    }
}

/// Filters for listing appointments, as sent by a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppointmentQuery {
    /// Practitioner id.
    pub practitioner_id: Option<String>,
    /// Patient id.
    pub patient_id: Option<String>,
    /// Status name.
    pub status: Option<String>,
    /// RFC 3339: starting at or after.
    pub from: Option<String>,
    /// RFC 3339: starting before.
    pub to: Option<String>,
}

/// One status move as [`BookingService::apply`] makes it.
#[derive(Debug, Clone, Copy)]
struct Step<'a> {
    action: &'a AppointmentAction,
    now: DateTime<Utc>,
    /// Whether its event goes out (a cancellation, a no-show); reminders are withdrawn anyway.
    announce: bool,
}

/// How long after an appointment ended a staff move on it is still news to announce.
///
/// Later moves correct the record (a no-show entered days late, a demo's history) and tell
/// nobody, as the no-show sweeper by default does not announce what it marks a day late.
fn news_after_end() -> Duration {
    Duration::hours(24)
}

impl<'a> Step<'a> {
    /// A move made by staff on `appointment`: announced unless its end is long past.
    fn by_staff(
        action: &'a AppointmentAction,
        appointment: &Appointment,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            action,
            now,
            announce: appointment.interval.end() + news_after_end() > now,
        }
    }
}

/// One run of the no-show sweeper over every clinic.
#[derive(Debug, Clone, Copy)]
struct Sweep {
    now: DateTime<Utc>,
    limit: u32,
    announce_within: Duration,
}

/// What one no-show sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Clinics swept.
    pub clinics: usize,
    /// Appointments marked no-show.
    pub marked: usize,
    /// Marks given up because the appointment or its queue entry changed meanwhile; one that
    /// is still overdue is claimed again, in this sweep or the next.
    pub skipped: usize,
    /// Clinics that used up the sweep's limit and may have more to mark.
    pub clinics_at_limit: usize,
    /// Clinics whose sweep failed (logged with the clinic id); the others were swept anyway.
    pub clinics_failed: usize,
}

/// Books appointments and moves them through their life.
#[derive(Debug, Clone)]
pub struct BookingService {
    ports: Ports,
}

/// What the booking checks need beyond the request itself.
struct Booking {
    patient_id: PatientId,
    practitioner_id: PractitionerId,
    interval: Interval,
    overbook: bool,
    /// An appointment being replaced, whose time does not count as taken.
    replacing: Option<AppointmentId>,
}

impl BookingService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// Books an appointment, or explains the conflict with the next free slots.
    #[tracing::instrument(skip_all)]
    pub async fn book(&self, actor: &Actor, input: BookInput) -> Result<Appointment, ServiceError> {
        self.book_with(actor, input, None).await?.value()
    }

    /// Books at most once per idempotency key: a retry gets the first booking's answer.
    #[tracing::instrument(skip_all)]
    pub async fn book_idempotent(
        &self,
        actor: &Actor,
        input: BookInput,
        once: &Once<'_, Appointment>,
    ) -> Result<Answered, ServiceError> {
        self.book_with(actor, input, Some(once)).await?.answered()
    }

    async fn book_with(
        &self,
        actor: &Actor,
        input: BookInput,
        once: Option<&Once<'_, Appointment>>,
    ) -> Result<Outcome<Appointment>, ServiceError> {
        // Concurrent inserts can deadlock in PostgreSQL's exclusion-constraint checks; the
        // database aborts one, and running it again turns it into the conflict it is.
        crate::error::retrying(|| self.try_book(actor, &input, once)).await
    }

    async fn try_book(
        &self,
        actor: &Actor,
        input: &BookInput,
        once: Option<&Once<'_, Appointment>>,
    ) -> Result<Outcome<Appointment>, ServiceError> {
        let create = Access::kind(AuditAction::Create, ResourceType::Appointment);
        audit::require(&self.ports, actor, Permission::BookAppointments, create).await?;
        if input.overbook {
            let overbook = Access {
                action: AuditAction::Overbook,
                ..create
            };
            audit::require(&self.ports, actor, Permission::Overbook, overbook).await?;
        }
        let mut errors = FieldErrors::new();
        let patient_id = errors
            .check("patient_id", input::id(&input.patient_id))
            .map(PatientId::from_uuid);
        let practitioner_id = errors
            .check("practitioner_id", input::id(&input.practitioner_id))
            .map(PractitionerId::from_uuid);
        let start = errors.check(
            "starts_at",
            input::instant(&input.starts_at).and_then(parse_start),
        );
        let duration = input
            .duration_minutes
            .and_then(|m| errors.check("duration_minutes", parse_duration_minutes(m)));
        let urgency = errors.check(
            "urgency",
            input
                .urgency
                .as_deref()
                .unwrap_or("routine")
                .parse::<Urgency>(),
        );
        let reason = errors.check("reason", parse_reason(input.reason.as_deref()));
        errors.into_result()?;
        let (Some(patient_id), Some(practitioner_id), Some(start), Some(urgency), Some(reason)) =
            (patient_id, practitioner_id, start, urgency, reason)
        else {
            unreachable!("every field parsed when no error was recorded")
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        if let Some(earlier) = idempotency::claim(&self.ports, &mut tx, actor, once).await? {
            return Ok(earlier);
        }
        self.ports
            .appointments
            .lock_parties(&mut tx, actor.clinic_id, practitioner_id, patient_id)
            .await?;
        let practitioner = self
            .ports
            .practitioners
            .get(&mut tx, actor.clinic_id, practitioner_id)
            .await?
            .ok_or_else(|| {
                FieldErrors::single("practitioner_id", "no such practitioner in this clinic")
            })?;
        if self
            .ports
            .patients
            .get(&mut tx, actor.clinic_id, patient_id)
            .await?
            .is_none()
        {
            return Err(FieldErrors::single(
                "patient_id",
                "no such patient in this clinic",
            ));
        }
        let length =
            duration.unwrap_or_else(|| Duration::minutes(i64::from(practitioner.slot_minutes)));
        let interval = Interval::starting_at(start, length)
            .map_err(|e| FieldErrors::single("starts_at", e.0))?;
        let now = self.ports.clock.now();
        let booking = Booking {
            patient_id,
            practitioner_id,
            interval,
            overbook: input.overbook,
            replacing: None,
        };
        if let Err(violation) = self.check(&mut tx, actor, &booking).await? {
            drop(tx);
            return Err(self.conflict(actor, &booking, violation).await);
        }
        let appointment = Appointment {
            id: AppointmentId::from_uuid(Uuid::now_v7()),
            clinic_id: actor.clinic_id,
            patient_id,
            practitioner_id,
            interval,
            urgency,
            reason,
            status: AppointmentStatus::Booked,
            version: 1,
            rescheduled_from: None,
            rescheduled_to: None,
            cancelled_by: None,
            cancel_reason: None,
            overbooked: input.overbook,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        match self.ports.appointments.insert(&mut tx, &appointment).await {
            Ok(()) => {}
            Err(RepoError::Overlap(party)) => {
                drop(tx);
                return Err(self.lost_race(actor, &booking, party).await);
            }
            Err(e) => return Err(e.into()),
        }
        // An overbooking waives the booking rules: its event says so, to be found in the log.
        let made = if appointment.overbooked {
            AuditAction::Overbook
        } else {
            AuditAction::Create
        };
        let access = Access::appointment(made, appointment.id, patient_id);
        audit::record(&self.ports, &mut tx, actor, access).await?;
        announce_appointment(
            &self.ports,
            &mut tx,
            EventKind::BookingConfirmed,
            &appointment,
            now,
        )
        .await?;
        let id = appointment.id;
        let outcome = idempotency::finish(&self.ports, &mut tx, actor, once, appointment).await?;
        tx.commit().await?;
        tracing::debug!(appointment_id = %id, "appointment booked");
        Ok(outcome)
    }

    /// Runs the booking rules inside `tx`; the outer error is a failure, the inner one a rule violation.
    async fn check(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        booking: &Booking,
    ) -> Result<Result<(), BookingViolation>, ServiceError> {
        let clinic = crate::clinic::clinic_settings(&self.ports, tx, actor.clinic_id).await?;
        let practitioner = self
            .ports
            .practitioners
            .get(tx, actor.clinic_id, booking.practitioner_id)
            .await?
            .ok_or(ServiceError::NotFound("practitioner"))?;
        // Not a rule violation with next free slots: a deactivated practitioner has none.
        if !practitioner.active {
            return Err(ServiceError::PractitionerInactive);
        }
        let buffer = Duration::minutes(i64::from(practitioner.buffer_minutes));
        let from = clinic.local_date(booking.interval.start());
        let to = clinic.local_date(booking.interval.end()) + Duration::days(1);
        let calendar =
            Calendar::load(&self.ports, tx, &clinic, &practitioner, utc_span(from, to)).await?;
        let practitioner_busy: Vec<Interval> = self
            .ports
            .appointments
            .active_for_practitioner(
                tx,
                actor.clinic_id,
                booking.practitioner_id,
                booking.interval.widened(buffer, buffer),
            )
            .await?
            .into_iter()
            .filter(|a| Some(a.id) != booking.replacing)
            .map(|a| a.interval)
            .collect();
        let patient_busy: Vec<Interval> = self
            .ports
            .appointments
            .active_for_patient(tx, actor.clinic_id, booking.patient_id, booking.interval)
            .await?
            .into_iter()
            .filter(|a| Some(a.id) != booking.replacing)
            .map(|a| a.interval)
            .collect();
        let request = BookingRequest {
            interval: booking.interval,
            now: self.ports.clock.now(),
            overbook: booking.overbook,
            available: calendar
                .availability(&clinic, &practitioner)
                .covers(&booking.interval),
            buffer,
            practitioner_busy: &practitioner_busy,
            patient_busy: &patient_busy,
        };
        Ok(request.check())
    }

    /// Turns a rule violation into the error the client sees, with the next free slots.
    async fn conflict(
        &self,
        actor: &Actor,
        booking: &Booking,
        violation: BookingViolation,
    ) -> ServiceError {
        let kind = match violation {
            BookingViolation::InPast => return ServiceError::BookingInPast,
            BookingViolation::OutsideAvailability => ConflictKind::OutsideAvailability,
            BookingViolation::PractitionerBusy { with } => ConflictKind::Overlap {
                party: OverlapParty::Practitioner,
                with: Some(with),
            },
            BookingViolation::PatientBusy { with } => ConflictKind::Overlap {
                party: OverlapParty::Patient,
                with: Some(with),
            },
        };
        self.with_next_slots(actor, booking, kind).await
    }

    /// A write that the database refused because another booking committed first.
    async fn lost_race(
        &self,
        actor: &Actor,
        booking: &Booking,
        party: OverlapParty,
    ) -> ServiceError {
        let with = self
            .taken_interval(actor, booking, party)
            .await
            .ok()
            .flatten();
        self.with_next_slots(actor, booking, ConflictKind::Overlap { party, with })
            .await
    }

    async fn taken_interval(
        &self,
        actor: &Actor,
        booking: &Booking,
        party: OverlapParty,
    ) -> Result<Option<Interval>, ServiceError> {
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let found = match party {
            OverlapParty::Practitioner => {
                self.ports
                    .appointments
                    .active_for_practitioner(
                        &mut tx,
                        actor.clinic_id,
                        booking.practitioner_id,
                        booking.interval,
                    )
                    .await?
            }
            OverlapParty::Patient => {
                self.ports
                    .appointments
                    .active_for_patient(
                        &mut tx,
                        actor.clinic_id,
                        booking.patient_id,
                        booking.interval,
                    )
                    .await?
            }
        };
        Ok(found.first().map(|a| a.interval))
    }

    async fn with_next_slots(
        &self,
        actor: &Actor,
        booking: &Booking,
        kind: ConflictKind,
    ) -> ServiceError {
        match next_free_slots(
            &self.ports,
            actor,
            booking.practitioner_id,
            booking.interval.start(),
        )
        .await
        {
            Ok(next_slots) => ServiceError::BookingConflict(Conflict {
                kind,
                next_slots,
                practitioner_id: booking.practitioner_id,
            }),
            Err(e) => e,
        }
    }

    /// One appointment of the actor's clinic.
    pub async fn get(&self, actor: &Actor, id: AppointmentId) -> Result<Appointment, ServiceError> {
        let read = Access {
            resource_id: Some(id.as_uuid()),
            ..Access::kind(AuditAction::Read, ResourceType::Appointment)
        };
        audit::require(&self.ports, actor, Permission::ReadAppointments, read).await?;
        // A write transaction: the read is recorded in the audit log in the same unit of work.
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let appointment = self.visible(&mut tx, actor, id).await?;
        let access = Access::appointment(AuditAction::Read, id, appointment.patient_id);
        audit::record(&self.ports, &mut tx, actor, access).await?;
        tx.commit().await?;
        Ok(appointment)
    }

    /// The appointment, if the actor may see it: a practitioner sees only their own.
    async fn visible(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: AppointmentId,
    ) -> Result<Appointment, ServiceError> {
        self.ports
            .appointments
            .get(tx, actor.clinic_id, id)
            .await?
            .filter(|a| own_practitioner(actor).is_none_or(|own| a.practitioner_id == own))
            .ok_or(ServiceError::NotFound("appointment"))
    }

    /// One page of appointments by practitioner, patient, status and start range.
    pub async fn list(
        &self,
        actor: &Actor,
        query: AppointmentQuery,
        page: PageRequest,
    ) -> Result<Page<Appointment>, ServiceError> {
        let access = Access::list(ResourceType::Appointment, None);
        audit::require(&self.ports, actor, Permission::ReadAppointments, access).await?;
        let mut errors = FieldErrors::new();
        let filter = list_filter(&query, &mut errors);
        errors.into_result()?;
        let Some(filter) = visible_to(actor, filter) else {
            return Ok(Page {
                items: Vec::new(),
                total: 0,
                request: page,
            });
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let found = self
            .ports
            .appointments
            .list(&mut tx, actor.clinic_id, &filter, page)
            .await?;
        let access = Access::list(ResourceType::Appointment, filter.patient_id);
        audit::record(&self.ports, &mut tx, actor, access).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// One keyset page of appointments ordered by start, then id, filtered as
    /// [`BookingService::list`] does, after the position `cursor` names (from the start without
    /// one), and the cursor of the next page when there is one.
    pub async fn list_after(
        &self,
        actor: &Actor,
        query: AppointmentQuery,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<Appointment>, Option<String>), ServiceError> {
        let access = Access::list(ResourceType::Appointment, None);
        audit::require(&self.ports, actor, Permission::ReadAppointments, access).await?;
        let mut errors = FieldErrors::new();
        let filter = list_filter(&query, &mut errors);
        // An empty cursor (`?cursor=`) asks for the first page.
        let after = cursor
            .filter(|c| !c.trim().is_empty())
            .and_then(|c| errors.check("cursor", parse_cursor(c)));
        let limit = errors.check("limit", Limit::parse(limit));
        errors.into_result()?;
        let Some(limit) = limit else {
            unreachable!("the limit parsed when no error was recorded")
        };
        let Some(filter) = visible_to(actor, filter) else {
            return Ok((Vec::new(), None));
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let mut found = self
            .ports
            .appointments
            .list_after(&mut tx, actor.clinic_id, &filter, after, limit.fetch())
            .await?;
        let access = Access::list(ResourceType::Appointment, filter.patient_id);
        audit::record(&self.ports, &mut tx, actor, access).await?;
        tx.commit().await?;
        let next = if limit.cut(&mut found) {
            found.last().map(cursor_of)
        } else {
            None
        };
        Ok((found, next))
    }

    async fn load_for_change(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: AppointmentId,
        if_match: Option<i32>,
    ) -> Result<Appointment, ServiceError> {
        let appointment = self.visible(tx, actor, id).await?;
        if if_match.is_some_and(|v| v != appointment.version) {
            return Err(ServiceError::PreconditionFailed {
                current: Some(appointment.version),
            });
        }
        Ok(appointment)
    }

    /// Moves an appointment to its next status; `if_match` (a version) guards against lost updates.
    #[tracing::instrument(skip_all, fields(appointment_id = %id))]
    pub async fn act(
        &self,
        actor: &Actor,
        id: AppointmentId,
        action: AppointmentAction,
        if_match: Option<i32>,
    ) -> Result<Appointment, ServiceError> {
        self.act_with(actor, id, action, if_match, None)
            .await?
            .value()
    }

    /// Moves an appointment's status at most once per idempotency key: a retry gets the
    /// first move's answer instead of an illegal-transition or stale-version error.
    #[tracing::instrument(skip_all, fields(appointment_id = %id))]
    pub async fn act_idempotent(
        &self,
        actor: &Actor,
        id: AppointmentId,
        action: AppointmentAction,
        if_match: Option<i32>,
        once: &Once<'_, Appointment>,
    ) -> Result<Answered, ServiceError> {
        self.act_with(actor, id, action, if_match, Some(once))
            .await?
            .answered()
    }

    async fn act_with(
        &self,
        actor: &Actor,
        id: AppointmentId,
        action: AppointmentAction,
        if_match: Option<i32>,
        once: Option<&Once<'_, Appointment>>,
    ) -> Result<Outcome<Appointment>, ServiceError> {
        let update = Access {
            resource_id: Some(id.as_uuid()),
            ..Access::kind(AuditAction::Update, ResourceType::Appointment)
        };
        audit::require(&self.ports, actor, action.permission(), update).await?;
        if matches!(
            action,
            AppointmentAction::CheckIn {
                override_window: true
            }
        ) {
            let overriding = Access {
                action: AuditAction::Override,
                ..update
            };
            audit::require(&self.ports, actor, Permission::OverrideCheckIn, overriding).await?;
        }
        // Checked before anything is read, so a bad reason touches nothing; from here on the
        // action carries the cleaned reason.
        let action = match action {
            AppointmentAction::Cancel(reason) => AppointmentAction::Cancel(
                parse_reason(reason.as_deref()).map_err(|e| FieldErrors::single("reason", e.0))?,
            ),
            other => other,
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        if let Some(earlier) = idempotency::claim(&self.ports, &mut tx, actor, once).await? {
            return Ok(earlier);
        }
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        let mut appointment = self.load_for_change(&mut tx, actor, id, if_match).await?;
        let now = self.ports.clock.now();
        let step = Step::by_staff(&action, &appointment, now);
        let queue_changed = self
            .apply(&mut tx, actor, &clinic, &mut appointment, step)
            .await?;
        let outcome = idempotency::finish(&self.ports, &mut tx, actor, once, appointment).await?;
        tx.commit().await?;
        if queue_changed {
            crate::queue::announce(&self.ports, actor.clinic_id).await;
        }
        Ok(outcome)
    }

    /// Applies `action` to `appointment` in `tx` with everything that goes with a status move:
    /// the version-checked write, the audit event, the outbox event and the queue's step.
    /// Returns whether the queue changed, for the caller to announce once `tx` has committed.
    async fn apply(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        clinic: &Clinic,
        appointment: &mut Appointment,
        step: Step<'_>,
    ) -> Result<bool, ServiceError> {
        let Step {
            action,
            now,
            announce,
        } = step;
        let expected = appointment.version;
        let grace = Duration::minutes(i64::from(clinic.no_show_grace_minutes));
        // The window is checked only for a check-in the machine allows, so a move that is
        // illegal anyway keeps its `illegal_transition` answer.
        if let AppointmentAction::CheckIn {
            override_window: false,
        } = action
            && appointment
                .status
                .allowed_moves()
                .contains(&AppointmentStatus::CheckedIn)
        {
            clinic.check_in_allowed(appointment.interval.start(), now)?;
        }
        appointment.transition(action.target(), now, grace)?;
        if let AppointmentAction::Cancel(reason) = action {
            appointment.cancelled_by = Some(actor.user_id);
            appointment.cancel_reason = reason.clone();
        }
        self.ports
            .appointments
            .update(tx, appointment, expected)
            .await?;
        let made = match action {
            AppointmentAction::CheckIn {
                override_window: true,
            } => AuditAction::Override,
            _ => AuditAction::Update,
        };
        let access = Access::appointment(made, appointment.id, appointment.patient_id);
        audit::record(&self.ports, tx, actor, access).await?;
        let event = match action {
            AppointmentAction::Cancel(_) => Some(EventKind::BookingCancelled),
            AppointmentAction::NoShow => Some(EventKind::NoShow),
            _ => None,
        };
        if let Some(kind) = event {
            if announce {
                announce_appointment(&self.ports, tx, kind, appointment, now).await?;
            } else {
                withdraw_reminders(&self.ports, tx, appointment).await?;
            }
        }
        // The queue follows the appointment in the same unit of work: a check-in joins it
        // (unless the appointment's time is already over, as when staff record a past
        // visit), and starting, completing, cancelling or a no-show move its open entry along.
        if matches!(action, AppointmentAction::CheckIn { .. }) {
            let due = now < appointment.interval.end();
            if due {
                crate::queue::enqueue_appointment(&self.ports, tx, clinic, appointment, now)
                    .await?;
            }
            return Ok(due);
        }
        let moved = crate::queue::follow_appointment(&self.ports, tx, appointment, now).await?;
        // The visit's record follows too, whichever route moves it: starting opens the
        // encounter (the queue's start opens it the same way), completing closes it.
        match action {
            AppointmentAction::Start => self.open_encounter(tx, actor, appointment, now).await?,
            AppointmentAction::Complete => {
                if let Some(open) = self
                    .ports
                    .encounters
                    .open_for_appointment(tx, appointment.clinic_id, appointment.id)
                    .await?
                {
                    close_visit(&self.ports, tx, open, now).await?;
                }
            }
            _ => {}
        }
        Ok(moved)
    }

    /// Opens the encounter of an appointment whose visit starts, linked to its queue entry
    /// when the patient was queued.
    async fn open_encounter(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        appointment: &Appointment,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let entry = self
            .ports
            .queue
            .for_appointment(tx, appointment.clinic_id, appointment.id)
            .await?;
        let visit = Visit {
            patient_id: appointment.patient_id,
            practitioner_id: appointment.practitioner_id,
            appointment_id: Some(appointment.id),
            queue_entry_id: entry.map(|e| e.id),
        };
        open_visit(&self.ports, tx, actor, visit, now).await?;
        Ok(())
    }

    /// Marks as no-shows, in every clinic, the appointments nobody checked in for by their
    /// start plus the clinic's grace: at most `limit` per clinic, each in its own unit of work,
    /// recorded as done by clinicflow itself ([`Actor::system`]) and announced like a no-show
    /// recorded by staff when it started within `announce_within`. An appointment that
    /// changes meanwhile is skipped.
    #[tracing::instrument(skip_all)]
    pub async fn sweep_no_shows(
        &self,
        limit: u32,
        announce_within: Duration,
    ) -> Result<SweepReport, ServiceError> {
        let now = self.ports.clock.now();
        let clinics = {
            let mut tx = self.ports.db.begin(TxMode::Read).await?;
            self.ports.clinics.list_ids(&mut tx).await?
        };
        let mut report = SweepReport::default();
        let sweep = Sweep {
            now,
            limit,
            announce_within,
        };
        for clinic in clinics {
            // Each clinic on its own: one clinic's broken row or failing query must not leave
            // every later clinic's no-shows unmarked.
            if let Err(e) = self.sweep_clinic(clinic, &sweep, &mut report).await {
                report.clinics_failed += 1;
                tracing::warn!(clinic_id = %clinic, error = %e, "no-show sweep of a clinic failed; the other clinics are swept, this one again at the next interval");
            }
        }
        if report.marked > 0 || report.skipped > 0 || report.clinics_failed > 0 {
            tracing::info!(
                marked = report.marked,
                skipped = report.skipped,
                clinics_failed = report.clinics_failed,
                "no-show sweep"
            );
        }
        Ok(report)
    }

    async fn sweep_clinic(
        &self,
        id: ClinicId,
        sweep: &Sweep,
        report: &mut SweepReport,
    ) -> Result<(), ServiceError> {
        let actor = Actor::system(id);
        actor.require(AppointmentAction::NoShow.permission())?;
        let clinic = {
            let mut tx = self.ports.db.begin(TxMode::Read).await?;
            crate::clinic::clinic_settings(&self.ports, &mut tx, id).await?
        };
        report.clinics += 1;
        let mut queue_changed = false;
        let outcome = self
            .mark_no_shows(&actor, &clinic, sweep, report, &mut queue_changed)
            .await;
        // Marks already committed reach the boards even when a later one failed.
        if queue_changed {
            crate::queue::announce(&self.ports, id).await;
        }
        outcome
    }

    async fn mark_no_shows(
        &self,
        actor: &Actor,
        clinic: &Clinic,
        sweep: &Sweep,
        report: &mut SweepReport,
        queue_changed: &mut bool,
    ) -> Result<(), ServiceError> {
        let Sweep {
            now,
            limit,
            announce_within,
        } = *sweep;
        let started_before = now - Duration::minutes(i64::from(clinic.no_show_grace_minutes));
        for _ in 0..limit {
            let mut tx = self.ports.db.begin(TxMode::Write).await?;
            // Claimed in the unit of work that marks it, so one checked in meanwhile is no
            // longer found, and one another sweeper holds is passed over.
            let Some(mut appointment) = self
                .ports
                .appointments
                .overdue_unattended(&mut tx, actor.clinic_id, started_before, 1)
                .await?
                .pop()
            else {
                return Ok(());
            };
            let action = AppointmentAction::NoShow;
            // An old appointment is set right silently: nobody should be told today that
            // they missed a visit weeks ago (as on the sweeper's first run over old data).
            let announce = appointment.interval.start() >= now - announce_within;
            match self
                .apply(
                    &mut tx,
                    actor,
                    clinic,
                    &mut appointment,
                    Step {
                        action: &action,
                        now,
                        announce,
                    },
                )
                .await
            {
                Ok(changed) => {
                    tx.commit().await?;
                    report.marked += 1;
                    *queue_changed |= changed;
                    tracing::debug!(appointment_id = %appointment.id, "appointment marked no-show");
                }
                // A version check failed: the appointment or its queue entry changed while it
                // was being marked. Dropping `tx` undoes the rest.
                Err(ServiceError::PreconditionFailed { .. }) => report.skipped += 1,
                Err(e) => return Err(e),
            }
        }
        report.clinics_at_limit += 1;
        Ok(())
    }

    /// Cancels an appointment and books its replacement in one unit of work, linking both.
    /// Returns the new appointment.
    #[tracing::instrument(skip_all, fields(appointment_id = %id))]
    pub async fn reschedule(
        &self,
        actor: &Actor,
        id: AppointmentId,
        input: RescheduleInput,
        if_match: Option<i32>,
    ) -> Result<Appointment, ServiceError> {
        self.reschedule_with(actor, id, input, if_match, None)
            .await?
            .value()
    }

    /// Reschedules at most once per idempotency key: a retry gets the first answer.
    #[tracing::instrument(skip_all, fields(appointment_id = %id))]
    pub async fn reschedule_idempotent(
        &self,
        actor: &Actor,
        id: AppointmentId,
        input: RescheduleInput,
        if_match: Option<i32>,
        once: &Once<'_, Appointment>,
    ) -> Result<Answered, ServiceError> {
        self.reschedule_with(actor, id, input, if_match, Some(once))
            .await?
            .answered()
    }

    async fn reschedule_with(
        &self,
        actor: &Actor,
        id: AppointmentId,
        input: RescheduleInput,
        if_match: Option<i32>,
        once: Option<&Once<'_, Appointment>>,
    ) -> Result<Outcome<Appointment>, ServiceError> {
        crate::error::retrying(|| self.try_reschedule(actor, id, &input, if_match, once)).await
    }

    async fn try_reschedule(
        &self,
        actor: &Actor,
        id: AppointmentId,
        input: &RescheduleInput,
        if_match: Option<i32>,
        once: Option<&Once<'_, Appointment>>,
    ) -> Result<Outcome<Appointment>, ServiceError> {
        let update = Access {
            resource_id: Some(id.as_uuid()),
            ..Access::kind(AuditAction::Update, ResourceType::Appointment)
        };
        audit::require(&self.ports, actor, Permission::BookAppointments, update).await?;
        let mut errors = FieldErrors::new();
        let start = errors.check(
            "starts_at",
            input::instant(&input.starts_at).and_then(parse_start),
        );
        let duration = input
            .duration_minutes
            .and_then(|m| errors.check("duration_minutes", parse_duration_minutes(m)));
        errors.into_result()?;
        let Some(start) = start else {
            unreachable!("parsed when no error was recorded")
        };

        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        if let Some(earlier) = idempotency::claim(&self.ports, &mut tx, actor, once).await? {
            return Ok(earlier);
        }
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        let mut old = self.load_for_change(&mut tx, actor, id, if_match).await?;
        self.ports
            .appointments
            .lock_parties(
                &mut tx,
                actor.clinic_id,
                old.practitioner_id,
                old.patient_id,
            )
            .await?;
        let interval = Interval::starting_at(start, duration.unwrap_or(old.interval.duration()))
            .map_err(|e| FieldErrors::single("starts_at", e.0))?;
        let now = self.ports.clock.now();
        let expected = old.version;
        let grace = Duration::minutes(i64::from(clinic.no_show_grace_minutes));
        old.transition(AppointmentStatus::Cancelled, now, grace)?;
        let booking = Booking {
            patient_id: old.patient_id,
            practitioner_id: old.practitioner_id,
            interval,
            overbook: false,
            replacing: Some(old.id),
        };
        if let Err(violation) = self.check(&mut tx, actor, &booking).await? {
            drop(tx);
            return Err(self.conflict(actor, &booking, violation).await);
        }
        let new = Appointment {
            id: AppointmentId::from_uuid(Uuid::now_v7()),
            interval,
            status: AppointmentStatus::Booked,
            version: 1,
            rescheduled_from: Some(old.id),
            rescheduled_to: None,
            cancelled_by: None,
            cancel_reason: None,
            overbooked: false,
            created_at: now,
            updated_at: now,
            ..old.clone()
        };
        old.rescheduled_to = Some(new.id);
        old.cancelled_by = Some(actor.user_id);
        old.cancel_reason = Some("rescheduled".to_owned());
        // The old appointment stops holding its time before the new one claims time,
        // so an overlap of old and new is not mistaken for a conflict by the database.
        self.ports
            .appointments
            .update(&mut tx, &old, expected)
            .await?;
        match self.ports.appointments.insert(&mut tx, &new).await {
            Ok(()) => {}
            Err(RepoError::Overlap(party)) => {
                drop(tx);
                return Err(self.lost_race(actor, &booking, party).await);
            }
            Err(e) => return Err(e.into()),
        }
        audit::record(
            &self.ports,
            &mut tx,
            actor,
            Access::appointment(AuditAction::Update, old.id, old.patient_id),
        )
        .await?;
        audit::record(
            &self.ports,
            &mut tx,
            actor,
            Access::appointment(AuditAction::Create, new.id, new.patient_id),
        )
        .await?;
        announce_appointment(
            &self.ports,
            &mut tx,
            EventKind::BookingRescheduled,
            &old,
            now,
        )
        .await?;
        announce_appointment(&self.ports, &mut tx, EventKind::BookingConfirmed, &new, now).await?;
        let outcome = idempotency::finish(&self.ports, &mut tx, actor, once, new).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

/// The filter an appointment list asks for; bad values are added to `errors`.
fn list_filter(query: &AppointmentQuery, errors: &mut FieldErrors) -> AppointmentFilter {
    AppointmentFilter {
        practitioner_id: query
            .practitioner_id
            .as_deref()
            .and_then(|v| errors.check("practitioner_id", input::id(v)))
            .map(PractitionerId::from_uuid),
        patient_id: query
            .patient_id
            .as_deref()
            .and_then(|v| errors.check("patient_id", input::id(v)))
            .map(PatientId::from_uuid),
        status: query
            .status
            .as_deref()
            .and_then(|v| errors.check("status", v.parse())),
        from: query
            .from
            .as_deref()
            .and_then(|v| errors.check("from", input::instant(v))),
        to: query
            .to
            .as_deref()
            .and_then(|v| errors.check("to", input::instant(v))),
    }
}

/// `filter` narrowed to what the actor may see: a practitioner sees only their own
/// appointments, so asking for another practitioner's is an empty list (`None`).
fn visible_to(actor: &Actor, mut filter: AppointmentFilter) -> Option<AppointmentFilter> {
    if let Some(own) = own_practitioner(actor) {
        if filter.practitioner_id.is_some_and(|p| p != own) {
            return None;
        }
        filter.practitioner_id = Some(own);
    }
    Some(filter)
}

/// Names the cursors of the appointment list, so no other list's cursor is taken for one.
const CURSOR_KIND: &str = "appointments";

/// The cursor that continues the appointment list after `appointment`.
fn cursor_of(appointment: &Appointment) -> String {
    let key = AppointmentKey::of(appointment);
    // Every digit the instant has, so the key comes back exactly.
    let start = key
        .starts_at
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    input::cursor(CURSOR_KIND, &[&start, &key.id.to_string()])
}

/// The position an appointment-list cursor names.
fn parse_cursor(raw: &str) -> Result<AppointmentKey, InvalidValue> {
    let [start, id] = input::cursor_parts(raw, CURSOR_KIND)?;
    let starts_at = input::instant(&start).map_err(|_| input::not_a_cursor())?;
    let id = input::id(&id).map_err(|_| input::not_a_cursor())?;
    Ok(AppointmentKey {
        starts_at,
        id: AppointmentId::from_uuid(id),
    })
}

#[cfg(test)]
mod tests;
