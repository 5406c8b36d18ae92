//! Demo and benchmark data, created through the services so it passes the same rules as API input.

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::{Actor, Availability, Interval};
use clinicflow_services::schedule::RuleInput;
use clinicflow_services::{
    AppointmentAction, BookInput, JoinInput, NewClinic, NewPatient, NewPractitioner, NewUser,
    ScheduleInput, ServiceError, Services,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// Creates the demo clinic with practitioners, schedules, patients and past and future appointments.
pub async fn seed(
    services: &Services,
    options: SeedOptions,
    now: DateTime<Utc>,
) -> Result<SeedReport, ServiceError> {
    if services.clinics.find_by_name(DEMO_CLINIC).await?.is_some() {
        return Ok(SeedReport {
            existed: true,
            ..SeedReport::default()
        });
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
    let mut rng = StdRng::seed_from_u64(7);
    let mut report = SeedReport::default();
    let today = clinic.local_date(now);

    let mut practitioners = Vec::new();
    for i in 0..options.practitioners {
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
                    valid_from: Some((today - Duration::days(options.days_back + 1)).to_string()),
                    valid_to: None,
                },
            )
            .await?;
        practitioners.push(p);
    }
    report.practitioners = practitioners.len();
    for (email, role) in DEMO_STAFF {
        let practitioner_id = (role == "practitioner")
            .then(|| practitioners.first().map(|p| p.id.to_string()))
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
        let (schedule, clinic) = services.schedules.get_schedule(&actor, p.id).await?;
        let availability = Availability {
            schedule: &schedule,
            exceptions: &[],
            time_zone: clinic.time_zone,
            default_slot_minutes: p.slot_minutes,
        };
        let all: Vec<Interval> =
            availability.free_slots(from, to, DateTime::<Utc>::MIN_UTC, Duration::zero(), &[]);
        for slot in all {
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
            let booked = match services.booking.book(&actor, input).await {
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
                        AppointmentAction::CheckIn,
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
    // A lobby to look at: a few walk-ins of mixed urgency.
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
                &actor,
                JoinInput {
                    patient_id: patient.to_string(),
                    category: category.into(),
                    ..JoinInput::default()
                },
            )
            .await?;
        report.walk_ins += 1;
    }
    Ok(report)
}
