//! The notifier port: the channel that delivers outbox messages to the outside world.

use async_trait::async_trait;
use clinicflow_domain::{AttemptOutcome, OutboxMessage};

/// Delivers messages (a signed webhook, or the log when nothing is configured).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers a batch of messages of one clinic, due together, in one request where the
    /// channel can; returns one outcome per message, in order. Never panics on a bad receiver:
    /// every failure is an outcome.
    async fn deliver(&self, messages: &[OutboxMessage]) -> Vec<AttemptOutcome>;
}
