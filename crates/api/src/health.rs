//! Liveness and readiness probes for load balancers and orchestrators.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, Scope, web};
use serde_json::json;

use crate::AppState;

/// How long readiness waits for the database.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `/health/live` and `/health/ready`.
pub fn scope() -> Scope {
    web::scope("/health")
        .route("/live", web::get().to(live))
        .route("/ready", web::get().to(ready))
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let db = with_timeout(PING_TIMEOUT, state.db.ping()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match db {
        Some(Ok(())) => HttpResponse::Ok().json(json!({
            "status": "ok",
            "checks": {"database": {"status": "ok", "latency_ms": latency_ms}}
        })),
        _ => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "checks": {"database": {"status": "unavailable", "latency_ms": latency_ms}}
        })),
    }
}

/// Runs `fut` for at most `limit`, without tying the API crate to a runtime's timer.
async fn with_timeout<F: std::future::Future>(limit: Duration, fut: F) -> Option<F::Output> {
    use futures::future::{Either, select};
    let timer = actix_web::rt::time::sleep(limit);
    match select(std::pin::pin!(fut), std::pin::pin!(timer)).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}
