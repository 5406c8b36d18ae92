//! The walk-in queue: joining, the ordered board with wait estimates, calling the next
//! patient atomically, service (which opens and closes the encounter), and daily statistics.

use chrono::{DateTime, Utc};
use clinicflow_domain::queue::appointment_deadline;
use clinicflow_domain::{
    Actor, Appointment, AppointmentStatus, Clinic, DeadlineRule, PractitionerId, QueueEntry,
    QueueEntryId, QueueStatus, TriageCategory,
};
use clinicflow_ports::{QueueScope, Tx};
use uuid::Uuid;

use crate::{FieldErrors, Ports, ServiceError};

mod board;
mod join;
mod moves;
mod stats;

pub use board::{Board, BoardEntry, DEFAULT_SERVICE_MINUTES, LiveBoard, Priority};
pub use stats::DayStats;
pub(crate) use stats::{local_day, mean};

/// The event topic of a clinic's queue.
pub fn topic(clinic: clinicflow_domain::ClinicId) -> String {
    format!("queue:{clinic}")
}

/// A walk-in joining the queue, as sent by a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinInput {
    /// The patient.
    pub patient_id: String,
    /// Waiting for this practitioner.
    pub practitioner_id: Option<String>,
    /// Or for this department.
    pub department: Option<String>,
    /// Triage category.
    pub category: String,
    /// Free text.
    pub note: Option<String>,
}

/// A move of a queue entry requested through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueAction {
    /// called -> in_service; opens the encounter.
    Start,
    /// in_service -> done; closes the encounter and completes the appointment.
    Finish,
    /// waiting|called -> left.
    Leave,
    /// called -> waiting, keeping the deadline.
    Recall,
    /// A new triage category; recomputes this entry's deadline.
    Retriage(String),
}

/// Runs the queue.
#[derive(Debug, Clone)]
pub struct QueueService {
    ports: Ports,
}

/// Puts a checked-in appointment in the queue, in the caller's unit of work.
pub(crate) async fn enqueue_appointment(
    ports: &Ports,
    tx: &mut Tx,
    clinic: &Clinic,
    appointment: &Appointment,
    now: DateTime<Utc>,
) -> Result<QueueEntry, ServiceError> {
    let starts_at = appointment.interval.start();
    let entry = QueueEntry {
        id: QueueEntryId::from_uuid(Uuid::now_v7()),
        clinic_id: clinic.id,
        patient_id: appointment.patient_id,
        practitioner_id: Some(appointment.practitioner_id),
        department: None,
        appointment_id: Some(appointment.id),
        category: TriageCategory::for_urgency(appointment.urgency),
        rule: DeadlineRule::Appointment { starts_at },
        arrived_at: now,
        deadline: appointment_deadline(now, starts_at, &clinic.queue),
        status: QueueStatus::Waiting,
        note: None,
        called_by: None,
        called_at: None,
        started_at: None,
        finished_at: None,
        left_at: None,
        recalled_at: None,
        version: 1,
        updated_at: now,
    };
    ports.queue.insert(tx, &entry).await?;
    Ok(entry)
}

/// Moves an appointment's open queue entry to match the appointment's new status (in
/// progress -> in service, completed -> done), stepping through the entry's own machine;
/// whether an entry moved.
///
/// A cancellation or no-show reads no entry: only a check-in puts an appointment into the
/// queue ([`enqueue_appointment`]), those are moves from booked or confirmed only, and no move
/// leads back to before a check-in, so such an appointment never has one.
pub(crate) async fn follow_appointment(
    ports: &Ports,
    tx: &mut Tx,
    appointment: &Appointment,
    now: DateTime<Utc>,
) -> Result<bool, ServiceError> {
    let target = match appointment.status {
        AppointmentStatus::InProgress => QueueStatus::InService,
        AppointmentStatus::Completed => QueueStatus::Done,
        _ => return Ok(false),
    };
    let Some(mut entry) = ports
        .queue
        .for_appointment(tx, appointment.clinic_id, appointment.id)
        .await?
    else {
        return Ok(false);
    };
    let expected = entry.version;
    while entry.status != target {
        let next = match (entry.status, target) {
            (QueueStatus::Waiting, _) => QueueStatus::Called,
            (QueueStatus::Called, _) => QueueStatus::InService,
            (QueueStatus::InService, QueueStatus::Done) => QueueStatus::Done,
            // Nothing sensible to follow (an entry already done or left stays as it is).
            _ => break,
        };
        if next == QueueStatus::Called {
            entry.called_by = Some(appointment.practitioner_id);
        }
        entry
            .transition(next, now)
            .map_err(ServiceError::IllegalQueueMove)?;
    }
    if entry.version == expected {
        return Ok(false);
    }
    // The entry moved several steps in one write: it is stored once, at its new version.
    ports.queue.update(tx, &entry, expected).await?;
    Ok(true)
}

/// Tells every board of the clinic, on every instance, that the queue changed.
pub(crate) async fn announce(ports: &Ports, clinic: clinicflow_domain::ClinicId) {
    ports
        .events
        .publish(&topic(clinic), b"changed".to_vec())
        .await;
}

impl QueueService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    async fn scope(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        practitioner: Option<PractitionerId>,
        department: Option<String>,
    ) -> Result<QueueScope, ServiceError> {
        self.scope_in(tx, actor.clinic_id, practitioner, department)
            .await
    }

    async fn scope_in(
        &self,
        tx: &mut Tx,
        clinic: clinicflow_domain::ClinicId,
        practitioner: Option<PractitionerId>,
        department: Option<String>,
    ) -> Result<QueueScope, ServiceError> {
        let Some(id) = practitioner else {
            return Ok(QueueScope {
                practitioner_id: None,
                department,
            });
        };
        let p = self
            .ports
            .practitioners
            .get(tx, clinic, id)
            .await?
            .ok_or_else(|| {
                FieldErrors::single("practitioner_id", "no such practitioner in this clinic")
            })?;
        Ok(QueueScope {
            practitioner_id: Some(id),
            department: p.department,
        })
    }
}

#[cfg(test)]
mod tests;
