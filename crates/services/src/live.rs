//! Live streams (the queue board's Server-Sent Events): why a stream ends, and the per-user
//! announcements (logout, deactivation) that end a user's streams on every instance.
//!
//! A stream is opened with an access token, which stays valid for its lifetime only; so a
//! stream ends when its token expires, when its user logs out or is deactivated, and when the
//! instance shuts down. The announcements go through the `EventBus` (Redis pub/sub across
//! instances), on a topic of the user.

use clinicflow_domain::UserId;
use clinicflow_ports::EventBus;
use futures::{Stream, StreamExt};

use crate::Ports;

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
