use std::time::Duration;

use clinicflow_migration::{Migrator, MigratorTrait};
use clinicflow_ports::{ClinicRepo, Database, RepoError, TxMode};
use clinicflow_store::{PoolOptions, Store};

use crate::support::{Ctx, clinic};

pub async fn begin_is_unavailable_when_no_connection_comes_in_time(ctx: Ctx) {
    ctx.store.ping().await.unwrap();
    let pool = PoolOptions {
        max_connections: 1,
        min_connections: 0,
        acquire_timeout: Duration::from_millis(200),
        ..PoolOptions::default()
    };
    let tiny = Store::connect(&ctx.db.url, &pool).await.unwrap();
    let held = tiny.begin(TxMode::Read).await.unwrap();
    // sqlx's idle count is approximate while connections move, so only the size is exact.
    let stats = tiny.pool_stats();
    assert_eq!(stats.open, 1);
    assert!(stats.idle <= stats.open);
    let err = tiny.begin(TxMode::Read).await.unwrap_err();
    assert!(matches!(err, RepoError::Unavailable(_)), "{err:?}");
    drop(held);
    tiny.begin(TxMode::Write).await.unwrap();
}

pub async fn a_dropped_transaction_rolls_back(ctx: Ctx) {
    let kept = clinic("Kept");
    let lost = clinic("Lost");
    let mut tx = ctx.write().await;
    ClinicRepo::insert(&ctx.store, &mut tx, &lost)
        .await
        .unwrap();
    drop(tx);
    // On SQLite the dropped write transaction must also have let go of the write lock.
    let mut tx = ctx.write().await;
    ClinicRepo::insert(&ctx.store, &mut tx, &kept)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = ctx.read().await;
    assert_eq!(
        ClinicRepo::get(&ctx.store, &mut tx, lost.id).await.unwrap(),
        None
    );
    assert_eq!(
        ClinicRepo::get(&ctx.store, &mut tx, kept.id).await.unwrap(),
        Some(kept)
    );
}

pub async fn migrations_revert_and_apply_again(ctx: Ctx) {
    ctx.store.migrate().await.unwrap();
    let raw = sea_orm::Database::connect(ctx.db.url.as_str())
        .await
        .unwrap();
    Migrator::down(&raw, None).await.unwrap();
    assert!(
        Migrator::get_applied_migrations(&raw)
            .await
            .unwrap()
            .is_empty()
    );
    raw.close().await.unwrap();
    ctx.store.migrate().await.unwrap();
    ctx.clinic("After a round trip").await;
}

pub async fn every_appointment_index_leaves_out_deleted_rows(ctx: Ctx) {
    use sea_orm::{ConnectionTrait, Statement};
    let raw = sea_orm::Database::connect(ctx.db.url.as_str())
        .await
        .unwrap();
    let backend = raw.get_database_backend();
    let sql = match ctx.store.backend() {
        clinicflow_store::Backend::Postgres => {
            "SELECT indexname AS name, indexdef AS def FROM pg_indexes \
             WHERE tablename = 'appointments' AND indexname LIKE '%\\_idx'"
        }
        _ => {
            "SELECT name, sql AS def FROM sqlite_master \
             WHERE type = 'index' AND tbl_name = 'appointments' AND name LIKE '%\\_idx' ESCAPE '\\'"
        }
    };
    let rows = raw
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap();
    let indexes: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "name").unwrap(),
                r.try_get::<String>("", "def").unwrap(),
            )
        })
        .collect();
    assert!(indexes.len() >= 6, "{indexes:?}");
    for (name, def) in &indexes {
        assert!(
            def.to_lowercase()
                .replace('"', "")
                .contains("deleted_at is null"),
            "{name} also indexes soft-deleted appointments: {def}"
        );
    }
    raw.close().await.unwrap();
}

/// Before the index that lets a patient wait once, a database could hold several open entries
/// of one patient; the migration closes all but one (in service, else called, else the first
/// to arrive) instead of failing.
pub async fn the_lifecycle_migration_keeps_one_open_entry_per_patient(ctx: Ctx) {
    use clinicflow_domain::{QueueStatus, TriageCategory};
    use clinicflow_ports::QueueRepo;

    ctx.store.migrate().await.unwrap();
    let clinic_id = ctx.clinic("A").await;
    let ada = ctx.patient(clinic_id, "Ada", "Lovelace").await;
    let grace = ctx.patient(clinic_id, "Grace", "Hopper").await;
    // Back to the schema before `m20261203_000012_lifecycle` (and whatever came after it).
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let from = names
        .iter()
        .position(|n| n == "m20261203_000012_lifecycle")
        .expect("the migration is listed");
    let reverted = u32::try_from(names.len() - from).unwrap();
    let raw = sea_orm::Database::connect(ctx.db.url.as_str())
        .await
        .unwrap();
    Migrator::down(&raw, Some(reverted)).await.unwrap();

    let entry = |patient, status, minute| clinicflow_domain::QueueEntry {
        status,
        ..crate::support::queue_entry(
            patient,
            TriageCategory::Standard,
            crate::support::at(8, minute),
            crate::support::at(10, minute),
        )
    };
    let first = entry(&ada, QueueStatus::Waiting, 0);
    let called = entry(&ada, QueueStatus::Called, 10);
    let later = entry(&ada, QueueStatus::Waiting, 20);
    let alone = entry(&grace, QueueStatus::Waiting, 30);
    for e in [&first, &called, &later, &alone] {
        ctx.queue_entry(e.clone()).await;
    }
    Migrator::up(&raw, None).await.unwrap();
    raw.close().await.unwrap();

    let mut tx = ctx.read().await;
    let mut status = Vec::new();
    for e in [&first, &called, &later, &alone] {
        let read = QueueRepo::get(&ctx.store, &mut tx, clinic_id, e.id)
            .await
            .unwrap()
            .unwrap();
        status.push(read.status);
    }
    assert_eq!(
        status,
        [
            QueueStatus::Left,
            QueueStatus::Called,
            QueueStatus::Left,
            QueueStatus::Waiting
        ]
    );
}
