//! `/api/v1/practitioners`: practitioners, their weekly schedules, time off and free slots.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::schedule::weekday_name;
use clinicflow_domain::{
    ExceptionKind, Practitioner, PractitionerId, Schedule, ScheduleException, ScheduleExceptionId,
};
use clinicflow_services::schedule::RuleInput;
use clinicflow_services::{
    NewPractitioner, PractitionerChanges, ScheduleInput, SlotQuery, TimeOffInput,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::appointment::SlotOut;
use crate::body::Json;
use crate::http_cache::ReadyJson;
use crate::openapi::problems;
use crate::page::{PageOut, PageParams, created, double_option, if_match, versioned};
use crate::{ApiError, AppState, Authenticated};

/// Registers the practitioner, schedule and slot routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/practitioners")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/practitioners/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(update)),
    )
    .service(
        web::resource("/practitioners/{id}/schedule")
            .route(web::put().to(put_schedule))
            .route(web::get().to(get_schedule)),
    )
    .service(web::resource("/practitioners/{id}/deactivate").route(web::post().to(deactivate)))
    .service(web::resource("/practitioners/{id}/reactivate").route(web::post().to(reactivate)))
    .service(
        web::resource("/practitioners/{id}/time-off")
            .route(web::post().to(add_time_off))
            .route(web::get().to(list_time_off)),
    )
    .service(
        web::resource("/practitioners/{id}/time-off/{exception_id}")
            .route(web::delete().to(remove_time_off)),
    )
    .service(
        web::resource("/practitioners/{id}/extra-hours")
            .route(web::post().to(add_extra_hours))
            .route(web::get().to(list_extra_hours)),
    )
    .service(
        web::resource("/practitioners/{id}/extra-hours/{exception_id}")
            .route(web::delete().to(remove_extra_hours)),
    )
    .service(web::resource("/practitioners/{id}/slots").route(web::get().to(slots)))
    .service(web::resource("/slots").route(web::get().to(first_slots)));
}

/// `POST /practitioners` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PractitionerIn {
    /// Given name.
    given_name: String,
    /// Family name.
    family_name: String,
    /// Specialty codes, lower-cased.
    #[serde(default)]
    #[schema(example = json!(["general_practice"]))]
    specialties: Vec<String>,
    /// Department code, lower-cased.
    department: Option<String>,
    /// Default appointment length (30).
    slot_minutes: Option<u32>,
    /// Minutes kept free after each appointment (0).
    buffer_minutes: Option<u32>,
}

impl From<PractitionerIn> for NewPractitioner {
    fn from(p: PractitionerIn) -> Self {
        Self {
            given_name: p.given_name,
            family_name: p.family_name,
            specialties: p.specialties,
            department: p.department,
            slot_minutes: p.slot_minutes,
            buffer_minutes: p.buffer_minutes,
        }
    }
}

/// `PATCH /practitioners/{id}` body: absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PractitionerPatch {
    /// Given name.
    given_name: Option<String>,
    /// Family name.
    family_name: Option<String>,
    /// Specialty codes, replacing the current ones.
    specialties: Option<Vec<String>>,
    /// Department code; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    department: Option<Option<String>>,
    /// Default appointment length.
    slot_minutes: Option<u32>,
    /// Minutes kept free after each appointment.
    buffer_minutes: Option<u32>,
}

impl From<PractitionerPatch> for PractitionerChanges {
    fn from(p: PractitionerPatch) -> Self {
        Self {
            given_name: p.given_name,
            family_name: p.family_name,
            specialties: p.specialties,
            department: p.department,
            slot_minutes: p.slot_minutes,
            buffer_minutes: p.buffer_minutes,
        }
    }
}

/// A practitioner as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PractitionerOut {
    /// The practitioner's id.
    id: String,
    /// Given name.
    given_name: String,
    /// Family name.
    family_name: String,
    /// Specialty codes.
    specialties: Vec<String>,
    /// Department code.
    department: Option<String>,
    /// Default appointment length.
    slot_minutes: u32,
    /// Minutes kept free after each appointment.
    buffer_minutes: u32,
    /// Whether the practitioner takes new bookings and offers slots (see `deactivate`).
    active: bool,
    /// The version, also the `ETag`.
    version: i32,
    /// When registered.
    created_at: DateTime<Utc>,
    /// When last changed.
    updated_at: DateTime<Utc>,
}

