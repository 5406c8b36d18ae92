//! `/api/v1/outbox`: what the clinic's outbox holds and delivered, and a way to send a dead message again (admins).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{OutboxMessage, OutboxMessageId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::openapi::problems;
use crate::page::{PageOut, PageParams};
use crate::{ApiError, AppState, Authenticated};

/// Registers the outbox routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/outbox").route(web::get().to(list)))
        .service(web::resource("/outbox/{id}/retry").route(web::post().to(retry)));
}

/// A message as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    /// The message's id, which receivers deduplicate by.
    id: String,
    /// `booking.confirmed`, `booking.cancelled`, `booking.rescheduled`, `appointment.no_show`,
    /// `queue.called` or `reminder.due`.
    event: &'static str,
    /// The appointment it is about, if any.
    appointment_id: Option<String>,
    /// `pending`, `delivered`, `dead` or `cancelled`.
    status: &'static str,
    /// Delivery attempts so far.
    attempts: u32,
    /// When the next attempt is due.
    next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    last_error: Option<String>,
    /// When it was delivered.
    delivered_at: Option<DateTime<Utc>>,
    /// When it was written.
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Only messages in this status: `pending`, `delivered`, `dead` or `cancelled`.
    status: Option<String>,
}

/// The clinic's outbox, newest first (admins).
#[utoipa::path(
    get,
    path = "/api/v1/outbox",
    operation_id = "list_outbox",
    tag = "outbox",
    params(StatusQuery, PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of messages", body = PageOut<MessageOut>),
        problems::Common,
        problems::Forbidden,
        problems::Invalid,
    )
)]
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

/// Sends a pending or dead message again at once, its attempts reset (admins); 422 for
/// delivered or cancelled ones.
#[utoipa::path(
    post,
    path = "/api/v1/outbox/{id}/retry",
    operation_id = "retry_outbox_message",
    tag = "outbox",
    params(("id" = Uuid, Path, description = "The message's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message, due now", body = MessageOut),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::Invalid,
    )
)]
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
