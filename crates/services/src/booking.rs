//! Booking: the conflict-free creation of appointments, their status moves and reschedules.
//!
//! The checks here answer early with a helpful conflict (the interval taken and the next
//! free slots), but correctness never rests on them alone: on PostgreSQL the exclusion
//! constraints reject an overlapping write that raced past the check, and on SQLite the
//! check runs inside a `BEGIN IMMEDIATE` transaction that no other writer can interleave.

use clinicflow_domain::{
    Actor, Appointment, AppointmentId, AppointmentStatus, AuditAction, Permission,
};
use clinicflow_ports::Tx;

use crate::audit::{self, Access, own_practitioner};
use crate::idempotency::{self, Once, Outcome};
use crate::{Ports, ServiceError};

mod book;
mod list;
mod moves;
mod reschedule;
mod sweep;

pub use list::AppointmentQuery;
pub use sweep::SweepReport;

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

/// Books appointments and moves them through their life.
#[derive(Debug, Clone)]
pub struct BookingService {
    ports: Ports,
}

impl BookingService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
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

    async fn load_for_change(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: AppointmentId,
        if_match: Option<i32>,
    ) -> Result<Appointment, ServiceError> {
        let appointment = self.visible(tx, actor, id).await?;
        crate::versioned::require_version(if_match, appointment.version)?;
        Ok(appointment)
    }
}

impl BookingService {
    /// Gives an earlier answer again in `tx`, audited as a read of the appointment it shows
    /// (a disclosure like any other), and refused when that appointment is not found.
    async fn replay(
        &self,
        mut tx: Tx,
        actor: &Actor,
        once: Option<&Once<'_, Appointment>>,
        earlier: Outcome<Appointment>,
    ) -> Result<Outcome<Appointment>, ServiceError> {
        let id = AppointmentId::from_uuid(idempotency::replayed_id(once, &earlier)?);
        let appointment = self
            .ports
            .appointments
            .get(&mut tx, actor.clinic_id, id)
            .await?
            .ok_or(ServiceError::NotFound("appointment"))?;
        let access = Access::appointment(AuditAction::Read, id, appointment.patient_id);
        audit::record(&self.ports, &mut tx, actor, access).await?;
        tx.commit().await?;
        Ok(earlier)
    }
}

#[cfg(test)]
mod tests;