impl From<Practitioner> for PractitionerOut {
    fn from(p: Practitioner) -> Self {
        Self {
            id: p.id.to_string(),
            given_name: p.name.given().to_owned(),
            family_name: p.name.family().to_owned(),
            specialties: p.specialties,
            department: p.department,
            slot_minutes: p.slot_minutes,
            buffer_minutes: p.buffer_minutes,
            active: p.active,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Registers a practitioner (admins).
#[utoipa::path(
    post,
    path = "/api/v1/practitioners",
    operation_id = "create_practitioner",
    tag = "practitioner",
    request_body = PractitionerIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered, with `Location` and `ETag`", body = PractitionerOut, headers(("Location" = String, description = "The practitioner's URL"), ("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: Json<PractitionerIn>,
) -> Result<HttpResponse, ApiError> {
    let p = state
        .services
        .practitioners
        .create(&auth.0, body.into_inner().into())
        .await?;
    Ok(created(
        format!("/api/v1/practitioners/{}", p.id),
        p.version,
        &PractitionerOut::from(p),
    ))
}

/// A practitioner, with its version as `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/practitioners/{id}",
    operation_id = "get_practitioner",
    tag = "practitioner",
    params(
        ("id" = Uuid, Path, description = "The practitioner's id"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "An `ETag` held; answered with 304 when current"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The practitioner", body = PractitionerOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current"),
        problems::Common,
        problems::NotFound,
    )
)]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let p = state
        .services
        .practitioners
        .get(&auth.0, PractitionerId::from_uuid(*id))
        .await?;
    let version = p.version;
    Ok(versioned(&req, version, &PractitionerOut::from(p)))
}

