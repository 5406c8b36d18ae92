//! Filling the cache from the database so that no invalidation can be missed.

use std::time::Duration;

use crate::{Ports, ServiceError};

/// Runs `load` and caches its value under `key`, tied to `tags` as they stood BEFORE the
/// load: a change committed and invalidated while `load` reads makes the cached value stale
/// at once. Nothing is cached when the tags cannot be read (Redis down).
///
/// `load` is a future, so it does nothing until it is awaited here, after the stamp.
pub(crate) async fn load_tagged<T>(
    ports: &Ports,
    key: &str,
    tags: &[String],
    ttl: Duration,
    encode: impl FnOnce(&T) -> Vec<u8>,
    load: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    let stamp = ports.cache.stamp(tags).await;
    let value = load.await?;
    if let Some(stamp) = stamp {
        ports
            .cache
            .set_tagged(key, stamp, encode(&value), ttl)
            .await;
    }
    Ok(value)
}
