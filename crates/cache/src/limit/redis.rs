//! Fixed-window counters in Redis, shared by every server instance, with in-process counting
//! while Redis is unreachable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clinicflow_ports::limit::{RateDecision, RateLimiter};
use deadpool_redis::redis::{self, RedisError, Script};
use deadpool_redis::{Pool, PoolError};

use super::{LocalRateLimiter, clamp_window, decide};
use crate::backend::{self, InvalidRedisUrl, Warnings};

/// Every Redis key of the limiter starts with this, so it shares a Redis with other users.
const KEY_PREFIX: &str = "clinicflow:rl:";

/// How long one Redis call may take before the limiter answers from the fallback.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// After a failure, hits are counted in-process for this long before Redis is tried again,
/// so an unreachable Redis costs one timeout per interval rather than one per request.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How many keys the in-process fallback keeps at most.
const FALLBACK_MAX_KEYS: u64 = 100_000;

/// Counts one event atomically: the first event of a window starts the window's expiry.
/// A key that lost its expiry (it should never happen) gets one again rather than counting
/// forever. Returns the count and the milliseconds left in the window.
const HIT_SCRIPT: &str = r"
local count = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if count == 1 or left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
";

/// Why one Redis call gave no answer.
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
}

/// What the limiter remembers about Redis failures.
#[derive(Debug, Default)]
struct Outage {
    /// Until then, hits go straight to the fallback.
    probe_at: Option<Instant>,
    /// Warnings about the failures.
    warnings: Warnings,
}

/// Fixed-window counters in Redis, so limits hold across every server instance.
///
/// Each hit runs one Lua script (INCR, and PEXPIRE on a window's first event) under the key
/// `clinicflow:rl:<key>`. Each Redis call is bounded in time (200 ms unless set with
/// [`with_timeout`](Self::with_timeout)); when Redis fails or is too slow, the limiter
/// answers from an in-process [`LocalRateLimiter`] instead (degraded: each instance counts
/// alone), counts the failure, logs a warning at most every 30 s, and tries Redis again
/// after a second, so it recovers on its own when Redis returns.
pub struct RedisRateLimiter {
    pool: Pool,
    hit_script: Script,
    timeout: Duration,
    fallback: LocalRateLimiter,
    errors: AtomicU64,
    degraded: AtomicBool,
    outage: Mutex<Outage>,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("timeout", &self.timeout)
            .field("redis_errors", &self.redis_errors())
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A limiter on the Redis at `url` (`redis://…`). Connections are opened on first use, so
    /// a Redis that is down at start is no error; a URL that cannot be used is.
    pub fn connect(url: &str) -> Result<Self, InvalidRedisUrl> {
        let pool = backend::pool(url)?;
        Ok(Self {
            pool,
            hit_script: Script::new(HIT_SCRIPT),
            timeout: DEFAULT_TIMEOUT,
            fallback: LocalRateLimiter::new(FALLBACK_MAX_KEYS),
            errors: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            outage: Mutex::new(Outage::default()),
        })
    }

