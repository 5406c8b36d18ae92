//! Joining the queue: a walk-in with its triage category.

use clinicflow_domain::queue::walk_in_deadline;
use clinicflow_domain::{
    Actor, AuditAction, DeadlineRule, PatientId, Permission, PractitionerId, QueueEntry,
    QueueEntryId, QueueStatus, ResourceType, TriageCategory,
};
use clinicflow_ports::TxMode;
use uuid::Uuid;

use super::moves::entry_access;
use super::{JoinInput, QueueService, announce};
use crate::audit::{self, Access};
use crate::idempotency::{self, Answered, Once, Outcome};
use crate::{FieldErrors, ServiceError, input};

/// Longest note on a queue entry.
const MAX_NOTE_CHARS: usize = 500;

fn parse_note(errors: &mut FieldErrors, raw: Option<&str>) -> Option<String> {
    match raw.map(str::trim) {
        None | Some("") => None,
        Some(s) if s.chars().count() > MAX_NOTE_CHARS => {
            errors.add(
                "note",
                format!("must be at most {MAX_NOTE_CHARS} characters"),
            );
            None
        }
        Some(s) => Some(s.to_owned()),
    }
}

impl QueueService {
    /// Adds a walk-in with its triage category; the deadline follows from arrival and category.
    #[tracing::instrument(skip_all)]
    pub async fn join(&self, actor: &Actor, input: JoinInput) -> Result<QueueEntry, ServiceError> {
        self.join_with(actor, input, None).await?.value()
    }

    /// Adds a walk-in at most once per idempotency key: a retry gets the first answer.
    #[tracing::instrument(skip_all)]
    pub async fn join_idempotent(
        &self,
        actor: &Actor,
        input: JoinInput,
        once: &Once<'_, QueueEntry>,
    ) -> Result<Answered, ServiceError> {
        self.join_with(actor, input, Some(once)).await?.answered()
    }

    async fn join_with(
        &self,
        actor: &Actor,
        input: JoinInput,
        once: Option<&Once<'_, QueueEntry>>,
    ) -> Result<Outcome<QueueEntry>, ServiceError> {
        let create = Access::kind(AuditAction::Create, ResourceType::QueueEntry);
        audit::require(&self.ports, actor, Permission::ManageQueue, create).await?;
        let mut errors = FieldErrors::new();
        let patient_id = errors
            .check("patient_id", input::id(&input.patient_id))
            .map(PatientId::from_uuid);
        let practitioner_id = input
            .practitioner_id
            .as_deref()
            .and_then(|v| errors.check("practitioner_id", input::id(v)))
            .map(PractitionerId::from_uuid);
        let department = input.department.as_deref().and_then(|d| {
            errors.check("department", clinicflow_domain::practitioner::parse_code(d))
        });
        if practitioner_id.is_some() && department.is_some() {
            errors.add(
                "department",
                "name a practitioner or a department, not both",
            );
        }
        let category = errors.check("category", input.category.parse::<TriageCategory>());
        let note = parse_note(&mut errors, input.note.as_deref());
        errors.into_result()?;
        let (Some(patient_id), Some(category)) = (patient_id, category) else {
            unreachable!("parsed when no error was recorded")
        };
        let now = self.ports.clock.now();
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        if let Some(earlier) = idempotency::claim(&self.ports, &mut tx, actor, once).await? {
            // The stored answer shows the entry again: audited like a read of it, and refused
            // once the entry is gone.
            let id = QueueEntryId::from_uuid(idempotency::replayed_id(once, &earlier)?);
            let entry = self
                .ports
                .queue
                .get(&mut tx, actor.clinic_id, id)
                .await?
                .ok_or(ServiceError::NotFound("queue entry"))?;
            audit::record(
                &self.ports,
                &mut tx,
                actor,
                entry_access(AuditAction::Read, &entry),
            )
            .await?;
            tx.commit().await?;
            return Ok(earlier);
        }
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
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
        if let Some(p) = practitioner_id {
            let practitioner = self
                .ports
                .practitioners
                .get(&mut tx, actor.clinic_id, p)
                .await?
                .ok_or_else(|| {
                    FieldErrors::single("practitioner_id", "no such practitioner in this clinic")
                })?;
            if !practitioner.active {
                return Err(ServiceError::PractitionerInactive);
            }
        }
        // The early, helpful answer; the partial unique index on the patient's open entries
        // is the guarantee when two joins race (`RepoError::AlreadyQueued`).
        if self
            .ports
            .queue
            .open_for_patient(&mut tx, actor.clinic_id, patient_id)
            .await?
            .is_some()
        {
            return Err(ServiceError::AlreadyInQueue);
        }
        let entry = QueueEntry {
            id: QueueEntryId::from_uuid(Uuid::now_v7()),
            clinic_id: actor.clinic_id,
            patient_id,
            practitioner_id,
            department,
            appointment_id: None,
            category,
            rule: DeadlineRule::WalkIn,
            arrived_at: now,
            deadline: walk_in_deadline(now, category, &clinic.queue),
            status: QueueStatus::Waiting,
            note,
            called_by: None,
            called_at: None,
            started_at: None,
            finished_at: None,
            left_at: None,
            recalled_at: None,
            version: 1,
            updated_at: now,
        };
        self.ports.queue.insert(&mut tx, &entry).await?;
        let access = Access {
            resource_id: Some(entry.id.as_uuid()),
            ..Access::patient(AuditAction::Create, patient_id)
        };
        audit::record(
            &self.ports,
            &mut tx,
            actor,
            Access {
                resource_type: ResourceType::QueueEntry,
                ..access
            },
        )
        .await?;
        let outcome = idempotency::finish(&self.ports, &mut tx, actor, once, entry).await?;
        tx.commit().await?;
        announce(&self.ports, actor.clinic_id).await;
        Ok(outcome)
    }
}
