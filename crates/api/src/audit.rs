//! `/api/v1/audit-events`: the append-only log of patient-data access, for admins.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::AuditEvent;
use clinicflow_services::AuditQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::openapi::problems;
use crate::{ApiError, AppState, Authenticated};

/// Registers the audit route (read only: the log has no write, update or delete route).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/audit-events").route(web::get().to(list)));
}

/// `GET /audit-events` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only events about this patient.
    patient_id: Option<String>,
    /// Only events by this user.
    actor_id: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only events before this instant (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Events per page: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventOut {
    /// The event's id.
    id: String,
    /// Who acted.
    actor_id: String,
    /// Their role then.
    actor_role: &'static str,
    /// `read`, `list`, `create`, `update` or `delete`.
    action: &'static str,
    /// `patient`, `appointment`, `queue_entry`, `encounter` or `clinic`.
    resource_type: &'static str,
    /// The resource's id, if one.
    resource_id: Option<String>,
    /// The patient concerned, if any.
    patient_id: Option<String>,
    /// When.
    at: DateTime<Utc>,
    /// The request's id (`x-request-id`).
    request_id: Option<String>,
    /// `success` or `denied`.
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

/// A keyset page: `next_cursor` is `null` on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageOut {
    /// This page's events, newest first.
    results: Vec<AuditEventOut>,
    /// Pass it as `cursor` for the next page.
    next_cursor: Option<String>,
}

/// The audit log, newest first (admins).
#[utoipa::path(
    get,
    path = "/api/v1/audit-events",
    operation_id = "list_audit_events",
    tag = "audit",
    params(AuditParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A keyset page of events", body = AuditPageOut),
        problems::Common,
        problems::Forbidden,
        problems::Invalid,
    )
)]
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
