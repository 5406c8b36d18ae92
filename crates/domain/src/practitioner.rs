//! Practitioners: the people patients are booked with.

use chrono::{DateTime, Utc};

use crate::patient::clean_text;
use crate::{ClinicId, InvalidValue, PersonName, PractitionerId};

/// Bounds on a slot length in minutes.
pub const SLOT_MINUTES: std::ops::RangeInclusive<u32> = 5..=480;
/// Bounds on the buffer between appointments in minutes.
pub const BUFFER_MINUTES: std::ops::RangeInclusive<u32> = 0..=120;

/// A specialty or department code: lower-case letters, digits and dashes, 1 to 64 characters.
pub fn parse_code(raw: &str) -> Result<String, InvalidValue> {
    let s = clean_text(raw, 64)?.to_lowercase();
    if !s
        .chars()
        .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ')
    {
        return Err(InvalidValue::new(
            "may contain only letters, digits, spaces, dashes and underscores",
        ));
    }
    Ok(s)
}

/// Checks a slot length.
pub fn parse_slot_minutes(minutes: u32) -> Result<u32, InvalidValue> {
    if SLOT_MINUTES.contains(&minutes) {
        Ok(minutes)
    } else {
        Err(InvalidValue::new(format!(
            "must be between {} and {} minutes",
            SLOT_MINUTES.start(),
            SLOT_MINUTES.end()
        )))
    }
}

/// Checks a buffer length.
pub fn parse_buffer_minutes(minutes: u32) -> Result<u32, InvalidValue> {
    if BUFFER_MINUTES.contains(&minutes) {
        Ok(minutes)
    } else {
        Err(InvalidValue::new(format!(
            "must be between {} and {} minutes",
            BUFFER_MINUTES.start(),
            BUFFER_MINUTES.end()
        )))
    }
}

/// A practitioner of one clinic.
#[derive(Debug, Clone, PartialEq)]
pub struct Practitioner {
    /// Identity.
    pub id: PractitionerId,
    /// Owning clinic.
    pub clinic_id: ClinicId,
    /// Name.
    pub name: PersonName,
    /// Specialty codes, such as `diagnostics`.
    pub specialties: Vec<String>,
    /// Department code, such as `internal-medicine`.
    pub department: Option<String>,
    /// Default slot length in minutes.
    pub slot_minutes: u32,
    /// Minutes kept free after each appointment.
    pub buffer_minutes: u32,
    /// Whether the practitioner takes new bookings and is offered in slot searches; a
    /// deactivated practitioner keeps their existing appointments.
    pub active: bool,
    /// Optimistic-concurrency version.
    pub version: i32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_lower_cased_and_checked() {
        assert_eq!(
            parse_code(" Internal-Medicine "),
            Ok("internal-medicine".into())
        );
        assert!(parse_code("cardio;drop table").is_err());
        assert!(parse_code("").is_err());
    }

    #[test]
    fn slot_and_buffer_bounds() {
        assert!(parse_slot_minutes(4).is_err());
        assert!(parse_slot_minutes(30).is_ok());
        assert!(parse_buffer_minutes(121).is_err());
        assert!(parse_buffer_minutes(0).is_ok());
    }
}
