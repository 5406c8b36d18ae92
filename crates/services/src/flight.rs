//! Single flight: concurrent misses of one cache key compute the value once.
//!
//! A popular key that expires (or is invalidated by a booking) would otherwise be
//! recomputed by every request that arrives before the first one has stored it: a burst of
//! identical database reads exactly when the cache is no help. The first miss takes the
//! key's flight; the others wait for it and then find the value in the cache. The map is
//! per process; across instances each computes at most once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::lock::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The keys being computed right now, each with the lock its computer holds.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    keys: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// The right to compute one key; dropping it lets the next waiter in.
pub(crate) struct Flight<'a> {
    flights: &'a Flights,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Flights {
    /// Waits until no other caller computes `key`, then holds it until the flight is dropped.
    ///
    /// A caller that had to wait should look in the cache again before computing.
    pub(crate) async fn enter(&self, key: &str) -> Flight<'_> {
        let lock = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default()
            .clone();
        Flight {
            flights: self,
            key: key.to_owned(),
            guard: Some(lock.lock_owned().await),
        }
    }

    /// How many keys have a flight or waiters.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut keys = self
            .flights
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only the map holds the lock now: nobody waits, so the key can go. A caller that
        // arrives later makes a new one.
        if keys
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A miss-then-compute as the services do it: look, take the flight, look again.
    async fn read(
        flights: &Flights,
        cache: &Mutex<HashMap<String, u32>>,
        computed: &AtomicUsize,
        key: &str,
    ) -> u32 {
        let cached = || cache.lock().expect("not poisoned").get(key).copied();
        if let Some(v) = cached() {
            return v;
        }
        let _flight = flights.enter(key).await;
        if let Some(v) = cached() {
            return v;
        }
        computed.fetch_add(1, Ordering::SeqCst);
        // A slow computation, so every other caller arrives while it runs.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        cache
            .lock()
            .expect("not poisoned")
            .insert(key.to_owned(), 42);
        42
    }

    #[tokio::test]
    async fn concurrent_misses_of_one_key_compute_once() {
        let flights = Flights::default();
        let cache = Mutex::new(HashMap::new());
        let computed = AtomicUsize::new(0);
        let reads = (0..50).map(|_| read(&flights, &cache, &computed, "slots:a"));
        let values = futures::future::join_all(reads).await;
        assert!(values.iter().all(|v| *v == 42));
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0, "finished flights leave nothing behind");
    }

    #[tokio::test]
    async fn different_keys_do_not_wait_for_each_other() {
        let flights = Flights::default();
        let first = flights.enter("a").await;
        // Would hang if "b" shared "a"'s lock.
        let second = tokio::time::timeout(std::time::Duration::from_secs(5), flights.enter("b"))
            .await
            .expect("b is not held by a's flight");
        assert_eq!(flights.len(), 2);
        drop((first, second));
        assert_eq!(flights.len(), 0);
    }
}
