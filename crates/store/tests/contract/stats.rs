use clinicflow_domain::AppointmentStatus;
use clinicflow_ports::{AppointmentRepo, StatsRepo, StatusCount};

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
