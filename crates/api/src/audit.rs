//! `/api/v1/audit-events`: the append-only log of patient-data access, for admins.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::AuditEvent;
use clinicflow_services::AuditQuery;
use serde::{Deserialize, Serialize};

use crate::{ApiError, AppState, Authenticated};

/// Registers the audit route (read only: the log has no write, update or delete route).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/audit-events").route(web::get().to(list)));
}

/// `GET /audit-events` query.
#[derive(Debug, Deserialize)]
pub struct AuditParams {
    patient_id: Option<String>,
    actor_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// One event.
#[derive(Debug, Serialize)]
pub struct AuditEventOut {
    id: String,
    actor_id: String,
    actor_role: &'static str,
    action: &'static str,
    resource_type: &'static str,
    resource_id: Option<String>,
    patient_id: Option<String>,
    at: DateTime<Utc>,
    request_id: Option<String>,
    outcome: &'static str,
}

impl From<AuditEvent> for AuditEventOut {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id.to_string(),
            actor_id: e.actor_id.to_string(),
            actor_role: e.actor_role.as_str(),
            action: e.action.as_str(),
            resource_type: e.resource_type.as_str(),
            resource_id: e.resource_id.map(|v| v.to_string()),
            patient_id: e.patient_id.map(|v| v.to_string()),
            at: e.at,
            request_id: e.request_id.map(|v| v.to_string()),
            outcome: e.outcome.as_str(),
        }
    }
}

/// A keyset page: `next_cursor` is absent on the last page.
#[derive(Debug, Serialize)]
pub struct AuditPageOut {
    results: Vec<AuditEventOut>,
    next_cursor: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    auth: Authenticated,
    q: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let query = AuditQuery {
        patient_id: q.patient_id,
        actor_id: q.actor_id,
        from: q.from,
        to: q.to,
        cursor: q.cursor,
        limit: q.limit,
    };
    let (events, next_cursor) = state.services.audit.list(&auth.0, query).await?;
    Ok(HttpResponse::Ok().json(AuditPageOut {
        results: events.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
