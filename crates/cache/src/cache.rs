//! The in-process cache: a bounded moka cache with per-entry time to live, for the embedded
//! default and as the local level in front of Redis later.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clinicflow_ports::Cache;
use moka::Expiry;
use moka::future::Cache as Moka;

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

/// Hits and misses of one keyspace (the part of a key before its first `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookups {
    /// The keyspace, such as `clinic` or `dashboard`.
    pub keyspace: String,
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found none.
    pub misses: u64,
}

/// An in-process cache bounded by total bytes.
#[derive(Clone)]
pub struct LocalCache {
    inner: Moka<String, Entry>,
    lookups: Arc<Mutex<BTreeMap<String, (u64, u64)>>>,
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
            lookups: Arc::default(),
        }
    }

    /// Hits and misses so far, per keyspace.
    pub fn lookups(&self) -> Vec<Lookups> {
        self.lookups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(keyspace, (hits, misses))| Lookups {
                keyspace: keyspace.clone(),
                hits: *hits,
                misses: *misses,
            })
            .collect()
    }

    fn count(&self, key: &str, hit: bool) {
        // Keys are `keyspace:rest`; the keyspaces are a handful of fixed names, so the map stays small.
        let keyspace = key.split(':').next().unwrap_or(key);
        let mut lookups = self
            .lookups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counts = match lookups.get_mut(keyspace) {
            Some(counts) => counts,
            None => lookups.entry(keyspace.to_owned()).or_default(),
        };
        if hit {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
}

#[async_trait]
impl Cache for LocalCache {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let started = std::time::Instant::now();
        let value = self.inner.get(key).await.map(|e| e.value);
        clinicflow_ports::timing::add_cache(started.elapsed());
        self.count(key, value.is_some());
        value
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let started = std::time::Instant::now();
        self.inner
            .insert(key.to_owned(), Entry { value, ttl })
            .await;
        clinicflow_ports::timing::add_cache(started.elapsed());
    }

    async fn remove(&self, key: &str) {
        self.inner.invalidate(key).await;
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
    async fn values_come_back_until_removed() {
        let cache = LocalCache::new(1 << 20);
        cache.set("k", b"v".to_vec(), Duration::from_secs(60)).await;
        assert_eq!(cache.get("k").await, Some(b"v".to_vec()));
        cache.remove("k").await;
        assert_eq!(cache.get("k").await, None);
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
