//! Events through Redis pub/sub, so they reach the subscribers of every server instance, with
//! this instance's own subscribers served in-process while Redis is unreachable.
//!
//! On the wire, an event on `topic` is `PUBLISH clinicflow:ev:<topic> <message>`, where the
//! message is the tag `\0cfev1`, the 16-byte id of the publishing bus, then the payload. A
//! bus hands its own events to its subscribers when it publishes them and ignores them when
//! Redis echoes them back, so each arrives once. Messages without the tag (say, from
//! `redis-cli`) are delivered whole.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clinicflow_ports::{EventBus, EventStream};
use deadpool_redis::redis::aio::PubSubSink;
use deadpool_redis::redis::{self, Msg, RedisError, Value};
use deadpool_redis::{ConfigError, CreatePoolError, Pool, PoolError};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::{Fanout, ForgetIfUnused, event_stream};
use crate::backend::{self, InvalidRedisUrl, Warnings};

/// Every Redis channel of the bus starts with this, so it shares a Redis with other users.
const CHANNEL_PREFIX: &str = "clinicflow:ev:";

/// The start of every message the bus publishes, before the publisher's id and the payload.
const ENVELOPE_TAG: &[u8] = b"\0cfev1";

/// How long a publish may take in Redis, and how long a subscription waits for Redis to
/// confirm it, unless set with `with_timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// How long connecting, subscribing or a ping may take on the subscription connection.
const LINK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the subscription connection is pinged, so a connection that silently died is
/// noticed.
const PING_INTERVAL: Duration = Duration::from_secs(15);

/// The first pause before reconnecting the subscription connection; it doubles on each
/// failure in a row.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The longest pause before reconnecting the subscription connection.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A subscription connection that stayed up this long reconnects from the first pause again.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// After a failed publish, events are delivered in-process only for this long before Redis
/// is tried again, so an unreachable Redis costs one timeout per interval, not per event.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Tells the buses sharing a Redis apart.
type BusId = [u8; 16];

/// Why one Redis call gave no answer, or the subscription connection was lost.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Redis did not answer within the call's time bound.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// No connection could be had from the pool.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// Redis answered with an error, or the connection broke.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// The subscription connection was closed.
    #[error("the Redis subscription connection closed")]
    Closed,
}

/// What the bus remembers about failed publishes.
#[derive(Debug, Default)]
struct Outage {
    /// Until then, events are delivered in-process only.
    probe_at: Option<Instant>,
    /// Warnings about failed publishes.
    warnings: Warnings,
}

/// What the subscription connection has, for subscribers waiting for their topic.
#[derive(Debug, Default)]
struct Link {
    /// The connection is being re-established: subscribers do not wait for it.
    down: bool,
    /// The topics Redis has confirmed on the connection.
    topics: HashSet<String>,
}

/// What the bus shares with its subscription task.
struct Shared {
    client: redis::Client,
    fanout: Arc<Fanout>,
    link: watch::Sender<Link>,
    id: BusId,
    errors: AtomicU64,
}

/// The subscription task, started with the first subscription.
struct Listener {
    wake: mpsc::Sender<()>,
    task: AbortHandle,
}

/// Wakes the subscription task when dropped, so it drops topics nobody listens to anymore.
struct WakeListener(mpsc::Sender<()>);

impl Drop for WakeListener {
    fn drop(&mut self) {
        wake(&self.0);
    }
}

/// Events shared by every server instance through Redis pub/sub.
///
/// Publishing hands the event to this instance's subscribers at once, then sends
/// `PUBLISH clinicflow:ev:<topic>` through a connection pool, bounded in time (500 ms unless
/// set with [`with_timeout`](Self::with_timeout)). When that fails, the bus counts the
/// failure, logs a warning at most every 30 s (never with the payload), and publishes
/// in-process only for a second before trying Redis again (degraded: other instances miss
/// the events meanwhile).
///
/// Subscribing shares one dedicated Redis connection per bus, opened with the first
/// subscription, with one Redis subscription per topic however many local subscribers it
/// has; a subscription waits up to the timeout for Redis to confirm the topic. When that
/// connection drops, it is reopened with a growing pause (0.1 s up to 5 s) and its topics
/// subscribed again; subscribers keep their streams meanwhile and miss only what other
/// instances published while it was down. Dropping the bus stops its connection and ends
/// its subscribers' streams.
pub struct RedisEventBus {
    pool: Pool,
    shared: Arc<Shared>,
    timeout: Duration,
    degraded: AtomicBool,
    outage: Mutex<Outage>,
    listener: OnceLock<Listener>,
}

