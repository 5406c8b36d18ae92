//! The transactional outbox: events to deliver to the outside, written in the same transaction
//! as the change that causes them, and delivered at least once with backoff.
//!
//! Randomness stays outside: callers pass the jitter fraction in, so the schedule is a pure
//! function that tests can pin down.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use crate::InvalidValue;

/// Where an outbox message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Accepted by the receiver.
    Delivered,
    /// Given up on after the last attempt or a permanent refusal; kept with its last error.
    Dead,
    /// Withdrawn before delivery (a reminder of a cancelled appointment).
    Cancelled,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Dead,
        DeliveryStatus::Cancelled,
    ];

    /// The stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| InvalidValue::new("must be one of pending, delivered, dead, cancelled"))
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one delivery attempt ended, as the channel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver accepted the message (webhook: 2xx).
    Delivered,
    /// The receiver may accept it later (webhook: 5xx, 408, 429, timeout, connection error).
    Retry(String),
    /// The receiver will never accept it (webhook: other 4xx).
    Refused(String),
}

/// The retry schedule: exponential backoff with full jitter, bounded, for a maximum of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay scale of the first retry.
    pub base: Duration,
    /// Longest delay between attempts.
    pub cap: Duration,
    /// Attempts before a message is dead.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::seconds(5),
            cap: Duration::hours(1),
            max_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1 after the first failure), with full jitter:
    /// a uniform share `jitter` in `[0, 1)` of `min(cap, base * 2^(attempt-1))`.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let ceiling = self
            .base
            .checked_mul(1 << exponent)
            .map_or(self.cap, |d| d.min(self.cap));
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let millis = (ceiling.num_milliseconds() as f64 * jitter).floor() as i64;
        Duration::milliseconds(millis)
    }

    /// What an attempt's outcome makes of a message that has now had `attempts` attempts:
    /// delivered, dead, or pending again at the returned time.
    pub fn after(
        &self,
        outcome: &AttemptOutcome,
        attempts: u32,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> (DeliveryStatus, Option<DateTime<Utc>>) {
        match outcome {
            AttemptOutcome::Delivered => (DeliveryStatus::Delivered, None),
            AttemptOutcome::Refused(_) => (DeliveryStatus::Dead, None),
            AttemptOutcome::Retry(_) if attempts >= self.max_attempts => {
                (DeliveryStatus::Dead, None)
            }
            AttemptOutcome::Retry(_) => (
                DeliveryStatus::Pending,
                Some(now + self.delay(attempts, jitter)),
            ),
        }
    }
}

/// The reminder offsets of a clinic: how long before an appointment's start each reminder goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderOffsets(Vec<Duration>);

impl Default for ReminderOffsets {
    /// 24 hours and 2 hours before the start.
    fn default() -> Self {
        Self(vec![Duration::hours(24), Duration::hours(2)])
    }
}

impl ReminderOffsets {
    /// Offsets in minutes: positive, at most 30 days, at most 5, without repeats.
    pub fn parse(minutes: &[u32]) -> Result<Self, InvalidValue> {
        if minutes.len() > 5 {
            return Err(InvalidValue::new("at most 5 reminders"));
        }
        let mut offsets: Vec<Duration> = Vec::with_capacity(minutes.len());
        for m in minutes {
            if *m == 0 || *m > 30 * 24 * 60 {
                return Err(InvalidValue::new(
                    "each reminder must be 1 minute to 30 days before the start",
                ));
            }
            offsets.push(Duration::minutes(i64::from(*m)));
        }
        offsets.sort_by(|a, b| b.cmp(a));
        offsets.dedup();
        Ok(Self(offsets))
    }

    /// The offsets, longest first.
    pub fn offsets(&self) -> &[Duration] {
        &self.0
    }

    /// The offsets in whole minutes, longest first: what [`ReminderOffsets::parse`] reads.
    pub fn minutes(&self) -> Vec<u32> {
        self.0
            .iter()
            .map(|d| u32::try_from(d.num_minutes()).unwrap_or(u32::MAX))
            .collect()
    }

    /// When each reminder of an appointment starting at `start` is due, as booked at `now`:
    /// reminders whose time has already passed are not scheduled.
    pub fn due_times(&self, start: DateTime<Utc>, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.0
            .iter()
            .map(|o| start - *o)
            .filter(|at| *at > now)
            .collect()
    }
}

/// Whether a reminder may still go out at `now`: never once the appointment has started.
pub fn reminder_still_useful(appointment_start: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now < appointment_start
}

/// What an outbox message announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An appointment was booked.
    BookingConfirmed,
    /// An appointment was cancelled.
    BookingCancelled,
    /// An appointment was moved (its replacement was booked).
    BookingRescheduled,
    /// An appointment is coming up.
    ReminderDue,
    /// A patient was called from the queue.
    PatientCalled,
    /// An appointment was marked a no-show.
    NoShow,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 6] = [
        EventKind::BookingConfirmed,
        EventKind::BookingCancelled,
        EventKind::BookingRescheduled,
        EventKind::ReminderDue,
        EventKind::PatientCalled,
        EventKind::NoShow,
    ];

    /// The stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::BookingConfirmed => "booking.confirmed",
            EventKind::BookingCancelled => "booking.cancelled",
            EventKind::BookingRescheduled => "booking.rescheduled",
            EventKind::ReminderDue => "reminder.due",
            EventKind::PatientCalled => "queue.called",
            EventKind::NoShow => "appointment.no_show",
        }
    }
}

