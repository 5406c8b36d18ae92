//! Moving entries: calling the next patient, service with its encounter, leave, recall, re-triage.

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::{
    Actor, AppointmentStatus, AuditAction, Clinic, Permission, PractitionerId, QueueEntry,
    QueueEntryId, QueueStatus, ResourceType, TriageCategory,
};
use clinicflow_ports::{Tx, TxMode};

use super::{QueueAction, QueueService, announce};
use crate::audit::{self, Access, own_practitioner};
use crate::encounter::{Visit, close_visit, open_visit};
use crate::{FieldErrors, ServiceError, input};

impl QueueService {
    /// Calls the first waiting patient the practitioner may serve; `None` when nobody waits.
    /// Two practitioners calling at once never get the same patient.
    #[tracing::instrument(skip_all)]
    pub async fn call_next(
        &self,
        actor: &Actor,
        practitioner_id: &str,
    ) -> Result<Option<QueueEntry>, ServiceError> {
        let update = Access::kind(AuditAction::Update, ResourceType::QueueEntry);
        audit::require(&self.ports, actor, Permission::ServePatients, update).await?;
        let practitioner = PractitionerId::from_uuid(
            input::id(practitioner_id).map_err(|e| FieldErrors::single("practitioner_id", e.0))?,
        );
        if own_practitioner(actor).is_some_and(|own| own != practitioner) {
            return Err(ServiceError::Forbidden(
                "a practitioner calls patients for themselves only".into(),
            ));
        }
        let now = self.ports.clock.now();
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let scope = self.scope(&mut tx, actor, Some(practitioner), None).await?;
        let Some(mut entry) = self
            .ports
            .queue
            .lock_next_waiting(&mut tx, actor.clinic_id, &scope)
            .await?
        else {
            return Ok(None);
        };
        let expected = entry.version;
        entry
            .transition(QueueStatus::Called, now)
            .map_err(|e| ServiceError::Unexpected(e.into()))?;
        entry.called_by = Some(practitioner);
        self.ports.queue.update(&mut tx, &entry, expected).await?;
        audit::record(
            &self.ports,
            &mut tx,
            actor,
            entry_access(AuditAction::Update, &entry),
        )
        .await?;
        crate::outbox::announce_call(&self.ports, &mut tx, &entry, now).await?;
        tx.commit().await?;
        announce(&self.ports, actor.clinic_id).await;
        Ok(Some(entry))
    }

