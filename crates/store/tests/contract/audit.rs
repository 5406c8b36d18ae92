use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::{
    AuditAction, AuditEvent, AuditEventId, ClinicId, Outcome, PatientId, ResourceType, Role, UserId,
};
use clinicflow_ports::{AuditFilter, AuditRepo, RepoError};
use clinicflow_store::Backend;
use clinicflow_store::testing::execute_raw;
use uuid::Uuid;

use crate::support::{Ctx, at, refused};

/// `n` UUIDv7 ids in ascending order, whatever the clock did between them.
fn ascending_ids(n: usize) -> Vec<AuditEventId> {
    let mut ids = (0..n).map(|_| Uuid::now_v7()).collect::<Vec<_>>();
    ids.sort();
    ids.into_iter().map(AuditEventId::from_uuid).collect()
}

fn event(
    id: AuditEventId,
    clinic: ClinicId,
    actor: UserId,
    patient: Option<PatientId>,
    at: DateTime<Utc>,
) -> AuditEvent {
    AuditEvent {
        id,
        clinic_id: clinic,
        actor_id: actor,
        actor_role: Role::Receptionist,
        action: AuditAction::Read,
        resource_type: ResourceType::Patient,
        resource_id: patient.map(|p| p.as_uuid()),
        patient_id: patient,
        at,
        request_id: Some(Uuid::now_v7()),
        outcome: Outcome::Success,
    }
}

/// Five events of clinic A, oldest first: two actors, two patients, an hour apart.
struct Log {
    clinic: ClinicId,
    x: UserId,
    y: UserId,
    ada: PatientId,
    events: Vec<AuditEvent>,
}

/// Appends the five events of [`Log`] out of order, plus one in another clinic, and returns
/// clinic A's log and the other clinic's event.
async fn log(ctx: &Ctx) -> (Log, AuditEvent) {
    let clinic = ctx.clinic("A").await;
    let other = ctx.clinic("B").await;
    // Actors and patients are plain ids in the log: no user or patient row is needed.
    let (x, y) = (
        UserId::from_uuid(Uuid::now_v7()),
        UserId::from_uuid(Uuid::now_v7()),
    );
    let ada = PatientId::from_uuid(Uuid::now_v7());
    let grace = PatientId::from_uuid(Uuid::now_v7());
    let ids = ascending_ids(6);
    let mut events = vec![
        event(ids[0], clinic, x, Some(ada), at(9, 0)),
        event(ids[1], clinic, y, Some(grace), at(10, 0)),
        event(ids[2], clinic, x, None, at(11, 0)),
        event(ids[3], clinic, y, Some(ada), at(12, 0)),
        event(ids[4], clinic, x, Some(ada), at(13, 0)),
    ];
    events[1].action = AuditAction::Update;
    events[1].actor_role = Role::Practitioner;
    events[2].action = AuditAction::List;
    events[2].request_id = None;
    events[3].outcome = Outcome::Denied;
    events[4].action = AuditAction::Create;
    events[4].resource_type = ResourceType::Appointment;
    events[4].resource_id = Some(Uuid::now_v7());
    events[4].actor_role = Role::Admin;
    let elsewhere = event(ids[5], other, x, Some(ada), at(10, 0));

    let mut tx = ctx.write().await;
    for i in [2, 0, 4, 1, 3] {
        ctx.store.append(&mut tx, &events[i]).await.unwrap();
    }
    ctx.store.append(&mut tx, &elsewhere).await.unwrap();
    tx.commit().await.unwrap();
    (
        Log {
            clinic,
            x,
            y,
            ada,
            events,
        },
        elsewhere,
    )
}

async fn list(
    ctx: &Ctx,
    clinic: ClinicId,
    filter: &AuditFilter,
    before: Option<AuditEventId>,
    limit: u32,
) -> Vec<AuditEvent> {
    let mut tx = ctx.read().await;
    AuditRepo::list(&ctx.store, &mut tx, clinic, filter, before, limit)
        .await
        .unwrap()
}

