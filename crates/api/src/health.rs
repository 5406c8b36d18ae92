//! Liveness and readiness probes for load balancers and orchestrators.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, Scope, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// How long readiness waits for the database, and for Redis.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `/health/live` and `/health/ready`.
pub fn scope() -> Scope {
    web::scope("/health")
        .route("/live", web::get().to(live))
        .route("/ready", web::get().to(ready))
}

/// The liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveOut {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyOut {
    /// `ok`, `degraded` (Redis is down; the server works per instance) or `unavailable`
    /// (the database is down).
    #[schema(example = "ok")]
    status: &'static str,
    /// Each dependency's state.
    checks: ChecksOut,
}

/// The readiness checks, per dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChecksOut {
    /// The database.
    database: CheckOut,
    /// Redis, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    redis: Option<CheckOut>,
}

/// One dependency's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckOut {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// How long its ping took, in milliseconds.
    latency_ms: f64,
}

impl CheckOut {
    fn new(ok: bool, latency_ms: f64) -> Self {
        Self {
            status: if ok { "ok" } else { "unavailable" },
            latency_ms,
        }
    }
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/health/live",
    operation_id = "liveness",
    tag = "health",
    responses((status = 200, description = "Alive", body = LiveOut))
)]
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(LiveOut { status: "ok" })
}

/// Readiness: the database answers within 2 s; Redis, when configured, only degrades it.
#[utoipa::path(
    get,
    path = "/health/ready",
    operation_id = "readiness",
    tag = "health",
    responses(
        (status = 200, description = "Ready (`ok` or `degraded`)", body = ReadyOut),
        (status = 503, description = "Not ready: the database is unavailable", body = ReadyOut),
    )
)]
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let db = with_timeout(PING_TIMEOUT, state.db.ping()).await;
    let db_ms = started.elapsed().as_secs_f64() * 1000.0;
    let db_ok = matches!(db, Some(Ok(())));
    let mut checks = ChecksOut {
        database: CheckOut::new(db_ok, db_ms),
        redis: None,
    };
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
    checks.redis = redis_ok.map(|ok| CheckOut::new(ok, redis_ms));
    let status = match (db_ok, redis_ok) {
        (false, _) => "unavailable",
        (true, Some(false)) => "degraded",
        (true, _) => "ok",
    };
    let body = ReadyOut { status, checks };
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
