use std::collections::HashMap;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use clinicflow_domain::{
    ClinicId, Encounter, EncounterId, PageRequest, PatientId, PractitionerId, QueueEntryId,
    TriageCategory,
};
use clinicflow_ports::{EncounterRepo, RepoError};
use uuid::Uuid;

use crate::support::{Ctx, appointment, at, encounter, patient, queue_entry};

/// `e` as it reads back: every instant cut to whole microseconds.
fn as_stored(e: &Encounter) -> Encounter {
    let cut = |t: DateTime<Utc>| t.trunc_subsecs(6);
    Encounter {
        started_at: cut(e.started_at),
        ended_at: e.ended_at.map(cut),
        updated_at: cut(e.updated_at),
        ..e.clone()
    }
}

/// An encounter that started at `started_at` and ended at `ended_at`.
fn ended(e: Encounter, ended_at: DateTime<Utc>) -> Encounter {
    Encounter {
        ended_at: Some(ended_at),
        updated_at: ended_at,
        ..e
    }
}

fn labels(
    encounters: &[Encounter],
    names: &HashMap<EncounterId, &'static str>,
) -> Vec<&'static str> {
    encounters.iter().map(|e| names[&e.id]).collect()
}

pub async fn an_encounter_reads_back_and_updates_every_field(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let visit = ctx
        .appointment(appointment(&ada, &house, at(9, 0), 30))
        .await;
    let entry = ctx
        .queue_entry(queue_entry(
            &ada,
            TriageCategory::Standard,
            at(8, 50),
            at(9, 10),
        ))
        .await;
    let odd = Duration::nanoseconds(123_456_789);
    let stored = Encounter {
        appointment_id: Some(visit.id),
        queue_entry_id: Some(entry.id),
        ended_at: Some(at(9, 30) + odd),
        notes: Some("BP 120/80, follow-up in two weeks".into()),
        version: 3,
        updated_at: at(9, 31) + odd,
        ..encounter(&ada, &house, at(9, 5) + odd)
    };
    ctx.encounter(stored.clone()).await;

    let mut tx = ctx.write().await;
    assert_eq!(
        EncounterRepo::get(&ctx.store, &mut tx, clinic, stored.id)
            .await
            .unwrap(),
        Some(as_stored(&stored))
    );
    let changed = Encounter {
        patient_id: grace.id,
        practitioner_id: wilson.id,
        appointment_id: None,
        queue_entry_id: None,
        started_at: at(10, 0),
        ended_at: None,
        notes: None,
        version: 4,
        updated_at: at(10, 0) + odd,
        ..stored.clone()
    };
    EncounterRepo::update(&ctx.store, &mut tx, &changed, 3)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.write().await;
    assert_eq!(
        EncounterRepo::get(&ctx.store, &mut tx, clinic, stored.id)
            .await
            .unwrap(),
        Some(as_stored(&changed))
    );
    let refilled = Encounter {
        version: 5,
        ..stored.clone()
    };
    EncounterRepo::update(&ctx.store, &mut tx, &refilled, 4)
        .await
        .unwrap();
    assert_eq!(
        EncounterRepo::get(&ctx.store, &mut tx, clinic, stored.id)
            .await
            .unwrap(),
        Some(as_stored(&refilled))
    );
    let err = EncounterRepo::update(&ctx.store, &mut tx, &changed, 3)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::StaleVersion), "{err:?}");
    let unknown = Encounter {
        id: EncounterId::from_uuid(Uuid::now_v7()),
        ..changed.clone()
    };
    let err = EncounterRepo::update(&ctx.store, &mut tx, &unknown, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    assert_eq!(
        EncounterRepo::get(&ctx.store, &mut tx, clinic, unknown.id)
            .await
            .unwrap(),
        None
    );
    let err = EncounterRepo::insert(&ctx.store, &mut tx, &changed)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Duplicate("id")), "{err:?}");
}

pub async fn the_open_encounter_of_an_entry_is_the_one_not_ended(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    // Three patients: each has one open entry at most.
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let carl = ctx.patient(clinic, "Carl", "Gauss").await;
    let waiting =
        |patient, arrived_at| queue_entry(patient, TriageCategory::Urgent, arrived_at, at(10, 0));
    let entry = ctx.queue_entry(waiting(&ada, at(8, 0))).await;
    let neighbour = ctx.queue_entry(waiting(&grace, at(8, 5))).await;
    let unseen = ctx.queue_entry(waiting(&carl, at(8, 10))).await;
    let of_entry = |entry: QueueEntryId, started_at| Encounter {
        queue_entry_id: Some(entry),
        ..encounter(&ada, &house, started_at)
    };
    ctx.encounter(ended(of_entry(entry.id, at(9, 0)), at(9, 10)))
        .await;
    let current = ctx.encounter(of_entry(entry.id, at(9, 20))).await;
    ctx.encounter(of_entry(neighbour.id, at(9, 25))).await;
    // Not linked to any entry.
    ctx.encounter(encounter(&ada, &house, at(9, 30))).await;

    let open_for = |clinic: ClinicId, entry: QueueEntryId| {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            ctx.store
                .open_for_entry(&mut tx, clinic, entry)
                .await
                .unwrap()
        }
    };
    assert_eq!(open_for(clinic, entry.id).await, Some(current.clone()));
    assert_eq!(open_for(clinic, unseen.id).await, None);
    assert_eq!(open_for(other, entry.id).await, None);

    let closed = Encounter {
        version: 2,
        ..ended(current.clone(), at(9, 40))
    };
    let mut tx = ctx.write().await;
    EncounterRepo::update(&ctx.store, &mut tx, &closed, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(open_for(clinic, entry.id).await, None);
}