impl std::fmt::Debug for RedisEventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEventBus")
            .field("timeout", &self.timeout)
            .field("redis_errors", &self.redis_errors())
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .field("topics", &self.shared.fanout.topic_count())
            .finish_non_exhaustive()
    }
}

impl Drop for RedisEventBus {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.get() {
            listener.task.abort();
        }
    }
}

impl RedisEventBus {
    /// A bus on the Redis at `url` (`redis://…`). Connections are opened on first use, so a
    /// Redis that is down at start is no error; a URL that cannot be used is.
    pub fn connect(url: &str) -> Result<Self, InvalidRedisUrl> {
        let pool = backend::pool(url)?;
        let client = redis::Client::open(url)
            .map_err(|e| InvalidRedisUrl(CreatePoolError::Config(ConfigError::Redis(e))))?;
        let shared = Shared {
            client,
            fanout: Arc::default(),
            link: watch::Sender::new(Link::default()),
            id: Uuid::now_v7().into_bytes(),
            errors: AtomicU64::new(0),
        };
        Ok(Self {
            pool,
            shared: Arc::new(shared),
            timeout: DEFAULT_TIMEOUT,
            degraded: AtomicBool::new(false),
            outage: Mutex::new(Outage::default()),
            listener: OnceLock::new(),
        })
    }

    /// The same bus with publishes (and waits for a subscription) bounded by `timeout`
    /// instead of 500 ms.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many publishes and subscription connections have failed since the bus was made.
    pub fn redis_errors(&self) -> u64 {
        self.shared.errors.load(Ordering::Relaxed)
    }

    /// The subscription task, started if need be.
    fn listener(&self) -> &Listener {
        self.listener.get_or_init(|| {
            let (wake, woken) = mpsc::channel(1);
            let task = tokio::spawn(listen(Arc::clone(&self.shared), woken)).abort_handle();
            Listener { wake, task }
        })
    }

    /// Sends `message` on `topic`'s channel.
    async fn publish_to_redis(&self, topic: &str, message: Vec<u8>) -> Result<(), Failure> {
        let call = async {
            let mut conn = self.pool.get().await?;
            redis::cmd("PUBLISH")
                .arg(channel(topic))
                .arg(message)
                .query_async::<()>(&mut conn)
                .await?;
            Ok(())
        };
        bounded(self.timeout, call).await
    }

    /// Whether a publish failed so recently that Redis is not tried yet.
    fn redis_resting(&self) -> bool {
        if !self.degraded.load(Ordering::Relaxed) {
            return false;
        }
        self.outage()
            .probe_at
            .is_some_and(|probe_at| Instant::now() < probe_at)
    }

    /// Notes that Redis took a publish, and says so once if its failures had been reported.
    fn redis_answered(&self) {
        if !self.degraded.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut outage = self.outage();
        outage.probe_at = None;
        if outage.warnings.answered() {
            drop(outage);
            tracing::info!(
                redis_errors = self.redis_errors(),
                "Redis takes events again: they reach every instance again"
            );
        }
    }

    /// Counts a failed publish, rests Redis for a moment, and warns at most once per interval.
    fn redis_failed(&self, failure: &Failure) {
        let total = self
            .shared
            .errors
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        self.degraded.store(true, Ordering::Relaxed);
        let now = Instant::now();
        let mut outage = self.outage();
        outage.probe_at = now.checked_add(PROBE_INTERVAL);
        let Some(failures) = outage.warnings.failed(now) else {
            return;
        };
        drop(outage);
        tracing::warn!(
            error = %failure,
            failures_since_last_warning = failures,
            redis_errors = total,
            "Redis event publish failed: events reach this instance only until Redis answers"
        );
    }

