use std::collections::HashMap;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use clinicflow_domain::{
    ClinicId, DeadlineRule, PractitionerId, QueueEntry, QueueEntryId, QueueStatus, TriageCategory,
};
use clinicflow_ports::{QueueRepo, QueueScope, RepoError};
use uuid::Uuid;

use crate::support::{Ctx, appointment, at, patient, queue_entry, span};

use TriageCategory::{Immediate, NonUrgent, Standard, Urgent, VeryUrgent};

/// `n` queue entry ids in ascending order, whatever the clock did between them.
fn ascending_ids(n: usize) -> Vec<QueueEntryId> {
    let mut ids = (0..n).map(|_| Uuid::now_v7()).collect::<Vec<_>>();
    ids.sort();
    ids.into_iter().map(QueueEntryId::from_uuid).collect()
}

/// `e` as it reads back: every instant cut to whole microseconds.
fn as_stored(e: &QueueEntry) -> QueueEntry {
    let cut = |t: DateTime<Utc>| t.trunc_subsecs(6);
    QueueEntry {
        rule: match e.rule {
            DeadlineRule::WalkIn => DeadlineRule::WalkIn,
            DeadlineRule::Appointment { starts_at } => DeadlineRule::Appointment {
                starts_at: cut(starts_at),
            },
        },
        arrived_at: cut(e.arrived_at),
        deadline: cut(e.deadline),
        called_at: e.called_at.map(cut),
        started_at: e.started_at.map(cut),
        finished_at: e.finished_at.map(cut),
        left_at: e.left_at.map(cut),
        recalled_at: e.recalled_at.map(cut),
        updated_at: cut(e.updated_at),
        ..e.clone()
    }
}

/// The labels of `entries`, by the id each label was given to.
fn labels(
    entries: &[QueueEntry],
    names: &HashMap<QueueEntryId, &'static str>,
) -> Vec<&'static str> {
    entries.iter().map(|e| names[&e.id]).collect()
}

fn scope(practitioner: Option<PractitionerId>, department: Option<&str>) -> QueueScope {
    QueueScope {
        practitioner_id: practitioner,
        department: department.map(str::to_owned),
    }
}

async fn open(ctx: &Ctx, clinic: ClinicId, scope: &QueueScope) -> Vec<QueueEntry> {
    let mut tx = ctx.read().await;
    QueueRepo::open(&ctx.store, &mut tx, clinic, scope)
        .await
        .unwrap()
}

/// `lock_next_waiting` in a write transaction of its own.
async fn next(ctx: &Ctx, clinic: ClinicId, scope: &QueueScope) -> Option<QueueEntry> {
    let mut tx = ctx.write().await;
    let next = ctx
        .store
        .lock_next_waiting(&mut tx, clinic, scope)
        .await
        .unwrap();
    // Committed, not dropped: on PostgreSQL a dropped transaction's rollback reaches the
    // server only when its connection goes back to the pool, a moment later, and until then
    // the row stays locked and the next call would skip it.
    tx.commit().await.unwrap();
    next
}

