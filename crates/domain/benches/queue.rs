//! Micro-benchmarks of the walk-in queue: 10,000 open entries of mixed triage categories,
//! walk-ins and checked-in appointments, put in earliest-deadline-first serve order; and one
//! re-triage followed by restoring that order.
//!
//! Run with `cargo bench -p clinicflow-domain --bench queue`. Benchmarks never assert on
//! timings; the fixture is only checked for shape before anything is measured.

use std::cmp::Ordering;
use std::hint::black_box;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use clinicflow_domain::queue::{appointment_deadline, estimated_wait, walk_in_deadline};
use clinicflow_domain::{
    AppointmentId, ClinicId, DeadlineRule, PatientId, PractitionerId, QueueEntry, QueueEntryId,
    QueueSettings, QueueStatus, TriageCategory,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const ENTRIES: usize = 10_000;
/// Practitioners serving the board, for the wait estimates.
const SERVING: u32 = 12;

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

    fn below(&mut self, n: u64) -> i64 {
        i64::try_from(self.next() % n).expect("small")
    }
}

fn opening() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 15, 6, 0, 0)
        .single()
        .expect("valid instant")
}

/// The board's "now": ten hours after opening, when everyone has arrived.
fn now() -> DateTime<Utc> {
    opening() + Duration::hours(10)
}

/// 10,000 open entries in arrival-independent (id-random) order: roughly 1% immediate,
/// 9% very urgent, 30% urgent, 40% standard and 20% non-urgent; a fifth of them checked-in
/// appointments; a tenth already called or in service.
fn entries(settings: &QueueSettings) -> Vec<QueueEntry> {
    let mut rng = Rng(0x0051_EE0E_D0E5);
    let clinic_id = ClinicId::from_uuid(uuid::Uuid::from_u128(1));
    let practitioners: Vec<PractitionerId> = (0..SERVING)
        .map(|n| PractitionerId::from_uuid(uuid::Uuid::from_u128(1_000 + u128::from(n))))
        .collect();
    (0..ENTRIES)
        .map(|n| {
            let category = match rng.below(100) {
                0 => TriageCategory::Immediate,
                1..10 => TriageCategory::VeryUrgent,
                10..40 => TriageCategory::Urgent,
                40..80 => TriageCategory::Standard,
                _ => TriageCategory::NonUrgent,
            };
            // Arrivals over ten hours, to the second.
            let arrived_at = opening() + Duration::seconds(rng.below(10 * 3_600));
            let (rule, deadline, appointment_id) = if rng.below(5) == 0 {
                // Booked on the quarter hour, the patient up to an hour early or 30 minutes late.
                let quarter = (arrived_at - opening()).num_minutes() / 15 + rng.below(6) - 2;
                let starts_at = opening() + Duration::minutes(quarter.max(0) * 15);
                (
                    DeadlineRule::Appointment { starts_at },
                    appointment_deadline(arrived_at, starts_at, settings),
                    Some(AppointmentId::from_uuid(uuid::Uuid::from_u128(
                        rng.next().into(),
                    ))),
                )
            } else {
                (
                    DeadlineRule::WalkIn,
                    walk_in_deadline(arrived_at, category, settings),
                    None,
                )
            };
            let status = match rng.below(20) {
                0 => QueueStatus::Called,
                1 => QueueStatus::InService,
                _ => QueueStatus::Waiting,
            };
            let practitioner_id = (rng.below(10) < 3)
                .then(|| practitioners[usize::try_from(rng.below(SERVING.into())).expect("small")]);
            QueueEntry {
                id: QueueEntryId::from_uuid(uuid::Uuid::from_u128(
                    (u128::from(rng.next()) << 64) | u128::from(rng.next()),
                )),
                clinic_id,
                patient_id: PatientId::from_uuid(uuid::Uuid::from_u128(
                    u128::try_from(n).expect("small") + 10_000,
                )),
                practitioner_id,
                department: (rng.below(2) == 0).then(|| "general".to_owned()),
                appointment_id,
                category,
                rule,
                arrived_at,
                deadline,
                status,
                note: None,
                called_by: None,
                called_at: None,
                started_at: None,
                finished_at: None,
                left_at: None,
                recalled_at: None,
                version: 1,
                updated_at: arrived_at,
            }
        })
        .collect()
}

