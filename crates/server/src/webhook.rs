//! The `webhook` channel: signed HTTP POSTs of outbox messages to a clinic's receiver, and the
//! router that picks a clinic's channel.
//!
//! A request carries one or more messages as a JSON array. Its signature is HMAC-SHA256,
//! keyed with the clinic's secret, over `"{timestamp}.{body}"`; receivers recompute it, compare
//! in constant time and refuse timestamps far from their own clock, which stops replays. See
//! docs/api.md ("Webhooks") for the receiver's side.
//!
//! Where a webhook may point is the operator's [`WebhookPolicy`], checked again at every
//! delivery: the URL's scheme and written address before the request, and every address a
//! name resolves to inside the client's resolver ([`CheckedResolver`]), so the connection goes
//! only to addresses that were just checked; no later lookup can swap in another one.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clinicflow_domain::webhook::Host;
use clinicflow_domain::{
    AttemptOutcome, Endpoint, OutboxMessage, WebhookEndpoint, WebhookPolicy, WebhookSecret,
};
use clinicflow_ports::{Clock, Notifier};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::dispatcher::LogNotifier;

/// The header with the Unix time (seconds) the request was signed at.
pub const TIMESTAMP_HEADER: &str = "clinicflow-timestamp";
/// The header with the signature: `v1=` and the lowercase hex HMAC-SHA256.
pub const SIGNATURE_HEADER: &str = "clinicflow-signature";

/// The signature of a request body signed at `timestamp` (Unix seconds), as sent in
/// [`SIGNATURE_HEADER`].
pub fn signature(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// How long a receiver gets.
#[derive(Debug, Clone, Copy)]
pub struct WebhookTimeouts {
    /// To open the connection.
    pub connect: Duration,
    /// For the whole request, answer included.
    pub request: Duration,
}

/// A webhook target the policy refuses, found while resolving its name.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetRefused(String);

/// The client's resolver: resolves a name, checks every address against the policy, and
/// hands the client only checked addresses (all or none).
#[derive(Debug)]
pub struct CheckedResolver {
    policy: Arc<WebhookPolicy>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let lookup = host.clone();
            // The system resolver (getaddrinfo), as reqwest's default does, off the runtime.
            let found: Vec<SocketAddr> =
                tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs())
                    .await??
                    .collect();
            let addresses: Vec<IpAddr> = found.iter().map(SocketAddr::ip).collect();
            policy
                .check_resolved(&host, &addresses)
                .map_err(|e| TargetRefused(e.0))?;
            let checked: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(checked)
        })
    }
}

/// Delivers messages to clinics' webhooks.
#[derive(Clone)]
pub struct WebhookNotifier {
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    request_timeout: Duration,
    policy: Arc<WebhookPolicy>,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    /// A notifier signing with `clock`'s time, giving up after `timeouts`, and calling only
    /// receivers `policy` allows.
    pub fn new(
        clock: Arc<dyn Clock>,
        timeouts: WebhookTimeouts,
        policy: WebhookPolicy,
    ) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            // A redirect would send a signed body somewhere the clinic did not configure.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, past the checked resolver.
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
            }))
            .user_agent(concat!("clinicflow/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            clock,
            request_timeout: timeouts.request,
            policy,
        })
    }

    /// POSTs `messages` as one signed JSON array; the receiver's answer decides every message alike.
    pub async fn post(
        &self,
        webhook: &WebhookEndpoint,
        messages: &[OutboxMessage],
    ) -> AttemptOutcome {
        // The URL was checked when it was set, but the policy may have changed since; an
        // address written in the URL never reaches the resolver, so it is checked here.
        if let Err(e) = self.policy.check_url(&webhook.url) {
            return AttemptOutcome::Refused(format!("webhook target refused: {e}"));
        }
        if let Host::Ip(ip) = webhook.url.host()
            && let Err(e) = self.policy.check_address(ip)
        {
            return AttemptOutcome::Refused(format!("webhook target refused: {e}"));
        }
        let mut body =
            Vec::with_capacity(messages.iter().map(|m| m.payload.len() + 1).sum::<usize>() + 2);
        body.push(b'[');
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(m.payload.as_bytes());
        }
        body.push(b']');
        let timestamp = self.clock.now().timestamp();
        let signed = signature(&webhook.secret, timestamp, &body);
        let answer = self
            .client
            .post(webhook.url.as_str())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signed)
            .body(body)
            .send()
            .await;
        match answer {
            Ok(response) => outcome_of(response.status()),
            Err(e) if refused_target(&e).is_some() => AttemptOutcome::Refused(format!(
                "webhook target refused: {}",
                refused_target(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )),
            // The error's text names the URL, which may carry a receiver's token: keep it out.
            Err(e) if e.is_timeout() => AttemptOutcome::Retry(format!(
                "no answer within {} s",
                self.request_timeout.as_secs_f64()
            )),
            Err(e) if e.is_connect() => {
                AttemptOutcome::Retry("could not connect to the receiver".to_owned())
            }
            Err(e) => AttemptOutcome::Retry(format!("request failed: {}", e.without_url())),
        }
    }
}

