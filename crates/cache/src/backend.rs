//! Redis plumbing shared by the Redis adapters: connection pools, the URL error, and the
//! throttling of warnings about an unreachable Redis.

use std::time::{Duration, Instant};

use deadpool_redis::{CreatePoolError, Pool, Runtime};

/// At most one warning about Redis failures per this interval.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(30);

/// The Redis URL given to the `connect` of a Redis adapter cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL")]
pub struct InvalidRedisUrl(#[source] pub(crate) CreatePoolError);

/// A pool on the Redis at `url`; connections are opened on first use.
pub(crate) fn pool(url: &str) -> Result<Pool, InvalidRedisUrl> {
    deadpool_redis::Config::from_url(url)
        .create_pool(Some(Runtime::Tokio1))
        .map_err(InvalidRedisUrl)
}

/// Warnings about one kind of failure, at most one per interval.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    /// When the last warning was logged.
    last: Option<Instant>,
    /// Failures since the last warning.
    unreported: u64,
    /// Whether a warning was logged since Redis last answered.
    warned: bool,
}

impl Warnings {
    /// Notes a failure at `now`: the failures since the last warning when one is due.
    pub(crate) fn failed(&mut self, now: Instant) -> Option<u64> {
        self.unreported = self.unreported.saturating_add(1);
        let due = self
            .last
            .is_none_or(|at| now.saturating_duration_since(at) >= WARN_INTERVAL);
        if !due {
            return None;
        }
        self.last = Some(now);
        self.warned = true;
        Some(std::mem::take(&mut self.unreported))
    }

    /// Notes that Redis answered: whether failures were warned about since it last did.
    pub(crate) fn answered(&mut self) -> bool {
        std::mem::take(&mut self.warned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_warned_about_at_most_once_per_interval() {
        let start = Instant::now();
        let mut warnings = Warnings::default();
        assert_eq!(warnings.failed(start), Some(1));
        assert_eq!(warnings.failed(start + Duration::from_secs(1)), None);
        assert_eq!(warnings.failed(start + Duration::from_secs(2)), None);
        assert_eq!(
            warnings.failed(start + WARN_INTERVAL),
            Some(3),
            "the two unreported failures and this one"
        );
        assert!(warnings.answered(), "the outage was warned about");
        assert!(!warnings.answered(), "and its end is told once");
    }
}