    /// The outage record; a panic elsewhere while it was held leaves it usable.
    fn outage(&self) -> MutexGuard<'_, Outage> {
        self.outage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl EventBus for RedisEventBus {
    async fn publish(&self, topic: &str, payload: Vec<u8>) {
        let message = seal(&self.shared.id, &payload);
        self.shared.fanout.send(topic, payload);
        if self.redis_resting() {
            return;
        }
        match self.publish_to_redis(topic, message).await {
            Ok(()) => self.redis_answered(),
            Err(failure) => self.redis_failed(&failure),
        }
    }

    async fn subscribe(&self, topic: &str) -> EventStream {
        let receiver = self.shared.fanout.subscribe(topic);
        let listener = self.listener();
        wake(&listener.wake);
        let mut link = self.shared.link.subscribe();
        let confirmed = link.wait_for(|link| link.down || link.topics.contains(topic));
        let settled = tokio::time::timeout(self.timeout, confirmed)
            .await
            .is_ok_and(|answer| answer.is_ok());
        if !settled {
            tracing::debug!("Redis has not confirmed a subscription in time: going on without");
        }
        let forget = ForgetIfUnused {
            fanout: Arc::downgrade(&self.shared.fanout),
            topic: topic.to_owned(),
        };
        event_stream(receiver, (forget, WakeListener(listener.wake.clone())))
    }
}

/// Asks the subscription task to bring its Redis subscriptions in line with the topics in use.
fn wake(listener: &mpsc::Sender<()>) {
    // A full channel means a wake-up is pending already; a closed one, that the bus is gone.
    let _ = listener.try_send(());
}

/// The subscription task: keeps one connection subscribed to the topics in use, and
/// reconnects with a growing pause when it is lost. Ends when the bus is gone.
async fn listen(shared: Arc<Shared>, mut woken: mpsc::Receiver<()>) {
    let mut backoff = MIN_BACKOFF;
    let mut warnings = Warnings::default();
    loop {
        if shared.fanout.topics_in_use().is_empty() {
            // Nothing to listen to: no connection until something is subscribed again.
            loop {
                if woken.recv().await.is_none() {
                    return;
                }
                if !shared.fanout.topics_in_use().is_empty() {
                    break;
                }
            }
            shared
                .link
                .send_if_modified(|link| std::mem::replace(&mut link.down, false));
            backoff = MIN_BACKOFF;
        }
        let mut up_since = None;
        let failure = match serve(&shared, &mut woken, &mut warnings, &mut up_since).await {
            Ok(BusGone) => return,
            Err(failure) => failure,
        };
        shared.link.send_modify(|link| {
            link.down = true;
            link.topics.clear();
        });
        let total = shared
            .errors
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if up_since.is_some_and(|since| since.elapsed() >= STABLE_AFTER) {
            backoff = MIN_BACKOFF;
        }
        if let Some(failures) = warnings.failed(Instant::now()) {
            tracing::warn!(
                error = %failure,
                failures_since_last_warning = failures,
                redis_errors = total,
                retry_in = ?backoff,
                "Redis event subscription failed: events from other instances are missed \
                 until it is back"
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
    }
}

/// The bus was dropped: the subscription task ends.
struct BusGone;

/// Opens the subscription connection and serves it until it fails or the bus is gone;
/// `up_since` is set once it is subscribed.
async fn serve(
    shared: &Shared,
    woken: &mut mpsc::Receiver<()>,
    warnings: &mut Warnings,
    up_since: &mut Option<Instant>,
) -> Result<BusGone, Failure> {
    let pubsub = bounded(LINK_TIMEOUT, async {
        Ok(shared.client.get_async_pubsub().await?)
    })
    .await?;
    let (mut sink, mut messages) = pubsub.split();
    let mut subscribed = HashSet::new();
    sync(shared, &mut sink, &mut subscribed).await?;
    *up_since = Some(Instant::now());
    if warnings.answered() {
        tracing::info!(
            redis_errors = shared.errors.load(Ordering::Relaxed),
            "Redis event subscription is back: events from other instances arrive again"
        );
    }
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => shared.deliver(&message),
                None => return Err(Failure::Closed),
            },
            wake = woken.recv() => match wake {
                Some(()) => sync(shared, &mut sink, &mut subscribed).await?,
                None => return Ok(BusGone),
            },
            _ = ping.tick() => {
                bounded(LINK_TIMEOUT, async { Ok(sink.ping::<Value>().await?) }).await?;
                sync(shared, &mut sink, &mut subscribed).await?;
            }
        }
    }
}

