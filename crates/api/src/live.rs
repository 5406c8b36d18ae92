//! How a live stream (Server-Sent Events) ends: at the first of the instance's shutdown, the
//! expiry of the access token it was opened with, and an announced logout or deactivation of
//! its user, it sends a last `end` event saying why and whether to reconnect, then closes.
//!
//! Without this, a stream outlives its token and its user's session, and a graceful shutdown
//! waits for every open stream until the shutdown timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use clinicflow_services::live::StreamEnd;
use futures::future::{self, Either};
use futures::stream::{self, LocalBoxStream};
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::watch;

/// The live streams of this instance: one switch ends them all when the instance shuts down.
#[derive(Debug, Clone)]
pub struct LiveStreams {
    closing: Arc<watch::Sender<bool>>,
}

impl Default for LiveStreams {
    fn default() -> Self {
        Self {
            closing: Arc::new(watch::channel(false).0),
        }
    }
}

impl LiveStreams {
    /// Ends every open stream with `end` (reason `shutdown`), and any opened from now on at once.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`LiveStreams::close_all`] was called (at once if it already was).
    fn closed(&self) -> impl Future<Output = ()> + use<> {
        let mut closing = self.closing.subscribe();
        async move {
            // An error means the switch is gone with the server: nothing will close the stream.
            if closing.wait_for(|closed| *closed).await.is_err() {
                future::pending::<()>().await;
            }
        }
    }
}

/// The first of the ends of a stream opened with a token valid until `expires_at`.
pub(crate) fn first_end(
    live: &LiveStreams,
    announced: impl Stream<Item = StreamEnd> + Unpin + 'static,
    expires_at: DateTime<Utc>,
) -> impl Future<Output = StreamEnd> + 'static {
    let shutdown = live.closed();
    let expiry = async move {
        let left = (expires_at - Utc::now()).to_std().unwrap_or_default();
        actix_web::rt::time::sleep(left).await;
    };
    let announced = async move {
        match announced.into_future().await {
            (Some(end), _) => end,
            // The subscription is gone: nothing more will be announced.
            (None, _) => future::pending().await,
        }
    };
    async move {
        // Shutdown first when several are due together: it is the one the client must act on at once.
        futures::select_biased! {
            () = shutdown.fuse() => StreamEnd::Shutdown,
            end = announced.fuse() => end,
            () = expiry.fuse() => StreamEnd::TokenExpired,
        }
    }
}

/// The final frame: `event: end` with the reason and whether the client should reconnect.
pub(crate) fn end_frame(end: StreamEnd) -> Bytes {
    Bytes::from(format!(
        "event: end\ndata: {{\"reason\":\"{}\",\"reconnect\":{}}}\n\n",
        end.as_str(),
        end.reconnect()
    ))
}

/// `body` until `end` resolves, then the [`end_frame`], then nothing.
pub(crate) fn until_end<E: 'static>(
    body: impl Stream<Item = Result<Bytes, E>> + 'static,
    end: impl Future<Output = StreamEnd> + 'static,
) -> impl Stream<Item = Result<Bytes, E>> {
    type Running<E> = (
        LocalBoxStream<'static, Result<Bytes, E>>,
        Pin<Box<dyn Future<Output = StreamEnd>>>,
    );
    let start: Option<Running<E>> = Some((body.boxed_local(), Box::pin(end)));
    stream::unfold(start, |state| async move {
        let (mut body, end) = state?;
        match future::select(end, body.next()).await {
            Either::Left((end, _)) => Some((Ok(end_frame(end)), None)),
            Either::Right((Some(item), end)) => Some((item, Some((body, end)))),
            Either::Right((None, _)) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn text(frames: Vec<Result<Bytes, ()>>) -> String {
        frames
            .into_iter()
            .map(|f| String::from_utf8(f.expect("a frame").to_vec()).expect("utf-8"))
            .collect()
    }

    #[actix_web::test]
    async fn a_closed_instance_ends_its_streams_with_a_reconnect_event() {
        let live = LiveStreams::default();
        let endless = stream::iter([Ok(Bytes::from_static(b"event: queue\ndata: {}\n\n"))])
            .chain(stream::pending());
        let end = first_end(
            &live,
            stream::pending(),
            Utc::now() + chrono::Duration::hours(1),
        );
        let mut body = Box::pin(until_end(endless, end));
        let first = body.next().await.expect("the board");
        assert_eq!(text(vec![first]), "event: queue\ndata: {}\n\n");
        live.close_all();
        let rest = tokio::time::timeout(Duration::from_secs(5), body.collect::<Vec<_>>())
            .await
            .expect("the stream ends");
        assert_eq!(
            text(rest),
            "event: end\ndata: {\"reason\":\"shutdown\",\"reconnect\":true}\n\n"
        );
        // A stream opened once closing has begun ends at once.
        let late = until_end(
            stream::pending::<Result<Bytes, ()>>(),
            first_end(
                &live,
                stream::pending(),
                Utc::now() + chrono::Duration::hours(1),
            ),
        );
        assert_eq!(
            text(late.collect().await),
            "event: end\ndata: {\"reason\":\"shutdown\",\"reconnect\":true}\n\n"
        );
    }

    #[actix_web::test]
    async fn an_expired_token_or_an_announced_logout_ends_the_stream() {
        let live = LiveStreams::default();
        let expired = first_end(&live, stream::pending(), Utc::now());
        assert_eq!(expired.await, StreamEnd::TokenExpired);
        let logged_out = first_end(
            &live,
            stream::iter([StreamEnd::LoggedOut]),
            Utc::now() + chrono::Duration::hours(1),
        );
        assert_eq!(logged_out.await, StreamEnd::LoggedOut);
        assert_eq!(
            end_frame(StreamEnd::Deactivated),
            "event: end\ndata: {\"reason\":\"deactivated\",\"reconnect\":false}\n\n"
        );
    }
}
