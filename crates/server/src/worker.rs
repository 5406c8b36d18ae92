//! Background workers of the server process (outbox dispatcher, no-show sweeper, cache
//! warmer): a loop of rounds that pauses when a round found nothing to do, survives a round
//! that panics (logged, then restarted after a growing pause), and stops cleanly when asked.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The pause after a round panicked, doubled after each further panic in a row.
const FIRST_RESTART_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between restarts of a worker that keeps panicking.
const MAX_RESTART_PAUSE: Duration = Duration::from_secs(60);

/// A running worker; [`Worker::stop`] lets the current round finish and ends it.
#[derive(Debug)]
pub struct Worker {
    name: &'static str,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    /// Runs `round` again and again: at once while it reports it was busy, after `idle`
    /// otherwise. A round is never cut short by [`Worker::stop`]. Each round runs as its own
    /// task, so a round that panics is logged and the worker starts a new one after a pause
    /// (100 ms, doubling with each panic in a row up to a minute) instead of vanishing.
    pub fn start<F, Fut>(name: &'static str, idle: Duration, mut round: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut restart_pause = FIRST_RESTART_PAUSE;
            loop {
                let (pause, busy) = match tokio::spawn(round()).await {
                    Ok(busy) => {
                        restart_pause = FIRST_RESTART_PAUSE;
                        (idle, busy)
                    }
                    Err(e) => {
                        let pause = restart_pause;
                        restart_pause = (restart_pause * 2).min(MAX_RESTART_PAUSE);
                        tracing::error!(
                            worker = name,
                            panic = %panic_message(e),
                            restart_in_ms = pause.as_millis(),
                            "worker round panicked; restarting the worker"
                        );
                        (pause, false)
                    }
                };
                if *stopped.borrow() {
                    break;
                }
                if !busy {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
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

/// What a failed round said, for the log: the panic's message, or why there is none.
fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn a_worker_whose_round_panics_is_restarted_and_still_stops_cleanly() {
        let rounds = Arc::new(AtomicU32::new(0));
        let counted = rounds.clone();
        let worker = Worker::start("test worker", Duration::from_millis(10), move || {
            let counted = counted.clone();
            async move {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                assert!(n > 2, "round {n} panics, as a bug in a worker would");
                false
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while rounds.load(Ordering::SeqCst) < 4 {
            assert!(
                Instant::now() < deadline,
                "the worker ran {} rounds; it was not restarted after its panics",
                rounds.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::timeout(Duration::from_secs(10), worker.stop())
            .await
            .expect("the restarted worker stops when asked");
    }

    #[test]
    fn a_panic_message_is_read_from_either_payload_type() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let text = tokio::spawn(async { panic!("static text") })
                .await
                .expect_err("it panicked");
            assert_eq!(panic_message(text), "static text");
            let formatted = tokio::spawn(async { panic!("round {}", 7) })
                .await
                .expect_err("it panicked");
            assert_eq!(panic_message(formatted), "round 7");
        });
    }
}
