//! The notifier port: the channel that delivers outbox messages to the outside world.

use async_trait::async_trait;
use clinicflow_domain::{AttemptOutcome, Endpoint, OutboxMessage};

/// Delivers messages to a clinic's endpoint (its signed webhook, or the log when it has none).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers a batch of messages of one clinic, due together, to `endpoint` in one request
    /// where the channel can; returns one outcome per message, in order. Never panics on a bad
    /// receiver: every failure is an outcome.
    async fn deliver(&self, endpoint: &Endpoint, messages: &[OutboxMessage])
    -> Vec<AttemptOutcome>;
}