/// Moves `entry` to `status` at `now` through the state machine and stores it.
async fn advance(ctx: &Ctx, entry: &mut QueueEntry, status: QueueStatus, now: DateTime<Utc>) {
    let read = entry.version;
    entry.transition(status, now).unwrap();
    let mut tx = ctx.write().await;
    QueueRepo::update(&ctx.store, &mut tx, entry, read)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

pub async fn a_queue_entry_reads_back_and_updates_every_field(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let visit = ctx
        .appointment(appointment(&ada, &house, at(9, 0), 30))
        .await;
    // Nanoseconds that the store cuts to whole microseconds.
    let odd = Duration::nanoseconds(123_456_789);
    let entry = QueueEntry {
        practitioner_id: Some(house.id),
        department: Some("Cardiology".into()),
        appointment_id: Some(visit.id),
        rule: DeadlineRule::Appointment {
            starts_at: at(9, 0) + odd,
        },
        status: QueueStatus::InService,
        note: Some("chest pain since the morning".into()),
        called_by: Some(wilson.id),
        called_at: Some(at(9, 5) + odd),
        started_at: Some(at(9, 6) + odd),
        finished_at: Some(at(9, 7) + odd),
        left_at: Some(at(9, 8) + odd),
        recalled_at: Some(at(9, 4) + odd),
        version: 4,
        updated_at: at(9, 6) + odd,
        ..queue_entry(&ada, Urgent, at(8, 50) + odd, at(9, 10) + odd)
    };
    let mut tx = ctx.write().await;
    QueueRepo::insert(&ctx.store, &mut tx, &entry)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    let back = QueueRepo::get(&ctx.store, &mut tx, clinic, entry.id)
        .await
        .unwrap();
    assert_eq!(back, Some(as_stored(&entry)));
    drop(tx);

    let changed = QueueEntry {
        patient_id: grace.id,
        practitioner_id: None,
        department: None,
        appointment_id: None,
        category: NonUrgent,
        rule: DeadlineRule::WalkIn,
        arrived_at: at(8, 0),
        deadline: at(12, 0),
        status: QueueStatus::Waiting,
        note: None,
        called_by: None,
        called_at: None,
        started_at: None,
        finished_at: None,
        left_at: None,
        recalled_at: None,
        version: 5,
        updated_at: at(10, 0) + odd,
        ..entry.clone()
    };
    let mut tx = ctx.write().await;
    QueueRepo::update(&ctx.store, &mut tx, &changed, 4)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    assert_eq!(
        QueueRepo::get(&ctx.store, &mut tx, clinic, entry.id)
            .await
            .unwrap(),
        Some(as_stored(&changed))
    );
    // And back from nothing to something.
    let refilled = QueueEntry {
        version: 6,
        ..entry.clone()
    };
    QueueRepo::update(&ctx.store, &mut tx, &refilled, 5)
        .await
        .unwrap();
    assert_eq!(
        QueueRepo::get(&ctx.store, &mut tx, clinic, entry.id)
            .await
            .unwrap(),
        Some(as_stored(&refilled))
    );
    let err = QueueRepo::update(&ctx.store, &mut tx, &changed, 4)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::StaleVersion), "{err:?}");
    let unknown = QueueEntry {
        id: QueueEntryId::from_uuid(Uuid::now_v7()),
        ..changed.clone()
    };
    let err = QueueRepo::update(&ctx.store, &mut tx, &unknown, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    assert_eq!(
        QueueRepo::get(&ctx.store, &mut tx, clinic, unknown.id)
            .await
            .unwrap(),
        None
    );
    // The same id twice is a duplicate.
    let err = QueueRepo::insert(&ctx.store, &mut tx, &changed)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Duplicate("id")), "{err:?}");
}

pub async fn open_entries_come_in_serve_order(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    // One patient per open entry: a patient waits once at most.
    let pool = ctx.patients(clinic, 40).await;
    let mut queued = pool.iter();
    let due = at(10, 0);
    let micro = Duration::microseconds(1);
    let ids = ascending_ids(3);
    let mut names = HashMap::new();
    let mut entries = Vec::new();
    let mut add = |name: &'static str, e: QueueEntry| {
        names.insert(e.id, name);
        entries.push(e);
    };
    // Listed in serve order, closed ones last; inserted below in reverse.
    add(
        "least urgent but due first",
        queue_entry(
            queued.next().expect("enough patients"),
            NonUrgent,
            at(5, 30),
            at(9, 30),
        ),
    );
    add(
        "due a microsecond earlier",
        queue_entry(
            queued.next().expect("enough patients"),
            NonUrgent,
            at(6, 0),
            due - micro,
        ),
    );
    for (i, id) in ids.iter().enumerate() {
        let name = ["tie 1", "tie 2", "tie 3"][i];
        add(
            name,
            QueueEntry {
                id: *id,
                ..queue_entry(
                    queued.next().expect("enough patients"),
                    VeryUrgent,
                    at(9, 40),
                    due,
                )
            },
        );
    }
    add(
        "same deadline and category, later arrival",
        queue_entry(
            queued.next().expect("enough patients"),
            VeryUrgent,
            at(9, 50),
            due,
        ),
    );
    add(
        "same deadline, less urgent, earliest arrival",
        queue_entry(
            queued.next().expect("enough patients"),
            Standard,
            at(8, 0),
            due,
        ),
    );
    add(
        "most urgent but due a microsecond later",
        queue_entry(
            queued.next().expect("enough patients"),
            Immediate,
            at(9, 59),
            due + micro,
        ),
    );
    add(
        "called",
        QueueEntry {
            status: QueueStatus::Called,
            ..queue_entry(
                queued.next().expect("enough patients"),
                Urgent,
                at(9, 0),
                at(11, 0),
            )
        },
    );
    add(
        "in service",
        QueueEntry {
            status: QueueStatus::InService,
            ..queue_entry(
                queued.next().expect("enough patients"),
                Urgent,
                at(9, 0),
                at(11, 30),
            )
        },
    );
    add(
        "done",
        QueueEntry {
            status: QueueStatus::Done,
            ..queue_entry(
                queued.next().expect("enough patients"),
                Immediate,
                at(5, 0),
                at(5, 0),
            )
        },
    );
    add(
        "left",
        QueueEntry {
            status: QueueStatus::Left,
            ..queue_entry(
                queued.next().expect("enough patients"),
                Immediate,
                at(5, 0),
                at(5, 0),
            )
        },
    );
    for e in entries.iter().rev() {
        ctx.queue_entry(e.clone()).await;
    }

    let served = open(&ctx, clinic, &QueueScope::default()).await;
    assert_eq!(
        labels(&served, &names),
        [
            "least urgent but due first",
            "due a microsecond earlier",
            "tie 1",
            "tie 2",
            "tie 3",
            "same deadline and category, later arrival",
            "same deadline, less urgent, earliest arrival",
            "most urgent but due a microsecond later",
            "called",
            "in service",
        ]
    );
    // The domain's order agrees.
    let mut sorted = entries.clone();
    sorted.retain(|e| e.status.is_open());
    sorted.sort_by(QueueEntry::serve_order);
    assert_eq!(served, sorted);
}

