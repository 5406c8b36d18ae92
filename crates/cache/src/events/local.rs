//! The in-process event bus: the embedded default, where one server instance is all there is.

use std::sync::Arc;

use async_trait::async_trait;
use clinicflow_ports::{EventBus, EventStream};

use super::{Fanout, ForgetIfUnused, event_stream};

/// Events fanned out to the subscribers of this process only.
///
/// Each topic with subscribers has a broadcast channel of 256 events, made on its first
/// subscription and forgotten when its last subscriber is gone, so topics nobody listens to
/// cost nothing. Publishing to a topic without subscribers does nothing. Clones share the
/// subscribers.
#[derive(Clone, Default)]
pub struct LocalEventBus {
    fanout: Arc<Fanout>,
}

impl std::fmt::Debug for LocalEventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEventBus")
            .field("topics", &self.fanout.topic_count())
            .finish()
    }
}

impl LocalEventBus {
    /// A bus with no subscribers yet.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl EventBus for LocalEventBus {
    async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.fanout.send(topic, payload);
    }

    async fn subscribe(&self, topic: &str) -> EventStream {
        let receiver = self.fanout.subscribe(topic);
        let forget = ForgetIfUnused {
            fanout: Arc::downgrade(&self.fanout),
            topic: topic.to_owned(),
        };
        event_stream(receiver, forget)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::super::CAPACITY;
    use super::*;

    /// The next event of `stream`, or `None` if none comes within a second.
    async fn next(stream: &mut EventStream) -> Option<Vec<u8>> {
        tokio::time::timeout(Duration::from_secs(1), stream.next())
            .await
            .ok()
            .flatten()
    }

    /// Whether `stream` stays quiet for a moment.
    async fn quiet(stream: &mut EventStream) -> bool {
        tokio::time::timeout(Duration::from_millis(50), stream.next())
            .await
            .is_err()
    }

    #[tokio::test]
    async fn every_subscriber_of_a_topic_gets_each_event() {
        let bus = LocalEventBus::new();
        let mut first = bus.subscribe("queue:1").await;
        let mut second = bus.subscribe("queue:1").await;
        bus.publish("queue:1", b"changed".to_vec()).await;
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"changed"[..]));
        assert_eq!(next(&mut second).await.as_deref(), Some(&b"changed"[..]));
        assert!(quiet(&mut first).await, "each event comes once");
    }

    #[tokio::test]
    async fn a_subscriber_gets_nothing_from_other_topics() {
        let bus = LocalEventBus::new();
        let mut queue = bus.subscribe("queue:1").await;
        let mut other = bus.subscribe("queue:2").await;
        bus.publish("queue:2", b"other".to_vec()).await;
        bus.publish("queue:1", b"mine".to_vec()).await;
        assert_eq!(next(&mut queue).await.as_deref(), Some(&b"mine"[..]));
        assert_eq!(next(&mut other).await.as_deref(), Some(&b"other"[..]));
        assert!(quiet(&mut queue).await);
    }

    #[tokio::test]
    async fn a_subscriber_gets_only_events_published_after_it_subscribed() {
        let bus = LocalEventBus::new();
        let mut early = bus.subscribe("queue:1").await;
        bus.publish("queue:1", b"before".to_vec()).await;
        let mut late = bus.subscribe("queue:1").await;
        bus.publish("queue:1", b"after".to_vec()).await;
        assert_eq!(next(&mut late).await.as_deref(), Some(&b"after"[..]));
        assert_eq!(next(&mut early).await.as_deref(), Some(&b"before"[..]));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_skips_what_it_missed_and_keeps_receiving() {
        let bus = LocalEventBus::new();
        let mut slow = bus.subscribe("queue:1").await;
        let published = CAPACITY + 10;
        for i in 0..published {
            bus.publish("queue:1", i.to_string().into_bytes()).await;
        }
        let mut received = Vec::new();
        for _ in 0..CAPACITY {
            received.push(next(&mut slow).await.expect("the retained events come"));
        }
        assert_eq!(received[0], b"10", "the 10 oldest events were skipped");
        assert_eq!(
            received[CAPACITY - 1],
            (published - 1).to_string().into_bytes()
        );
        assert!(
            quiet(&mut slow).await,
            "nothing is yielded for the skipped events"
        );
        bus.publish("queue:1", b"later".to_vec()).await;
        assert_eq!(next(&mut slow).await.as_deref(), Some(&b"later"[..]));
    }

    #[tokio::test]
    async fn a_dropped_subscriber_does_not_stop_the_others() {
        let bus = LocalEventBus::new();
        let gone = bus.subscribe("queue:1").await;
        let mut kept = bus.subscribe("queue:1").await;
        drop(gone);
        bus.publish("queue:1", b"changed".to_vec()).await;
        assert_eq!(next(&mut kept).await.as_deref(), Some(&b"changed"[..]));
    }

    #[tokio::test]
    async fn topics_without_subscribers_are_forgotten() {
        let bus = LocalEventBus::new();
        bus.publish("nobody:listens", b"x".to_vec()).await;
        assert_eq!(bus.fanout.topic_count(), 0, "publishing makes no topic");

        let first = bus.subscribe("queue:1").await;
        let second = bus.subscribe("queue:1").await;
        assert_eq!(bus.fanout.topic_count(), 1);
        drop(first);
        assert_eq!(bus.fanout.topic_count(), 1, "one subscriber is left");
        drop(second);
        assert_eq!(bus.fanout.topic_count(), 0);

        let mut again = bus.subscribe("queue:1").await;
        bus.publish("queue:1", b"changed".to_vec()).await;
        assert_eq!(next(&mut again).await.as_deref(), Some(&b"changed"[..]));
    }

    #[tokio::test]
    async fn publishing_forgets_a_topic_whose_subscribers_are_gone() {
        let bus = LocalEventBus::new();
        let receiver = bus.fanout.subscribe("queue:1");
        drop(receiver); // gone without its stream's clean-up
        assert_eq!(bus.fanout.topic_count(), 1);
        bus.publish("queue:1", b"changed".to_vec()).await;
        assert_eq!(bus.fanout.topic_count(), 0);
    }

    #[tokio::test]
    async fn subscriptions_end_when_the_bus_is_gone() {
        let bus = LocalEventBus::new();
        let mut stream = bus.subscribe("queue:1").await;
        drop(bus);
        let end = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
        assert_eq!(end, Ok(None));
    }
}
