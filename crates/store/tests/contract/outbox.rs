use std::collections::HashMap;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use clinicflow_domain::{
    AppointmentId, ClinicId, DeliveryStatus, EventKind, OutboxMessage, OutboxMessageId, PageRequest,
};
use clinicflow_ports::{OutboxRepo, RepoError};
use uuid::Uuid;

use crate::support::{Ctx, at, created, refused};

use EventKind::{BookingCancelled, BookingConfirmed, ReminderDue};

/// A pending message about `appointment`, due at `due`, never tried.
fn message(
    clinic: ClinicId,
    kind: EventKind,
    appointment: Option<AppointmentId>,
    due: DateTime<Utc>,
) -> OutboxMessage {
    OutboxMessage {
        id: OutboxMessageId::from_uuid(Uuid::now_v7()),
        clinic_id: clinic,
        kind,
        appointment_id: appointment,
        payload: r#"{"appointment_id":null}"#.to_owned(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
        delivered_at: None,
        created_at: created(),
    }
}

/// Two message ids, the first smaller, whatever the clock did between them.
fn ascending_pair() -> (OutboxMessageId, OutboxMessageId) {
    let mut ids = [Uuid::now_v7(), Uuid::now_v7()];
    ids.sort();
    (
        OutboxMessageId::from_uuid(ids[0]),
        OutboxMessageId::from_uuid(ids[1]),
    )
}

fn appointment_id() -> AppointmentId {
    AppointmentId::from_uuid(Uuid::now_v7())
}

/// `m` as it reads back: every instant cut to whole microseconds.
fn as_stored(m: &OutboxMessage) -> OutboxMessage {
    let cut = |t: DateTime<Utc>| t.trunc_subsecs(6);
    OutboxMessage {
        next_attempt_at: cut(m.next_attempt_at),
        delivered_at: m.delivered_at.map(cut),
        created_at: cut(m.created_at),
        ..m.clone()
    }
}

