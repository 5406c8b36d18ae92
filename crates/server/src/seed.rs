//! Demo and benchmark data, created through the services so it passes the same rules as API
//! input; at benchmark size ([`seed_bulk`]) patients and appointments are written straight to
//! the store in large transactions instead.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clinicflow_domain::{
    Actor, Appointment, AppointmentId, AppointmentStatus, Availability, BirthDate, Email, Interval,
    InvalidValue, Patient, PatientId, PersonName, Phone, Practitioner, Sex, Urgency,
};
use clinicflow_ports::{AppointmentRepo, Database, PatientRepo, TxMode};
use clinicflow_services::schedule::RuleInput;
use clinicflow_services::{
    AppointmentAction, BookInput, FieldErrors, JoinInput, NewClinic, NewPatient, NewPractitioner,
    NewUser, ScheduleInput, ServiceError, Services,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::Wiring;

/// Name of the demo clinic; seeding is skipped when it exists.
pub const DEMO_CLINIC: &str = "clinicflow Demo Clinic";
/// The demo admin's e-mail.
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo-clinic.example";
/// The demo admin's password (demo data only).
pub const DEMO_ADMIN_PASSWORD: &str = "demo-admin-password";

/// Demo staff of the other roles, all with [`DEMO_STAFF_PASSWORD`].
pub const DEMO_STAFF: [(&str, &str); 3] = [
    ("desk@demo-clinic.example", "receptionist"),
    ("nurse@demo-clinic.example", "nurse"),
    ("doctor@demo-clinic.example", "practitioner"),
];
/// The demo staff's password (demo data only).
pub const DEMO_STAFF_PASSWORD: &str = "demo-staff-password";

/// How much to create.
#[derive(Debug, Clone, Copy)]
pub struct SeedOptions {
    /// Patients.
    pub patients: usize,
    /// Practitioners.
    pub practitioners: usize,
    /// Days of past appointments.
    pub days_back: i64,
    /// Days of future appointments.
    pub days_ahead: i64,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            patients: 200,
            practitioners: 6,
            days_back: 14,
            days_ahead: 14,
        }
    }
}

/// What seeding did.
#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    /// Whether the demo clinic already existed (nothing was created).
    pub existed: bool,
    /// Practitioners created.
    pub practitioners: usize,
    /// Patients created.
    pub patients: usize,
    /// Appointments booked.
    pub appointments: usize,
    /// Walk-ins waiting in the queue.
    pub walk_ins: usize,
}

const GIVEN: [&str; 16] = [
    "Ada",
    "Alan",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Katherine",
    "Linus",
    "Margaret",
    "Niklaus",
    "Radia",
    "Tim",
    "Sophie",
    "Emmy",
];
const FAMILY: [&str; 16] = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Backus",
    "Johnson",
    "Torvalds",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Berners-Lee",
    "Wilson",
    "Noether",
];
const SPECIALTIES: [(&str, &str, u32); 6] = [
    ("general-practice", "primary-care", 15),
    ("pediatrics", "primary-care", 20),
    ("cardiology", "internal-medicine", 30),
    ("dermatology", "dermatology", 20),
    ("diagnostics", "internal-medicine", 30),
    ("orthopedics", "surgery", 30),
];

fn weekday_rules(slot: u32) -> Vec<RuleInput> {
    ["mon", "tue", "wed", "thu", "fri"]
        .iter()
        .flat_map(|d| {
            [("08:00", "12:00"), ("13:00", "17:00")].map(|(start, end)| RuleInput {
                weekday: (*d).into(),
                start: start.into(),
                end: end.into(),
                slot_minutes: Some(slot),
            })
        })
        .collect()
}

/// The demo clinic, its admin acting, its practitioners with schedules, and its staff.
struct Setup {
    actor: Actor,
    today: NaiveDate,
    practitioners: Vec<Practitioner>,
}

