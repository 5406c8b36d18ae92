//! Per-request tracing: a request id on every log line of the request, and one summary line.
//!
//! Only the method and the matched route template are recorded, never the query string
//! or the concrete path, which can carry patient names, phone numbers or ids.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use clinicflow_ports::timing::{self, Spent};
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;

/// The id of the request being handled, kept in the request's extensions for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub Uuid);

/// Header carrying the request id back to the client.
pub const REQUEST_ID: &str = "x-request-id";

/// Middleware (for `actix_web::middleware::from_fn`) that wraps each request in a span with its id.
pub async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = Uuid::now_v7();
    req.extensions_mut().insert(RequestId(request_id));
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let _in_flight = state.as_ref().map(|s| s.metrics.in_flight());
    // The route template is known before routing (the guard's radix tree, held to actix's
    // answer by a test), so the span is formatted once, not again when the route is known.
    let route = crate::routing::documented_template(req.path()).unwrap_or("unmatched");
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, route);
    let started = Instant::now();
    let spent = Arc::new(Spent::default());
    let result = timing::measured(spent.clone(), next.call(req).instrument(span.clone())).await;
    let _guard = span.enter();
    match result {
        Ok(mut res) => {
            let status = res.status().as_u16();
            let elapsed = started.elapsed();
            let ms = elapsed.as_secs_f64() * 1000.0;
            tracing::info!(status, latency_ms = ms, "request finished");
            if let Some(state) = &state {
                state
                    .metrics
                    .observe_request(&method, route, status, elapsed);
                // Long-lived streams are slow by design.
                if elapsed.as_millis() >= u128::from(state.limits.slow_request_ms)
                    && !route.ends_with("/stream")
                {
                    tracing::warn!(status, latency_ms = ms, "slow request");
                }
            }
            // Where the time went, for browsers' developer tools and load tests: the whole
            // request, time holding database transactions, time in the cache.
            let server_timing = format!(
                "app;dur={ms:.1}, db;desc=\"database\";dur={:.1}, cache;dur={:.1}",
                spent.db().as_secs_f64() * 1000.0,
                spent.cache().as_secs_f64() * 1000.0,
            );
            if let Ok(v) = HeaderValue::from_str(&server_timing) {
                res.headers_mut()
                    .insert(HeaderName::from_static("server-timing"), v);
            }
            if let Ok(v) = HeaderValue::from_str(&request_id.to_string()) {
                res.headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID), v);
            }
            Ok(res)
        }
        Err(e) => {
            tracing::warn!(error = %e, "request failed before a response");
            Err(e)
        }
    }
}
