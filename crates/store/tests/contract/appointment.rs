use std::sync::Arc;

use chrono::Duration;
use clinicflow_domain::page::AppointmentKey;
use clinicflow_domain::{
    Appointment, AppointmentStatus, AuditAction, AuditEvent, AuditEventId, ClinicId, Interval,
    Outcome, PageRequest, PatientId, ResourceType, Role, Urgency, UserId,
};
use clinicflow_ports::{
    AppointmentFilter, AppointmentRepo, AuditFilter, AuditRepo, Database, OverlapParty, RepoError,
    TxMode,
};
use clinicflow_store::testing::await_lock_waiters;
use clinicflow_store::{Backend, Store};
use uuid::Uuid;

use crate::support::{Ctx, appointment, at, created, patient, span};

pub async fn an_appointment_reads_back_and_updates_with_a_version_check(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let mut visit = appointment(&ada, &house, at(9, 0), 30);
    visit.urgency = Urgency::Urgent;
    visit.overbooked = true;
    let visit = ctx.appointment(visit).await;

    let mut tx = ctx.write().await;
    assert_eq!(
        AppointmentRepo::get(&ctx.store, &mut tx, clinic, visit.id)
            .await
            .unwrap(),
        Some(visit.clone())
    );
    let mut cancelled = visit.clone();
    cancelled.status = AppointmentStatus::Cancelled;
    cancelled.version = 2;
    cancelled.cancelled_by = Some(UserId::from_uuid(Uuid::now_v7()));
    cancelled.cancel_reason = Some("feeling better".into());
    cancelled.rescheduled_to = Some(clinicflow_domain::AppointmentId::from_uuid(Uuid::now_v7()));
    cancelled.reason = None;
    cancelled.updated_at = created() + Duration::minutes(5);
    AppointmentRepo::update(&ctx.store, &mut tx, &cancelled, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    assert_eq!(
        AppointmentRepo::get(&ctx.store, &mut tx, clinic, visit.id)
            .await
            .unwrap(),
        Some(cancelled.clone())
    );
    let err = AppointmentRepo::update(&ctx.store, &mut tx, &visit, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::StaleVersion), "{err:?}");
    drop(tx);

    let mut deleted = cancelled.clone();
    deleted.version = 3;
    deleted.deleted_at = Some(created() + Duration::hours(1));
    let mut tx = ctx.write().await;
    AppointmentRepo::update(&ctx.store, &mut tx, &deleted, 2)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    assert_eq!(
        AppointmentRepo::get(&ctx.store, &mut tx, clinic, visit.id)
            .await
            .unwrap(),
        None
    );
    let mut again = deleted.clone();
    again.version = 4;
    let err = AppointmentRepo::update(&ctx.store, &mut tx, &again, 3)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
}

pub async fn an_appointment_for_an_unknown_patient_is_not_found(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let ghost = patient(clinic, "Nobody", "Known");
    let mut tx = ctx.write().await;
    let err = AppointmentRepo::insert(
        &ctx.store,
        &mut tx,
        &appointment(&ghost, &house, at(9, 0), 30),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
}

pub async fn the_appointment_list_filters_and_orders(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let a3 = ctx
        .appointment(appointment(&ada, &house, at(11, 0), 30))
        .await;
    let a1 = ctx
        .appointment(appointment(&ada, &wilson, at(9, 0), 30))
        .await;
    let g2 = ctx
        .appointment(appointment(&grace, &house, at(10, 0), 30))
        .await;
    let mut confirmed = appointment(&grace, &wilson, at(12, 0), 30);
    confirmed.status = AppointmentStatus::Confirmed;
    let g4 = ctx.appointment(confirmed).await;
    let other = ctx.clinic("B").await;
    let bob = ctx.patient(other, "Bob", "Other").await;
    let doc = ctx.practitioner(other, "Doc", "Other").await;
    ctx.appointment(appointment(&bob, &doc, at(10, 0), 30))
        .await;

    let list = |filter: AppointmentFilter| {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            let page =
                AppointmentRepo::list(&ctx.store, &mut tx, clinic, &filter, PageRequest::default())
                    .await
                    .unwrap();
            assert_eq!(page.total, page.items.len() as u64);
            page.items
        }
    };
    assert_eq!(
        list(AppointmentFilter::default()).await,
        [a1.clone(), g2.clone(), a3.clone(), g4.clone()]
    );
    assert_eq!(
        list(AppointmentFilter {
            practitioner_id: Some(house.id),
            ..Default::default()
        })
        .await,
        [g2.clone(), a3.clone()]
    );
    assert_eq!(
        list(AppointmentFilter {
            patient_id: Some(ada.id),
            ..Default::default()
        })
        .await,
        [a1.clone(), a3.clone()]
    );
    assert_eq!(
        list(AppointmentFilter {
            status: Some(AppointmentStatus::Confirmed),
            ..Default::default()
        })
        .await,
        std::slice::from_ref(&g4)
    );
    assert_eq!(
        list(AppointmentFilter {
            from: Some(at(10, 0)),
            to: Some(at(12, 0)),
            ..Default::default()
        })
        .await,
        [g2.clone(), a3.clone()],
        "from is inclusive, to exclusive"
    );
    assert_eq!(
        list(AppointmentFilter {
            practitioner_id: Some(house.id),
            patient_id: Some(grace.id),
            from: Some(at(9, 30)),
            ..Default::default()
        })
        .await,
        std::slice::from_ref(&g2)
    );

    let mut tx = ctx.read().await;
    let second = PageRequest::parse(Some(2), Some(3)).unwrap();
    let page = AppointmentRepo::list(
        &ctx.store,
        &mut tx,
        clinic,
        &AppointmentFilter::default(),
        second,
    )
    .await
    .unwrap();
    assert_eq!((page.total, page.items), (4, vec![g4]));
}