    /// The same limiter with each Redis call bounded by `timeout` instead of 200 ms.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many Redis calls have failed or timed out since the limiter was made.
    pub fn redis_errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Counts one event in Redis: the window's count and the time left in it.
    async fn count_in_redis(
        &self,
        key: &str,
        window: Duration,
    ) -> Result<(u64, Duration), Failure> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let call = async {
            let mut conn = self.pool.get().await?;
            let answer: (i64, i64) = self
                .hit_script
                .key(redis_key(key))
                .arg(window_ms)
                .invoke_async(&mut conn)
                .await?;
            Ok::<_, Failure>(answer)
        };
        let (count, left_ms) = self.bounded(call).await?;
        let count = u64::try_from(count).unwrap_or(0);
        let left = u64::try_from(left_ms).map_or(window, Duration::from_millis);
        Ok((count, left))
    }

    /// Forgets `key`'s count in Redis.
    async fn forget_in_redis(&self, key: &str) -> Result<(), Failure> {
        let call = async {
            let mut conn = self.pool.get().await?;
            redis::cmd("DEL")
                .arg(redis_key(key))
                .query_async::<()>(&mut conn)
                .await?;
            Ok::<_, Failure>(())
        };
        self.bounded(call).await
    }

    /// One PING, bounded like every other call.
    async fn ping_redis(&self) -> Result<(), Failure> {
        let call = async {
            let mut conn = self.pool.get().await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            Ok::<_, Failure>(())
        };
        self.bounded(call).await
    }

    /// Runs `call`, giving up after the limiter's timeout.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| Failure::Timeout(self.timeout))?
    }

    /// Whether Redis failed so recently that it is not tried yet.
    fn redis_resting(&self) -> bool {
        if !self.degraded.load(Ordering::Relaxed) {
            return false;
        }
        self.outage()
            .probe_at
            .is_some_and(|probe_at| Instant::now() < probe_at)
    }

    /// Notes that Redis answered, and says so once if its failures had been reported.
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
                "Redis answers again: rate limits are shared across instances again"
            );
        }
    }

    /// Counts a failure, rests Redis for a moment, and warns at most once per interval.
    fn redis_failed(&self, failure: &Failure, key: &str) {
        let total = self
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
            keyspace = %keyspace(key),
            failures_since_last_warning = failures,
            redis_errors = total,
            "Redis rate limiter failed: counting in this instance only until Redis answers"
        );
    }

    /// The outage record; a panic elsewhere while it was held leaves it usable.
    fn outage(&self) -> MutexGuard<'_, Outage> {
        self.outage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> RateDecision {
        let window = clamp_window(window);
        if !self.redis_resting() {
            match self.count_in_redis(key, window).await {
                Ok((count, left)) => {
                    self.redis_answered();
                    return decide(count, limit, left);
                }
                Err(failure) => self.redis_failed(&failure, key),
            }
        }
        self.fallback.hit(key, limit, window).await
    }

    async fn ping(&self) -> Option<Result<(), String>> {
        Some(self.ping_redis().await.map_err(|e| e.to_string()))
    }

    async fn reset(&self, key: &str) {
        self.fallback.reset(key).await;
        if self.redis_resting() {
            return;
        }
        match self.forget_in_redis(key).await {
            Ok(()) => self.redis_answered(),
            Err(failure) => self.redis_failed(&failure, key),
        }
    }
}

/// The Redis key that counts `key`.
fn redis_key(key: &str) -> String {
    format!("{KEY_PREFIX}{key}")
}

/// The leading segments of `key` that name its kind (`login:account`) and nothing more, for
/// logs: never its last segment, and nothing from the first segment that is not a plain
/// lowercase word on, so e-mail addresses, ids and IP addresses stay out of the logs.
fn keyspace(key: &str) -> String {
    let mut segments: Vec<&str> = key.split(':').collect();
    segments.pop();
    let named: Vec<&str> = segments
        .into_iter()
        .take_while(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
        })
        .collect();
    if named.is_empty() {
        "(unnamed)".to_owned()
    } else {
        named.join(":")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed() {
        assert_eq!(
            redis_key("login:ip:1.2.3.4"),
            "clinicflow:rl:login:ip:1.2.3.4"
        );
    }

    #[test]
    fn logs_name_the_keyspace_but_not_the_subject() {
        assert_eq!(keyspace("login:ip:1.2.3.4"), "login:ip");
        assert_eq!(keyspace("login:account:ada@example.org"), "login:account");
        assert_eq!(
            keyspace("login:account:0198c1d2-0000-7000-8000-000000000000"),
            "login:account"
        );
        assert_eq!(
            keyspace(r#"login:account:"ada:x"@example.org"#),
            "login:account"
        );
        assert_eq!(keyspace("ada@example.org"), "(unnamed)");
        assert_eq!(keyspace("ada:lovelace@example.org"), "ada");
    }

    #[test]
    fn an_unusable_url_is_an_error() {
        for url in ["", "not a url", "http://127.0.0.1:6379"] {
            assert!(RedisRateLimiter::connect(url).is_err(), "{url:?}");
        }
    }

    #[test]
    fn an_unusable_url_is_not_repeated_in_the_error_as_it_may_hold_a_password() {
        for url in [
            "redis://:s3cret@127.0.0.1:notaport",
            "redis://ada:s3cret@127.0.0.1:6379/notadb",
        ] {
            let error = RedisRateLimiter::connect(url).expect_err("the URL is unusable");
            let mut chain = Some(&error as &dyn std::error::Error);
            while let Some(error) = chain {
                assert!(!error.to_string().contains("s3cret"), "{error}");
                chain = error.source();
            }
        }
    }

    #[test]
    fn a_redis_url_is_accepted_without_connecting() {
        assert!(RedisRateLimiter::connect("redis://127.0.0.1:1").is_ok());
    }
}
