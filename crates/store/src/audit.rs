//! [`AuditRepo`] on the append-only `audit_events` table.
//!
//! The store only ever inserts here; the database's triggers refuse updates and deletes
//! on both backends. Ids are UUIDv7, so ordering by id is ordering by time of creation, and
//! a page is continued with `id < before` (keyset pagination) rather than an offset, which
//! stays correct while new events are appended.

use async_trait::async_trait;
use clinicflow_domain::{
    AuditEvent, AuditEventId, ClinicId, InvalidValue, PatientId, Role, UserId,
};
use clinicflow_ports::{AuditFilter, AuditRepo, RepoError, Tx};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::Store;
use crate::entity::{audit_event, instant, not_before};
use crate::error::{invalid_row, repo_error};
use crate::transaction::db;

fn to_domain(row: audit_event::Model) -> Result<AuditEvent, RepoError> {
    let invalid = |e: InvalidValue| invalid_row("audit_events", row.id, e);
    Ok(AuditEvent {
        id: AuditEventId::from_uuid(row.id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        actor_id: UserId::from_uuid(row.actor_id),
        actor_role: Role::parse_recorded(&row.actor_role).map_err(invalid)?,
        action: row.action.parse().map_err(invalid)?,
        resource_type: row.resource_type.parse().map_err(invalid)?,
        resource_id: row.resource_id,
        patient_id: row.patient_id.map(PatientId::from_uuid),
        at: row.at,
        request_id: row.request_id,
        outcome: row.outcome.parse().map_err(invalid)?,
    })
}

#[async_trait]
impl AuditRepo for Store {
    async fn append(&self, tx: &mut Tx, event: &AuditEvent) -> Result<(), RepoError> {
        let row = audit_event::ActiveModel {
            id: Set(event.id.as_uuid()),
            clinic_id: Set(event.clinic_id.as_uuid()),
            actor_id: Set(event.actor_id.as_uuid()),
            actor_role: Set(event.actor_role.as_str().to_owned()),
            action: Set(event.action.as_str().to_owned()),
            resource_type: Set(event.resource_type.as_str().to_owned()),
            resource_id: Set(event.resource_id),
            patient_id: Set(event.patient_id.map(|p| p.as_uuid())),
            at: Set(instant(event.at)),
            request_id: Set(event.request_id),
            outcome: Set(event.outcome.as_str().to_owned()),
        };
        audit_event::Entity::insert(row)
            .exec_without_returning(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(())
    }

    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &AuditFilter,
        before: Option<AuditEventId>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, RepoError> {
        let mut query =
            audit_event::Entity::find().filter(audit_event::Column::ClinicId.eq(clinic.as_uuid()));
        if let Some(patient) = filter.patient_id {
            query = query.filter(audit_event::Column::PatientId.eq(patient.as_uuid()));
        }
        if let Some(actor) = filter.actor_id {
            query = query.filter(audit_event::Column::ActorId.eq(actor.as_uuid()));
        }
        if let Some(from) = filter.from {
            query = query.filter(audit_event::Column::At.gte(not_before(from)));
        }
        if let Some(to) = filter.to {
            query = query.filter(audit_event::Column::At.lt(not_before(to)));
        }
        if let Some(before) = before {
            query = query.filter(audit_event::Column::Id.lt(before.as_uuid()));
        }
        query
            .order_by_desc(audit_event::Column::Id)
            .limit(u64::from(limit))
            .all(db(tx))
            .await
            .map_err(repo_error)?
            .into_iter()
            .map(to_domain)
            .collect()
    }
}