pub async fn active_queries_skip_cancelled_deleted_and_touching_appointments(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;

    let with_status = |mut a: Appointment, status| {
        a.status = status;
        a
    };
    // Inactive and deleted appointments first, so the active ones can take the same time on PostgreSQL too.
    let mut deleted = appointment(&ada, &house, at(9, 0), 60);
    deleted.deleted_at = Some(created());
    ctx.appointment(deleted).await;
    for status in [
        AppointmentStatus::Cancelled,
        AppointmentStatus::NoShow,
        AppointmentStatus::Completed,
    ] {
        ctx.appointment(with_status(appointment(&ada, &house, at(9, 0), 60), status))
            .await;
    }
    let booked = ctx
        .appointment(appointment(&ada, &house, at(9, 30), 30))
        .await;
    let in_progress = ctx
        .appointment(with_status(
            appointment(&grace, &house, at(9, 0), 30),
            AppointmentStatus::InProgress,
        ))
        .await;
    let checked_in = ctx
        .appointment(with_status(
            appointment(&ada, &wilson, at(10, 0), 30),
            AppointmentStatus::CheckedIn,
        ))
        .await;
    let confirmed = ctx
        .appointment(with_status(
            appointment(&grace, &wilson, at(8, 0), 30),
            AppointmentStatus::Confirmed,
        ))
        .await;

    let mut tx = ctx.read().await;
    let morning = span((8, 0), (12, 0));
    assert_eq!(
        ctx.store
            .active_for_practitioner(&mut tx, clinic, house.id, morning)
            .await
            .unwrap(),
        [in_progress.clone(), booked.clone()]
    );
    assert_eq!(
        ctx.store
            .active_for_practitioner(&mut tx, clinic, wilson.id, morning)
            .await
            .unwrap(),
        [confirmed.clone(), checked_in.clone()]
    );
    assert_eq!(
        ctx.store
            .active_for_patient(&mut tx, clinic, ada.id, morning)
            .await
            .unwrap(),
        [booked.clone(), checked_in.clone()]
    );
    assert_eq!(
        ctx.store
            .active_for_patient(&mut tx, clinic, grace.id, morning)
            .await
            .unwrap(),
        [confirmed, in_progress.clone()]
    );
    // Half-open: an appointment ending at the span's start or starting at its end does not overlap.
    assert_eq!(
        ctx.store
            .active_for_practitioner(&mut tx, clinic, house.id, span((9, 30), (10, 0)))
            .await
            .unwrap(),
        std::slice::from_ref(&booked)
    );
    assert_eq!(
        ctx.store
            .active_for_practitioner(&mut tx, clinic, house.id, span((10, 0), (11, 0)))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        ctx.store
            .active_for_patient(&mut tx, clinic, ada.id, span((9, 45), (10, 1)))
            .await
            .unwrap(),
        [booked.clone(), checked_in.clone()]
    );
    let nobody = PatientId::from_uuid(Uuid::now_v7());
    assert_eq!(
        ctx.store
            .active_for_patient(&mut tx, clinic, nobody, morning)
            .await
            .unwrap(),
        []
    );

    // Both parties in one read: each side keeps its own span, every row comes once (Ada's
    // appointment with House matches both sides), in start order.
    assert_eq!(
        ctx.store
            .active_for_parties(&mut tx, clinic, house.id, morning, ada.id, morning)
            .await
            .unwrap(),
        [in_progress.clone(), booked.clone(), checked_in.clone()]
    );
    // Wilson from 10:00 (his 10:00 appointment), Grace only from 10:00 (none): her 08:00 and
    // 09:00 appointments lie outside her side's span, though inside Wilson's whole morning.
    assert_eq!(
        ctx.store
            .active_for_parties(
                &mut tx,
                clinic,
                wilson.id,
                span((10, 0), (10, 30)),
                grace.id,
                span((10, 0), (12, 0))
            )
            .await
            .unwrap(),
        std::slice::from_ref(&checked_in)
    );
    // Half-open on both sides, and another clinic's parties are nobody's.
    assert_eq!(
        ctx.store
            .active_for_parties(
                &mut tx,
                clinic,
                house.id,
                span((10, 0), (11, 0)),
                grace.id,
                span((9, 30), (10, 0))
            )
            .await
            .unwrap(),
        []
    );
    let other = ClinicId::from_uuid(Uuid::now_v7());
    assert_eq!(
        ctx.store
            .active_for_parties(&mut tx, other, house.id, morning, ada.id, morning)
            .await
            .unwrap(),
        []
    );
}

