//! The clock port, so that services and tests control "now".

use chrono::{DateTime, SubsecRound, Utc};

/// Tells the time.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Clock: Send + Sync {
    /// The present instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        // Microseconds are what PostgreSQL keeps; truncating here makes an answer and a later read agree.
        Utc::now().trunc_subsecs(6)
    }
}
