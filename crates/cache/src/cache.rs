//! The in-process cache: a bounded moka cache with per-entry time to live, for the embedded
//! default and as the local level in front of Redis later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clinicflow_ports::{Cache, TagStamp};
use moka::Expiry;
use moka::future::Cache as Moka;

use crate::entry::{LookupCounter, Lookups, Tagged};

/// A cached value with the time it expires.
#[derive(Clone)]
struct Entry {
    value: Vec<u8>,
    ttl: Duration,
}

/// Each entry lives as long as the TTL it was stored with.
struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// An in-process cache bounded by total bytes. Tags are versioned in the process: right for
/// one instance; several instances use [`crate::RedisCache`], which keeps the versions in Redis.
#[derive(Clone)]
pub struct LocalCache {
    inner: Moka<String, Entry>,
    versions: Arc<Mutex<HashMap<String, u64>>>,
    lookups: Arc<LookupCounter>,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

impl LocalCache {
    /// A cache holding at most about `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        let inner = Moka::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Entry| {
                u32::try_from(k.len() + v.value.len()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self {
            inner,
            versions: Arc::default(),
            lookups: Arc::default(),
        }
    }

    /// Hits and misses so far, per keyspace.
    pub fn lookups(&self) -> Vec<Lookups> {
        self.lookups.snapshot()
    }

    /// The stored bytes under `key`, as they are (for the level in front of Redis).
    pub(crate) async fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.get(key).await.map(|e| e.value)
    }

    /// Forgets `key` (the level in front of Redis drops a copy Redis has replaced).
    pub(crate) async fn remove(&self, key: &str) {
        self.inner.invalidate(key).await;
    }

    /// Stores bytes as they are.
    pub(crate) async fn put_raw(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        self.inner
            .insert(key.to_owned(), Entry { value, ttl })
            .await;
    }

    fn versions_of(&self, tags: &[String]) -> Vec<(String, u64)> {
        let versions = self
            .versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tags.iter()
            .map(|t| (t.clone(), versions.get(t).copied().unwrap_or(0)))
            .collect()
    }
}

#[async_trait]
impl Cache for LocalCache {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let started = std::time::Instant::now();
        let value = self
            .raw(key)
            .await
            .and_then(|bytes| Tagged::decode(&bytes))
            .filter(|entry| {
                let tags: Vec<String> = entry.versions.iter().map(|(t, _)| t.clone()).collect();
                self.versions_of(&tags) == entry.versions
            })
            .map(|entry| entry.value);
        clinicflow_ports::timing::add_cache(started.elapsed());
        self.lookups.count(key, value.is_some());
        value
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        self.set_tagged(key, TagStamp::default(), value, ttl).await;
    }

    async fn stamp(&self, tags: &[String]) -> Option<TagStamp> {
        Some(TagStamp(self.versions_of(tags)))
    }

    async fn set_tagged(&self, key: &str, stamp: TagStamp, value: Vec<u8>, ttl: Duration) {
        let started = std::time::Instant::now();
        let entry = Tagged {
            versions: stamp.0,
            value,
        };
        self.put_raw(key, entry.encode(), ttl).await;
        clinicflow_ports::timing::add_cache(started.elapsed());
    }

    async fn invalidate(&self, tags: &[String]) {
        let mut versions = self
            .versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for tag in tags {
            *versions.entry(tag.clone()).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hits_and_misses_are_counted_per_keyspace() {
        let cache = LocalCache::new(1024 * 1024);
        cache.get("clinic:1").await;
        cache
            .set("clinic:1", b"x".to_vec(), Duration::from_secs(60))
            .await;
        cache.get("clinic:1").await;
        cache.get("clinic:1").await;
        cache.get("dashboard:7").await;
        assert_eq!(
            cache.lookups(),
            [
                Lookups {
                    keyspace: "clinic".into(),
                    hits: 2,
                    misses: 1
                },
                Lookups {
                    keyspace: "dashboard".into(),
                    hits: 0,
                    misses: 1
                },
            ]
        );
    }

    #[tokio::test]
    async fn an_invalidated_tag_makes_its_values_stale_and_leaves_the_others() {
        let cache = LocalCache::new(1 << 20);
        let ttl = Duration::from_secs(60);
        let (a, b) = (vec!["clinic:a".to_owned()], vec!["clinic:b".to_owned()]);
        let stamp_a = cache.stamp(&a).await.expect("known");
        cache
            .set_tagged("clinic:a", stamp_a.clone(), b"A".to_vec(), ttl)
            .await;
        let stamp_b = cache.stamp(&b).await.expect("known");
        cache
            .set_tagged("clinic:b", stamp_b, b"B".to_vec(), ttl)
            .await;
        cache.invalidate(&a).await;
        assert_eq!(cache.get("clinic:a").await, None);
        assert_eq!(cache.get("clinic:b").await, Some(b"B".to_vec()));
        // A value read before the invalidation, stored after it, is stale at once.
        cache
            .set_tagged("clinic:a", stamp_a, b"old".to_vec(), ttl)
            .await;
        assert_eq!(cache.get("clinic:a").await, None);
        // Stamped after the invalidation, it is fresh.
        let fresh = cache.stamp(&a).await.expect("known");
        cache
            .set_tagged("clinic:a", fresh, b"A2".to_vec(), ttl)
            .await;
        assert_eq!(cache.get("clinic:a").await, Some(b"A2".to_vec()));
    }

    #[tokio::test]
    async fn values_come_back_until_their_ttl() {
        let cache = LocalCache::new(1 << 20);
        cache.set("k", b"v".to_vec(), Duration::from_secs(60)).await;
        assert_eq!(cache.get("k").await, Some(b"v".to_vec()));
        assert_eq!(cache.get("other").await, None);
    }

    #[tokio::test]
    async fn values_expire_after_their_ttl() {
        let cache = LocalCache::new(1 << 20);
        cache
            .set("k", b"v".to_vec(), Duration::from_millis(20))
            .await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cache.get("k").await, None);
    }
}
