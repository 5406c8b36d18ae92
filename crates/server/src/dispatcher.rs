//! The outbox dispatcher: a worker in the server process that delivers due messages in rounds,
//! and the `log` channel used when no other is configured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clinicflow_domain::{AttemptOutcome, Endpoint, OutboxMessage, RetryPolicy};
use clinicflow_ports::Notifier;
use clinicflow_services::OutboxService;
use std::sync::Mutex;
use std::time::Instant;

use clinicflow_api::metrics::Metrics;

use crate::worker::Worker;

/// Delivers by writing to the structured log: the embedded default, so reminders and
/// confirmations are seen happening without any receiver.
///
/// A demo's first start delivers hundreds of messages at once, so the log gets one line per
/// dispatch round with the count per event (written by the dispatcher from [`LogNotifier::take`]),
/// not one line per message; each message's ids are logged at debug level. Clones share
/// their count.
#[derive(Debug, Clone, Default)]
pub struct LogNotifier {
    /// Messages delivered since the last [`LogNotifier::take`], by event name.
    delivered: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

impl LogNotifier {
    /// The messages delivered since the last call, by event name, and starts counting anew.
    pub fn take(&self) -> BTreeMap<&'static str, usize> {
        std::mem::take(
            &mut *self
                .delivered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Writes the summary of what was delivered since the last summary, if anything was.
    fn summarise(&self) {
        let delivered = self.take();
        if delivered.is_empty() {
            return;
        }
        let count: usize = delivered.values().sum();
        let events = delivered
            .iter()
            .map(|(event, n)| format!("{event}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        // Counts and event names only: no message's payload (it names a patient) is logged.
        tracing::info!(count, events = %events, "outbox messages delivered to the log");
    }
}

#[async_trait]
impl Notifier for LogNotifier {
    async fn deliver(&self, _: &Endpoint, messages: &[OutboxMessage]) -> Vec<AttemptOutcome> {
        for m in messages {
            // Ids and the event kind only: the payload names a patient id, which stays out of logs.
            tracing::debug!(message_id = %m.id, clinic_id = %m.clinic_id, event = %m.kind, attempt = m.attempts, "outbox message delivered to the log");
        }
        let mut delivered = self
            .delivered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for m in messages {
            *delivered.entry(m.kind.as_str()).or_default() += 1;
        }
        vec![AttemptOutcome::Delivered; messages.len()]
    }
}

/// How often the dispatcher counts the outbox for the depth gauge: one COUNT per instance
/// this often, however often `/metrics` is scraped.
pub const DEPTH_REFRESH_INTERVAL: Duration = Duration::from_secs(15);
/// How often the dispatcher logs the outbox depth.
const DEPTH_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Says when something done at most once per interval is due again.
#[derive(Debug, Clone, Copy)]
pub struct Every {
    interval: Duration,
    last: Option<Instant>,
}

impl Every {
    /// Due at once, then once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// Whether it is due at `now`; if so, the next time is an interval later.
    pub fn due(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|at| now.saturating_duration_since(at) < self.interval)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// The depth's two schedules: the gauge's refresh and the log line.
#[derive(Debug)]
struct DepthWatch {
    refresh: Every,
    report: Every,
}

/// How the dispatcher works.
#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    /// Pause between rounds when nothing was due.
    pub poll_interval: Duration,
    /// Messages claimed per round.
    pub claim_limit: u32,
    /// Messages of one clinic delivered in one request.
    pub batch_size: usize,
    /// How long claimed messages stay with this dispatcher.
    pub lease: chrono::Duration,
    /// Retry schedule.
    pub retry: RetryPolicy,
}

/// A running dispatcher; [`Dispatcher::stop`] finishes the current round and ends it.
#[derive(Debug)]
pub struct Dispatcher(Worker);

impl Dispatcher {
    /// Starts delivering in the background through `notifier`; after each round it summarises
    /// what `log` (the log channel inside `notifier`) delivered in it.
    pub fn start(
        outbox: OutboxService,
        notifier: Arc<dyn Notifier>,
        log: LogNotifier,
        settings: DispatchSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let outbox = outbox.with_lease(settings.lease);
        let last_depth_report = Arc::new(Mutex::new(DepthWatch {
            refresh: Every::new(DEPTH_REFRESH_INTERVAL),
            report: Every::new(DEPTH_REPORT_INTERVAL),
        }));
        Self(Worker::start(
            "outbox dispatcher",
            settings.poll_interval,
            move || {
                let (outbox, notifier, log, last_depth_report, metrics) = (
                    outbox.clone(),
                    notifier.clone(),
                    log.clone(),
                    last_depth_report.clone(),
                    metrics.clone(),
                );
                async move {
                    report_depth(&outbox, &last_depth_report, &metrics).await;
                    let found_work = round(&outbox, notifier.as_ref(), &settings, &metrics).await;
                    log.summarise();
                    found_work
                }
            },
        ))
    }

    /// Lets the round in progress finish, then ends the worker.
    pub async fn stop(self) {
        self.0.stop().await;
    }
}

/// The outbox depth, the gauge operators watch for a stuck channel: counted every
/// [`DEPTH_REFRESH_INTERVAL`] for `/metrics` (which never counts itself), logged once a minute.
async fn report_depth(outbox: &OutboxService, watch: &Mutex<DepthWatch>, metrics: &Metrics) {
    let log = {
        let mut watch = watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if !watch.refresh.due(now) {
            return;
        }
        watch.report.due(now)
    };
    match outbox.depth().await {
        Ok(depth) => {
            metrics.set_outbox_depth(depth);
            if log {
                tracing::info!(outbox_depth = depth, "outbox depth");
            }
        }
        Err(e) => tracing::warn!(error = %e, "outbox depth unavailable"),
    }
}

/// One dispatch round; whether it found work.
async fn round(
    outbox: &OutboxService,
    notifier: &dyn Notifier,
    settings: &DispatchSettings,
    metrics: &Metrics,
) -> bool {
    match outbox
        .dispatch(
            notifier,
            &settings.retry,
            settings.claim_limit,
            settings.batch_size,
        )
        .await
    {
        Ok(report) => {
            metrics.record_outbox_round(
                report.delivered,
                report.retried,
                report.dead,
                report.withdrawn,
            );
            if report.claimed > 0 {
                tracing::info!(
                    claimed = report.claimed,
                    delivered = report.delivered,
                    retried = report.retried,
                    dead = report.dead,
                    withdrawn = report.withdrawn,
                    "outbox round"
                );
            }
            report.claimed > 0
        }
        Err(e) => {
            tracing::warn!(error = %e, "outbox round failed; trying again shortly");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_is_counted_at_most_once_per_interval() {
        let start = Instant::now();
        let mut every = Every::new(Duration::from_secs(15));
        assert!(every.due(start), "due at once");
        for secs in [0, 1, 14] {
            assert!(!every.due(start + Duration::from_secs(secs)), "{secs} s");
        }
        assert!(every.due(start + Duration::from_secs(15)));
        assert!(!every.due(start + Duration::from_secs(29)));
        assert!(every.due(start + Duration::from_secs(31)));
    }
}
