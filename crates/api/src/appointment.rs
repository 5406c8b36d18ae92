//! `/api/v1/appointments`: conflict-free booking, status moves and reschedules.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{Appointment, AppointmentId, Interval, StoredAnswer};
use clinicflow_services::{AppointmentAction, AppointmentQuery, BookInput, RescheduleInput};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::body::{Json, OptionalJson};
use crate::openapi::problems;
use crate::page::{
    CursorPageOut, FieldsParams, ListParams, PageOut, Paging, created, fresh_version, if_match,
    path_action, versioned,
};
use crate::{ApiError, AppState, Authenticated, idempotency};

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
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotOut {
    /// Start.
    #[serde(serialize_with = "crate::page::instant")]
    starts_at: DateTime<Utc>,
    /// End.
    #[serde(serialize_with = "crate::page::instant")]
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
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookIn {
    /// The patient's id.
    patient_id: String,
    /// The practitioner's id.
    practitioner_id: String,
    /// On a whole minute, in the future, with an offset (RFC 3339).
    #[schema(format = DateTime, example = "2026-12-01T08:00:00Z")]
    starts_at: String,
    /// Length; the practitioner's slot length when absent.
    duration_minutes: Option<u32>,
    /// `routine` (default), `urgent` or `emergency`.
    urgency: Option<String>,
    /// Why the patient comes.
    reason: Option<String>,
    /// Waive the past, availability and buffer rules (admins and practitioners); never the
    /// overlap rule.
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
#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentOut {
    /// The appointment's id.
    id: String,
    /// The patient's id.
    patient_id: String,
    /// The practitioner's id.
    practitioner_id: String,
    /// Start.
    #[serde(serialize_with = "crate::page::instant")]
    starts_at: DateTime<Utc>,
    /// End.
    #[serde(serialize_with = "crate::page::instant")]
    ends_at: DateTime<Utc>,
    /// Length in minutes.
    duration_minutes: i64,
    /// `routine`, `urgent` or `emergency`.
    urgency: &'static str,
    /// Why the patient comes.
    reason: Option<String>,
    /// `booked`, `confirmed`, `checked_in`, `in_progress`, `completed`, `cancelled` or `no_show`.
    status: &'static str,
    /// Whether it was booked with `overbook`.
    overbooked: bool,
    /// The appointment this one replaced.
    rescheduled_from: Option<String>,
    /// The appointment that replaced this one.
    rescheduled_to: Option<String>,
    /// Who cancelled it.
    cancelled_by: Option<String>,
    /// Why it was cancelled.
    cancel_reason: Option<String>,
    /// The version, also the `ETag`.
    version: i32,
    /// When booked.
    #[serde(serialize_with = "crate::page::instant")]
    created_at: DateTime<Utc>,
    /// When last changed.
    #[serde(serialize_with = "crate::page::instant")]
    updated_at: DateTime<Utc>,
}

/// What `GET /appointments` answers: a numbered page, or a keyset page when `cursor` or
/// `limit` is given. With `?fields=`, each item has only the fields selected and `id`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AppointmentList {
    /// `?page=&page_size=`.
    Pages(PageOut<AppointmentOut>),
    /// `?cursor=&limit=`.
    Keyset(CursorPageOut<AppointmentOut>),
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

fn created_appointment(a: &Appointment) -> HttpResponse {
    created(
        format!("/api/v1/appointments/{}", a.id),
        a.version,
        &AppointmentOut::from(a.clone()),
    )
}

/// The stored answer of a booking or reschedule made under an idempotency key.
fn stored_created(a: &Appointment) -> StoredAnswer {
    idempotency::stored(created_appointment(a))
}

/// Books an appointment: on a whole minute, in the future, inside the practitioner's
/// availability and not in time off, with the practitioner (and buffer) and patient free.
#[utoipa::path(
    post,
    path = "/api/v1/appointments",
    operation_id = "book_appointment",
    tag = "appointment",
    params(idempotency::KeyHeader),
    request_body = BookIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Booked, with `Location` and `ETag`", body = AppointmentOut, headers(("Location" = String, description = "The appointment's URL"), ("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::Conflict,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn book(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    body: Json<BookIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let booking = &state.services.booking;
    let Some(keyed) = idempotency::key_of(&req, &body)? else {
        return Ok(created_appointment(
            &booking.book(&auth.0, body.into()).await?,
        ));
    };
    let once = keyed.once(state.limits.idempotency_ttl_secs, &stored_created);
    let answered = booking.book_idempotent(&auth.0, body.into(), &once).await?;
    Ok(idempotency::respond(answered))
}

/// An appointment, with its version as `ETag` (a `fields` selection gets a weak body ETag instead).
#[utoipa::path(
    get,
    path = "/api/v1/appointments/{id}",
    operation_id = "get_appointment",
    tag = "appointment",
    params(
        ("id" = Uuid, Path, description = "The appointment's id"),
        FieldsParams,
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "An `ETag` held; answered with 304 when current"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The appointment (only the selected fields with `fields`)", body = AppointmentOut, headers(("ETag" = String, description = "`\"<version>\"`, or a weak body tag with `fields`"))),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current"),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::Invalid,
    )
)]
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this practitioner's appointments.
    practitioner_id: Option<String>,
    /// Only this patient's appointments.
    patient_id: Option<String>,
    /// Only appointments in this status.
    status: Option<String>,
    /// Only appointments starting at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only appointments starting before this instant (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
}

