//! Event buses for the `EventBus` port: an in-process fan-out, and Redis pub/sub so events
//! reach every server instance.
//!
//! Both deliver through one bounded broadcast channel per topic in this process, created
//! when the topic gets its first subscriber and forgotten when it has none left. A
//! subscriber that falls more than 256 events behind skips the ones it missed and goes on
//! with the oldest it still can get; its stream never ends because of it.

mod local;
mod redis;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError, Weak};

use clinicflow_ports::EventStream;
use tokio::sync::broadcast::{self, error::RecvError};

pub use local::LocalEventBus;
pub use redis::RedisEventBus;

/// How many events a topic holds for its slowest subscriber before that subscriber skips.
const CAPACITY: usize = 256;

/// The topics of this process that have subscribers, each with its broadcast channel.
#[derive(Default)]
struct Fanout {
    topics: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
}

impl Fanout {
    /// A receiver of `topic`'s events from now on; the topic's channel is made if need be.
    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Vec<u8>> {
        let mut topics = self.topics();
        if let Some(sender) = topics.get(topic) {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(CAPACITY);
        topics.insert(topic.to_owned(), sender);
        receiver
    }

    /// Hands `payload` to the subscribers of `topic` here, and forgets the topic if it has none
    /// left.
    fn send(&self, topic: &str, payload: Vec<u8>) {
        let mut topics = self.topics();
        if let Some(sender) = topics.get(topic)
            && sender.send(payload).is_err()
        {
            topics.remove(topic);
        }
    }

    /// Forgets `topic` if it has no subscribers left.
    fn forget_if_unused(&self, topic: &str) {
        let mut topics = self.topics();
        if topics
            .get(topic)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            topics.remove(topic);
        }
    }

    /// The topics that have subscribers; the others are forgotten.
    fn topics_in_use(&self) -> HashSet<String> {
        let mut topics = self.topics();
        topics.retain(|_, sender| sender.receiver_count() > 0);
        topics.keys().cloned().collect()
    }

    /// How many topics are known (with subscribers, or not yet forgotten).
    fn topic_count(&self) -> usize {
        self.topics().len()
    }

    /// The topic table; a panic elsewhere while it was held leaves it usable.
    fn topics(&self) -> MutexGuard<'_, HashMap<String, broadcast::Sender<Vec<u8>>>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Forgets its topic when dropped, if no subscriber of the topic is left.
struct ForgetIfUnused {
    fanout: Weak<Fanout>,
    topic: String,
}

impl Drop for ForgetIfUnused {
    fn drop(&mut self) {
        if let Some(fanout) = self.fanout.upgrade() {
            fanout.forget_if_unused(&self.topic);
        }
    }
}

/// One subscriber's receiver, with what must happen once it is gone.
struct Subscriber<G> {
    /// Declared (so dropped) before `_on_drop`, which may count the receivers left.
    receiver: broadcast::Receiver<Vec<u8>>,
    /// Held only to be dropped with the subscriber.
    _on_drop: G,
}

/// The events `receiver` gets, skipping any it missed by falling behind; the stream ends only
/// when the topic's channel is gone. `on_drop` is dropped after the receiver, with the stream.
fn event_stream<G: Send + 'static>(
    receiver: broadcast::Receiver<Vec<u8>>,
    on_drop: G,
) -> EventStream {
    let subscriber = Subscriber {
        receiver,
        _on_drop: on_drop,
    };
    Box::pin(futures::stream::unfold(
        subscriber,
        |mut subscriber| async move {
            loop {
                match subscriber.receiver.recv().await {
                    Ok(payload) => return Some((payload, subscriber)),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::debug!(
                            skipped,
                            "an event subscriber fell behind and skipped events"
                        );
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    ))
}
