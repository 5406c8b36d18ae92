//! Background workers of the server process (outbox dispatcher, no-show sweeper): a loop of
//! rounds that pauses when a round found nothing to do and stops cleanly when asked.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running worker; [`Worker::stop`] lets the current round finish and ends it.
#[derive(Debug)]
pub struct Worker {
    name: &'static str,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    /// Runs `round` again and again: at once while it reports it was busy, after `idle`
    /// otherwise. A round is never cut short by [`Worker::stop`].
    pub fn start<F, Fut>(name: &'static str, idle: Duration, mut round: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let busy = round().await;
                if *stopped.borrow() {
                    break;
                }
                if !busy {
                    tokio::select! {
                        _ = tokio::time::sleep(idle) => {}
                        _ = stopped.changed() => break,
                    }
                }
            }
            tracing::info!(worker = name, "worker stopped");
        });
        Self { name, stop, task }
    }

    /// Lets the round in progress finish, then ends the worker.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(e) = self.task.await {
            tracing::warn!(worker = self.name, error = %e, "worker ended abnormally");
        }
    }
}