/// Appointments by start: page numbers or keyset paging.
#[utoipa::path(
    get,
    path = "/api/v1/appointments",
    operation_id = "list_appointments",
    tag = "appointment",
    params(ListQuery, ListParams, FieldsParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of appointments", body = AppointmentList),
        problems::Common,
        problems::Forbidden,
        problems::Invalid,
    )
)]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    query: web::Query<ListQuery>,
    paging: web::Query<ListParams>,
    fields: web::Query<FieldsParams>,
) -> Result<HttpResponse, ApiError> {
    let fields = fields.select(AppointmentOut::FIELDS)?;
    let show = |a: Appointment| fields.apply(AppointmentOut::from(a));
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

/// Optional body of a status move (only `cancel` and `check-in` read it).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionIn {
    /// `cancel`: why.
    reason: Option<String>,
    /// `check-in`: check in outside the clinic's check-in window (admins and practitioners;
    /// audited as an `override`).
    #[serde(rename = "override")]
    override_window: Option<bool>,
}

/// The moves `POST /appointments/{id}/{action}` makes; any other word is a 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StatusMove {
    /// booked → confirmed.
    Confirm,
    /// confirmed (or booked) → checked_in; also queues the patient.
    CheckIn,
    /// checked_in → in_progress.
    Start,
    /// in_progress → completed.
    Complete,
    /// booked or confirmed → cancelled, with an optional `{reason}`.
    Cancel,
    /// booked or confirmed → no_show, from start + the clinic's grace.
    NoShow,
}

/// Moves an appointment's status: `confirm`, `check-in` (inside the clinic's check-in window,
/// or with `{override: true}`), `start` (opens the visit's encounter), `complete`, `cancel`
/// (with an optional `{reason}`) or `no-show`. An illegal move is a 409 `illegal_transition`
/// with `allowed`, a no-show before start + grace a 409 `no_show_too_early`, a check-in
/// outside the window a 409 `outside_check_in_window` with `opens_at` and `closes_at`.
#[utoipa::path(
    post,
    path = "/api/v1/appointments/{id}/{action}",
    operation_id = "move_appointment",
    tag = "appointment",
    params(
        ("id" = Uuid, Path, description = "The appointment's id"),
        ("action" = StatusMove, Path, description = "The move"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` read; a stale one is a 412"),
        idempotency::KeyHeader,
    ),
    request_body(content = Option<ActionIn>, description = "Only `cancel` (`reason`) and `check-in` (`override`) read a body"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The moved appointment", body = AppointmentOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::Conflict,
        problems::PreconditionFailed,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn act(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(Uuid, String)>,
    body: OptionalJson<ActionIn>,
) -> Result<HttpResponse, ApiError> {
    let (id, action) = path.into_inner();
    let body = body.0;
    let keyed = idempotency::key_of(&req, &body)?;
    let (reason, override_window) = body.map_or((None, false), |b| {
        (b.reason, b.override_window.unwrap_or(false))
    });
    let action = match path_action(&action).ok_or(ApiError::NoRoute)? {
        StatusMove::Confirm => AppointmentAction::Confirm,
        StatusMove::CheckIn => AppointmentAction::CheckIn { override_window },
        StatusMove::Start => AppointmentAction::Start,
        StatusMove::Complete => AppointmentAction::Complete,
        StatusMove::Cancel => AppointmentAction::Cancel(reason),
        StatusMove::NoShow => AppointmentAction::NoShow,
    };
    let (id, if_match) = (AppointmentId::from_uuid(id), if_match(&req)?);
    let booking = &state.services.booking;
    let Some(keyed) = keyed else {
        let a = booking.act(&auth.0, id, action, if_match).await?;
        return Ok(versioned(&req, a.version, &AppointmentOut::from(a)));
    };
    let render = |a: &Appointment| {
        idempotency::stored(fresh_version(a.version, &AppointmentOut::from(a.clone())))
    };
    let once = keyed.once(state.limits.idempotency_ttl_secs, &render);
    let answered = booking
        .act_idempotent(&auth.0, id, action, if_match, &once)
        .await?;
    Ok(idempotency::respond(answered))
}

/// `POST /appointments/{id}/reschedule` body.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleIn {
    /// The new start, as for booking.
    #[schema(format = DateTime)]
    starts_at: String,
    /// The new length; the old one's when absent.
    duration_minutes: Option<u32>,
}

/// Moves an appointment to a new time: the old one is cancelled and both are linked
/// (`rescheduled_to`, `rescheduled_from`) in one transaction.
#[utoipa::path(
    post,
    path = "/api/v1/appointments/{id}/reschedule",
    operation_id = "reschedule_appointment",
    tag = "appointment",
    params(
        ("id" = Uuid, Path, description = "The appointment's id"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` read; a stale one is a 412"),
        idempotency::KeyHeader,
    ),
    request_body = RescheduleIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new appointment, with `Location` and `ETag`", body = AppointmentOut, headers(("Location" = String, description = "The new appointment's URL"), ("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::Conflict,
        problems::PreconditionFailed,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn reschedule(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: Json<RescheduleIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let keyed = idempotency::key_of(&req, &body)?;
    let input = RescheduleInput {
        starts_at: body.starts_at,
        duration_minutes: body.duration_minutes,
    };
    let (id, if_match) = (AppointmentId::from_uuid(*id), if_match(&req)?);
    let booking = &state.services.booking;
    let Some(keyed) = keyed else {
        let a = booking.reschedule(&auth.0, id, input, if_match).await?;
        return Ok(created_appointment(&a));
    };
    let once = keyed.once(state.limits.idempotency_ttl_secs, &stored_created);
    let answered = booking
        .reschedule_idempotent(&auth.0, id, input, if_match, &once)
        .await?;
    Ok(idempotency::respond(answered))
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
