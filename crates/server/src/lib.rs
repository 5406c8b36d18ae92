//! The clinicflow server: the composition root. Only this crate knows every concrete
//! adapter (the SeaORM store, the in-process cache, argon2, the system clock); it builds
//! them from the configuration, hands them to the services as ports, and serves the API.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use clinicflow_api::{AppState, TokenConfig, Tokens};
use clinicflow_cache::{
    LocalCache, LocalEventBus, LocalRateLimiter, RedisEventBus, RedisRateLimiter,
};
use clinicflow_ports::{EventBus, RateLimiter, SystemClock};
use clinicflow_services::{Ports, Services};
use clinicflow_store::Store;
use secrecy::ExposeSecret;

pub mod config;
pub mod dispatcher;
pub mod password;
pub mod seed;
pub mod sweeper;
pub mod telemetry;
pub mod warmer;
pub mod webhook;
pub mod worker;

pub use config::Settings;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Store(#[from] clinicflow_store::StoreError),
    /// The Redis URL is invalid.
    #[error("invalid REDIS_URL: {0}")]
    Redis(String),
    /// The HTTP client for webhooks could not be built (no TLS roots, for instance).
    #[error("webhook client: {0}")]
    Http(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Every adapter built from the configuration, and the services over them.
#[derive(Clone)]
pub struct Wiring {
    /// The use cases.
    pub services: Services,
    /// The database.
    pub store: Store,
    /// Login and API counters (Redis when configured, else in-process).
    pub limiter: Arc<dyn RateLimiter>,
    /// Change notifications (Redis pub/sub when configured, else in-process).
    pub events: Arc<dyn EventBus>,
    /// The channels outbox messages leave by.
    pub channels: webhook::Channels,
    /// The cache's hit and miss counters.
    pub cache_lookups: CacheLookups,
}

/// Reads a cache's hit and miss counters, and its Redis errors when it has Redis.
pub type CacheLookups =
    Arc<dyn Fn() -> (Vec<clinicflow_cache::Lookups>, Option<u64>) + Send + Sync>;

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wiring")
    }
}

/// Keys the in-process limiter remembers at most.
const LOCAL_LIMITER_KEYS: u64 = 100_000;

/// Connects to the configured database, applies migrations and builds every service.
pub async fn connect(settings: &Settings) -> Result<Wiring, StartError> {
    connect_with_clock(settings, Arc::new(SystemClock)).await
}

/// As [`connect`], with the services and the webhook signatures telling time by `clock`.
pub async fn connect_with_clock(
    settings: &Settings,
    clock: Arc<dyn clinicflow_ports::Clock>,
) -> Result<Wiring, StartError> {
    let store = Store::connect(settings.database_url.expose_secret(), &settings.pool()).await?;
    store.migrate().await?;
    let (limiter, events): (Arc<dyn RateLimiter>, Arc<dyn EventBus>) = match &settings.redis_url {
        Some(url) => (
            Arc::new(
                RedisRateLimiter::connect(url.expose_secret())
                    .map_err(|e| StartError::Redis(e.to_string()))?,
            ),
            Arc::new(
                RedisEventBus::connect(url.expose_secret())
                    .map_err(|e| StartError::Redis(e.to_string()))?,
            ),
        ),
        None => (
            Arc::new(LocalRateLimiter::new(LOCAL_LIMITER_KEYS)),
            Arc::new(LocalEventBus::new()),
        ),
    };
    let shared = Arc::new(store.clone());
    // With Redis, two levels whose tag versions every instance shares; without, one process.
    let (cache, cache_lookups): (Arc<dyn clinicflow_ports::Cache>, CacheLookups) =
        match &settings.redis_url {
            Some(url) => {
                let cache = Arc::new(
                    clinicflow_cache::RedisCache::connect(
                        url.expose_secret(),
                        settings.cache.local_max_bytes,
                    )
                    .map_err(|e| StartError::Redis(e.to_string()))?,
                );
                let counted = cache.clone();
                (
                    cache,
                    Arc::new(move || (counted.lookups(), Some(counted.redis_errors()))),
                )
            }
            None => {
                let cache = LocalCache::new(settings.cache.local_max_bytes);
                let counted = cache.clone();
                (Arc::new(cache), Arc::new(move || (counted.lookups(), None)))
            }
        };
    let ports = Ports {
        db: shared.clone(),
        clinics: shared.clone(),
        users: shared.clone(),
        patients: shared.clone(),
        practitioners: shared.clone(),
        schedules: shared.clone(),
        appointments: shared.clone(),
        audit: shared.clone(),
        queue: shared.clone(),
        stats: shared.clone(),
        encounters: shared.clone(),
        outbox: shared.clone(),
        events: events.clone(),
        tokens: shared.clone(),
        idempotency: shared,
        limiter: limiter.clone(),
        cache,
        clock: clock.clone(),
        hasher: Arc::new(password::Argon2Hasher::default()),
    };
    let channels = webhook::Channels {
        webhook: webhook::WebhookNotifier::new(
            clock,
            settings.webhook_timeouts(),
            settings.webhook_policy(),
        )
        .map_err(|e| StartError::Http(e.to_string()))?,
        log: dispatcher::LogNotifier::default(),
    };
    let mut services =
        Services::new(ports, settings.auth_policy()).with_webhook_policy(settings.webhook_policy());
    if let Some(refresh) = settings.dashboard_refresh() {
        // Refreshed every interval, so an answer up to two old only covers a late refresh.
        services.dashboard = services.dashboard.with_max_age(refresh * 2);
    }
    Ok(Wiring {
        services,
        store,
        limiter,
        events,
        channels,
        cache_lookups,
    })
}

