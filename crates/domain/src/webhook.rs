//! Where a clinic's outbox messages go: its webhook (URL and signing secret), or the log when
//! it has none. SMS and e-mail providers are reached through the webhook.

use std::fmt;

use crate::InvalidValue;

/// The longest webhook URL accepted.
const MAX_URL_LEN: usize = 2048;

/// An absolute `http` or `https` URL without credentials, to which messages are POSTed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// Parses a URL a receiver can be reached at.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let raw = raw.trim();
        if raw.len() > MAX_URL_LEN {
            return Err(InvalidValue::new(format!(
                "must be at most {MAX_URL_LEN} characters"
            )));
        }
        let url = url::Url::parse(raw)
            .map_err(|e| InvalidValue::new(format!("must be an absolute URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidValue::new("must be an http or https URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidValue::new("must name a host"));
        }
        // Credentials in the URL would be stored and shown in settings; receivers authenticate
        // the sender by the signature instead.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidValue::new(
                "must not carry a user name or password; verify the signature instead",
            ));
        }
        if url.fragment().is_some() {
            return Err(InvalidValue::new("must not have a #fragment"));
        }
        Ok(Self(url))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookUrl").field(&self.0.as_str()).finish()
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// The prefix of every signing secret, so a leaked one is recognisable in a secret scanner.
pub const SECRET_PREFIX: &str = "whsec_";

/// The key a clinic's webhook bodies are signed with (HMAC-SHA256). Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// A secret from 32 random bytes (the caller brings the randomness).
    pub fn from_random(bytes: [u8; 32]) -> Self {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("{SECRET_PREFIX}{hex}"))
    }

    /// A stored secret: the prefix and 64 lowercase hex digits.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let hex = raw
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| InvalidValue::new("not a webhook secret"))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(InvalidValue::new("not a webhook secret"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret itself: the HMAC key, shown to an admin once when made.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first characters, enough for an admin to tell secrets apart.
    pub fn hint(&self) -> String {
        format!("{}…", &self.0[..SECRET_PREFIX.len() + 4])
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret({})", self.hint())
    }
}

/// A clinic's webhook: where to POST and what to sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// The receiver.
    pub url: WebhookUrl,
    /// The signing key.
    pub secret: WebhookSecret,
}

/// Where a clinic's messages are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The structured log: the default when a clinic has no webhook.
    Log,
    /// The clinic's webhook.
    Webhook(WebhookEndpoint),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        assert_eq!(
            WebhookUrl::parse(" https://hooks.example/clinic?x=1 ")
                .expect("valid")
                .as_str(),
            "https://hooks.example/clinic?x=1"
        );
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook").is_ok());
        for bad in [
            "",
            "hooks.example/clinic",
            "ftp://hooks.example/",
            "https://user:pw@hooks.example/",
            "https://hooks.example/#frag",
            "file:///etc/passwd",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad} is refused");
        }
        assert!(WebhookUrl::parse(&format!("https://h.example/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn secrets_round_trip_and_hide_in_debug() {
        let secret = WebhookSecret::from_random([0xab; 32]);
        assert_eq!(secret.expose().len(), SECRET_PREFIX.len() + 64);
        assert_eq!(WebhookSecret::parse(secret.expose()), Ok(secret.clone()));
        assert!(!format!("{secret:?}").contains(&"ab".repeat(8)));
        assert_eq!(secret.hint(), "whsec_abab…");
        assert!(WebhookSecret::parse("whsec_short").is_err());
        assert!(WebhookSecret::parse(&"ab".repeat(32)).is_err());
    }
}
