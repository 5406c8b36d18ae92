//! Liveness and readiness probes for load balancers and orchestrators.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, Scope, web};
use serde_json::json;

use crate::AppState;

/// How long readiness waits for the database, and for Redis.
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
    let db_ms = started.elapsed().as_secs_f64() * 1000.0;
    let db_ok = matches!(db, Some(Ok(())));
    let mut checks = json!({
        "database": {"status": if db_ok { "ok" } else { "unavailable" }, "latency_ms": db_ms}
    });
    // Redis only shares counters and events; without it the server works per instance, so
    // it degrades readiness instead of failing it.
    let started = Instant::now();
    let redis = with_timeout(PING_TIMEOUT, state.limiter.ping()).await;
    let redis_ms = started.elapsed().as_secs_f64() * 1000.0;
    let redis_ok = match redis {
        Some(None) => None,
        Some(Some(Ok(()))) => Some(true),
        Some(Some(Err(_))) | None => Some(false),
    };
    if let Some(ok) = redis_ok {
        checks["redis"] =
            json!({"status": if ok { "ok" } else { "unavailable" }, "latency_ms": redis_ms});
    }
    let status = match (db_ok, redis_ok) {
        (false, _) => "unavailable",
        (true, Some(false)) => "degraded",
        (true, _) => "ok",
    };
    let body = json!({"status": status, "checks": checks});
    let mut res = if db_ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.insert_header(("Cache-Control", "no-store")).json(body)
}

/// Runs `fut` for at most `limit`, without tying the API crate to a runtime's timer.
pub(crate) async fn with_timeout<F: std::future::Future>(
    limit: Duration,
    fut: F,
) -> Option<F::Output> {
    use futures::future::{Either, select};
    let timer = actix_web::rt::time::sleep(limit);
    match select(std::pin::pin!(fut), std::pin::pin!(timer)).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}
