//! Queue use cases against mocked ports, and the arithmetic of the day's figures.

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::{
    Actor, Appointment, AppointmentStatus, Clinic, DeadlineRule, Encounter, Interval, PatientId,
    QueueEntry, QueueEntryId, QueueStatus, TriageCategory,
};
use uuid::Uuid;

use super::stats::percentile;
use super::*;

#[test]
fn the_p90_of_one_to_ten_minutes_is_nine_minutes() {
    let waits: Vec<Duration> = (1..=10).map(Duration::minutes).collect();
    let p90 = percentile(&waits, 0.9).expect("values");
    assert!(
        (p90 - Duration::minutes(9)).num_seconds().abs() <= 1,
        "{p90}"
    );
    assert_eq!(mean(&waits), Some(Duration::seconds(330)));
    assert_eq!(percentile(&[], 0.9), None);
}

#[test]
fn a_local_day_spans_23_hours_on_the_spring_change() {
    let clinic = Clinic {
        id: clinicflow_domain::ClinicId::from_uuid(Uuid::nil()),
        name: clinicflow_domain::ClinicName::parse("X").expect("valid"),
        time_zone: clinicflow_domain::TimeZone::parse("Europe/Berlin").expect("valid"),
        no_show_grace_minutes: 15,
        queue: clinicflow_domain::QueueSettings::default(),
        reminders: clinicflow_domain::ReminderOffsets::default(),
        check_in: clinicflow_domain::CheckInWindow::default(),
        version: 1,
    };
    let day = local_day(
        &clinic,
        chrono::NaiveDate::from_ymd_opt(2026, 3, 29).expect("valid"),
    )
    .expect("a day");
    assert_eq!(day.duration(), Duration::hours(23));
}

fn entry(n: u128, status: QueueStatus) -> QueueEntry {
    let at = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
    QueueEntry {
        id: QueueEntryId::from_uuid(Uuid::from_u128(n)),
        clinic_id: clinicflow_domain::ClinicId::from_uuid(Uuid::from_u128(1)),
        patient_id: PatientId::from_uuid(Uuid::from_u128(100 + n)),
        practitioner_id: None,
        department: None,
        appointment_id: None,
        category: TriageCategory::Standard,
        rule: DeadlineRule::WalkIn,
        arrived_at: at,
        deadline: at + Duration::minutes(120),
        status,
        note: None,
        called_by: None,
        called_at: None,
        started_at: None,
        finished_at: None,
        left_at: None,
        recalled_at: None,
        version: 1,
        updated_at: at,
    }
}

fn nurse() -> Actor {
    Actor {
        user_id: clinicflow_domain::UserId::from_uuid(Uuid::from_u128(9)),
        clinic_id: clinicflow_domain::ClinicId::from_uuid(Uuid::from_u128(1)),
        role: clinicflow_domain::Role::Nurse,
        practitioner_id: None,
        request_id: None,
    }
}

fn house() -> clinicflow_domain::Practitioner {
    clinicflow_domain::Practitioner {
        id: PractitionerId::from_uuid(Uuid::from_u128(3)),
        clinic_id: clinicflow_domain::ClinicId::from_uuid(Uuid::from_u128(1)),
        name: clinicflow_domain::PersonName::parse("Gregory", "House").expect("valid"),
        specialties: Vec::new(),
        department: Some("internal-medicine".into()),
        slot_minutes: 30,
        buffer_minutes: 0,
        active: true,
        version: 1,
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
    }
}

