//! Appointments: the status machine and the booking rules.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use crate::patient::clean_text;
use crate::{AppointmentId, ClinicId, Interval, InvalidValue, PatientId, PractitionerId, UserId};

/// Bounds on an appointment's length in minutes.
pub const DURATION_MINUTES: std::ops::RangeInclusive<u32> = 5..=720;

/// The longest an appointment can last.
///
/// Stores use it to bound an overlap search from below: an appointment that starts more
/// than this before a span has ended before it, so the search never walks the history.
pub fn longest() -> Duration {
    Duration::minutes(i64::from(*DURATION_MINUTES.end()))
}

/// How soon the patient needs to be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Urgency {
    /// A planned visit.
    Routine,
    /// Should be seen soon.
    Urgent,
    /// Must be seen at once.
    Emergency,
}

impl Urgency {
    /// Every urgency, least urgent first.
    pub const ALL: [Urgency; 3] = [Urgency::Routine, Urgency::Urgent, Urgency::Emergency];

    /// The stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::Urgent => "urgent",
            Urgency::Emergency => "emergency",
        }
    }
}

impl FromStr for Urgency {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "routine" => Ok(Urgency::Routine),
            "urgent" => Ok(Urgency::Urgent),
            "emergency" => Ok(Urgency::Emergency),
            _ => Err(InvalidValue::new(
                "must be one of routine, urgent, emergency",
            )),
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an appointment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppointmentStatus {
    /// Booked, not yet confirmed by the patient.
    Booked,
    /// Confirmed by the patient.
    Confirmed,
    /// The patient has arrived.
    CheckedIn,
    /// The visit is under way.
    InProgress,
    /// The visit is over.
    Completed,
    /// Cancelled before it happened.
    Cancelled,
    /// The patient did not come.
    NoShow,
}

impl AppointmentStatus {
    /// Every status, in life order.
    pub const ALL: [AppointmentStatus; 7] = [
        AppointmentStatus::Booked,
        AppointmentStatus::Confirmed,
        AppointmentStatus::CheckedIn,
        AppointmentStatus::InProgress,
        AppointmentStatus::Completed,
        AppointmentStatus::Cancelled,
        AppointmentStatus::NoShow,
    ];

    /// The stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::Confirmed => "confirmed",
            AppointmentStatus::CheckedIn => "checked_in",
            AppointmentStatus::InProgress => "in_progress",
            AppointmentStatus::Completed => "completed",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::NoShow => "no_show",
        }
    }

    /// Whether an appointment in this status holds its time (takes part in the no-overlap rule).
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            AppointmentStatus::Booked
                | AppointmentStatus::Confirmed
                | AppointmentStatus::CheckedIn
                | AppointmentStatus::InProgress
        )
    }

    /// The statuses this one may move to.
    pub fn allowed_moves(&self) -> &'static [AppointmentStatus] {
        use AppointmentStatus::*;
        match self {
            Booked => &[Confirmed, Cancelled, NoShow],
            Confirmed => &[CheckedIn, Cancelled, NoShow],
            CheckedIn => &[InProgress],
            InProgress => &[Completed],
            Completed | Cancelled | NoShow => &[],
        }
    }
}

impl FromStr for AppointmentStatus {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AppointmentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                InvalidValue::new(
                    "must be one of booked, confirmed, checked_in, in_progress, completed, cancelled, no_show",
                )
            })
    }
}

impl fmt::Display for AppointmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status move the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IllegalTransition {
    /// The move is not in the machine at all.
    #[error("an appointment that is {from} cannot become {to}")]
    NotAllowed {
        /// Current status.
        from: AppointmentStatus,
        /// Requested status.
        to: AppointmentStatus,
        /// Moves that are allowed from `from`.
        allowed: Vec<AppointmentStatus>,
    },
    /// A no-show may only be recorded once the grace period after the start has passed.
    #[error("a no-show can be recorded from {allowed_from} on")]
    NoShowTooEarly {
        /// First instant at which the no-show may be recorded.
        allowed_from: DateTime<Utc>,
    },
}