pub async fn open_and_next_respect_each_scope_rule(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    // One patient per open entry: a patient waits once at most.
    let pool = ctx.patients(clinic, 20).await;
    let mut queued = pool.iter();
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let mut names = HashMap::new();
    let mut minute = 0;
    let mut add =
        |name: &'static str, practitioner: Option<PractitionerId>, department: Option<&str>| {
            // Each due five minutes after the previous one: serve order is the order listed.
            minute += 5;
            let e = QueueEntry {
                practitioner_id: practitioner,
                department: department.map(str::to_owned),
                ..queue_entry(
                    queued.next().expect("enough patients"),
                    Standard,
                    at(8, 0),
                    at(9, 0) + Duration::minutes(minute),
                )
            };
            names.insert(e.id, name);
            e
        };
    let entries = [
        add("general", None, None),
        add("wilson cardiology", Some(wilson.id), Some("Cardiology")),
        add("cardiology", None, Some("Cardiology")),
        add("house orthopaedics", Some(house.id), Some("Orthopaedics")),
        add("house", Some(house.id), None),
        add("wilson", Some(wilson.id), None),
        add("orthopaedics", None, Some("Orthopaedics")),
    ];
    for e in &entries {
        ctx.queue_entry(e.clone()).await;
    }

    let cases: [(QueueScope, &[&str]); 6] = [
        (
            scope(Some(house.id), Some("Cardiology")),
            &["general", "cardiology", "house orthopaedics", "house"],
        ),
        (
            scope(Some(house.id), None),
            &["general", "house orthopaedics", "house"],
        ),
        (
            scope(Some(wilson.id), Some("Orthopaedics")),
            &["general", "wilson cardiology", "wilson", "orthopaedics"],
        ),
        (
            scope(None, Some("Cardiology")),
            &["wilson cardiology", "cardiology"],
        ),
        (scope(None, Some("Dermatology")), &[]),
        (
            scope(None, None),
            &[
                "general",
                "wilson cardiology",
                "cardiology",
                "house orthopaedics",
                "house",
                "wilson",
                "orthopaedics",
            ],
        ),
    ];
    for (scope, expected) in &cases {
        let listed = open(&ctx, clinic, scope).await;
        assert_eq!(labels(&listed, &names), *expected, "open in {scope:?}");
        let first = next(&ctx, clinic, scope).await;
        assert_eq!(
            first.map(|e| names[&e.id]),
            expected.first().copied(),
            "next in {scope:?}"
        );
    }
}

