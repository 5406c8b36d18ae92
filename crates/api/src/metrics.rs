//! `/metrics`: what the server is doing, in the OpenMetrics text format Prometheus scrapes.
//!
//! Labels are route templates (`/api/v1/patients/{id}`), never paths, ids or query strings:
//! a metric must not carry patient data, and its number of series must stay bounded.
//!
//! Who may scrape is the operator's choice ([`ScrapeAccess`]): a listener of its own (then the
//! API's listener answers 404), a bearer token, or both; a scrape never touches the database
//! (the outbox depth is refreshed by the dispatcher).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sha2::Digest;

use crate::{ApiError, AppState};

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeAccess {
    /// SHA-256 of the bearer token every scrape must send, if one is required.
    pub token_sha256: Option<[u8; 32]>,
    /// Whether `/metrics` has a listener of its own, and so is not served on the API's.
    pub own_listener: bool,
}

impl ScrapeAccess {
    /// Access with `token` required, if given.
    pub fn new(token: Option<&str>, own_listener: bool) -> Self {
        Self {
            token_sha256: token.map(|t| sha2::Sha256::digest(t.as_bytes()).into()),
            own_listener,
        }
    }
}

/// Marks the app of the metrics listener, which serves `/metrics` alone.
#[derive(Debug, Clone, Copy)]
pub struct MetricsListener;

/// The routes of the metrics listener: `/metrics`, and a problem 404 for anything else.
pub fn listener_routes(cfg: &mut web::ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state))
        .app_data(web::Data::new(MetricsListener))
        .route("/metrics", web::get().to(scrape))
        .default_service(web::to(|| async {
            actix_web::ResponseError::error_response(&crate::ApiError::NoRoute)
        }));
}

/// A request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// A pool connection's state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

/// An outbox attempt's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The connections of the database pool at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolGauges {
    /// Connections running a query or holding a transaction.
    pub in_use: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// Requests waiting for a connection.
    pub waiting: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// Reads the pool's state when scraped; set by the server, which knows the pool.
pub type PoolProbe = Arc<dyn Fn() -> PoolGauges + Send + Sync>;

/// Cache reads of one keyspace so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLookups {
    /// The keyspace (`clinic`, `dashboard`, …).
    pub keyspace: String,
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found none.
    pub misses: u64,
}

/// The cache's counters at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheCounters {
    /// Reads by keyspace.
    pub lookups: Vec<CacheLookups>,
    /// Redis calls that failed or timed out so far; `None` when there is no Redis.
    pub redis_errors: Option<u64>,
}

/// Reads the cache's counters when scraped; set by the server, which knows the cache.
pub type CacheProbe = Arc<dyn Fn() -> CacheCounters + Send + Sync>;

/// A cache read's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    keyspace: String,
    result: &'static str,
}

/// Exports the cache's own counters as they are at each scrape.
#[derive(Default)]
struct CacheCollector(Arc<Mutex<Option<CacheProbe>>>);

