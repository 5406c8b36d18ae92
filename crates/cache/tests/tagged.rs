//! `RedisCache` against a real Redis (`CLINICFLOW_TEST_REDIS_URL`): values shared by
//! instances, invalidation seen by every instance at once, and an outage that degrades to
//! misses, never to stale values.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clinicflow_cache::RedisCache;
use clinicflow_ports::{Cache, Derived};
use common::*;
use uuid::Uuid;

const MINUTE: Duration = Duration::from_secs(60);

/// Instances of one test share a namespace that no other test uses, so an epoch advanced
/// by one test's outage never empties another test's cache.
fn cache_in(url: &str, namespace: &str) -> RedisCache {
    RedisCache::connect(url, 1 << 20)
        .expect("the test Redis URL is valid")
        .with_timeout(TEST_TIMEOUT)
        .with_namespace(format!("test:{namespace}"))
}

fn cache(url: &str) -> RedisCache {
    cache_in(url, "shared")
}

/// A key and a tag no other test uses.
fn unique(name: &str) -> (String, Vec<String>) {
    let id = Uuid::now_v7();
    (format!("test:{id}:{name}"), vec![format!("test:{id}")])
}

#[tokio::test]
async fn an_invalidation_on_one_instance_is_seen_by_another_at_once() {
    let Some(url) = redis_url() else { return };
    let (a, b) = (cache(&url), cache(&url));
    let (key, tags) = unique("clinic");
    let stamp = a.stamp(&tags).await.expect("Redis answers");
    a.set_tagged(&key, stamp, b"v1".to_vec(), MINUTE).await;
    // The other instance finds it in Redis, and now holds it in its own level too.
    assert_eq!(b.get(&key).await, Some(b"v1".to_vec()));
    assert_eq!(a.get(&key).await, Some(b"v1".to_vec()));

    b.invalidate(&tags).await;
    assert_eq!(
        a.get(&key).await,
        None,
        "the writer's instance does not serve it"
    );
    assert_eq!(b.get(&key).await, None);

    // Read before the invalidation, stored after it: stale at once.
    let early = a.stamp(&tags).await.expect("Redis answers");
    b.invalidate(&tags).await;
    a.set_tagged(&key, early, b"old".to_vec(), MINUTE).await;
    assert_eq!(b.get(&key).await, None);
    let fresh = a.stamp(&tags).await.expect("Redis answers");
    a.set_tagged(&key, fresh, b"v2".to_vec(), MINUTE).await;
    assert_eq!(b.get(&key).await, Some(b"v2".to_vec()));
    assert_eq!(a.redis_errors() + b.redis_errors(), 0);
}

#[tokio::test]
async fn the_derived_form_is_made_once_per_stored_value_and_goes_with_an_invalidation() {
    let Some(url) = redis_url() else { return };
    let (a, b) = (cache(&url), cache(&url));
    let (key, tags) = unique("dashboard");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let derive = |bytes: &[u8]| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(Arc::new(bytes.to_vec()) as Derived)
    };
    let shown = |d: &Derived| d.downcast_ref::<Vec<u8>>().expect("a Vec").clone();
    // Large enough to be stored deflated in Redis.
    let value = b"{\"booked\":4}".repeat(200);
    let stamp = a.stamp(&tags).await.expect("Redis answers");
    a.set_tagged(&key, stamp, value.clone(), MINUTE).await;
    // The other instance reads it from Redis once, then from its own level.
    let first = b.get_derived(&key, &derive).await.expect("a hit");
    let second = b.get_derived(&key, &derive).await.expect("a hit");
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(shown(&second), value);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);

    a.invalidate(&tags).await;
    assert!(b.get_derived(&key, &derive).await.is_none());
    assert!(a.get_derived(&key, &derive).await.is_none());
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(a.redis_errors() + b.redis_errors(), 0);
}

#[tokio::test]
async fn without_redis_tagged_values_are_misses_and_an_invalidation_lost_meanwhile_resurrects_nothing()
 {
    let Some(url) = redis_url() else { return };
    let namespace = Uuid::now_v7().to_string();
    let relay = Relay::start(redis_addr(&url).await).await;
    let cut_off = RedisCache::connect(&url_through(&url, relay.addr), 1 << 20)
        .expect("valid URL")
        .with_timeout(Duration::from_millis(300))
        .with_namespace(format!("test:{namespace}"));
    let other = cache_in(&url, &namespace);
    let (key, tags) = unique("clinic");
    let stamp = cut_off.stamp(&tags).await.expect("Redis answers");
    cut_off
        .set_tagged(&key, stamp, b"v1".to_vec(), MINUTE)
        .await;
    assert_eq!(cut_off.get(&key).await, Some(b"v1".to_vec()));

    relay.cut();
    // Another instance may invalidate meanwhile: what cannot be checked is not served.
    assert_eq!(cut_off.get(&key).await, None);
    assert!(
        cut_off.stamp(&tags).await.is_none(),
        "nothing is cached blind"
    );
    // A write on this instance: its invalidation cannot reach Redis.
    cut_off.invalidate(&tags).await;
    assert!(cut_off.redis_errors() >= 3);

    relay.restore();
    let mut fresh = None;
    for _ in 0..50 {
        fresh = cut_off.stamp(&tags).await;
        if fresh.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = fresh.expect("Redis answers again");
    // The value stored before the lost invalidation is stale everywhere, not served again.
    assert_eq!(
        cut_off.get(&key).await,
        None,
        "no stale value on the writer"
    );
    assert_eq!(other.get(&key).await, None, "nor on another instance");
    cut_off
        .set_tagged(&key, fresh, b"v2".to_vec(), MINUTE)
        .await;
    assert_eq!(
        cut_off.get(&key).await,
        Some(b"v2".to_vec()),
        "cached again"
    );
    assert_eq!(other.get(&key).await, Some(b"v2".to_vec()));
}

#[tokio::test]
async fn counts_hits_and_misses_per_keyspace() {
    let Some(url) = redis_url() else { return };
    let c = cache(&url);
    let (key, _) = unique("x");
    assert_eq!(c.get(&key).await, None);
    c.set(&key, b"v".to_vec(), MINUTE).await;
    assert_eq!(c.get(&key).await, Some(b"v".to_vec()));
    let lookups = c.lookups();
    assert_eq!(lookups.len(), 1);
    assert_eq!((lookups[0].hits, lookups[0].misses), (1, 1));
}
