//! The event port: change notifications that reach every server instance (Redis pub/sub when
//! configured, an in-process broadcast otherwise), for live views such as the queue board.

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;

/// A stream of event payloads.
pub type EventStream = Pin<Box<dyn Stream<Item = Vec<u8>> + Send>>;

/// Publishes and subscribes to topics. Delivery is best effort: a subscriber that falls behind
/// or a broker outage may drop events, so subscribers treat each event as "something changed"
/// and re-read the state, and refresh periodically.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Sends `payload` to every current subscriber of `topic` on every instance.
    async fn publish(&self, topic: &str, payload: Vec<u8>);

    /// Events published to `topic` from now on.
    async fn subscribe(&self, topic: &str) -> EventStream;
}