pub async fn audit_events_read_back_newest_first_and_filter(ctx: Ctx) {
    let (log, _) = log(&ctx).await;
    let e = &log.events;
    let pick = |idx: &[usize]| idx.iter().map(|&i| e[i].clone()).collect::<Vec<_>>();
    let all = AuditFilter::default();

    assert_eq!(
        list(&ctx, log.clinic, &all, None, 50).await,
        pick(&[4, 3, 2, 1, 0]),
        "every field reads back, newest first"
    );
    let about_ada = AuditFilter {
        patient_id: Some(log.ada),
        ..AuditFilter::default()
    };
    assert_eq!(
        list(&ctx, log.clinic, &about_ada, None, 50).await,
        pick(&[4, 3, 0])
    );
    let by_x = AuditFilter {
        actor_id: Some(log.x),
        ..AuditFilter::default()
    };
    assert_eq!(
        list(&ctx, log.clinic, &by_x, None, 50).await,
        pick(&[4, 2, 0])
    );
    let by_y = AuditFilter {
        actor_id: Some(log.y),
        ..AuditFilter::default()
    };
    assert_eq!(list(&ctx, log.clinic, &by_y, None, 50).await, pick(&[3, 1]));
    let from_ten_before_twelve = AuditFilter {
        from: Some(at(10, 0)),
        to: Some(at(12, 0)),
        ..AuditFilter::default()
    };
    assert_eq!(
        list(&ctx, log.clinic, &from_ten_before_twelve, None, 50).await,
        pick(&[2, 1]),
        "`from` is inclusive, `to` exclusive"
    );
    let just_after_ten = AuditFilter {
        from: Some(at(10, 0) + Duration::nanoseconds(1)),
        ..AuditFilter::default()
    };
    assert_eq!(
        list(&ctx, log.clinic, &just_after_ten, None, 50).await,
        pick(&[4, 3, 2])
    );
    let ada_by_x_until_noon = AuditFilter {
        patient_id: Some(log.ada),
        actor_id: Some(log.x),
        from: None,
        to: Some(at(12, 0)),
    };
    assert_eq!(
        list(&ctx, log.clinic, &ada_by_x_until_noon, None, 50).await,
        pick(&[0])
    );
    assert_eq!(list(&ctx, log.clinic, &all, None, 2).await, pick(&[4, 3]));
    assert_eq!(list(&ctx, log.clinic, &all, None, 0).await, vec![]);
}

pub async fn audit_pages_follow_the_cursor_without_overlap(ctx: Ctx) {
    let (log, _) = log(&ctx).await;
    let newest_first = log.events.iter().rev().cloned().collect::<Vec<_>>();

    for limit in 1..=3 {
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = list(&ctx, log.clinic, &AuditFilter::default(), before, limit).await;
            assert!(page.len() <= limit as usize);
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            assert!(
                page.iter().all(|e| !seen.contains(e)),
                "pages do not overlap"
            );
            seen.extend(page);
        }
        assert_eq!(seen, newest_first, "limit {limit}");
    }

    let about_ada = AuditFilter {
        patient_id: Some(log.ada),
        ..AuditFilter::default()
    };
    let first = list(&ctx, log.clinic, &about_ada, None, 2).await;
    assert_eq!(first, vec![log.events[4].clone(), log.events[3].clone()]);
    let second = list(&ctx, log.clinic, &about_ada, Some(first[1].id), 2).await;
    assert_eq!(second, vec![log.events[0].clone()]);
    let past_the_end = list(&ctx, log.clinic, &about_ada, Some(second[0].id), 2).await;
    assert_eq!(past_the_end, vec![]);
    // A cursor need not be an id of the list: any id marks a point in time.
    let after_all = AuditEventId::from_uuid(Uuid::now_v7());
    assert_eq!(
        list(
            &ctx,
            log.clinic,
            &AuditFilter::default(),
            Some(after_all),
            50
        )
        .await,
        newest_first
    );
}

pub async fn the_audit_log_is_per_clinic(ctx: Ctx) {
    let (log, elsewhere) = log(&ctx).await;
    let all = AuditFilter::default();
    let own = list(&ctx, log.clinic, &all, None, 50).await;
    assert!(own.iter().all(|e| e.clinic_id == log.clinic));
    assert!(!own.contains(&elsewhere));
    assert_eq!(
        list(&ctx, elsewhere.clinic_id, &all, None, 50).await,
        vec![elsewhere.clone()]
    );
    let about_ada = AuditFilter {
        patient_id: Some(log.ada),
        actor_id: Some(log.x),
        ..AuditFilter::default()
    };
    assert_eq!(
        list(&ctx, elsewhere.clinic_id, &about_ada, None, 50).await,
        vec![elsewhere.clone()],
        "the same ids in another clinic are another clinic's"
    );
    let newest_of_a = own[0].id;
    assert_eq!(
        list(&ctx, elsewhere.clinic_id, &all, Some(newest_of_a), 50).await,
        vec![],
        "a cursor from clinic A shows nothing of A in B"
    );
    let nobody = ClinicId::from_uuid(Uuid::now_v7());
    assert_eq!(list(&ctx, nobody, &all, None, 50).await, vec![]);

    let mut orphan = elsewhere.clone();
    orphan.id = AuditEventId::from_uuid(Uuid::now_v7());
    orphan.clinic_id = nobody;
    let mut tx = ctx.write().await;
    let outcome = ctx.store.append(&mut tx, &orphan).await;
    let err = refused(tx, outcome).await;
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
}