/// An appointment of one patient with one practitioner. Its `Debug` shows whether a reason
/// was given, not the reason, which may describe the patient's health.
#[derive(Clone, PartialEq)]
pub struct Appointment {
    /// Identity.
    pub id: AppointmentId,
    /// Owning clinic.
    pub clinic_id: ClinicId,
    /// The patient.
    pub patient_id: PatientId,
    /// The practitioner.
    pub practitioner_id: PractitionerId,
    /// When, in UTC.
    pub interval: Interval,
    /// How soon.
    pub urgency: Urgency,
    /// Why the patient comes.
    pub reason: Option<String>,
    /// Life-cycle status.
    pub status: AppointmentStatus,
    /// Optimistic-concurrency version, raised on every change.
    pub version: i32,
    /// The appointment this one replaced by a reschedule.
    pub rescheduled_from: Option<AppointmentId>,
    /// The appointment that replaced this one by a reschedule.
    pub rescheduled_to: Option<AppointmentId>,
    /// Who cancelled it.
    pub cancelled_by: Option<UserId>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// Whether it was booked outside the normal rules by a privileged user.
    pub overbooked: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Soft-deletion time.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for Appointment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Appointment")
            .field("id", &self.id)
            .field("clinic_id", &self.clinic_id)
            .field("patient_id", &self.patient_id)
            .field("practitioner_id", &self.practitioner_id)
            .field("interval", &self.interval)
            .field("urgency", &self.urgency)
            .field("reason", &crate::redacted(&self.reason))
            .field("status", &self.status)
            .field("version", &self.version)
            .field("rescheduled_from", &self.rescheduled_from)
            .field("rescheduled_to", &self.rescheduled_to)
            .field("cancelled_by", &self.cancelled_by)
            .field("cancel_reason", &crate::redacted(&self.cancel_reason))
            .field("overbooked", &self.overbooked)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("deleted_at", &self.deleted_at)
            .finish()
    }
}

impl Appointment {
    /// Moves to `to` if the machine allows it at `now`; bumps the version and `updated_at`.
    pub fn transition(
        &mut self,
        to: AppointmentStatus,
        now: DateTime<Utc>,
        no_show_grace: Duration,
    ) -> Result<(), IllegalTransition> {
        let from = self.status;
        if !from.allowed_moves().contains(&to) {
            return Err(IllegalTransition::NotAllowed {
                from,
                to,
                allowed: from.allowed_moves().to_vec(),
            });
        }
        if to == AppointmentStatus::NoShow {
            let allowed_from = self.interval.start() + no_show_grace;
            if now < allowed_from {
                return Err(IllegalTransition::NoShowTooEarly { allowed_from });
            }
        }
        self.status = to;
        self.version += 1;
        self.updated_at = now;
        Ok(())
    }

    /// Whether this appointment holds its time slot.
    pub fn is_active(&self) -> bool {
        self.status.is_active() && self.deleted_at.is_none()
    }
}

/// The longest a check-in window may reach before or after an appointment's start, in minutes.
pub const CHECK_IN_WINDOW_MINUTES: std::ops::RangeInclusive<u32> = 0..=1440;

/// When a clinic lets patients check in for an appointment, relative to its start: from
/// `opens_minutes_before` the start until `closes_minutes_after` it (by default the clinic's
/// no-show grace, so that a check-in stops being possible exactly when a no-show may be
/// recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckInWindow {
    /// Minutes before the start from which check-in is allowed.
    pub opens_minutes_before: u32,
    /// Minutes after the start until which check-in is allowed; `None` follows the clinic's
    /// no-show grace.
    pub closes_minutes_after: Option<u32>,
}

impl Default for CheckInWindow {
    fn default() -> Self {
        Self {
            opens_minutes_before: 60,
            closes_minutes_after: None,
        }
    }
}

/// A check-in outside the clinic's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("check-in for this appointment is possible from {opens_at} until {closes_at}")]
pub struct OutsideCheckInWindow {
    /// The first instant check-in is allowed.
    pub opens_at: DateTime<Utc>,
    /// The instant from which check-in is no longer allowed.
    pub closes_at: DateTime<Utc>,
}

impl CheckInWindow {
    /// Checks one bound of the window in minutes.
    pub fn parse_minutes(minutes: u32) -> Result<u32, InvalidValue> {
        if CHECK_IN_WINDOW_MINUTES.contains(&minutes) {
            Ok(minutes)
        } else {
            Err(InvalidValue::new(format!(
                "must be between {} and {} minutes",
                CHECK_IN_WINDOW_MINUTES.start(),
                CHECK_IN_WINDOW_MINUTES.end()
            )))
        }
    }

