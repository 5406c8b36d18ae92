//! Live streams (the queue board's Server-Sent Events): why a stream ends, and the per-user
//! announcements (logout, deactivation) that end a user's streams on every instance.
//!
//! A stream is opened with an access token, which stays valid for its lifetime only; so a
//! stream ends when its token expires, when its user logs out or is deactivated, and when the
//! instance shuts down. The announcements go through the `EventBus` (Redis pub/sub across
//! instances), on a topic of the user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use clinicflow_domain::UserId;
use clinicflow_ports::EventBus;
use futures::{Stream, StreamExt};

use crate::{Ports, ServiceError};

/// Seconds a client refused a stream slot is told to wait: a slot frees when one of its
/// user's other streams closes, which a reconnecting tab does within moments.
const STREAM_RETRY_SECS: u64 = 5;

/// Open live streams per user on this instance, so one user cannot hold unbounded
/// connections.
#[derive(Debug, Clone, Default)]
pub struct StreamSlots {
    held: Arc<Mutex<HashMap<UserId, u32>>>,
    limit: u32,
}

/// A held stream slot; dropping it (the client went away) frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    slots: StreamSlots,
    user: UserId,
}

impl StreamSlots {
    /// Slots for at most `limit` open streams of each user.
    pub fn new(limit: u32) -> Self {
        Self {
            held: Arc::default(),
            limit,
        }
    }

    /// Takes a slot for `user`; with `limit` already held, a 429 to retry shortly.
    pub fn acquire(&self, user: UserId) -> Result<StreamSlot, ServiceError> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = held.entry(user).or_insert(0);
        if *count >= self.limit {
            return Err(ServiceError::RateLimited {
                retry_after_secs: STREAM_RETRY_SECS,
            });
        }
        *count += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            user,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut held = self
            .slots
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

/// Why a live stream ends; the client is told before the stream closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The instance is shutting down: reconnect at once (another instance answers).
    Shutdown,
    /// The access token the stream was opened with expired: reconnect with a fresh one.
    TokenExpired,
    /// The user logged out: do not reconnect.
    LoggedOut,
    /// The user was deactivated: do not reconnect.
    Deactivated,
}

impl StreamEnd {
    /// The reason as sent to clients and announced between instances.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shutdown => "shutdown",
            Self::TokenExpired => "token_expired",
            Self::LoggedOut => "logged_out",
            Self::Deactivated => "deactivated",
        }
    }

    /// Whether the client should open the stream again.
    pub fn reconnect(self) -> bool {
        matches!(self, Self::Shutdown | Self::TokenExpired)
    }

    /// The end a user-topic announcement asks for; `None` for anything else.
    fn announced(payload: &[u8]) -> Option<Self> {
        [Self::LoggedOut, Self::Deactivated]
            .into_iter()
            .find(|end| end.as_str().as_bytes() == payload)
    }
}

/// The event topic of one user's live streams.
pub fn user_topic(user: UserId) -> String {
    format!("user:{user}")
}

/// The ends announced for `user` from now on, on any instance (a logout, a deactivation).
/// Subscribe before the stream's first read, as for the queue's topic.
pub async fn announced_ends(
    events: &dyn EventBus,
    user: UserId,
) -> impl Stream<Item = StreamEnd> + Send + use<> {
    events
        .subscribe(&user_topic(user))
        .await
        .filter_map(|payload| futures::future::ready(StreamEnd::announced(&payload)))
}

/// Ends every live stream of `user`, on every instance, after the change that requires it
/// has committed.
pub(crate) async fn announce(ports: &Ports, user: UserId, end: StreamEnd) {
    ports
        .events
        .publish(&user_topic(user), end.as_str().as_bytes().to_vec())
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_the_limit_of_streams_and_a_closed_one_frees_its_slot() {
        let slots = StreamSlots::new(2);
        let (ada, bob) = (
            UserId::from_uuid(uuid::Uuid::from_u128(1)),
            UserId::from_uuid(uuid::Uuid::from_u128(2)),
        );
        let first = slots.acquire(ada).expect("a first slot");
        let _second = slots.acquire(ada).expect("a second slot");
        assert!(matches!(
            slots.acquire(ada),
            Err(ServiceError::RateLimited {
                retry_after_secs: STREAM_RETRY_SECS
            })
        ));
        let _other = slots
            .acquire(bob)
            .expect("another user's slots are their own");
        drop(first);
        slots
            .acquire(ada)
            .expect("the closed stream's slot is free again");
    }

    #[test]
    fn only_logout_and_deactivation_are_announced_and_read_back() {
        for end in [StreamEnd::LoggedOut, StreamEnd::Deactivated] {
            assert_eq!(StreamEnd::announced(end.as_str().as_bytes()), Some(end));
        }
        assert_eq!(StreamEnd::announced(b"shutdown"), None);
        assert_eq!(StreamEnd::announced(b"changed"), None);
    }

    #[tokio::test]
    async fn an_announcement_goes_to_the_users_topic() {
        let user = UserId::from_uuid(uuid::Uuid::from_u128(7));
        let mut m = crate::mocks::Mocks::new(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
        m.events
            .expect_publish()
            .times(1)
            .withf(move |topic, payload| {
                topic == format!("user:{user}") && payload.as_slice() == b"deactivated"
            })
            .return_const(());
        let (ports, _) = m.ports();
        announce(&ports, user, StreamEnd::Deactivated).await;
    }

    #[test]
    fn clients_reconnect_after_a_shutdown_or_an_expiry_only() {
        assert!(StreamEnd::Shutdown.reconnect());
        assert!(StreamEnd::TokenExpired.reconnect());
        assert!(!StreamEnd::LoggedOut.reconnect());
        assert!(!StreamEnd::Deactivated.reconnect());
    }
}
