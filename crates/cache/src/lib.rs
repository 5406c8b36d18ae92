//! Adapters for the cache, rate-limit and event ports of clinicflow: `LocalCache`, an
//! in-process cache with per-entry TTL; `LocalRateLimiter`, in-process fixed-window counters
//! for the embedded default; `RedisRateLimiter`, counters shared by every server instance
//! through Redis that fall back to in-process counting while Redis is unreachable;
//! `LocalEventBus`, an in-process fan-out of events to subscribers; and `RedisEventBus`,
//! events shared by every instance through Redis pub/sub (one subscription per topic and
//! instance) that still reach this instance's subscribers while Redis is unreachable.
//!
//! This crate knows only the cache, limit and event ports and their backends (moka, tokio
//! channels, Redis): never the domain rules, the store, the services or the API.

mod backend;
mod cache;
mod entry;
mod events;
mod limit;
mod redis_cache;

pub use backend::InvalidRedisUrl;
pub use cache::LocalCache;
pub use entry::Lookups;
pub use events::{LocalEventBus, RedisEventBus};
pub use limit::{LocalRateLimiter, RedisRateLimiter};
pub use redis_cache::RedisCache;