async fn enqueue(ctx: &Ctx, messages: &[&OutboxMessage]) {
    let mut tx = ctx.write().await;
    for m in messages {
        ctx.store.enqueue(&mut tx, m).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn get(ctx: &Ctx, clinic: ClinicId, id: OutboxMessageId) -> Option<OutboxMessage> {
    let mut tx = ctx.read().await;
    OutboxRepo::get(&ctx.store, &mut tx, clinic, id)
        .await
        .unwrap()
}

/// The ids a claim at `now` takes, in id order; then each claimed message is put back as it
/// was in `before` (its state when enqueued), so the next claim sees the same messages due.
/// (A dropped transaction would do, but its rollback may come after the next claim's start
/// on another connection of the pool, whose `SKIP LOCKED` would then skip them.)
async fn claim(
    ctx: &Ctx,
    now: DateTime<Utc>,
    limit: u32,
    before: &HashMap<OutboxMessageId, OutboxMessage>,
) -> Vec<OutboxMessageId> {
    let mut tx = ctx.write().await;
    let claimed = ctx
        .store
        .claim_due(&mut tx, now, limit, now + Duration::minutes(2))
        .await
        .unwrap();
    let restored = claimed
        .iter()
        .map(|m| before[&m.id].clone())
        .collect::<Vec<_>>();
    ctx.store.record_all(&mut tx, &restored).await.unwrap();
    tx.commit().await.unwrap();
    claimed.into_iter().map(|m| m.id).collect()
}

fn page(page: u64, size: u64) -> PageRequest {
    PageRequest::parse(Some(page), Some(size)).unwrap()
}

pub async fn an_outbox_message_reads_back_with_every_field(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    // The appointment need not exist: a message outlives what it is about.
    let odd = Duration::nanoseconds(123_456_789);
    let about = OutboxMessage {
        payload: r#"{"appointment_id":"x","starts_at":"2026-12-01T09:00:00Z"}"#.to_owned(),
        next_attempt_at: at(9, 0) + odd,
        created_at: at(8, 0) + odd,
        ..message(clinic, BookingConfirmed, Some(appointment_id()), at(9, 0))
    };
    let general = OutboxMessage {
        status: DeliveryStatus::Dead,
        attempts: 8,
        last_error: Some("HTTP 410 Gone".to_owned()),
        delivered_at: Some(at(9, 30) + odd),
        ..message(clinic, EventKind::PatientCalled, None, at(9, 15))
    };
    enqueue(&ctx, &[&about, &general]).await;

    assert_eq!(get(&ctx, clinic, about.id).await, Some(as_stored(&about)));
    assert_eq!(
        get(&ctx, clinic, general.id).await,
        Some(as_stored(&general))
    );
    assert_eq!(get(&ctx, other, about.id).await, None);
    assert_eq!(
        get(&ctx, clinic, OutboxMessageId::from_uuid(Uuid::now_v7())).await,
        None
    );

    let mut tx = ctx.write().await;
    let outcome = ctx.store.enqueue(&mut tx, &about).await;
    let err = refused(tx, outcome).await;
    assert!(matches!(err, RepoError::Duplicate("id")), "{err:?}");
    let mut tx = ctx.write().await;
    let unknown_clinic = message(
        ClinicId::from_uuid(Uuid::now_v7()),
        ReminderDue,
        None,
        at(9, 0),
    );
    let outcome = ctx.store.enqueue(&mut tx, &unknown_clinic).await;
    let err = refused(tx, outcome).await;
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
}

pub async fn messages_enqueued_together_read_back_as_enqueued_one_by_one(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let odd = Duration::nanoseconds(123_456_789);
    let booking = appointment_id();
    let confirmation = OutboxMessage {
        payload: r#"{"appointment_id":"x"}"#.to_owned(),
        created_at: at(8, 0) + odd,
        ..message(clinic, BookingConfirmed, Some(booking), at(8, 0) + odd)
    };
    let reminder = message(clinic, ReminderDue, Some(booking), at(20, 0));
    let general = OutboxMessage {
        status: DeliveryStatus::Dead,
        attempts: 3,
        last_error: Some("HTTP 410 Gone".to_owned()),
        ..message(clinic, EventKind::PatientCalled, None, at(9, 15))
    };
    let together = [confirmation, reminder, general];
    let mut tx = ctx.write().await;
    ctx.store.enqueue_many(&mut tx, &together).await.unwrap();
    // Nothing to enqueue is no statement and no error.
    ctx.store.enqueue_many(&mut tx, &[]).await.unwrap();
    tx.commit().await.unwrap();
    for m in &together {
        assert_eq!(get(&ctx, clinic, m.id).await, Some(as_stored(m)));
    }

    // One bad message fails them all, with the error a single insert gives.
    let fresh = message(clinic, ReminderDue, Some(booking), at(21, 0));
    let mut tx = ctx.write().await;
    let outcome = ctx
        .store
        .enqueue_many(&mut tx, &[fresh.clone(), together[1].clone()])
        .await;
    let err = refused(tx, outcome).await;
    assert!(matches!(err, RepoError::Duplicate("id")), "{err:?}");
    assert_eq!(get(&ctx, clinic, fresh.id).await, None);

    // More than one statement's worth still lands whole.
    let many: Vec<OutboxMessage> = (0..1_100)
        .map(|i| message(clinic, ReminderDue, None, at(10, 0) + Duration::seconds(i)))
        .collect();
    let mut tx = ctx.write().await;
    ctx.store.enqueue_many(&mut tx, &many).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = ctx.read().await;
    let counted = ctx.store.pending_count(&mut tx).await.unwrap();
    assert_eq!(
        counted,
        2 + 1_100,
        "the two pending of the first batch, then all"
    );
}

pub async fn due_pending_messages_are_claimed_oldest_due_first_up_to_the_limit(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let now = at(10, 0) + Duration::nanoseconds(500);
    let mut names = HashMap::new();
    let mut label = |m: OutboxMessage, name: &'static str| {
        names.insert(m.id, name);
        m
    };
    // Due at the same time: the smaller id first.
    let (small, large) = ascending_pair();
    let tie_first = label(
        OutboxMessage {
            id: small,
            ..message(a, ReminderDue, None, at(9, 0))
        },
        "tie_first",
    );
    let tie_second = label(
        OutboxMessage {
            id: large,
            ..message(b, BookingConfirmed, None, at(9, 0))
        },
        "tie_second",
    );
    let oldest = label(message(b, ReminderDue, None, at(8, 0)), "oldest");
    let exactly_now = label(message(a, ReminderDue, None, now), "exactly_now");
    let later = label(
        message(a, ReminderDue, None, now + Duration::microseconds(1)),
        "later",
    );
    let delivered = label(
        OutboxMessage {
            status: DeliveryStatus::Delivered,
            delivered_at: Some(at(7, 0)),
            ..message(a, ReminderDue, None, at(7, 0))
        },
        "delivered",
    );
    let dead = label(
        OutboxMessage {
            status: DeliveryStatus::Dead,
            ..message(a, ReminderDue, None, at(7, 0))
        },
        "dead",
    );
    let cancelled = label(
        OutboxMessage {
            status: DeliveryStatus::Cancelled,
            ..message(b, ReminderDue, None, at(7, 0))
        },
        "cancelled",
    );
    enqueue(
        &ctx,
        &[
            &later,
            &tie_second,
            &exactly_now,
            &delivered,
            &oldest,
            &dead,
            &tie_first,
            &cancelled,
        ],
    )
    .await;
    let before = [
        &later,
        &tie_second,
        &exactly_now,
        &delivered,
        &oldest,
        &dead,
        &tie_first,
        &cancelled,
    ]
    .into_iter()
    .map(|m| (m.id, m.clone()))
    .collect::<HashMap<_, _>>();
    let claim = |now, limit| claim(&ctx, now, limit, &before);
    // Claimed in id order; which ones are claimed follows the due order.
    let named = |ids: Vec<OutboxMessageId>| {
        let mut names = ids.iter().map(|id| names[id]).collect::<Vec<_>>();
        names.sort_unstable();
        names
    };

    assert_eq!(
        named(claim(now, 10).await),
        ["exactly_now", "oldest", "tie_first", "tie_second"]
    );
    assert_eq!(named(claim(now, 2).await), ["oldest", "tie_first"]);
    assert_eq!(named(claim(at(8, 30), 10).await), ["oldest"]);
    assert!(claim(at(7, 59), 10).await.is_empty());
    let claimed = claim(now, 10).await;
    assert!(claimed.is_sorted(), "in id order");

    // Claimed messages come back whole, as leased: one more attempt, due when the lease ends.
    let lease_until = now + Duration::minutes(2) + Duration::nanoseconds(777);
    let mut tx = ctx.write().await;
    let claimed = ctx
        .store
        .claim_due(&mut tx, now, 1, lease_until)
        .await
        .unwrap();
    let leased = OutboxMessage {
        attempts: 1,
        next_attempt_at: lease_until,
        ..oldest.clone()
    };
    assert_eq!(claimed, [as_stored(&leased)]);
    tx.commit().await.unwrap();
    assert_eq!(get(&ctx, b, oldest.id).await, Some(as_stored(&leased)));
    // A leased message is not claimed again before its lease ends, and is at its end.
    assert_eq!(
        named(claim(now, 10).await),
        ["exactly_now", "tie_first", "tie_second"]
    );
    assert!(named(claim(lease_until, 10).await).contains(&"oldest"));
}

pub async fn recording_all_writes_each_messages_delivery_state_in_one_call(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let first = message(a, ReminderDue, Some(appointment_id()), at(9, 0));
    let second = message(b, BookingConfirmed, None, at(9, 0));
    let third = message(a, BookingCancelled, None, at(9, 0));
    let untouched = message(a, BookingConfirmed, None, at(9, 0));
    enqueue(&ctx, &[&first, &second, &third, &untouched]).await;

    let odd = Duration::nanoseconds(987_654_321);
    let delivered = OutboxMessage {
        status: DeliveryStatus::Delivered,
        attempts: 1,
        delivered_at: Some(at(9, 1) + odd),
        // Only the delivery state is written: what the message says stays as enqueued.
        payload: "changed".to_owned(),
        ..first.clone()
    };
    let retried = OutboxMessage {
        attempts: 2,
        next_attempt_at: at(9, 5) + odd,
        last_error: Some("é".repeat(1500)),
        ..second.clone()
    };
    let dead = OutboxMessage {
        status: DeliveryStatus::Dead,
        attempts: 8,
        last_error: Some("HTTP 410 Gone".to_owned()),
        ..third.clone()
    };
    let mut tx = ctx.write().await;
    ctx.store
        .record_all(&mut tx, &[delivered.clone(), retried.clone(), dead.clone()])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        get(&ctx, a, first.id).await,
        Some(as_stored(&OutboxMessage {
            payload: first.payload.clone(),
            ..delivered.clone()
        }))
    );
    assert_eq!(
        get(&ctx, b, second.id).await,
        Some(as_stored(&OutboxMessage {
            last_error: Some("é".repeat(1000)),
            ..retried.clone()
        }))
    );
    assert_eq!(get(&ctx, a, third.id).await, Some(as_stored(&dead)));
    assert_eq!(
        get(&ctx, a, untouched.id).await,
        Some(as_stored(&untouched))
    );

    // A delivered message's error goes, a retried one's delivery time stays empty.
    let cleared = OutboxMessage {
        status: DeliveryStatus::Pending,
        last_error: None,
        delivered_at: None,
        ..dead.clone()
    };
    let mut tx = ctx.write().await;
    ctx.store
        .record_all(&mut tx, std::slice::from_ref(&cleared))
        .await
        .unwrap();
    ctx.store.record_all(&mut tx, &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(get(&ctx, a, third.id).await, Some(as_stored(&cleared)));

    // More messages than one statement takes are all written.
    let many = (0..1_100)
        .map(|i| message(if i % 2 == 0 { a } else { b }, ReminderDue, None, at(10, 0)))
        .collect::<Vec<_>>();
    enqueue(&ctx, &many.iter().collect::<Vec<_>>()).await;
    let done = many
        .iter()
        .map(|m| OutboxMessage {
            status: DeliveryStatus::Delivered,
            attempts: 1,
            delivered_at: Some(at(10, 1)),
            ..m.clone()
        })
        .collect::<Vec<_>>();
    let mut tx = ctx.write().await;
    ctx.store.record_all(&mut tx, &done).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = ctx.read().await;
    assert_eq!(
        ctx.store.pending_count(&mut tx).await.unwrap(),
        3,
        "every one of them delivered; `untouched`, `retried` and `cleared` are pending"
    );
    drop(tx);
    assert_eq!(
        get(&ctx, b, many[1_099].id).await.map(|m| m.status),
        Some(DeliveryStatus::Delivered)
    );

    // An unknown message is `NotFound`.
    let mut tx = ctx.write().await;
    let unknown = message(a, ReminderDue, None, at(9, 0));
    let err = ctx
        .store
        .record_all(&mut tx, &[delivered.clone(), unknown])
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
}

pub async fn recording_writes_the_delivery_state(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let m = message(clinic, ReminderDue, Some(appointment_id()), at(9, 0));
    enqueue(&ctx, &[&m]).await;

    let odd = Duration::nanoseconds(987_654_321);
    let retried = OutboxMessage {
        attempts: 3,
        next_attempt_at: at(9, 5) + odd,
        last_error: Some("x".repeat(1500)),
        ..m.clone()
    };
    let mut tx = ctx.write().await;
    ctx.store.record(&mut tx, &retried).await.unwrap();
    tx.commit().await.unwrap();
    let expected = OutboxMessage {
        last_error: Some("x".repeat(1000)),
        ..as_stored(&retried)
    };
    assert_eq!(get(&ctx, clinic, m.id).await, Some(expected));

    // Only the delivery state is written: what the message says stays as enqueued.
    let delivered = OutboxMessage {
        status: DeliveryStatus::Delivered,
        attempts: 4,
        last_error: None,
        delivered_at: Some(at(9, 6) + odd),
        payload: "changed".to_owned(),
        kind: BookingCancelled,
        appointment_id: None,
        created_at: at(12, 0),
        ..retried.clone()
    };
    let mut tx = ctx.write().await;
    ctx.store.record(&mut tx, &delivered).await.unwrap();
    tx.commit().await.unwrap();
    let expected = OutboxMessage {
        status: DeliveryStatus::Delivered,
        attempts: 4,
        last_error: None,
        delivered_at: Some((at(9, 6) + odd).trunc_subsecs(6)),
        ..as_stored(&retried)
    };
    assert_eq!(get(&ctx, clinic, m.id).await, Some(expected));

    let mut tx = ctx.write().await;
    let unknown = message(clinic, ReminderDue, None, at(9, 0));
    let err = ctx.store.record(&mut tx, &unknown).await.unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
}

pub async fn cancelling_reaches_only_matching_pending_messages(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let visit = appointment_id();
    let other_visit = appointment_id();
    let reminder = message(a, ReminderDue, Some(visit), at(8, 0));
    let second_reminder = message(a, ReminderDue, Some(visit), at(8, 30));
    let sent_reminder = OutboxMessage {
        status: DeliveryStatus::Delivered,
        delivered_at: Some(at(7, 0)),
        ..message(a, ReminderDue, Some(visit), at(7, 0))
    };
    let confirmation = message(a, BookingConfirmed, Some(visit), at(7, 0));
    let other_visits_reminder = message(a, ReminderDue, Some(other_visit), at(8, 0));
    let other_clinics_reminder = message(b, ReminderDue, Some(visit), at(8, 0));
    let all = [
        &reminder,
        &second_reminder,
        &sent_reminder,
        &confirmation,
        &other_visits_reminder,
        &other_clinics_reminder,
    ];
    enqueue(&ctx, &all).await;

    let mut tx = ctx.write().await;
    ctx.store
        .cancel_pending(&mut tx, a, visit, ReminderDue)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    for m in all {
        let expected = if m.id == reminder.id || m.id == second_reminder.id {
            DeliveryStatus::Cancelled
        } else {
            m.status
        };
        let stored = get(&ctx, m.clinic_id, m.id).await.unwrap();
        assert_eq!(
            stored.status, expected,
            "{:?} {:?}",
            m.kind, m.appointment_id
        );
    }

    // Nothing pending is left to cancel: a second withdrawal changes nothing.
    let mut tx = ctx.write().await;
    ctx.store
        .cancel_pending(&mut tx, a, visit, ReminderDue)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        get(&ctx, a, sent_reminder.id).await.unwrap().status,
        sent_reminder.status
    );
}

