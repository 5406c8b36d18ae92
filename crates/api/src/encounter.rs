//! `/api/v1/encounters` and `/api/v1/patients/{id}/encounters`: visit records.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{Encounter, EncounterId, PatientId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
#[derive(Debug, Serialize)]
pub struct EncounterOut {
    id: String,
    patient_id: String,
    practitioner_id: String,
    appointment_id: Option<String>,
    queue_entry_id: Option<String>,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    notes: Option<String>,
    version: i32,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncounterPatch {
    notes: Option<String>,
}

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

async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<EncounterPatch>,
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
