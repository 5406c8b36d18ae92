//! SeaORM entities, one module per table. They are the store's private view of the
//! schema in `clinicflow-migration`; the repository modules map them to and from domain
//! types, and nothing outside this crate sees them.

pub(crate) mod appointment;
pub(crate) mod audit_event;
pub(crate) mod clinic;
pub(crate) mod clinic_webhook;
pub(crate) mod encounter;
pub(crate) mod idempotency_key;
pub(crate) mod outbox_message;
pub(crate) mod patient;
pub(crate) mod practitioner;
pub(crate) mod practitioner_specialty;
pub(crate) mod queue_entry;
pub(crate) mod refresh_token;
pub(crate) mod schedule;
pub(crate) mod schedule_exception;
pub(crate) mod schedule_rule;
pub(crate) mod user;

use chrono::{DateTime, Duration, SubsecRound, Utc};

/// The form in which an instant is written: truncated to whole microseconds.
///
/// PostgreSQL keeps microseconds, so truncating on both backends makes a value read back
/// equal on either. On SQLite, sqlx writes an instant as RFC 3339 text with `+00:00` and
/// 0, 3 or 6 fraction digits (as few as the value needs, never trailing zero groups);
/// that text sorts in instant order, which the range queries and the `ends_at > starts_at`
/// check rely on (the contract suite's `stored_instants_compare_in_time_order` checks it).
pub(crate) fn instant(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// The bound to compare stored instants with in `column >= at` or `column < at`: the first
/// whole microsecond not before `at`.
///
/// Stored instants are whole microseconds, so this keeps the comparison exact; passing
/// `at` itself would not, because PostgreSQL's encoding drops the nanoseconds of a bound
/// while SQLite compares them. For `column > at` and `column <= at`, [`instant`] is the exact bound.
pub(crate) fn not_before(at: DateTime<Utc>) -> DateTime<Utc> {
    let truncated = instant(at);
    if truncated < at {
        truncated + Duration::microseconds(1)
    } else {
        truncated
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::{instant, not_before};

    #[test]
    fn instants_are_cut_to_whole_microseconds_and_bounds_rounded_up() {
        let second = Utc
            .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
            .single()
            .expect("valid");
        let odd = second + Duration::nanoseconds(123_456_789);
        assert_eq!(instant(odd), second + Duration::microseconds(123_456));
        assert_eq!(not_before(odd), second + Duration::microseconds(123_457));
        assert_eq!(not_before(second), second);
        assert_eq!(instant(second), second);
    }
}
