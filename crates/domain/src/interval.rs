//! Half-open UTC time intervals `[start, end)`.

use chrono::{DateTime, Datelike, Duration, Utc};

use crate::InvalidValue;

/// The last year an interval may reach: RFC 3339 writes four-digit years only, and SQLite keeps
/// instants as text, which sorts in time order only while years have four digits.
pub const LAST_YEAR: i32 = 9999;

/// A non-empty half-open interval `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Interval {
    /// Builds an interval; the end must lie after the start, and within [`LAST_YEAR`].
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, InvalidValue> {
        if end <= start {
            return Err(InvalidValue::new("the end must lie after the start"));
        }
        if end.year() > LAST_YEAR {
            return Err(InvalidValue::new(format!(
                "the interval must end within the year {LAST_YEAR}"
            )));
        }
        Ok(Self { start, end })
    }

    /// Builds an interval from a start and a positive length.
    pub fn starting_at(start: DateTime<Utc>, length: Duration) -> Result<Self, InvalidValue> {
        let end = start
            .checked_add_signed(length)
            .ok_or_else(|| InvalidValue::new("the interval ends out of range"))?;
        Self::new(start, end)
    }

    /// Inclusive start.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// Exclusive end.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// Length of the interval.
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    /// Whether the two intervals share at least one instant; touching ends do not overlap.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `other` lies entirely inside this interval.
    pub fn contains(&self, other: &Interval) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// This interval widened by `before` at the start and `after` at the end.
    pub fn widened(&self, before: Duration, after: Duration) -> Interval {
        Interval {
            start: self.start - before,
            end: self.end + after,
        }
    }
}

/// Merges overlapping or touching intervals into a sorted, disjoint list.
pub fn merge(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort();
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for next in intervals {
        match merged.last_mut() {
            Some(last) if next.start <= last.end => {
                if next.end > last.end {
                    last.end = next.end;
                }
            }
            _ => merged.push(next),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid")
            + Duration::minutes(minute)
    }

    fn iv(a: i64, b: i64) -> Interval {
        Interval::new(at(a), at(b)).expect("non-empty")
    }

    #[test]
    fn empty_and_reversed_intervals_are_rejected() {
        assert!(Interval::new(at(5), at(5)).is_err());
        assert!(Interval::new(at(6), at(5)).is_err());
    }

    #[test]
    fn an_interval_may_not_run_past_the_year_9999() {
        let last_evening = Utc
            .with_ymd_and_hms(9999, 12, 31, 23, 30, 0)
            .single()
            .expect("valid");
        assert!(Interval::starting_at(last_evening, Duration::minutes(29)).is_ok());
        assert!(Interval::starting_at(last_evening, Duration::minutes(30)).is_err());
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        assert!(!iv(0, 30).overlaps(&iv(30, 60)));
        assert!(iv(0, 31).overlaps(&iv(30, 60)));
    }

    #[test]
    fn merge_joins_touching_and_overlapping() {
        assert_eq!(
            merge(vec![iv(30, 60), iv(0, 30), iv(90, 100), iv(95, 120)]),
            vec![iv(0, 60), iv(90, 120)]
        );
    }

    fn arb_interval() -> impl Strategy<Value = Interval> {
        (0i64..10_000, 1i64..500).prop_map(|(s, len)| iv(s, s + len))
    }

    proptest! {
        #[test]
        fn overlap_is_symmetric(a in arb_interval(), b in arb_interval()) {
            prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
        }

        #[test]
        fn overlap_matches_a_shared_minute(a in arb_interval(), b in arb_interval()) {
            // Minute-aligned intervals overlap exactly when some minute lies in both.
            let shared = (a.start().timestamp() / 60..a.end().timestamp() / 60)
                .any(|m| m >= b.start().timestamp() / 60 && m < b.end().timestamp() / 60);
            prop_assert_eq!(a.overlaps(&b), shared);
        }

        #[test]
        fn an_interval_overlaps_itself_and_what_contains_it(a in arb_interval(), pad in 0i64..100) {
            prop_assert!(a.overlaps(&a));
            let outer = a.widened(Duration::minutes(pad), Duration::minutes(pad));
            prop_assert!(outer.contains(&a));
            prop_assert!(outer.overlaps(&a));
        }

        #[test]
        fn merged_intervals_are_disjoint_and_cover_the_input(v in proptest::collection::vec(arb_interval(), 0..20)) {
            let merged = merge(v.clone());
            for w in merged.windows(2) {
                prop_assert!(w[0].end() < w[1].start());
            }
            for i in &v {
                prop_assert!(merged.iter().any(|m| m.contains(i)));
            }
        }
    }
}