pub async fn the_outbox_list_filters_pages_and_is_per_clinic(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let written = |minutes: i64, status: DeliveryStatus| OutboxMessage {
        status,
        created_at: created() + Duration::minutes(minutes),
        ..message(a, BookingConfirmed, None, at(9, 0))
    };
    let oldest = written(0, DeliveryStatus::Pending);
    let delivered = written(1, DeliveryStatus::Delivered);
    // Same creation time: the larger id comes first.
    let (small, large) = ascending_pair();
    let tie_small = OutboxMessage {
        id: small,
        ..written(2, DeliveryStatus::Pending)
    };
    let tie_large = OutboxMessage {
        id: large,
        ..written(2, DeliveryStatus::Dead)
    };
    let newest = written(3, DeliveryStatus::Pending);
    let elsewhere = message(b, BookingConfirmed, None, at(9, 0));
    enqueue(
        &ctx,
        &[
            &tie_small, &newest, &elsewhere, &oldest, &tie_large, &delivered,
        ],
    )
    .await;

    let list = |clinic: ClinicId, status: Option<DeliveryStatus>, request: PageRequest| {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            let page = OutboxRepo::list(&ctx.store, &mut tx, clinic, status, request)
                .await
                .unwrap();
            (
                page.items.iter().map(|m| m.id).collect::<Vec<_>>(),
                page.total,
            )
        }
    };
    assert_eq!(
        list(a, None, page(1, 50)).await,
        (
            vec![
                newest.id,
                tie_large.id,
                tie_small.id,
                delivered.id,
                oldest.id
            ],
            5
        )
    );
    assert_eq!(
        list(a, None, page(2, 2)).await,
        (vec![tie_small.id, delivered.id], 5)
    );
    assert_eq!(list(a, None, page(3, 2)).await, (vec![oldest.id], 5));
    assert_eq!(
        list(a, Some(DeliveryStatus::Pending), page(1, 2)).await,
        (vec![newest.id, tie_small.id], 3)
    );
    assert_eq!(
        list(a, Some(DeliveryStatus::Pending), page(2, 2)).await,
        (vec![oldest.id], 3)
    );
    assert_eq!(
        list(a, Some(DeliveryStatus::Cancelled), page(1, 50)).await,
        (vec![], 0)
    );
    assert_eq!(list(b, None, page(1, 50)).await, (vec![elsewhere.id], 1));
    assert_eq!(
        list(b, Some(DeliveryStatus::Delivered), page(1, 50)).await,
        (vec![], 0)
    );
    let nobody = ClinicId::from_uuid(Uuid::now_v7());
    assert_eq!(list(nobody, None, page(1, 50)).await, (vec![], 0));
}