/// CORS from configuration only: no origin is allowed unless listed.
fn cors(origins: &[String]) -> actix_cors::Cors {
    origins
        .iter()
        .fold(actix_cors::Cors::default(), |c, o| c.allowed_origin(o))
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            "authorization",
            "content-type",
            "if-match",
            "if-none-match",
            "idempotency-key",
        ])
        .expose_headers([
            "etag",
            "location",
            "retry-after",
            "x-request-id",
            "idempotent-replayed",
        ])
        .max_age(600)
}

/// The token secret: configured, or (development only, enforced by config validation) random per start.
fn token_config(settings: &Settings) -> TokenConfig {
    let secret = match &settings.jwt_secret {
        Some(s) => s.expose_secret().as_bytes().to_vec(),
        None => {
            tracing::warn!(
                "CLINICFLOW_JWT_SECRET is not set: using a random secret, so tokens end with this process"
            );
            rand::random::<[u8; 32]>().to_vec()
        }
    };
    TokenConfig {
        secret,
        access_ttl: Duration::from_secs(settings.auth.access_token_ttl_secs),
    }
}

/// The listener that serves `/metrics` alone (`CLINICFLOW_METRICS_BIND`), and its port.
fn metrics_server(
    bind: &str,
    state: AppState,
) -> Result<(actix_web::dev::Server, u16), StartError> {
    let failed = |source| StartError::Bind {
        addr: bind.to_owned(),
        source,
    };
    let listener = TcpListener::bind(bind).map_err(failed)?;
    let port = listener.local_addr().map_err(failed)?.port();
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new()
            .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .configure(move |cfg| clinicflow_api::metrics::listener_routes(cfg, state))
    })
    .workers(1)
    // The API's server takes the signals and stops this one after itself.
    .disable_signals()
    .listen(listener)
    .map_err(failed)?
    .run();
    Ok((server, port))
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C), after ending every live stream and telling the
/// store to test each connection before use (a stopping worker's connections stop working);
/// the server then stops accepting and lets in-flight requests finish (both signals shut
/// down gracefully).
async fn terminated(live: clinicflow_api::live::LiveStreams, store: Store) {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down gracefully"),
        () = term => tracing::info!("SIGTERM received; shutting down gracefully"),
    }
    store.distrust_connections();
    live.close_all();
}

/// A bound, ready-to-run server.
pub struct Application {
    server: actix_web::dev::Server,
    dispatcher: dispatcher::Dispatcher,
    sweeper: Option<sweeper::Sweeper>,
    warmer: Option<warmer::Warmer>,
    port: u16,
    metrics_server: Option<(actix_web::dev::Server, u16)>,
    services: Services,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish()
    }
}

