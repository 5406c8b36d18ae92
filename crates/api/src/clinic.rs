//! `/api/v1/clinic`: the caller's clinic and its settings, and `/api/v1/clinic/webhook`, where
//! its outbox messages are delivered (admins).

use actix_web::{HttpRequest, HttpResponse, web};
use clinicflow_domain::{Clinic, WebhookEndpoint};
use clinicflow_services::ClinicPatch;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::Json;
use crate::openapi::problems;
use crate::page::{double_option, fresh_version, if_match, versioned};
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
#[derive(Debug, Serialize, ToSchema)]
pub struct ClinicOut {
    /// The clinic's id.
    id: String,
    /// Its name.
    name: String,
    /// Its IANA time zone, fixed when the clinic is created.
    time_zone: String,
    /// Minutes after an appointment's start from which a no-show may be recorded.
    no_show_grace_minutes: u32,
    /// Minutes of grace a checked-in appointment gets in the queue.
    checkin_grace_minutes: u32,
    /// Target waits per triage category.
    triage_target_minutes: TargetsOut,
    /// When reminders go out, in minutes before an appointment's start.
    reminder_offsets_minutes: Vec<u32>,
    /// Check-in opens this many minutes before an appointment's start.
    check_in_opens_minutes_before: u32,
    /// Check-in closes this many minutes after the start; `null`: with the no-show grace.
    check_in_closes_minutes_after: Option<u32>,
    /// The settings' version, as in the `ETag`: +1 per change.
    version: i32,
}

/// Target waits per triage category, in minutes.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetsOut {
    /// `immediate`.
    immediate: u32,
    /// `very_urgent`.
    very_urgent: u32,
    /// `urgent`.
    urgent: u32,
    /// `standard`.
    standard: u32,
    /// `non_urgent`.
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
            check_in_opens_minutes_before: c.check_in.opens_minutes_before,
            check_in_closes_minutes_after: c.check_in.closes_minutes_after,
            version: c.version,
        }
    }
}

/// `PATCH /clinic`: the settings to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClinicPatchIn {
    /// A new name.
    name: Option<String>,
    /// 0 to 240.
    #[schema(maximum = 240)]
    no_show_grace_minutes: Option<u32>,
    /// 0 to 240.
    #[schema(maximum = 240)]
    checkin_grace_minutes: Option<u32>,
    /// Up to 5 offsets, each 1 minute to 30 days; `[]` turns reminders off.
    #[schema(max_items = 5)]
    reminder_offsets_minutes: Option<Vec<u32>>,
    /// New target waits, all five categories at once; a more urgent category may not have a
    /// longer target than a less urgent one.
    triage_target_minutes: Option<TargetsIn>,
    /// 0 to 1440: check-in opens this many minutes before an appointment's start.
    #[schema(maximum = 1440)]
    check_in_opens_minutes_before: Option<u32>,
    /// 0 to 1440: check-in closes this many minutes after the start; `null` makes it close
    /// with the no-show grace again.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>, maximum = 1440)]
    check_in_closes_minutes_after: Option<Option<u32>>,
}

/// `PATCH /clinic`: target waits per triage category, in minutes, the shape `GET` shows.
/// Signed here so that a negative wait is a 422 naming the field, not a 400.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetsIn {
    /// `immediate`: 0 to 1440.
    #[schema(minimum = 0, maximum = 1440)]
    immediate: i64,
    /// `very_urgent`: 0 to 1440, at least `immediate`.
    #[schema(minimum = 0, maximum = 1440)]
    very_urgent: i64,
    /// `urgent`: 0 to 1440, at least `very_urgent`.
    #[schema(minimum = 0, maximum = 1440)]
    urgent: i64,
    /// `standard`: 0 to 1440, at least `urgent`.
    #[schema(minimum = 0, maximum = 1440)]
    standard: i64,
    /// `non_urgent`: 0 to 1440, at least `standard`.
    #[schema(minimum = 0, maximum = 1440)]
    non_urgent: i64,
}

impl From<TargetsIn> for [i64; 5] {
    fn from(t: TargetsIn) -> Self {
        // Most urgent first, the order of `TriageCategory::rank`.
        [
            t.immediate,
            t.very_urgent,
            t.urgent,
            t.standard,
            t.non_urgent,
        ]
    }
}

/// The caller's clinic and its settings.
#[utoipa::path(
    get,
    path = "/api/v1/clinic",
    operation_id = "get_clinic",
    tag = "clinic",
    params(
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "An `ETag` held; answered with 304 when current"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The clinic's settings", body = ClinicOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current"),
        problems::Common,
    )
)]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let clinic = state.services.clinics.settings(&auth.0).await?;
    let version = clinic.version;
    Ok(versioned(&req, version, &ClinicOut::from(clinic)))
}

/// Changes the clinic's settings (admins); audited.
#[utoipa::path(
    patch,
    path = "/api/v1/clinic",
    operation_id = "update_clinic",
    tag = "clinic",
    params(
        ("If-Match" = Option<String>, Header, nullable = false, description = "The `ETag` read; a stale one is a 412"),
    ),
    request_body = ClinicPatchIn,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed settings", body = ClinicOut, headers(("ETag" = String, description = "`\"<version>\"`"))),
        problems::Common,
        problems::Forbidden,
        problems::PreconditionFailed,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    body: Json<ClinicPatchIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let patch = ClinicPatch {
        name: body.name,
        no_show_grace_minutes: body.no_show_grace_minutes,
        checkin_grace_minutes: body.checkin_grace_minutes,
        triage_target_minutes: body.triage_target_minutes.map(Into::into),
        reminder_offsets_minutes: body.reminder_offsets_minutes,
        check_in_opens_minutes_before: body.check_in_opens_minutes_before,
        check_in_closes_minutes_after: body.check_in_closes_minutes_after,
    };
    let clinic = state
        .services
        .clinics
        .update(&auth.0, patch, if_match(&req)?)
        .await?;
    let version = clinic.version;
    Ok(fresh_version(version, &ClinicOut::from(clinic)))
}

/// A webhook as the API shows it: the secret only in the answer that made it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    /// Where the clinic's messages are POSTed.
    url: String,
    /// The secret's last characters, to tell secrets apart.
    secret_hint: String,
    /// The signing secret (`whsec_…`), only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// An absolute `http` or `https` URL without credentials.
    #[schema(format = "uri")]
    url: String,
    /// Make a new secret even if the clinic has one.
    #[serde(default)]
    rotate_secret: bool,
}

/// The clinic's webhook (admins).
#[utoipa::path(
    get,
    path = "/api/v1/clinic/webhook",
    operation_id = "get_webhook",
    tag = "clinic",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The webhook, without its secret", body = WebhookOut),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
    )
)]
async fn get_webhook(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let webhook = state.services.clinics.webhook(&auth.0).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(WebhookOut::new(&webhook, false)))
}

/// Sets the clinic's webhook (admins); the secret is shown only when one is made.
#[utoipa::path(
    put,
    path = "/api/v1/clinic/webhook",
    operation_id = "set_webhook",
    tag = "clinic",
    request_body = WebhookIn,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The webhook, with `secret` when one was made (the first time, or with `rotate_secret`)", body = WebhookOut),
        problems::Common,
        problems::Forbidden,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn set_webhook(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: Json<WebhookIn>,
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

/// Removes the clinic's webhook (admins): its messages go to the log again.
#[utoipa::path(
    delete,
    path = "/api/v1/clinic/webhook",
    operation_id = "remove_webhook",
    tag = "clinic",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
    )
)]
async fn remove_webhook(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    state.services.clinics.remove_webhook(&auth.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
