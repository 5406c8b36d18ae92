//! Every error the API answers with, as RFC 9457 `application/problem+json`.
//!
//! One `ResponseError` impl matches every service error variant with no fallback arm,
//! so a new variant forces a decision on its code; each code's status and title come from
//! the one catalogue, [`ErrorCode`], which a test holds equal to docs/api.md's table.

use std::collections::BTreeMap;

use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::IllegalTransition;
use clinicflow_ports::OverlapParty;
use clinicflow_services::error::ConflictKind;
use clinicflow_services::{Conflict, ServiceError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::appointment::SlotOut;

mod code;

pub use code::ErrorCode;

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A use case failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The request could not be read (bad JSON, query, path or header).
    #[error("{detail}")]
    Malformed {
        /// Stable code (a 400 of the catalogue).
        code: ErrorCode,
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
    /// The route exists, but not for this method.
    #[error("this route does not take this method")]
    MethodNotAllowed,
}

/// The body of every error answer: an RFC 9457 problem with a stable `code`, and the extension
/// members some codes add. What a client receives is this struct serialized, so its OpenAPI
/// schema cannot drift from the answers.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:clinicflow:problem:validation_failed",
    "title": "Validation failed",
    "status": 422,
    "detail": "one or more fields are invalid",
    "code": "validation_failed",
    "errors": {"birth_date": ["must be a date (YYYY-MM-DD)"]}
}))]
pub struct Problem {
    /// `urn:clinicflow:problem:<code>`.
    #[serde(rename = "type")]
    problem_type: String,
    /// A short summary of the kind of problem.
    title: &'static str,
    /// The HTTP status code.
    #[schema(value_type = u16, minimum = 400, maximum = 599)]
    #[serde(serialize_with = "status_number")]
    status: StatusCode,
    /// What went wrong in this case.
    detail: String,
    /// Stable snake_case code (see the error table of docs/api.md).
    code: &'static str,
    /// `validation_failed`: the messages per invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    errors: Option<BTreeMap<String, Vec<String>>>,
    /// `booking_conflict`: whose appointment is in the way, and when.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    conflict: Option<ConflictOut>,
    /// `booking_conflict` and `outside_availability`: the practitioner asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    practitioner_id: Option<String>,
    /// `booking_conflict` and `outside_availability`: the practitioner's next free slots (up to 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    next_slots: Option<Vec<SlotOut>>,
    /// `illegal_transition`: the current status.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    from: Option<&'static str>,
    /// `illegal_transition`: the status asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    to: Option<&'static str>,
    /// `illegal_transition`: the statuses reachable from `from`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    allowed: Option<Vec<&'static str>>,
    /// `no_show_too_early`: when a no-show may first be recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    allowed_from: Option<DateTime<Utc>>,
    /// `outside_check_in_window`: the first instant check-in is allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    opens_at: Option<DateTime<Utc>>,
    /// `outside_check_in_window`: the instant from which check-in is no longer allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    closes_at: Option<DateTime<Utc>>,
    /// `precondition_failed`: the version the resource has now (`null` when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i32>)]
    current_version: Option<Option<i32>>,
}

/// Whose appointment a booking overlaps.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictWith {
    /// The practitioner (with their buffer) is busy.
    Practitioner,
    /// The patient has another appointment then.
    Patient,
}

/// The `conflict` member of a `booking_conflict` problem; nothing else of the other
/// appointment is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictOut {
    /// Whose appointment is in the way.
    with: ConflictWith,
    /// When it starts.
    starts_at: Option<DateTime<Utc>>,
    /// When it ends.
    ends_at: Option<DateTime<Utc>>,
}

