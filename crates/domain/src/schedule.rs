//! Weekly schedules in clinic-local time, exceptions in UTC, and the slots and
//! availability derived from them. Slots are derived, never stored.
//!
//! Local times are resolved with chrono-tz so that a 09:00 slot stays 09:00 local
//! across a daylight-saving change, a local time that does not exist (spring forward)
//! is never offered, and one that exists twice (fall back) is offered once, at its
//! first occurrence.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _,
    Utc, Weekday,
};
use chrono_tz::Tz;

use crate::interval::merge;
use crate::practitioner::parse_slot_minutes;
use crate::{Interval, InvalidValue, TimeZone};

/// Longest date range a slot query may span.
pub const MAX_RANGE_DAYS: i64 = 62;

/// Parses a weekday written as `mon` … `sun` (or the full English name).
pub fn parse_weekday(raw: &str) -> Result<Weekday, InvalidValue> {
    Weekday::from_str(raw.trim())
        .map_err(|_| InvalidValue::new("must be a weekday: mon, tue, wed, thu, fri, sat or sun"))
}

/// The short lower-case name of a weekday, as the API writes it.
pub fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// One weekly window of availability in clinic-local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyRule {
    weekday: Weekday,
    start: NaiveTime,
    end: NaiveTime,
    slot_minutes: Option<u32>,
}

impl WeeklyRule {
    /// Builds a rule; the window must be non-empty, on whole minutes, and hold at least one slot.
    pub fn new(
        weekday: Weekday,
        start: NaiveTime,
        end: NaiveTime,
        slot_minutes: Option<u32>,
    ) -> Result<Self, InvalidValue> {
        use chrono::Timelike;
        if start.second() != 0
            || end.second() != 0
            || start.nanosecond() != 0
            || end.nanosecond() != 0
        {
            return Err(InvalidValue::new("start and end must be whole minutes"));
        }
        if end <= start {
            return Err(InvalidValue::new("end must be after start on the same day"));
        }
        if let Some(m) = slot_minutes {
            parse_slot_minutes(m)?;
            if (end - start) < Duration::minutes(i64::from(m)) {
                return Err(InvalidValue::new("the window is shorter than one slot"));
            }
        }
        Ok(Self {
            weekday,
            start,
            end,
            slot_minutes,
        })
    }

    /// Day of the week.
    pub fn weekday(&self) -> Weekday {
        self.weekday
    }

    /// Local start time.
    pub fn start(&self) -> NaiveTime {
        self.start
    }

    /// Local end time (exclusive).
    pub fn end(&self) -> NaiveTime {
        self.end
    }

    /// Slot length for this window, if it differs from the practitioner's default.
    pub fn slot_minutes(&self) -> Option<u32> {
        self.slot_minutes
    }
}

/// A practitioner's weekly availability, valid over a range of local dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    rules: Vec<WeeklyRule>,
    valid_from: NaiveDate,
    valid_to: Option<NaiveDate>,
}

impl Schedule {
    /// Builds a schedule; rules of one weekday must not overlap, and `valid_to` (inclusive) must not precede `valid_from`.
    pub fn new(
        mut rules: Vec<WeeklyRule>,
        valid_from: NaiveDate,
        valid_to: Option<NaiveDate>,
    ) -> Result<Self, InvalidValue> {
        if rules.len() > 100 {
            return Err(InvalidValue::new("at most 100 rules"));
        }
        if valid_to.is_some_and(|to| to < valid_from) {
            return Err(InvalidValue::new("valid_to must not be before valid_from"));
        }
        rules.sort_by_key(|r| (r.weekday.num_days_from_monday(), r.start));
        for pair in rules.windows(2) {
            if pair[0].weekday == pair[1].weekday && pair[1].start < pair[0].end {
                return Err(InvalidValue::new(format!(
                    "rules on {} overlap: {}-{} and {}-{}",
                    weekday_name(pair[0].weekday),
                    pair[0].start.format("%H:%M"),
                    pair[0].end.format("%H:%M"),
                    pair[1].start.format("%H:%M"),
                    pair[1].end.format("%H:%M"),
                )));
            }
        }
        Ok(Self {
            rules,
            valid_from,
            valid_to,
        })
    }

    /// A schedule with no rules: the practitioner is never available.
    pub fn empty(valid_from: NaiveDate) -> Self {
        Self {
            rules: Vec::new(),
            valid_from,
            valid_to: None,
        }
    }