/// Creates the demo clinic, `practitioners` practitioners working weekdays from
/// `days_back` days ago on, and the demo staff; `None` when the clinic exists.
async fn create_clinic(
    services: &Services,
    practitioners: usize,
    days_back: i64,
    now: DateTime<Utc>,
) -> Result<Option<Setup>, ServiceError> {
    if services.clinics.find_by_name(DEMO_CLINIC).await?.is_some() {
        return Ok(None);
    }
    let (clinic, admin) = services
        .clinics
        .create(NewClinic {
            name: DEMO_CLINIC.into(),
            time_zone: "Europe/Berlin".into(),
            admin_email: DEMO_ADMIN_EMAIL.into(),
            admin_password: DEMO_ADMIN_PASSWORD.into(),
        })
        .await?;
    let actor = Actor {
        user_id: admin.id,
        clinic_id: clinic.id,
        role: admin.role,
        practitioner_id: None,
        request_id: None,
    };
    let today = clinic.local_date(now);

    let mut created = Vec::new();
    for i in 0..practitioners {
        let (specialty, department, slot) = SPECIALTIES[i % SPECIALTIES.len()];
        let p = services
            .practitioners
            .create(
                &actor,
                NewPractitioner {
                    given_name: GIVEN[(i * 5 + 3) % GIVEN.len()].into(),
                    family_name: FAMILY[(i * 7 + 1) % FAMILY.len()].into(),
                    specialties: vec![specialty.into()],
                    department: Some(department.into()),
                    slot_minutes: Some(slot),
                    buffer_minutes: Some(0),
                },
            )
            .await?;
        services
            .schedules
            .put_schedule(
                &actor,
                p.id,
                ScheduleInput {
                    rules: weekday_rules(slot),
                    valid_from: Some((today - Duration::days(days_back + 1)).to_string()),
                    valid_to: None,
                },
            )
            .await?;
        created.push(p);
    }
    for (email, role) in DEMO_STAFF {
        let practitioner_id = (role == "practitioner")
            .then(|| created.first().map(|p| p.id.to_string()))
            .flatten();
        services
            .users
            .create(
                &actor,
                NewUser {
                    email: email.into(),
                    password: DEMO_STAFF_PASSWORD.into(),
                    role: role.into(),
                    practitioner_id,
                },
            )
            .await?;
    }
    Ok(Some(Setup {
        actor,
        today,
        practitioners: created,
    }))
}