/// Each waiting patient's position and estimated wait, as the board shows them.
fn board(sorted: &[QueueEntry], mean_service: Duration) -> Vec<Option<(usize, Duration)>> {
    let mut position = 0;
    sorted
        .iter()
        .map(|e| {
            (e.status == QueueStatus::Waiting).then(|| {
                position += 1;
                (
                    position,
                    estimated_wait(position - 1, mean_service, SERVING),
                )
            })
        })
        .collect()
}

/// The sorted entry re-triaged in the benchmarks: the first waiting non-urgent walk-in, which
/// as very urgent moves up by thousands of places.
fn retriage_target(sorted: &[QueueEntry]) -> usize {
    sorted
        .iter()
        .position(|e| {
            e.category == TriageCategory::NonUrgent
                && e.rule == DeadlineRule::WalkIn
                && e.status == QueueStatus::Waiting
        })
        .expect("a waiting non-urgent walk-in")
}

fn is_sorted(v: &[QueueEntry]) -> bool {
    v.windows(2)
        .all(|w| QueueEntry::serve_order(&w[0], &w[1]) == Ordering::Less)
}

fn bench_queue(c: &mut Criterion) {
    let settings = QueueSettings::default();
    let unsorted = entries(&settings);
    let mut sorted = unsorted.clone();
    sorted.sort_by(QueueEntry::serve_order);
    assert!(is_sorted(&sorted), "ids are unique, so the order is strict");
    assert!(!is_sorted(&unsorted), "the input is not already in order");
    let target = retriage_target(&sorted);
    let mean_service = Duration::minutes(14);
    // Both ways of restoring the order agree (checked once, before measuring).
    let mut resorted = sorted.clone();
    resorted[target].retriage(TriageCategory::VeryUrgent, &settings, now());
    resorted.sort_by(QueueEntry::serve_order);
    let mut reinserted = sorted.clone();
    let mut e = reinserted.remove(target);
    e.retriage(TriageCategory::VeryUrgent, &settings, now());
    let at = reinserted.partition_point(|x| QueueEntry::serve_order(x, &e) == Ordering::Less);
    reinserted.insert(at, e);
    assert_eq!(resorted, reinserted);
    assert!(target - at > 1_000, "the re-triage moves {target} to {at}");

    let mut group = c.benchmark_group("queue");
    group.bench_function("sort_10k", |b| {
        b.iter_batched(
            || unsorted.clone(),
            |mut v| {
                v.sort_by(QueueEntry::serve_order);
                v
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("board_10k_sort_and_estimated_waits", |b| {
        b.iter_batched(
            || unsorted.clone(),
            |mut v| {
                v.sort_by(QueueEntry::serve_order);
                let waits = board(&v, black_box(mean_service));
                (v, waits)
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("retriage_one_then_resort_10k", |b| {
        b.iter_batched(
            || sorted.clone(),
            |mut v| {
                v[black_box(target)].retriage(TriageCategory::VeryUrgent, &settings, now());
                v.sort_by(QueueEntry::serve_order);
                v
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("retriage_one_then_reinsert_10k", |b| {
        b.iter_batched(
            || sorted.clone(),
            |mut v| {
                let mut e = v.remove(black_box(target));
                e.retriage(TriageCategory::VeryUrgent, &settings, now());
                let at = v.partition_point(|x| QueueEntry::serve_order(x, &e) == Ordering::Less);
                v.insert(at, e);
                v
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(3));
    targets = bench_queue
}
criterion_main!(benches);
