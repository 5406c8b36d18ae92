//! The no-show sweeper: a worker that marks appointments nobody checked in for as no-shows
//! once their grace has passed, in every clinic, and forgets expired idempotency keys.

use std::sync::Arc;
use std::time::Duration;

use clinicflow_api::metrics::Metrics;
use clinicflow_services::{BookingService, IdempotencyService};

use crate::worker::Worker;

/// How the sweeper works.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// Pause between sweeps.
    pub interval: Duration,
    /// Appointments marked per clinic in one sweep.
    pub batch: u32,
    /// A swept no-show is announced when it started at most this long ago.
    pub announce_within: chrono::Duration,
}

/// A running sweeper.
#[derive(Debug)]
pub struct Sweeper(Worker);

impl Sweeper {
    /// Starts sweeping in the background. Several instances may sweep at once: each
    /// appointment is claimed in the unit of work that marks it.
    pub fn start(
        booking: BookingService,
        keys: IdempotencyService,
        settings: SweepSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self(Worker::start(
            "no-show sweeper",
            settings.interval,
            move || {
                let (booking, keys, metrics) = (booking.clone(), keys.clone(), metrics.clone());
                async move {
                    if let Err(e) = keys.purge_expired().await {
                        tracing::warn!(error = %e, "purging expired idempotency keys failed; trying again at the next interval");
                    }
                    match booking
                        .sweep_no_shows(settings.batch, settings.announce_within)
                        .await
                    {
                        // A clinic with more than a batch overdue is swept again at once.
                        Ok(report) => {
                            metrics.record_no_shows(report.marked);
                            report.clinics_at_limit > 0
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "no-show sweep failed; trying again at the next interval");
                            false
                        }
                    }
                }
            },
        ))
    }

    /// Lets the sweep in progress finish, then ends the worker.
    pub async fn stop(self) {
        self.0.stop().await;
    }
}