/// Every free slot of `practitioner` on the local dates `from` up to `to` (excluded), past ones included.
async fn all_slots(
    services: &Services,
    actor: &Actor,
    practitioner: &Practitioner,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Interval>, ServiceError> {
    let (schedule, clinic) = services
        .schedules
        .get_schedule(actor, practitioner.id)
        .await?;
    let availability = Availability {
        schedule: &schedule,
        exceptions: &[],
        time_zone: clinic.time_zone,
        default_slot_minutes: practitioner.slot_minutes,
    };
    Ok(availability.free_slots(from, to, DateTime::<Utc>::MIN_UTC, Duration::zero(), &[]))
}

/// Creates the demo clinic with practitioners, schedules, patients and past and future appointments.
pub async fn seed(
    services: &Services,
    options: SeedOptions,
    now: DateTime<Utc>,
) -> Result<SeedReport, ServiceError> {
    let Some(Setup {
        actor,
        today,
        practitioners,
        ..
    }) = create_clinic(services, options.practitioners, options.days_back, now).await?
    else {
        return Ok(SeedReport {
            existed: true,
            ..SeedReport::default()
        });
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut report = SeedReport {
        practitioners: practitioners.len(),
        ..SeedReport::default()
    };

    let mut patients = Vec::with_capacity(options.patients);
    for i in 0..options.patients {
        let given = GIVEN[rng.random_range(0..GIVEN.len())];
        let family = FAMILY[rng.random_range(0..FAMILY.len())];
        let birth = today - Duration::days(rng.random_range(365..(90 * 365)));
        let p = services
            .patients
            .create(
                &actor,
                NewPatient {
                    given_name: given.into(),
                    family_name: family.into(),
                    birth_date: birth.to_string(),
                    sex: Some(
                        ["female", "male", "other", "unknown"][rng.random_range(0..4)].into(),
                    ),
                    phone: Some(format!("+49151{:08}", i)),
                    email: (i % 3 == 0).then(|| {
                        format!(
                            "{}.{}{}@example.org",
                            given.to_lowercase(),
                            family.to_lowercase(),
                            i
                        )
                    }),
                    emergency_contact: None,
                    insurance: None,
                },
            )
            .await?;
        patients.push(p.id);
    }
    report.patients = patients.len();
    if patients.is_empty() {
        return Ok(report);
    }

    let from = today - Duration::days(options.days_back);
    let to = today + Duration::days(options.days_ahead + 1);
    for p in &practitioners {
        for slot in all_slots(services, &actor, p, from, to).await? {
            if !rng.random_bool(0.4) {
                continue;
            }
            let past = slot.start() < now;
            let input = BookInput {
                patient_id: patients[rng.random_range(0..patients.len())].to_string(),
                practitioner_id: p.id.to_string(),
                starts_at: slot.start().to_rfc3339(),
                duration_minutes: Some(p.slot_minutes),
                urgency: Some(
                    ["routine", "routine", "routine", "urgent"][rng.random_range(0..4)].into(),
                ),
                reason: Some(
                    ["check-up", "follow-up", "vaccination", "consultation"]
                        [rng.random_range(0..4)]
                    .into(),
                ),
                overbook: past,
            };
            let mut booked = services.booking.book(&actor, input.clone()).await;
            if let Err(ServiceError::BookingInPast) = booked {
                // The slot began while the seed ran, after `now`: it is a past one now.
                let late = BookInput {
                    overbook: true,
                    ..input
                };
                booked = services.booking.book(&actor, late).await;
            }
            let booked = match booked {
                Ok(a) => a,
                // A randomly picked patient may already be booked then: skip that slot.
                Err(ServiceError::BookingConflict(_)) => continue,
                Err(e) => return Err(e),
            };
            report.appointments += 1;
            let moves: &[AppointmentAction] = if past && slot.end() < now {
                match rng.random_range(0..10) {
                    0 => &[AppointmentAction::NoShow],
                    1 => &[AppointmentAction::Cancel(None)],
                    _ => &[
                        AppointmentAction::Confirm,
                        AppointmentAction::CheckIn {
                            override_window: true,
                        },
                        AppointmentAction::Start,
                        AppointmentAction::Complete,
                    ],
                }
            } else if rng.random_bool(0.5) {
                &[AppointmentAction::Confirm]
            } else {
                &[]
            };
            for action in moves {
                services
                    .booking
                    .act(&actor, booked.id, action.clone(), None)
                    .await?;
            }
        }
    }
    report.walk_ins = add_walk_ins(services, &actor, &patients).await?;
    Ok(report)
}

/// A lobby to look at: a few walk-ins of mixed urgency; answers how many joined.
async fn add_walk_ins(
    services: &Services,
    actor: &Actor,
    patients: &[PatientId],
) -> Result<usize, ServiceError> {
    let mut joined = 0;
    for (n, category) in ["standard", "urgent", "non_urgent", "very_urgent"]
        .into_iter()
        .enumerate()
    {
        let Some(patient) = patients.get(n) else {
            break;
        };
        services
            .queue
            .join(
                actor,
                JoinInput {
                    patient_id: patient.to_string(),
                    category: category.into(),
                    ..JoinInput::default()
                },
            )
            .await?;
        joined += 1;
    }
    Ok(joined)
}

/// How much [`seed_bulk`] creates: the demo clinic at benchmark size.
#[derive(Debug, Clone, Copy)]
pub struct BulkOptions {
    /// Patients.
    pub patients: usize,
    /// Practitioners.
    pub practitioners: usize,
    /// Appointments, spread over past days and the next [`BulkOptions::days_ahead`] days.
    pub appointments: usize,
    /// Days ahead of today holding booked appointments; the rest lie in the past.
    pub days_ahead: i64,
}

impl Default for BulkOptions {
    fn default() -> Self {
        Self {
            patients: 100_000,
            practitioners: 10,
            appointments: 200_000,
            days_ahead: 28,
        }
    }
}

/// Rows written per transaction by [`seed_bulk`].
const BULK_BATCH: usize = 5_000;
/// Share of past slots that [`seed_bulk`] books.
const PAST_FILL: f64 = 0.85;
/// Share of future slots that [`seed_bulk`] books, so there is still room to book.
const FUTURE_FILL: f64 = 0.4;

/// Creates the demo clinic at benchmark size, fast: the clinic, practitioners, schedules,
/// staff and walk-ins go through the services as in [`seed`], but patients and appointments
/// are built from the domain's own parsers and written straight to the store, thousands to
/// a transaction, without the audit events and outbox messages a booking through the API
/// makes. Every row is still valid: appointments lie on their practitioner's slots, and no
/// two active appointments of one practitioner or one patient overlap (on PostgreSQL the
/// exclusion constraints check it again). Past appointments are mostly completed, some
/// cancelled or no-shows; future ones booked or confirmed.
pub async fn seed_bulk(
    wiring: &Wiring,
    options: BulkOptions,
    now: DateTime<Utc>,
) -> Result<SeedReport, ServiceError> {
    let services = &wiring.services;
    // Enough past weekdays for the appointments the future days do not hold.
    let per_weekday: f64 = (0..options.practitioners)
        .map(|i| f64::from(8 * 60 / SPECIALTIES[i % SPECIALTIES.len()].2))
        .sum();
    let per_day = per_weekday * 5.0 / 7.0;
    let future = per_day * options.days_ahead as f64 * FUTURE_FILL;
    let past = (options.appointments as f64 - future).max(0.0);
    let days_back = if per_day > 0.0 {
        (past / (per_day * PAST_FILL)).ceil() as i64 + 7
    } else {
        0
    };
    let Some(Setup {
        actor,
        today,
        practitioners,
    }) = create_clinic(services, options.practitioners, days_back, now).await?
    else {
        return Ok(SeedReport {
            existed: true,
            ..SeedReport::default()
        });
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut report = SeedReport {
        practitioners: practitioners.len(),
        ..SeedReport::default()
    };

    let invalid = |e: InvalidValue| FieldErrors::single("seed", e.0);
    let mut patients = Vec::with_capacity(options.patients);
    let mut tx = wiring.store.begin(TxMode::Write).await?;
    for i in 0..options.patients {
        let given = GIVEN[rng.random_range(0..GIVEN.len())];
        let family = FAMILY[rng.random_range(0..FAMILY.len())];
        let birth = today - Duration::days(rng.random_range(365..(90 * 365)));
        let patient = Patient {
            id: PatientId::from_uuid(Uuid::now_v7()),
            clinic_id: actor.clinic_id,
            name: PersonName::parse(given, family).map_err(invalid)?,
            birth_date: BirthDate::parse(birth, today).map_err(invalid)?,
            sex: ["female", "male", "other", "unknown"][rng.random_range(0..4)]
                .parse::<Sex>()
                .map_err(invalid)?,
            phone: Some(Phone::parse(&format!("+49151{i:08}")).map_err(invalid)?),
            email: (i % 3 == 0)
                .then(|| {
                    Email::parse(&format!(
                        "{}.{}{i}@example.org",
                        given.to_lowercase(),
                        family.to_lowercase()
                    ))
                })
                .transpose()
                .map_err(invalid)?,
            emergency_contact: None,
            insurance: None,
            version: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        PatientRepo::insert(&wiring.store, &mut tx, &patient).await?;
        patients.push(patient.id);
        if patients.len().is_multiple_of(BULK_BATCH) {
            tx.commit().await?;
            tx = wiring.store.begin(TxMode::Write).await?;
        }
    }
    tx.commit().await?;
    report.patients = patients.len();
    if patients.is_empty() {
        return Ok(report);
    }

    // Which slots to book: from the last future day backwards, so the next weeks are as full
    // as asked and the past goes back as far as the count needs.
    let from = today - Duration::days(days_back);
    let to = today + Duration::days(options.days_ahead + 1);
    let mut slots = Vec::new();
    for p in &practitioners {
        slots.extend(
            all_slots(services, &actor, p, from, to)
                .await?
                .into_iter()
                .map(|slot| (slot, p.id)),
        );
    }
    slots.sort_by_key(|(slot, p)| std::cmp::Reverse((slot.start(), *p)));
    let mut chosen = Vec::with_capacity(options.appointments);
    for (slot, practitioner_id) in slots {
        if chosen.len() == options.appointments {
            break;
        }
        let fill = if slot.start() < now {
            PAST_FILL
        } else {
            FUTURE_FILL
        };
        if rng.random_bool(fill) {
            chosen.push((slot, practitioner_id));
        }
    }
    // Then in time order, so a patient's appointments are handed out in order too and "free
    // again at" is all there is to remember of them.
    chosen.reverse();
    let mut free_at = vec![DateTime::<Utc>::MIN_UTC; patients.len()];
    let mut next_patient = 0;
    let mut tx = wiring.store.begin(TxMode::Write).await?;
    for (slot, practitioner_id) in chosen {
        // The next patient in turn who is free by then (all are, unless there are very few).
        let Some(patient) = (0..patients.len())
            .map(|k| (next_patient + k) % patients.len())
            .find(|&k| free_at[k] <= slot.start())
        else {
            continue;
        };
        next_patient = (patient + 1) % patients.len();
        free_at[patient] = slot.end();
        let status = if slot.end() <= now {
            match rng.random_range(0..10) {
                0 => AppointmentStatus::NoShow,
                1 => AppointmentStatus::Cancelled,
                _ => AppointmentStatus::Completed,
            }
        } else if rng.random_bool(0.5) {
            AppointmentStatus::Confirmed
        } else {
            AppointmentStatus::Booked
        };
        let cancelled = status == AppointmentStatus::Cancelled;
        let appointment = Appointment {
            id: AppointmentId::from_uuid(Uuid::now_v7()),
            clinic_id: actor.clinic_id,
            patient_id: patients[patient],
            practitioner_id,
            interval: slot,
            urgency: [
                Urgency::Routine,
                Urgency::Routine,
                Urgency::Routine,
                Urgency::Urgent,
            ][rng.random_range(0..4)],
            reason: Some(
                ["check-up", "follow-up", "vaccination", "consultation"][rng.random_range(0..4)]
                    .into(),
            ),
            status,
            version: 1,
            rescheduled_from: None,
            rescheduled_to: None,
            cancelled_by: cancelled.then_some(actor.user_id),
            cancel_reason: None,
            // As for the services' seed: booking in the past is an admin's overbooking.
            overbooked: slot.start() < now,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        AppointmentRepo::insert(&wiring.store, &mut tx, &appointment).await?;
        report.appointments += 1;
        if report.appointments.is_multiple_of(BULK_BATCH) {
            tx.commit().await?;
            tx = wiring.store.begin(TxMode::Write).await?;
        }
    }
    tx.commit().await?;
    report.walk_ins = add_walk_ins(services, &actor, &patients).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;
    use clinicflow_store::testing::{TestBackend, TestDatabase};
    use secrecy::SecretString;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bulk_seed_creates_what_was_asked_once() {
        let db = TestDatabase::new(TestBackend::Sqlite)
            .await
            .expect("SQLite is always there");
        let settings = Settings {
            database_url: SecretString::from(db.url.clone()),
            ..Settings::default()
        };
        let wiring = crate::connect(&settings).await.expect("connects");
        let options = BulkOptions {
            patients: 30,
            practitioners: 3,
            appointments: 400,
            days_ahead: 7,
        };
        let report = seed_bulk(&wiring, options, Utc::now())
            .await
            .expect("seeded");
        assert_eq!(
            (
                report.existed,
                report.practitioners,
                report.patients,
                report.appointments,
                report.walk_ins
            ),
            (false, 3, 30, 400, 4)
        );
        let again = seed_bulk(&wiring, options, Utc::now())
            .await
            .expect("seeded");
        assert!(again.existed, "a second run creates nothing");
        wiring
            .services
            .auth
            .login(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, None, None)
            .await
            .expect("the demo admin logs in");
    }
}