    /// Moves an entry (start, finish, leave, recall, re-triage); starting and finishing open and
    /// close the encounter and move the appointment along, in the same unit of work.
    #[tracing::instrument(skip_all, fields(queue_entry_id = %id))]
    pub async fn act(
        &self,
        actor: &Actor,
        id: QueueEntryId,
        action: QueueAction,
    ) -> Result<QueueEntry, ServiceError> {
        let permission = match action {
            QueueAction::Start | QueueAction::Finish => Permission::ServePatients,
            QueueAction::Leave | QueueAction::Recall | QueueAction::Retriage(_) => {
                Permission::ManageQueue
            }
        };
        let update = Access {
            resource_id: Some(id.as_uuid()),
            ..Access::kind(AuditAction::Update, ResourceType::QueueEntry)
        };
        audit::require(&self.ports, actor, permission, update).await?;
        let category = match &action {
            QueueAction::Retriage(raw) => Some(
                raw.parse::<TriageCategory>()
                    .map_err(|e| FieldErrors::single("category", e.0))?,
            ),
            _ => None,
        };
        let now = self.ports.clock.now();
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        let mut entry = self
            .ports
            .queue
            .get(&mut tx, actor.clinic_id, id)
            .await?
            .ok_or(ServiceError::NotFound("queue entry"))?;
        // As with call-next: a practitioner serves the patients they called, not a colleague's.
        if matches!(action, QueueAction::Start | QueueAction::Finish)
            && let Some(own) = own_practitioner(actor)
            && entry.called_by != Some(own)
        {
            return Err(ServiceError::Forbidden(
                "a practitioner starts and finishes only the patients they called".into(),
            ));
        }
        let expected = entry.version;
        let illegal =
            |e: clinicflow_domain::queue::IllegalQueueMove| ServiceError::IllegalQueueMove(e);
        match action {
            QueueAction::Start => {
                entry
                    .transition(QueueStatus::InService, now)
                    .map_err(illegal)?;
                self.open_encounter(&mut tx, actor, &entry, now).await?;
            }
            QueueAction::Finish => {
                entry.transition(QueueStatus::Done, now).map_err(illegal)?;
                self.close_encounter(&mut tx, actor, &clinic, &entry, now)
                    .await?;
            }
            QueueAction::Leave => entry.transition(QueueStatus::Left, now).map_err(illegal)?,
            QueueAction::Recall => entry
                .transition(QueueStatus::Waiting, now)
                .map_err(illegal)?,
            QueueAction::Retriage(_) => {
                if !entry.status.is_open() || entry.status == QueueStatus::InService {
                    return Err(illegal(clinicflow_domain::queue::IllegalQueueMove {
                        from: entry.status,
                        to: entry.status,
                        allowed: entry.status.allowed_moves().to_vec(),
                    }));
                }
                let Some(category) = category else {
                    unreachable!("parsed above")
                };
                entry.retriage(category, &clinic.queue, now);
            }
        }
        self.ports.queue.update(&mut tx, &entry, expected).await?;
        audit::record(
            &self.ports,
            &mut tx,
            actor,
            entry_access(AuditAction::Update, &entry),
        )
        .await?;
        tx.commit().await?;
        announce(&self.ports, actor.clinic_id).await;
        Ok(entry)
    }

    async fn open_encounter(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        entry: &QueueEntry,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let practitioner_id = entry.called_by.or(entry.practitioner_id).ok_or_else(|| {
            FieldErrors::single("practitioner_id", "the entry was called by no practitioner")
        })?;
        let visit = Visit {
            patient_id: entry.patient_id,
            practitioner_id,
            appointment_id: entry.appointment_id,
            queue_entry_id: Some(entry.id),
        };
        open_visit(&self.ports, tx, actor, visit, now).await?;
        if let Some(id) = entry.appointment_id {
            self.move_appointment(tx, actor, id, AppointmentStatus::InProgress, now)
                .await?;
        }
        Ok(())
    }

    async fn close_encounter(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        clinic: &Clinic,
        entry: &QueueEntry,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        if let Some(encounter) = self
            .ports
            .encounters
            .open_for_entry(tx, clinic.id, entry.id)
            .await?
        {
            close_visit(&self.ports, tx, encounter, now).await?;
        }
        if let Some(id) = entry.appointment_id {
            self.move_appointment(tx, actor, id, AppointmentStatus::Completed, now)
                .await?;
        }
        Ok(())
    }

    /// Moves the linked appointment along with the visit when its status allows it.
    async fn move_appointment(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: clinicflow_domain::AppointmentId,
        to: AppointmentStatus,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let Some(mut appointment) = self.ports.appointments.get(tx, actor.clinic_id, id).await?
        else {
            return Ok(());
        };
        if !appointment.status.allowed_moves().contains(&to) {
            return Ok(());
        }
        let expected = appointment.version;
        appointment.transition(to, now, Duration::zero())?;
        self.ports
            .appointments
            .update(tx, &appointment, expected)
            .await?;
        let access =
            Access::appointment(AuditAction::Update, appointment.id, appointment.patient_id);
        audit::record(&self.ports, tx, actor, access).await
    }
}

pub(super) fn entry_access(action: AuditAction, entry: &QueueEntry) -> Access {
    Access {
        action,
        resource_type: ResourceType::QueueEntry,
        resource_id: Some(entry.id.as_uuid()),
        patient_id: Some(entry.patient_id),
    }
}
