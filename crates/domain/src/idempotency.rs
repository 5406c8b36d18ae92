//! Idempotent writes: the key a client sends with a write it may retry, and the answer
//! remembered under it.
//!
//! A client that loses the answer to a booking cannot know whether it was made; sending the
//! same request again with the same `Idempotency-Key` gives back the first answer instead of
//! booking twice. Keys belong to one user of one clinic, so two clients can never collide.

use chrono::{DateTime, Utc};

use crate::{ClinicId, InvalidValue, UserId};

/// The longest key accepted; a UUID is 36 characters, and clients like to prefix them.
pub const MAX_KEY_LEN: usize = 255;

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a header value; spaces and control characters are refused so that a key cannot
    /// differ from another only by invisible characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() {
            return Err(InvalidValue::new("must not be empty"));
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(InvalidValue::new(format!(
                "must be at most {MAX_KEY_LEN} characters"
            )));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidValue::new(
                "must be visible ASCII characters only (no spaces)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first answer to a write, as the client saw it: given again, byte for byte, to a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// HTTP status code.
    pub status: u16,
    /// The response headers that describe the result (such as `Location` and `ETag`).
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: String,
}

/// A key as claimed by one write, before its answer is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    /// The clinic of the user.
    pub clinic_id: ClinicId,
    /// Whose key.
    pub user_id: UserId,
    /// The key.
    pub key: IdempotencyKey,
    /// A digest of the request (method, path and body), to tell a retry from a different request.
    pub fingerprint: String,
    /// When the claim was made.
    pub created_at: DateTime<Utc>,
    /// From when the key may be used for a new request.
    pub expires_at: DateTime<Utc>,
}

/// What a key's earlier use means for a new request with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The key is new (or its earlier use expired): this request makes the write.
    Fresh,
    /// The same request was answered before: give that answer again.
    Replay(StoredAnswer),
    /// The key was used for a different request.
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_is_a_key() {
        let key = IdempotencyKey::parse("0192f0c4-5b7e-7c1a-9d3e-1f2a3b4c5d6e").expect("valid");
        assert_eq!(key.as_str(), "0192f0c4-5b7e-7c1a-9d3e-1f2a3b4c5d6e");
    }

    #[test]
    fn empty_long_and_invisible_keys_are_refused() {
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(MAX_KEY_LEN)).is_ok());
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse("a\tb").is_err());
        assert!(IdempotencyKey::parse("schlüssel").is_err());
    }
}