pub async fn the_open_encounter_of_an_appointment_is_the_one_not_ended(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let visit = ctx
        .appointment(appointment(&ada, &house, at(9, 0), 30))
        .await;
    let unseen = ctx
        .appointment(appointment(&ada, &house, at(11, 0), 30))
        .await;
    let of_visit = |started_at| Encounter {
        appointment_id: Some(visit.id),
        ..encounter(&ada, &house, started_at)
    };
    ctx.encounter(ended(of_visit(at(9, 0)), at(9, 5))).await;
    let current = ctx.encounter(of_visit(at(9, 10))).await;
    // Not linked to the appointment.
    ctx.encounter(encounter(&ada, &house, at(9, 15))).await;

    let open_for = |clinic: ClinicId, appointment| {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            ctx.store
                .open_for_appointment(&mut tx, clinic, appointment)
                .await
                .unwrap()
        }
    };
    assert_eq!(open_for(clinic, visit.id).await, Some(current.clone()));
    assert_eq!(open_for(clinic, unseen.id).await, None);
    assert_eq!(open_for(other, visit.id).await, None);

    let closed = Encounter {
        version: 2,
        ..ended(current, at(9, 40))
    };
    let mut tx = ctx.write().await;
    EncounterRepo::update(&ctx.store, &mut tx, &closed, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(open_for(clinic, visit.id).await, None);
}

pub async fn a_patients_encounters_are_paged_newest_first(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let mut ids = (0..2).map(|_| Uuid::now_v7()).collect::<Vec<_>>();
    ids.sort();
    let mut names = HashMap::new();
    let mut add = |name: &'static str, e: Encounter| {
        names.insert(e.id, name);
        e
    };
    let visits = [
        add("9:00", encounter(&ada, &house, at(9, 0))),
        add(
            "10:00",
            ended(encounter(&ada, &house, at(10, 0)), at(10, 20)),
        ),
        add(
            "11:00 lower id",
            Encounter {
                id: EncounterId::from_uuid(ids[0]),
                ..encounter(&ada, &house, at(11, 0))
            },
        ),
        add(
            "11:00 higher id",
            Encounter {
                id: EncounterId::from_uuid(ids[1]),
                ..encounter(&ada, &house, at(11, 0))
            },
        ),
        add("12:00", encounter(&ada, &house, at(12, 0))),
        add("grace", encounter(&grace, &house, at(13, 0))),
    ];
    for e in &visits {
        ctx.encounter(e.clone()).await;
    }

    let mut tx = ctx.read().await;
    let mut pages = Vec::new();
    for number in 1..=4 {
        let request = PageRequest::parse(Some(number), Some(2)).unwrap();
        let page = ctx
            .store
            .for_patient(&mut tx, clinic, ada.id, request)
            .await
            .unwrap();
        assert_eq!((page.total, page.request), (5, request));
        pages.push(labels(&page.items, &names));
    }
    assert_eq!(
        pages,
        [
            vec!["12:00", "11:00 higher id"],
            vec!["11:00 lower id", "10:00"],
            vec!["9:00"],
            vec![],
        ]
    );
    let first = ctx
        .store
        .for_patient(&mut tx, clinic, ada.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(first.items[3], visits[1]);
    let nobody = ctx
        .store
        .for_patient(
            &mut tx,
            clinic,
            PatientId::from_uuid(Uuid::now_v7()),
            PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!((nobody.total, nobody.items.len()), (0, 0));
}

pub async fn recently_ended_encounters_are_newest_first_and_filter_by_practitioner(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let cuddy = ctx.practitioner(clinic, "Lisa", "Cuddy").await;
    let mut ids = (0..2).map(|_| Uuid::now_v7()).collect::<Vec<_>>();
    ids.sort();
    let mut names = HashMap::new();
    let mut add = |name: &'static str, e: Encounter| {
        names.insert(e.id, name);
        e
    };
    let seen = |by: &clinicflow_domain::Practitioner, from: (u32, u32), to: (u32, u32)| {
        ended(encounter(&ada, by, at(from.0, from.1)), at(to.0, to.1))
    };
    let visits = [
        add("cuddy 9:00", seen(&cuddy, (8, 30), (9, 0))),
        add("house 10:00", seen(&house, (9, 30), (10, 0))),
        // Started last, ended in the middle: the end is what counts.
        add("house 11:00", seen(&house, (10, 59), (11, 0))),
        add("wilson 11:30", seen(&wilson, (9, 0), (11, 30))),
        add(
            "house 12:00 lower id",
            Encounter {
                id: EncounterId::from_uuid(ids[0]),
                ..seen(&house, (11, 40), (12, 0))
            },
        ),
        add(
            "wilson 12:00 higher id",
            Encounter {
                id: EncounterId::from_uuid(ids[1]),
                ..seen(&wilson, (11, 45), (12, 0))
            },
        ),
        add("house, still open", encounter(&ada, &house, at(12, 30))),
    ];
    for e in &visits {
        ctx.encounter(e.clone()).await;
    }

    let recent = |practitioners: Vec<PractitionerId>, limit: u32, clinic: ClinicId| {
        let ctx = &ctx;
        let names = &names;
        async move {
            let mut tx = ctx.read().await;
            let found = ctx
                .store
                .recently_ended(&mut tx, clinic, &practitioners, limit)
                .await
                .unwrap();
            labels(&found, names)
        }
    };
    assert_eq!(
        recent(vec![], 10, clinic).await,
        [
            "wilson 12:00 higher id",
            "house 12:00 lower id",
            "wilson 11:30",
            "house 11:00",
            "house 10:00",
            "cuddy 9:00",
        ]
    );
    assert_eq!(
        recent(vec![], 3, clinic).await,
        [
            "wilson 12:00 higher id",
            "house 12:00 lower id",
            "wilson 11:30"
        ]
    );
    assert_eq!(
        recent(vec![house.id], 2, clinic).await,
        ["house 12:00 lower id", "house 11:00"]
    );
    assert_eq!(
        recent(vec![house.id, cuddy.id], 10, clinic).await,
        [
            "house 12:00 lower id",
            "house 11:00",
            "house 10:00",
            "cuddy 9:00"
        ]
    );
    assert_eq!(recent(vec![], 0, clinic).await, Vec::<&str>::new());
    let other = ctx.clinic("B").await;
    assert_eq!(recent(vec![], 10, other).await, Vec::<&str>::new());
    assert_eq!(recent(vec![house.id], 10, other).await, Vec::<&str>::new());
}