fn status_number<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl Problem {
    /// A problem with the status and title the catalogue gives `code`.
    fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("urn:clinicflow:problem:{}", code.as_str()),
            title: code.title(),
            status: code.status(),
            detail: detail.into(),
            code: code.as_str(),
            errors: None,
            conflict: None,
            practitioner_id: None,
            next_slots: None,
            from: None,
            to: None,
            allowed: None,
            allowed_from: None,
            opens_at: None,
            closes_at: None,
            current_version: None,
        }
    }

    /// The problem of an illegal status move.
    fn transition(
        detail: String,
        from: &'static str,
        to: &'static str,
        allowed: Vec<&'static str>,
    ) -> Self {
        Self {
            from: Some(from),
            to: Some(to),
            allowed: Some(allowed),
            ..Self::new(ErrorCode::IllegalTransition, detail)
        }
    }
}

fn party_name(p: OverlapParty) -> &'static str {
    match p {
        OverlapParty::Practitioner => "practitioner",
        OverlapParty::Patient => "patient",
    }
}

impl From<OverlapParty> for ConflictWith {
    fn from(p: OverlapParty) -> Self {
        match p {
            OverlapParty::Practitioner => ConflictWith::Practitioner,
            OverlapParty::Patient => ConflictWith::Patient,
        }
    }
}

fn conflict_problem(c: &Conflict) -> Problem {
    let p = match c.kind {
        ConflictKind::Overlap { party, with } => Problem {
            conflict: Some(ConflictOut {
                with: party.into(),
                starts_at: with.map(|w| w.start()),
                ends_at: with.map(|w| w.end()),
            }),
            ..Problem::new(
                ErrorCode::BookingConflict,
                format!(
                    "the {} already has an appointment at that time",
                    party_name(party)
                ),
            )
        },
        ConflictKind::OutsideAvailability => Problem::new(
            ErrorCode::OutsideAvailability,
            "the practitioner does not work at that time (schedule or time off)",
        ),
    };
    Problem {
        practitioner_id: Some(c.practitioner_id.to_string()),
        next_slots: Some(c.next_slots.iter().map(SlotOut::from).collect()),
        ..p
    }
}