pub async fn the_next_waiting_entry_skips_called_and_served_ones(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    // One patient per open entry: a patient waits once at most.
    let pool = ctx.patients(clinic, 5).await;
    let mut queued = pool.iter();
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let mut called = ctx
        .queue_entry(queue_entry(
            queued.next().expect("enough patients"),
            Immediate,
            at(8, 0),
            at(8, 0),
        ))
        .await;
    advance(&ctx, &mut called, QueueStatus::Called, at(8, 1)).await;
    let mut in_service = ctx
        .queue_entry(queue_entry(
            queued.next().expect("enough patients"),
            Immediate,
            at(8, 0),
            at(8, 5),
        ))
        .await;
    advance(&ctx, &mut in_service, QueueStatus::Called, at(8, 6)).await;
    advance(&ctx, &mut in_service, QueueStatus::InService, at(8, 7)).await;
    let mut for_house = ctx
        .queue_entry(QueueEntry {
            practitioner_id: Some(house.id),
            ..queue_entry(
                queued.next().expect("enough patients"),
                Standard,
                at(8, 0),
                at(9, 10),
            )
        })
        .await;
    let mut general = ctx
        .queue_entry(queue_entry(
            queued.next().expect("enough patients"),
            Standard,
            at(8, 0),
            at(9, 15),
        ))
        .await;
    let mut for_wilson = ctx
        .queue_entry(QueueEntry {
            practitioner_id: Some(wilson.id),
            ..queue_entry(
                queued.next().expect("enough patients"),
                Standard,
                at(8, 0),
                at(9, 20),
            )
        })
        .await;

    let every = QueueScope::default();
    let id = |e: Option<QueueEntry>| e.map(|e| e.id);
    assert_eq!(id(next(&ctx, clinic, &every).await), Some(for_house.id));
    assert_eq!(
        next(&ctx, clinic, &scope(Some(house.id), None)).await,
        Some(for_house.clone())
    );
    assert_eq!(
        id(next(&ctx, clinic, &scope(Some(wilson.id), None)).await),
        Some(general.id)
    );
    assert_eq!(
        next(&ctx, clinic, &scope(None, Some("Cardiology"))).await,
        None
    );
    assert_eq!(next(&ctx, other, &every).await, None);

    advance(&ctx, &mut for_house, QueueStatus::Called, at(9, 0)).await;
    assert_eq!(id(next(&ctx, clinic, &every).await), Some(general.id));
    advance(&ctx, &mut general, QueueStatus::Left, at(9, 1)).await;
    assert_eq!(id(next(&ctx, clinic, &every).await), Some(for_wilson.id));
    // A recalled patient waits again with the deadline they had.
    advance(&ctx, &mut called, QueueStatus::Waiting, at(9, 2)).await;
    assert_eq!(id(next(&ctx, clinic, &every).await), Some(called.id));
    advance(&ctx, &mut called, QueueStatus::Called, at(9, 3)).await;
    advance(&ctx, &mut for_wilson, QueueStatus::Called, at(9, 4)).await;
    assert_eq!(next(&ctx, clinic, &every).await, None);
    assert_eq!(open(&ctx, clinic, &every).await.len(), 4);
}

pub async fn concurrent_calls_take_each_waiting_entry_exactly_once(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let mut waiting = Vec::new();
    // Each held call keeps a pooled connection; eight stay inside the pool of ten.
    for i in 0..8 {
        let p = ctx.patient(clinic, &format!("Patient{i}"), "Waiting").await;
        let e = queue_entry(
            &p,
            Standard,
            at(8, 0) + Duration::minutes(i),
            at(10, 0) + Duration::minutes(i),
        );
        waiting.push(ctx.queue_entry(e).await.id);
    }
    // Callers meeting each other: a later one passes over the entry an earlier one holds
    // instead of waiting for it or calling it again.
    let for_house = scope(Some(house.id), None);
    let called = ctx
        .claim_in_turns(async |tx| {
            let Some(mut entry) = ctx
                .store
                .lock_next_waiting(tx, clinic, &for_house)
                .await
                .unwrap()
            else {
                return Vec::new();
            };
            let read = entry.version;
            entry
                .transition(QueueStatus::Called, at(10, 30))
                .expect("a waiting entry can be called");
            entry.called_by = Some(house.id);
            QueueRepo::update(&ctx.store, tx, &entry, read)
                .await
                .expect("no other caller took this entry");
            vec![entry.id]
        })
        .await;
    assert_eq!(
        called, waiting,
        "every entry is called exactly once, in serve order"
    );

    let board = open(&ctx, clinic, &QueueScope::default()).await;
    assert_eq!(board.len(), 8);
    for e in board {
        assert_eq!(
            (e.status, e.called_by, e.version),
            (QueueStatus::Called, Some(house.id), 2)
        );
    }
}

