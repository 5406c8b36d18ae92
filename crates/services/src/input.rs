//! Parsing of the raw values that arrive from clients into typed ones, with field errors.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use clinicflow_domain::InvalidValue;
use uuid::Uuid;

/// Longest cursor accepted: ample for any key this service makes, and a bound on what a
/// client can make it decode.
const MAX_CURSOR_LEN: usize = 2048;

/// Parses an RFC 3339 instant; an offset is required so that no instant is guessed.
pub fn instant(raw: &str) -> Result<DateTime<Utc>, InvalidValue> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            InvalidValue::new(
                "must be an RFC 3339 timestamp with an offset, such as 2026-12-01T08:00:00Z",
            )
        })
}

/// Parses a calendar date `YYYY-MM-DD`.
pub fn date(raw: &str) -> Result<NaiveDate, InvalidValue> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| InvalidValue::new("must be a date such as 2026-12-01"))
}

/// Parses a local wall-clock time `HH:MM`.
pub fn time(raw: &str) -> Result<NaiveTime, InvalidValue> {
    NaiveTime::parse_from_str(raw.trim(), "%H:%M")
        .map_err(|_| InvalidValue::new("must be a time such as 09:30"))
}

/// Parses a UUID.
pub fn id(raw: &str) -> Result<Uuid, InvalidValue> {
    Uuid::parse_str(raw.trim()).map_err(|_| InvalidValue::new("must be a UUID"))
}

/// An opaque keyset cursor for a list of `kind`: URL-safe base64 of the kind and the key's
/// `parts`, each prefixed with its length, so that any text (a name with any character) comes
/// back exactly as it went in.
pub fn cursor(kind: &str, parts: &[&str]) -> String {
    let mut raw = String::new();
    for part in std::iter::once(kind).chain(parts.iter().copied()) {
        raw.push_str(&part.len().to_string());
        raw.push(':');
        raw.push_str(part);
    }
    URL_SAFE_NO_PAD.encode(raw)
}

/// Why a cursor was refused: whatever is wrong with it, the client's remedy is the same.
pub fn not_a_cursor() -> InvalidValue {
    InvalidValue::new("is not a cursor of this list; start again without one")
}

/// The `N` parts of a cursor that [`cursor`] made for a list of `kind`.
pub fn cursor_parts<const N: usize>(raw: &str, kind: &str) -> Result<[String; N], InvalidValue> {
    let raw = raw.trim();
    if raw.len() > MAX_CURSOR_LEN {
        return Err(not_a_cursor());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| not_a_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| not_a_cursor())?;
    let mut rest = text.as_str();
    let mut parts = Vec::with_capacity(N + 1);
    while !rest.is_empty() {
        let (len, tail) = rest.split_once(':').ok_or_else(not_a_cursor)?;
        let len: usize = len.parse().map_err(|_| not_a_cursor())?;
        let part = tail.get(..len).ok_or_else(not_a_cursor)?;
        parts.push(part.to_owned());
        rest = &tail[len..];
    }
    if parts.first().map(String::as_str) != Some(kind) {
        return Err(not_a_cursor());
    }
    parts.remove(0);
    parts.try_into().map_err(|_| not_a_cursor())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_any_text_and_name_their_list() {
        let parts = ["Müller:Lüdenscheid", "", "12:3"];
        let made = cursor("patients", &parts);
        assert!(
            made.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(
            cursor_parts::<3>(&made, "patients").expect("round trip"),
            parts
        );
        assert!(cursor_parts::<3>(&made, "appointments").is_err());
        assert!(cursor_parts::<2>(&made, "patients").is_err());
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        for raw in [
            "not base64!",
            "AAAA",
            &URL_SAFE_NO_PAD.encode("8:patients99:short"),
            &URL_SAFE_NO_PAD.encode("8:patients1"),
            &URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
            &"A".repeat(MAX_CURSOR_LEN + 4),
        ] {
            assert!(cursor_parts::<1>(raw, "patients").is_err(), "{raw}");
        }
    }

    #[test]
    fn instants_need_an_offset() {
        assert!(instant("2026-12-01T08:00:00Z").is_ok());
        assert!(instant("2026-12-01T09:00:00+01:00").is_ok());
        assert!(instant("2026-12-01T08:00:00").is_err());
        assert!(instant("tomorrow").is_err());
    }

    #[test]
    fn dates_and_times_parse_strictly() {
        assert!(date("2026-02-29").is_err());
        assert!(date("2028-02-29").is_ok());
        assert!(time("24:00").is_err());
        assert!(time("09:30").is_ok());
    }
}