#[tokio::test]
async fn calling_next_takes_the_locked_entry_for_that_practitioner_and_announces_it() {
    let mut m = crate::mocks::Mocks::new(DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_001));
    m.practitioners
        .expect_get()
        .returning(|_, _, _| Ok(Some(house())));
    m.queue
        .expect_lock_next_waiting()
        .times(1)
        .withf(|_, _, scope| {
            scope.practitioner_id == Some(house().id)
                && scope.department.as_deref() == Some("internal-medicine")
        })
        .returning(|_, _, _| Ok(Some(entry(1, QueueStatus::Waiting))));
    m.queue
        .expect_update()
        .times(1)
        .withf(|_, e, expected| {
            e.status == QueueStatus::Called && e.called_by == Some(house().id) && *expected == 1
        })
        .returning(|_, _, _| Ok(()));
    m.audit.expect_append().times(1).returning(|_, _| Ok(()));
    m.outbox
        .expect_enqueue()
        .times(1)
        .withf(|_, msg| {
            msg.kind == clinicflow_domain::EventKind::PatientCalled
                && msg.payload.contains(&house().id.to_string())
        })
        .returning(|_, _| Ok(()));
    m.events.expect_publish().times(1).return_const(());
    let (ports, commits) = m.ports();
    let called = QueueService::new(ports)
        .call_next(&nurse(), &house().id.to_string())
        .await
        .expect("called")
        .expect("someone waits");
    assert_eq!(called.id, entry(1, QueueStatus::Waiting).id);
    assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_empty_queue_calls_nobody_and_writes_nothing() {
    let mut m = crate::mocks::Mocks::new(DateTime::<Utc>::UNIX_EPOCH);
    m.practitioners
        .expect_get()
        .returning(|_, _, _| Ok(Some(house())));
    m.queue
        .expect_lock_next_waiting()
        .returning(|_, _, _| Ok(None));
    m.queue.expect_update().never();
    m.events.expect_publish().never();
    let (ports, commits) = m.ports();
    let called = QueueService::new(ports)
        .call_next(&nurse(), &house().id.to_string())
        .await
        .expect("answered");
    assert_eq!(called, None);
    assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// A clinic with targets of its own, so that a deadline shows where it came from.
fn clinic(zone: &str) -> Clinic {
    Clinic {
        id: clinicflow_domain::ClinicId::from_uuid(Uuid::from_u128(1)),
        name: clinicflow_domain::ClinicName::parse("Praxis").expect("valid"),
        time_zone: clinicflow_domain::TimeZone::parse(zone).expect("valid"),
        no_show_grace_minutes: 15,
        queue: clinicflow_domain::QueueSettings {
            target_minutes: [0, 5, 30, 90, 180],
            checkin_grace_minutes: 10,
        },
        reminders: clinicflow_domain::ReminderOffsets::default(),
        check_in: clinicflow_domain::CheckInWindow::default(),
        version: 1,
    }
}

fn patient() -> clinicflow_domain::Patient {
    clinicflow_domain::Patient {
        id: PatientId::from_uuid(Uuid::from_u128(101)),
        clinic_id: clinic("UTC").id,
        name: clinicflow_domain::PersonName::parse("Ada", "Lovelace").expect("valid"),
        birth_date: clinicflow_domain::BirthDate::from_stored(
            chrono::NaiveDate::from_ymd_opt(1985, 12, 10).expect("valid"),
        ),
        sex: clinicflow_domain::Sex::Female,
        phone: None,
        email: None,
        emergency_contact: None,
        insurance: None,
        version: 1,
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
        deleted_at: None,
    }
}

fn appointment(status: AppointmentStatus) -> Appointment {
    let starts_at = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
    Appointment {
        id: clinicflow_domain::AppointmentId::from_uuid(Uuid::from_u128(50)),
        clinic_id: clinic("UTC").id,
        patient_id: PatientId::from_uuid(Uuid::from_u128(101)),
        practitioner_id: house().id,
        interval: Interval::starting_at(starts_at, Duration::minutes(30)).expect("valid"),
        urgency: clinicflow_domain::Urgency::Routine,
        reason: None,
        status,
        version: 3,
        rescheduled_from: None,
        rescheduled_to: None,
        cancelled_by: None,
        cancel_reason: None,
        overbooked: false,
        created_at: starts_at,
        updated_at: starts_at,
        deleted_at: None,
    }
}

/// Entry 1 of the appointment above, called by House and moved to `status`.
fn checked_in(status: QueueStatus) -> QueueEntry {
    QueueEntry {
        appointment_id: Some(appointment(AppointmentStatus::CheckedIn).id),
        called_by: Some(house().id),
        version: 2,
        ..entry(1, status)
    }
}

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(40)
}