pub async fn pending_messages_are_counted_across_clinics(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let count = || {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            ctx.store.pending_count(&mut tx).await.unwrap()
        }
    };
    assert_eq!(count().await, 0);
    let visit = appointment_id();
    let later = message(a, ReminderDue, Some(visit), at(23, 0));
    let delivered = OutboxMessage {
        status: DeliveryStatus::Delivered,
        ..message(a, BookingConfirmed, None, at(9, 0))
    };
    enqueue(
        &ctx,
        &[
            &message(a, BookingConfirmed, None, at(9, 0)),
            &later,
            &message(b, BookingConfirmed, None, at(9, 0)),
            &delivered,
        ],
    )
    .await;
    // Pending counts whether due or not.
    assert_eq!(count().await, 3);

    let mut tx = ctx.write().await;
    ctx.store
        .cancel_pending(&mut tx, a, visit, ReminderDue)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count().await, 2);
}

pub async fn concurrent_dispatchers_claim_each_message_exactly_once(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let messages = (0..30)
        .map(|i| {
            let clinic = if i % 2 == 0 { a } else { b };
            message(clinic, ReminderDue, None, at(9, 0) + Duration::seconds(i))
        })
        .collect::<Vec<_>>();
    enqueue(&ctx, &messages.iter().collect::<Vec<_>>()).await;

    // Dispatchers meeting each other: a later one passes over the messages an earlier one
    // holds instead of waiting for them or claiming them again.
    let now = at(10, 0);
    let mut claimed = ctx
        .claim_in_turns(async |tx| {
            let batch = ctx
                .store
                .claim_due(tx, now, 10, now + Duration::minutes(2))
                .await
                .unwrap();
            let delivered = batch
                .into_iter()
                .map(|m| OutboxMessage {
                    status: DeliveryStatus::Delivered,
                    delivered_at: Some(now),
                    ..m
                })
                .collect::<Vec<_>>();
            ctx.store.record_all(tx, &delivered).await.unwrap();
            delivered.into_iter().map(|m| m.id).collect()
        })
        .await;
    claimed.sort();
    let mut expected = messages.iter().map(|m| m.id).collect::<Vec<_>>();
    expected.sort();
    assert_eq!(claimed, expected, "every message is claimed exactly once");

    let mut tx = ctx.read().await;
    assert_eq!(ctx.store.pending_count(&mut tx).await.unwrap(), 0);
    for m in &messages {
        let stored = OutboxRepo::get(&ctx.store, &mut tx, m.clinic_id, m.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.status, stored.attempts),
            (DeliveryStatus::Delivered, 1)
        );
    }
}

