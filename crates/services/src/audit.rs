//! The audit log: every read or write of patient data appends an event in the same
//! unit of work, and admins read the log back.

use clinicflow_domain::page::Limit;
use clinicflow_domain::{
    Actor, AuditAction, AuditEvent, AuditEventId, Outcome, PatientId, Permission, ResourceType,
    UserId,
};
use clinicflow_ports::{AuditFilter, Tx, TxMode};
use uuid::Uuid;

use crate::{FieldErrors, Ports, ServiceError, input};

/// What an audited use case did, for its event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    pub action: AuditAction,
    pub resource_type: ResourceType,
    pub resource_id: Option<Uuid>,
    pub patient_id: Option<PatientId>,
}

impl Access {
    /// An access to one patient record.
    pub fn patient(action: AuditAction, id: PatientId) -> Self {
        Self {
            action,
            resource_type: ResourceType::Patient,
            resource_id: Some(id.as_uuid()),
            patient_id: Some(id),
        }
    }

    /// An access to one appointment of a patient.
    pub fn appointment(
        action: AuditAction,
        id: clinicflow_domain::AppointmentId,
        patient: PatientId,
    ) -> Self {
        Self {
            action,
            resource_type: ResourceType::Appointment,
            resource_id: Some(id.as_uuid()),
            patient_id: Some(patient),
        }
    }

    /// An action on a kind of record not yet (or never) identified.
    pub fn kind(action: AuditAction, resource_type: ResourceType) -> Self {
        Self {
            action,
            resource_type,
            resource_id: None,
            patient_id: None,
        }
    }

    /// A list of records, optionally about one patient.
    pub fn list(resource_type: ResourceType, patient_id: Option<PatientId>) -> Self {
        Self {
            action: AuditAction::List,
            resource_type,
            resource_id: None,
            patient_id,
        }
    }
}

fn event(ports: &Ports, actor: &Actor, access: Access, outcome: Outcome) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::from_uuid(Uuid::now_v7()),
        clinic_id: actor.clinic_id,
        actor_id: actor.user_id,
        actor_role: actor.role,
        action: access.action,
        resource_type: access.resource_type,
        resource_id: access.resource_id,
        patient_id: access.patient_id,
        at: ports.clock.now(),
        request_id: actor.request_id,
        outcome,
    }
}

/// Appends a successful access in the use case's own unit of work.
pub(crate) async fn record(
    ports: &Ports,
    tx: &mut Tx,
    actor: &Actor,
    access: Access,
) -> Result<(), ServiceError> {
    Ok(ports
        .audit
        .append(tx, &event(ports, actor, access, Outcome::Success))
        .await?)
}

/// Records a read of patient data that its own read-only unit of work has done: returns once
/// the event is durable (the audit log's group commit), so the caller may answer only then.
pub(crate) async fn disclose(
    ports: &Ports,
    actor: &Actor,
    access: Access,
) -> Result<(), ServiceError> {
    Ok(ports
        .audit
        .record(&event(ports, actor, access, Outcome::Success))
        .await?)
}

/// Checks a permission over patient data; a refusal is itself recorded, durably, before it is answered.
pub(crate) async fn require(
    ports: &Ports,
    actor: &Actor,
    permission: Permission,
    access: Access,
) -> Result<(), ServiceError> {
    let Err(denied) = actor.require(permission) else {
        return Ok(());
    };
    ports
        .audit
        .record(&event(ports, actor, access, Outcome::Denied))
        .await?;
    Err(denied.into())
}

/// Filters for reading the log, as sent by a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Patient id.
    pub patient_id: Option<String>,
    /// Actor (user) id.
    pub actor_id: Option<String>,
    /// RFC 3339: at or after.
    pub from: Option<String>,
    /// RFC 3339: before.
    pub to: Option<String>,
    /// Cursor: the id of the last event of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 50).
    pub limit: Option<u32>,
}

/// Reads the audit log (admins only).
#[derive(Debug, Clone)]
pub struct AuditService {
    ports: Ports,
}

impl AuditService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// One page of events, newest first, and the cursor of the next page when there is one.
    pub async fn list(
        &self,
        actor: &Actor,
        query: AuditQuery,
    ) -> Result<(Vec<AuditEvent>, Option<String>), ServiceError> {
        actor.require(Permission::ReadAudit)?;
        let mut errors = FieldErrors::new();
        let filter = AuditFilter {
            patient_id: query
                .patient_id
                .as_deref()
                .and_then(|v| errors.check("patient_id", input::id(v)))
                .map(PatientId::from_uuid),
            actor_id: query
                .actor_id
                .as_deref()
                .and_then(|v| errors.check("actor_id", input::id(v)))
                .map(UserId::from_uuid),
            from: query
                .from
                .as_deref()
                .and_then(|v| errors.check("from", input::instant(v))),
            to: query
                .to
                .as_deref()
                .and_then(|v| errors.check("to", input::instant(v))),
        };
        let before = query
            .cursor
            .as_deref()
            .and_then(|v| errors.check("cursor", input::id(v)))
            .map(AuditEventId::from_uuid);
        let limit = errors.check("limit", Limit::parse(query.limit));
        errors.into_result()?;
        let Some(limit) = limit else {
            unreachable!("the limit parsed when no error was recorded")
        };
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let mut events = self
            .ports
            .audit
            .list(&mut tx, actor.clinic_id, &filter, before, limit.fetch())
            .await?;
        let next = if limit.cut(&mut events) {
            events.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok((events, next))
    }
}

/// For a practitioner, the practitioner whose patients and appointments they may see
/// (a practitioner user linked to no record sees none); `None` for every other role.
pub(crate) fn own_practitioner(actor: &Actor) -> Option<clinicflow_domain::PractitionerId> {
    (actor.role == clinicflow_domain::Role::Practitioner).then(|| {
        actor
            .practitioner_id
            .unwrap_or(clinicflow_domain::PractitionerId::from_uuid(Uuid::nil()))
    })
}
