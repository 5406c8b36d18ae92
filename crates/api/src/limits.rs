//! Request limits: body size, JSON nesting depth and string length, and the anonymous throttle.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};
use clinicflow_services::ServiceError;

use crate::{ApiError, AppState};

/// The limits every request is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Deepest nesting of JSON arrays and objects.
    pub max_json_depth: usize,
    /// Longest JSON string in characters.
    pub max_json_string_chars: usize,
    /// Requests per hour of one authenticated user.
    pub per_user_per_hour: u32,
    /// Requests per hour from one IP without a valid token (none, or one that fails to verify).
    pub per_ip_per_hour: u32,
    /// Seconds between keep-alive comments on a live stream.
    pub stream_heartbeat_secs: u64,
    /// Requests slower than this many milliseconds are logged as warnings.
    pub slow_request_ms: u64,
    /// Smallest response body in bytes worth compressing.
    pub compress_min_bytes: usize,
    /// Seconds a write's answer is kept for retries with the same `Idempotency-Key`.
    pub idempotency_ttl_secs: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_json_depth: 16,
            max_json_string_chars: 10_000,
            per_user_per_hour: 1000,
            per_ip_per_hour: 100,
            stream_heartbeat_secs: 15,
            slow_request_ms: 1000,
            compress_min_bytes: 1024,
            idempotency_ttl_secs: 24 * 60 * 60,
        }
    }
}

/// Rejects JSON nested deeper than `max_depth` or holding a string longer than `max_chars`,
/// before any deserializer sees it. Only the structure is scanned; the parser proper is serde's.
pub fn check_json(body: &[u8], max_depth: usize, max_chars: usize) -> Result<(), ApiError> {
    let (mut depth, mut in_string, mut escaped, mut chars) = (0usize, false, false, 0usize);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    in_string = false;
                    continue;
                }
                _ => {}
            }
            // Count characters, not bytes: continuation bytes of UTF-8 do not start one.
            if b & 0xC0 != 0x80 {
                chars += 1;
                if chars > max_chars {
                    return Err(ApiError::Malformed {
                        code: crate::error::ErrorCode::StringTooLong,
                        detail: format!("a JSON string is longer than {max_chars} characters"),
                    });
                }
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                chars = 0;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ApiError::Malformed {
                        code: crate::error::ErrorCode::JsonTooDeep,
                        detail: format!("JSON nests deeper than {max_depth} levels"),
                    });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Paths the anonymous per-IP throttle leaves alone: health probes and metrics scrapes, the
/// API's static OpenAPI document, its browsable page and that page's script, the index page,
/// and refresh and logout, which carry a
/// 256-bit token of their own and which every user of a clinic behind one NAT address calls
/// several times an hour. Login has its own, stricter per-IP limit.
fn exempt_from_ip_throttle(path: &str) -> bool {
    path.starts_with("/health")
        || path == "/metrics"
        || path == crate::openapi::DOCUMENT_PATH
        || path == crate::docs::DOCS_PATH
        || path == crate::docs::REDOC_SCRIPT_PATH
        || path == "/"
        || path == "/api/v1/auth/refresh"
        || path == "/api/v1/auth/logout"
}

fn is_json(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"))
}

/// Counts one request against `key`'s budget of `limit` per `window`; a spent budget is
/// `429 rate_limited` with the time until the window ends.
pub(crate) async fn spend(
    state: &AppState,
    key: &str,
    limit: u32,
    window: std::time::Duration,
) -> Result<(), ApiError> {
    let decision = state.limiter.hit(key, limit, window).await;
    if decision.allowed {
        return Ok(());
    }
    Err(ApiError::Service(ServiceError::RateLimited {
        retry_after_secs: decision.retry_after.as_secs().max(1),
    }))
}

/// Middleware: holds JSON bodies to the depth and string limits, and throttles requests that
/// carry no valid token per client IP (health probes excepted).
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let limits = state.limits;
    // Only a token that verifies moves a request to its user's budget: if the mere presence of
    // an Authorization header did, `Bearer junk` would be a way around every throttle, since
    // the per-user count needs a user. The verified actor is left in the request for the
    // extractor, so the token is checked once.
    if !exempt_from_ip_throttle(req.path()) {
        match crate::auth::authenticate(req.request(), &state) {
            Ok(actor) => {
                req.extensions_mut().insert(crate::auth::Verified(actor));
            }
            Err(_) => {
                let ip = crate::auth::client_ip(req.request()).unwrap_or_default();
                let key = format!("api:ip:{ip}");
                if let Err(e) = spend(&state, &key, limits.per_ip_per_hour, crate::auth::HOUR).await
                {
                    return Err(actix_web::error::InternalError::from_response(
                        e.to_string(),
                        e.error_response(),
                    )
                    .into());
                }
            }
        }
    }
    if is_json(&req) {
        let body = match req.extract::<web::Bytes>().await {
            Ok(body) => body,
            Err(e) => {
                let api = if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::Malformed {
                        code: crate::error::ErrorCode::MalformedBody,
                        detail: format!("the body could not be read: {e}"),
                    }
                };
                return Err(actix_web::error::InternalError::from_response(
                    api.to_string(),
                    api.error_response(),
                )
                .into());
            }
        };
        if let Err(e) = check_json(&body, limits.max_json_depth, limits.max_json_string_chars) {
            return Err(actix_web::error::InternalError::from_response(
                e.to_string(),
                e.error_response(),
            )
            .into());
        }
        req.set_payload(Payload::from(body));
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_description_is_exempt_from_the_anonymous_throttle() {
        assert!(exempt_from_ip_throttle("/api/v1/openapi.json"));
        assert!(exempt_from_ip_throttle("/docs"));
        assert!(exempt_from_ip_throttle("/docs/redoc-2.5.0.standalone.js"));
        assert!(exempt_from_ip_throttle("/"));
        assert!(!exempt_from_ip_throttle("/docs/other"));
        assert!(!exempt_from_ip_throttle("/api/v1/patients"));
    }

    #[test]
    fn ordinary_json_passes() {
        assert!(check_json(br#"{"a": [1, {"b": "x\"y{"}], "c": "\u00e9"}"#, 4, 10).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "[".repeat(17) + &"]".repeat(17);
        assert!(matches!(
            check_json(deep.as_bytes(), 16, 100),
            Err(ApiError::Malformed {
                code: crate::error::ErrorCode::JsonTooDeep,
                ..
            })
        ));
        let ok = "[".repeat(16) + &"]".repeat(16);
        assert!(check_json(ok.as_bytes(), 16, 100).is_ok());
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let s = format!("{{\"a\": \"{}\"}}", "[".repeat(50));
        assert!(check_json(s.as_bytes(), 2, 100).is_ok());
    }

    #[test]
    fn long_strings_are_refused_by_characters_not_bytes() {
        let ten_umlauts = format!("\"{}\"", "ü".repeat(10));
        assert!(check_json(ten_umlauts.as_bytes(), 2, 10).is_ok());
        let eleven = format!("\"{}\"", "ü".repeat(11));
        assert!(matches!(
            check_json(eleven.as_bytes(), 2, 10),
            Err(ApiError::Malformed {
                code: crate::error::ErrorCode::StringTooLong,
                ..
            })
        ));
    }
}