    /// The rules, ordered by weekday and start.
    pub fn rules(&self) -> &[WeeklyRule] {
        &self.rules
    }

    /// First local date the schedule applies to.
    pub fn valid_from(&self) -> NaiveDate {
        self.valid_from
    }

    /// Last local date the schedule applies to, if bounded.
    pub fn valid_to(&self) -> Option<NaiveDate> {
        self.valid_to
    }

    fn applies_on(&self, date: NaiveDate) -> bool {
        date >= self.valid_from && self.valid_to.is_none_or(|to| date <= to)
    }
}

/// What kind of change to the weekly schedule an exception makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExceptionKind {
    /// The practitioner is away.
    TimeOff,
    /// The practitioner works outside the weekly rules.
    ExtraHours,
}

impl ExceptionKind {
    /// Every kind.
    pub const ALL: [ExceptionKind; 2] = [ExceptionKind::TimeOff, ExceptionKind::ExtraHours];

    /// The stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ExceptionKind::TimeOff => "time_off",
            ExceptionKind::ExtraHours => "extra_hours",
        }
    }
}

impl FromStr for ExceptionKind {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "time_off" => Ok(ExceptionKind::TimeOff),
            "extra_hours" => Ok(ExceptionKind::ExtraHours),
            _ => Err(InvalidValue::new("must be time_off or extra_hours")),
        }
    }
}

impl fmt::Display for ExceptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A one-off change to the weekly schedule, in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleException {
    /// Identity.
    pub id: crate::ScheduleExceptionId,
    /// Time off or extra hours.
    pub kind: ExceptionKind,
    /// When.
    pub interval: Interval,
    /// Why, if given.
    pub reason: Option<String>,
}

/// Resolves a local date-time to UTC: the first occurrence when it is ambiguous, `None` when it does not exist.
fn resolve(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// Resolves a window boundary: a local time inside a gap moves forward to the first instant after the gap.
fn resolve_boundary(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    (0..=180)
        .step_by(15)
        .find_map(|shift| resolve(tz, local + Duration::minutes(shift)))
}

/// Everything needed to derive a practitioner's availability and free slots.
#[derive(Debug, Clone, Copy)]
pub struct Availability<'a> {
    /// The weekly rules.
    pub schedule: &'a Schedule,
    /// Time off and extra hours.
    pub exceptions: &'a [ScheduleException],
    /// The clinic's zone, in which the rules are written.
    pub time_zone: TimeZone,
    /// Slot length where a rule names none, and for extra hours.
    pub default_slot_minutes: u32,
}

/// Working time and time off of one practitioner around a few local dates, each merged into
/// sorted disjoint intervals; see [`Availability::open_hours`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenHours {
    /// Working time (weekly rules and extra hours), time off not yet removed.
    pub working: Vec<Interval>,
    /// Time off.
    pub time_off: Vec<Interval>,
}

impl OpenHours {
    /// Whether `interval` lies wholly inside working time and touches no time off.
    pub fn covers(&self, interval: &Interval) -> bool {
        self.working.iter().any(|w| w.contains(interval))
            && !self.time_off.iter().any(|off| off.overlaps(interval))
    }
}

/// One stretch of working time with its slot length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    interval: Interval,
    slot: Duration,
    /// The local start, so stepping happens in local time.
    local_start: Option<NaiveDateTime>,
}

