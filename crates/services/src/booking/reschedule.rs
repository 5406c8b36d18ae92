//! Rescheduling: cancelling an appointment and booking its replacement in one unit of work.

use chrono::Duration;
use clinicflow_domain::appointment::{parse_duration_minutes, parse_start};
use clinicflow_domain::{
    Actor, Appointment, AppointmentId, AppointmentStatus, AuditAction, EventKind, Interval,
    Permission, ResourceType,
};
use clinicflow_ports::{RepoError, TxMode};
use uuid::Uuid;

use super::book::Booking;
use super::{BookingService, RescheduleInput};
use crate::audit::{self, Access};
use crate::idempotency::{self, Answered, Once, Outcome};
use crate::outbox::announce_appointment;
use crate::{FieldErrors, ServiceError, input};

impl BookingService {
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
            return self.replay(tx, actor, once, earlier).await;
        }
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        let mut old = self.load_for_change(&mut tx, actor, id, if_match).await?;
        // The appointment's own patient: whether they are still on file is not this move's
        // concern (a deleted patient's appointments were cancelled with them).
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
        let practitioner = self
            .ports
            .practitioners
            .get(&mut tx, actor.clinic_id, old.practitioner_id)
            .await?
            .ok_or(ServiceError::NotFound("practitioner"))?;
        if let Err(violation) = self.check(&mut tx, actor, &booking, &practitioner).await? {
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
