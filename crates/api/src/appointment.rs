//! `/api/v1/appointments`: conflict-free booking, status moves and reschedules.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{Appointment, AppointmentId, Interval};
use clinicflow_services::{AppointmentAction, AppointmentQuery, BookInput, RescheduleInput};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::page::{
    CursorPageOut, FieldsParams, ListParams, PageOut, Paging, created, if_match, versioned,
};
use crate::{ApiError, AppState, Authenticated};

/// Registers the appointment routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/appointments")
            .route(web::post().to(book))
            .route(web::get().to(list)),
    )
    .service(web::resource("/appointments/{id}").route(web::get().to(get)))
    .service(web::resource("/appointments/{id}/reschedule").route(web::post().to(reschedule)))
    .service(web::resource("/appointments/{id}/{action}").route(web::post().to(act)));
}

/// A time slot.
#[derive(Debug, Serialize)]
pub struct SlotOut {
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

impl From<&Interval> for SlotOut {
    fn from(i: &Interval) -> Self {
        Self {
            starts_at: i.start(),
            ends_at: i.end(),
        }
    }
}

/// `POST /appointments` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookIn {
    patient_id: String,
    practitioner_id: String,
    starts_at: String,
    duration_minutes: Option<u32>,
    urgency: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    overbook: bool,
}

impl From<BookIn> for BookInput {
    fn from(b: BookIn) -> Self {
        Self {
            patient_id: b.patient_id,
            practitioner_id: b.practitioner_id,
            starts_at: b.starts_at,
            duration_minutes: b.duration_minutes,
            urgency: b.urgency,
            reason: b.reason,
            overbook: b.overbook,
        }
    }
}

