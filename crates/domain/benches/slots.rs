//! Micro-benchmarks of slot generation: 20 practitioners' free slots over 30 days in
//! Europe/Berlin, across the end of daylight-saving time on 2026-10-25, with time off,
//! extra hours and booked appointments to subtract.
//!
//! Run with `cargo bench -p clinicflow-domain --bench slots`. Benchmarks never assert on
//! timings; the fixture is only checked for shape before anything is measured.

use std::hint::black_box;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone as _, Utc, Weekday};
use clinicflow_domain::{
    Availability, ExceptionKind, Interval, PractitionerId, Schedule, ScheduleException,
    ScheduleExceptionId, TimeZone, WeeklyRule,
};
use criterion::{Criterion, criterion_group, criterion_main};

const PRACTITIONERS: u128 = 20;
const DAYS: i64 = 30;
/// How many of the earliest slots a cross-practitioner search keeps.
const SEARCH_LIMIT: usize = 20;

/// A small deterministic generator (splitmix64), so the fixture is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Whether an event of probability `percent`/100 happens.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn time(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("valid time")
}

/// A Berlin wall-clock instant (none of those used here falls in a DST gap or overlap).
fn berlin_at(zone: TimeZone, day: NaiveDate, at: NaiveTime) -> DateTime<Utc> {
    zone.tz()
        .from_local_datetime(&day.and_time(at))
        .single()
        .expect("an unambiguous local time")
        .with_timezone(&Utc)
}

/// One practitioner's inputs to [`Availability::free_slots`].
struct Practitioner {
    id: PractitionerId,
    schedule: Schedule,
    exceptions: Vec<ScheduleException>,
    default_slot_minutes: u32,
    buffer: Duration,
    busy: Vec<Interval>,
}

impl Practitioner {
    fn availability(&self, time_zone: TimeZone) -> Availability<'_> {
        Availability {
            schedule: &self.schedule,
            exceptions: &self.exceptions,
            time_zone,
            default_slot_minutes: self.default_slot_minutes,
        }
    }
}

struct Fixture {
    zone: TimeZone,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
    practitioners: Vec<Practitioner>,
}

impl Fixture {
    fn free_slots(&self, p: &Practitioner) -> Vec<Interval> {
        p.availability(self.zone)
            .free_slots(self.from, self.to, self.now, p.buffer, &p.busy)
    }
}

fn exception(n: u128, kind: ExceptionKind, interval: Interval) -> ScheduleException {
    ScheduleException {
        id: ScheduleExceptionId::from_uuid(uuid::Uuid::from_u128(n)),
        kind,
        interval,
        reason: None,
    }
}

