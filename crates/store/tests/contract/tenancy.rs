use chrono::NaiveDate;
use clinicflow_domain::{PageRequest, Schedule};
use clinicflow_ports::{
    AppointmentFilter, AppointmentRepo, PatientFilter, PatientRepo, PractitionerFilter,
    PractitionerRepo, RepoError, ScheduleRepo,
};

use crate::support::{Ctx, appointment, at, span};

pub async fn another_clinic_can_neither_see_nor_change_rows(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let ada = ctx.patient(a, "Ada", "Lovelace").await;
    let house = ctx.practitioner(a, "Gregory", "House").await;
    let visit = ctx
        .appointment(appointment(&ada, &house, at(9, 0), 30))
        .await;
    let schedule = Schedule::empty(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
    let mut tx = ctx.write().await;
    ScheduleRepo::put(&ctx.store, &mut tx, a, house.id, &schedule)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    assert_eq!(
        PatientRepo::get(&ctx.store, &mut tx, b, ada.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        PractitionerRepo::get(&ctx.store, &mut tx, b, house.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        AppointmentRepo::get(&ctx.store, &mut tx, b, visit.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        ScheduleRepo::get(&ctx.store, &mut tx, b, house.id)
            .await
            .unwrap(),
        None
    );
    let patients = PatientRepo::list(
        &ctx.store,
        &mut tx,
        b,
        &PatientFilter::default(),
        PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!((patients.total, patients.items.len()), (0, 0));
    let practitioners = PractitionerRepo::list(
        &ctx.store,
        &mut tx,
        b,
        &PractitionerFilter::default(),
        PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!((practitioners.total, practitioners.items.len()), (0, 0));
    let appointments = AppointmentRepo::list(
        &ctx.store,
        &mut tx,
        b,
        &AppointmentFilter::default(),
        PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!((appointments.total, appointments.items.len()), (0, 0));
    let busy = ctx
        .store
        .active_for_practitioner(&mut tx, b, house.id, span((0, 0), (23, 0)))
        .await
        .unwrap();
    assert_eq!(busy, vec![]);

    // Claiming clinic B in the row itself does not reach clinic A's row.
    let mut hijacked = ada.clone();
    hijacked.clinic_id = b;
    hijacked.version = 2;
    let err = PatientRepo::update(&ctx.store, &mut tx, &hijacked, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    let mut hijacked = house.clone();
    hijacked.clinic_id = b;
    hijacked.version = 2;
    let err = PractitionerRepo::update(&ctx.store, &mut tx, &hijacked, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    let mut hijacked = visit.clone();
    hijacked.clinic_id = b;
    hijacked.version = 2;
    let err = AppointmentRepo::update(&ctx.store, &mut tx, &hijacked, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    drop(tx);

    // Nor can clinic B book clinic A's patient or practitioner.
    let mut tx = ctx.write().await;
    let mut foreign = appointment(&ada, &house, at(11, 0), 30);
    foreign.clinic_id = b;
    let err = AppointmentRepo::insert(&ctx.store, &mut tx, &foreign)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    drop(tx);

    let mut tx = ctx.read().await;
    assert_eq!(
        PatientRepo::get(&ctx.store, &mut tx, a, ada.id)
            .await
            .unwrap(),
        Some(ada)
    );
    assert_eq!(
        AppointmentRepo::get(&ctx.store, &mut tx, a, visit.id)
            .await
            .unwrap(),
        Some(visit)
    );
}
