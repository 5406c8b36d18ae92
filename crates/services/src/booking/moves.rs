//! Status moves by staff: confirm, check in, start, complete, cancel and no-show.

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::appointment::parse_reason;
use clinicflow_domain::{
    Actor, Appointment, AppointmentId, AppointmentStatus, AuditAction, Clinic, EventKind,
    Permission, ResourceType,
};
use clinicflow_ports::{Tx, TxMode};

use super::{AppointmentAction, BookingService};
use crate::audit::{self, Access};
use crate::encounter::{Visit, close_visit, open_visit};
use crate::idempotency::{self, Answered, Once, Outcome};
use crate::outbox::{announce_appointment, withdraw_reminders};
use crate::{FieldErrors, ServiceError};

/// One status move as [`BookingService::apply`] makes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step<'a> {
    pub(super) action: &'a AppointmentAction,
    pub(super) now: DateTime<Utc>,
    /// Whether its event goes out (a cancellation, a no-show); reminders are withdrawn anyway.
    pub(super) announce: bool,
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

impl BookingService {
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
            return self.replay(tx, actor, once, earlier).await;
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
    pub(super) async fn apply(
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
        // After the audit and outbox writes, so the store may send them with it in one round
        // trip; a refused update fails the unit of work, and them with it.
        self.ports
            .appointments
            .update(tx, appointment, expected)
            .await?;
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
}
