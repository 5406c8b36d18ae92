//! Reading appointments: one by id, and the filtered lists by page or by cursor.

use clinicflow_domain::page::{AppointmentKey, Limit};
use clinicflow_domain::{
    Actor, Appointment, AppointmentId, AuditAction, InvalidValue, Page, PageRequest, PatientId,
    Permission, PractitionerId, ResourceType,
};
use clinicflow_ports::{AppointmentFilter, TxMode};

use super::BookingService;
use crate::audit::{self, Access, own_practitioner};
use crate::{FieldErrors, ServiceError, input};

/// Filters for listing appointments, as sent by a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppointmentQuery {
    /// Practitioner id.
    pub practitioner_id: Option<String>,
    /// Patient id.
    pub patient_id: Option<String>,
    /// Status name.
    pub status: Option<String>,
    /// RFC 3339: starting at or after.
    pub from: Option<String>,
    /// RFC 3339: starting before.
    pub to: Option<String>,
}

impl BookingService {
    /// One appointment of the actor's clinic.
    pub async fn get(&self, actor: &Actor, id: AppointmentId) -> Result<Appointment, ServiceError> {
        let read = Access {
            resource_id: Some(id.as_uuid()),
            ..Access::kind(AuditAction::Read, ResourceType::Appointment)
        };
        audit::require(&self.ports, actor, Permission::ReadAppointments, read).await?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let appointment = self.visible(&mut tx, actor, id).await?;
        tx.commit().await?;
        let access = Access::appointment(AuditAction::Read, id, appointment.patient_id);
        audit::disclose(&self.ports, actor, access).await?;
        Ok(appointment)
    }

    /// One page of appointments by practitioner, patient, status and start range.
    pub async fn list(
        &self,
        actor: &Actor,
        query: AppointmentQuery,
        page: PageRequest,
    ) -> Result<Page<Appointment>, ServiceError> {
        let access = Access::list(ResourceType::Appointment, None);
        audit::require(&self.ports, actor, Permission::ReadAppointments, access).await?;
        let mut errors = FieldErrors::new();
        let filter = list_filter(&query, &mut errors);
        errors.into_result()?;
        let Some(filter) = visible_to(actor, filter) else {
            return Ok(Page {
                items: Vec::new(),
                total: 0,
                request: page,
            });
        };
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let found = self
            .ports
            .appointments
            .list(&mut tx, actor.clinic_id, &filter, page)
            .await?;
        tx.commit().await?;
        let access = Access::list(ResourceType::Appointment, filter.patient_id);
        audit::disclose(&self.ports, actor, access).await?;
        Ok(found)
    }

    /// One keyset page of appointments ordered by start, then id, filtered as
    /// [`BookingService::list`] does, after the position `cursor` names (from the start without
    /// one), and the cursor of the next page when there is one.
    pub async fn list_after(
        &self,
        actor: &Actor,
        query: AppointmentQuery,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<Appointment>, Option<String>), ServiceError> {
        let access = Access::list(ResourceType::Appointment, None);
        audit::require(&self.ports, actor, Permission::ReadAppointments, access).await?;
        let mut errors = FieldErrors::new();
        let filter = list_filter(&query, &mut errors);
        // An empty cursor (`?cursor=`) asks for the first page.
        let after = cursor
            .filter(|c| !c.trim().is_empty())
            .and_then(|c| errors.check("cursor", parse_cursor(c)));
        let limit = errors.check("limit", Limit::parse(limit));
        errors.into_result()?;
        let Some(limit) = limit else {
            unreachable!("the limit parsed when no error was recorded")
        };
        let Some(filter) = visible_to(actor, filter) else {
            return Ok((Vec::new(), None));
        };
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let mut found = self
            .ports
            .appointments
            .list_after(&mut tx, actor.clinic_id, &filter, after, limit.fetch())
            .await?;
        tx.commit().await?;
        let access = Access::list(ResourceType::Appointment, filter.patient_id);
        audit::disclose(&self.ports, actor, access).await?;
        let next = if limit.cut(&mut found) {
            found.last().map(cursor_of)
        } else {
            None
        };
        Ok((found, next))
    }
}

/// The filter an appointment list asks for; bad values are added to `errors`.
fn list_filter(query: &AppointmentQuery, errors: &mut FieldErrors) -> AppointmentFilter {
    AppointmentFilter {
        practitioner_id: query
            .practitioner_id
            .as_deref()
            .and_then(|v| errors.check("practitioner_id", input::id(v)))
            .map(PractitionerId::from_uuid),
        patient_id: query
            .patient_id
            .as_deref()
            .and_then(|v| errors.check("patient_id", input::id(v)))
            .map(PatientId::from_uuid),
        status: query
            .status
            .as_deref()
            .and_then(|v| errors.check("status", v.parse())),
        from: query
            .from
            .as_deref()
            .and_then(|v| errors.check("from", input::instant(v))),
        to: query
            .to
            .as_deref()
            .and_then(|v| errors.check("to", input::instant(v))),
    }
}

/// `filter` narrowed to what the actor may see: a practitioner sees only their own
/// appointments, so asking for another practitioner's is an empty list (`None`).
fn visible_to(actor: &Actor, mut filter: AppointmentFilter) -> Option<AppointmentFilter> {
    if let Some(own) = own_practitioner(actor) {
        if filter.practitioner_id.is_some_and(|p| p != own) {
            return None;
        }
        filter.practitioner_id = Some(own);
    }
    Some(filter)
}

/// Names the cursors of the appointment list, so no other list's cursor is taken for one.
const CURSOR_KIND: &str = "appointments";

/// The cursor that continues the appointment list after `appointment`.
pub(super) fn cursor_of(appointment: &Appointment) -> String {
    let key = AppointmentKey::of(appointment);
    // Every digit the instant has, so the key comes back exactly.
    let start = key
        .starts_at
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    input::cursor(CURSOR_KIND, &[&start, &key.id.to_string()])
}

/// The position an appointment-list cursor names.
pub(super) fn parse_cursor(raw: &str) -> Result<AppointmentKey, InvalidValue> {
    let [start, id] = input::cursor_parts(raw, CURSOR_KIND)?;
    let starts_at = input::instant(&start).map_err(|_| input::not_a_cursor())?;
    let id = input::id(&id).map_err(|_| input::not_a_cursor())?;
    Ok(AppointmentKey {
        starts_at,
        id: AppointmentId::from_uuid(id),
    })
}
