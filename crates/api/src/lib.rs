//! The HTTP API of clinicflow: thin actix-web handlers that extract a request, call one
//! service method and map the result to JSON or to an RFC 9457 problem.
//!
//! This crate depends on the services and the ports only; it never knows the store or
//! the cache adapters, which the server crate hands in.

use std::sync::Arc;

use actix_web::web;
use clinicflow_ports::{Database, EventBus, RateLimiter};
use clinicflow_services::Services;

/// Implements `Debug` as the type's name alone (`LoginIn { .. }`), for bodies that carry
/// passwords or tokens, so that a stray `{:?}` in a log line cannot leak them.
macro_rules! opaque_debug {
    ($($t:ty),* $(,)?) => {
        $(impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        })*
    };
}

pub mod appointment;
pub mod audit;
pub mod auth;
pub mod body;
pub mod clinic;
pub mod dashboard;
pub mod docs;
pub mod encounter;
pub mod error;
pub mod health;
pub mod http_cache;
pub mod idempotency;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod page;
pub mod patient;
pub mod practitioner;
pub mod proxy;
pub mod queue;
pub mod routing;
pub mod telemetry;
pub mod user;

pub use auth::{Authenticated, TokenConfig, Tokens};
pub use error::ApiError;
pub use limits::ApiLimits;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub services: Services,
    /// Issues and checks access tokens.
    pub tokens: Tokens,
    /// For readiness checks.
    pub db: Arc<dyn Database>,
    /// Counters for the API throttles.
    pub limiter: Arc<dyn RateLimiter>,
    /// Body, JSON and throttle limits.
    pub limits: ApiLimits,
    /// Change notifications, for live streams.
    pub events: Arc<dyn EventBus>,
    /// Live streams held per user.
    pub streams: clinicflow_services::live::StreamSlots,
    /// Ends every live stream when the instance shuts down.
    pub live: live::LiveStreams,
    /// The live boards, one per followed scope.
    pub boards: queue::BoardHub,
    /// What `/metrics` exports.
    pub metrics: Arc<metrics::Metrics>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppState")
    }
}

/// Registers every route, the shared state and the extractor error handlers.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    let body_limit = state.limits.max_body_bytes;
    cfg.app_data(web::Data::new(state))
        .app_data(error::json_config(body_limit))
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(error::query_config())
        .app_data(error::path_config())
        .configure(routes);
}

/// Registers every route, and the problem answer for unknown ones (405 for a known path); each is documented in
/// [`openapi::ApiDoc`], which a test holds to this list.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(health::scope())
        .route("/metrics", web::get().to(metrics::scrape))
        .route("/", web::get().to(docs::index))
        .route(docs::DOCS_PATH, web::get().to(docs::page))
        .route(docs::REDOC_SCRIPT_PATH, web::get().to(docs::redoc_script))
        .service(
            web::scope("/api/v1")
                .route("/openapi.json", web::get().to(openapi::document))
                .service(auth::login)
                .service(auth::refresh)
                .service(auth::logout)
                .service(auth::change_password)
                .service(auth::me)
                .configure(clinic::routes)
                .configure(dashboard::routes)
                .configure(user::routes)
                .configure(queue::routes)
                .configure(encounter::routes)
                .configure(outbox::routes)
                .configure(audit::routes)
                .configure(patient::routes)
                .configure(practitioner::routes)
                .configure(appointment::routes),
        )
        .default_service(web::to(routing::unmatched));
}