pub async fn a_patient_has_at_most_one_open_entry(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let mut first = ctx
        .queue_entry(queue_entry(&ada, Standard, at(8, 0), at(10, 0)))
        .await;
    let open_for = |clinic: ClinicId, patient| {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            ctx.store
                .open_for_patient(&mut tx, clinic, patient)
                .await
                .unwrap()
        }
    };
    assert_eq!(open_for(clinic, ada.id).await, Some(first.clone()));
    assert_eq!(open_for(clinic, grace.id).await, None);
    assert_eq!(open_for(other, ada.id).await, None);

    // Another patient waits beside Ada; Ada a second time does not, in any open status.
    ctx.queue_entry(queue_entry(&grace, Standard, at(8, 1), at(10, 1)))
        .await;
    let again = queue_entry(&ada, Urgent, at(8, 5), at(9, 5));
    for status in [
        QueueStatus::Waiting,
        QueueStatus::Called,
        QueueStatus::InService,
    ] {
        advance_to(&ctx, &mut first, status).await;
        let mut tx = ctx.write().await;
        let err = QueueRepo::insert(&ctx.store, &mut tx, &again)
            .await
            .unwrap_err();
        assert!(
            matches!(err, RepoError::AlreadyQueued),
            "{status:?}: {err:?}"
        );
        drop(tx);
    }

    // Once the first is done, Ada may queue again; closed entries stay beside the open one.
    advance(&ctx, &mut first, QueueStatus::Done, at(8, 30)).await;
    assert_eq!(open_for(clinic, ada.id).await, None);
    let again = ctx.queue_entry(again).await;
    assert_eq!(open_for(clinic, ada.id).await, Some(again.clone()));

    // Nor can an update reopen the done entry beside the new one.
    let reopened = QueueEntry {
        status: QueueStatus::Waiting,
        finished_at: None,
        version: first.version + 1,
        ..first.clone()
    };
    let mut tx = ctx.write().await;
    let err = QueueRepo::update(&ctx.store, &mut tx, &reopened, first.version)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::AlreadyQueued), "{err:?}");
}

/// Moves `entry` forward to `status` (waiting stays), as the queue's machine allows.
async fn advance_to(ctx: &Ctx, entry: &mut QueueEntry, status: QueueStatus) {
    let now = entry.arrived_at + Duration::minutes(1);
    while entry.status != status {
        let next = match entry.status {
            QueueStatus::Waiting => QueueStatus::Called,
            _ => QueueStatus::InService,
        };
        advance(ctx, entry, next, now).await;
    }
}

pub async fn one_appointment_has_at_most_one_open_entry(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let visit = ctx
        .appointment(appointment(&ada, &house, at(9, 0), 30))
        .await;
    let later = ctx
        .appointment(appointment(&ada, &house, at(11, 0), 30))
        .await;
    let checked_in = |arrived_at: DateTime<Utc>| QueueEntry {
        practitioner_id: Some(house.id),
        appointment_id: Some(visit.id),
        rule: DeadlineRule::Appointment {
            starts_at: at(9, 0),
        },
        ..queue_entry(&ada, Standard, arrived_at, at(9, 10))
    };
    let mut first = ctx.queue_entry(checked_in(at(8, 50))).await;
    // Walk-ins name no appointment and never collide on it.
    for given in ["Bob", "Carl"] {
        let walker = ctx.patient(clinic, given, "Walker").await;
        ctx.queue_entry(queue_entry(&walker, Standard, at(8, 0), at(10, 0)))
            .await;
    }

    let for_appointment = |clinic: ClinicId, appointment| {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            ctx.store
                .for_appointment(&mut tx, clinic, appointment)
                .await
                .unwrap()
        }
    };
    assert_eq!(for_appointment(clinic, visit.id).await, Some(first.clone()));
    assert_eq!(for_appointment(clinic, later.id).await, None);
    assert_eq!(for_appointment(other, visit.id).await, None);

    // Named for another patient, so that only the appointment's rule is at stake (a patient
    // has one open entry at most, too: see `a_patient_has_at_most_one_open_entry`).
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let second = QueueEntry {
        patient_id: grace.id,
        ..checked_in(at(8, 55))
    };
    let mut tx = ctx.write().await;
    let err = QueueRepo::insert(&ctx.store, &mut tx, &second)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RepoError::Duplicate("appointment_id")),
        "{err:?}"
    );
    drop(tx);

    // Once the first has left, the appointment may queue again.
    advance(&ctx, &mut first, QueueStatus::Left, at(8, 52)).await;
    assert_eq!(for_appointment(clinic, visit.id).await, None);
    let second = ctx.queue_entry(second).await;
    assert_eq!(
        for_appointment(clinic, visit.id).await,
        Some(second.clone())
    );

    // Nor can an update reopen the first beside it.
    let reopened = QueueEntry {
        status: QueueStatus::Waiting,
        left_at: None,
        version: first.version + 1,
        ..first.clone()
    };
    let mut tx = ctx.write().await;
    let err = QueueRepo::update(&ctx.store, &mut tx, &reopened, first.version)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RepoError::Duplicate("appointment_id")),
        "{err:?}"
    );
    drop(tx);

    // Closed entries of the appointment are kept beside the open one.
    let mut second = second;
    advance(&ctx, &mut second, QueueStatus::Called, at(9, 0)).await;
    advance(&ctx, &mut second, QueueStatus::InService, at(9, 1)).await;
    assert_eq!(
        for_appointment(clinic, visit.id).await,
        Some(second.clone())
    );
    advance(&ctx, &mut second, QueueStatus::Done, at(9, 20)).await;
    assert_eq!(for_appointment(clinic, visit.id).await, None);
}

