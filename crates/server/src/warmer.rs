//! The cache warmer: recomputes every clinic's dashboard ahead of the screens that poll it.

use std::time::Duration;

use clinicflow_services::DashboardService;

use crate::worker::Worker;

/// A running warmer.
#[derive(Debug)]
pub struct Warmer(Worker);

impl Warmer {
    /// Refreshes every clinic's dashboard every `interval`.
    pub fn start(dashboard: DashboardService, interval: Duration) -> Self {
        Self(Worker::start("cache warmer", interval, move || {
            let dashboard = dashboard.clone();
            async move {
                if let Err(e) = dashboard.refresh_all().await {
                    tracing::warn!(error = %e, "dashboard refresh failed; trying again at the next interval");
                }
                // Never busy: one refresh per interval is the point.
                false
            }
        }))
    }

    /// Lets the refresh in progress finish, then ends the worker.
    pub async fn stop(self) {
        self.0.stop().await;
    }
}