/// Changes a practitioner (admins).
#[utoipa::path(
    patch,
    path = "/api/v1/practitioners/{id}",
    operation_id = "update_practitioner",
    tag = "practitioner",
    params(
        ("id" = Uuid, Path, description = "The practitioner's id"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` read; a stale one is a 412"),
    ),
    request_body = PractitionerPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed practitioner", body = PractitionerOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::PreconditionFailed,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: Json<PractitionerPatch>,
) -> Result<HttpResponse, ApiError> {
    let p = state
        .services
        .practitioners
        .update(
            &auth.0,
            PractitionerId::from_uuid(*id),
            body.into_inner().into(),
            if_match(&req)?,
        )
        .await?;
    let version = p.version;
    Ok(versioned(&req, version, &PractitionerOut::from(p)))
}

/// `GET /practitioners` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only practitioners with this specialty.
    specialty: Option<String>,
    /// Only this department's practitioners.
    department: Option<String>,
    /// Only active (`true`) or only deactivated (`false`) practitioners; both when absent.
    active: Option<bool>,
}

/// The practitioner directory.
#[utoipa::path(
    get,
    path = "/api/v1/practitioners",
    operation_id = "list_practitioners",
    tag = "practitioner",
    params(ListQuery, PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of practitioners (`Cache-Control: private, max-age=60`)", body = PageOut<PractitionerOut>),
        problems::Common,
        problems::Invalid,
    )
)]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    query: web::Query<ListQuery>,
    paging: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .services
        .practitioners
        .list(
            &auth.0,
            query.specialty.as_deref(),
            query.department.as_deref(),
            query.active,
            paging.request()?,
        )
        .await?;
    Ok(HttpResponse::Ok().json(PageOut::new(&req, page, PractitionerOut::from)))
}

/// One weekly rule, in clinic-local time.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDto {
    /// `mon` … `sun`.
    #[schema(example = "mon")]
    weekday: String,
    /// `HH:MM`.
    #[schema(example = "09:00")]
    start: String,
    /// `HH:MM`, after `start`.
    #[schema(example = "12:30")]
    end: String,
    /// Slot length for this rule; the practitioner's default otherwise.
    slot_minutes: Option<u32>,
}

/// `PUT /practitioners/{id}/schedule` body: the whole weekly schedule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDto {
    /// The weekly rules; rules of one weekday must not overlap.
    rules: Vec<RuleDto>,
    /// First day it applies (`YYYY-MM-DD`); default today in the clinic.
    #[schema(format = Date)]
    valid_from: Option<String>,
    /// Last day it applies, inclusive; open-ended when absent.
    #[schema(format = Date)]
    valid_to: Option<String>,
}

/// The schedule with the zone its times are written in.
///
/// Its fields are spelled out rather than flattened from [`ScheduleDto`]: that body refuses
/// unknown fields, and its closed schema would declare `practitioner_id` and `time_zone`
/// themselves not allowed here.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleOut {
    /// The practitioner's id.
    practitioner_id: String,
    /// The clinic's IANA time zone, which the rules' times are in.
    time_zone: &'static str,
    /// The weekly rules.
    rules: Vec<RuleDto>,
    /// First day it applies (`YYYY-MM-DD`).
    #[schema(format = Date)]
    valid_from: String,
    /// Last day it applies, inclusive; `null` when open-ended.
    #[schema(format = Date)]
    valid_to: Option<String>,
}

fn schedule_out(id: PractitionerId, time_zone: &'static str, s: &Schedule) -> ScheduleOut {
    ScheduleOut {
        practitioner_id: id.to_string(),
        time_zone,
        rules: s
            .rules()
            .iter()
            .map(|r| RuleDto {
                weekday: weekday_name(r.weekday()).to_owned(),
                start: r.start().format("%H:%M").to_string(),
                end: r.end().format("%H:%M").to_string(),
                slot_minutes: r.slot_minutes(),
            })
            .collect(),
        valid_from: s.valid_from().to_string(),
        valid_to: s.valid_to().map(|d| d.to_string()),
    }
}

/// Replaces a practitioner's weekly schedule (admins, or the practitioner).
#[utoipa::path(
    put,
    path = "/api/v1/practitioners/{id}/schedule",
    operation_id = "put_schedule",
    tag = "practitioner",
    params(("id" = Uuid, Path, description = "The practitioner's id")),
    request_body = ScheduleDto,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The schedule now", body = ScheduleOut),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn put_schedule(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: Json<ScheduleDto>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = ScheduleInput {
        rules: body
            .rules
            .into_iter()
            .map(|r| RuleInput {
                weekday: r.weekday,
                start: r.start,
                end: r.end,
                slot_minutes: r.slot_minutes,
            })
            .collect(),
        valid_from: body.valid_from,
        valid_to: body.valid_to,
    };
    let id = PractitionerId::from_uuid(*id);
    state
        .services
        .schedules
        .put_schedule(&auth.0, id, input)
        .await?;
    let (schedule, clinic) = state.services.schedules.get_schedule(&auth.0, id).await?;
    Ok(HttpResponse::Ok().json(schedule_out(id, clinic.time_zone.name(), &schedule)))
}

/// A practitioner's weekly schedule and the clinic's time zone.
#[utoipa::path(
    get,
    path = "/api/v1/practitioners/{id}/schedule",
    operation_id = "get_schedule",
    tag = "practitioner",
    params(("id" = Uuid, Path, description = "The practitioner's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The schedule", body = ScheduleOut),
        problems::Common,
        problems::NotFound,
    )
)]
async fn get_schedule(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = PractitionerId::from_uuid(*id);
    let (schedule, clinic) = state.services.schedules.get_schedule(&auth.0, id).await?;
    Ok(HttpResponse::Ok().json(schedule_out(id, clinic.time_zone.name(), &schedule)))
}

/// `POST /practitioners/{id}/time-off` and `POST /practitioners/{id}/extra-hours` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeOffIn {
    /// Start (RFC 3339 with an offset).
    #[schema(format = DateTime)]
    starts_at: String,
    /// End, at most 366 days after the start.
    #[schema(format = DateTime)]
    ends_at: String,
    /// Why.
    reason: Option<String>,
}

impl From<TimeOffIn> for TimeOffInput {
    fn from(body: TimeOffIn) -> Self {
        Self {
            starts_at: body.starts_at,
            ends_at: body.ends_at,
            reason: body.reason,
        }
    }
}

/// A recorded exception to the schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionOut {
    /// The exception's id.
    id: String,
    /// Its kind, such as `time_off`.
    kind: &'static str,
    /// Start.
    starts_at: DateTime<Utc>,
    /// End.
    ends_at: DateTime<Utc>,
    /// Why.
    reason: Option<String>,
}

impl From<ScheduleException> for ExceptionOut {
    fn from(e: ScheduleException) -> Self {
        Self {
            id: e.id.to_string(),
            kind: e.kind.as_str(),
            starts_at: e.interval.start(),
            ends_at: e.interval.end(),
            reason: e.reason,
        }
    }
}

/// Records time off: existing appointments inside it are kept, new bookings there are refused.
#[utoipa::path(
    post,
    path = "/api/v1/practitioners/{id}/time-off",
    operation_id = "add_time_off",
    tag = "practitioner",
    params(("id" = Uuid, Path, description = "The practitioner's id")),
    request_body = TimeOffIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The time off", body = ExceptionOut),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn add_time_off(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: Json<TimeOffIn>,
) -> Result<HttpResponse, ApiError> {
    let input = TimeOffInput::from(body.into_inner());
    let e = state
        .services
        .schedules
        .add_time_off(&auth.0, PractitionerId::from_uuid(*id), input)
        .await?;
    Ok(HttpResponse::Created().json(ExceptionOut::from(e)))
}

/// Lists a practitioner's time off, ordered by start.
#[utoipa::path(
    get,
    path = "/api/v1/practitioners/{id}/time-off",
    operation_id = "list_time_off",
    tag = "practitioner",
    params(("id" = Uuid, Path, description = "The practitioner's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The time off, ordered by start", body = Vec<ExceptionOut>),
        problems::Common,
        problems::NotFound,
    )
)]
async fn list_time_off(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    list_exceptions(&state, &auth, *id, ExceptionKind::TimeOff).await
}

/// Deletes time off: its slots are offered again at once.
#[utoipa::path(
    delete,
    path = "/api/v1/practitioners/{id}/time-off/{exception_id}",
    operation_id = "remove_time_off",
    tag = "practitioner",
    params(
        ("id" = Uuid, Path, description = "The practitioner's id"),
        ("exception_id" = Uuid, Path, description = "The time off's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
    )
)]
async fn remove_time_off(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    remove_exception(&state, &auth, path.into_inner(), ExceptionKind::TimeOff).await
}

/// Adds extra hours: working time outside the weekly schedule, offered in slots of the
/// practitioner's default length (time off still wins).
#[utoipa::path(
    post,
    path = "/api/v1/practitioners/{id}/extra-hours",
    operation_id = "add_extra_hours",
    tag = "practitioner",
    params(("id" = Uuid, Path, description = "The practitioner's id")),
    request_body = TimeOffIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The extra hours", body = ExceptionOut),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn add_extra_hours(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: Json<TimeOffIn>,
) -> Result<HttpResponse, ApiError> {
    let input = TimeOffInput::from(body.into_inner());
    let e = state
        .services
        .schedules
        .add_extra_hours(&auth.0, PractitionerId::from_uuid(*id), input)
        .await?;
    Ok(HttpResponse::Created().json(ExceptionOut::from(e)))
}

/// Lists a practitioner's extra hours, ordered by start.
#[utoipa::path(
    get,
    path = "/api/v1/practitioners/{id}/extra-hours",
    operation_id = "list_extra_hours",
    tag = "practitioner",
    params(("id" = Uuid, Path, description = "The practitioner's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The extra hours, ordered by start", body = Vec<ExceptionOut>),
        problems::Common,
        problems::NotFound,
    )
)]
async fn list_extra_hours(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    list_exceptions(&state, &auth, *id, ExceptionKind::ExtraHours).await
}

/// Deletes extra hours: their free slots are no longer offered; appointments booked in them stay.
#[utoipa::path(
    delete,
    path = "/api/v1/practitioners/{id}/extra-hours/{exception_id}",
    operation_id = "remove_extra_hours",
    tag = "practitioner",
    params(
        ("id" = Uuid, Path, description = "The practitioner's id"),
        ("exception_id" = Uuid, Path, description = "The extra hours' id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
    )
)]
async fn remove_extra_hours(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    remove_exception(&state, &auth, path.into_inner(), ExceptionKind::ExtraHours).await
}

async fn list_exceptions(
    state: &AppState,
    auth: &Authenticated,
    id: Uuid,
    kind: ExceptionKind,
) -> Result<HttpResponse, ApiError> {
    let found = state
        .services
        .schedules
        .exceptions(&auth.0, PractitionerId::from_uuid(id), kind)
        .await?;
    let out: Vec<ExceptionOut> = found.into_iter().map(ExceptionOut::from).collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn remove_exception(
    state: &AppState,
    auth: &Authenticated,
    (id, exception): (Uuid, Uuid),
    kind: ExceptionKind,
) -> Result<HttpResponse, ApiError> {
    state
        .services
        .schedules
        .remove_exception(
            &auth.0,
            PractitionerId::from_uuid(id),
            kind,
            ScheduleExceptionId::from_uuid(exception),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deactivates a practitioner (admins): no new bookings or walk-ins for them, and no slots;
/// their existing appointments stay. Deactivating a deactivated practitioner changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/practitioners/{id}/deactivate",
    operation_id = "deactivate_practitioner",
    tag = "practitioner",
    params(
        ("id" = Uuid, Path, description = "The practitioner's id"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` read; a stale one is a 412"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The practitioner, now inactive", body = PractitionerOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::PreconditionFailed,
    )
)]
async fn deactivate(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_active(&req, &state, &auth, *id, false).await
}

