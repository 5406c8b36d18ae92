//! `/api/v1/outbox`: what the clinic's outbox holds and delivered, and a way to send a dead message again (admins).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{OutboxMessage, OutboxMessageId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::page::{PageOut, PageParams};
use crate::{ApiError, AppState, Authenticated};

/// Registers the outbox routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/outbox").route(web::get().to(list)))
        .service(web::resource("/outbox/{id}/retry").route(web::post().to(retry)));
}

/// A message as the API shows it.
#[derive(Debug, Serialize)]
pub struct MessageOut {
    id: String,
    event: &'static str,
    appointment_id: Option<String>,
    status: &'static str,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<OutboxMessage> for MessageOut {
    fn from(m: OutboxMessage) -> Self {
        Self {
            id: m.id.to_string(),
            event: m.kind.as_str(),
            appointment_id: m.appointment_id.map(|a| a.to_string()),
            status: m.status.as_str(),
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error,
            delivered_at: m.delivered_at,
            created_at: m.created_at,
        }
    }
}

/// `?status=`.
#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    status: Option<String>,
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    q: web::Query<StatusQuery>,
    paging: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .services
        .outbox
        .list(&auth.0, q.status.as_deref(), paging.request()?)
        .await?;
    Ok(HttpResponse::Ok().json(PageOut::new(&req, page, MessageOut::from)))
}

async fn retry(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let m = state
        .services
        .outbox
        .retry(&auth.0, OutboxMessageId::from_uuid(*id))
        .await?;
    Ok(HttpResponse::Ok().json(MessageOut::from(m)))
}