impl Availability<'_> {
    fn default_slot(&self) -> Duration {
        Duration::minutes(i64::from(self.default_slot_minutes))
    }

    /// Working windows (rules and extra hours) on local dates `from..to`, before time off is removed.
    fn windows(&self, from: NaiveDate, to: NaiveDate) -> Vec<Window> {
        let tz = self.time_zone.tz();
        let mut out = Vec::new();
        for date in from.iter_days().take_while(|d| *d < to) {
            if !self.schedule.applies_on(date) {
                continue;
            }
            for rule in self
                .schedule
                .rules
                .iter()
                .filter(|r| r.weekday == date.weekday())
            {
                let local_start = date.and_time(rule.start);
                let (Some(start), Some(end)) = (
                    resolve_boundary(tz, local_start),
                    resolve_boundary(tz, date.and_time(rule.end)),
                ) else {
                    continue;
                };
                let slot = rule
                    .slot_minutes
                    .map_or(self.default_slot(), |m| Duration::minutes(i64::from(m)));
                if let Ok(interval) = Interval::new(start, end) {
                    out.push(Window {
                        interval,
                        slot,
                        local_start: Some(local_start),
                    });
                }
            }
        }
        out.extend(
            self.exceptions
                .iter()
                .filter(|e| e.kind == ExceptionKind::ExtraHours)
                .map(|e| Window {
                    interval: e.interval,
                    slot: self.default_slot(),
                    local_start: None,
                }),
        );
        out
    }

    fn time_off(&self) -> impl Iterator<Item = &Interval> {
        self.exceptions
            .iter()
            .filter(|e| e.kind == ExceptionKind::TimeOff)
            .map(|e| &e.interval)
    }

    /// Whether `interval` lies wholly inside working time and touches no time off.
    pub fn covers(&self, interval: &Interval) -> bool {
        let (first, last) = self.local_dates(interval);
        self.open_hours(first, last).covers(interval)
    }

    /// The first and last local date `interval` touches in the clinic's zone: the dates
    /// [`Availability::open_hours`] needs to answer [`OpenHours::covers`] for it.
    pub fn local_dates(&self, interval: &Interval) -> (NaiveDate, NaiveDate) {
        let tz = self.time_zone.tz();
        (
            interval.start().with_timezone(&tz).date_naive(),
            interval.end().with_timezone(&tz).date_naive(),
        )
    }

    /// Working time and time off around local dates `first..=last` (with a day on each side,
    /// for windows that cross midnight): all [`Availability::covers`] needs for an interval on
    /// those dates, small enough to be cached and checked without the schedule.
    pub fn open_hours(&self, first: NaiveDate, last: NaiveDate) -> OpenHours {
        let working = merge(
            self.windows(first - Duration::days(1), last + Duration::days(2))
                .into_iter()
                .map(|w| w.interval)
                .collect(),
        );
        OpenHours {
            working,
            time_off: merge(self.time_off().copied().collect()),
        }
    }

    /// Free slots starting on local dates `from..to` (end exclusive), sorted and without duplicates.
    ///
    /// A slot is offered when it starts at or after `now`, lies inside its window, touches no time off,
    /// and keeps `buffer` clear of every `busy` interval.
    pub fn free_slots(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
        buffer: Duration,
        busy: &[Interval],
    ) -> Vec<Interval> {
        let tz = self.time_zone.tz();
        // Everything a slot must not touch, merged into sorted disjoint intervals once, so
        // each candidate is checked by a binary search instead of against every booking.
        let blocked = Blocked::new(
            busy.iter()
                .map(|b| b.widened(buffer, buffer))
                .chain(self.time_off().copied()),
        );
        let mut slots = Vec::new();
        for window in self.windows(from, to) {
            let candidates: Vec<DateTime<Utc>> = match window.local_start {
                // Step in local time so that a slot keeps its wall-clock time across DST.
                Some(local_start) => (0..)
                    .map(|i| local_start + window.slot * i)
                    .take_while(|t| {
                        resolve_boundary(tz, *t)
                            .is_some_and(|u| u + window.slot <= window.interval.end())
                            && *t < local_start + Duration::days(1)
                    })
                    .filter_map(|t| resolve(tz, t))
                    .collect(),
                None => (0..)
                    .map(|i| window.interval.start() + window.slot * i)
                    .take_while(|t| *t + window.slot <= window.interval.end())
                    .collect(),
            };
            for start in candidates {
                let Ok(slot) = Interval::starting_at(start, window.slot) else {
                    continue;
                };
                if start >= now && window.interval.contains(&slot) && !blocked.touches(&slot) {
                    slots.push(slot);
                }
            }
        }
        slots.sort();
        slots.dedup();
        slots
    }
}

/// Sorted, disjoint intervals (busy time with its buffers, and time off) that slots avoid.
struct Blocked(Vec<Interval>);

impl Blocked {
    fn new(intervals: impl Iterator<Item = Interval>) -> Self {
        let mut sorted: Vec<Interval> = intervals.collect();
        sorted.sort_by_key(Interval::start);
        let mut merged: Vec<Interval> = Vec::with_capacity(sorted.len());
        for next in sorted {
            match merged.last_mut() {
                // Touching intervals merge too: a slot overlaps the union exactly when it
                // overlaps one of them, since intervals are half-open.
                Some(last) if next.start() <= last.end() => {
                    if next.end() > last.end() {
                        *last =
                            Interval::new(last.start(), next.end()).expect("the end only grows");
                    }
                }
                _ => merged.push(next),
            }
        }
        Self(merged)
    }

