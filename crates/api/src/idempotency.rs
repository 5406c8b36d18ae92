//! `Idempotency-Key` on the writes a client may need to retry: registering a patient,
//! booking, moving or rescheduling an appointment, and adding a walk-in.
//!
//! A request with a key is fingerprinted (method, path and its parsed body, so whitespace
//! and field order do not matter); the service claims the key and stores the answer in the
//! unit of work of the write (see `clinicflow_services::idempotency`). A retry with the same
//! key and request gets that answer again, byte for byte, with `Idempotent-Replayed: true`;
//! the same key with another request is a 422 `idempotency_key_reused`. Keys are per user
//! of a clinic and kept for `idempotency_ttl_secs` (24 h by default).

use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use clinicflow_domain::{IdempotencyKey, StoredAnswer};
use clinicflow_services::{Answered, Once, ServiceError};
use serde::Serialize;
use sha2::Digest;

use crate::ApiError;
use crate::http_cache::hex_prefix;

/// The request header that carries the key.
pub const KEY_HEADER: &str = "Idempotency-Key";

/// The response header that marks an answer given again.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// The `Idempotency-Key` header, as the OpenAPI document describes it on each keyed route.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct KeyHeader {
    /// Makes a retry safe: the same key and request within 24 h get the first answer again (`Idempotent-Replayed: true`); the same key with another request is a 422 `idempotency_key_reused`
    #[param(rename = "Idempotency-Key", nullable = false)]
    pub idempotency_key: Option<String>,
}

/// A request's key and the digest that tells its retries from other requests.
#[derive(Debug)]
pub(crate) struct Keyed {
    key: IdempotencyKey,
    fingerprint: String,
}

impl Keyed {
    /// The write under this key, remembered for `ttl_secs`, answering with `render`. Every
    /// answer stored is a record with its `id`, which a replay is audited by.
    pub(crate) fn once<'a, T>(
        self,
        ttl_secs: u64,
        render: clinicflow_services::idempotency::Render<'a, T>,
    ) -> Once<'a, T> {
        let ttl = chrono::Duration::seconds(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 1000));
        Once::new(self.key, self.fingerprint, ttl, render).with_subject(&id_in_body)
    }
}

/// The request's `Idempotency-Key`, if it sent one, with the fingerprint of the request and
/// its parsed `body`; a malformed key is a 400.
pub(crate) fn key_of<B: Serialize>(req: &HttpRequest, body: &B) -> Result<Option<Keyed>, ApiError> {
    let mut values = req.headers().get_all(KEY_HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = |detail: String| ApiError::Malformed {
        code: crate::error::ErrorCode::InvalidIdempotencyKey,
        detail,
    };
    if values.next().is_some() {
        return Err(malformed(format!(
            "send one {KEY_HEADER} header, not several"
        )));
    }
    let key = value
        .to_str()
        .map_err(|_| malformed(format!("{KEY_HEADER} must be visible ASCII characters")))
        .and_then(|raw| {
            IdempotencyKey::parse(raw).map_err(|e| malformed(format!("{KEY_HEADER} {e}")))
        })?;
    let body = serde_json::to_vec(body)
        .map_err(|e| ApiError::Service(ServiceError::Unexpected(Box::new(e))))?;
    let mut digest = sha2::Sha256::new();
    digest.update(req.method().as_str());
    digest.update(b"\n");
    digest.update(req.path());
    digest.update(b"\n");
    digest.update(&body);
    Ok(Some(Keyed {
        key,
        fingerprint: hex_prefix(&digest.finalize()),
    }))
}

/// The answer stored for a key: the response as built for the first request.
pub(crate) fn stored(response: HttpResponse) -> StoredAnswer {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    // Answers are built with `.json(…)`, whose body is in memory and UTF-8.
    let body = response
        .into_body()
        .try_into_bytes()
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .unwrap_or_default();
    StoredAnswer {
        status,
        headers,
        body,
    }
}

/// The `id` of the record in a stored answer's JSON body, for [`Once::with_subject`].
pub(crate) fn id_in_body(answer: &StoredAnswer) -> Option<uuid::Uuid> {
    serde_json::from_str::<serde_json::Value>(&answer.body)
        .ok()?
        .get("id")?
        .as_str()?
        .parse()
        .ok()
}

/// The response for an answer, first or given again.
pub(crate) fn respond(answered: Answered) -> HttpResponse {
    let Answered { answer, replayed } = answered;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            response.append_header((name, value));
        }
    }
    if replayed {
        response.insert_header((REPLAYED_HEADER, "true"));
    }
    response.body(answer.body)
}
