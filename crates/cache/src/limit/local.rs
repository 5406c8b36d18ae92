//! In-process fixed-window counters: the embedded default, and the fallback of the Redis
//! limiter while Redis is unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clinicflow_ports::limit::{RateDecision, RateLimiter};
use moka::Expiry;
use moka::future::Cache as Moka;

use super::{clamp_window, decide};

/// One key's current window: how many events it has counted and when it ends.
#[derive(Debug)]
struct Window {
    count: AtomicU64,
    ends_at: Instant,
}

/// Each window is forgotten when it ends, so memory holds only live windows.
struct UntilWindowEnds;

impl Expiry<String, Arc<Window>> for UntilWindowEnds {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Window>,
        now: Instant,
    ) -> Option<Duration> {
        Some(value.ends_at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Window>,
        now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ends_at.saturating_duration_since(now))
    }
}

/// Fixed-window counters held in this process, for at most a given number of keys.
///
/// Windows expire when they end. When more keys are live than the bound, the least useful
/// ones are evicted and start again from zero: memory stays bounded even under a flood of
/// distinct keys, at the price of forgetting some counts. Each hit takes the next number of
/// its window's atomic counter, so two concurrent hits never both get the last slot. Clones
/// share the counters.
#[derive(Clone)]
pub struct LocalRateLimiter {
    windows: Moka<String, Arc<Window>>,
}

impl std::fmt::Debug for LocalRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateLimiter")
            .field("keys", &self.windows.entry_count())
            .finish()
    }
}

impl LocalRateLimiter {
    /// Counters for at most about `max_keys` live keys.
    pub fn new(max_keys: u64) -> Self {
        let windows = Moka::builder()
            .max_capacity(max_keys)
            .expire_after(UntilWindowEnds)
            .build();
        Self { windows }
    }

    /// The key's window that has not ended, begun now when there is none. Under the cache's
    /// per-key lock, so concurrent hits that find no window all count in the same new one.
    async fn open_window(&self, key: &str, window: Duration, now: Instant) -> Arc<Window> {
        self.windows
            .entry_by_ref(key)
            .and_upsert_with(|current| {
                let open = current
                    .map(|entry| entry.into_value())
                    .filter(|w| w.ends_at > Instant::now());
                std::future::ready(open.unwrap_or_else(|| {
                    Arc::new(Window {
                        count: AtomicU64::new(0),
                        ends_at: now.checked_add(window).unwrap_or(now),
                    })
                }))
            })
            .await
            .into_value()
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> RateDecision {
        let window = clamp_window(window);
        let now = Instant::now();
        // A hit on a live window is a read and an atomic increment: the cache's write path
        // (its per-key lock, expiry timers and bookkeeping) runs once per window, not per hit.
        let current = match self.windows.get(key).await {
            Some(w) if w.ends_at > now => w,
            _ => self.open_window(key, window, now).await,
        };
        let count = current
            .count
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let left = current.ends_at.saturating_duration_since(Instant::now());
        decide(count, limit, left)
    }

    async fn reset(&self, key: &str) {
        self.windows.invalidate(key).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn hits_up_to_the_limit_are_allowed_and_count_down() {
        let limiter = LocalRateLimiter::new(1_000);
        for remaining in [2, 1, 0] {
            let decision = limiter.hit("login:ip:1.2.3.4", 3, MINUTE).await;
            assert!(decision.allowed);
            assert_eq!(decision.remaining, remaining);
            assert_eq!(decision.retry_after, Duration::ZERO);
        }
    }

    #[tokio::test]
    async fn a_hit_over_the_limit_is_refused_until_the_window_ends() {
        let limiter = LocalRateLimiter::new(1_000);
        let window = Duration::from_secs(10);
        for _ in 0..3 {
            assert!(limiter.hit("k", 3, window).await.allowed);
        }
        let refused = limiter.hit("k", 3, window).await;
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert!(
            refused.retry_after >= Duration::from_secs(9) && refused.retry_after <= window,
            "retry_after {:?} should be the time left in a 10 s window",
            refused.retry_after
        );
    }

    #[tokio::test]
    async fn a_new_window_allows_again() {
        let limiter = LocalRateLimiter::new(1_000);
        // Long enough that a loaded machine cannot pass it between two hits.
        let window = Duration::from_secs(1);
        assert!(limiter.hit("k", 1, window).await.allowed);
        // The window began before this instant, so it has ended by this plus its length.
        let after_first = tokio::time::Instant::now();
        let refused = limiter.hit("k", 1, window).await;
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(1), "rounded up");
        tokio::time::sleep_until(after_first + window + Duration::from_millis(50)).await;
        let again = limiter.hit("k", 1, window).await;
        assert!(again.allowed);
        assert_eq!(again.remaining, 0);
    }

    #[tokio::test]
    async fn refused_hits_do_not_extend_the_window() {
        let limiter = LocalRateLimiter::new(1_000);
        let window = Duration::from_secs(1);
        assert!(limiter.hit("k", 1, window).await.allowed);
        let after_first = tokio::time::Instant::now();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(!limiter.hit("k", 1, window).await.allowed);
        }
        // Past the first window's end; a window the refused hits had extended would still
        // run until at least 150 ms + 1 s after the first.
        tokio::time::sleep_until(after_first + window + Duration::from_millis(50)).await;
        assert!(limiter.hit("k", 1, window).await.allowed);
    }

    #[tokio::test]
    async fn reset_forgets_the_count() {
        let limiter = LocalRateLimiter::new(1_000);
        assert!(limiter.hit("k", 1, MINUTE).await.allowed);
        assert!(!limiter.hit("k", 1, MINUTE).await.allowed);
        limiter.reset("k").await;
        assert!(limiter.hit("k", 1, MINUTE).await.allowed);
    }

    #[tokio::test]
    async fn keys_are_counted_apart() {
        let limiter = LocalRateLimiter::new(1_000);
        assert!(limiter.hit("login:ip:1.2.3.4", 1, MINUTE).await.allowed);
        assert!(limiter.hit("login:ip:5.6.7.8", 1, MINUTE).await.allowed);
        assert!(!limiter.hit("login:ip:1.2.3.4", 1, MINUTE).await.allowed);
    }

    #[tokio::test]
    async fn a_limit_of_zero_refuses_the_first_hit() {
        let limiter = LocalRateLimiter::new(1_000);
        assert!(!limiter.hit("k", 0, MINUTE).await.allowed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_hits_with_limit_ten_allow_exactly_ten() {
        let limiter = Arc::new(LocalRateLimiter::new(1_000));
        let barrier = Arc::new(tokio::sync::Barrier::new(50));
        let hits: Vec<_> = (0..50)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    limiter.hit("k", 10, MINUTE).await
                })
            })
            .collect();
        let mut allowed = 0;
        for hit in hits {
            if hit.await.expect("the hit task does not panic").allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10);
    }

    #[tokio::test]
    async fn memory_stays_bounded_under_many_keys() {
        let limiter = LocalRateLimiter::new(100);
        for i in 0..2_000 {
            limiter.hit(&format!("login:ip:{i}"), 5, MINUTE).await;
        }
        limiter.windows.run_pending_tasks().await;
        assert!(limiter.windows.entry_count() <= 100);
    }
}
