//! The live boards of this instance: one board per scope (clinic, department or practitioner),
//! computed once per burst of queue changes and sent, as the same rendered bytes, to every
//! stream of that scope.
//!
//! Each followed scope has one task with one event-bus subscription. A change recomputes the
//! board at once; changes within [`COALESCE`] of that recompute are folded into one more after
//! the window, so a burst costs two reads per scope whatever the number of streams. The frame
//! sits in a `watch` channel: a stream only ever needs the latest one, and a new stream starts
//! from it. The receivers are the reference count: when the last stream of a scope goes, its
//! task removes the scope and ends (ADR 0007).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::web::Bytes;
use clinicflow_ports::EventBus;
use clinicflow_services::{LiveBoard, ServiceError, Services};
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::metrics::LiveBoardMetrics;

/// The shortest time between two recomputes of one scope's board.
pub const COALESCE: Duration = Duration::from_millis(100);

/// A scope's latest frame.
#[derive(Debug, Clone)]
enum Frame {
    /// The first board is being read.
    Pending,
    /// `event: queue` with the board, rendered once for every stream.
    Ready(Bytes),
    /// The first board could not be read; a change tries again.
    Failed,
}

/// What woke a scope's task.
enum Wake {
    /// Its last stream is gone.
    Alone,
    /// The queue changed.
    Changed,
    /// The event bus ended the subscription.
    BusEnded,
}

type Scopes = HashMap<LiveBoard, Arc<watch::Sender<Frame>>>;

/// The followed scopes of this instance and their boards.
#[derive(Debug, Clone, Default)]
pub struct BoardHub {
    scopes: Arc<Mutex<Scopes>>,
    metrics: LiveBoardMetrics,
}

impl BoardHub {
    /// A hub counting into `metrics`.
    pub fn new(metrics: LiveBoardMetrics) -> Self {
        Self {
            scopes: Arc::default(),
            metrics,
        }
    }

    /// How many scopes have open streams now.
    pub fn scopes(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Scopes> {
        self.scopes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows `live`'s board: its current frame, then each new one. The caller has checked and
    /// audited the reader ([`clinicflow_services::QueueService::watch_board`]).
    pub(crate) async fn follow(
        &self,
        live: LiveBoard,
        services: &Services,
        events: &Arc<dyn EventBus>,
    ) -> Result<(Bytes, impl Stream<Item = Bytes> + 'static), ServiceError> {
        let (mut frames, started) = {
            let mut scopes = self.lock();
            match scopes.get(&live) {
                Some(sender) => (sender.subscribe(), None),
                None => {
                    let (sender, frames) = watch::channel(Frame::Pending);
                    let sender = Arc::new(sender);
                    scopes.insert(live.clone(), sender.clone());
                    self.metrics.scopes.set(gauge(scopes.len()));
                    (frames, Some(sender))
                }
            }
        };
        if let Some(sender) = started {
            let hub = self.clone();
            let (services, events) = (services.clone(), events.clone());
            actix_web::rt::spawn(async move { hub.run(live, sender, services, events).await });
        }
        let first = match frames.wait_for(|f| !matches!(f, Frame::Pending)).await {
            Ok(frame) => frame.clone(),
            Err(_) => Frame::Failed,
        };
        let Frame::Ready(first) = first else {
            return Err(ServiceError::Unavailable(
                "the live board could not be read".into(),
            ));
        };
        let next = futures::stream::unfold(frames, |mut frames| async move {
            loop {
                frames.changed().await.ok()?;
                let frame = frames.borrow_and_update().clone();
                if let Frame::Ready(bytes) = frame {
                    return Some((bytes, frames));
                }
            }
        });
        Ok((first, next))
    }

    /// The task of one scope: recomputes on changes until its last stream is gone.
    async fn run(
        self,
        live: LiveBoard,
        sender: Arc<watch::Sender<Frame>>,
        services: Services,
        events: Arc<dyn EventBus>,
    ) {
        // Subscribed before the first read, so no change between the two is missed.
        let mut changes = events
            .subscribe(&clinicflow_services::queue::topic(live.clinic()))
            .await;
        self.recompute(&live, &sender, &services).await;
        let mut last = Instant::now();
        loop {
            let wake = futures::select_biased! {
                () = sender.closed().fuse() => Wake::Alone,
                change = changes.next().fuse() => match change {
                    Some(_) => Wake::Changed,
                    None => Wake::BusEnded,
                },
            };
            match wake {
                Wake::Alone => {
                    if self.leave(&live, &sender) {
                        return;
                    }
                }
                Wake::BusEnded => loop {
                    // No more changes will come: only the last stream's leaving is left to wait for.
                    sender.closed().await;
                    if self.leave(&live, &sender) {
                        return;
                    }
                },
                Wake::Changed => {
                    tokio::time::sleep_until(last + COALESCE).await;
                    // Whatever arrived while waiting is covered by the read that follows.
                    while let Some(Some(_)) = changes.next().now_or_never() {}
                    last = Instant::now();
                    self.recompute(&live, &sender, &services).await;
                }
            }
        }
    }

    /// Forgets `live` if nobody follows it; false when a stream joined meanwhile.
    fn leave(&self, live: &LiveBoard, sender: &Arc<watch::Sender<Frame>>) -> bool {
        let mut scopes = self.lock();
        // Streams subscribe under this lock, so no one can join between the count and the removal.
        if sender.receiver_count() > 0 {
            return false;
        }
        if scopes.get(live).is_some_and(|s| Arc::ptr_eq(s, sender)) {
            scopes.remove(live);
        }
        self.metrics.scopes.set(gauge(scopes.len()));
        true
    }

    async fn recompute(
        &self,
        live: &LiveBoard,
        sender: &watch::Sender<Frame>,
        services: &Services,
    ) {
        self.metrics.recomputes.inc();
        let frame = services
            .queue
            .live_board(live)
            .await
            .map_err(|e| e.to_string())
            .and_then(|board| {
                serde_json::to_string(&super::board_out(board)).map_err(|e| e.to_string())
            });
        match frame {
            Ok(json) => {
                sender.send_replace(Frame::Ready(super::sse("queue", &json)));
            }
            Err(error) => {
                // A failed refresh is skipped: the streams keep the last board until the next change.
                tracing::warn!(%error, "the live board could not be read");
                sender.send_if_modified(|f| {
                    let first = matches!(f, Frame::Pending);
                    if first {
                        *f = Frame::Failed;
                    }
                    first
                });
            }
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