impl FromStr for EventKind {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidValue::new("unknown event kind"))
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event waiting in the outbox, or delivered from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Identity, and the id receivers deduplicate by: the same on every attempt.
    pub id: crate::OutboxMessageId,
    /// The clinic.
    pub clinic_id: crate::ClinicId,
    /// What it announces.
    pub kind: EventKind,
    /// The appointment concerned, if any (reminders are cancelled by it).
    pub appointment_id: Option<crate::AppointmentId>,
    /// The JSON body delivered (ids and times only: receivers look up the rest).
    pub payload: String,
    /// Delivery status.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When written.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000)
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy {
            base: Duration::seconds(5),
            cap: Duration::seconds(60),
            max_attempts: 8,
        };
        let ceilings: Vec<i64> = (1..=6)
            .map(|a| p.delay(a, 0.999_999).num_seconds())
            .collect();
        assert_eq!(ceilings, [4, 9, 19, 39, 59, 59]);
        assert_eq!(p.delay(3, 0.0), Duration::zero());
        assert_eq!(p.delay(u32::MAX, 0.5), Duration::seconds(30));
        assert_eq!(p.delay(1, f64::NAN), Duration::zero());
    }

    #[test]
    fn outcomes_decide_the_next_state() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.after(&AttemptOutcome::Delivered, 1, t0(), 0.5),
            (DeliveryStatus::Delivered, None)
        );
        assert_eq!(
            p.after(&AttemptOutcome::Refused("400".into()), 1, t0(), 0.5),
            (DeliveryStatus::Dead, None)
        );
        let (status, next) = p.after(&AttemptOutcome::Retry("503".into()), 1, t0(), 0.5);
        assert_eq!(
            (status, next),
            (
                DeliveryStatus::Pending,
                Some(t0() + Duration::milliseconds(2500))
            )
        );
        assert_eq!(
            p.after(&AttemptOutcome::Retry("503".into()), 8, t0(), 0.5),
            (DeliveryStatus::Dead, None)
        );
    }

    #[test]
    fn reminders_already_past_are_not_scheduled() {
        let r = ReminderOffsets::default();
        let start = t0() + Duration::hours(5);
        assert_eq!(r.due_times(start, t0()), [start - Duration::hours(2)]);
        assert_eq!(r.due_times(t0() + Duration::days(2), t0()).len(), 2);
        assert!(r.due_times(t0() + Duration::minutes(30), t0()).is_empty());
        assert!(reminder_still_useful(start, t0()));
        assert!(!reminder_still_useful(start, start));
    }

    #[test]
    fn offsets_are_bounded_sorted_and_unique() {
        let r = ReminderOffsets::parse(&[120, 1440, 120]).expect("valid");
        assert_eq!(r.offsets(), [Duration::hours(24), Duration::hours(2)]);
        assert!(ReminderOffsets::parse(&[0]).is_err());
        assert!(ReminderOffsets::parse(&[1, 2, 3, 4, 5, 6]).is_err());
        assert!(ReminderOffsets::parse(&[30 * 24 * 60 + 1]).is_err());
    }

    proptest! {
        #[test]
        fn every_delay_lies_within_zero_and_the_cap(attempt in 1u32..100, jitter in 0.0f64..1.0, base_s in 1i64..60, cap_s in 1i64..7200) {
            let p = RetryPolicy { base: Duration::seconds(base_s), cap: Duration::seconds(cap_s), max_attempts: 8 };
            let d = p.delay(attempt, jitter);
            prop_assert!(d >= Duration::zero() && d <= p.cap);
        }

        #[test]
        fn a_message_is_attempted_at_most_max_attempts_times(max in 1u32..20) {
            let p = RetryPolicy { max_attempts: max, ..RetryPolicy::default() };
            let mut attempts = 0;
            loop {
                attempts += 1;
                let (status, _) = p.after(&AttemptOutcome::Retry("down".into()), attempts, t0(), 0.5);
                if status != DeliveryStatus::Pending {
                    prop_assert_eq!(status, DeliveryStatus::Dead);
                    break;
                }
            }
            prop_assert_eq!(attempts, max);
        }

        #[test]
        fn scheduled_reminders_are_in_the_future_and_before_the_start(
            offsets in proptest::collection::vec(1u32..(30 * 24 * 60), 0..5),
            start_in in -10_000i64..100_000,
        ) {
            let r = ReminderOffsets::parse(&offsets).expect("valid");
            let start = t0() + Duration::minutes(start_in);
            for at in r.due_times(start, t0()) {
                prop_assert!(at > t0() && at < start);
            }
        }
    }
}