/// Reactivates a practitioner (admins): they take bookings and offer slots again.
#[utoipa::path(
    post,
    path = "/api/v1/practitioners/{id}/reactivate",
    operation_id = "reactivate_practitioner",
    tag = "practitioner",
    params(
        ("id" = Uuid, Path, description = "The practitioner's id"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` read; a stale one is a 412"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The practitioner, now active", body = PractitionerOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::PreconditionFailed,
    )
)]
async fn reactivate(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_active(&req, &state, &auth, *id, true).await
}

async fn set_active(
    req: &HttpRequest,
    state: &AppState,
    auth: &Authenticated,
    id: Uuid,
    active: bool,
) -> Result<HttpResponse, ApiError> {
    let p = state
        .services
        .practitioners
        .set_active(
            &auth.0,
            PractitionerId::from_uuid(id),
            active,
            if_match(req)?,
        )
        .await?;
    let version = p.version;
    Ok(versioned(req, version, &PractitionerOut::from(p)))
}

/// `?from=&to=` local dates, `to` excluded.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// First clinic-local day (`YYYY-MM-DD`).
    #[param(format = Date)]
    from: String,
    /// Day after the last (excluded); at most 62 days after `from`.
    #[param(format = Date)]
    to: String,
}

/// Free slots of one practitioner.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotsOut {
    /// The practitioner's id.
    practitioner_id: String,
    /// The clinic's IANA time zone.
    time_zone: &'static str,
    /// Free slots in time order.
    slots: Vec<SlotOut>,
}

/// A practitioner's free slots on clinic-local days `from` … `to` (excluded): stepped in local
/// time from each rule's start, without the past, time off, or the buffer of an appointment.
#[utoipa::path(
    get,
    path = "/api/v1/practitioners/{id}/slots",
    operation_id = "practitioner_slots",
    tag = "practitioner",
    params(("id" = Uuid, Path, description = "The practitioner's id"), RangeQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Free slots", body = SlotsOut),
        problems::Common,
        problems::NotFound,
        problems::Invalid,
    )
)]
async fn slots(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    range: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = PractitionerId::from_uuid(*id);
    // Rendered once per list on this instance: a month of slots is a large body, and a
    // booking page asks for the same one again and again.
    let ready = state
        .services
        .schedules
        .slots(&auth.0, id, &range.from, &range.to, |slots, clinic| {
            ReadyJson::render(&SlotsOut {
                practitioner_id: id.to_string(),
                time_zone: clinic.time_zone.name(),
                slots: slots.iter().map(SlotOut::from).collect(),
            })
        })
        .await?;
    // Changes with every booking: a client may keep it, but asks again each time.
    Ok(ready.respond(&req, "private, no-cache"))
}

/// `GET /slots` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FirstSlotsQuery {
    /// Only practitioners with this specialty.
    specialty: Option<String>,
    /// Only this department's practitioners.
    department: Option<String>,
    /// First clinic-local day (`YYYY-MM-DD`).
    #[param(format = Date)]
    from: String,
    /// Day after the last (excluded).
    #[param(format = Date)]
    to: String,
    /// Slots to return: 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// One free slot of some practitioner.
#[derive(Debug, Serialize, ToSchema)]
pub struct PractitionerSlotOut {
    /// Whose slot.
    practitioner_id: String,
    /// Start.
    #[serde(serialize_with = "crate::page::instant")]
    starts_at: DateTime<Utc>,
    /// End.
    #[serde(serialize_with = "crate::page::instant")]
    ends_at: DateTime<Utc>,
}

/// Free slots across practitioners.
#[derive(Debug, Serialize, ToSchema)]
pub struct FirstSlotsOut {
    /// The earliest free slots, in time order.
    slots: Vec<PractitionerSlotOut>,
}

/// The earliest free slots across practitioners.
#[utoipa::path(
    get,
    path = "/api/v1/slots",
    operation_id = "first_free_slots",
    tag = "practitioner",
    params(FirstSlotsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Free slots", body = FirstSlotsOut),
        problems::Common,
        problems::Invalid,
    )
)]
async fn first_slots(
    state: web::Data<AppState>,
    auth: Authenticated,
    query: web::Query<FirstSlotsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let found = state
        .services
        .schedules
        .first_slots(
            &auth.0,
            SlotQuery {
                specialty: q.specialty,
                department: q.department,
                from: q.from,
                to: q.to,
                limit: q.limit,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(FirstSlotsOut {
        slots: found
            .into_iter()
            .map(|(p, s)| PractitionerSlotOut {
                practitioner_id: p.to_string(),
                starts_at: s.start(),
                ends_at: s.end(),
            })
            .collect(),
    }))
}