pub async fn audit_events_cannot_be_changed_or_removed(ctx: Ctx) {
    let (log, _) = log(&ctx).await;
    let mut forbidden = vec![
        "UPDATE audit_events SET outcome = 'denied'",
        "DELETE FROM audit_events",
    ];
    if ctx.backend() == Backend::Postgres {
        forbidden.push("TRUNCATE audit_events");
    }
    for sql in forbidden {
        let err = execute_raw(&ctx.store, sql).await.unwrap_err();
        assert!(
            matches!(err, RepoError::Other(_)) && err.to_string().contains("append-only"),
            "{sql}: {err:?}"
        );
    }

    let mut tx = ctx.write().await;
    let outcome = ctx.store.append(&mut tx, &log.events[0]).await;
    let err = refused(tx, outcome).await;
    assert!(matches!(err, RepoError::Duplicate("id")), "{err:?}");

    assert_eq!(
        list(&ctx, log.clinic, &AuditFilter::default(), None, 50).await,
        log.events.iter().rev().cloned().collect::<Vec<_>>(),
        "the log is unchanged"
    );
}

/// `n` events of reads by concurrent requests, recorded through the group commit at once.
async fn record_concurrently(ctx: &Ctx, clinic: ClinicId, n: usize) -> Vec<Result<(), RepoError>> {
    let actor = UserId::from_uuid(Uuid::now_v7());
    let calls = (0..n).map(|_| {
        let store = ctx.store.clone();
        let e = event(
            AuditEventId::from_uuid(Uuid::now_v7()),
            clinic,
            actor,
            Some(PatientId::from_uuid(Uuid::now_v7())),
            at(9, 0),
        );
        tokio::spawn(async move { store.record(&e).await })
    });
    let mut outcomes = Vec::with_capacity(n);
    for call in calls.collect::<Vec<_>>() {
        outcomes.push(call.await.unwrap());
    }
    outcomes
}

pub async fn every_recorded_event_of_concurrent_reads_is_durable_when_answered(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let outcomes = record_concurrently(&ctx, clinic, 300).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let mut seen = 0;
    let mut before = None;
    loop {
        let page = list(&ctx, clinic, &AuditFilter::default(), before, 100).await;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        seen += page.len();
    }
    assert_eq!(seen, 300, "every answered call left its event");
}

pub async fn a_failed_audit_batch_fails_every_caller_in_it(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let (refuse, allow) = match ctx.backend() {
        Backend::Sqlite => (
            vec![
                "CREATE TRIGGER audit_full BEFORE INSERT ON audit_events \
                 BEGIN SELECT RAISE(ABORT, 'disk full'); END",
            ],
            "DROP TRIGGER audit_full",
        ),
        Backend::Postgres => (
            vec![
                "CREATE FUNCTION audit_full() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'disk full'; END $$",
                "CREATE TRIGGER audit_full BEFORE INSERT ON audit_events \
                 FOR EACH ROW EXECUTE FUNCTION audit_full()",
            ],
            "DROP TRIGGER audit_full ON audit_events",
        ),
    };
    for sql in refuse {
        execute_raw(&ctx.store, sql).await.unwrap();
    }
    let outcomes = record_concurrently(&ctx, clinic, 50).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(RepoError::Unavailable(_)))),
        "a write that failed is retryable for every caller: {outcomes:?}"
    );
    execute_raw(&ctx.store, allow).await.unwrap();
    let outcomes = record_concurrently(&ctx, clinic, 1).await;
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    assert_eq!(
        list(&ctx, clinic, &AuditFilter::default(), None, 100)
            .await
            .len(),
        1,
        "nothing of the failed batches was written"
    );
}