pub async fn another_clinic_can_neither_see_nor_change_encounters(ctx: Ctx) {
    let a = ctx.clinic("A").await;
    let b = ctx.clinic("B").await;
    let ada = ctx.patient(a, "Ada", "Lovelace").await;
    let house = ctx.practitioner(a, "Gregory", "House").await;
    let entry = ctx
        .queue_entry(queue_entry(
            &ada,
            TriageCategory::Standard,
            at(8, 50),
            at(9, 10),
        ))
        .await;
    let visit = ctx
        .encounter(Encounter {
            queue_entry_id: Some(entry.id),
            ..encounter(&ada, &house, at(9, 0))
        })
        .await;
    ctx.encounter(ended(encounter(&ada, &house, at(8, 0)), at(8, 30)))
        .await;

    let mut tx = ctx.write().await;
    assert_eq!(
        EncounterRepo::get(&ctx.store, &mut tx, b, visit.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        ctx.store
            .open_for_entry(&mut tx, b, entry.id)
            .await
            .unwrap(),
        None
    );
    let page = ctx
        .store
        .for_patient(&mut tx, b, ada.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!((page.total, page.items.len()), (0, 0));
    assert_eq!(
        ctx.store.recently_ended(&mut tx, b, &[], 10).await.unwrap(),
        vec![]
    );
    let hijacked = Encounter {
        clinic_id: b,
        version: 2,
        ..visit.clone()
    };
    let err = EncounterRepo::update(&ctx.store, &mut tx, &hijacked, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    drop(tx);

    let b_patient = ctx.patient(b, "Bea", "Other").await;
    let b_practitioner = ctx.practitioner(b, "Bob", "Other").await;
    let b_visit = ctx
        .appointment(appointment(&b_patient, &b_practitioner, at(9, 0), 30))
        .await;
    let b_entry = ctx
        .queue_entry(queue_entry(
            &b_patient,
            TriageCategory::Standard,
            at(8, 0),
            at(10, 0),
        ))
        .await;
    let foreign = [
        Encounter {
            clinic_id: b,
            ..encounter(&ada, &b_practitioner, at(10, 0))
        },
        encounter(&ada, &b_practitioner, at(10, 0)),
        Encounter {
            appointment_id: Some(b_visit.id),
            ..encounter(&ada, &house, at(10, 0))
        },
        Encounter {
            queue_entry_id: Some(b_entry.id),
            ..encounter(&ada, &house, at(10, 0))
        },
        encounter(&patient(a, "Not", "Stored"), &house, at(10, 0)),
    ];
    for e in foreign {
        let mut tx = ctx.write().await;
        let err = EncounterRepo::insert(&ctx.store, &mut tx, &e)
            .await
            .unwrap_err();
        assert!(matches!(err, RepoError::NotFound), "{e:?}: {err:?}");
    }

    let mut tx = ctx.read().await;
    assert_eq!(
        EncounterRepo::get(&ctx.store, &mut tx, a, visit.id)
            .await
            .unwrap(),
        Some(visit)
    );
}