pub async fn the_longest_appointment_is_found_from_a_span_late_in_it(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let longest = clinicflow_domain::appointment::longest().num_minutes();
    // 00:00 to 12:00, and another that ends exactly where the search begins.
    let day = ctx
        .appointment(appointment(&ada, &house, at(0, 0), longest))
        .await;
    let mut earlier = appointment(&ada, &house, at(0, 0), longest);
    earlier.interval = Interval::starting_at(
        at(0, 0) - Duration::minutes(longest),
        Duration::minutes(longest),
    )
    .unwrap();
    ctx.appointment(earlier).await;

    let mut tx = ctx.read().await;
    // The last minute of the longest appointment: found, although it began 719 minutes earlier.
    let last_minute = span((11, 59), (12, 30));
    assert_eq!(
        ctx.store
            .active_for_practitioner(&mut tx, clinic, house.id, last_minute)
            .await
            .unwrap(),
        std::slice::from_ref(&day)
    );
    assert_eq!(
        ctx.store
            .active_for_patient(&mut tx, clinic, ada.id, last_minute)
            .await
            .unwrap(),
        std::slice::from_ref(&day)
    );
    assert_eq!(
        ctx.store
            .active_for_parties(&mut tx, clinic, house.id, last_minute, ada.id, last_minute)
            .await
            .unwrap(),
        std::slice::from_ref(&day)
    );
    assert_eq!(
        ctx.store
            .active_for_practitioner(&mut tx, clinic, house.id, span((12, 0), (13, 0)))
            .await
            .unwrap(),
        []
    );
}

