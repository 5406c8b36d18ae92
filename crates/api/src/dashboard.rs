//! `/api/v1/dashboard/stats`: the clinic's day at a glance, for front-desk screens.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_services::{Dashboard, PractitionerDay};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http_cache::ReadyJson;
use crate::openapi::problems;
use crate::{ApiError, AppState, Authenticated};

/// Registers the dashboard route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/dashboard/stats").route(web::get().to(stats)));
}

/// A clinic's day at a glance, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardOut {
    /// The clinic-local date (`YYYY-MM-DD`).
    #[schema(format = Date)]
    date: String,
    /// When these figures were computed.
    generated_at: DateTime<Utc>,
    /// Today's appointments by status, every status listed.
    #[schema(example = json!({"booked": 4, "confirmed": 2, "checked_in": 1, "in_progress": 1, "completed": 6, "cancelled": 1, "no_show": 0}))]
    appointments: BTreeMap<String, u64>,
    /// Patients who arrived today and wait now.
    queue_waiting: u64,
    /// Mean wait from arrival to call today, in minutes.
    mean_wait_minutes: Option<f64>,
    /// No-shows divided by today's appointments that were due (checked in, in progress,
    /// completed or no-show); `null` before any was due.
    no_show_rate: Option<f64>,
    /// The same per practitioner with appointments or waiting patients today.
    practitioners: Vec<PractitionerDayOut>,
}

/// One practitioner's day.
#[derive(Debug, Serialize, ToSchema)]
pub struct PractitionerDayOut {
    /// The practitioner's id.
    practitioner_id: String,
    /// Today's appointments by status, every status listed.
    appointments: BTreeMap<String, u64>,
    /// Patients waiting for them now.
    queue_waiting: u64,
    /// Mean wait from arrival to being called by them today, in minutes.
    mean_wait_minutes: Option<f64>,
    /// Their no-show rate today, as for the clinic.
    no_show_rate: Option<f64>,
}

impl From<Dashboard> for DashboardOut {
    fn from(d: Dashboard) -> Self {
        // Destructured whole, so a new figure in the service is a compile error here until
        // the API (and its schema) decide about it.
        let Dashboard {
            date,
            generated_at,
            appointments,
            queue_waiting,
            mean_wait_minutes,
            no_show_rate,
            practitioners,
        } = d;
        Self {
            date,
            generated_at,
            appointments,
            queue_waiting,
            mean_wait_minutes,
            no_show_rate,
            practitioners: practitioners.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<PractitionerDay> for PractitionerDayOut {
    fn from(p: PractitionerDay) -> Self {
        let PractitionerDay {
            practitioner_id,
            appointments,
            queue_waiting,
            mean_wait_minutes,
            no_show_rate,
        } = p;
        Self {
            practitioner_id,
            appointments,
            queue_waiting,
            mean_wait_minutes,
            no_show_rate,
        }
    }
}

/// The clinic's day: appointments by status, the queue, waits and the no-show rate, from a
/// cache refreshed every 15 s.
#[utoipa::path(
    get,
    path = "/api/v1/dashboard/stats",
    operation_id = "dashboard_stats",
    tag = "dashboard",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counts only, no patient data (`Cache-Control: private, max-age=5`)", body = DashboardOut),
        problems::Common,
        problems::Forbidden,
    )
)]
async fn stats(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    // Rendered once per cached dashboard: a wall of screens polling it gets ready bytes.
    let dashboard = state
        .services
        .dashboard
        .stats(&auth.0, |d| ReadyJson::render(&DashboardOut::from(d)))
        .await?;
    // Counts only, no patient data; screens polling it may reuse an answer for a few seconds.
    Ok(dashboard.form.respond(&req, "private, max-age=5"))
}
