//! The in-process cache: a bounded moka cache with per-entry time to live, for the embedded
//! default and as the local level in front of Redis later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clinicflow_ports::{Cache, Derive, Derived, TagStamp};
use moka::Expiry;
use moka::future::Cache as Moka;

use crate::entry::{LookupCounter, Lookups};

/// A cached value as this process keeps it: decoded (never deflated), with the tag versions
/// it was stored under, and the form its reader derived from it the first time.
pub(crate) struct Entry {
    versions: Vec<(String, u64)>,
    value: Vec<u8>,
    ttl: Duration,
    derived: OnceLock<Option<Derived>>,
}

impl Entry {
    /// The entry's value.
    pub(crate) fn value(&self) -> &[u8] {
        &self.value
    }

    /// The tag versions the value was stored under.
    pub(crate) fn versions(&self) -> &[(String, u64)] {
        &self.versions
    }

    /// What `derive` makes of the value, derived once per stored value.
    pub(crate) fn derived(&self, derive: Derive<'_>) -> Option<Derived> {
        self.derived.get_or_init(|| derive(&self.value)).clone()
    }
}

/// Each entry lives as long as the TTL it was stored with.
struct PerEntryTtl;

impl Expiry<String, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Entry>,
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
    inner: Moka<String, Arc<Entry>>,
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
            // The derived form (a decoded value or a rendered answer) is about as large as
            // the value again, so each value is weighed twice.
            .weigher(|k: &String, v: &Arc<Entry>| {
                u32::try_from(k.len() + 2 * v.value.len()).unwrap_or(u32::MAX)
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

    /// The entry under `key`, whatever its tags (for the level in front of Redis).
    pub(crate) async fn entry(&self, key: &str) -> Option<Arc<Entry>> {
        self.inner.get(key).await
    }

    /// Forgets `key` (the level in front of Redis drops a copy Redis has replaced).
    pub(crate) async fn remove(&self, key: &str) {
        self.inner.invalidate(key).await;
    }

    /// Stores a decoded value with the tag versions it was read under.
    pub(crate) async fn put(
        &self,
        key: &str,
        versions: Vec<(String, u64)>,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            versions,
            value,
            ttl,
            derived: OnceLock::new(),
        });
        self.inner.insert(key.to_owned(), entry.clone()).await;
        entry
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

    /// Whether none of the entry's tags was invalidated in this process since it was stored.
    fn is_current(&self, entry: &Entry) -> bool {
        if entry.versions.is_empty() {
            return true;
        }
        let versions = self
            .versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entry
            .versions
            .iter()
            .all(|(tag, version)| versions.get(tag).copied().unwrap_or(0) == *version)
    }

    /// The entry under `key` if its tags are current, counted as a hit or a miss.
    async fn fresh(&self, key: &str) -> Option<Arc<Entry>> {
        let started = Instant::now();
        let entry = self.entry(key).await.filter(|e| self.is_current(e));
        clinicflow_ports::timing::add_cache(started.elapsed());
        self.lookups.count(key, entry.is_some());
        entry
    }
}

#[async_trait]
impl Cache for LocalCache {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.fresh(key).await.map(|e| e.value.clone())
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        self.set_tagged(key, TagStamp::default(), value, ttl).await;
    }

    async fn stamp(&self, tags: &[String]) -> Option<TagStamp> {
        Some(TagStamp(self.versions_of(tags)))
    }

    async fn set_tagged(&self, key: &str, stamp: TagStamp, value: Vec<u8>, ttl: Duration) {
        let started = std::time::Instant::now();
        self.put(key, stamp.0, value, ttl).await;
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

    async fn get_derived<'a>(&self, key: &str, derive: Derive<'a>) -> Option<Derived> {
        self.fresh(key).await?.derived(derive)
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

    /// A derive that counts its calls and answers the value's length.
    fn counting(calls: &std::sync::atomic::AtomicUsize) -> impl Fn(&[u8]) -> Option<Derived> {
        move |bytes: &[u8]| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(Arc::new(bytes.to_vec()) as Derived)
        }
    }

    fn bytes_of(derived: &Derived) -> Vec<u8> {
        derived.downcast_ref::<Vec<u8>>().expect("a Vec").clone()
    }

    #[tokio::test]
    async fn a_hit_hands_back_the_form_derived_at_the_first_hit() {
        let cache = LocalCache::new(1 << 20);
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let derive = counting(&calls);
        cache
            .set("dashboard:1", b"figures".to_vec(), Duration::from_secs(60))
            .await;
        let first = cache
            .get_derived("dashboard:1", &derive)
            .await
            .expect("hit");
        let second = cache
            .get_derived("dashboard:1", &derive)
            .await
            .expect("hit");
        assert!(Arc::ptr_eq(&first, &second), "the same rendered form");
        assert_eq!(bytes_of(&second), b"figures");
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(
            cache.get_derived("dashboard:2", &derive).await.map(|_| ()),
            None
        );
        // A new value under the key is derived anew.
        cache
            .set("dashboard:1", b"newer".to_vec(), Duration::from_secs(60))
            .await;
        let third = cache
            .get_derived("dashboard:1", &derive)
            .await
            .expect("hit");
        assert_eq!(bytes_of(&third), b"newer");
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn an_invalidated_tag_evicts_the_derived_form_with_its_value() {
        let cache = LocalCache::new(1 << 20);
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let derive = counting(&calls);
        let tags = vec!["practitioners:1".to_owned()];
        let stamp = cache.stamp(&tags).await.expect("known");
        cache
            .set_tagged("list:1", stamp, b"page".to_vec(), Duration::from_secs(60))
            .await;
        assert!(cache.get_derived("list:1", &derive).await.is_some());
        cache.invalidate(&tags).await;
        assert!(cache.get_derived("list:1", &derive).await.is_none());
        assert_eq!(cache.get("list:1").await, None);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn values_are_kept_as_they_were_given_however_large() {
        // Large values were deflated in this level once; they are kept as they are now.
        let cache = LocalCache::new(1 << 20);
        let large: Vec<u8> = b"0123456789".repeat(1_000);
        cache
            .set("slots:1", large.clone(), Duration::from_secs(60))
            .await;
        let entry = cache.entry("slots:1").await.expect("stored");
        assert_eq!(entry.value(), large.as_slice());
        assert_eq!(cache.get("slots:1").await, Some(large));
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