/// A write the unit of work may hold back until its commit still happens in call order: a
/// reminder stored and then withdrawn in the same unit of work is withdrawn, and a read of
/// the outbox in it sees what it stored.
pub async fn writes_in_one_unit_of_work_take_effect_in_call_order(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let visit = appointment_id();
    let reminder = message(a, ReminderDue, Some(visit), at(8, 0));
    let cancellation = message(a, BookingCancelled, Some(visit), at(7, 0));

    let mut tx = ctx.write().await;
    ctx.store.enqueue(&mut tx, &reminder).await.unwrap();
    ctx.store
        .cancel_pending(&mut tx, a, visit, ReminderDue)
        .await
        .unwrap();
    ctx.store.enqueue(&mut tx, &cancellation).await.unwrap();
    tx.commit().await.unwrap();
    let stored = get(&ctx, a, reminder.id).await.unwrap();
    assert_eq!(
        stored.status,
        DeliveryStatus::Cancelled,
        "withdrawn after it was stored"
    );
    let stored = get(&ctx, a, cancellation.id).await.unwrap();
    assert_eq!(
        stored.status,
        DeliveryStatus::Pending,
        "stored after the withdrawal"
    );

    let later = message(a, ReminderDue, Some(visit), at(9, 0));
    let mut tx = ctx.write().await;
    ctx.store.enqueue(&mut tx, &later).await.unwrap();
    let seen = OutboxRepo::get(&ctx.store, &mut tx, a, later.id)
        .await
        .unwrap();
    assert_eq!(
        seen,
        Some(as_stored(&later)),
        "read back in its own unit of work"
    );
}

/// A held-back write that the database refuses fails the commit, and nothing of the unit of
/// work is stored: neither the writes before it nor those held back with it.
pub async fn a_refused_held_back_write_fails_the_whole_unit_of_work(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let first = message(a, BookingConfirmed, None, at(7, 0));
    enqueue(&ctx, &[&first]).await;

    let fresh = message(a, BookingConfirmed, None, at(7, 0));
    let mut tx = ctx.write().await;
    let outcome = async {
        ctx.store.enqueue(&mut tx, &fresh).await?;
        // The same id again: the primary key refuses it, now or at the commit.
        ctx.store.enqueue(&mut tx, &first).await?;
        tx.commit().await
    }
    .await;
    assert!(outcome.is_err(), "the duplicate is refused");
    assert_eq!(get(&ctx, a, fresh.id).await, None, "rolled back with it");
    assert_eq!(get(&ctx, a, first.id).await, Some(as_stored(&first)));
}
