use chrono::{NaiveDate, NaiveTime, Weekday};
use clinicflow_domain::{
    ExceptionKind, PractitionerId, Schedule, ScheduleException, ScheduleExceptionId, WeeklyRule,
};
use clinicflow_ports::{RepoError, ScheduleRepo};
use uuid::Uuid;

use crate::support::{Ctx, span};

fn t(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn rule(day: Weekday, from: (u32, u32), to: (u32, u32), slot: Option<u32>) -> WeeklyRule {
    WeeklyRule::new(day, t(from.0, from.1), t(to.0, to.1), slot).unwrap()
}

pub async fn putting_a_schedule_replaces_the_previous_one(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let first = Schedule::new(
        vec![
            rule(Weekday::Mon, (9, 0), (12, 30), Some(30)),
            rule(Weekday::Mon, (13, 30), (17, 0), None),
            rule(Weekday::Sun, (0, 0), (23, 59), Some(15)),
            rule(Weekday::Wed, (8, 15), (11, 45), None),
        ],
        d(2026, 1, 1),
        None,
    )
    .unwrap();
    let mut tx = ctx.write().await;
    assert_eq!(
        ScheduleRepo::get(&ctx.store, &mut tx, clinic, house.id)
            .await
            .unwrap(),
        None
    );
    ScheduleRepo::put(&ctx.store, &mut tx, clinic, house.id, &first)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    assert_eq!(
        ScheduleRepo::get(&ctx.store, &mut tx, clinic, house.id)
            .await
            .unwrap(),
        Some(first)
    );
    drop(tx);

    let second = Schedule::new(
        vec![rule(Weekday::Fri, (10, 0), (14, 0), Some(20))],
        d(2026, 2, 1),
        Some(d(2026, 12, 31)),
    )
    .unwrap();
    let mut tx = ctx.write().await;
    ScheduleRepo::put(&ctx.store, &mut tx, clinic, house.id, &second)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    assert_eq!(
        ScheduleRepo::get(&ctx.store, &mut tx, clinic, house.id)
            .await
            .unwrap(),
        Some(second)
    );
}

pub async fn a_schedule_for_an_unknown_practitioner_is_not_found(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let elsewhere = ctx.practitioner(other, "John", "Dorian").await;
    let schedule = Schedule::empty(d(2026, 1, 1));
    for practitioner in [PractitionerId::from_uuid(Uuid::now_v7()), elsewhere.id] {
        let mut tx = ctx.write().await;
        let err = ScheduleRepo::put(&ctx.store, &mut tx, clinic, practitioner, &schedule)
            .await
            .unwrap_err();
        assert!(matches!(err, RepoError::NotFound), "{err:?}");
        let exception = ScheduleException {
            id: ScheduleExceptionId::from_uuid(Uuid::now_v7()),
            kind: ExceptionKind::TimeOff,
            interval: span((9, 0), (10, 0)),
            reason: None,
        };
        drop(tx);
        let mut tx = ctx.write().await;
        let err =
            ScheduleRepo::add_exception(&ctx.store, &mut tx, clinic, practitioner, &exception)
                .await
                .unwrap_err();
        assert!(matches!(err, RepoError::NotFound), "{err:?}");
    }
}

pub async fn exceptions_overlapping_a_span_come_in_start_order(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let exception = |kind, from, to, reason: Option<&str>| ScheduleException {
        id: ScheduleExceptionId::from_uuid(Uuid::now_v7()),
        kind,
        interval: span(from, to),
        reason: reason.map(str::to_owned),
    };
    let late = exception(ExceptionKind::ExtraHours, (18, 0), (20, 0), None);
    let early = exception(ExceptionKind::TimeOff, (8, 0), (10, 0), Some("dentist"));
    let touching = exception(ExceptionKind::TimeOff, (10, 0), (11, 0), None);
    let before = exception(ExceptionKind::TimeOff, (6, 0), (7, 0), None);
    let others = exception(ExceptionKind::TimeOff, (9, 0), (19, 0), None);
    let mut tx = ctx.write().await;
    for e in [&late, &early, &touching, &before] {
        ScheduleRepo::add_exception(&ctx.store, &mut tx, clinic, house.id, e)
            .await
            .unwrap();
    }
    ScheduleRepo::add_exception(&ctx.store, &mut tx, clinic, wilson.id, &others)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    let found = ctx
        .store
        .exceptions_overlapping(&mut tx, clinic, house.id, span((7, 0), (19, 0)))
        .await
        .unwrap();
    assert_eq!(found, vec![early.clone(), touching, late]);
    let found = ctx
        .store
        .exceptions_overlapping(&mut tx, clinic, house.id, span((9, 59), (10, 0)))
        .await
        .unwrap();
    assert_eq!(found, vec![early], "intervals are half-open");
}

pub async fn exceptions_are_listed_by_kind_and_removed_one_at_a_time(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let exception = |kind, from, to| ScheduleException {
        id: ScheduleExceptionId::from_uuid(Uuid::now_v7()),
        kind,
        interval: span(from, to),
        reason: None,
    };
    let afternoon_off = exception(ExceptionKind::TimeOff, (14, 0), (16, 0));
    let morning_off = exception(ExceptionKind::TimeOff, (8, 0), (9, 0));
    let evening = exception(ExceptionKind::ExtraHours, (18, 0), (20, 0));
    let wilsons = exception(ExceptionKind::TimeOff, (8, 0), (9, 0));
    let mut tx = ctx.write().await;
    for e in [&afternoon_off, &morning_off, &evening] {
        ScheduleRepo::add_exception(&ctx.store, &mut tx, clinic, house.id, e)
            .await
            .unwrap();
    }
    ScheduleRepo::add_exception(&ctx.store, &mut tx, clinic, wilson.id, &wilsons)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let listed = |practitioner: PractitionerId, kind| {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            ctx.store
                .exceptions(&mut tx, clinic, practitioner, kind)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        listed(house.id, ExceptionKind::TimeOff).await,
        vec![morning_off.clone(), afternoon_off.clone()]
    );
    assert_eq!(
        listed(house.id, ExceptionKind::ExtraHours).await,
        vec![evening.clone()]
    );

    // An id of another kind, practitioner or clinic is not found, and nothing goes stale.
    for (clinic, practitioner, kind, id) in [
        (clinic, house.id, ExceptionKind::ExtraHours, morning_off.id),
        (clinic, wilson.id, ExceptionKind::TimeOff, morning_off.id),
        (other, house.id, ExceptionKind::TimeOff, morning_off.id),
    ] {
        let mut tx = ctx.write().await;
        let err = ctx
            .store
            .remove_exception(&mut tx, clinic, practitioner, kind, id)
            .await
            .unwrap_err();
        assert!(matches!(err, RepoError::NotFound), "{err:?}");
        assert!(tx.touched().is_empty());
    }

    // A removal makes the practitioner's cached slots and open hours stale.
    let mut tx = ctx.write().await;
    ctx.store
        .remove_exception(
            &mut tx,
            clinic,
            house.id,
            ExceptionKind::TimeOff,
            morning_off.id,
        )
        .await
        .unwrap();
    assert_eq!(
        tx.touched(),
        [
            clinicflow_ports::practitioner_tag(house.id),
            clinicflow_ports::schedule_tag(house.id)
        ]
    );
    tx.commit().await.unwrap();
    assert_eq!(
        listed(house.id, ExceptionKind::TimeOff).await,
        vec![afternoon_off]
    );
    assert_eq!(
        listed(wilson.id, ExceptionKind::TimeOff).await,
        vec![wilsons],
        "another practitioner's exceptions stay"
    );
}
