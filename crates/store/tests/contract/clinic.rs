use chrono::{TimeZone, Utc};
use clinicflow_domain::{
    Clinic, ClinicId, ClinicName, QueueSettings, ReminderOffsets, WebhookEndpoint, WebhookSecret,
    WebhookUrl,
};
use clinicflow_ports::ClinicRepo;
use clinicflow_ports::RepoError;
use clinicflow_store::Backend;
use clinicflow_store::testing::execute_raw;
use uuid::Uuid;

use crate::support::{Ctx, clinic};

pub async fn a_clinic_reads_back_by_id_and_by_name(ctx: Ctx) {
    let stored = clinic("Praxis am Park");
    let mut tx = ctx.write().await;
    ClinicRepo::insert(&ctx.store, &mut tx, &stored)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    let by_id = ClinicRepo::get(&ctx.store, &mut tx, stored.id)
        .await
        .unwrap();
    assert_eq!(by_id.as_ref(), Some(&stored));
    let by_name = ctx
        .store
        .find_by_name(&mut tx, "Praxis am Park")
        .await
        .unwrap();
    assert_eq!(by_name, Some(stored));
    assert_eq!(
        ctx.store
            .find_by_name(&mut tx, "Praxis am See")
            .await
            .unwrap(),
        None
    );
    let unknown = ClinicId::from_uuid(Uuid::now_v7());
    assert_eq!(
        ClinicRepo::get(&ctx.store, &mut tx, unknown).await.unwrap(),
        None
    );
}

pub async fn queue_settings_read_back_and_default_for_clinics_stored_without_them(ctx: Ctx) {
    let custom = Clinic {
        queue: QueueSettings {
            target_minutes: [1, 15, 45, 90, 300],
            checkin_grace_minutes: 5,
        },
        ..clinic("Praxis am Park")
    };
    let mut tx = ctx.write().await;
    ClinicRepo::insert(&ctx.store, &mut tx, &custom)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A clinic written as before the queue existed gets the Manchester bands and a 10-minute grace.
    let older = ClinicId::from_uuid(Uuid::now_v7());
    let id = match ctx.backend() {
        Backend::Sqlite => format!("X'{}'", older.as_uuid().simple()),
        Backend::Postgres => format!("'{}'", older.as_uuid()),
    };
    execute_raw(
        &ctx.store,
        &format!(
            "INSERT INTO clinics (id, name, time_zone, no_show_grace_minutes, created_at) \
             VALUES ({id}, 'Praxis am See', 'Europe/Berlin', 15, '2026-11-20T08:30:00+00:00')"
        ),
    )
    .await
    .unwrap();

    let mut tx = ctx.read().await;
    for (id, name, expected) in [
        (custom.id, "Praxis am Park", custom.queue),
        (older, "Praxis am See", QueueSettings::default()),
    ] {
        let by_id = ClinicRepo::get(&ctx.store, &mut tx, id)
            .await
            .unwrap()
            .unwrap();
        let by_name = ctx.store.find_by_name(&mut tx, name).await.unwrap();
        assert_eq!(by_id.queue, expected);
        assert_eq!(
            by_id.reminders,
            ReminderOffsets::default(),
            "24 h and 2 h unless set"
        );
        assert_eq!(by_name, Some(by_id));
    }
    assert_eq!(
        QueueSettings::default(),
        QueueSettings {
            target_minutes: [0, 10, 60, 120, 240],
            checkin_grace_minutes: 10,
        }
    );
}