    /// The window of an appointment starting at `start`: `[opens_at, closes_at)`.
    pub fn bounds(
        &self,
        start: DateTime<Utc>,
        no_show_grace_minutes: u32,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let after = self.closes_minutes_after.unwrap_or(no_show_grace_minutes);
        (
            start - Duration::minutes(i64::from(self.opens_minutes_before)),
            start + Duration::minutes(i64::from(after)),
        )
    }

    /// Whether a check-in at `now` for an appointment starting at `start` lies in the window.
    pub fn check(
        &self,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
        no_show_grace_minutes: u32,
    ) -> Result<(), OutsideCheckInWindow> {
        let (opens_at, closes_at) = self.bounds(start, no_show_grace_minutes);
        if opens_at <= now && now < closes_at {
            Ok(())
        } else {
            Err(OutsideCheckInWindow {
                opens_at,
                closes_at,
            })
        }
    }
}

/// Parses an optional free-text reason (at most 500 characters); blank means none.
pub fn parse_reason(raw: Option<&str>) -> Result<Option<String>, InvalidValue> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => clean_text(s, 500).map(Some),
    }
}

/// Checks a requested length in minutes.
pub fn parse_duration_minutes(minutes: u32) -> Result<Duration, InvalidValue> {
    if DURATION_MINUTES.contains(&minutes) {
        Ok(Duration::minutes(i64::from(minutes)))
    } else {
        Err(InvalidValue::new(format!(
            "must be between {} and {} minutes",
            DURATION_MINUTES.start(),
            DURATION_MINUTES.end()
        )))
    }
}

/// Checks that a start time lies on a whole minute, as every slot does.
pub fn parse_start(at: DateTime<Utc>) -> Result<DateTime<Utc>, InvalidValue> {
    use chrono::Timelike;
    if at.second() != 0 || at.nanosecond() != 0 {
        return Err(InvalidValue::new("must lie on a whole minute"));
    }
    Ok(at)
}

/// Why a booking cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingViolation {
    /// The start lies before now.
    #[error("the appointment would start in the past")]
    InPast,
    /// The interval is not inside the practitioner's availability, or falls in time off.
    #[error("the practitioner is not available then")]
    OutsideAvailability,
    /// The practitioner already has an active appointment then.
    #[error("the practitioner is already booked from {} to {}", .with.start(), .with.end())]
    PractitionerBusy {
        /// The conflicting interval (including the practitioner's buffer).
        with: Interval,
    },
    /// The patient already has an active appointment then.
    #[error("the patient already has an appointment from {} to {}", .with.start(), .with.end())]
    PatientBusy {
        /// The conflicting interval.
        with: Interval,
    },
}

/// Everything the booking rules look at, gathered by the caller.
#[derive(Debug, Clone)]
pub struct BookingRequest<'a> {
    /// The requested time.
    pub interval: Interval,
    /// The present instant.
    pub now: DateTime<Utc>,
    /// Whether a privileged user waives the availability and past rules.
    pub overbook: bool,
    /// Whether the interval lies inside the practitioner's availability.
    pub available: bool,
    /// The practitioner's buffer after each appointment.
    pub buffer: Duration,
    /// The practitioner's active appointments near the interval.
    pub practitioner_busy: &'a [Interval],
    /// The patient's active appointments near the interval.
    pub patient_busy: &'a [Interval],
}