pub async fn appointment_overlap_is_rejected(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let mut first = ctx
        .appointment(appointment(&ada, &house, at(9, 0), 30))
        .await;

    let attempt = |a: Appointment| {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.write().await;
            let result = AppointmentRepo::insert(&ctx.store, &mut tx, &a).await;
            if result.is_ok() {
                tx.commit().await.unwrap();
            }
            result
        }
    };
    // Touching intervals never overlap, on either database.
    attempt(appointment(&grace, &house, at(9, 30), 30))
        .await
        .unwrap();
    attempt(appointment(&grace, &house, at(8, 30), 30))
        .await
        .unwrap();

    let same_practitioner = appointment(&grace, &house, at(9, 15), 10);
    let same_patient = appointment(&ada, &wilson, at(8, 45), 30);
    match ctx.backend() {
        Backend::Postgres => {
            let err = attempt(same_practitioner).await.unwrap_err();
            assert!(
                matches!(err, RepoError::Overlap(OverlapParty::Practitioner)),
                "{err:?}"
            );
            let err = attempt(same_patient).await.unwrap_err();
            assert!(
                matches!(err, RepoError::Overlap(OverlapParty::Patient)),
                "{err:?}"
            );

            // An update that moves an active appointment onto another is rejected the same way.
            let mut moved = ctx
                .appointment(appointment(&grace, &wilson, at(13, 0), 30))
                .await;
            moved.interval = Interval::starting_at(at(8, 50), Duration::minutes(30)).unwrap();
            moved.version = 2;
            let mut tx = ctx.write().await;
            let err = AppointmentRepo::update(&ctx.store, &mut tx, &moved, 1)
                .await
                .unwrap_err();
            assert!(
                matches!(err, RepoError::Overlap(OverlapParty::Patient)),
                "{err:?}"
            );
            drop(tx);

            // Once cancelled, the first appointment's time is free again.
            first.status = AppointmentStatus::Cancelled;
            first.version = 2;
            let mut tx = ctx.write().await;
            AppointmentRepo::update(&ctx.store, &mut tx, &first, 1)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            attempt(appointment(&ada, &house, at(9, 0), 30))
                .await
                .unwrap();
            let err = attempt(appointment(&ada, &wilson, at(9, 0), 30))
                .await
                .unwrap_err();
            assert!(
                matches!(err, RepoError::Overlap(OverlapParty::Patient)),
                "{err:?}"
            );
        }
        Backend::Sqlite => {
            // No exclusion constraint: the services check inside BEGIN IMMEDIATE, the store just writes.
            attempt(same_practitioner).await.unwrap();
            attempt(same_patient).await.unwrap();
            first.status = AppointmentStatus::Cancelled;
            first.version = 2;
            let mut tx = ctx.write().await;
            AppointmentRepo::update(&ctx.store, &mut tx, &first, 1)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
}

/// One booking by the store's contract with no party lock in front: check for overlap and
/// insert in one write unit of work. On SQLite the write lock serialises the two; on
/// PostgreSQL the exclusion constraint decides, and may abort a transaction to break a
/// deadlock between concurrent constraint checks (`RepoError::Retry`), which runs again.
/// Twenty unlocked writers can deadlock each other many times over, and PostgreSQL finds each
/// deadlock only after `deadlock_timeout` (a second): writers that come straight back keep
/// forming new cycles with the survivors. So the retry backs off exponentially, by an amount
/// that differs per appointment, and is bounded by time, not by count.
async fn book(store: Arc<Store>, a: Appointment) -> Result<bool, RepoError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    let spread = u64::from(a.id.as_uuid().as_bytes()[15]) * 4;
    let mut attempts = 0u32;
    loop {
        match book_once(store.clone(), a.clone()).await {
            Err(RepoError::Retry(_)) if tokio::time::Instant::now() < deadline => {
                attempts += 1;
                let backoff = (20u64 << attempts.min(5)) + spread;
                tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
            }
            other => return other,
        }
    }
}

async fn book_once(store: Arc<Store>, a: Appointment) -> Result<bool, RepoError> {
    let mut tx = store.begin(TxMode::Write).await?;
    let busy = store
        .active_for_practitioner(&mut tx, a.clinic_id, a.practitioner_id, a.interval)
        .await?;
    let patient_busy = store
        .active_for_patient(&mut tx, a.clinic_id, a.patient_id, a.interval)
        .await?;
    if !busy.is_empty() || !patient_busy.is_empty() {
        return Ok(false);
    }
    match AppointmentRepo::insert(store.as_ref(), &mut tx, &a).await {
        Ok(()) => {}
        // Another transaction committed first: the database's no-overlap rule decided the race.
        Err(RepoError::Overlap(_)) => return Ok(false),
        Err(e) => return Err(e),
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn concurrent_bookings_leave_exactly_one_active(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let mut attempts = Vec::new();
    for i in 0..20 {
        let p = ctx.patient(clinic, &format!("Patient{i}"), "Racer").await;
        // Each wants a slightly different half hour, all overlapping 09:10-09:20.
        attempts.push(appointment(
            &p,
            &house,
            at(9, 0) + Duration::minutes(i % 10),
            20,
        ));
    }
    let store = Arc::new(ctx.store.clone());
    let tasks = attempts
        .into_iter()
        .map(|a| tokio::spawn(book(Arc::clone(&store), a)))
        .collect::<Vec<_>>();
    let mut booked = 0;
    for outcome in futures::future::join_all(tasks).await {
        if outcome.unwrap().unwrap() {
            booked += 1;
        }
    }
    assert_eq!(booked, 1, "exactly one booking wins the race");

    let mut tx = ctx.read().await;
    let active = ctx
        .store
        .active_for_practitioner(&mut tx, clinic, house.id, span((8, 0), (11, 0)))
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
}

pub async fn a_party_lock_holds_other_bookings_of_that_party_until_the_transaction_ends(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let (ada, bob) = (
        ctx.patient(clinic, "Ada", "Lovelace").await,
        ctx.patient(clinic, "Bob", "Builder").await,
    );
    let store = Arc::new(ctx.store.clone());
    let mut holder = store.begin(TxMode::Write).await.unwrap();
    store
        .lock_parties(&mut holder, clinic, house.id, ada.id)
        .await
        .unwrap();
    let waiter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut tx = store.begin(TxMode::Write).await?;
            store
                .lock_parties(&mut tx, clinic, house.id, bob.id)
                .await?;
            tx.commit().await
        })
    };
    // On PostgreSQL the waiter shows as waiting for the advisory lock; SQLite's single writer
    // keeps it out at `begin` already.
    await_lock_waiters(&ctx.db.url, 1, std::time::Duration::from_secs(10)).await;
    assert!(
        !waiter.is_finished(),
        "a booking of the same practitioner waits for the holder"
    );
    holder.commit().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("the waiter goes on once the holder commits")
        .unwrap()
        .unwrap();
}