/// The policy's refusal inside a failed request, if that is why it failed.
fn refused_target(e: &reqwest::Error) -> Option<&TargetRefused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<TargetRefused>() {
            return Some(refused);
        }
        source = err.source();
    }
    None
}

/// What a receiver's status means: 2xx delivered; 408, 429 and 5xx worth another try; any
/// other answer (redirects included) a refusal that trying again would not change.
pub fn outcome_of(status: reqwest::StatusCode) -> AttemptOutcome {
    let code = status.as_u16();
    if status.is_success() {
        AttemptOutcome::Delivered
    } else if code == 408 || code == 429 || status.is_server_error() {
        AttemptOutcome::Retry(format!("receiver answered {code}"))
    } else if status.is_redirection() {
        AttemptOutcome::Refused(format!(
            "receiver answered {code}; redirects are not followed"
        ))
    } else {
        AttemptOutcome::Refused(format!("receiver answered {code}"))
    }
}

/// Sends each clinic's messages through its channel: the webhook when it has one, else the log.
#[derive(Debug, Clone)]
pub struct Channels {
    /// The `webhook` channel.
    pub webhook: WebhookNotifier,
    /// The `log` channel.
    pub log: LogNotifier,
}

#[async_trait]
impl Notifier for Channels {
    async fn deliver(
        &self,
        endpoint: &Endpoint,
        messages: &[OutboxMessage],
    ) -> Vec<AttemptOutcome> {
        match endpoint {
            Endpoint::Log => self.log.deliver(endpoint, messages).await,
            Endpoint::Webhook(webhook) => {
                let outcome = self.webhook.post(webhook, messages).await;
                vec![outcome; messages.len()]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_delivered_retry_or_refused() {
        let of = |code: u16| outcome_of(reqwest::StatusCode::from_u16(code).expect("valid"));
        for code in [200, 201, 202, 204] {
            assert_eq!(of(code), AttemptOutcome::Delivered);
        }
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(of(code), AttemptOutcome::Retry(_)),
                "{code} retries"
            );
        }
        for code in [301, 302, 400, 401, 403, 404, 410, 413, 422] {
            assert!(
                matches!(of(code), AttemptOutcome::Refused(_)),
                "{code} is refused"
            );
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Worked out independently, as a receiver would:
        // printf '1700000000.[]' | openssl dgst -sha256 -hmac "whsec_$(printf '0%.0s' {1..64})"
        let secret = WebhookSecret::from_random([0; 32]);
        let signed = signature(&secret, 1_700_000_000, b"[]");
        assert_eq!(
            signed,
            "v1=6593811ce061bda82d5cf0769e7e9f84de75af400b1c6de882ce3a1031bc0308"
        );
        assert_ne!(signed, signature(&secret, 1_700_000_001, b"[]"));
        assert_ne!(signed, signature(&secret, 1_700_000_000, b"[ ]"));
        assert_ne!(
            signed,
            signature(&WebhookSecret::from_random([1; 32]), 1_700_000_000, b"[]")
        );
    }
}