    /// Whether `slot` overlaps any blocked interval: only the first one ending after the
    /// slot's start can, because they are disjoint and sorted.
    fn touches(&self, slot: &Interval) -> bool {
        let first_after = self.0.partition_point(|b| b.end() <= slot.start());
        self.0.get(first_after).is_some_and(|b| b.overlaps(slot))
    }
}

/// A UTC span covering local dates `from..to` in any zone: UTC offsets stay within a day,
/// so padding by a day on each side holds every window and appointment that can touch them.
pub fn utc_span(from: NaiveDate, to: NaiveDate) -> Interval {
    let start = from.and_time(NaiveTime::MIN).and_utc() - Duration::days(1);
    let end = to.and_time(NaiveTime::MIN).and_utc() + Duration::days(1);
    Interval::new(start, end.max(start + Duration::days(1)))
        .expect("the span is at least one day long")
}

/// Checks a slot query's date range: `to` after `from`, at most [`MAX_RANGE_DAYS`] days.
pub fn check_range(from: NaiveDate, to: NaiveDate) -> Result<(), InvalidValue> {
    if to <= from {
        return Err(InvalidValue::new(
            "`to` must be after `from` (the range excludes `to`)",
        ));
    }
    if (to - from).num_days() > MAX_RANGE_DAYS {
        return Err(InvalidValue::new(format!(
            "the range may span at most {MAX_RANGE_DAYS} days"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;
    use proptest::prelude::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("valid time")
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    fn berlin() -> TimeZone {
        TimeZone::parse("Europe/Berlin").expect("known zone")
    }

    fn every_day(start: NaiveTime, end: NaiveTime, slot: u32) -> Schedule {
        let rules = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .map(|w| WeeklyRule::new(w, start, end, Some(slot)).expect("valid rule"))
        .collect();
        Schedule::new(rules, d(2000, 1, 1), None).expect("valid schedule")
    }

    fn long_ago() -> DateTime<Utc> {
        DateTime::<Utc>::MIN_UTC
    }

    fn local(tz: TimeZone, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&tz.tz()).naive_local()
    }

    #[test]
    fn a_morning_rule_yields_its_slots_in_utc() {
        let s = Schedule::new(
            vec![WeeklyRule::new(Weekday::Tue, t(9, 0), t(10, 0), Some(30)).expect("valid")],
            d(2026, 1, 1),
            None,
        )
        .expect("valid");
        let a = Availability {
            schedule: &s,
            exceptions: &[],
            time_zone: berlin(),
            default_slot_minutes: 30,
        };
        // 2026-12-01 is a Tuesday; Berlin is UTC+1 in winter.
        let slots = a.free_slots(
            d(2026, 12, 1),
            d(2026, 12, 2),
            long_ago(),
            Duration::zero(),
            &[],
        );
        let starts: Vec<_> = slots.iter().map(|s| s.start().to_rfc3339()).collect();
        assert_eq!(
            starts,
            ["2026-12-01T08:00:00+00:00", "2026-12-01T08:30:00+00:00"]
        );
    }

    #[test]
    fn nine_oclock_stays_nine_oclock_across_the_spring_change() {
        let s = every_day(t(9, 0), t(9, 30), 30);
        let a = Availability {
            schedule: &s,
            exceptions: &[],
            time_zone: berlin(),
            default_slot_minutes: 30,
        };
        // Berlin springs forward on 2026-03-29.
        let slots = a.free_slots(
            d(2026, 3, 28),
            d(2026, 3, 31),
            long_ago(),
            Duration::zero(),
            &[],
        );
        let utc_hours: Vec<u32> = slots.iter().map(|s| s.start().hour()).collect();
        assert_eq!(utc_hours, [8, 7, 7]);
        assert!(
            slots
                .iter()
                .all(|s| local(berlin(), s.start()).time() == t(9, 0))
        );
    }

    #[test]
    fn a_nonexistent_local_time_is_never_offered() {
        // 02:00-03:00 does not exist in Berlin on 2026-03-29.
        let s = every_day(t(1, 0), t(4, 0), 30);
        let a = Availability {
            schedule: &s,
            exceptions: &[],
            time_zone: berlin(),
            default_slot_minutes: 30,
        };
        let slots = a.free_slots(
            d(2026, 3, 29),
            d(2026, 3, 30),
            long_ago(),
            Duration::zero(),
            &[],
        );
        let locals: Vec<NaiveTime> = slots
            .iter()
            .map(|s| local(berlin(), s.start()).time())
            .collect();
        assert_eq!(locals, [t(1, 0), t(1, 30), t(3, 0), t(3, 30)]);
    }

    #[test]
    fn an_ambiguous_local_time_is_offered_once() {
        // 02:00-03:00 happens twice in Berlin on 2026-10-25.
        let s = every_day(t(2, 0), t(3, 0), 30);
        let a = Availability {
            schedule: &s,
            exceptions: &[],
            time_zone: berlin(),
            default_slot_minutes: 30,
        };
        let slots = a.free_slots(
            d(2026, 10, 25),
            d(2026, 10, 26),
            long_ago(),
            Duration::zero(),
            &[],
        );
        let locals: Vec<NaiveTime> = slots
            .iter()
            .map(|s| local(berlin(), s.start()).time())
            .collect();
        assert_eq!(locals, [t(2, 0), t(2, 30)]);
    }

    #[test]
    fn time_off_busy_time_buffer_and_the_past_remove_slots() {
        let s = every_day(t(9, 0), t(12, 0), 30);
        let utc = TimeZone::parse("UTC").expect("known zone");
        let at = |h: u32, m: u32| d(2026, 12, 1).and_time(t(h, m)).and_utc();
        let off = [ScheduleException {
            id: crate::ScheduleExceptionId::from_uuid(uuid::Uuid::nil()),
            kind: ExceptionKind::TimeOff,
            interval: Interval::new(at(11, 0), at(12, 0)).expect("valid"),
            reason: None,
        }];
        let a = Availability {
            schedule: &s,
            exceptions: &off,
            time_zone: utc,
            default_slot_minutes: 30,
        };
        let busy = [Interval::new(at(10, 0), at(10, 30)).expect("valid")];
        let slots = a.free_slots(
            d(2026, 12, 1),
            d(2026, 12, 2),
            at(9, 10),
            Duration::minutes(10),
            &busy,
        );
        let starts: Vec<_> = slots
            .iter()
            .map(|s| (s.start().hour(), s.start().minute()))
            .collect();
        // 09:00 is past, 09:30 and 10:30 touch the buffer, 10:00 is busy, 11:00+ is time off.
        assert_eq!(starts, Vec::<(u32, u32)>::new());
        let slots = a.free_slots(
            d(2026, 12, 1),
            d(2026, 12, 2),
            at(8, 0),
            Duration::zero(),
            &busy,
        );
        let starts: Vec<_> = slots
            .iter()
            .map(|s| (s.start().hour(), s.start().minute()))
            .collect();
        assert_eq!(starts, [(9, 0), (9, 30), (10, 30)]);
    }

    #[test]
    fn extra_hours_add_slots_and_availability() {
        let s = Schedule::empty(d(2026, 1, 1));
        let start = d(2026, 12, 5).and_time(t(10, 0)).and_utc();
        let extra = [ScheduleException {
            id: crate::ScheduleExceptionId::from_uuid(uuid::Uuid::nil()),
            kind: ExceptionKind::ExtraHours,
            interval: Interval::new(start, start + Duration::hours(1)).expect("valid"),
            reason: None,
        }];
        let a = Availability {
            schedule: &s,
            exceptions: &extra,
            time_zone: berlin(),
            default_slot_minutes: 20,
        };
        assert_eq!(
            a.free_slots(
                d(2026, 12, 5),
                d(2026, 12, 6),
                long_ago(),
                Duration::zero(),
                &[]
            )
            .len(),
            3
        );
        assert!(a.covers(&Interval::starting_at(start, Duration::minutes(60)).expect("valid")));
        assert!(!a.covers(&Interval::starting_at(start, Duration::minutes(61)).expect("valid")));
    }

    #[test]
    fn open_hours_of_an_intervals_dates_answer_as_the_whole_schedule_does() {
        let s = every_day(t(9, 0), t(12, 0), 30);
        let at = |day: u32, h: u32, m: u32| d(2026, 12, day).and_time(t(h, m)).and_utc();
        let exceptions = [ScheduleException {
            id: crate::ScheduleExceptionId::from_uuid(uuid::Uuid::nil()),
            kind: ExceptionKind::TimeOff,
            interval: Interval::new(at(2, 9, 0), at(2, 10, 0)).expect("valid"),
            reason: None,
        }];
        let a = Availability {
            schedule: &s,
            exceptions: &exceptions,
            time_zone: berlin(),
            default_slot_minutes: 30,
        };
        for (day, h, m, minutes) in [
            (1, 8, 0, 180),
            (1, 10, 45, 30),
            (2, 8, 0, 60),
            (2, 9, 30, 60),
            (2, 10, 0, 60),
            (3, 7, 30, 60),
        ] {
            let interval =
                Interval::starting_at(at(day, h, m), Duration::minutes(minutes)).expect("valid");
            let (first, last) = a.local_dates(&interval);
            assert_eq!(
                a.open_hours(first, last).covers(&interval),
                a.covers(&interval),
                "{interval:?}"
            );
        }
        let (first, last) = a.local_dates(&Interval::new(at(2, 8, 0), at(2, 9, 0)).expect("valid"));
        let hours = a.open_hours(first, last);
        assert_eq!(hours.time_off, vec![exceptions[0].interval]);
        assert!(hours.covers(&Interval::new(at(2, 8, 0), at(2, 9, 0)).expect("valid")));
        assert!(!hours.covers(&Interval::new(at(2, 8, 30), at(2, 9, 30)).expect("valid")));
    }

    #[test]
    fn availability_covers_intervals_inside_a_window_only() {
        let s = every_day(t(9, 0), t(12, 0), 30);
        let a = Availability {
            schedule: &s,
            exceptions: &[],
            time_zone: berlin(),
            default_slot_minutes: 30,
        };
        let at = |h: u32, m: u32| d(2026, 12, 1).and_time(t(h, m)).and_utc();
        // 09:00 Berlin is 08:00 UTC in winter.
        assert!(a.covers(&Interval::new(at(8, 0), at(11, 0)).expect("valid")));
        assert!(a.covers(&Interval::new(at(8, 10), at(8, 55)).expect("valid")));
        assert!(!a.covers(&Interval::new(at(7, 30), at(8, 30)).expect("valid")));
        assert!(!a.covers(&Interval::new(at(10, 45), at(11, 15)).expect("valid")));
    }

    #[test]
    fn schedules_reject_overlapping_rules_and_inverted_validity() {
        let r1 = WeeklyRule::new(Weekday::Mon, t(9, 0), t(12, 0), None).expect("valid");
        let r2 = WeeklyRule::new(Weekday::Mon, t(11, 0), t(13, 0), None).expect("valid");
        assert!(Schedule::new(vec![r1, r2], d(2026, 1, 1), None).is_err());
        assert!(Schedule::new(vec![r1], d(2026, 1, 2), Some(d(2026, 1, 1))).is_err());
        assert!(WeeklyRule::new(Weekday::Mon, t(12, 0), t(9, 0), None).is_err());
        assert!(WeeklyRule::new(Weekday::Mon, t(9, 0), t(9, 20), Some(30)).is_err());
    }

    #[test]
    fn validity_limits_the_dates_with_slots() {
        let rule = WeeklyRule::new(Weekday::Tue, t(9, 0), t(9, 30), Some(30)).expect("valid");
        let s = Schedule::new(vec![rule], d(2026, 12, 2), Some(d(2026, 12, 9))).expect("valid");
        let a = Availability {
            schedule: &s,
            exceptions: &[],
            time_zone: berlin(),
            default_slot_minutes: 30,
        };
        // Tuesdays 1, 8, 15 December: only the 8th is inside validity.
        let slots = a.free_slots(
            d(2026, 12, 1),
            d(2026, 12, 16),
            long_ago(),
            Duration::zero(),
            &[],
        );
        assert_eq!(slots.len(), 1);
        assert_eq!(local(berlin(), slots[0].start()).date(), d(2026, 12, 8));
    }

    const ZONES: [&str; 6] = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "America/Sao_Paulo",
        "Asia/Kolkata",
        "UTC",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn the_merged_lookup_agrees_with_checking_every_interval(
            blocked in prop::collection::vec((0i64..600, 1i64..90), 0..40),
            slot in (0i64..700, 1i64..60),
        ) {
            let base = d(2026, 12, 1).and_time(NaiveTime::MIN).and_utc();
            let interval = |(start, len): (i64, i64)| {
                Interval::starting_at(base + Duration::minutes(start), Duration::minutes(len))
                    .expect("positive length")
            };
            let blocked: Vec<Interval> = blocked.into_iter().map(interval).collect();
            let slot = interval(slot);
            let naive = blocked.iter().any(|b| b.overlaps(&slot));
            prop_assert_eq!(super::Blocked::new(blocked.into_iter()).touches(&slot), naive);
        }

        #[test]
        fn every_slot_keeps_its_wall_clock_time_and_is_offered_once(
            zone in 0usize..ZONES.len(),
            start_min in 0u32..(23 * 60),
            len_slots in 1u32..8,
            slot in prop::sample::select(vec![10u32, 15, 20, 30, 45, 60]),
            day_offset in 0i64..730,
            days in 1i64..15,
        ) {
            let tz = TimeZone::parse(ZONES[zone]).expect("known zone");
            let start = NaiveTime::from_num_seconds_from_midnight_opt(start_min * 60, 0).expect("valid");
            let end_secs = (start_min + len_slots * slot).min(24 * 60 - 1) * 60;
            let end = NaiveTime::from_num_seconds_from_midnight_opt(end_secs, 0).expect("valid");
            prop_assume!(end > start && (end - start) >= Duration::minutes(i64::from(slot)));
            let s = every_day(start, end, slot);
            let a = Availability { schedule: &s, exceptions: &[], time_zone: tz, default_slot_minutes: slot };
            let from = d(2025, 1, 1) + Duration::days(day_offset);
            let to = from + Duration::days(days);
            let slots = a.free_slots(from, to, long_ago(), Duration::zero(), &[]);
            let mut seen_local = std::collections::HashSet::new();
            for s in &slots {
                let l = local(tz, s.start());
                // On the rule's grid in local time, inside the local window.
                let offset = (l.time() - start).num_minutes();
                prop_assert!(offset >= 0 && offset % i64::from(slot) == 0, "slot at {} off the grid", l);
                prop_assert!(l.time() >= start && l.time() < end);
                prop_assert_eq!(s.duration(), Duration::minutes(i64::from(slot)));
                // A local time that happens twice is offered once.
                prop_assert!(seen_local.insert(l), "local time {} offered twice", l);
                // The offered instant really is that local time (never a nonexistent one).
                prop_assert_eq!(resolve(tz.tz(), l), Some(s.start()));
                // Every offered slot can be booked.
                prop_assert!(a.covers(s), "slot {:?} not covered", s);
            }
            for w in slots.windows(2) {
                prop_assert!(w[0].start() < w[1].start());
            }
        }

        #[test]
        fn slots_never_overlap_busy_time_or_start_in_the_past(
            busy_starts in proptest::collection::vec(0i64..(14 * 24 * 4), 0..30),
            now_offset in 0i64..(14 * 24 * 60),
            buffer in 0i64..30,
        ) {
            let s = every_day(t(8, 0), t(18, 0), 15);
            let tz = berlin();
            let a = Availability { schedule: &s, exceptions: &[], time_zone: tz, default_slot_minutes: 15 };
            let origin = d(2026, 3, 20).and_time(t(0, 0)).and_utc();
            let busy: Vec<Interval> = busy_starts
                .iter()
                .map(|q| Interval::starting_at(origin + Duration::minutes(q * 15), Duration::minutes(25)).expect("valid"))
                .collect();
            let now = origin + Duration::minutes(now_offset);
            let buffer = Duration::minutes(buffer);
            let slots = a.free_slots(d(2026, 3, 20), d(2026, 4, 3), now, buffer, &busy);
            for slot in &slots {
                prop_assert!(slot.start() >= now);
                for b in &busy {
                    prop_assert!(!b.widened(buffer, buffer).overlaps(slot));
                }
                let booking = crate::BookingRequest {
                    interval: *slot,
                    now,
                    overbook: false,
                    available: a.covers(slot),
                    buffer,
                    practitioner_busy: &busy,
                    patient_busy: &[],
                };
                prop_assert_eq!(booking.check(), Ok(()));
            }
        }
    }
}
