use chrono::{NaiveTime, Weekday};
use clinicflow_domain::{AppointmentStatus, Schedule, WeeklyRule};
use clinicflow_ports::{
    AppointmentRepo, ScheduleRepo, StatsRepo, StatusCount, practitioner_tag, schedule_tag,
};

use crate::support::{Ctx, appointment, at, span};

pub async fn appointments_are_counted_per_practitioner_and_status_within_the_span(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let elsewhere = ctx.clinic("B").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let cuddy = ctx.practitioner(elsewhere, "Lisa", "Cuddy").await;
    let mut rows = Vec::new();
    for (n, (who, h, status)) in [
        (&house, 9, AppointmentStatus::Booked),
        (&house, 10, AppointmentStatus::Booked),
        (&house, 11, AppointmentStatus::Completed),
        (&wilson, 9, AppointmentStatus::NoShow),
        // Outside the span: before and after it.
        (&house, 7, AppointmentStatus::Booked),
        (&house, 18, AppointmentStatus::Booked),
    ]
    .into_iter()
    .enumerate()
    {
        let patient = ctx.patient(clinic, &format!("P{n}"), "Counted").await;
        let mut a = appointment(&patient, who, at(h, 0), 30);
        a.status = status;
        rows.push(a);
    }
    let other_patient = ctx.patient(elsewhere, "Other", "Clinic").await;
    rows.push(appointment(&other_patient, &cuddy, at(9, 0), 30));
    // A deleted one is not counted.
    let gone_patient = ctx.patient(clinic, "Gone", "Deleted").await;
    let mut gone = appointment(&gone_patient, &wilson, at(11, 0), 30);
    gone.deleted_at = Some(at(8, 0));
    rows.push(gone);
    let mut tx = ctx.write().await;
    for a in &rows {
        AppointmentRepo::insert(&ctx.store, &mut tx, a)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    let mut counts = ctx
        .store
        .appointment_counts(&mut tx, clinic, span((8, 0), (12, 0)))
        .await
        .unwrap();
    counts.sort_by_key(|c| (c.practitioner_id.as_uuid(), c.status.as_str()));
    let mut expected = vec![
        StatusCount {
            practitioner_id: house.id,
            status: AppointmentStatus::Booked,
            count: 2,
        },
        StatusCount {
            practitioner_id: house.id,
            status: AppointmentStatus::Completed,
            count: 1,
        },
        StatusCount {
            practitioner_id: wilson.id,
            status: AppointmentStatus::NoShow,
            count: 1,
        },
    ];
    expected.sort_by_key(|c| (c.practitioner_id.as_uuid(), c.status.as_str()));
    assert_eq!(counts, expected);
}

pub async fn writes_touch_the_tag_of_the_practitioner_whose_slots_they_change(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let patient = ctx.patient(clinic, "Ada", "Lovelace").await;

    let mut tx = ctx.write().await;
    assert!(tx.touched().is_empty());
    let mut a = appointment(&patient, &house, at(9, 0), 30);
    AppointmentRepo::insert(&ctx.store, &mut tx, &a)
        .await
        .unwrap();
    assert_eq!(tx.touched(), [practitioner_tag(house.id)]);
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    a.status = AppointmentStatus::Cancelled;
    a.version = 2;
    AppointmentRepo::update(&ctx.store, &mut tx, &a, 1)
        .await
        .unwrap();
    let schedule = Schedule::new(
        vec![
            WeeklyRule::new(
                Weekday::Mon,
                NaiveTime::MIN,
                NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                None,
            )
            .unwrap(),
        ],
        at(0, 0).date_naive(),
        None,
    )
    .unwrap();
    ScheduleRepo::put(&ctx.store, &mut tx, clinic, wilson.id, &schedule)
        .await
        .unwrap();
    // A booking's change leaves the open hours cached (its schedule did not change).
    assert_eq!(
        tx.touched(),
        [
            practitioner_tag(house.id),
            practitioner_tag(wilson.id),
            schedule_tag(wilson.id)
        ],
        "each practitioner once"
    );
    tx.commit().await.unwrap();

    // Reads touch nothing.
    let mut tx = ctx.read().await;
    AppointmentRepo::get(&ctx.store, &mut tx, clinic, a.id)
        .await
        .unwrap();
    assert!(tx.touched().is_empty());
}