/// Subscribes the connection to the topics in use that it lacks and unsubscribes it from
/// those no longer in use, then tells waiting subscribers.
async fn sync(
    shared: &Shared,
    sink: &mut PubSubSink,
    subscribed: &mut HashSet<String>,
) -> Result<(), Failure> {
    let wanted = shared.fanout.topics_in_use();
    let new: Vec<String> = wanted.difference(subscribed).map(|t| channel(t)).collect();
    let old: Vec<String> = subscribed.difference(&wanted).map(|t| channel(t)).collect();
    if !new.is_empty() {
        bounded(LINK_TIMEOUT, async { Ok(sink.subscribe(&new).await?) }).await?;
    }
    if !old.is_empty() {
        bounded(LINK_TIMEOUT, async { Ok(sink.unsubscribe(&old).await?) }).await?;
    }
    *subscribed = wanted;
    shared.link.send_if_modified(|link| {
        let changed = link.down || link.topics != *subscribed;
        if changed {
            link.down = false;
            link.topics.clone_from(subscribed);
        }
        changed
    });
    Ok(())
}

impl Shared {
    /// Hands a message from Redis to this instance's subscribers, unless this bus published
    /// it (its subscribers had it then).
    fn deliver(&self, message: &Msg) {
        let Some(topic) = message.get_channel_name().strip_prefix(CHANNEL_PREFIX) else {
            return;
        };
        let (publisher, payload) = open(message.get_payload_bytes());
        if publisher == Some(self.id) {
            return;
        }
        self.fanout.send(topic, payload.to_vec());
    }
}

/// Runs `call`, giving up after `timeout`.
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| Failure::Timeout(timeout))?
}

/// The Redis channel of `topic`.
fn channel(topic: &str) -> String {
    format!("{CHANNEL_PREFIX}{topic}")
}

/// The message that carries `payload` from the bus `publisher`.
fn seal(publisher: &BusId, payload: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(ENVELOPE_TAG.len() + publisher.len() + payload.len());
    message.extend_from_slice(ENVELOPE_TAG);
    message.extend_from_slice(publisher);
    message.extend_from_slice(payload);
    message
}

/// The bus that published `message`, if it says, and its payload.
fn open(message: &[u8]) -> (Option<BusId>, &[u8]) {
    let sealed = message
        .strip_prefix(ENVELOPE_TAG)
        .and_then(|rest| rest.split_first_chunk::<16>());
    match sealed {
        Some((publisher, payload)) => (Some(*publisher), payload),
        None => (None, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_prefixed() {
        assert_eq!(channel("queue:1"), "clinicflow:ev:queue:1");
    }

    #[test]
    fn a_sealed_message_opens_to_its_publisher_and_payload() {
        let publisher = [7; 16];
        let message = seal(&publisher, b"changed");
        assert_eq!(open(&message), (Some(publisher), &b"changed"[..]));
        assert_eq!(open(&seal(&publisher, b"")), (Some(publisher), &b""[..]));
    }

    #[test]
    fn messages_without_the_envelope_are_delivered_whole() {
        assert_eq!(open(b"changed"), (None, &b"changed"[..]));
        assert_eq!(open(b""), (None, &b""[..]));
        let cut_short = &seal(&[7; 16], b"")[..ENVELOPE_TAG.len() + 3];
        assert_eq!(open(cut_short), (None, cut_short));
    }

    #[test]
    fn an_unusable_url_is_an_error() {
        for url in ["", "not a url", "http://127.0.0.1:6379"] {
            assert!(RedisEventBus::connect(url).is_err(), "{url:?}");
        }
    }

    #[test]
    fn an_unusable_url_is_not_repeated_in_the_error_as_it_may_hold_a_password() {
        for url in [
            "redis://:s3cret@127.0.0.1:notaport",
            "redis://ada:s3cret@127.0.0.1:6379/notadb",
        ] {
            let error = RedisEventBus::connect(url).expect_err("the URL is unusable");
            let mut chain = Some(&error as &dyn std::error::Error);
            while let Some(error) = chain {
                assert!(!error.to_string().contains("s3cret"), "{error}");
                chain = error.source();
            }
        }
    }

    #[test]
    fn a_redis_url_is_accepted_without_connecting_or_a_runtime() {
        assert!(RedisEventBus::connect("redis://127.0.0.1:1").is_ok());
    }
}
