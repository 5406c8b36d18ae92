//! Rate limiters for the `RateLimiter` port: fixed windows counted in-process or in Redis.
//!
//! Both adapters answer alike: `retry_after` is zero when the event is allowed, and when it
//! is refused the time left in the key's window rounded up to whole seconds (at least one
//! second), ready for a `Retry-After` header.

mod local;
mod redis;

use std::time::Duration;

use clinicflow_ports::limit::RateDecision;

pub use local::LocalRateLimiter;
pub use redis::RedisRateLimiter;

/// The shortest window counted: shorter ones are counted as this.
const MIN_WINDOW: Duration = Duration::from_millis(1);

/// The longest window counted: longer ones are counted as this.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// `window` clamped to what the adapters can count.
fn clamp_window(window: Duration) -> Duration {
    window.clamp(MIN_WINDOW, MAX_WINDOW)
}

/// The decision for the `count`th event of a window that ends in `left`.
fn decide(count: u64, limit: u32, left: Duration) -> RateDecision {
    match u32::try_from(count) {
        Ok(count) if count <= limit => RateDecision {
            allowed: true,
            remaining: limit - count,
            retry_after: Duration::ZERO,
        },
        _ => RateDecision {
            allowed: false,
            remaining: 0,
            retry_after: whole_seconds_up(left),
        },
    }
}

/// `left` rounded up to whole seconds, and at least one second.
fn whole_seconds_up(left: Duration) -> Duration {
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_up_to_the_limit_are_allowed_with_what_remains() {
        let left = Duration::from_secs(5);
        assert_eq!(
            decide(1, 3, left),
            RateDecision {
                allowed: true,
                remaining: 2,
                retry_after: Duration::ZERO
            }
        );
        assert_eq!(decide(3, 3, left).remaining, 0);
        assert!(decide(3, 3, left).allowed);
    }

    #[test]
    fn an_event_over_the_limit_is_refused_until_the_window_ends() {
        let decision = decide(4, 3, Duration::from_millis(4_200));
        assert!(!decision.allowed);
        assert_eq!(decision.remaining, 0);
        assert_eq!(decision.retry_after, Duration::from_secs(5));
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(whole_seconds_up(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            whole_seconds_up(Duration::from_millis(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            whole_seconds_up(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn a_limit_of_zero_refuses_everything() {
        assert!(!decide(1, 0, Duration::from_secs(1)).allowed);
    }

    #[test]
    fn counts_beyond_u32_are_refused() {
        assert!(!decide(u64::from(u32::MAX) + 1, u32::MAX, Duration::from_secs(1)).allowed);
    }

    #[test]
    fn windows_are_clamped_to_what_can_be_counted() {
        assert_eq!(clamp_window(Duration::ZERO), MIN_WINDOW);
        assert_eq!(clamp_window(Duration::MAX), MAX_WINDOW);
        assert_eq!(
            clamp_window(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
    }
}
