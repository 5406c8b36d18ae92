//! `/api/v1/encounters` and `/api/v1/patients/{id}/encounters`: visit records.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{Encounter, EncounterId, PatientId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::body::Json;
use crate::openapi::problems;
use crate::page::{PageOut, PageParams, if_match, versioned};
use crate::{ApiError, AppState, Authenticated};

/// Registers the encounter routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/encounters/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(update)),
    )
    .service(web::resource("/patients/{id}/encounters").route(web::get().to(for_patient)));
}

/// An encounter as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EncounterOut {
    /// The encounter's id.
    id: String,
    /// The patient seen.
    patient_id: String,
    /// The practitioner who saw them.
    practitioner_id: String,
    /// The appointment it belongs to, if any.
    appointment_id: Option<String>,
    /// The queue entry it came from, if any.
    queue_entry_id: Option<String>,
    /// When the visit started.
    started_at: DateTime<Utc>,
    /// When it ended.
    ended_at: Option<DateTime<Utc>>,
    /// The visit notes.
    notes: Option<String>,
    /// The version, also the `ETag`.
    version: i32,
    /// When it last changed.
    updated_at: DateTime<Utc>,
}

impl From<Encounter> for EncounterOut {
    fn from(e: Encounter) -> Self {
        Self {
            id: e.id.to_string(),
            patient_id: e.patient_id.to_string(),
            practitioner_id: e.practitioner_id.to_string(),
            appointment_id: e.appointment_id.map(|v| v.to_string()),
            queue_entry_id: e.queue_entry_id.map(|v| v.to_string()),
            started_at: e.started_at,
            ended_at: e.ended_at,
            notes: e.notes,
            version: e.version,
            updated_at: e.updated_at,
        }
    }
}

/// `PATCH /encounters/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncounterPatch {
    /// The new notes; `null` clears them.
    notes: Option<String>,
}

/// A visit record, with its version as `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/encounters/{id}",
    operation_id = "get_encounter",
    tag = "encounter",
    params(
        ("id" = Uuid, Path, description = "The encounter's id"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "An `ETag` held; answered with 304 when current"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The encounter", body = EncounterOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current"),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
    )
)]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .services
        .encounters
        .get(&auth.0, EncounterId::from_uuid(*id))
        .await?;
    let version = e.version;
    Ok(versioned(&req, version, &EncounterOut::from(e)))
}

/// Changes a visit's notes.
#[utoipa::path(
    patch,
    path = "/api/v1/encounters/{id}",
    operation_id = "update_encounter",
    tag = "encounter",
    params(
        ("id" = Uuid, Path, description = "The encounter's id"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` read; a stale one is a 412"),
    ),
    request_body = EncounterPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed encounter", body = EncounterOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
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
    body: Json<EncounterPatch>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .services
        .encounters
        .update_notes(
            &auth.0,
            EncounterId::from_uuid(*id),
            body.notes.as_deref(),
            if_match(&req)?,
        )
        .await?;
    let version = e.version;
    Ok(versioned(&req, version, &EncounterOut::from(e)))
}

/// A patient's visits, newest first (a practitioner sees their own).
#[utoipa::path(
    get,
    path = "/api/v1/patients/{id}/encounters",
    operation_id = "list_patient_encounters",
    tag = "encounter",
    params(("id" = Uuid, Path, description = "The patient's id"), PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of encounters", body = PageOut<EncounterOut>),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::Invalid,
    )
)]
async fn for_patient(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    paging: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .services
        .encounters
        .for_patient(&auth.0, PatientId::from_uuid(*id), paging.request()?)
        .await?;
    Ok(HttpResponse::Ok().json(PageOut::new(&req, page, EncounterOut::from)))
}
