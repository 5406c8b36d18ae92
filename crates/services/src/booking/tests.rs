//! Booking use cases against mocked ports: what is read, what is written, what is refused.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use clinicflow_domain::page::AppointmentKey;
use clinicflow_domain::{
    AuditAction, Clinic, ClinicId, ClinicName, EventKind, Interval, PatientId, PersonName,
    Practitioner, PractitionerId, ResourceType, Role, Schedule, TimeZone, Urgency, UserId,
    WeeklyRule,
};
use clinicflow_domain::{BirthDate, Claimed, Patient, Sex};
use clinicflow_ports::{AppointmentFilter, OverlapParty, RepoError};
use mockall::predicate::always;
use uuid::Uuid;

use super::list::{cursor_of, parse_cursor};
use super::*;
use crate::error::ConflictKind;
use crate::mocks::Mocks;
use crate::{Conflict, Once};

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("valid timestamp")
        .with_timezone(&Utc)
}

fn clinic() -> Clinic {
    Clinic {
        id: ClinicId::from_uuid(Uuid::from_u128(1)),
        name: ClinicName::parse("Praxis").expect("valid"),
        time_zone: TimeZone::parse("Europe/Berlin").expect("valid"),
        no_show_grace_minutes: 15,
        queue: clinicflow_domain::QueueSettings::default(),
        reminders: clinicflow_domain::ReminderOffsets::default(),
        check_in: clinicflow_domain::CheckInWindow::default(),
        version: 1,
    }
}

fn actor(role: Role) -> Actor {
    Actor {
        user_id: UserId::from_uuid(Uuid::from_u128(2)),
        clinic_id: clinic().id,
        role,
        practitioner_id: None,
        request_id: None,
    }
}

fn practitioner() -> Practitioner {
    Practitioner {
        id: PractitionerId::from_uuid(Uuid::from_u128(3)),
        clinic_id: clinic().id,
        name: PersonName::parse("Gregory", "House").expect("valid"),
        specialties: vec!["diagnostics".into()],
        department: None,
        slot_minutes: 30,
        buffer_minutes: 0,
        active: true,
        version: 1,
        created_at: at("2026-01-01T00:00:00Z"),
        updated_at: at("2026-01-01T00:00:00Z"),
    }
}

fn patient() -> Patient {
    Patient {
        id: PatientId::from_uuid(Uuid::from_u128(4)),
        clinic_id: clinic().id,
        name: PersonName::parse("Ada", "Lovelace").expect("valid"),
        birth_date: BirthDate::from_stored(NaiveDate::from_ymd_opt(1985, 12, 10).expect("valid")),
        sex: Sex::Female,
        phone: None,
        email: None,
        emergency_contact: None,
        insurance: None,
        version: 1,
        created_at: at("2026-01-01T00:00:00Z"),
        updated_at: at("2026-01-01T00:00:00Z"),
        deleted_at: None,
    }
}

/// Tuesdays 09:00-12:00 Berlin time (08:00-11:00 UTC in winter).
fn tuesday_mornings() -> Schedule {
    let rule = WeeklyRule::new(
        Weekday::Tue,
        NaiveTime::from_hms_opt(9, 0, 0).expect("valid"),
        NaiveTime::from_hms_opt(12, 0, 0).expect("valid"),
        Some(30),
    )
    .expect("valid rule");
    Schedule::new(
        vec![rule],
        NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid"),
        None,
    )
    .expect("valid schedule")
}

#[tokio::test]
async fn a_move_on_a_visit_long_over_corrects_the_record_and_announces_nothing() {
    for (start, announced) in [
        ("2026-11-27T08:00:00Z", false),
        ("2026-11-30T08:00:00Z", true),
    ] {
        let mut world = world(Vec::new());
        let current = existing(start, 30);
        let id = current.id;
        world
            .appointments
            .expect_get()
            .returning(move |_, _, _| Ok(Some(current.clone())));
        world
            .appointments
            .expect_update()
            .times(1)
            .returning(|_, _, _| Ok(()));
        world.outbox.checkpoint();
        world
            .outbox
            .expect_enqueue_many()
            .times(usize::from(announced))
            .withf(|_, m| m.len() == 1 && m[0].kind == clinicflow_domain::EventKind::NoShow)
            .returning(|_, _| Ok(()));
        // Reminders are withdrawn either way.
        world
            .outbox
            .expect_cancel_pending()
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        // A no-show closes the appointment's queue entry, if it has one: here none.
        world
            .queue
            .expect_for_appointment()
            .returning(|_, _, _| Ok(None));
        let (service, commits) = world.service();
        // The clock says 2026-11-30 12:00: the first visit ended three days ago.
        service
            .act(
                &actor(Role::Receptionist),
                id,
                AppointmentAction::NoShow,
                None,
            )
            .await
            .expect("marked");
        assert_eq!(commits.load(Ordering::SeqCst), 1, "{start}");
    }
}

fn existing(start: &str, minutes: i64) -> Appointment {
    let interval = Interval::starting_at(at(start), Duration::minutes(minutes)).expect("valid");
    Appointment {
        id: AppointmentId::from_uuid(Uuid::from_u128(99)),
        clinic_id: clinic().id,
        patient_id: PatientId::from_uuid(Uuid::from_u128(98)),
        practitioner_id: practitioner().id,
        interval,
        urgency: Urgency::Routine,
        reason: None,
        status: AppointmentStatus::Booked,
        version: 1,
        rescheduled_from: None,
        rescheduled_to: None,
        cancelled_by: None,
        cancel_reason: None,
        overbooked: false,
        created_at: at("2026-11-01T00:00:00Z"),
        updated_at: at("2026-11-01T00:00:00Z"),
        deleted_at: None,
    }
}

/// Mocks that answer the reads every booking makes; tests add the expectations they are about.
type World = Mocks;

fn world(practitioner_busy: Vec<Appointment>) -> World {
    let mut m = Mocks::new(at("2026-11-30T12:00:00Z"));
    m.clinics.expect_get().returning(|_, _| Ok(Some(clinic())));
    m.patients
        .expect_get()
        .returning(|_, _, id| Ok((id == patient().id).then(patient)));
    m.practitioners
        .expect_get()
        .returning(|_, _, id| Ok((id == practitioner().id).then(practitioner)));
    m.schedules
        .expect_get()
        .returning(|_, _, _| Ok(Some(tuesday_mornings())));
    m.schedules
        .expect_exceptions_overlapping()
        .returning(|_, _, _, _| Ok(Vec::new()));
    m.audit.expect_append().returning(|_, _| Ok(()));
    m.audit.expect_record().returning(|_| Ok(()));
    m.appointments
        .expect_lock_parties()
        .returning(|_, _, _, id| Ok(id == patient().id));
    let taken = practitioner_busy.clone();
    m.appointments
        .expect_active_for_practitioner()
        .returning(move |_, _, _, span| {
            Ok(practitioner_busy
                .iter()
                .filter(|a| a.interval.overlaps(&span))
                .cloned()
                .collect())
        });
    m.appointments
        .expect_active_for_patient()
        .returning(|_, _, _, _| Ok(Vec::new()));
    m.appointments.expect_active_for_parties().returning(
        move |_, _, practitioner_id, practitioner_span, patient_id, patient_span| {
            Ok(taken
                .iter()
                .filter(|a| {
                    (a.practitioner_id == practitioner_id
                        && a.interval.overlaps(&practitioner_span))
                        || (a.patient_id == patient_id && a.interval.overlaps(&patient_span))
                })
                .cloned()
                .collect())
        },
    );
    m.outbox.expect_enqueue_many().returning(|_, _| Ok(()));
    m.outbox
        .expect_cancel_pending()
        .returning(|_, _, _, _| Ok(()));
    m
}

