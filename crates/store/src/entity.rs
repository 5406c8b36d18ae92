//! SeaORM entities, one module per table. They are the store's private view of the
//! schema in `clinicflow-migration`; the repository modules map them to and from domain
//! types, and nothing outside this crate sees them.

pub(crate) mod appointment;
pub(crate) mod clinic;
pub(crate) mod patient;
pub(crate) mod practitioner;
pub(crate) mod practitioner_specialty;
pub(crate) mod schedule;
pub(crate) mod schedule_exception;
pub(crate) mod schedule_rule;
pub(crate) mod user;

use chrono::{DateTime, SubsecRound, Utc};

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
