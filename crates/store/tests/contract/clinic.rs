use clinicflow_domain::{Clinic, ClinicId, QueueSettings};
use clinicflow_ports::ClinicRepo;
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
