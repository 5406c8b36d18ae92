//! The clinic (tenant) and its time zone.

use std::fmt;
use std::str::FromStr;

use chrono_tz::Tz;

use crate::{ClinicId, InvalidValue};

/// An IANA time zone such as `Europe/Berlin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(Tz);

impl TimeZone {
    /// Parses an IANA zone name.
    pub fn parse(name: &str) -> Result<Self, InvalidValue> {
        Tz::from_str(name.trim()).map(Self).map_err(|_| {
            InvalidValue::new(format!(
                "`{name}` is not an IANA time zone such as Europe/Berlin"
            ))
        })
    }

    /// The chrono-tz zone, for conversions.
    pub fn tz(&self) -> Tz {
        self.0
    }

    /// The IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A clinic's display name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicName(String);

impl ClinicName {
    /// Parses a clinic name.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        crate::patient::clean_text(raw, 200).map(Self)
    }
}

impl AsRef<str> for ClinicName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A clinic: the tenant every other record belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Clinic {
    /// Identity.
    pub id: ClinicId,
    /// Display name.
    pub name: ClinicName,
    /// Zone that schedules and "today" are expressed in.
    pub time_zone: TimeZone,
    /// Minutes after an appointment's start before it may be marked a no-show.
    pub no_show_grace_minutes: u32,
    /// Target waits per triage category and the check-in grace.
    pub queue: crate::QueueSettings,
    /// How long before an appointment each reminder goes out.
    pub reminders: crate::ReminderOffsets,
    /// When patients may check in for their appointments.
    pub check_in: crate::CheckInWindow,
    /// Optimistic-concurrency version of the settings, +1 per change.
    pub version: i32,
}

impl Clinic {
    /// Whether a check-in at `now` for an appointment starting at `start` lies in the clinic's
    /// check-in window, whose end defaults to the no-show grace.
    pub fn check_in_allowed(
        &self,
        start: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), crate::OutsideCheckInWindow> {
        self.check_in.check(start, now, self.no_show_grace_minutes)
    }

    /// The clinic-local calendar date of an instant.
    pub fn local_date(&self, at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
        use chrono::TimeZone as _;
        self.time_zone
            .tz()
            .from_utc_datetime(&at.naive_utc())
            .date_naive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iana_zones_parse_and_garbage_does_not() {
        assert_eq!(
            TimeZone::parse("Europe/Berlin").map(|t| t.name()),
            Ok("Europe/Berlin")
        );
        assert!(TimeZone::parse("Mars/Olympus").is_err());
        assert!(TimeZone::parse("").is_err());
    }
}
