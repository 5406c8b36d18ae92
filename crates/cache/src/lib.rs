//! Adapters for the cache and rate-limit ports of clinicflow: `LocalCache`, an in-process
//! cache with per-entry TTL; `LocalRateLimiter`, in-process fixed-window counters for the
//! embedded default; and `RedisRateLimiter`, counters shared by every server instance through
//! Redis that fall back to in-process counting while Redis is unreachable.
//!
//! This crate knows only the cache and limit ports and their backends (moka, Redis): never
//! the domain rules, the store, the services or the API.

mod cache;
mod limit;

pub use cache::LocalCache;
pub use limit::{InvalidRedisUrl, LocalRateLimiter, RedisRateLimiter};
