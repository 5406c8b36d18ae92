//! Helpers shared by the Redis-backed integration tests: the test Redis, connections to
//! it, a relay that can cut it off, and log capture.
// Each test binary uses its own subset of these.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Generous for a loaded test machine, so Redis-backed tests never fall back by accident.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The test Redis, or `None` (after saying so) when none is configured and none is required.
pub fn redis_url() -> Option<String> {
    match std::env::var("CLINICFLOW_TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CLINICFLOW_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "CLINICFLOW_REQUIRE_SERVICES=1 but CLINICFLOW_TEST_REDIS_URL is not set: \
                 start a Redis and set it, e.g. CLINICFLOW_TEST_REDIS_URL=redis://127.0.0.1:6379"
            );
            record_skip("no Redis (CLINICFLOW_TEST_REDIS_URL is not set)");
            None
        }
    }
}

/// Says that the running test is skipped, past the harness's capture and into the file
/// `cargo xtask test` sums up (as `clinicflow_store::testing::record_skip`, which this
/// crate cannot use: the cache depends on no storage crate).
fn record_skip(reason: &str) {
    use std::io::Write;
    let line = format!(
        "skipped: {}: {reason}\n",
        std::thread::current().name().unwrap_or("a test")
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os("CLINICFLOW_SKIP_LOG") {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        if let Ok(mut file) = file {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// A direct connection to the test Redis, to look at what the limiter stored.
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("the test Redis URL is valid")
        .get_multiplexed_async_connection()
        .await
        .expect("the test Redis answers")
}

/// A port on 127.0.0.1 where nothing listens.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port can be bound");
    listener
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// A TCP relay to Redis that can be cut, as a network failure or a Redis restart would.
pub struct Relay {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Relay {
    /// Relays 127.0.0.1:<some port> to `target` until cut.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port can be bound");
        let addr = listener
            .local_addr()
            .expect("a bound socket has an address");
        let (up, watching) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut watching = watching.clone();
                if !*watching.borrow() {
                    continue; // cut: the client is dropped at once
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watching.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    /// Drops every relayed connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Relays new connections again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// `url` with its host and port replaced by `addr`.
pub fn url_through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a Redis URL has a scheme");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let credentials = authority.rsplit_once('@').map(|(c, _)| c);
    match credentials {
        Some(credentials) => format!("{scheme}://{credentials}@{addr}{path}"),
        None => format!("{scheme}://{addr}{path}"),
    }
}

/// The address the test Redis listens on.
pub async fn redis_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a Redis URL has a scheme").1;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    tokio::net::lookup_host(host_port)
        .await
        .expect("the test Redis host resolves")
        .next()
        .expect("the test Redis host has an address")
}

/// Log output captured for one test.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