pub async fn a_booking_holds_both_party_locks_and_takes_the_practitioners_first(ctx: Ctx) {
    if ctx.backend() != Backend::Postgres {
        // SQLite's single writer keeps every other booking out at `begin`.
        return;
    }
    let clinic = ctx.clinic("A").await;
    let [house, wilson, cuddy] = [
        ctx.practitioner(clinic, "Gregory", "House").await,
        ctx.practitioner(clinic, "James", "Wilson").await,
        ctx.practitioner(clinic, "Lisa", "Cuddy").await,
    ];
    let (ada, bob) = (
        ctx.patient(clinic, "Ada", "Lovelace").await,
        ctx.patient(clinic, "Bob", "Builder").await,
    );
    let store = Arc::new(ctx.store.clone());
    let book = |practitioner, patient| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut tx = store.begin(TxMode::Write).await?;
            store
                .lock_parties(&mut tx, clinic, practitioner, patient)
                .await?;
            tx.commit().await
        })
    };
    let mut holder = store.begin(TxMode::Write).await.unwrap();
    store
        .lock_parties(&mut holder, clinic, house.id, ada.id)
        .await
        .unwrap();
    // The patient's lock is held too: Ada with Wilson waits.
    let ada_elsewhere = book(wilson.id, ada.id);
    await_lock_waiters(&ctx.db.url, 1, std::time::Duration::from_secs(10)).await;
    // House with Bob waits for House before it asks for Bob ...
    let house_again = book(house.id, bob.id);
    await_lock_waiters(&ctx.db.url, 2, std::time::Duration::from_secs(10)).await;
    // ... so Bob with Cuddy is not held up by that waiter.
    tokio::time::timeout(std::time::Duration::from_secs(10), book(cuddy.id, bob.id))
        .await
        .expect("Bob's lock is free while his booking with House waits for House")
        .unwrap()
        .unwrap();
    assert!(!ada_elsewhere.is_finished() && !house_again.is_finished());
    holder.commit().await.unwrap();
    for waiter in [ada_elsewhere, house_again] {
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("the waiters go on once the holder commits")
            .unwrap()
            .unwrap();
    }
}