/// Mon–Fri 08:00–12:00 and 13:00–17:00 local, 15- or 30-minute slots (some afternoons in 20),
/// a day or a few days off, Saturday extra hours for some, and about 40% of the slots booked.
fn fixture() -> Fixture {
    let zone = TimeZone::parse("Europe/Berlin").expect("known zone");
    let from = date(2026, 10, 15);
    let to = from + Duration::days(DAYS);
    // 11:00 local on the first day: that morning is partly in the past.
    let now = berlin_at(zone, from, time(11, 0));
    let mut rng = Rng(0x00C1_1A1C_F10E);
    let weekdays = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ];
    let practitioners = (0..PRACTITIONERS)
        .map(|i| {
            let default_slot_minutes = if i % 2 == 0 { 15 } else { 30 };
            let afternoon_slot = (i % 4 == 1).then_some(20);
            let rules = weekdays
                .into_iter()
                .flat_map(|day| {
                    [
                        WeeklyRule::new(day, time(8, 0), time(12, 0), None),
                        WeeklyRule::new(day, time(13, 0), time(17, 0), afternoon_slot),
                    ]
                })
                .map(|rule| rule.expect("valid rule"))
                .collect();
            let schedule = Schedule::new(rules, date(2026, 1, 1), None).expect("valid schedule");

            let mut exceptions = Vec::new();
            // A day off somewhere in the range; every fourth practitioner takes three.
            let off_from = from + Duration::days(i64::try_from(i % 10).expect("small") + 3);
            let off_days = if i % 4 == 0 { 3 } else { 1 };
            exceptions.push(exception(
                i * 10,
                ExceptionKind::TimeOff,
                Interval::new(
                    berlin_at(zone, off_from, time(0, 0)),
                    berlin_at(zone, off_from + Duration::days(off_days), time(0, 0)),
                )
                .expect("non-empty"),
            ));
            // A long lunch on the first Monday after the change of time.
            exceptions.push(exception(
                i * 10 + 1,
                ExceptionKind::TimeOff,
                Interval::new(
                    berlin_at(zone, date(2026, 10, 26), time(11, 0)),
                    berlin_at(zone, date(2026, 10, 26), time(14, 0)),
                )
                .expect("non-empty"),
            ));
            // Saturday mornings for every fifth practitioner.
            if i % 5 == 0 {
                for (k, saturday) in [(2, date(2026, 10, 24)), (3, date(2026, 10, 31))] {
                    exceptions.push(exception(
                        i * 10 + k,
                        ExceptionKind::ExtraHours,
                        Interval::new(
                            berlin_at(zone, saturday, time(9, 0)),
                            berlin_at(zone, saturday, time(12, 0)),
                        )
                        .expect("non-empty"),
                    ));
                }
            }

            let mut p = Practitioner {
                id: PractitionerId::from_uuid(uuid::Uuid::from_u128(rng.next().into())),
                schedule,
                exceptions,
                default_slot_minutes,
                buffer: Duration::minutes(if i % 3 == 0 { 5 } else { 0 }),
                busy: Vec::new(),
            };
            // Book about 40% of the open slots; the whole range, including the past morning.
            let open = p.availability(zone).free_slots(
                from,
                to,
                DateTime::<Utc>::MIN_UTC,
                Duration::zero(),
                &[],
            );
            p.busy = open.into_iter().filter(|_| rng.chance(40)).collect();
            p
        })
        .collect();
    Fixture {
        zone,
        from,
        to,
        now,
        practitioners,
    }
}

/// Checks the fixture's shape once, outside any measurement.
fn check(f: &Fixture) {
    let tz = f.zone.tz();
    let slots: Vec<Interval> = f
        .practitioners
        .iter()
        .flat_map(|p| f.free_slots(p))
        .collect();
    assert!(
        slots.len() > 1_000,
        "expected a busy month of free slots, got {}",
        slots.len()
    );
    let offsets: std::collections::BTreeSet<String> = slots
        .iter()
        .map(|s| s.start().with_timezone(&tz).format("%:z").to_string())
        .collect();
    assert_eq!(
        offsets.len(),
        2,
        "slots on both sides of the DST change: {offsets:?}"
    );
}

fn bench_slots(c: &mut Criterion) {
    let f = fixture();
    check(&f);
    let mut group = c.benchmark_group("slots");
    group.bench_function("free_slots_30d_20_practitioners", |b| {
        b.iter(|| {
            let f = black_box(&f);
            for p in &f.practitioners {
                black_box(f.free_slots(p));
            }
        });
    });
    // What the cross-practitioner slot search does: every practitioner's slots, earliest first.
    group.bench_function("first_free_slots_across_20_practitioners", |b| {
        b.iter(|| {
            let f = black_box(&f);
            let mut found: Vec<(PractitionerId, Interval)> = f
                .practitioners
                .iter()
                .flat_map(|p| f.free_slots(p).into_iter().map(|s| (p.id, s)))
                .collect();
            found.sort_by_key(|(p, s)| (s.start(), *p));
            found.truncate(SEARCH_LIMIT);
            found
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(3));
    targets = bench_slots
}
criterion_main!(benches);
