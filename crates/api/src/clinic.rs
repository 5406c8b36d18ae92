//! `/api/v1/clinic`: the caller's clinic and its settings, and `/api/v1/clinic/webhook`, where
//! its outbox messages are delivered (admins).

use actix_web::{HttpResponse, web};
use clinicflow_domain::{Clinic, WebhookEndpoint};
use clinicflow_services::ClinicPatch;
use serde::{Deserialize, Serialize};

use crate::{ApiError, AppState, Authenticated};

/// Registers the clinic routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/clinic")
            .route(web::get().to(get))
            .route(web::patch().to(update)),
    )
    .service(
        web::resource("/clinic/webhook")
            .route(web::get().to(get_webhook))
            .route(web::put().to(set_webhook))
            .route(web::delete().to(remove_webhook)),
    );
}

/// A clinic's settings as the API shows them.
#[derive(Debug, Serialize)]
pub struct ClinicOut {
    id: String,
    name: String,
    time_zone: String,
    no_show_grace_minutes: u32,
    checkin_grace_minutes: u32,
    triage_target_minutes: TargetsOut,
    reminder_offsets_minutes: Vec<u32>,
}

/// Target waits per triage category, in minutes.
#[derive(Debug, Serialize)]
pub struct TargetsOut {
    immediate: u32,
    very_urgent: u32,
    urgent: u32,
    standard: u32,
    non_urgent: u32,
}

impl From<Clinic> for ClinicOut {
    fn from(c: Clinic) -> Self {
        let [immediate, very_urgent, urgent, standard, non_urgent] = c.queue.target_minutes;
        Self {
            id: c.id.to_string(),
            name: c.name.as_ref().to_owned(),
            time_zone: c.time_zone.name().to_owned(),
            no_show_grace_minutes: c.no_show_grace_minutes,
            checkin_grace_minutes: c.queue.checkin_grace_minutes,
            triage_target_minutes: TargetsOut {
                immediate,
                very_urgent,
                urgent,
                standard,
                non_urgent,
            },
            reminder_offsets_minutes: c.reminders.minutes(),
        }
    }
}

/// `PATCH /clinic`: the settings to change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicPatchIn {
    name: Option<String>,
    no_show_grace_minutes: Option<u32>,
    checkin_grace_minutes: Option<u32>,
    reminder_offsets_minutes: Option<Vec<u32>>,
}

async fn get(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    let clinic = state.services.clinics.settings(&auth.0).await?;
    Ok(HttpResponse::Ok().json(ClinicOut::from(clinic)))
}

async fn update(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Json<ClinicPatchIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let patch = ClinicPatch {
        name: body.name,
        no_show_grace_minutes: body.no_show_grace_minutes,
        checkin_grace_minutes: body.checkin_grace_minutes,
        reminder_offsets_minutes: body.reminder_offsets_minutes,
    };
    let clinic = state.services.clinics.update(&auth.0, patch).await?;
    Ok(HttpResponse::Ok().json(ClinicOut::from(clinic)))
}

/// A webhook as the API shows it: the secret only in the answer that made it.
#[derive(Debug, Serialize)]
pub struct WebhookOut {
    url: String,
    secret_hint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookOut {
    fn new(webhook: &WebhookEndpoint, show_secret: bool) -> Self {
        Self {
            url: webhook.url.to_string(),
            secret_hint: webhook.secret.hint(),
            secret: show_secret.then(|| webhook.secret.expose().to_owned()),
        }
    }
}

/// `PUT /clinic/webhook`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    url: String,
    #[serde(default)]
    rotate_secret: bool,
}

async fn get_webhook(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let webhook = state.services.clinics.webhook(&auth.0).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(WebhookOut::new(&webhook, false)))
}

async fn set_webhook(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Json<WebhookIn>,
) -> Result<HttpResponse, ApiError> {
    let (webhook, new_secret) = state
        .services
        .clinics
        .set_webhook(&auth.0, &body.url, body.rotate_secret)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(WebhookOut::new(&webhook, new_secret)))
}

async fn remove_webhook(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    state.services.clinics.remove_webhook(&auth.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
