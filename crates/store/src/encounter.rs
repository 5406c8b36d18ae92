//! [`EncounterRepo`] on the `encounters` table.

use async_trait::async_trait;
use clinicflow_domain::{
    AppointmentId, ClinicId, Encounter, EncounterId, Page, PageRequest, PatientId, PractitionerId,
    QueueEntryId,
};
use clinicflow_ports::{EncounterRepo, RepoError, Tx};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use crate::Store;
use crate::entity::{encounter, instant};
use crate::error::repo_error;
use crate::page::page_rows;
use crate::transaction::db;
use crate::version::update_versioned;

fn to_domain(row: encounter::Model) -> Encounter {
    Encounter {
        id: EncounterId::from_uuid(row.id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        patient_id: PatientId::from_uuid(row.patient_id),
        practitioner_id: PractitionerId::from_uuid(row.practitioner_id),
        appointment_id: row.appointment_id.map(AppointmentId::from_uuid),
        queue_entry_id: row.queue_entry_id.map(QueueEntryId::from_uuid),
        started_at: row.started_at,
        ended_at: row.ended_at,
        notes: row.notes,
        version: row.version,
        updated_at: row.updated_at,
    }
}

/// Every column that a change may write; identity, tenant and creation time stay as they are.
fn changes(e: &Encounter) -> encounter::ActiveModel {
    encounter::ActiveModel {
        id: NotSet,
        clinic_id: NotSet,
        patient_id: Set(e.patient_id.as_uuid()),
        practitioner_id: Set(e.practitioner_id.as_uuid()),
        appointment_id: Set(e.appointment_id.map(|id| id.as_uuid())),
        queue_entry_id: Set(e.queue_entry_id.map(|id| id.as_uuid())),
        started_at: Set(instant(e.started_at)),
        ended_at: Set(e.ended_at.map(instant)),
        notes: Set(e.notes.clone()),
        version: Set(e.version),
        created_at: NotSet,
        updated_at: Set(instant(e.updated_at)),
    }
}

/// The clinic's encounters.
fn of_clinic(clinic: ClinicId) -> Select<encounter::Entity> {
    encounter::Entity::find().filter(encounter::Column::ClinicId.eq(clinic.as_uuid()))
}

#[async_trait]
impl EncounterRepo for Store {
    async fn insert(&self, tx: &mut Tx, encounter: &Encounter) -> Result<(), RepoError> {
        let mut row = changes(encounter);
        row.id = Set(encounter.id.as_uuid());
        row.clinic_id = Set(encounter.clinic_id.as_uuid());
        // The domain keeps no creation time: a new encounter's last change is its creation.
        row.created_at = Set(instant(encounter.updated_at));
        encounter::Entity::insert(row)
            .exec_without_returning(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(())
    }

    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: EncounterId,
    ) -> Result<Option<Encounter>, RepoError> {
        Ok(of_clinic(clinic)
            .filter(encounter::Column::Id.eq(id.as_uuid()))
            .one(db(tx))
            .await
            .map_err(repo_error)?
            .map(to_domain))
    }

    async fn update(
        &self,
        tx: &mut Tx,
        encounter: &Encounter,
        expected_version: i32,
    ) -> Result<(), RepoError> {
        update_versioned::<encounter::Entity>(
            tx,
            Condition::all()
                .add(encounter::Column::ClinicId.eq(encounter.clinic_id.as_uuid()))
                .add(encounter::Column::Id.eq(encounter.id.as_uuid())),
            encounter::Column::Version,
            expected_version,
            changes(encounter),
        )
        .await
    }

    async fn open_for_entry(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        entry: QueueEntryId,
    ) -> Result<Option<Encounter>, RepoError> {
        // The services open at most one per entry; should there be more, the latest is it.
        Ok(of_clinic(clinic)
            .filter(encounter::Column::QueueEntryId.eq(entry.as_uuid()))
            .filter(encounter::Column::EndedAt.is_null())
            .order_by_desc(encounter::Column::StartedAt)
            .order_by_desc(encounter::Column::Id)
            .one(db(tx))
            .await
            .map_err(repo_error)?
            .map(to_domain))
    }

    async fn open_for_appointment(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        appointment: AppointmentId,
    ) -> Result<Option<Encounter>, RepoError> {
        // As for entries: the services open at most one per appointment; the latest is it.
        Ok(of_clinic(clinic)
            .filter(encounter::Column::AppointmentId.eq(appointment.as_uuid()))
            .filter(encounter::Column::EndedAt.is_null())
            .order_by_desc(encounter::Column::StartedAt)
            .order_by_desc(encounter::Column::Id)
            .one(db(tx))
            .await
            .map_err(repo_error)?
            .map(to_domain))
    }

    async fn for_patient(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        patient: PatientId,
        page: PageRequest,
    ) -> Result<Page<Encounter>, RepoError> {
        let query = of_clinic(clinic).filter(encounter::Column::PatientId.eq(patient.as_uuid()));
        let order = |q: Select<encounter::Entity>| {
            q.order_by_desc(encounter::Column::StartedAt)
                .order_by_desc(encounter::Column::Id)
        };
        let (rows, total) = page_rows(db(tx), query, order, page).await?;
        Ok(Page {
            items: rows.into_iter().map(to_domain).collect(),
            total,
            request: page,
        })
    }

    async fn recently_ended(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioners: &[PractitionerId],
        limit: u32,
    ) -> Result<Vec<Encounter>, RepoError> {
        let mut query = of_clinic(clinic).filter(encounter::Column::EndedAt.is_not_null());
        if !practitioners.is_empty() {
            query = query.filter(
                encounter::Column::PractitionerId
                    .is_in(practitioners.iter().map(|id| id.as_uuid())),
            );
        }
        Ok(query
            .order_by_desc(encounter::Column::EndedAt)
            .order_by_desc(encounter::Column::Id)
            .limit(u64::from(limit))
            .all(db(tx))
            .await
            .map_err(repo_error)?
            .into_iter()
            .map(to_domain)
            .collect())
    }
}