impl Application {
    /// Connects, migrates, binds the configured address (port 0 picks a free one) and builds the server.
    pub async fn build(settings: &Settings) -> Result<Self, StartError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the services telling time by `clock`: for tests of
    /// rules that wait for time to pass (a lockout's end) without waiting for it.
    pub async fn build_with_clock(
        settings: &Settings,
        clock: Arc<dyn clinicflow_ports::Clock>,
    ) -> Result<Self, StartError> {
        let Wiring {
            services,
            store,
            limiter,
            events,
            channels,
            cache_lookups,
        } = connect_with_clock(settings, clock).await?;
        let metrics = Arc::new(clinicflow_api::metrics::Metrics::default());
        let pool = store.clone();
        metrics.set_pool_probe(Arc::new(move || {
            let stats = pool.pool_stats();
            clinicflow_api::metrics::PoolGauges {
                in_use: stats.open.saturating_sub(stats.idle),
                idle: stats.idle,
                waiting: stats.waiting,
                max: stats.max,
            }
        }));
        metrics.set_cache_probe(Arc::new(move || {
            let (lookups, redis_errors) = cache_lookups();
            clinicflow_api::metrics::CacheCounters {
                lookups: lookups
                    .into_iter()
                    .map(|l| clinicflow_api::metrics::CacheLookups {
                        keyspace: l.keyspace,
                        hits: l.hits,
                        misses: l.misses,
                    })
                    .collect(),
                redis_errors,
            }
        }));
        let listener = TcpListener::bind(&settings.bind).map_err(|source| StartError::Bind {
            addr: settings.bind.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: settings.bind.clone(),
                source,
            })?
            .port();
        metrics.set_scrape_access(clinicflow_api::metrics::ScrapeAccess::new(
            settings.metrics.token.as_ref().map(|t| t.expose_secret()),
            settings.metrics.bind.is_some(),
        ));
        let live = clinicflow_api::live::LiveStreams::default();
        let shutdown = terminated(live.clone(), store.clone());
        let state = AppState {
            services: services.clone(),
            tokens: Tokens::new(&token_config(settings)),
            db: Arc::new(store),
            limiter,
            limits: settings.api_limits(),
            events,
            streams: clinicflow_services::live::StreamSlots::new(
                settings.http.max_streams_per_user,
            ),
            live: live.clone(),
            boards: clinicflow_api::queue::BoardHub::new(metrics.live_boards()),
            metrics: metrics.clone(),
        };
        let metrics_server = match &settings.metrics.bind {
            Some(bind) => Some(metrics_server(bind, state.clone())?),
            None => None,
        };
        let trusted_proxies = web::Data::new(clinicflow_api::proxy::TrustedProxies(
            settings.trusted_proxies()?,
        ));
        let origins = settings.http.cors_origins.clone();
        let mut server = HttpServer::new(move || {
            let state = state.clone();
            App::new()
                .app_data(trusted_proxies.clone())
                .wrap(ErrorHandlers::new().handler(
                    StatusCode::METHOD_NOT_ALLOWED,
                    clinicflow_api::error::method_not_allowed,
                ))
                .wrap(from_fn(clinicflow_api::routing::guard))
                .wrap(from_fn(clinicflow_api::limits::guard))
                .wrap(cors(&origins))
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Referrer-Policy", "no-referrer"))
                        .add((
                            "Content-Security-Policy",
                            "default-src 'none'; frame-ancestors 'none'",
                        )),
                )
                // Compression wraps the cache headers, which mark what is too small to compress.
                .wrap(from_fn(clinicflow_api::http_cache::headers))
                .wrap(actix_web::middleware::Compress::default())
                .wrap(from_fn(clinicflow_api::telemetry::trace_request))
                .configure(move |cfg| clinicflow_api::configure(cfg, state))
        })
        .shutdown_timeout(settings.http.shutdown_timeout_secs)
        // A client that closed its side of the connection is gone: its live stream ends at once
        // instead of at the second write that fails.
        .h1_allow_half_closed(false)
        // Our own signal handling, so live streams end (telling clients to reconnect) as the
        // graceful shutdown begins, instead of holding it until the shutdown timeout.
        .shutdown_signal(shutdown);
        if let Some(workers) = settings.http.workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartError::Bind {
                addr: settings.bind.clone(),
                source,
            })?
            .run();
        let log = channels.log.clone();
        let dispatcher = dispatcher::Dispatcher::start(
            services.outbox.clone(),
            Arc::new(channels),
            log,
            settings.dispatch(),
            metrics.clone(),
        );
        let sweeper = settings.sweep().map(|sweep| {
            sweeper::Sweeper::start(
                services.booking.clone(),
                services.idempotency.clone(),
                sweep,
                metrics.clone(),
            )
        });
        let warmer = settings
            .dashboard_refresh()
            .map(|every| warmer::Warmer::start(services.dashboard.clone(), every));
        Ok(Self {
            server,
            dispatcher,
            sweeper,
            warmer,
            port,
            metrics_server,
            services,
        })
    }

    /// The port of the metrics listener, when `/metrics` has one of its own.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The services behind the API (tests seed through them).
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until SIGINT or SIGTERM, then stops accepting and lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|(server, _)| {
            let handle = server.handle();
            (tokio::spawn(server), handle)
        });
        let served = self.server.await;
        if let Some((task, handle)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        // In-flight requests are done; let the workers finish their rounds before leaving.
        self.dispatcher.stop().await;
        if let Some(sweeper) = self.sweeper {
            sweeper.stop().await;
        }
        if let Some(warmer) = self.warmer {
            warmer.stop().await;
        }
        served
    }
}
