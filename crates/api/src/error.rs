//! Every error the API answers with, as RFC 9457 `application/problem+json`.
//!
//! One `ResponseError` impl matches every service error variant with no fallback arm,
//! so a new variant forces a decision on its status and code.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use clinicflow_domain::IllegalTransition;
use clinicflow_ports::OverlapParty;
use clinicflow_services::error::ConflictKind;
use clinicflow_services::{Conflict, ServiceError};
use serde_json::{Map, Value, json};

use crate::appointment::SlotOut;

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A use case failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The request could not be read (bad JSON, query, path or header).
    #[error("{detail}")]
    Malformed {
        /// Stable code.
        code: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The body is not JSON.
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The body is larger than allowed.
    #[error("the body is larger than this server accepts")]
    PayloadTooLarge,
    /// No or an invalid access token.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// No route matches.
    #[error("no such route")]
    NoRoute,
}

/// A problem document under construction.
struct Problem {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    extra: Map<String, Value>,
}

impl Problem {
    fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }
}

fn party_name(p: OverlapParty) -> &'static str {
    match p {
        OverlapParty::Practitioner => "practitioner",
        OverlapParty::Patient => "patient",
    }
}

fn conflict_problem(c: &Conflict) -> Problem {
    let next: Vec<SlotOut> = c.next_slots.iter().map(SlotOut::from).collect();
    let p = match c.kind {
        ConflictKind::Overlap { party, with } => Problem::new(
            StatusCode::CONFLICT,
            "booking_conflict",
            "Booking conflict",
            format!(
                "the {} already has an appointment at that time",
                party_name(party)
            ),
        )
        .with(
            "conflict",
            json!({
                "with": party_name(party),
                "starts_at": with.map(|w| w.start()),
                "ends_at": with.map(|w| w.end()),
            }),
        ),
        ConflictKind::OutsideAvailability => Problem::new(
            StatusCode::CONFLICT,
            "outside_availability",
            "Outside availability",
            "the practitioner does not work at that time (schedule or time off)",
        ),
    };
    p.with("practitioner_id", json!(c.practitioner_id.to_string()))
        .with("next_slots", json!(next))
}

impl ApiError {
    fn problem(&self) -> Problem {
        match self {
            ApiError::Service(e) => match e {
                ServiceError::Validation(fields) => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "Validation failed",
                    "one or more fields are invalid",
                )
                .with("errors", json!(fields.fields())),
                ServiceError::NotFound(what) => Problem::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "Not found",
                    format!("no such {what}"),
                ),
                ServiceError::BookingConflict(c) => conflict_problem(c),
                ServiceError::BookingInPast => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "booking_in_past",
                    "Booking in the past",
                    "the appointment would start in the past",
                ),
                ServiceError::IllegalTransition(t) => match t {
                    IllegalTransition::NotAllowed { from, to, allowed } => Problem::new(
                        StatusCode::CONFLICT,
                        "illegal_transition",
                        "Illegal status transition",
                        t.to_string(),
                    )
                    .with("from", json!(from.as_str()))
                    .with("to", json!(to.as_str()))
                    .with(
                        "allowed",
                        json!(allowed.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
                    ),
                    IllegalTransition::NoShowTooEarly { allowed_from } => Problem::new(
                        StatusCode::CONFLICT,
                        "no_show_too_early",
                        "Too early for a no-show",
                        t.to_string(),
                    )
                    .with("allowed_from", json!(allowed_from)),
                },
                ServiceError::IllegalQueueMove(m) => Problem::new(
                    StatusCode::CONFLICT,
                    "illegal_transition",
                    "Illegal status transition",
                    m.to_string(),
                )
                .with("from", json!(m.from.as_str()))
                .with("to", json!(m.to.as_str()))
                .with(
                    "allowed",
                    json!(m.allowed.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
                ),
                ServiceError::PreconditionFailed { current } => Problem::new(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition_failed",
                    "Precondition failed",
                    "the resource changed since the version in If-Match; read it again",
                )
                .with("current_version", json!(current)),
                ServiceError::Duplicate(field) => Problem::new(
                    StatusCode::CONFLICT,
                    "duplicate",
                    "Already exists",
                    format!("a record with this {field} already exists"),
                ),
                ServiceError::InvalidCredentials => Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    "Invalid credentials",
                    "the e-mail or password is wrong",
                ),
                ServiceError::Forbidden(why) => {
                    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", why.clone())
                }
                ServiceError::RateLimited { retry_after_secs } => Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "Too many requests",
                    format!("too many requests; retry after {retry_after_secs} s"),
                ),
                ServiceError::Transient(_) => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "concurrent_update",
                    "Concurrent update",
                    "a concurrent request held the same records; retry",
                ),
                ServiceError::Unavailable(_) => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "the database is unavailable; retry shortly",
                ),
                ServiceError::Unexpected(_) => Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Internal error",
                    "an unexpected error occurred; it has been logged",
                ),
            },
            ApiError::Malformed { code, detail } => Problem::new(
                StatusCode::BAD_REQUEST,
                code,
                "Malformed request",
                detail.clone(),
            ),
            ApiError::UnsupportedMediaType => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                self.to_string(),
            ),
            ApiError::PayloadTooLarge => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                self.to_string(),
            ),
            ApiError::Unauthenticated(why) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
                *why,
            ),
            ApiError::NoRoute => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "no such route",
            ),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.problem().status
    }

    fn error_response(&self) -> HttpResponse {
        let p = self.problem();
        if p.status.is_server_error() {
            // Logged once, here at the boundary, with the whole chain; the client sees no internals.
            let mut chain = String::new();
            let mut source: Option<&dyn std::error::Error> = Some(self);
            while let Some(e) = source {
                chain.push_str(&format!("{e}; "));
                source = e.source();
            }
            tracing::error!(code = p.code, error = %chain, "request failed");
        }
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("urn:clinicflow:problem:{}", p.code)),
        );
        body.insert("title".into(), json!(p.title));
        body.insert("status".into(), json!(p.status.as_u16()));
        body.insert("detail".into(), json!(p.detail));
        body.insert("code".into(), json!(p.code));
        body.extend(p.extra);
        let mut res = HttpResponse::build(p.status);
        res.content_type("application/problem+json");
        match self {
            ApiError::Unauthenticated(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::Service(ServiceError::Unavailable(_) | ServiceError::Transient(_)) => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::Service(ServiceError::RateLimited { retry_after_secs }) => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        res.body(Value::Object(body).to_string())
    }
}

/// Answers unknown routes with a problem instead of an empty 404.
pub async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

/// JSON bodies: size limit and problem answers for unreadable bodies.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req: &HttpRequest| {
            let api = match &err {
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => ApiError::PayloadTooLarge,
                JsonPayloadError::Deserialize(e) => ApiError::Malformed {
                    code: "malformed_json",
                    detail: format!("the body is not valid: {e}"),
                },
                other => ApiError::Malformed {
                    code: "malformed_json",
                    detail: format!("the body could not be read: {other}"),
                },
            };
            actix_web::error::InternalError::from_response(err, api.error_response()).into()
        })
}

/// Query strings: problem answers for unparsable parameters.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        let api = ApiError::Malformed {
            code: "invalid_query",
            detail: format!("invalid query string: {err}"),
        };
        actix_web::error::InternalError::from_response(err, api.error_response()).into()
    })
}

/// Path segments: a malformed id is a malformed request.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        let api = ApiError::Malformed {
            code: "invalid_path",
            detail: format!("invalid path segment: {err}"),
        };
        actix_web::error::InternalError::from_response(err, api.error_response()).into()
    })
}