pub async fn settings_update_in_place_and_unknown_clinics_are_not_found(ctx: Ctx) {
    let stored = clinic("Praxis am Park");
    let other = clinic("Praxis am See");
    let mut tx = ctx.write().await;
    for c in [&stored, &other] {
        ClinicRepo::insert(&ctx.store, &mut tx, c).await.unwrap();
    }
    tx.commit().await.unwrap();

    let changed = Clinic {
        name: ClinicName::parse("Praxis im Park").unwrap(),
        no_show_grace_minutes: 20,
        queue: QueueSettings {
            target_minutes: [0, 5, 30, 90, 180],
            checkin_grace_minutes: 3,
        },
        reminders: ReminderOffsets::parse(&[4320, 60]).unwrap(),
        check_in: clinicflow_domain::CheckInWindow {
            opens_minutes_before: 30,
            closes_minutes_after: Some(45),
        },
        version: 2,
        ..stored.clone()
    };
    let mut tx = ctx.write().await;
    ClinicRepo::update(&ctx.store, &mut tx, &changed, 1)
        .await
        .unwrap();
    let unknown = Clinic {
        id: ClinicId::from_uuid(Uuid::now_v7()),
        ..changed.clone()
    };
    assert!(matches!(
        ClinicRepo::update(&ctx.store, &mut tx, &unknown, 2).await,
        Err(RepoError::NotFound)
    ));
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    assert_eq!(
        ClinicRepo::get(&ctx.store, &mut tx, stored.id)
            .await
            .unwrap(),
        Some(changed)
    );
    assert_eq!(
        ClinicRepo::get(&ctx.store, &mut tx, other.id)
            .await
            .unwrap(),
        Some(other.clone()),
        "the other clinic is untouched"
    );
    let mut ids = vec![stored.id, other.id];
    ids.sort_by_key(|id| id.as_uuid());
    assert_eq!(ctx.store.list_ids(&mut tx).await.unwrap(), ids);

    // No reminders at all is a setting too.
    let silent = Clinic {
        reminders: ReminderOffsets::parse(&[]).unwrap(),
        version: 2,
        ..other
    };
    let mut tx = ctx.write().await;
    ClinicRepo::update(&ctx.store, &mut tx, &silent, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = ctx.read().await;
    let read = ClinicRepo::get(&ctx.store, &mut tx, silent.id)
        .await
        .unwrap()
        .unwrap();
    assert!(read.reminders.offsets().is_empty());
}

pub async fn a_webhook_is_set_replaced_and_removed_per_clinic(ctx: Ctx) {
    let (a, b) = (clinic("A"), clinic("B"));
    let mut tx = ctx.write().await;
    for c in [&a, &b] {
        ClinicRepo::insert(&ctx.store, &mut tx, c).await.unwrap();
    }
    tx.commit().await.unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
    let hook = |url: &str, byte: u8| WebhookEndpoint {
        url: WebhookUrl::parse(url).unwrap(),
        secret: WebhookSecret::from_random([byte; 32]),
    };

    let mut tx = ctx.write().await;
    assert_eq!(ctx.store.webhook(&mut tx, a.id).await.unwrap(), None);
    ctx.store
        .set_webhook(&mut tx, a.id, Some(hook("https://a.example/hook", 1)), at)
        .await
        .unwrap();
    // Setting it again replaces the one row, secret included.
    ctx.store
        .set_webhook(&mut tx, a.id, Some(hook("https://a.example/v2", 2)), at)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    assert_eq!(
        ctx.store.webhook(&mut tx, a.id).await.unwrap(),
        Some(hook("https://a.example/v2", 2))
    );
    assert_eq!(
        ctx.store.webhook(&mut tx, b.id).await.unwrap(),
        None,
        "per clinic"
    );

    let mut tx = ctx.write().await;
    ctx.store
        .set_webhook(&mut tx, a.id, None, at)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = ctx.read().await;
    assert_eq!(ctx.store.webhook(&mut tx, a.id).await.unwrap(), None);
}

pub async fn a_settings_update_based_on_an_older_version_is_refused(ctx: Ctx) {
    let stored = clinic("Praxis am Park");
    let mut tx = ctx.write().await;
    ClinicRepo::insert(&ctx.store, &mut tx, &stored)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Two admins read version 1; the first to write wins, the second is told it is stale.
    let renamed = Clinic {
        name: ClinicName::parse("Praxis im Park").unwrap(),
        version: 2,
        ..stored.clone()
    };
    let regraced = Clinic {
        no_show_grace_minutes: 30,
        version: 2,
        ..stored.clone()
    };
    let mut tx = ctx.write().await;
    ClinicRepo::update(&ctx.store, &mut tx, &renamed, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = ctx.write().await;
    assert!(matches!(
        ClinicRepo::update(&ctx.store, &mut tx, &regraced, 1).await,
        Err(RepoError::StaleVersion)
    ));
    drop(tx);

    let mut tx = ctx.read().await;
    assert_eq!(
        ClinicRepo::get(&ctx.store, &mut tx, stored.id)
            .await
            .unwrap(),
        Some(renamed),
        "the first change stands whole"
    );
}