pub async fn entries_arrived_within_a_span_filter_by_practitioner(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    // One patient per open entry: a patient waits once at most.
    let pool = ctx.patients(clinic, 7).await;
    let mut queued = pool.iter();
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let micro = Duration::microseconds(1);
    let mut names = HashMap::new();
    let mut add = |name: &'static str, e: QueueEntry| {
        names.insert(e.id, name);
        e
    };
    let mut arriving = |arrived_at: DateTime<Utc>| {
        queue_entry(
            queued.next().expect("enough patients"),
            Standard,
            arrived_at,
            arrived_at + Duration::hours(2),
        )
    };
    let entries = [
        add("just before", arriving(at(8, 0) - micro)),
        add(
            "at the start, for house",
            QueueEntry {
                practitioner_id: Some(house.id),
                ..arriving(at(8, 0))
            },
        ),
        add(
            "for wilson, called and seen by house",
            QueueEntry {
                practitioner_id: Some(wilson.id),
                called_by: Some(house.id),
                called_at: Some(at(9, 30)),
                finished_at: Some(at(9, 50)),
                status: QueueStatus::Done,
                ..arriving(at(9, 0))
            },
        ),
        add(
            "for wilson, left",
            QueueEntry {
                practitioner_id: Some(wilson.id),
                left_at: Some(at(10, 30)),
                status: QueueStatus::Left,
                ..arriving(at(10, 0))
            },
        ),
        add("general", arriving(at(11, 0))),
        add(
            "just before the end, for house",
            QueueEntry {
                practitioner_id: Some(house.id),
                ..arriving(at(12, 0) - micro)
            },
        ),
        add("at the end", arriving(at(12, 0))),
    ];
    // Inserted out of arrival order.
    for e in entries.iter().rev() {
        ctx.queue_entry(e.clone()).await;
    }

    let morning = span((8, 0), (12, 0));
    let within = |span, practitioner| {
        let ctx = &ctx;
        let names = &names;
        async move {
            let mut tx = ctx.read().await;
            let found = ctx
                .store
                .arrived_within(&mut tx, clinic, span, practitioner)
                .await
                .unwrap();
            labels(&found, names)
        }
    };
    assert_eq!(
        within(morning, None).await,
        [
            "at the start, for house",
            "for wilson, called and seen by house",
            "for wilson, left",
            "general",
            "just before the end, for house",
        ]
    );
    assert_eq!(
        within(morning, Some(house.id)).await,
        [
            "at the start, for house",
            "for wilson, called and seen by house",
            "just before the end, for house",
        ]
    );
    assert_eq!(
        within(morning, Some(wilson.id)).await,
        ["for wilson, called and seen by house", "for wilson, left"]
    );
    // Bounds between two microseconds round up to the next one on both databases.
    let half = Duration::nanoseconds(500);
    let shifted = clinicflow_domain::Interval::new(at(8, 0) - half, at(12, 0) - half).unwrap();
    assert_eq!(
        within(shifted, Some(house.id)).await,
        [
            "at the start, for house",
            "for wilson, called and seen by house",
            "just before the end, for house",
        ]
    );
    let nobody = ctx.practitioner(clinic, "Nobody", "Atall").await;
    assert_eq!(within(morning, Some(nobody.id)).await, Vec::<&str>::new());
    assert_eq!(
        within(span((13, 0), (14, 0)), None).await,
        Vec::<&str>::new()
    );
}

