//! Encounters: reading visit records and writing their notes.

use chrono::{DateTime, Utc};
use clinicflow_domain::encounter::parse_notes;
use clinicflow_domain::{
    Actor, AppointmentId, AuditAction, Encounter, EncounterId, Page, PageRequest, PatientId,
    Permission, PractitionerId, QueueEntryId, ResourceType,
};
use clinicflow_ports::{Tx, TxMode};
use uuid::Uuid;

use crate::audit::{self, Access, own_practitioner};
use crate::{FieldErrors, Ports, ServiceError};

/// Who a visit is for and where it came from, for [`open_visit`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Visit {
    pub patient_id: PatientId,
    pub practitioner_id: PractitionerId,
    pub appointment_id: Option<AppointmentId>,
    pub queue_entry_id: Option<QueueEntryId>,
}

/// Opens the encounter of a visit whose service starts, audited, in the caller's unit of
/// work: whichever route starts a visit (the queue's or the appointment's) calls this.
pub(crate) async fn open_visit(
    ports: &Ports,
    tx: &mut Tx,
    actor: &Actor,
    visit: Visit,
    now: DateTime<Utc>,
) -> Result<Encounter, ServiceError> {
    let encounter = Encounter {
        id: EncounterId::from_uuid(Uuid::now_v7()),
        clinic_id: actor.clinic_id,
        patient_id: visit.patient_id,
        practitioner_id: visit.practitioner_id,
        appointment_id: visit.appointment_id,
        queue_entry_id: visit.queue_entry_id,
        started_at: now,
        ended_at: None,
        notes: None,
        version: 1,
        updated_at: now,
    };
    ports.encounters.insert(tx, &encounter).await?;
    audit::record(ports, tx, actor, access(AuditAction::Create, &encounter)).await?;
    Ok(encounter)
}

/// Ends an open encounter at `now`, in the caller's unit of work.
pub(crate) async fn close_visit(
    ports: &Ports,
    tx: &mut Tx,
    mut encounter: Encounter,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let expected = encounter.version;
    encounter.ended_at = Some(now);
    encounter.version += 1;
    encounter.updated_at = now;
    Ok(ports.encounters.update(tx, &encounter, expected).await?)
}

/// Reads and annotates visits.
#[derive(Debug, Clone)]
pub struct EncounterService {
    ports: Ports,
}

fn access(action: AuditAction, e: &Encounter) -> Access {
    Access {
        action,
        resource_type: ResourceType::Encounter,
        resource_id: Some(e.id.as_uuid()),
        patient_id: Some(e.patient_id),
    }
}

impl EncounterService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// The encounter, if the actor may see it: a practitioner sees only their own.
    async fn visible(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: EncounterId,
    ) -> Result<Encounter, ServiceError> {
        self.ports
            .encounters
            .get(tx, actor.clinic_id, id)
            .await?
            .filter(|e| own_practitioner(actor).is_none_or(|own| e.practitioner_id == own))
            .ok_or(ServiceError::NotFound("encounter"))
    }

    /// One encounter.
    pub async fn get(&self, actor: &Actor, id: EncounterId) -> Result<Encounter, ServiceError> {
        let read = Access {
            resource_id: Some(id.as_uuid()),
            ..Access::kind(AuditAction::Read, ResourceType::Encounter)
        };
        audit::require(&self.ports, actor, Permission::ReadPatients, read).await?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let encounter = self.visible(&mut tx, actor, id).await?;
        tx.commit().await?;
        audit::disclose(&self.ports, actor, access(AuditAction::Read, &encounter)).await?;
        Ok(encounter)
    }

    /// Replaces the notes of an encounter; `if_match` (a version) guards against lost updates.
    #[tracing::instrument(skip_all)]
    pub async fn update_notes(
        &self,
        actor: &Actor,
        id: EncounterId,
        notes: Option<&str>,
        if_match: Option<i32>,
    ) -> Result<Encounter, ServiceError> {
        let update = Access {
            resource_id: Some(id.as_uuid()),
            ..Access::kind(AuditAction::Update, ResourceType::Encounter)
        };
        audit::require(&self.ports, actor, Permission::ServePatients, update).await?;
        let notes = parse_notes(notes).map_err(|e| FieldErrors::single("notes", e.0))?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let mut encounter = self.visible(&mut tx, actor, id).await?;
        crate::versioned::require_version(if_match, encounter.version)?;
        let expected = encounter.version;
        encounter.notes = notes;
        encounter.version += 1;
        encounter.updated_at = self.ports.clock.now();
        self.ports
            .encounters
            .update(&mut tx, &encounter, expected)
            .await?;
        audit::record(
            &self.ports,
            &mut tx,
            actor,
            access(AuditAction::Update, &encounter),
        )
        .await?;
        tx.commit().await?;
        Ok(encounter)
    }

    /// A patient's encounters, newest first (a practitioner sees only their own).
    pub async fn for_patient(
        &self,
        actor: &Actor,
        patient: PatientId,
        page: PageRequest,
    ) -> Result<Page<Encounter>, ServiceError> {
        let list = Access {
            patient_id: Some(patient),
            ..Access::list(ResourceType::Encounter, Some(patient))
        };
        audit::require(&self.ports, actor, Permission::ReadPatients, list).await?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        if self
            .ports
            .patients
            .get(&mut tx, actor.clinic_id, patient)
            .await?
            .is_none()
        {
            return Err(ServiceError::NotFound("patient"));
        }
        let mut found = self
            .ports
            .encounters
            .for_patient(&mut tx, actor.clinic_id, patient, page)
            .await?;
        if let Some(own) = own_practitioner(actor) {
            found.items.retain(|e| e.practitioner_id == own);
        }
        tx.commit().await?;
        audit::disclose(&self.ports, actor, list).await?;
        Ok(found)
    }
}
