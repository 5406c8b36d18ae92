//! The outbox dispatcher: a worker in the server process that delivers due messages in rounds,
//! and the `log` channel used when no other is configured.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clinicflow_domain::{AttemptOutcome, OutboxMessage, RetryPolicy};
use clinicflow_ports::Notifier;
use clinicflow_services::OutboxService;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Delivers by writing each message to the structured log: the embedded default, so reminders
/// and confirmations are seen happening without any receiver.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn deliver(&self, messages: &[OutboxMessage]) -> Vec<AttemptOutcome> {
        for m in messages {
            // Ids and the event kind only: the payload names a patient id, which stays out of logs.
            tracing::info!(message_id = %m.id, clinic_id = %m.clinic_id, event = %m.kind, attempt = m.attempts, "outbox message delivered to the log");
        }
        vec![AttemptOutcome::Delivered; messages.len()]
    }
}

/// How often the dispatcher logs the outbox depth.
const DEPTH_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// How the dispatcher works.
#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    /// Pause between rounds when nothing was due.
    pub poll_interval: Duration,
    /// Messages claimed per round.
    pub claim_limit: u32,
    /// Messages of one clinic delivered in one request.
    pub batch_size: usize,
    /// Retry schedule.
    pub retry: RetryPolicy,
}

/// A running dispatcher; [`Dispatcher::stop`] finishes the current round and ends it.
#[derive(Debug)]
pub struct Dispatcher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Dispatcher {
    /// Starts delivering in the background.
    pub fn start(
        outbox: OutboxService,
        notifier: Arc<dyn Notifier>,
        settings: DispatchSettings,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut last_depth_report: Option<std::time::Instant> = None;
            loop {
                // The outbox depth, once a minute: the gauge operators watch for a stuck channel.
                if last_depth_report.is_none_or(|at| at.elapsed() >= DEPTH_REPORT_INTERVAL) {
                    last_depth_report = Some(std::time::Instant::now());
                    match outbox.depth().await {
                        Ok(depth) => tracing::info!(outbox_depth = depth, "outbox depth"),
                        Err(e) => tracing::warn!(error = %e, "outbox depth unavailable"),
                    }
                }
                let busy = match outbox
                    .dispatch(
                        notifier.as_ref(),
                        &settings.retry,
                        settings.claim_limit,
                        settings.batch_size,
                    )
                    .await
                {
                    Ok(report) => {
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
                };
                if *stopped.borrow() {
                    break;
                }
                if !busy {
                    tokio::select! {
                        _ = tokio::time::sleep(settings.poll_interval) => {}
                        _ = stopped.changed() => break,
                    }
                }
            }
            tracing::info!("outbox dispatcher stopped");
        });
        Self { stop, task }
    }

    /// Lets the round in progress finish, then ends the worker.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "outbox dispatcher ended abnormally");
        }
    }
}
