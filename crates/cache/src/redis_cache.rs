//! Two cache levels: a short-lived in-process level in front of Redis (holding values decoded,
//! so a local hit inflates nothing), with tag versions
//! kept in Redis so that an invalidation on one instance is seen by every other at once.
//!
//! Every read of a tagged value asks Redis for its tags' current versions (one `MGET`), so a
//! value cached on this instance is never served after another instance invalidated one of
//! its tags. When Redis cannot be asked, tagged values are not served at all: the caller reads
//! the database instead (degraded, never stale), the failure is counted and logged at most
//! once per interval, and the cache is used again as soon as Redis answers.
//!
//! An invalidation that fails during an outage is lost, so values stored before it must not
//! be served afterwards. Every stamp therefore also carries the namespace's epoch, and an
//! instance that saw Redis fail advances the epoch before it trusts Redis again: whatever
//! was cached before the failure is stale on every instance at once. An instance that saw
//! no failure (only the writer was cut off from Redis) may serve a value the writer could
//! not invalidate until the writer reaches Redis again, at most for the value's TTL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clinicflow_ports::{Cache, Derive, Derived, TagStamp};
use deadpool_redis::redis::{self, RedisError};
use deadpool_redis::{Pool, PoolError};

use crate::LocalCache;
use crate::backend::{self, InvalidRedisUrl, Warnings};
use crate::cache::Entry;
use crate::entry::{LookupCounter, Lookups, Tagged};

/// How long a value stays in the in-process level: short, because untagged values there are
/// not checked against Redis.
const LOCAL_TTL: Duration = Duration::from_secs(5);

/// Each Redis call gives up after this long unless set otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// Why one Redis call gave no answer.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// The prefix of every Redis key unless set otherwise.
const DEFAULT_NAMESPACE: &str = "clinicflow";

/// The tag every stamp carries besides its own; advancing it makes every value stale.
const EPOCH_TAG: &str = "epoch";

/// The two-level cache.
pub struct RedisCache {
    local: LocalCache,
    pool: Pool,
    namespace: String,
    timeout: Duration,
    errors: AtomicU64,
    /// Set by every failed Redis call: an invalidation may have been lost since.
    suspect: AtomicBool,
    warnings: Mutex<Warnings>,
    lookups: LookupCounter,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("local", &self.local)
            .field("redis_errors", &self.redis_errors())
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// A cache on the Redis at `url`, with an in-process level of at most `local_max_bytes`.
    pub fn connect(url: &str, local_max_bytes: u64) -> Result<Self, InvalidRedisUrl> {
        Ok(Self {
            local: LocalCache::new(local_max_bytes),
            pool: backend::pool(url)?,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            errors: AtomicU64::new(0),
            suspect: AtomicBool::new(false),
            warnings: Mutex::new(Warnings::default()),
            lookups: LookupCounter::default(),
        })
    }

