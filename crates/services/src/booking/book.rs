//! Booking a new appointment, and the booking rules a reschedule runs as well.

use chrono::Duration;
use clinicflow_domain::appointment::{parse_duration_minutes, parse_reason, parse_start};
use clinicflow_domain::{
    Actor, Appointment, AppointmentId, AppointmentStatus, AuditAction, BookingRequest,
    BookingViolation, EventKind, Interval, PatientId, Permission, Practitioner, PractitionerId,
    ResourceType, Urgency,
};
use clinicflow_ports::{OverlapParty, RepoError, Tx, TxMode};
use uuid::Uuid;

use super::{BookInput, BookingService};
use crate::audit::{self, Access};
use crate::error::ConflictKind;
use crate::idempotency::{self, Answered, Once, Outcome};
use crate::outbox::announce_appointment;
use crate::practitioner::cached_practitioner;
use crate::schedule::{next_free_slots, open_hours};
use crate::{Conflict, FieldErrors, ServiceError, input};

/// What the booking checks need beyond the request itself.
pub(super) struct Booking {
    pub(super) patient_id: PatientId,
    pub(super) practitioner_id: PractitionerId,
    pub(super) interval: Interval,
    pub(super) overbook: bool,
    /// An appointment being replaced, whose time does not count as taken.
    pub(super) replacing: Option<AppointmentId>,
}

impl BookingService {
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
            return self.replay(tx, actor, once, earlier).await;
        }
        let patient_on_file = self
            .ports
            .appointments
            .lock_parties(&mut tx, actor.clinic_id, practitioner_id, patient_id)
            .await?;
        // From the cache, which every change of the practitioner invalidates when it commits:
        // reading the row here instead would not stop a concurrent change either (changes
        // take no party lock), it would only cost a round trip under the locks.
        let practitioner =
            match cached_practitioner(&self.ports, &mut tx, actor.clinic_id, practitioner_id).await
            {
                Ok(practitioner) => practitioner,
                Err(ServiceError::NotFound(_)) => {
                    return Err(FieldErrors::single(
                        "practitioner_id",
                        "no such practitioner in this clinic",
                    ));
                }
                Err(e) => return Err(e),
            };
        if !patient_on_file {
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
        if let Err(violation) = self.check(&mut tx, actor, &booking, &practitioner).await? {
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
        // The audit and outbox writes go first: the store may hold them back and send them
        // with the insert, in its round trip. A refused insert drops the unit of work, and
        // them with it.
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
        match self.ports.appointments.insert(&mut tx, &appointment).await {
            Ok(()) => {}
            Err(RepoError::Overlap(party)) => {
                drop(tx);
                return Err(self.lost_race(actor, &booking, party).await);
            }
            Err(e) => return Err(e.into()),
        }
        let id = appointment.id;
        let outcome = idempotency::finish(&self.ports, &mut tx, actor, once, appointment).await?;
        tx.commit().await?;
        tracing::debug!(appointment_id = %id, "appointment booked");
        Ok(outcome)
    }

    /// Runs the booking rules inside `tx` for `booking` with its `practitioner`, as read in
    /// `tx`; the outer error is a failure, the inner one a rule violation.
    ///
    /// The open hours come from the cache (`schedule::open_hours`); the overlaps are read in
    /// `tx`, after the parties' locks.
    pub(super) async fn check(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        booking: &Booking,
        practitioner: &Practitioner,
    ) -> Result<Result<(), BookingViolation>, ServiceError> {
        // Not a rule violation with next free slots: a deactivated practitioner has none.
        if !practitioner.active {
            return Err(ServiceError::PractitionerInactive);
        }
        let clinic = crate::clinic::clinic_settings(&self.ports, tx, actor.clinic_id).await?;
        let buffer = Duration::minutes(i64::from(practitioner.buffer_minutes));
        let hours = open_hours(&self.ports, tx, &clinic, practitioner, &booking.interval).await?;
        // Both parties' overlaps in one read; each side keeps its own span (the practitioner's
        // widened by the buffer), and an appointment being replaced takes no time.
        let practitioner_span = booking.interval.widened(buffer, buffer);
        let taken = self
            .ports
            .appointments
            .active_for_parties(
                tx,
                actor.clinic_id,
                booking.practitioner_id,
                practitioner_span,
                booking.patient_id,
                booking.interval,
            )
            .await?;
        let busy = |party: &dyn Fn(&Appointment) -> bool, span: &Interval| -> Vec<Interval> {
            taken
                .iter()
                .filter(|a| Some(a.id) != booking.replacing)
                .filter(|a| party(a) && a.interval.overlaps(span))
                .map(|a| a.interval)
                .collect()
        };
        let practitioner_busy = busy(
            &|a| a.practitioner_id == booking.practitioner_id,
            &practitioner_span,
        );
        let patient_busy = busy(&|a| a.patient_id == booking.patient_id, &booking.interval);
        let request = BookingRequest {
            interval: booking.interval,
            now: self.ports.clock.now(),
            overbook: booking.overbook,
            available: hours.covers(&booking.interval),
            buffer,
            practitioner_busy: &practitioner_busy,
            patient_busy: &patient_busy,
        };
        Ok(request.check())
    }

    /// Turns a rule violation into the error the client sees, with the next free slots.
    pub(super) async fn conflict(
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
    pub(super) async fn lost_race(
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
}
