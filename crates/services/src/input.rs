//! Parsing of the raw values that arrive from clients into typed ones, with field errors.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use clinicflow_domain::InvalidValue;
use uuid::Uuid;

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

#[cfg(test)]
mod tests {
    use super::*;

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