    /// The same cache with each Redis call bounded by `timeout` instead of 200 ms.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same cache with its Redis keys under `namespace` instead of `clinicflow`; instances
    /// share values, tags and the epoch only within one namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    fn value_key(&self, key: &str) -> String {
        format!("{}:cache:{key}", self.namespace)
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}:tag:{tag}", self.namespace)
    }

    /// Redis calls that failed or timed out so far.
    pub fn redis_errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Hits and misses so far, per keyspace.
    pub fn lookups(&self) -> Vec<Lookups> {
        self.lookups.snapshot()
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let result = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| Failure::Timeout(self.timeout))
            .and_then(|r| r);
        match &result {
            Ok(_) => {
                let recovered = self
                    .warnings
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .answered();
                if recovered {
                    tracing::info!("Redis answers again: the shared cache is back in use");
                }
            }
            Err(failure) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.suspect.store(true, Ordering::Release);
                let due = self
                    .warnings
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .failed(Instant::now());
                if let Some(failures) = due {
                    tracing::warn!(
                        error = %failure,
                        failures_since_last_warning = failures,
                        "Redis cache failed: reading from the database until Redis answers"
                    );
                }
            }
        }
        result
    }

    /// Advances the epoch once Redis answers again after a failure, before anything read
    /// from it is trusted.
    async fn settle(&self) -> Result<(), Failure> {
        if !self.suspect.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        // A failure of this call sets `suspect` again, so the next one tries again.
        let epoch = self.tag_key(EPOCH_TAG);
        self.bounded(async {
            let mut conn = self.pool.get().await?;
            redis::cmd("INCR")
                .arg(&epoch)
                .query_async::<()>(&mut conn)
                .await?;
            Ok(())
        })
        .await?;
        tracing::info!("cache epoch advanced: values cached before the Redis failure are stale");
        Ok(())
    }

    /// The current versions of `tags` (0 for a tag never invalidated).
    async fn versions(&self, tags: &[String]) -> Result<Vec<(String, u64)>, Failure> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        self.settle().await?;
        let keys: Vec<String> = tags.iter().map(|t| self.tag_key(t)).collect();
        let found: Vec<Option<u64>> = self
            .bounded(async {
                let mut conn = self.pool.get().await?;
                Ok(redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?)
            })
            .await?;
        Ok(tags
            .iter()
            .cloned()
            .zip(found.into_iter().map(Option::unwrap_or_default))
            .collect())
    }

    /// The entry stored in Redis, decoded once and kept in this process that way.
    async fn shared_entry(&self, key: &str) -> Option<Arc<Entry>> {
        let bytes: Option<Vec<u8>> = self
            .bounded(async {
                let mut conn = self.pool.get().await?;
                Ok(redis::cmd("GET")
                    .arg(self.value_key(key))
                    .query_async(&mut conn)
                    .await?)
            })
            .await
            .ok()
            .flatten();
        let Tagged { versions, value } = Tagged::decode(&bytes?)?;
        Some(self.local.put(key, versions, value, LOCAL_TTL).await)
    }

    /// The entry under `key` whose tags still have the versions it was stored with.
    async fn fresh(&self, key: &str) -> Option<Arc<Entry>> {
        if let Some(entry) = self.local.entry(key).await {
            match self.check(entry.versions()).await? {
                true => return Some(entry),
                // Another instance may have stored a newer value in Redis since.
                false => self.local.remove(key).await,
            }
        }
        let entry = self.shared_entry(key).await?;
        self.check(entry.versions()).await?.then_some(entry)
    }

    /// The fresh entry under `key`, counted as a hit or a miss.
    async fn lookup(&self, key: &str) -> Option<Arc<Entry>> {
        let started = Instant::now();
        let entry = self.fresh(key).await;
        clinicflow_ports::timing::add_cache(started.elapsed());
        self.lookups.count(key, entry.is_some());
        entry
    }

    /// Whether the tags of an entry still have the `versions` it was stored with; `None`
    /// when Redis cannot say, which counts as stale: another instance's invalidation would
    /// be unknown.
    async fn check(&self, versions: &[(String, u64)]) -> Option<bool> {
        if versions.is_empty() {
            return Some(true);
        }
        let tags: Vec<String> = versions.iter().map(|(t, _)| t.clone()).collect();
        let current = self.versions(&tags).await.ok()?;
        Some(current == versions)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lookup(key).await.map(|e| e.value().to_vec())
    }

    async fn get_derived<'a>(&self, key: &str, derive: Derive<'a>) -> Option<Derived> {
        self.lookup(key).await?.derived(derive)
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        self.set_tagged(key, TagStamp::default(), value, ttl).await;
    }

    async fn stamp(&self, tags: &[String]) -> Option<TagStamp> {
        let started = Instant::now();
        let mut tags = tags.to_vec();
        tags.push(EPOCH_TAG.to_owned());
        let stamp = self.versions(&tags).await.ok().map(TagStamp);
        clinicflow_ports::timing::add_cache(started.elapsed());
        stamp
    }

    async fn set_tagged(&self, key: &str, stamp: TagStamp, value: Vec<u8>, ttl: Duration) {
        let started = Instant::now();
        {
            let entry = Tagged {
                versions: stamp.0,
                value,
            };
            let bytes = entry.encode();
            let Tagged { versions, value } = entry;
            self.local
                .put(key, versions, value, ttl.min(LOCAL_TTL))
                .await;
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let _ = self
                .bounded(async {
                    let mut conn = self.pool.get().await?;
                    redis::cmd("SET")
                        .arg(self.value_key(key))
                        .arg(bytes)
                        .arg("PX")
                        .arg(millis)
                        .query_async::<()>(&mut conn)
                        .await?;
                    Ok(())
                })
                .await;
        }
        clinicflow_ports::timing::add_cache(started.elapsed());
    }

    async fn invalidate(&self, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        let started = Instant::now();
        let _ = self
            .bounded(async {
                let mut conn = self.pool.get().await?;
                let mut pipe = redis::pipe();
                for tag in tags {
                    pipe.cmd("INCR").arg(self.tag_key(tag)).ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
                Ok(())
            })
            .await;
        clinicflow_ports::timing::add_cache(started.elapsed());
    }
}