impl ApiError {
    fn problem(&self) -> Problem {
        match self {
            ApiError::Service(e) => match e {
                ServiceError::Validation(fields) => Problem {
                    errors: Some(fields.fields().clone()),
                    ..Problem::new(
                        ErrorCode::ValidationFailed,
                        "one or more fields are invalid",
                    )
                },
                ServiceError::NotFound(what) => {
                    Problem::new(ErrorCode::NotFound, format!("no such {what}"))
                }
                ServiceError::BookingConflict(c) => conflict_problem(c),
                ServiceError::BookingInPast => Problem::new(
                    ErrorCode::BookingInPast,
                    "the appointment would start in the past",
                ),
                ServiceError::IllegalTransition(t) => match t {
                    IllegalTransition::NotAllowed { from, to, allowed } => Problem::transition(
                        t.to_string(),
                        from.as_str(),
                        to.as_str(),
                        allowed.iter().map(|s| s.as_str()).collect(),
                    ),
                    IllegalTransition::NoShowTooEarly { allowed_from } => Problem {
                        allowed_from: Some(*allowed_from),
                        ..Problem::new(ErrorCode::NoShowTooEarly, t.to_string())
                    },
                },
                ServiceError::OutsideCheckInWindow(w) => Problem {
                    opens_at: Some(w.opens_at),
                    closes_at: Some(w.closes_at),
                    ..Problem::new(
                        ErrorCode::OutsideCheckInWindow,
                        format!("{w}; staff who may can check in with `override: true`"),
                    )
                },
                ServiceError::PractitionerInactive => Problem::new(
                    ErrorCode::PractitionerInactive,
                    "the practitioner is deactivated and takes no new bookings or walk-ins",
                ),
                ServiceError::AlreadyInQueue => Problem::new(
                    ErrorCode::AlreadyInQueue,
                    "the patient already has an open queue entry (waiting, called or in service)",
                ),
                ServiceError::IllegalQueueMove(m) => Problem::transition(
                    m.to_string(),
                    m.from.as_str(),
                    m.to.as_str(),
                    m.allowed.iter().map(|s| s.as_str()).collect(),
                ),
                ServiceError::PreconditionFailed { current } => Problem {
                    current_version: Some(*current),
                    ..Problem::new(
                        ErrorCode::PreconditionFailed,
                        "the resource changed since the version in If-Match; read it again",
                    )
                },
                ServiceError::WebhookTargetRefused(why) => Problem::new(
                    ErrorCode::WebhookTargetRefused,
                    format!("the webhook URL is refused: {why}"),
                ),
                ServiceError::IdempotencyKeyReused => Problem::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was used for a different request; use a new key for a new request",
                ),
                ServiceError::Duplicate(field) => Problem::new(
                    ErrorCode::Duplicate,
                    format!("a record with this {field} already exists"),
                ),
                ServiceError::InvalidCredentials => Problem::new(
                    ErrorCode::InvalidCredentials,
                    "the e-mail or password is wrong",
                ),
                ServiceError::Forbidden(why) => Problem::new(ErrorCode::Forbidden, why.clone()),
                ServiceError::RateLimited { retry_after_secs } => Problem::new(
                    ErrorCode::RateLimited,
                    format!("too many requests; retry after {retry_after_secs} s"),
                ),
                ServiceError::Transient(_) => Problem::new(
                    ErrorCode::ConcurrentUpdate,
                    "a concurrent request held the same records; retry",
                ),
                ServiceError::Unavailable(_) => Problem::new(
                    ErrorCode::Unavailable,
                    "the database is unavailable; retry shortly",
                ),
                ServiceError::Timeout(_) => Problem::new(
                    ErrorCode::DatabaseTimeout,
                    "the database did not answer in time (a statement or a wait for another \
                     request's lock ran past its bound); retry shortly",
                ),
                ServiceError::Unexpected(_) => Problem::new(
                    ErrorCode::InternalError,
                    "an unexpected error occurred; it has been logged",
                ),
            },
            ApiError::Malformed { code, detail } => Problem::new(*code, detail.clone()),
            ApiError::UnsupportedMediaType => {
                Problem::new(ErrorCode::UnsupportedMediaType, self.to_string())
            }
            ApiError::PayloadTooLarge => Problem::new(ErrorCode::PayloadTooLarge, self.to_string()),
            ApiError::Unauthenticated(why) => Problem::new(ErrorCode::Unauthenticated, *why),
            ApiError::NoRoute => Problem::new(ErrorCode::NotFound, "no such route"),
            ApiError::MethodNotAllowed => {
                Problem::new(ErrorCode::MethodNotAllowed, self.to_string())
            }
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
        let mut res = HttpResponse::build(p.status);
        res.content_type("application/problem+json");
        match self {
            ApiError::Unauthenticated(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::Service(
                ServiceError::Unavailable(_)
                | ServiceError::Transient(_)
                | ServiceError::Timeout(_),
            ) => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::Service(ServiceError::RateLimited { retry_after_secs }) => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        // `json` keeps the problem content type set above.
        res.json(&p)
    }
}

/// Gives actix's own 405 (the path has routes, none for this method), which has no body, the
/// problem every other error answer is; its `Allow` header, if any, is kept.
pub fn method_not_allowed<B>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let allow = res.headers().get(header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let mut answer = ApiError::MethodNotAllowed.error_response();
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, answer).map_into_right_body(),
    ))
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
                    code: ErrorCode::MalformedJson,
                    detail: format!("the body is not valid: {e}"),
                },
                other => ApiError::Malformed {
                    code: ErrorCode::MalformedJson,
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
            code: ErrorCode::InvalidQuery,
            detail: format!("invalid query string: {err}"),
        };
        actix_web::error::InternalError::from_response(err, api.error_response()).into()
    })
}

/// Path segments: a malformed id is a malformed request.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        let api = ApiError::Malformed {
            code: ErrorCode::InvalidPath,
            detail: format!("invalid path segment: {err}"),
        };
        actix_web::error::InternalError::from_response(err, api.error_response()).into()
    })
}