/// An appointment as the API shows it.
#[derive(Debug, Serialize)]
pub struct AppointmentOut {
    id: String,
    patient_id: String,
    practitioner_id: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    duration_minutes: i64,
    urgency: &'static str,
    reason: Option<String>,
    status: &'static str,
    overbooked: bool,
    rescheduled_from: Option<String>,
    rescheduled_to: Option<String>,
    cancelled_by: Option<String>,
    cancel_reason: Option<String>,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl AppointmentOut {
    /// The field names a client may select with `?fields=`.
    pub const FIELDS: &[&str] = &[
        "id",
        "patient_id",
        "practitioner_id",
        "starts_at",
        "ends_at",
        "duration_minutes",
        "urgency",
        "reason",
        "status",
        "overbooked",
        "rescheduled_from",
        "rescheduled_to",
        "cancelled_by",
        "cancel_reason",
        "version",
        "created_at",
        "updated_at",
    ];
}

impl From<Appointment> for AppointmentOut {
    fn from(a: Appointment) -> Self {
        Self {
            id: a.id.to_string(),
            patient_id: a.patient_id.to_string(),
            practitioner_id: a.practitioner_id.to_string(),
            starts_at: a.interval.start(),
            ends_at: a.interval.end(),
            duration_minutes: a.interval.duration().num_minutes(),
            urgency: a.urgency.as_str(),
            reason: a.reason,
            status: a.status.as_str(),
            overbooked: a.overbooked,
            rescheduled_from: a.rescheduled_from.map(|i| i.to_string()),
            rescheduled_to: a.rescheduled_to.map(|i| i.to_string()),
            cancelled_by: a.cancelled_by.map(|i| i.to_string()),
            cancel_reason: a.cancel_reason,
            version: a.version,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

fn created_appointment(a: Appointment) -> HttpResponse {
    created(
        format!("/api/v1/appointments/{}", a.id),
        a.version,
        &AppointmentOut::from(a),
    )
}

async fn book(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Json<BookIn>,
) -> Result<HttpResponse, ApiError> {
    let a = state
        .services
        .booking
        .book(&auth.0, body.into_inner().into())
        .await?;
    Ok(created_appointment(a))
}

async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    fields: web::Query<FieldsParams>,
) -> Result<HttpResponse, ApiError> {
    let fields = fields.select(AppointmentOut::FIELDS)?;
    let a = state
        .services
        .booking
        .get(&auth.0, AppointmentId::from_uuid(*id))
        .await?;
    let version = a.version;
    Ok(fields.read(&req, version, &AppointmentOut::from(a)))
}

/// `GET /appointments` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    practitioner_id: Option<String>,
    patient_id: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    query: web::Query<ListQuery>,
    paging: web::Query<ListParams>,
    fields: web::Query<FieldsParams>,
) -> Result<HttpResponse, ApiError> {
    let fields = fields.select(AppointmentOut::FIELDS)?;
    let show = |a: Appointment| fields.apply(&AppointmentOut::from(a));
    let q = query.into_inner();
    let filter = AppointmentQuery {
        practitioner_id: q.practitioner_id,
        patient_id: q.patient_id,
        status: q.status,
        from: q.from,
        to: q.to,
    };
    let booking = &state.services.booking;
    match paging.into_inner().paging()? {
        Paging::Pages(page) => {
            let page = booking.list(&auth.0, filter, page).await?;
            Ok(HttpResponse::Ok().json(PageOut::new(&req, page, show)))
        }
        Paging::Keyset { cursor, limit } => {
            let (items, next) = booking
                .list_after(&auth.0, filter, cursor.as_deref(), limit)
                .await?;
            Ok(HttpResponse::Ok().json(CursorPageOut::new(items, next, show)))
        }
    }
}

/// Optional body of a status move (only `cancel` reads it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionIn {
    reason: Option<String>,
}

async fn act(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(Uuid, String)>,
    body: Option<web::Json<ActionIn>>,
) -> Result<HttpResponse, ApiError> {
    let (id, action) = path.into_inner();
    let reason = body.and_then(|b| b.into_inner().reason);
    let action = match action.as_str() {
        "confirm" => AppointmentAction::Confirm,
        "check-in" => AppointmentAction::CheckIn,
        "start" => AppointmentAction::Start,
        "complete" => AppointmentAction::Complete,
        "cancel" => AppointmentAction::Cancel(reason),
        "no-show" => AppointmentAction::NoShow,
        _ => return Err(ApiError::NoRoute),
    };
    let a = state
        .services
        .booking
        .act(
            &auth.0,
            AppointmentId::from_uuid(id),
            action,
            if_match(&req)?,
        )
        .await?;
    let version = a.version;
    Ok(versioned(&req, version, &AppointmentOut::from(a)))
}

/// `POST /appointments/{id}/reschedule` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescheduleIn {
    starts_at: String,
    duration_minutes: Option<u32>,
}

async fn reschedule(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<RescheduleIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = RescheduleInput {
        starts_at: body.starts_at,
        duration_minutes: body.duration_minutes,
    };
    let a = state
        .services
        .booking
        .reschedule(
            &auth.0,
            AppointmentId::from_uuid(*id),
            input,
            if_match(&req)?,
        )
        .await?;
    Ok(created_appointment(a))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use clinicflow_domain::{AppointmentStatus, ClinicId, PatientId, PractitionerId, Urgency};

    use super::*;

    #[test]
    fn the_selectable_fields_are_exactly_the_fields_shown() {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid instant");
        let appointment = Appointment {
            id: AppointmentId::from_uuid(Uuid::nil()),
            clinic_id: ClinicId::from_uuid(Uuid::nil()),
            patient_id: PatientId::from_uuid(Uuid::nil()),
            practitioner_id: PractitionerId::from_uuid(Uuid::nil()),
            interval: Interval::starting_at(now, Duration::minutes(30)).expect("valid"),
            urgency: Urgency::Routine,
            reason: None,
            status: AppointmentStatus::Booked,
            version: 1,
            rescheduled_from: None,
            rescheduled_to: None,
            cancelled_by: None,
            cancel_reason: None,
            overbooked: false,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let shown = serde_json::to_value(AppointmentOut::from(appointment)).expect("serializes");
        let mut names: Vec<&str> = shown
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        let mut allowed = AppointmentOut::FIELDS.to_vec();
        allowed.sort_unstable();
        assert_eq!(names, allowed);
    }
}
