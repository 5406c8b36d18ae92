//! The cache port: opaque bytes by key, with a time to live.

use std::time::Duration;

use async_trait::async_trait;

/// A best-effort key-value cache; a miss or an outage never changes an answer, only its speed.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Cache: Send + Sync {
    /// The value under `key`, if cached and fresh.
    async fn get(&self, key: &str) -> Option<Vec<u8>>;

    /// Stores `value` under `key` for at most `ttl`.
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration);

    /// Forgets `key`.
    async fn remove(&self, key: &str);
}