pub async fn overdue_unattended_appointments_are_booked_or_confirmed_and_started_before_the_bound(
    ctx: Ctx,
) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let with_status = |mut a: Appointment, status| {
        a.status = status;
        a
    };

    // Deleted and inactive ones first, so the active ones can take the same time on PostgreSQL too.
    let mut deleted = appointment(&ada, &house, at(7, 0), 30);
    deleted.deleted_at = Some(created());
    ctx.appointment(deleted).await;
    for status in [
        AppointmentStatus::Cancelled,
        AppointmentStatus::Completed,
        AppointmentStatus::NoShow,
    ] {
        ctx.appointment(with_status(
            appointment(&ada, &house, at(7, 30), 30),
            status,
        ))
        .await;
    }
    let oldest = ctx
        .appointment(appointment(&ada, &house, at(8, 0), 30))
        .await;
    ctx.appointment(with_status(
        appointment(&ada, &house, at(8, 30), 30),
        AppointmentStatus::CheckedIn,
    ))
    .await;
    // Two starting at once: the smaller id first, whatever the order of insertion.
    let mut ids = [Uuid::now_v7(), Uuid::now_v7()];
    ids.sort();
    let tie_second = ctx
        .appointment(Appointment {
            id: clinicflow_domain::AppointmentId::from_uuid(ids[1]),
            ..with_status(
                appointment(&ada, &house, at(9, 0), 30),
                AppointmentStatus::Confirmed,
            )
        })
        .await;
    let tie_first = ctx
        .appointment(Appointment {
            id: clinicflow_domain::AppointmentId::from_uuid(ids[0]),
            ..appointment(&grace, &wilson, at(9, 0), 30)
        })
        .await;
    ctx.appointment(with_status(
        appointment(&ada, &house, at(9, 30), 30),
        AppointmentStatus::InProgress,
    ))
    .await;
    let at_the_bound = ctx
        .appointment(appointment(&ada, &house, at(10, 0), 30))
        .await;
    ctx.appointment(with_status(
        appointment(&ada, &house, at(11, 0), 30),
        AppointmentStatus::Confirmed,
    ))
    .await;
    let other = ctx.clinic("B").await;
    let bob = ctx.patient(other, "Bob", "Other").await;
    let doc = ctx.practitioner(other, "Doc", "Other").await;
    ctx.appointment(appointment(&bob, &doc, at(8, 0), 30)).await;

    let mut tx = ctx.write().await;
    let mut overdue = async |before, limit| {
        ctx.store
            .overdue_unattended(&mut tx, clinic, before, limit)
            .await
            .unwrap()
    };
    assert_eq!(
        overdue(at(10, 0), 100).await,
        [oldest.clone(), tie_first.clone(), tie_second.clone()],
        "the start must be strictly before the bound"
    );
    assert_eq!(
        overdue(at(10, 0), 2).await,
        [oldest.clone(), tie_first.clone()]
    );
    assert_eq!(
        overdue(at(10, 0) + Duration::nanoseconds(1), 100).await,
        [oldest.clone(), tie_first, tie_second, at_the_bound],
        "a bound a nanosecond after a start takes that start in"
    );
    assert_eq!(overdue(at(8, 0), 100).await, []);
    assert_eq!(overdue(at(8, 1), 100).await, [oldest]);
}

pub async fn concurrent_sweepers_take_each_overdue_appointment_once(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let mut overdue = Vec::new();
    for i in 0..20 {
        let p = ctx.patient(clinic, &format!("Patient{i}"), "Absent").await;
        let start = at(5, 0) + Duration::minutes(10 * i);
        overdue.push(ctx.appointment(appointment(&p, &house, start, 10)).await);
    }
    let before = at(10, 0);

    // Sweepers meeting each other: a later one passes over the rows an earlier one holds
    // instead of waiting for them or taking them again.
    let taken = ctx
        .claim_in_turns(async |tx| {
            let batch = ctx
                .store
                .overdue_unattended(tx, clinic, before, 3)
                .await
                .unwrap();
            for a in &batch {
                let mut a = a.clone();
                a.status = AppointmentStatus::NoShow;
                a.version += 1;
                AppointmentRepo::update(&ctx.store, tx, &a, a.version - 1)
                    .await
                    .expect("no other sweeper took this row");
            }
            batch.into_iter().map(|a| a.id).collect()
        })
        .await;
    assert_eq!(
        taken,
        overdue.iter().map(|a| a.id).collect::<Vec<_>>(),
        "every appointment is taken exactly once, oldest first"
    );

    let mut tx = ctx.write().await;
    assert_eq!(
        ctx.store
            .overdue_unattended(&mut tx, clinic, before, 100)
            .await
            .unwrap(),
        []
    );
}