impl BookingRequest<'_> {
    /// Applies the booking rules of the design in a fixed order: past, availability, practitioner, patient.
    ///
    /// Overlap is never waived, not even by an overbooking user: it is the invariant the database enforces.
    pub fn check(&self) -> Result<(), BookingViolation> {
        if !self.overbook {
            if self.interval.start() < self.now {
                return Err(BookingViolation::InPast);
            }
            if !self.available {
                return Err(BookingViolation::OutsideAvailability);
            }
        }
        // The buffer is the practitioner's own rule, so an overbooking user may waive it.
        let buffer = if self.overbook {
            Duration::zero()
        } else {
            self.buffer
        };
        if let Some(with) = self
            .practitioner_busy
            .iter()
            .find(|b| b.widened(buffer, buffer).overlaps(&self.interval))
        {
            return Err(BookingViolation::PractitionerBusy { with: *with });
        }
        if let Some(with) = self
            .patient_busy
            .iter()
            .find(|b| b.overlaps(&self.interval))
        {
            return Err(BookingViolation::PatientBusy { with: *with });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0)
            .single()
            .expect("valid")
    }

    fn iv(a: (u32, u32), b: (u32, u32)) -> Interval {
        Interval::new(at(a.0, a.1), at(b.0, b.1)).expect("non-empty")
    }

    fn appointment(status: AppointmentStatus) -> Appointment {
        Appointment {
            id: AppointmentId::from_uuid(uuid::Uuid::nil()),
            clinic_id: ClinicId::from_uuid(uuid::Uuid::nil()),
            patient_id: PatientId::from_uuid(uuid::Uuid::nil()),
            practitioner_id: PractitionerId::from_uuid(uuid::Uuid::nil()),
            interval: iv((9, 0), (9, 30)),
            urgency: Urgency::Routine,
            reason: None,
            status,
            version: 1,
            rescheduled_from: None,
            rescheduled_to: None,
            cancelled_by: None,
            cancel_reason: None,
            overbooked: false,
            created_at: at(0, 0),
            updated_at: at(0, 0),
            deleted_at: None,
        }
    }

    #[test]
    fn debug_hides_the_reasons() {
        let a = Appointment {
            reason: Some("chest pain since Tuesday".into()),
            cancel_reason: Some("admitted to hospital".into()),
            ..appointment(AppointmentStatus::Cancelled)
        };
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("chest") && !shown.contains("hospital"),
            "{shown}"
        );
        assert!(
            shown.contains("Cancelled") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn the_happy_path_runs_from_booked_to_completed() {
        let mut a = appointment(AppointmentStatus::Booked);
        for to in [
            AppointmentStatus::Confirmed,
            AppointmentStatus::CheckedIn,
            AppointmentStatus::InProgress,
            AppointmentStatus::Completed,
        ] {
            a.transition(to, at(9, 0), Duration::minutes(15))
                .expect("allowed move");
        }
        assert_eq!(a.status, AppointmentStatus::Completed);
        assert_eq!(a.version, 5);
    }

    #[test]
    fn an_illegal_move_names_the_allowed_ones() {
        let mut a = appointment(AppointmentStatus::Booked);
        let err = a
            .transition(
                AppointmentStatus::Completed,
                at(9, 0),
                Duration::minutes(15),
            )
            .expect_err("booked cannot complete");
        assert_eq!(
            err,
            IllegalTransition::NotAllowed {
                from: AppointmentStatus::Booked,
                to: AppointmentStatus::Completed,
                allowed: vec![
                    AppointmentStatus::Confirmed,
                    AppointmentStatus::Cancelled,
                    AppointmentStatus::NoShow
                ],
            }
        );
        assert_eq!(a.status, AppointmentStatus::Booked);
        assert_eq!(a.version, 1);
    }

    #[test]
    fn a_no_show_waits_for_the_grace_period() {
        let mut a = appointment(AppointmentStatus::Confirmed);
        let grace = Duration::minutes(15);
        assert_eq!(
            a.transition(AppointmentStatus::NoShow, at(9, 14), grace),
            Err(IllegalTransition::NoShowTooEarly {
                allowed_from: at(9, 15)
            })
        );
        assert!(
            a.transition(AppointmentStatus::NoShow, at(9, 15), grace)
                .is_ok()
        );
    }

    #[test]
    fn terminal_statuses_allow_nothing_and_are_inactive() {
        for s in [
            AppointmentStatus::Completed,
            AppointmentStatus::Cancelled,
            AppointmentStatus::NoShow,
        ] {
            assert!(s.allowed_moves().is_empty());
            assert!(!s.is_active());
        }
    }

    #[test]
    fn check_in_opens_an_hour_before_and_closes_with_the_no_show_grace_by_default() {
        let window = CheckInWindow::default();
        let start = at(9, 0);
        assert_eq!(window.check(start, at(8, 0), 15), Ok(()));
        assert_eq!(window.check(start, at(9, 14), 15), Ok(()));
        let outside = OutsideCheckInWindow {
            opens_at: at(8, 0),
            closes_at: at(9, 15),
        };
        assert_eq!(window.check(start, at(7, 59), 15), Err(outside));
        // The window closes exactly when a no-show may be recorded.
        assert_eq!(window.check(start, at(9, 15), 15), Err(outside));
        // Tomorrow's appointment cannot be checked in today.
        assert!(
            window
                .check(start + Duration::days(1), at(9, 0), 15)
                .is_err()
        );
    }

    #[test]
    fn a_clinic_may_set_both_bounds_of_its_check_in_window() {
        let window = CheckInWindow {
            opens_minutes_before: 30,
            closes_minutes_after: Some(45),
        };
        assert_eq!(window.bounds(at(9, 0), 15), (at(8, 30), at(9, 45)));
        assert!(window.check(at(9, 0), at(8, 29), 15).is_err());
        assert!(window.check(at(9, 0), at(9, 44), 15).is_ok());
        assert!(CheckInWindow::parse_minutes(1440).is_ok());
        assert!(CheckInWindow::parse_minutes(1441).is_err());
    }

    #[test]
    fn statuses_round_trip() {
        for s in AppointmentStatus::ALL {
            assert_eq!(s.as_str().parse::<AppointmentStatus>(), Ok(s));
        }
    }

    fn request<'a>(interval: Interval, p: &'a [Interval], q: &'a [Interval]) -> BookingRequest<'a> {
        BookingRequest {
            interval,
            now: at(8, 0),
            overbook: false,
            available: true,
            buffer: Duration::zero(),
            practitioner_busy: p,
            patient_busy: q,
        }
    }

    #[test]
    fn a_free_available_future_interval_books() {
        assert_eq!(
            request(iv((9, 0), (9, 30)), &[iv((9, 30), (10, 0))], &[]).check(),
            Ok(())
        );
    }

    #[test]
    fn booking_in_the_past_is_rejected_unless_overbooked() {
        let mut r = request(iv((7, 0), (7, 30)), &[], &[]);
        assert_eq!(r.check(), Err(BookingViolation::InPast));
        r.overbook = true;
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn booking_outside_availability_is_rejected() {
        let mut r = request(iv((9, 0), (9, 30)), &[], &[]);
        r.available = false;
        assert_eq!(r.check(), Err(BookingViolation::OutsideAvailability));
    }

    #[test]
    fn overlap_is_rejected_even_when_overbooking() {
        let busy = [iv((9, 15), (9, 45))];
        let mut r = request(iv((9, 0), (9, 30)), &busy, &[]);
        r.overbook = true;
        assert_eq!(
            r.check(),
            Err(BookingViolation::PractitionerBusy { with: busy[0] })
        );
        let r = request(iv((9, 0), (9, 30)), &[], &busy);
        assert_eq!(
            r.check(),
            Err(BookingViolation::PatientBusy { with: busy[0] })
        );
    }

    #[test]
    fn the_buffer_keeps_a_gap_after_appointments() {
        let busy = [iv((8, 30), (9, 0))];
        let mut r = request(iv((9, 0), (9, 30)), &busy, &[]);
        r.buffer = Duration::minutes(10);
        assert_eq!(
            r.check(),
            Err(BookingViolation::PractitionerBusy { with: busy[0] })
        );
    }

    #[test]
    fn no_default_slot_is_longer_than_the_longest_appointment() {
        // A booking without a length takes the practitioner's slot length; the stores'
        // overlap search relies on that never exceeding `longest()`.
        let slot = Duration::minutes(i64::from(*crate::practitioner::SLOT_MINUTES.end()));
        assert!(slot <= longest());
        assert!(parse_duration_minutes(*DURATION_MINUTES.end()).expect("in range") <= longest());
    }

    #[test]
    fn reasons_and_durations_are_bounded() {
        assert_eq!(parse_reason(Some("  ")), Ok(None));
        assert!(parse_reason(Some(&"x".repeat(501))).is_err());
        assert!(parse_duration_minutes(4).is_err());
        assert!(parse_duration_minutes(721).is_err());
        assert!(parse_start(at(9, 0) + Duration::seconds(1)).is_err());
    }
}
