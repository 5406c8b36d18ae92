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

/// PostgreSQL's TLS: `sslmode=require` encrypts, `verify-full` with `sslrootcert` also checks
/// the server's certificate and name. Needs the throwaway server of `cargo xtask test`, which
/// runs with a certificate of its own authority (`CLINICFLOW_TEST_PG_SSLROOTCERT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connects_with_sslmode_require_and_verify_full() {
    let (Ok(admin), Ok(root)) = (
        std::env::var(clinicflow_store::testing::PG_URL_VAR),
        std::env::var("CLINICFLOW_TEST_PG_SSLROOTCERT"),
    ) else {
        assert!(
            std::env::var("CLINICFLOW_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "PostgreSQL with TLS is required (CLINICFLOW_TEST_PG_URL and CLINICFLOW_TEST_PG_SSLROOTCERT)"
        );
        eprintln!("skipped: no PostgreSQL with TLS (run through `cargo xtask test`)");
        return;
    };
    let separator = if admin.contains('?') { '&' } else { '?' };
    let with = |params: &str| format!("{admin}{separator}{params}");
    let pool = PoolOptions {
        max_connections: 1,
        min_connections: 0,
        ..PoolOptions::default()
    };
    let plain = Store::connect(&with("sslmode=disable"), &pool)
        .await
        .unwrap();
    assert!(!plain.uses_tls().await.unwrap(), "sslmode=disable is plain");
    for params in [
        "sslmode=require".to_owned(),
        format!("sslmode=verify-full&sslrootcert={root}"),
        format!("sslmode=verify-ca&sslrootcert={root}"),
    ] {
        let store = Store::connect(&with(&params), &pool)
            .await
            .unwrap_or_else(|e| panic!("{params}: {e:?}"));
        assert!(store.uses_tls().await.unwrap(), "{params} encrypts");
        store.ping().await.unwrap();
    }
    // verify-full checks the certificate against the root given: the built-in roots do not
    // know the test authority, so without sslrootcert the connection is refused.
    let refused = Store::connect(&with("sslmode=verify-full"), &pool).await;
    assert!(
        refused.is_err(),
        "verify-full without the test root must fail"
    );
}