fn mocks_with_clinic() -> crate::mocks::Mocks {
    let mut m = crate::mocks::Mocks::new(now());
    m.clinics
        .expect_get()
        .returning(|_, _| Ok(Some(clinic("UTC"))));
    m
}

#[tokio::test]
async fn a_walk_in_is_due_its_clinics_target_after_arriving() {
    let mut m = mocks_with_clinic();
    m.patients
        .expect_get()
        .times(1)
        .returning(|_, _, _| Ok(Some(patient())));
    m.queue
        .expect_open_for_patient()
        .times(1)
        .returning(|_, _, _| Ok(None));
    m.queue
        .expect_insert()
        .times(1)
        .withf(|_, e| {
            e.rule == DeadlineRule::WalkIn
                && e.category == TriageCategory::Urgent
                && e.status == QueueStatus::Waiting
                && e.arrived_at == now()
                && e.deadline == now() + Duration::minutes(30)
                && e.note.as_deref() == Some("dizzy")
        })
        .returning(|_, _| Ok(()));
    m.audit.expect_append().times(1).returning(|_, _| Ok(()));
    m.events.expect_publish().times(1).return_const(());
    let (ports, commits) = m.ports();
    let input = JoinInput {
        patient_id: patient().id.to_string(),
        category: "urgent".into(),
        note: Some("  dizzy ".into()),
        ..JoinInput::default()
    };
    let joined = QueueService::new(ports)
        .join(&nurse(), input)
        .await
        .expect("joined");
    assert_eq!(
        joined.deadline,
        now() + Duration::minutes(30),
        "the clinic's 30-minute urgent target, not the default 60"
    );
    assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

fn walk_in() -> JoinInput {
    JoinInput {
        patient_id: patient().id.to_string(),
        category: "standard".into(),
        ..JoinInput::default()
    }
}

#[tokio::test]
async fn a_patient_who_already_waits_is_refused_before_anything_is_written() {
    let mut m = mocks_with_clinic();
    m.patients
        .expect_get()
        .returning(|_, _, _| Ok(Some(patient())));
    m.queue
        .expect_open_for_patient()
        .times(1)
        .returning(|_, _, _| Ok(Some(checked_in(QueueStatus::Waiting))));
    m.queue.expect_insert().never();
    m.events.expect_publish().never();
    let (ports, commits) = m.ports();
    let err = QueueService::new(ports)
        .join(&nurse(), walk_in())
        .await
        .expect_err("already waiting");
    assert!(matches!(err, ServiceError::AlreadyInQueue), "got {err:?}");
    assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_second_entry_the_database_refuses_is_the_same_conflict() {
    // Two desks add the patient at once: both pass the early check, the index decides.
    let mut m = mocks_with_clinic();
    m.patients
        .expect_get()
        .returning(|_, _, _| Ok(Some(patient())));
    m.queue
        .expect_open_for_patient()
        .returning(|_, _, _| Ok(None));
    m.queue
        .expect_insert()
        .times(1)
        .returning(|_, _| Err(clinicflow_ports::RepoError::AlreadyQueued));
    m.events.expect_publish().never();
    let (ports, commits) = m.ports();
    let err = QueueService::new(ports)
        .join(&nurse(), walk_in())
        .await
        .expect_err("lost the race");
    assert!(matches!(err, ServiceError::AlreadyInQueue), "got {err:?}");
    assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn starting_service_opens_an_encounter_and_moves_the_appointment_in_progress() {
    let mut m = mocks_with_clinic();
    m.queue
        .expect_get()
        .returning(|_, _, _| Ok(Some(checked_in(QueueStatus::Called))));
    m.encounters
        .expect_insert()
        .times(1)
        .withf(|_, v| {
            v.practitioner_id == house().id
                && v.patient_id == entry(1, QueueStatus::Called).patient_id
                && v.queue_entry_id == Some(entry(1, QueueStatus::Called).id)
                && v.appointment_id == checked_in(QueueStatus::Called).appointment_id
                && v.started_at == now()
                && v.ended_at.is_none()
        })
        .returning(|_, _| Ok(()));
    m.appointments
        .expect_get()
        .returning(|_, _, _| Ok(Some(appointment(AppointmentStatus::CheckedIn))));
    m.appointments
        .expect_update()
        .times(1)
        .withf(|_, a, expected| a.status == AppointmentStatus::InProgress && *expected == 3)
        .returning(|_, _, _| Ok(()));
    m.queue
        .expect_update()
        .times(1)
        .withf(|_, e, expected| {
            e.status == QueueStatus::InService && e.started_at == Some(now()) && *expected == 2
        })
        .returning(|_, _, _| Ok(()));
    // The encounter made, the appointment moved, the entry moved.
    m.audit.expect_append().times(3).returning(|_, _| Ok(()));
    m.events.expect_publish().times(1).return_const(());
    let (ports, commits) = m.ports();
    let started = QueueService::new(ports)
        .act(
            &nurse(),
            entry(1, QueueStatus::Called).id,
            QueueAction::Start,
        )
        .await
        .expect("started");
    assert_eq!(started.status, QueueStatus::InService);
    assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn finishing_closes_the_encounter_and_completes_the_appointment() {
    let mut m = mocks_with_clinic();
    m.queue
        .expect_get()
        .returning(|_, _, _| Ok(Some(checked_in(QueueStatus::InService))));
    m.encounters
        .expect_open_for_entry()
        .times(1)
        .withf(|_, _, id| *id == entry(1, QueueStatus::InService).id)
        .returning(|_, _, _| {
            Ok(Some(Encounter {
                id: clinicflow_domain::EncounterId::from_uuid(Uuid::from_u128(70)),
                clinic_id: clinic("UTC").id,
                patient_id: entry(1, QueueStatus::InService).patient_id,
                practitioner_id: house().id,
                appointment_id: checked_in(QueueStatus::InService).appointment_id,
                queue_entry_id: Some(entry(1, QueueStatus::InService).id),
                started_at: now() - Duration::minutes(12),
                ended_at: None,
                notes: Some("fluids".into()),
                version: 1,
                updated_at: now() - Duration::minutes(12),
            }))
        });
    m.encounters
        .expect_update()
        .times(1)
        .withf(|_, v, expected| {
            v.ended_at == Some(now())
                && v.notes.as_deref() == Some("fluids")
                && v.version == 2
                && *expected == 1
        })
        .returning(|_, _, _| Ok(()));
    m.appointments
        .expect_get()
        .returning(|_, _, _| Ok(Some(appointment(AppointmentStatus::InProgress))));
    m.appointments
        .expect_update()
        .times(1)
        .withf(|_, a, _| a.status == AppointmentStatus::Completed)
        .returning(|_, _, _| Ok(()));
    m.queue
        .expect_update()
        .times(1)
        .withf(|_, e, _| e.status == QueueStatus::Done && e.finished_at == Some(now()))
        .returning(|_, _, _| Ok(()));
    m.audit.expect_append().times(2).returning(|_, _| Ok(()));
    m.events.expect_publish().times(1).return_const(());
    let (ports, commits) = m.ports();
    QueueService::new(ports)
        .act(
            &nurse(),
            entry(1, QueueStatus::InService).id,
            QueueAction::Finish,
        )
        .await
        .expect("finished");
    assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_retriage_recomputes_that_entrys_deadline_from_the_clinics_targets() {
    let mut m = mocks_with_clinic();
    m.queue
        .expect_get()
        .returning(|_, _, _| Ok(Some(entry(1, QueueStatus::Waiting))));
    let arrived_at = entry(1, QueueStatus::Waiting).arrived_at;
    m.queue
        .expect_update()
        .times(1)
        .withf(move |_, e, expected| {
            e.category == TriageCategory::VeryUrgent
                && e.deadline == arrived_at + Duration::minutes(5)
                && e.status == QueueStatus::Waiting
                && *expected == 1
        })
        .returning(|_, _, _| Ok(()));
    m.audit.expect_append().times(1).returning(|_, _| Ok(()));
    m.events.expect_publish().times(1).return_const(());
    let (ports, _) = m.ports();
    let moved = QueueService::new(ports)
        .act(
            &nurse(),
            entry(1, QueueStatus::Waiting).id,
            QueueAction::Retriage("very_urgent".into()),
        )
        .await
        .expect("re-triaged");
    assert_eq!(moved.deadline, arrived_at + Duration::minutes(5));
}

#[tokio::test]
async fn an_illegal_move_writes_nothing_and_names_the_allowed_moves() {
    for action in [
        QueueAction::Leave,
        QueueAction::Recall,
        QueueAction::Start,
        QueueAction::Retriage("urgent".into()),
    ] {
        let mut m = mocks_with_clinic();
        m.queue
            .expect_get()
            .returning(|_, _, _| Ok(Some(checked_in(QueueStatus::InService))));
        m.queue.expect_update().never();
        m.encounters.expect_insert().never();
        m.appointments.expect_update().never();
        m.audit.expect_append().never();
        m.events.expect_publish().never();
        let (ports, commits) = m.ports();
        let err = QueueService::new(ports)
            .act(
                &nurse(),
                entry(1, QueueStatus::InService).id,
                action.clone(),
            )
            .await
            .expect_err("in service: only finish");
        let ServiceError::IllegalQueueMove(err) = err else {
            panic!("{action:?}: {err:?}")
        };
        assert_eq!(
            (err.from, err.allowed),
            (QueueStatus::InService, vec![QueueStatus::Done]),
            "{action:?}"
        );
        assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn stats_count_the_clinic_local_day_of_one_practitioner() {
    let mut m = crate::mocks::Mocks::new(now());
    m.clinics
        .expect_get()
        .returning(|_, _| Ok(Some(clinic("Europe/Berlin"))));
    let day = |h: u32| {
        chrono::NaiveDate::from_ymd_opt(2026, 3, 29)
            .expect("valid")
            .and_hms_opt(0, 0, 0)
            .expect("valid")
            .and_utc()
            + Duration::hours(i64::from(h))
    };
    // Berlin's 29 March 2026 (the spring change): 28 March 23:00 to 29 March 22:00 UTC.
    let berlin = Interval::new(day(0) - Duration::hours(1), day(22)).expect("valid");
    m.queue
        .expect_arrived_within()
        .times(1)
        .withf(move |_, _, span, practitioner| *span == berlin && *practitioner == Some(house().id))
        .returning(|_, _, _, _| {
            Ok(vec![
                entry(1, QueueStatus::Left),
                QueueEntry {
                    called_at: Some(
                        entry(2, QueueStatus::Called).arrived_at + Duration::minutes(20),
                    ),
                    ..entry(2, QueueStatus::Called)
                },
            ])
        });
    m.appointments
        .expect_list()
        .times(1)
        .withf(move |_, _, f, _| {
            f.status == Some(AppointmentStatus::NoShow)
                && f.practitioner_id == Some(house().id)
                && f.from == Some(berlin.start())
                && f.to == Some(berlin.end())
        })
        .returning(|_, _, _, page| {
            Ok(clinicflow_domain::Page {
                items: Vec::new(),
                total: 2,
                request: page,
            })
        });
    let (ports, _) = m.ports();
    let stats = QueueService::new(ports)
        .stats(&nurse(), Some("2026-03-29"), Some(&house().id.to_string()))
        .await
        .expect("stats");
    assert_eq!(
        stats.counts.map(|(_, n)| n),
        [0, 1, 0, 0, 1],
        "waiting, called, in service, done, left"
    );
    assert_eq!(stats.no_shows, 2);
    assert_eq!(stats.mean_wait, Some(Duration::minutes(20)));
}