impl std::fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheCollector")
    }
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let probe = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(probe) = probe else {
            return Ok(());
        };
        let counters = probe();
        if let Some(errors) = counters.redis_errors {
            // A rising count while requests still succeed is the degraded mode: answers come
            // from the database until Redis is back.
            let metric = encoder.encode_descriptor(
                "cache_redis_errors",
                "Redis calls of the cache that failed or timed out; the cache then falls back to the database",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(errors).encode(metric)?;
        }
        let mut metric = encoder.encode_descriptor(
            "cache_lookups",
            "Cache reads by keyspace and result: hit or miss",
            None,
            MetricType::Counter,
        )?;
        for lookups in counters.lookups {
            for (result, n) in [("hit", lookups.hits), ("miss", lookups.misses)] {
                let labels = LookupLabels {
                    keyspace: lookups.keyspace.clone(),
                    result,
                };
                ConstCounter::new(n).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: HistogramFamily<RequestLabels>,
    in_flight: Gauge,
    pool: Family<PoolLabels, Gauge>,
    pool_probe: Mutex<Option<PoolProbe>>,
    cache_probe: Arc<Mutex<Option<CacheProbe>>>,
    outbox_depth: Gauge,
    outbox_messages: Family<OutcomeLabels, Counter>,
    no_shows_marked: Counter,
    live_boards: LiveBoardMetrics,
    access: OnceLock<ScrapeAccess>,
}

/// What the live-board hub counts: the scopes followed now and the boards computed for them.
#[derive(Debug, Clone, Default)]
pub struct LiveBoardMetrics {
    /// Scopes with at least one open stream.
    pub scopes: Gauge,
    /// Boards computed for live streams (once per change burst and scope, whatever the number of streams).
    pub recomputes: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("clinicflow");
        let requests = HistogramFamily::<RequestLabels>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response, by method, route template and status",
            requests.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being served now",
            in_flight.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections by state: in_use, idle, waiting (requests queued for one), max",
            pool.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Outbox messages of every clinic waiting to be delivered",
            outbox_depth.clone(),
        );
        let outbox_messages = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "outbox_messages",
            "Outbox delivery attempts of this instance by outcome: delivered, retried, dead, withdrawn",
            outbox_messages.clone(),
        );
        let cache_probe: Arc<Mutex<Option<CacheProbe>>> = Arc::default();
        registry.register_collector(Box::new(CacheCollector(cache_probe.clone())));
        let no_shows_marked = Counter::default();
        registry.register(
            "no_shows_marked",
            "Appointments this instance's sweeper marked as no-shows",
            no_shows_marked.clone(),
        );
        let live_boards = LiveBoardMetrics::default();
        registry.register(
            "live_board_scopes",
            "Live-board scopes (clinic, department or practitioner) with open streams on this instance",
            live_boards.scopes.clone(),
        );
        registry.register(
            "live_board_recomputes",
            "Boards this instance computed for its live streams: one per scope and change burst",
            live_boards.recomputes.clone(),
        );
        Self {
            registry,
            requests,
            in_flight,
            pool,
            pool_probe: Mutex::new(None),
            cache_probe,
            outbox_depth,
            outbox_messages,
            no_shows_marked,
            live_boards,
            access: OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Records a finished request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request as in flight until the guard is dropped (also when it is cancelled).
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Lets scrapes read the database pool.
    pub fn set_pool_probe(&self, probe: PoolProbe) {
        *self
            .pool_probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(probe);
    }

    /// Lets scrapes read the cache's hit and miss counters.
    pub fn set_cache_probe(&self, probe: CacheProbe) {
        *self
            .cache_probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(probe);
    }

    /// Sets who may scrape, once, at start; until then anyone may (development's default).
    pub fn set_scrape_access(&self, access: ScrapeAccess) {
        // Set once by the server before it serves; a second call changes nothing.
        let _ = self.access.set(access);
    }

    /// Who may scrape.
    pub fn scrape_access(&self) -> ScrapeAccess {
        self.access.get().copied().unwrap_or_default()
    }

    /// Sets the outbox depth, as counted by the dispatcher.
    pub fn set_outbox_depth(&self, depth: u64) {
        self.outbox_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Counts a dispatch round's outcomes.
    pub fn record_outbox_round(
        &self,
        delivered: usize,
        retried: usize,
        dead: usize,
        withdrawn: usize,
    ) {
        for (outcome, n) in [
            ("delivered", delivered),
            ("retried", retried),
            ("dead", dead),
            ("withdrawn", withdrawn),
        ] {
            self.outbox_messages
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }

    /// Counts appointments the sweeper marked.
    pub fn record_no_shows(&self, marked: usize) {
        self.no_shows_marked
            .inc_by(u64::try_from(marked).unwrap_or(u64::MAX));
    }

    /// The live-board hub's gauge and counter, registered here.
    pub fn live_boards(&self) -> LiveBoardMetrics {
        self.live_boards.clone()
    }

    /// The text Prometheus reads.
    pub fn encode(&self) -> String {
        let probe = self
            .pool_probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(probe) = probe {
            let gauges = probe();
            for (state, value) in [
                ("in_use", gauges.in_use),
                ("idle", gauges.idle),
                ("waiting", gauges.waiting),
                ("max", gauges.max),
            ] {
                self.pool
                    .get_or_create(&PoolLabels { state })
                    .set(i64::from(value));
            }
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Keeps a request counted in flight; see [`Metrics::in_flight`].
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /metrics`: requests, latencies, the pool, the cache and the outbox, for Prometheus.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "metrics",
    responses(
        (status = 200, description = "The metrics in the OpenMetrics text format", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        crate::openapi::problems::Scrape,
    )
)]
pub async fn scrape(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let access = state.metrics.scrape_access();
    if access.own_listener && req.app_data::<web::Data<MetricsListener>>().is_none() {
        return Err(ApiError::NoRoute);
    }
    if let Some(expected) = access.token_sha256 {
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| <[u8; 32]>::from(sha2::Sha256::digest(t.trim().as_bytes())));
        // Digests of equal length compared whole: the time taken says nothing about the token.
        let matches = presented.is_some_and(|p| {
            p.iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        });
        if !matches {
            // Guesses spend the address's anonymous budget, as any request without a token.
            let ip = crate::auth::client_ip(&req).unwrap_or_default();
            crate::limits::spend(
                &state,
                &format!("api:ip:{ip}"),
                state.limits.per_ip_per_hour,
                crate::auth::HOUR,
            )
            .await?;
            return Err(ApiError::Unauthenticated(
                "/metrics needs the operator's bearer token",
            ));
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(state.metrics.encode()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_pool_and_outbox_show_in_the_text() {
        let metrics = Metrics::default();
        metrics.observe_request(
            "GET",
            "/api/v1/patients/{id}",
            200,
            Duration::from_millis(3),
        );
        let guard = metrics.in_flight();
        metrics.set_pool_probe(Arc::new(|| PoolGauges {
            in_use: 2,
            idle: 3,
            waiting: 1,
            max: 10,
        }));
        metrics.record_outbox_round(4, 1, 0, 2);
        metrics.set_cache_probe(Arc::new(|| CacheCounters {
            lookups: vec![CacheLookups {
                keyspace: "clinic".into(),
                hits: 9,
                misses: 2,
            }],
            redis_errors: Some(5),
        }));
        metrics.record_no_shows(3);
        metrics.set_outbox_depth(7);
        let text = metrics.encode();
        for line in [
            r#"clinicflow_http_request_duration_seconds_count{method="GET",route="/api/v1/patients/{id}",status="200"} 1"#,
            "clinicflow_http_requests_in_flight 1",
            r#"clinicflow_db_pool_connections{state="waiting"} 1"#,
            r#"clinicflow_db_pool_connections{state="max"} 10"#,
            r#"clinicflow_outbox_messages_total{outcome="delivered"} 4"#,
            r#"clinicflow_outbox_messages_total{outcome="withdrawn"} 2"#,
            "clinicflow_no_shows_marked_total 3",
            "clinicflow_outbox_depth 7",
            r#"clinicflow_cache_lookups_total{keyspace="clinic",result="hit"} 9"#,
            r#"clinicflow_cache_lookups_total{keyspace="clinic",result="miss"} 2"#,
            "clinicflow_cache_redis_errors_total 5",
        ] {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
        drop(guard);
        assert!(
            metrics
                .encode()
                .contains("clinicflow_http_requests_in_flight 0")
        );
    }
}
