//! `/api/v1/practitioners`: practitioners, their weekly schedules, time off and free slots.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::schedule::weekday_name;
use clinicflow_domain::{Practitioner, PractitionerId, Schedule, ScheduleException};
use clinicflow_services::schedule::RuleInput;
use clinicflow_services::{
    NewPractitioner, PractitionerChanges, ScheduleInput, SlotQuery, TimeOffInput,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::appointment::SlotOut;
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
    .service(web::resource("/practitioners/{id}/time-off").route(web::post().to(add_time_off)))
    .service(web::resource("/practitioners/{id}/slots").route(web::get().to(slots)))
    .service(web::resource("/slots").route(web::get().to(first_slots)));
}

/// `POST /practitioners` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PractitionerIn {
    given_name: String,
    family_name: String,
    #[serde(default)]
    specialties: Vec<String>,
    department: Option<String>,
    slot_minutes: Option<u32>,
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

/// `PATCH /practitioners/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PractitionerPatch {
    given_name: Option<String>,
    family_name: Option<String>,
    specialties: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    department: Option<Option<String>>,
    slot_minutes: Option<u32>,
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
#[derive(Debug, Serialize)]
pub struct PractitionerOut {
    id: String,
    given_name: String,
    family_name: String,
    specialties: Vec<String>,
    department: Option<String>,
    slot_minutes: u32,
    buffer_minutes: u32,
    version: i32,
    created_at: DateTime<Utc>,
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
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Json<PractitionerIn>,
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

async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<PractitionerPatch>,
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
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    specialty: Option<String>,
    department: Option<String>,
}

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
            paging.request()?,
        )
        .await?;
    Ok(HttpResponse::Ok().json(PageOut::new(&req, page, PractitionerOut::from)))
}

/// One weekly rule.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDto {
    weekday: String,
    start: String,
    end: String,
    slot_minutes: Option<u32>,
}

/// `PUT /practitioners/{id}/schedule` body and answer.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDto {
    rules: Vec<RuleDto>,
    valid_from: Option<String>,
    valid_to: Option<String>,
}

/// The schedule with the zone its times are written in.
#[derive(Debug, Serialize)]
pub struct ScheduleOut {
    practitioner_id: String,
    time_zone: &'static str,
    #[serde(flatten)]
    schedule: ScheduleDto,
}

fn schedule_out(id: PractitionerId, time_zone: &'static str, s: &Schedule) -> ScheduleOut {
    ScheduleOut {
        practitioner_id: id.to_string(),
        time_zone,
        schedule: ScheduleDto {
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
            valid_from: Some(s.valid_from().to_string()),
            valid_to: s.valid_to().map(|d| d.to_string()),
        },
    }
}

async fn put_schedule(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<ScheduleDto>,
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

async fn get_schedule(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = PractitionerId::from_uuid(*id);
    let (schedule, clinic) = state.services.schedules.get_schedule(&auth.0, id).await?;
    Ok(HttpResponse::Ok().json(schedule_out(id, clinic.time_zone.name(), &schedule)))
}

/// `POST /practitioners/{id}/time-off` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeOffIn {
    starts_at: String,
    ends_at: String,
    reason: Option<String>,
}

/// A recorded exception.
#[derive(Debug, Serialize)]
pub struct ExceptionOut {
    id: String,
    kind: &'static str,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
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

async fn add_time_off(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<TimeOffIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = TimeOffInput {
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        reason: body.reason,
    };
    let e = state
        .services
        .schedules
        .add_time_off(&auth.0, PractitionerId::from_uuid(*id), input)
        .await?;
    Ok(HttpResponse::Created().json(ExceptionOut::from(e)))
}

/// `?from=&to=` local dates, `to` excluded.
#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    from: String,
    to: String,
}

/// Free slots of one practitioner.
#[derive(Debug, Serialize)]
pub struct SlotsOut {
    practitioner_id: String,
    time_zone: &'static str,
    slots: Vec<SlotOut>,
}

async fn slots(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    range: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = PractitionerId::from_uuid(*id);
    let (slots, clinic) = state
        .services
        .schedules
        .slots(&auth.0, id, &range.from, &range.to)
        .await?;
    Ok(HttpResponse::Ok().json(SlotsOut {
        practitioner_id: id.to_string(),
        time_zone: clinic.time_zone.name(),
        slots: slots.iter().map(SlotOut::from).collect(),
    }))
}

/// `GET /slots` query.
#[derive(Debug, Deserialize)]
pub struct FirstSlotsQuery {
    specialty: Option<String>,
    department: Option<String>,
    from: String,
    to: String,
    limit: Option<u32>,
}

/// One free slot of some practitioner.
#[derive(Debug, Serialize)]
pub struct PractitionerSlotOut {
    practitioner_id: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

/// Free slots across practitioners.
#[derive(Debug, Serialize)]
pub struct FirstSlotsOut {
    slots: Vec<PractitionerSlotOut>,
}

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
