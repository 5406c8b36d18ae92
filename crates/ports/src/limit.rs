//! The rate-limit port: counters shared by every server instance when Redis is configured.

use std::time::Duration;

use async_trait::async_trait;

/// The answer to one counted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the event is within the limit.
    pub allowed: bool,
    /// Events left in the current window.
    pub remaining: u32,
    /// When refused: how long until the window resets.
    pub retry_after: Duration,
}

/// Fixed-window counters: at most `limit` events per `window` for each key.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one event under `key` and says whether it is allowed. Never fails: an adapter
    /// whose backend is down falls back to counting in-process.
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> RateDecision;

    /// Forgets `key`'s count (after a successful login, for example).
    async fn reset(&self, key: &str);

    /// Asks the shared backend (Redis) whether it answers, for readiness checks: `None` when
    /// counting is in-process and there is nothing to ask.
    async fn ping(&self) -> Option<Result<(), String>> {
        None
    }
}