/// The booking service over a world.
trait Booking {
    fn service(self) -> (BookingService, Arc<std::sync::atomic::AtomicUsize>);
}

impl Booking for World {
    fn service(self) -> (BookingService, Arc<std::sync::atomic::AtomicUsize>) {
        let (ports, commits) = self.ports();
        (BookingService::new(ports), commits)
    }
}

fn request(starts_at: &str) -> BookInput {
    BookInput {
        patient_id: patient().id.to_string(),
        practitioner_id: practitioner().id.to_string(),
        starts_at: starts_at.into(),
        duration_minutes: Some(30),
        urgency: None,
        reason: Some("check-up".into()),
        overbook: false,
    }
}

#[tokio::test]
async fn a_free_slot_inside_availability_is_booked_and_committed() {
    let mut world = world(vec![existing("2026-12-01T09:00:00Z", 30)]);
    world
        .appointments
        .expect_insert()
        .times(1)
        .withf(|_, a| {
            a.status == AppointmentStatus::Booked
                && a.interval.start() == at("2026-12-01T08:00:00Z")
                && a.interval.end() == at("2026-12-01T08:30:00Z")
                && a.reason.as_deref() == Some("check-up")
                && a.version == 1
        })
        .returning(|_, _| Ok(()));
    let (service, commits) = world.service();
    let booked = service
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect("booked");
    assert_eq!(booked.urgency, Urgency::Routine);
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_booking_locks_its_parties_then_reads_both_their_overlaps_in_one_query() {
    let mut world = world(Vec::new());
    world.appointments.checkpoint();
    let mut seq = mockall::Sequence::new();
    world
        .appointments
        .expect_lock_parties()
        .times(1)
        .in_sequence(&mut seq)
        .withf(|_, _, practitioner_id, patient_id| {
            *practitioner_id == practitioner().id && *patient_id == patient().id
        })
        .returning(|_, _, _, _| Ok(true));
    let slot =
        Interval::starting_at(at("2026-12-01T08:00:00Z"), Duration::minutes(30)).expect("valid");
    world
        .appointments
        .expect_active_for_parties()
        .times(1)
        .in_sequence(&mut seq)
        .withf(
            move |_, _, practitioner_id, practitioner_span, patient_id, patient_span| {
                *practitioner_id == practitioner().id
                    && *practitioner_span == slot
                    && *patient_id == patient().id
                    && *patient_span == slot
            },
        )
        .returning(|_, _, _, _, _, _| Ok(Vec::new()));
    world.appointments.expect_active_for_practitioner().never();
    world.appointments.expect_active_for_patient().never();
    world
        .appointments
        .expect_insert()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let (service, commits) = world.service();
    service
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect("booked");
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

/// A cache that holds `hours` as the open hours of every practitioner, and nothing else.
fn cache_with_open_hours(hours: clinicflow_domain::OpenHours) -> clinicflow_ports::MockCache {
    let bytes = crate::schedule::encode_open_hours(&hours);
    let mut cache = clinicflow_ports::MockCache::new();
    cache
        .expect_get()
        .returning(move |key| key.starts_with("open-hours:").then(|| bytes.clone()));
    // The clinic and the practitioner are read through their decoded forms: not cached here.
    cache.expect_get_derived().returning(|_, _| None);
    cache.expect_set().return_const(());
    cache.expect_stamp().returning(|_| None);
    cache.expect_set_tagged().return_const(());
    cache.expect_invalidate().return_const(());
    cache
}

fn hours(working: &[(&str, &str)]) -> clinicflow_domain::OpenHours {
    clinicflow_domain::OpenHours {
        working: working
            .iter()
            .map(|(from, to)| Interval::new(at(from), at(to)).expect("valid"))
            .collect(),
        time_off: Vec::new(),
    }
}

#[tokio::test]
async fn a_booking_reads_its_practitioner_once_and_its_open_hours_from_the_cache() {
    let mut world = world(Vec::new());
    world.practitioners.checkpoint();
    world
        .practitioners
        .expect_get()
        .times(1)
        .returning(|_, _, _| Ok(Some(practitioner())));
    world.schedules.checkpoint();
    world.schedules.expect_get().never();
    world.schedules.expect_exceptions_overlapping().never();
    world
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    let (mut ports, commits) = world.ports();
    ports.cache = Arc::new(cache_with_open_hours(hours(&[(
        "2026-12-01T08:00:00Z",
        "2026-12-01T11:00:00Z",
    )])));
    BookingService::new(ports)
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect("booked");
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_booking_outside_the_cached_open_hours_is_refused_though_the_schedule_would_fit() {
    let mut world = world(Vec::new());
    world.appointments.expect_insert().never();
    let (mut ports, commits) = world.ports();
    // The weekly rules say Tuesday 08:00-11:00 UTC; the cache says only from 09:00.
    ports.cache = Arc::new(cache_with_open_hours(hours(&[(
        "2026-12-01T09:00:00Z",
        "2026-12-01T11:00:00Z",
    )])));
    let err = BookingService::new(ports)
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect_err("outside the open hours");
    assert!(
        matches!(
            &err,
            ServiceError::BookingConflict(Conflict {
                kind: ConflictKind::OutsideAvailability,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn open_hours_read_on_a_miss_are_cached_under_the_schedule_tag_only() {
    let mut world = world(Vec::new());
    world
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    let (mut ports, _) = world.ports();
    let mut cache = clinicflow_ports::MockCache::new();
    cache.expect_get().returning(|_| None);
    cache.expect_get_derived().returning(|_, _| None);
    cache.expect_stamp().returning(|tags| {
        Some(clinicflow_ports::TagStamp(
            tags.iter().map(|t| (t.clone(), 1)).collect(),
        ))
    });
    cache
        .expect_set_tagged()
        .times(1)
        .withf(|key, stamp, _, _| {
            key.starts_with("open-hours:")
                && stamp.0 == [(clinicflow_ports::schedule_tag(practitioner().id), 1)]
        })
        .return_const(());
    // The clinic's settings are cached as well.
    cache
        .expect_set_tagged()
        .withf(|key, _, _, _| !key.starts_with("open-hours:"))
        .return_const(());
    cache.expect_invalidate().return_const(());
    ports.cache = Arc::new(cache);
    BookingService::new(ports)
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect("booked");
}

#[tokio::test]
async fn the_patients_appointment_with_another_practitioner_is_a_patient_conflict() {
    let mut elsewhere = existing("2026-12-01T08:15:00Z", 30);
    elsewhere.patient_id = patient().id;
    elsewhere.practitioner_id = PractitionerId::from_uuid(Uuid::from_u128(77));
    let mut world = world(vec![elsewhere]);
    world.appointments.expect_insert().never();
    let (service, commits) = world.service();
    let err = service
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect_err("the patient is busy");
    assert!(
        matches!(
            &err,
            ServiceError::BookingConflict(Conflict {
                kind: ConflictKind::Overlap {
                    party: OverlapParty::Patient,
                    with: Some(with),
                },
                ..
            }) if with.start() == at("2026-12-01T08:15:00Z")
        ),
        "{err:?}"
    );
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_appointment_of_both_parties_inside_the_buffer_only_is_the_practitioners_conflict() {
    // 07:40-07:55 with the same practitioner and patient: inside House's 10-minute buffer
    // before 08:00, but not overlapping the patient's 08:00-08:30.
    let mut earlier = existing("2026-12-01T07:40:00Z", 15);
    earlier.patient_id = patient().id;
    let mut world = world(vec![earlier]);
    world.practitioners.checkpoint();
    world.practitioners.expect_get().returning(|_, _, _| {
        Ok(Some(Practitioner {
            buffer_minutes: 10,
            ..practitioner()
        }))
    });
    world.appointments.expect_insert().never();
    let (service, _) = world.service();
    let err = service
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect_err("inside the buffer");
    assert!(
        matches!(
            &err,
            ServiceError::BookingConflict(Conflict {
                kind: ConflictKind::Overlap {
                    party: OverlapParty::Practitioner,
                    ..
                },
                ..
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_overlapping_booking_is_refused_with_the_taken_interval_and_next_slots() {
    let taken = existing("2026-12-01T08:00:00Z", 30);
    let mut world = world(vec![taken.clone()]);
    world.appointments.expect_insert().never();
    let (service, commits) = world.service();
    let err = service
        .book(&actor(Role::Receptionist), request("2026-12-01T08:15:00Z"))
        .await
        .expect_err("overlap");
    let ServiceError::BookingConflict(conflict) = err else {
        panic!("expected a booking conflict, got {err:?}")
    };
    assert_eq!(
        conflict.kind,
        ConflictKind::Overlap {
            party: OverlapParty::Practitioner,
            with: Some(taken.interval)
        }
    );
    let next: Vec<_> = conflict.next_slots.iter().map(|s| s.start()).collect();
    assert_eq!(
        next,
        [
            at("2026-12-01T08:30:00Z"),
            at("2026-12-01T09:00:00Z"),
            at("2026-12-01T09:30:00Z")
        ]
    );
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_booking_outside_availability_is_refused() {
    let mut world = world(Vec::new());
    world.appointments.expect_insert().never();
    let (service, _) = world.service();
    // 13:00 Berlin is after the Tuesday window closes at 12:00.
    let err = service
        .book(&actor(Role::Receptionist), request("2026-12-01T12:00:00Z"))
        .await
        .expect_err("outside");
    assert!(matches!(
        err,
        ServiceError::BookingConflict(Conflict {
            kind: ConflictKind::OutsideAvailability,
            ..
        })
    ));
}

#[tokio::test]
async fn booking_in_the_past_is_rejected() {
    let mut world = world(Vec::new());
    world.now = at("2026-12-01T09:00:00Z");
    world.appointments.expect_insert().never();
    let (service, _) = world.service();
    let err = service
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect_err("past");
    assert!(matches!(err, ServiceError::BookingInPast), "got {err:?}");
}

#[tokio::test]
async fn a_race_lost_at_the_database_becomes_a_conflict() {
    let mut world = world(Vec::new());
    world
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Err(RepoError::Overlap(OverlapParty::Patient)));
    let (service, commits) = world.service();
    let err = service
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect_err("lost race");
    assert!(
        matches!(
            err,
            ServiceError::BookingConflict(Conflict {
                kind: ConflictKind::Overlap {
                    party: OverlapParty::Patient,
                    ..
                },
                ..
            })
        ),
        "got {err:?}"
    );
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn receptionists_may_not_overbook() {
    let mut world = world(Vec::new());
    world.appointments.expect_insert().never();
    world.audit.checkpoint();
    world
        .audit
        .expect_record()
        .times(1)
        .withf(|e| e.outcome == clinicflow_domain::Outcome::Denied)
        .returning(|_| Ok(()));
    let (service, _) = world.service();
    let mut input = request("2026-12-01T12:00:00Z");
    input.overbook = true;
    let err = service
        .book(&actor(Role::Receptionist), input)
        .await
        .expect_err("forbidden");
    assert!(matches!(err, ServiceError::Forbidden(_)));
}

#[tokio::test]
async fn invalid_input_names_every_bad_field_and_touches_nothing() {
    let mut world = world(Vec::new());
    world.db = clinicflow_ports::MockDatabase::new();
    world.db.expect_begin().never();
    let (service, _) = world.service();
    let input = BookInput {
        patient_id: "nope".into(),
        practitioner_id: practitioner().id.to_string(),
        starts_at: "2026-12-01T08:00:00".into(),
        duration_minutes: Some(1),
        urgency: Some("whenever".into()),
        reason: None,
        overbook: false,
    };
    let err = service
        .book(&actor(Role::Receptionist), input)
        .await
        .expect_err("invalid");
    let ServiceError::Validation(fields) = err else {
        panic!("expected validation, got {err:?}")
    };
    let names: Vec<&str> = fields.fields().keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["duration_minutes", "patient_id", "starts_at", "urgency"]
    );
}

#[tokio::test]
async fn an_illegal_status_move_is_refused_and_nothing_is_written() {
    let mut world = world(Vec::new());
    let current = existing("2026-12-01T08:00:00Z", 30);
    let id = current.id;
    world
        .appointments
        .expect_get()
        .with(always(), always(), always())
        .returning(move |_, _, _| Ok(Some(current.clone())));
    world.appointments.expect_update().never();
    let (service, commits) = world.service();
    let err = service
        .act(
            &actor(Role::Receptionist),
            id,
            AppointmentAction::Complete,
            None,
        )
        .await
        .expect_err("booked cannot complete");
    assert!(
        matches!(
            err,
            ServiceError::IllegalTransition(clinicflow_domain::IllegalTransition::NotAllowed {
                from: AppointmentStatus::Booked,
                to: AppointmentStatus::Completed,
                ..
            })
        ),
        "got {err:?}"
    );
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_stale_if_match_is_a_failed_precondition() {
    let mut world = world(Vec::new());
    let current = existing("2026-12-01T08:00:00Z", 30);
    let id = current.id;
    world
        .appointments
        .expect_get()
        .returning(move |_, _, _| Ok(Some(current.clone())));
    world.appointments.expect_update().never();
    let (service, _) = world.service();
    let err = service
        .act(
            &actor(Role::Receptionist),
            id,
            AppointmentAction::Confirm,
            Some(7),
        )
        .await
        .expect_err("stale");
    assert!(matches!(
        err,
        ServiceError::PreconditionFailed { current: Some(1) }
    ));
}

#[tokio::test]
async fn a_confirmation_writes_the_new_status_against_the_read_version() {
    let mut world = world(Vec::new());
    let current = existing("2026-12-01T08:00:00Z", 30);
    let id = current.id;
    world
        .appointments
        .expect_get()
        .returning(move |_, _, _| Ok(Some(current.clone())));
    world
        .appointments
        .expect_update()
        .times(1)
        .withf(|_, a, expected| {
            a.status == AppointmentStatus::Confirmed && a.version == 2 && *expected == 1
        })
        .returning(|_, _, _| Ok(()));
    let (service, commits) = world.service();
    let a = service
        .act(
            &actor(Role::Receptionist),
            id,
            AppointmentAction::Confirm,
            Some(1),
        )
        .await
        .expect("confirmed");
    assert_eq!(a.status, AppointmentStatus::Confirmed);
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_reschedule_cancels_the_old_and_books_the_new_linked_both_ways() {
    let mut world = world(Vec::new());
    let mut current = existing("2026-12-01T08:00:00Z", 30);
    current.patient_id = patient().id;
    let id = current.id;
    let held = current.clone();
    world
        .appointments
        .expect_get()
        .returning(move |_, _, _| Ok(Some(held.clone())));
    // The old appointment still shows as busy: the service must not count it against its own replacement.
    world.appointments = {
        let mut a = world.appointments;
        a.checkpoint();
        a.expect_lock_parties()
            .times(1)
            .withf(move |_, _, practitioner_id, patient_id| {
                *practitioner_id == practitioner().id && *patient_id == patient().id
            })
            .returning(|_, _, _, _| Ok(true));
        let held = current.clone();
        a.expect_get()
            .returning(move |_, _, _| Ok(Some(held.clone())));
        let busy = current.clone();
        a.expect_active_for_parties()
            .returning(move |_, _, _, _, _, _| Ok(vec![busy.clone()]));
        a
    };
    let mut seq = mockall::Sequence::new();
    world
        .appointments
        .expect_update()
        .times(1)
        .in_sequence(&mut seq)
        .withf(move |_, a, expected| {
            a.id == id
                && a.status == AppointmentStatus::Cancelled
                && a.rescheduled_to.is_some()
                && *expected == 1
        })
        .returning(|_, _, _| Ok(()));
    world
        .appointments
        .expect_insert()
        .times(1)
        .in_sequence(&mut seq)
        .withf(move |_, a| {
            a.rescheduled_from == Some(id) && a.interval.start() == at("2026-12-01T08:15:00Z")
        })
        .returning(|_, _| Ok(()));
    let (service, commits) = world.service();
    let new = service
        .reschedule(
            &actor(Role::Receptionist),
            id,
            RescheduleInput {
                starts_at: "2026-12-01T08:15:00Z".into(),
                duration_minutes: None,
            },
            None,
        )
        .await
        .expect("rescheduled");
    assert_eq!(new.rescheduled_from, Some(id));
    assert_eq!(new.interval.duration(), Duration::minutes(30));
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

#[test]
fn local_dates_follow_the_clinic_zone() {
    let c = clinic();
    assert_eq!(
        c.local_date(at("2026-11-30T23:30:00Z")),
        NaiveDate::from_ymd_opt(2026, 12, 1).expect("valid")
    );
}

#[tokio::test]
async fn a_booking_is_audited_in_its_own_unit_of_work() {
    let mut world = world(Vec::new());
    world
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    world.audit.checkpoint();
    world
        .audit
        .expect_append()
        .times(1)
        .withf(|_, e| {
            e.action == clinicflow_domain::AuditAction::Create
                && e.resource_type == clinicflow_domain::ResourceType::Appointment
                && e.patient_id == Some(patient().id)
                && e.outcome == clinicflow_domain::Outcome::Success
        })
        .returning(|_, _| Ok(()));
    let (service, commits) = world.service();
    service
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect("booked");
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_nurse_may_not_book_and_the_refusal_is_audited() {
    let mut world = world(Vec::new());
    world.appointments.expect_insert().never();
    world.audit.checkpoint();
    world
        .audit
        .expect_record()
        .times(1)
        .withf(|e| e.outcome == clinicflow_domain::Outcome::Denied)
        .returning(|_| Ok(()));
    let (service, commits) = world.service();
    let err = service
        .book(&actor(Role::Nurse), request("2026-12-01T08:00:00Z"))
        .await
        .expect_err("nurses do not book");
    assert!(matches!(err, ServiceError::Forbidden(_)), "got {err:?}");
    assert_eq!(
        commits.load(Ordering::SeqCst),
        0,
        "nothing is committed; the denial is recorded through the audit log's own write"
    );
}

#[tokio::test]
async fn a_practitioner_does_not_see_another_practitioners_appointment() {
    let mut world = world(Vec::new());
    let current = existing("2026-12-01T08:00:00Z", 30);
    let id = current.id;
    world
        .appointments
        .expect_get()
        .returning(move |_, _, _| Ok(Some(current.clone())));
    let (service, _) = world.service();
    let mut other = actor(Role::Practitioner);
    other.practitioner_id = Some(PractitionerId::from_uuid(Uuid::from_u128(77)));
    let err = service.get(&other, id).await.expect_err("not theirs");
    assert!(matches!(err, ServiceError::NotFound(_)), "got {err:?}");
    let mut own = actor(Role::Practitioner);
    own.practitioner_id = Some(practitioner().id);
    assert_eq!(service.get(&own, id).await.expect("theirs").id, id);
}

#[tokio::test]
async fn checking_in_puts_the_patient_in_the_queue_in_the_same_unit_of_work() {
    let mut world = world(Vec::new());
    let mut current = existing("2026-11-30T12:30:00Z", 30);
    current.status = AppointmentStatus::Confirmed;
    current.patient_id = patient().id;
    let id = current.id;
    world
        .appointments
        .expect_get()
        .returning(move |_, _, _| Ok(Some(current.clone())));
    world
        .appointments
        .expect_update()
        .times(1)
        .returning(|_, _, _| Ok(()));
    world
        .queue
        .expect_insert()
        .times(1)
        .withf(move |_, e| {
            e.appointment_id == Some(id)
                && e.patient_id == patient().id
                && e.practitioner_id == Some(practitioner().id)
                && e.status == clinicflow_domain::QueueStatus::Waiting
                // Checked in half an hour before a 12:30 appointment: due at its start + 10 minutes grace.
                && e.deadline == at("2026-11-30T12:40:00Z")
        })
        .returning(|_, _| Ok(()));
    world
        .events
        .expect_publish()
        .times(1)
        .withf(|topic, _| topic.starts_with("queue:"))
        .return_const(());
    let (service, commits) = world.service();
    let a = service
        .act(
            &actor(Role::Receptionist),
            id,
            AppointmentAction::CheckIn {
                override_window: false,
            },
            None,
        )
        .await
        .expect("checked in");
    assert_eq!(a.status, AppointmentStatus::CheckedIn);
    assert_eq!(
        commits.load(Ordering::SeqCst),
        1,
        "appointment and queue entry commit together"
    );
}

#[tokio::test]
async fn a_failed_queue_insert_leaves_the_check_in_uncommitted() {
    let mut world = world(Vec::new());
    let mut current = existing("2026-11-30T12:30:00Z", 30);
    current.status = AppointmentStatus::Confirmed;
    let id = current.id;
    world
        .appointments
        .expect_get()
        .returning(move |_, _, _| Ok(Some(current.clone())));
    world
        .appointments
        .expect_update()
        .returning(|_, _, _| Ok(()));
    world
        .queue
        .expect_insert()
        .returning(|_, _| Err(RepoError::Duplicate("appointment_id")));
    world.events.expect_publish().never();
    let (service, commits) = world.service();
    let err = service
        .act(
            &actor(Role::Receptionist),
            id,
            AppointmentAction::CheckIn {
                override_window: false,
            },
            None,
        )
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, ServiceError::Duplicate("appointment_id")),
        "got {err:?}"
    );
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

/// A confirmed appointment starting at `start`, and a world that reads it.
fn confirmed_at(start: &str) -> (World, AppointmentId) {
    let mut world = world(Vec::new());
    let mut current = existing(start, 30);
    current.status = AppointmentStatus::Confirmed;
    let id = current.id;
    world
        .appointments
        .expect_get()
        .returning(move |_, _, _| Ok(Some(current.clone())));
    (world, id)
}

#[tokio::test]
async fn a_check_in_outside_the_clinics_window_writes_nothing_and_names_the_window() {
    // The clock says 2026-11-30 12:00: tomorrow's 08:00 appointment is far ahead.
    let (mut world, id) = confirmed_at("2026-12-01T08:00:00Z");
    world.appointments.expect_update().never();
    world.queue.expect_insert().never();
    let (service, commits) = world.service();
    let err = service
        .act(
            &actor(Role::Receptionist),
            id,
            AppointmentAction::CheckIn {
                override_window: false,
            },
            None,
        )
        .await
        .expect_err("outside the window");
    // The default window: an hour before the start to the no-show grace (15 min) after it.
    assert!(
        matches!(
            err,
            ServiceError::OutsideCheckInWindow(w)
                if w.opens_at == at("2026-12-01T07:00:00Z") && w.closes_at == at("2026-12-01T08:15:00Z")
        ),
        "got {err:?}"
    );
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_receptionist_may_not_override_the_check_in_window_and_the_refusal_is_audited() {
    let (mut world, id) = confirmed_at("2026-12-01T08:00:00Z");
    world.appointments.expect_update().never();
    world.audit.checkpoint();
    world
        .audit
        .expect_record()
        .times(1)
        .withf(|e| {
            e.action == AuditAction::Override && e.outcome == clinicflow_domain::Outcome::Denied
        })
        .returning(|_| Ok(()));
    let (service, _) = world.service();
    let err = service
        .act(
            &actor(Role::Receptionist),
            id,
            AppointmentAction::CheckIn {
                override_window: true,
            },
            None,
        )
        .await
        .expect_err("not allowed to override");
    assert!(matches!(err, ServiceError::Forbidden(_)), "got {err:?}");
}

#[tokio::test]
async fn an_admins_override_checks_in_outside_the_window_and_is_audited_as_one() {
    let (mut world, id) = confirmed_at("2026-12-01T08:00:00Z");
    world
        .appointments
        .expect_update()
        .times(1)
        .returning(|_, _, _| Ok(()));
    world
        .queue
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    world.events.expect_publish().return_const(());
    world.audit.checkpoint();
    world
        .audit
        .expect_append()
        .times(1)
        .withf(move |_, e| {
            e.action == AuditAction::Override
                && e.resource_id == Some(id.as_uuid())
                && e.outcome == clinicflow_domain::Outcome::Success
        })
        .returning(|_, _| Ok(()));
    let (service, commits) = world.service();
    let a = service
        .act(
            &actor(Role::Admin),
            id,
            AppointmentAction::CheckIn {
                override_window: true,
            },
            None,
        )
        .await
        .expect("checked in by override");
    assert_eq!(a.status, AppointmentStatus::CheckedIn);
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

/// A checked-in appointment starting at the clock's 12:00 and its waiting queue entry.
fn checked_in_with_entry() -> (Appointment, clinicflow_domain::QueueEntry) {
    let mut current = existing("2026-11-30T12:00:00Z", 30);
    current.status = AppointmentStatus::CheckedIn;
    let entry = clinicflow_domain::QueueEntry {
        id: clinicflow_domain::QueueEntryId::from_uuid(Uuid::from_u128(77)),
        clinic_id: clinic().id,
        patient_id: current.patient_id,
        practitioner_id: Some(practitioner().id),
        department: None,
        appointment_id: Some(current.id),
        category: clinicflow_domain::TriageCategory::Standard,
        rule: clinicflow_domain::DeadlineRule::Appointment {
            starts_at: at("2026-11-30T12:00:00Z"),
        },
        arrived_at: at("2026-11-30T11:50:00Z"),
        deadline: at("2026-11-30T12:10:00Z"),
        status: clinicflow_domain::QueueStatus::Waiting,
        note: None,
        called_by: None,
        called_at: None,
        started_at: None,
        finished_at: None,
        left_at: None,
        recalled_at: None,
        version: 1,
        updated_at: at("2026-11-30T11:50:00Z"),
    };
    (current, entry)
}

#[tokio::test]
async fn starting_an_appointment_opens_its_encounter_with_its_queue_entry_in_the_same_unit_of_work()
{
    let mut world = world(Vec::new());
    let (current, entry) = checked_in_with_entry();
    let (id, patient_id, entry_id) = (current.id, current.patient_id, entry.id);
    world
        .appointments
        .expect_get()
        .returning(move |_, _, _| Ok(Some(current.clone())));
    world
        .appointments
        .expect_update()
        .times(1)
        .returning(|_, _, _| Ok(()));
    world
        .queue
        .expect_for_appointment()
        .returning(move |_, _, _| Ok(Some(entry.clone())));
    world
        .queue
        .expect_update()
        .times(1)
        .returning(|_, _, _| Ok(()));
    world.events.expect_publish().return_const(());
    world
        .encounters
        .expect_insert()
        .times(1)
        .withf(move |_, e| {
            e.appointment_id == Some(id)
                && e.queue_entry_id == Some(entry_id)
                && e.patient_id == patient_id
                && e.practitioner_id == practitioner().id
                && e.started_at == at("2026-11-30T12:00:00Z")
                && e.ended_at.is_none()
        })
        .returning(|_, _| Ok(()));
    let (service, commits) = world.service();
    let a = service
        .act(&actor(Role::Nurse), id, AppointmentAction::Start, None)
        .await
        .expect("started");
    assert_eq!(a.status, AppointmentStatus::InProgress);
    assert_eq!(
        commits.load(Ordering::SeqCst),
        1,
        "the move, the entry and the encounter commit together"
    );
}

#[tokio::test]
async fn a_failed_encounter_insert_leaves_the_start_uncommitted() {
    let mut world = world(Vec::new());
    let (current, _) = checked_in_with_entry();
    let id = current.id;
    world
        .appointments
        .expect_get()
        .returning(move |_, _, _| Ok(Some(current.clone())));
    world
        .appointments
        .expect_update()
        .returning(|_, _, _| Ok(()));
    world
        .queue
        .expect_for_appointment()
        .returning(|_, _, _| Ok(None));
    world
        .encounters
        .expect_insert()
        .times(1)
        .returning(|_, _| Err(RepoError::Unavailable("down".into())));
    let (service, commits) = world.service();
    service
        .act(&actor(Role::Nurse), id, AppointmentAction::Start, None)
        .await
        .expect_err("no encounter, no start");
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_overbooking_is_audited_as_an_overbook() {
    let mut world = world(Vec::new());
    world
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    world.audit.checkpoint();
    world
        .audit
        .expect_append()
        .times(1)
        .withf(|_, e| {
            e.action == AuditAction::Overbook
                && e.resource_type == ResourceType::Appointment
                && e.outcome == clinicflow_domain::Outcome::Success
        })
        .returning(|_, _| Ok(()));
    let (service, _) = world.service();
    let mut input = request("2026-11-24T08:00:00Z");
    input.overbook = true;
    let a = service
        .book(&actor(Role::Admin), input)
        .await
        .expect("overbooked");
    assert!(a.overbooked);
}

#[tokio::test]
async fn a_deactivated_practitioner_takes_no_booking_not_even_an_overbooking() {
    let mut world = world(Vec::new());
    world.practitioners.checkpoint();
    world.practitioners.expect_get().returning(|_, _, id| {
        Ok((id == practitioner().id).then(|| Practitioner {
            active: false,
            ..practitioner()
        }))
    });
    world.appointments.expect_insert().never();
    let (service, commits) = world.service();
    for overbook in [false, true] {
        let mut input = request("2026-12-01T08:00:00Z");
        input.overbook = overbook;
        let err = service
            .book(&actor(Role::Admin), input)
            .await
            .expect_err("deactivated");
        assert!(
            matches!(err, ServiceError::PractitionerInactive),
            "got {err:?}"
        );
    }
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_booking_writes_its_confirmation_and_the_reminders_still_ahead_in_its_unit_of_work() {
    let mut world = world(Vec::new());
    world
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    world.outbox.checkpoint();
    // One insert: the confirmation, then the reminders. Booked at 12:00 for 08:00 the next
    // day: the 24-hour reminder is already past, the 2-hour one is not.
    world
        .outbox
        .expect_enqueue_many()
        .times(1)
        .withf(|_, m| {
            m.len() == 2
                && m[0].kind == clinicflow_domain::EventKind::BookingConfirmed
                && m[0].payload.contains("\"event\":\"booking.confirmed\"")
                && m[1].kind == clinicflow_domain::EventKind::ReminderDue
                && m[1].next_attempt_at == at("2026-12-01T06:00:00Z")
        })
        .returning(|_, _| Ok(()));
    let (service, commits) = world.service();
    service
        .book(&actor(Role::Receptionist), request("2026-12-01T08:00:00Z"))
        .await
        .expect("booked");
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_visit_recorded_after_it_ended_is_not_announced() {
    let mut world = world(Vec::new());
    world
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    world.outbox.checkpoint();
    world.outbox.expect_enqueue_many().never();
    let (service, commits) = world.service();
    // The clock says 2026-11-30 12:00; an admin records Tuesday 24 November's 08:00 visit.
    let mut input = request("2026-11-24T08:00:00Z");
    input.overbook = true;
    service
        .book(&actor(Role::Admin), input)
        .await
        .expect("recorded");
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

/// A world whose one clinic has `overdue` (each call of the sweeper's query takes the next
/// answer, then nothing) and no queue entries.
fn sweep_world(overdue: Vec<Vec<Appointment>>) -> World {
    let mut world = world(Vec::new());
    world
        .clinics
        .expect_list_ids()
        .returning(|_| Ok(vec![clinic().id]));
    let answers = std::sync::Mutex::new(overdue.into_iter());
    world
        .appointments
        .expect_overdue_unattended()
        .returning(move |_, _, _, _| {
            Ok(answers
                .lock()
                .expect("not poisoned")
                .next()
                .unwrap_or_default())
        });
    world
        .queue
        .expect_for_appointment()
        .returning(|_, _, _| Ok(None));
    world
}

fn overdue(id: u128, start: &str) -> Appointment {
    Appointment {
        id: AppointmentId::from_uuid(Uuid::from_u128(id)),
        ..existing(start, 30)
    }
}

#[tokio::test]
async fn the_sweeper_marks_an_overdue_appointment_no_show_as_the_system_in_one_unit_of_work() {
    let missed = overdue(90, "2026-11-30T11:00:00Z");
    let id = missed.id;
    let mut world = sweep_world(vec![vec![missed]]);
    world
        .appointments
        .expect_update()
        .times(1)
        .withf(move |_, a, expected| {
            a.id == id && a.status == AppointmentStatus::NoShow && a.version == 2 && *expected == 1
        })
        .returning(|_, _, _| Ok(()));
    world.audit.checkpoint();
    world
        .audit
        .expect_append()
        .times(1)
        .withf(move |_, e| {
            e.actor_id == UserId::from_uuid(Uuid::nil())
                && e.actor_role == Role::System
                && e.clinic_id == clinic().id
                && e.action == clinicflow_domain::AuditAction::Update
                && e.resource_id == Some(id.as_uuid())
                && e.request_id.is_none()
                && e.outcome == clinicflow_domain::Outcome::Success
        })
        .returning(|_, _| Ok(()));
    world.outbox.checkpoint();
    world
        .outbox
        .expect_enqueue_many()
        .times(1)
        .withf(move |_, m| {
            m.len() == 1
                && m[0].kind == EventKind::NoShow
                && m[0].appointment_id == Some(id)
                && m[0].payload.contains("\"event\":\"appointment.no_show\"")
        })
        .returning(|_, _| Ok(()));
    // Its reminders are withdrawn with it.
    world
        .outbox
        .expect_cancel_pending()
        .times(1)
        .withf(move |_, _, appointment, kind| *appointment == id && *kind == EventKind::ReminderDue)
        .returning(|_, _, _, _| Ok(()));
    world.events.expect_publish().never();
    let (service, commits) = world.service();
    let report = service
        .sweep_no_shows(10, Duration::hours(24))
        .await
        .expect("swept");
    assert_eq!(
        report,
        SweepReport {
            clinics: 1,
            marked: 1,
            skipped: 0,
            clinics_at_limit: 0,
            clinics_failed: 0,
        }
    );
    assert_eq!(
        commits.load(Ordering::SeqCst),
        1,
        "status, audit event and outbox messages commit together"
    );
}

#[tokio::test]
async fn a_clinic_whose_sweep_fails_does_not_stop_the_sweep_of_the_clinics_after_it() {
    let clinics: Vec<ClinicId> = (1..=3)
        .map(|n| ClinicId::from_uuid(Uuid::from_u128(n)))
        .collect();
    let mut world = world(Vec::new());
    let ids = clinics.clone();
    world
        .clinics
        .expect_list_ids()
        .returning(move |_| Ok(ids.clone()));
    let second = clinics[1];
    // The first and the third clinic each have one overdue appointment (then none); the
    // second clinic's query fails.
    let asked = std::sync::Mutex::new(std::collections::HashMap::<ClinicId, u32>::new());
    world
        .appointments
        .expect_overdue_unattended()
        .returning(move |_, clinic, _, _| {
            if clinic == second {
                return Err(RepoError::Other("a broken row".into()));
            }
            let mut asked = asked.lock().expect("not poisoned");
            let n = asked.entry(clinic).or_insert(0);
            *n += 1;
            Ok(if *n == 1 {
                vec![Appointment {
                    clinic_id: clinic,
                    ..overdue(clinic.as_uuid().as_u128() + 100, "2026-11-30T11:00:00Z")
                }]
            } else {
                Vec::new()
            })
        });
    world
        .queue
        .expect_for_appointment()
        .returning(|_, _, _| Ok(None));
    let marked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = marked.clone();
    world
        .appointments
        .expect_update()
        .returning(move |_, a, _| {
            sink.lock().expect("not poisoned").push(a.clinic_id);
            Ok(())
        });
    let (service, _) = world.service();
    let report = service
        .sweep_no_shows(10, Duration::hours(24))
        .await
        .expect("a failing clinic is reported, not raised");
    assert_eq!(
        *marked.lock().expect("not poisoned"),
        [clinics[0], clinics[2]],
        "the third clinic is swept after the second failed"
    );
    assert_eq!((report.marked, report.clinics_failed), (2, 1));
}

#[tokio::test]
async fn the_sweeper_asks_only_for_appointments_whose_grace_is_over() {
    let mut world = world(Vec::new());
    world
        .clinics
        .expect_list_ids()
        .returning(|_| Ok(vec![clinic().id]));
    // 12:00 now, 15 minutes of grace: an appointment that started at 11:45 or later is left alone.
    world
        .appointments
        .expect_overdue_unattended()
        .times(1)
        .withf(|_, clinic_id, started_before, _| {
            *clinic_id == clinic().id && *started_before == at("2026-11-30T11:45:00Z")
        })
        .returning(|_, _, _, _| Ok(Vec::new()));
    world.appointments.expect_update().never();
    world.audit.checkpoint();
    world.audit.expect_append().never();
    world.outbox.checkpoint();
    world.outbox.expect_enqueue_many().never();
    let (service, commits) = world.service();
    let report = service
        .sweep_no_shows(10, Duration::hours(24))
        .await
        .expect("swept");
    assert_eq!((report.clinics, report.marked), (1, 0));
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_appointment_changed_while_being_marked_is_skipped_and_the_sweep_goes_on() {
    let changed = overdue(90, "2026-11-30T10:00:00Z");
    let next = overdue(91, "2026-11-30T11:00:00Z");
    let (changed_id, next_id) = (changed.id, next.id);
    let mut world = sweep_world(vec![vec![changed], vec![next]]);
    world
        .appointments
        .expect_update()
        .times(2)
        .returning(move |_, a, _| {
            if a.id == changed_id {
                Err(RepoError::StaleVersion)
            } else {
                Ok(())
            }
        });
    world.outbox.checkpoint();
    // Each event is written before its appointment's update (so that the store may send both
    // in one round trip); the one whose update is refused is dropped with its unit of work,
    // which never commits.
    world
        .outbox
        .expect_enqueue_many()
        .times(2)
        .withf(move |_, m| {
            m.len() == 1 && [Some(changed_id), Some(next_id)].contains(&m[0].appointment_id)
        })
        .returning(|_, _| Ok(()));
    world
        .outbox
        .expect_cancel_pending()
        .returning(|_, _, _, _| Ok(()));
    let (service, commits) = world.service();
    let report = service
        .sweep_no_shows(10, Duration::hours(24))
        .await
        .expect("a skip is no failure");
    assert_eq!((report.marked, report.skipped), (1, 1));
    assert_eq!(
        commits.load(Ordering::SeqCst),
        1,
        "only the appointment that was marked commits"
    );
}

#[tokio::test]
async fn the_sweeper_marks_at_most_its_limit_per_clinic() {
    let mut world = sweep_world(
        (0..5)
            .map(|i| vec![overdue(90 + i, "2026-11-30T10:00:00Z")])
            .collect(),
    );
    world
        .appointments
        .expect_update()
        .times(2)
        .returning(|_, _, _| Ok(()));
    let (service, commits) = world.service();
    let report = service
        .sweep_no_shows(2, Duration::hours(24))
        .await
        .expect("swept");
    assert_eq!((report.marked, report.clinics_at_limit), (2, 1));
    assert_eq!(commits.load(Ordering::SeqCst), 2, "one unit of work each");
}

#[tokio::test]
async fn an_appointment_missed_long_ago_is_marked_without_telling_anyone() {
    // Two days before "now": the sweeper's first run over old data, say.
    let missed = overdue(93, "2026-11-28T09:00:00Z");
    let id = missed.id;
    let mut world = sweep_world(vec![vec![missed]]);
    world
        .appointments
        .expect_update()
        .times(1)
        .withf(move |_, a, _| a.id == id && a.status == AppointmentStatus::NoShow)
        .returning(|_, _, _| Ok(()));
    world.outbox.checkpoint();
    world.outbox.expect_enqueue_many().never();
    world
        .outbox
        .expect_cancel_pending()
        .times(1)
        .withf(move |_, _, appointment, kind| *appointment == id && *kind == EventKind::ReminderDue)
        .returning(|_, _, _, _| Ok(()));
    let (service, commits) = world.service();
    let report = service
        .sweep_no_shows(10, Duration::hours(24))
        .await
        .expect("swept");
    assert_eq!(report.marked, 1);
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

fn listed(id: u128, start: &str) -> Appointment {
    Appointment {
        id: AppointmentId::from_uuid(Uuid::from_u128(id)),
        ..existing(start, 30)
    }
}

#[tokio::test]
async fn a_keyset_page_fetches_one_extra_row_and_continues_after_its_last_row() {
    let rows = vec![
        listed(10, "2026-12-01T08:00:00Z"),
        listed(11, "2026-12-01T08:00:00Z"),
        listed(12, "2026-12-01T09:00:00.123456Z"),
    ];
    let mut world = world(Vec::new());
    let first = rows.clone();
    world
        .appointments
        .expect_list_after()
        .times(1)
        .withf(|_, _, filter, after, limit| {
            *filter == AppointmentFilter::default() && after.is_none() && *limit == 3
        })
        .returning(move |_, _, _, _, _| Ok(first.clone()));
    let second = rows[1].clone();
    let rest = vec![rows[2].clone()];
    world
        .appointments
        .expect_list_after()
        .times(1)
        .withf(move |_, _, _, after, limit| {
            *after == Some(AppointmentKey::of(&second)) && *limit == 3
        })
        .returning(move |_, _, _, _, _| Ok(rest.clone()));
    let (service, commits) = world.service();
    let staff = actor(Role::Receptionist);

    let (page, next) = service
        .list_after(&staff, AppointmentQuery::default(), None, Some(2))
        .await
        .expect("first page");
    assert_eq!(page, rows[..2]);
    let next = next.expect("a row was left over, so another page follows");
    let (page, last) = service
        .list_after(&staff, AppointmentQuery::default(), Some(&next), Some(2))
        .await
        .expect("second page");
    assert_eq!((page, last), (vec![rows[2].clone()], None));
    assert_eq!(commits.load(Ordering::SeqCst), 2, "each read is audited");
}

#[test]
fn an_appointment_cursor_keeps_sub_second_starts_exactly() {
    let row = listed(12, "2026-12-01T09:00:00.123456Z");
    let cursor = cursor_of(&row);
    assert_eq!(parse_cursor(&cursor), Ok(AppointmentKey::of(&row)));
}

#[tokio::test]
async fn a_bad_cursor_or_limit_names_the_parameter_and_reads_nothing() {
    let mut world = world(Vec::new());
    world.appointments.expect_list_after().never();
    let (service, commits) = world.service();
    let patients_cursor = crate::input::cursor("patients", &["Lovelace", "Ada", "x"]);
    for (cursor, limit, field) in [
        ("garbage!", None, "cursor"),
        (patients_cursor.as_str(), None, "cursor"),
        ("", Some(0), "limit"),
        ("", Some(201), "limit"),
    ] {
        let err = service
            .list_after(
                &actor(Role::Receptionist),
                AppointmentQuery::default(),
                Some(cursor),
                limit,
            )
            .await
            .expect_err("invalid");
        let ServiceError::Validation(fields) = err else {
            panic!("expected validation, got {err:?}")
        };
        let names: Vec<&str> = fields.fields().keys().map(String::as_str).collect();
        assert_eq!(names, [field], "{cursor} {limit:?}");
    }
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_practitioner_pages_only_through_their_own_appointments() {
    let mut world = world(Vec::new());
    world
        .appointments
        .expect_list_after()
        .times(1)
        .withf(|_, _, filter, _, _| filter.practitioner_id == Some(practitioner().id))
        .returning(|_, _, _, _, _| Ok(Vec::new()));
    let (service, _) = world.service();
    let mut own = actor(Role::Practitioner);
    own.practitioner_id = Some(practitioner().id);
    service
        .list_after(&own, AppointmentQuery::default(), None, None)
        .await
        .expect("their own");
    let someone_else = AppointmentQuery {
        practitioner_id: Some(Uuid::from_u128(77).to_string()),
        ..AppointmentQuery::default()
    };
    assert_eq!(
        service
            .list_after(&own, someone_else, None, None)
            .await
            .expect("an empty list, not an error"),
        (Vec::new(), None)
    );
}

#[tokio::test]
async fn a_keyset_list_is_audited_as_a_list_of_the_patient_asked_for() {
    let mut world = world(Vec::new());
    world
        .appointments
        .expect_list_after()
        .returning(|_, _, _, _, _| Ok(Vec::new()));
    world.audit.checkpoint();
    world
        .audit
        .expect_record()
        .times(1)
        .withf(|e| {
            e.action == AuditAction::List
                && e.resource_type == ResourceType::Appointment
                && e.patient_id == Some(patient().id)
                && e.outcome == clinicflow_domain::Outcome::Success
        })
        .returning(|_| Ok(()));
    let (service, commits) = world.service();
    let query = AppointmentQuery {
        patient_id: Some(patient().id.to_string()),
        ..AppointmentQuery::default()
    };
    service
        .list_after(&actor(Role::Receptionist), query, None, None)
        .await
        .expect("listed");
    assert_eq!(commits.load(Ordering::SeqCst), 1);
}

fn answer(body: &str) -> clinicflow_domain::StoredAnswer {
    clinicflow_domain::StoredAnswer {
        status: 201,
        headers: Vec::new(),
        body: body.into(),
    }
}

fn render(a: &Appointment) -> clinicflow_domain::StoredAnswer {
    answer(&a.id.to_string())
}

fn once(render: crate::idempotency::Render<'_, Appointment>) -> Once<'_, Appointment> {
    let key = clinicflow_domain::IdempotencyKey::parse("key-1").expect("valid");
    Once::new(key, "fingerprint".into(), Duration::hours(24), render)
}

#[tokio::test]
async fn a_keyed_booking_stores_its_answer_in_its_own_unit_of_work() {
    let mut world = world(Vec::new());
    world
        .idempotency
        .expect_claim()
        .times(1)
        .withf(|_, c| {
            c.key.as_str() == "key-1"
                && c.user_id == actor(Role::Receptionist).user_id
                && c.expires_at - c.created_at == Duration::hours(24)
        })
        .returning(|_, _| Ok(clinicflow_domain::Claimed::Fresh));
    world
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    world
        .idempotency
        .expect_answer()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let (service, commits) = world.service();
    let answered = service
        .book_idempotent(
            &actor(Role::Receptionist),
            request("2026-12-01T08:00:00Z"),
            &once(&render),
        )
        .await
        .expect("booked");
    assert!(!answered.replayed);
    assert_eq!(answered.answer.status, 201);
    assert_eq!(
        commits.load(Ordering::SeqCst),
        1,
        "key, answer and booking commit together"
    );
}

#[tokio::test]
async fn a_replayed_key_writes_nothing_and_a_reused_one_is_refused() {
    let shown = existing("2026-12-01T08:00:00Z", 30);
    let subject = |a: &clinicflow_domain::StoredAnswer| a.body.parse().ok();
    // The earlier answer shows an appointment still there, one gone, or the key was reused.
    for (claimed, found, commits_expected) in [
        (Claimed::Replay(answer(&shown.id.to_string())), true, 1),
        (Claimed::Replay(answer(&shown.id.to_string())), false, 0),
        (Claimed::Mismatch, false, 0),
    ] {
        let mut world = world(Vec::new());
        let replayed = matches!(claimed, Claimed::Replay(_));
        world
            .idempotency
            .expect_claim()
            .times(1)
            .returning(move |_, _| Ok(claimed.clone()));
        let stored = shown.clone();
        world
            .appointments
            .expect_get()
            .times(usize::from(replayed))
            .returning(move |_, _, _| Ok(found.then(|| stored.clone())));
        world.appointments.expect_insert().never();
        world.idempotency.expect_answer().never();
        world.outbox.checkpoint();
        world.outbox.expect_enqueue_many().never();
        world.audit.checkpoint();
        let patient = shown.patient_id;
        world
            .audit
            .expect_append()
            .times(usize::from(found))
            .withf(move |_, e| {
                (e.action, e.resource_type, e.patient_id)
                    == (AuditAction::Read, ResourceType::Appointment, Some(patient))
            })
            .returning(|_, _| Ok(()));
        let (service, commits) = world.service();
        let outcome = service
            .book_idempotent(
                &actor(Role::Receptionist),
                request("2026-12-01T08:00:00Z"),
                &once(&render).with_subject(&subject),
            )
            .await;
        match (replayed, found) {
            (true, true) => {
                let answered = outcome.expect("the first answer");
                assert!(answered.replayed);
                assert_eq!(answered.answer, answer(&shown.id.to_string()));
            }
            (true, false) => {
                let err = outcome.expect_err("the appointment is gone");
                assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
            }
            _ => {
                let err = outcome.expect_err("a reused key");
                assert!(matches!(err, ServiceError::IdempotencyKeyReused), "{err:?}");
            }
        }
        assert_eq!(
            commits.load(Ordering::SeqCst),
            commits_expected,
            "only the audited replay commits"
        );
    }
}