pub async fn another_clinic_can_neither_see_nor_change_queue_entries(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let ada = ctx.patient(a, "Ada", "Lovelace").await;
    // One patient per open entry: a patient waits once at most.
    let pool = ctx.patients(a, 5).await;
    let mut queued = pool.iter();
    let house = ctx.practitioner(a, "Gregory", "House").await;
    let visit = ctx
        .appointment(appointment(&ada, &house, at(9, 0), 30))
        .await;
    let entry = ctx
        .queue_entry(QueueEntry {
            practitioner_id: Some(house.id),
            appointment_id: Some(visit.id),
            rule: DeadlineRule::Appointment {
                starts_at: at(9, 0),
            },
            ..queue_entry(
                queued.next().expect("enough patients"),
                Standard,
                at(8, 50),
                at(9, 10),
            )
        })
        .await;

    let mut tx = ctx.write().await;
    assert_eq!(
        QueueRepo::get(&ctx.store, &mut tx, b, entry.id)
            .await
            .unwrap(),
        None
    );
    for scope in [
        QueueScope::default(),
        scope(Some(house.id), None),
        scope(None, None),
    ] {
        assert_eq!(
            QueueRepo::open(&ctx.store, &mut tx, b, &scope)
                .await
                .unwrap(),
            vec![]
        );
        assert_eq!(
            ctx.store
                .lock_next_waiting(&mut tx, b, &scope)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        ctx.store
            .for_appointment(&mut tx, b, visit.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        ctx.store
            .arrived_within(&mut tx, b, span((0, 0), (23, 0)), None)
            .await
            .unwrap(),
        vec![]
    );
    // Claiming clinic B in the row itself does not reach clinic A's row.
    let hijacked = QueueEntry {
        clinic_id: b,
        version: 2,
        ..entry.clone()
    };
    let err = QueueRepo::update(&ctx.store, &mut tx, &hijacked, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    drop(tx);

    // Nor can clinic B queue clinic A's patient, or clinic A name clinic B's practitioner or appointment.
    let b_patient = ctx.patient(b, "Bea", "Other").await;
    let b_practitioner = ctx.practitioner(b, "Bob", "Other").await;
    let b_visit = ctx
        .appointment(appointment(&b_patient, &b_practitioner, at(9, 0), 30))
        .await;
    let foreign = [
        QueueEntry {
            clinic_id: b,
            ..queue_entry(
                queued.next().expect("enough patients"),
                Standard,
                at(8, 0),
                at(10, 0),
            )
        },
        QueueEntry {
            practitioner_id: Some(b_practitioner.id),
            ..queue_entry(
                queued.next().expect("enough patients"),
                Standard,
                at(8, 0),
                at(10, 0),
            )
        },
        QueueEntry {
            called_by: Some(b_practitioner.id),
            ..queue_entry(
                queued.next().expect("enough patients"),
                Standard,
                at(8, 0),
                at(10, 0),
            )
        },
        QueueEntry {
            appointment_id: Some(b_visit.id),
            ..queue_entry(
                queued.next().expect("enough patients"),
                Standard,
                at(8, 0),
                at(10, 0),
            )
        },
        queue_entry(&patient(a, "Not", "Stored"), Standard, at(8, 0), at(10, 0)),
    ];
    for e in foreign {
        let mut tx = ctx.write().await;
        let err = QueueRepo::insert(&ctx.store, &mut tx, &e)
            .await
            .unwrap_err();
        assert!(matches!(err, RepoError::NotFound), "{e:?}: {err:?}");
    }

    let mut tx = ctx.read().await;
    assert_eq!(
        QueueRepo::get(&ctx.store, &mut tx, a, entry.id)
            .await
            .unwrap(),
        Some(entry)
    );
}