pub async fn a_no_show_audited_as_the_system_reads_back(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let actor = clinicflow_domain::Actor::system(clinic);
    let event = AuditEvent {
        id: AuditEventId::from_uuid(Uuid::now_v7()),
        clinic_id: clinic,
        actor_id: actor.user_id,
        actor_role: actor.role,
        action: AuditAction::Update,
        resource_type: ResourceType::Appointment,
        resource_id: Some(Uuid::now_v7()),
        patient_id: Some(PatientId::from_uuid(Uuid::now_v7())),
        at: created(),
        request_id: None,
        outcome: Outcome::Success,
    };
    let mut tx = ctx.write().await;
    AuditRepo::append(&ctx.store, &mut tx, &event)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    let read = AuditRepo::list(
        &ctx.store,
        &mut tx,
        clinic,
        &AuditFilter::default(),
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(read, [event]);
    assert_eq!(read[0].actor_role, Role::System);
}

/// One keyset page of at most `limit` appointments after `key`.
async fn listed_after(
    ctx: &Ctx,
    clinic: ClinicId,
    filter: &AppointmentFilter,
    key: Option<AppointmentKey>,
    limit: u32,
) -> Vec<Appointment> {
    let mut tx = ctx.read().await;
    AppointmentRepo::list_after(&ctx.store, &mut tx, clinic, filter, key, limit)
        .await
        .unwrap()
}

/// Walks the whole list `limit` appointments at a time.
async fn walk(
    ctx: &Ctx,
    clinic: ClinicId,
    filter: &AppointmentFilter,
    limit: u32,
) -> Vec<Appointment> {
    let mut seen: Vec<Appointment> = Vec::new();
    loop {
        let key = seen.last().map(AppointmentKey::of);
        let page = listed_after(ctx, clinic, filter, key, limit).await;
        assert!(page.len() <= limit as usize);
        let done = page.len() < limit as usize;
        seen.extend(page);
        if done {
            return seen;
        }
    }
}

pub async fn keyset_pages_of_appointments_follow_start_then_id_exactly(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let mut parties = Vec::new();
    for n in 0..3 {
        let p = ctx.patient(clinic, &format!("Pat{n}"), "Tester").await;
        let d = ctx.practitioner(clinic, &format!("Doc{n}"), "Tester").await;
        parties.push((p, d));
    }
    // Equal starts (to the microsecond) need other parties, so no overlap is refused.
    let odd = at(10, 0) + Duration::microseconds(123);
    let mut made = Vec::new();
    for (party, start) in [
        (0, at(9, 0)),
        (1, at(9, 0)),
        (2, at(9, 0)),
        (0, odd),
        (1, odd),
        (0, at(11, 0)),
        (1, at(8, 0)),
    ] {
        let (p, d) = &parties[party];
        made.push(ctx.appointment(appointment(p, d, start, 30)).await);
    }
    let mut tx = ctx.read().await;
    let all = AppointmentFilter::default();
    let expected =
        AppointmentRepo::list(&ctx.store, &mut tx, clinic, &all, PageRequest::first(200))
            .await
            .unwrap()
            .items;
    drop(tx);
    assert_eq!(expected.len(), 7);
    // Every page size puts page boundaries somewhere else, also inside a group of equal starts.
    for limit in 1..=8 {
        assert_eq!(
            walk(&ctx, clinic, &all, limit).await,
            expected,
            "limit {limit}"
        );
    }
    let house = AppointmentFilter {
        practitioner_id: Some(parties[0].1.id),
        from: Some(at(9, 0)),
        ..AppointmentFilter::default()
    };
    assert_eq!(
        walk(&ctx, clinic, &house, 1).await,
        [made[0].clone(), made[3].clone(), made[5].clone()]
    );
    // A key between two microseconds: nothing starts at it, the next row is the first later one.
    let between = AppointmentKey {
        starts_at: odd + Duration::nanoseconds(500),
        id: clinicflow_domain::AppointmentId::from_uuid(Uuid::nil()),
    };
    assert_eq!(
        listed_after(&ctx, clinic, &all, Some(between), 10).await,
        [made[5].clone()]
    );
    let exactly = AppointmentKey {
        starts_at: odd,
        id: clinicflow_domain::AppointmentId::from_uuid(Uuid::nil()),
    };
    assert_eq!(
        listed_after(&ctx, clinic, &all, Some(exactly), 10)
            .await
            .len(),
        3
    );
}

pub async fn a_keyset_walk_is_stable_while_appointments_are_inserted(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let mut parties = Vec::new();
    for n in 0..4 {
        let p = ctx.patient(clinic, &format!("Pat{n}"), "Tester").await;
        let d = ctx.practitioner(clinic, &format!("Doc{n}"), "Tester").await;
        parties.push((p, d));
    }
    let mut original = Vec::new();
    for start in [at(8, 0), at(9, 0), at(10, 0), at(11, 0), at(12, 0)] {
        let (p, d) = &parties[0];
        original.push(ctx.appointment(appointment(p, d, start, 30)).await);
    }
    let all = AppointmentFilter::default();
    let first = listed_after(&ctx, clinic, &all, None, 2).await;
    assert_eq!(first, original[..2]);
    let cursor = AppointmentKey::of(&first[1]);

    // Before the cursor: an earlier start, and the cursor's own start with a smaller id.
    let (p, d) = &parties[1];
    ctx.appointment(appointment(p, d, at(7, 0), 30)).await;
    let mut twin_before = appointment(p, d, at(9, 0), 30);
    twin_before.id = clinicflow_domain::AppointmentId::from_uuid(Uuid::from_u128(1));
    ctx.appointment(twin_before).await;
    // After it: the cursor's own start with a larger id, and a later start.
    let (p, d) = &parties[2];
    let twin_after = ctx.appointment(appointment(p, d, at(9, 0), 30)).await;
    let later = ctx.appointment(appointment(p, d, at(13, 0), 30)).await;

    let mut walked = first.clone();
    let mut key = cursor;
    loop {
        let page = listed_after(&ctx, clinic, &all, Some(key), 2).await;
        walked.extend(page.iter().cloned());
        match page.last() {
            Some(a) if page.len() == 2 => key = AppointmentKey::of(a),
            _ => break,
        }
    }
    let mut expected = original.clone();
    expected.insert(2, twin_after);
    expected.push(later);
    assert_eq!(
        walked, expected,
        "each original once, later inserts in place, earlier ones not"
    );
}

pub async fn appointments_are_read_many_at_once_within_one_clinic(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let early = ctx
        .appointment(appointment(&ada, &house, at(9, 0), 30))
        .await;
    let late = ctx
        .appointment(appointment(&ada, &house, at(11, 0), 30))
        .await;
    let mut gone = ctx
        .appointment(appointment(&ada, &house, at(13, 0), 30))
        .await;
    let grace = ctx.patient(other, "Grace", "Hopper").await;
    let wilson = ctx.practitioner(other, "James", "Wilson").await;
    let elsewhere = ctx
        .appointment(appointment(&grace, &wilson, at(9, 0), 30))
        .await;
    let mut tx = ctx.write().await;
    gone.version = 2;
    gone.deleted_at = Some(created() + Duration::hours(1));
    AppointmentRepo::update(&ctx.store, &mut tx, &gone, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    let unknown = clinicflow_domain::AppointmentId::from_uuid(Uuid::now_v7());
    let mut found = AppointmentRepo::get_many(
        &ctx.store,
        &mut tx,
        clinic,
        &[late.id, gone.id, elsewhere.id, unknown, early.id],
    )
    .await
    .unwrap();
    found.sort_by_key(|a| a.interval.start());
    assert_eq!(
        found,
        [early, late],
        "soft-deleted, unknown and other clinics' appointments are left out"
    );
    assert!(
        AppointmentRepo::get_many(&ctx.store, &mut tx, clinic, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

/// The party lock answers, in its round trip, whether the patient is a live patient of the
/// clinic: not one of another clinic, not a deleted one, not an unknown id.
pub async fn the_party_lock_tells_whether_the_patient_is_on_file(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let elsewhere = ctx.clinic("B").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let stranger = ctx.patient(elsewhere, "Bob", "Builder").await;
    let gone = ctx.patient(clinic, "Carl", "Gone").await;
    let mut deleted = gone.clone();
    deleted.deleted_at = Some(created());
    deleted.version += 1;
    let mut tx = ctx.write().await;
    clinicflow_ports::PatientRepo::update(&ctx.store, &mut tx, &deleted, gone.version)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let unknown = PatientId::from_uuid(uuid::Uuid::now_v7());
    for (patient, on_file) in [
        (ada.id, true),
        (stranger.id, false),
        (gone.id, false),
        (unknown, false),
    ] {
        let mut tx = ctx.write().await;
        let answer = ctx
            .store
            .lock_parties(&mut tx, clinic, house.id, patient)
            .await
            .unwrap();
        assert_eq!(answer, on_file, "{patient}");
    }
}

/// A list decodes its rows apart from a single read (by hand on PostgreSQL): every column,
/// set or NULL, comes back as stored.
pub async fn a_listed_appointment_reads_back_every_field(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let p = ctx.patient(clinic, "Ada", "Tester").await;
    let d = ctx.practitioner(clinic, "Doc", "Tester").await;
    let staff = ctx.user(clinic, "desk@example.org").await;
    let first = ctx.appointment(appointment(&p, &d, at(8, 0), 30)).await;
    let bare = ctx
        .appointment(Appointment {
            reason: None,
            ..appointment(&p, &d, at(9, 0), 30)
        })
        .await;
    let full = ctx
        .appointment(Appointment {
            urgency: Urgency::Urgent,
            status: AppointmentStatus::Cancelled,
            overbooked: true,
            rescheduled_from: Some(first.id),
            rescheduled_to: Some(bare.id),
            cancelled_by: Some(staff.id),
            cancel_reason: Some("patient called".into()),
            version: 3,
            updated_at: created() + Duration::minutes(5) + Duration::microseconds(7),
            ..appointment(&p, &d, at(10, 0) + Duration::microseconds(250), 45)
        })
        .await;
    let listed = listed_after(&ctx, clinic, &AppointmentFilter::default(), None, 10).await;
    assert_eq!(listed, [first, bare, full]);
}
