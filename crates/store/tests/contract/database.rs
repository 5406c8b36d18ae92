use std::time::{Duration, Instant};

use clinicflow_domain::{Claimed, IdempotencyKey, KeyClaim};
use clinicflow_migration::{Migrator, MigratorTrait};
use clinicflow_ports::{AppointmentRepo, ClinicRepo, Database, IdempotencyRepo, RepoError, TxMode};
use clinicflow_store::testing::{execute_raw, setting};
use clinicflow_store::{Backend, DatabaseBounds, PoolOptions, Store};

use crate::support::{Ctx, clinic, created};

pub async fn begin_is_unavailable_when_no_connection_comes_in_time(ctx: Ctx) {
    ctx.store.ping().await.unwrap();
    let pool = PoolOptions {
        max_connections: 1,
        min_connections: 0,
        acquire_timeout: Duration::from_millis(200),
        bounds: DatabaseBounds {
            sqlite_busy_timeout: Duration::from_millis(200),
            ..DatabaseBounds::default()
        },
        ..PoolOptions::default()
    };
    let tiny = Store::connect(&ctx.db.url, &pool).await.unwrap();
    let held = tiny.begin(TxMode::Write).await.unwrap();
    // sqlx's idle count is approximate while connections move, so only the size is exact.
    let stats = tiny.pool_stats();
    assert_eq!(stats.open, 1);
    assert!(stats.idle <= stats.open);
    let err = tiny.begin(TxMode::Write).await.unwrap_err();
    // SQLite's write units take turns on one connection (the group commit), so a second one
    // waits for its turn, not for a connection, and that wait is bounded like a lock wait.
    match tiny.backend() {
        Backend::Postgres => assert!(matches!(err, RepoError::Unavailable(_)), "{err:?}"),
        Backend::Sqlite => assert!(matches!(err, RepoError::Timeout(_)), "{err:?}"),
    }
    // A read-only unit of work may take a connection per statement: then its first read fails.
    let err = match tiny.begin(TxMode::Read).await {
        Err(err) => err,
        Ok(mut tx) => ClinicRepo::get(&tiny, &mut tx, clinic("Nowhere").id)
            .await
            .unwrap_err(),
    };
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

/// Concurrent write units (on SQLite, savepoints of one group-committed transaction): each
/// that commits is stored, each that fails or is dropped loses its writes and only its own.
pub async fn concurrent_write_units_keep_or_lose_only_their_own_writes(ctx: Ctx) {
    let mut units = tokio::task::JoinSet::new();
    for i in 0..48 {
        let store = ctx.store.clone();
        units.spawn(async move {
            let mut tx = store.begin(TxMode::Write).await.unwrap();
            let first = clinic(&format!("Unit {i}"));
            ClinicRepo::insert(&store, &mut tx, &first).await.unwrap();
            tokio::task::yield_now().await;
            match i % 4 {
                // A statement that fails inside the unit, which the use case then abandons.
                0 => {
                    let err = ClinicRepo::insert(&store, &mut tx, &first)
                        .await
                        .unwrap_err();
                    assert!(matches!(err, RepoError::Duplicate(_)), "{err:?}");
                    (first.id, false)
                }
                1 => (first.id, false),
                _ => {
                    tx.commit().await.unwrap();
                    (first.id, true)
                }
            }
        });
    }
    let outcomes = units.join_all().await;
    let mut tx = ctx.read().await;
    for (id, committed) in outcomes {
        let stored = ClinicRepo::get(&ctx.store, &mut tx, id).await.unwrap();
        assert_eq!(stored.is_some(), committed, "clinic {id:?}");
    }
}

/// A unit dropped while an earlier one waits for its batch's commit takes nothing of the
/// earlier one's writes with it, and a later one's commit makes both committed ones durable.
pub async fn a_unit_dropped_inside_a_batch_leaves_the_others_whole(ctx: Ctx) {
    let first = clinic("First");
    let mut tx = ctx.write().await;
    ClinicRepo::insert(&ctx.store, &mut tx, &first)
        .await
        .unwrap();
    let queued = |name: &'static str, commit: bool| {
        let store = ctx.store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin(TxMode::Write).await.unwrap();
            let c = clinic(name);
            ClinicRepo::insert(&store, &mut tx, &c).await.unwrap();
            if commit {
                tx.commit().await.unwrap();
            }
            c.id
        })
    };
    let dropped = queued("Dropped", false);
    // Ordering only, not timing: the two units are queued behind `tx` before it commits.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let last = queued("Last", true);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    tx.commit().await.unwrap();
    let (dropped, last) = (dropped.await.unwrap(), last.await.unwrap());

    let mut tx = ctx.read().await;
    assert_eq!(
        ClinicRepo::get(&ctx.store, &mut tx, first.id)
            .await
            .unwrap(),
        Some(first)
    );
    assert_eq!(
        ClinicRepo::get(&ctx.store, &mut tx, dropped).await.unwrap(),
        None
    );
    assert!(
        ClinicRepo::get(&ctx.store, &mut tx, last)
            .await
            .unwrap()
            .is_some()
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
    assert!(indexes.len() >= 4, "{indexes:?}");
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

/// How many appointments the index proof plans against: enough that a scan of the whole
/// table costs the planner far more than any index range, as in a clinic after a year.
const PLANNED_APPOINTMENTS: u32 = 20_000;

pub async fn every_appointment_index_serves_a_read_the_store_issues(ctx: Ctx) {
    use std::collections::BTreeSet;

    use sea_orm::{ConnectionTrait, Statement};
    if ctx.backend() != Backend::Postgres {
        // SQLite's planner has no statistics to speak of; the indexes are dropped and kept on
        // what PostgreSQL's plans show.
        return;
    }
    let clinic = ctx.clinic("A").await;
    let mut practitioners = Vec::new();
    for i in 0..20 {
        practitioners.push(ctx.practitioner(clinic, &format!("Doc{i}"), "Who").await);
    }
    let patients = ctx.patients(clinic, 100).await;
    let uuids = |ids: Vec<uuid::Uuid>| {
        ids.iter()
            .map(|u| format!("'{u}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let practitioner_ids = uuids(practitioners.iter().map(|p| p.id.as_uuid()).collect());
    let patient_ids = uuids(patients.iter().map(|p| p.id.as_uuid()).collect());
    // A year of 20-minute appointments, one every 25 minutes in turn across 20 practitioners
    // and 100 patients (so none overlaps for either): the past mostly completed, a few left
    // unattended, a tenth cancelled; the future booked or confirmed.
    execute_raw(
        &ctx.store,
        &format!(
            "INSERT INTO appointments (id, clinic_id, patient_id, practitioner_id, starts_at, \
             ends_at, urgency, reason, status, overbooked, version, created_at, updated_at) \
             SELECT gen_random_uuid(), '{clinic}', (ARRAY[{patient_ids}]::uuid[])[1 + i % 100], \
             (ARRAY[{practitioner_ids}]::uuid[])[1 + i % 20], start, start + INTERVAL '20 minutes', \
             'routine', NULL, \
             CASE WHEN i % 10 = 1 THEN 'cancelled' \
                  WHEN start >= TIMESTAMPTZ '2026-11-16 09:00Z' THEN \
                      CASE WHEN i % 3 = 0 THEN 'confirmed' ELSE 'booked' END \
                  WHEN i % 100 = 0 THEN 'booked' ELSE 'completed' END, \
             false, 1, start - INTERVAL '7 days', start - INTERVAL '7 days' \
             FROM generate_series(0, {last}) AS i, \
             LATERAL (SELECT TIMESTAMPTZ '2026-01-01 08:00Z' + i * INTERVAL '25 minutes' AS start) s",
            clinic = clinic.as_uuid(),
            last = PLANNED_APPOINTMENTS - 1,
        ),
    )
    .await
    .unwrap();
    execute_raw(&ctx.store, "ANALYZE appointments")
        .await
        .unwrap();

    let at = chrono::DateTime::parse_from_rfc3339("2026-11-16T09:00:00Z")
        .unwrap()
        .to_utc();
    let mut proven = BTreeSet::new();
    for (what, index, statement) in clinicflow_store::testing::appointment_index_reads(
        clinic,
        practitioners[3].id,
        patients[7].id,
        at,
    ) {
        // Planned with its values, and as the generic plan that a prepared statement takes
        // after five runs, which must not lose the index either.
        let plan = clinicflow_store::testing::explain(&ctx.store, statement.clone()).await;
        assert!(
            plan.contains(index),
            "{what} is not served by {index}:\n{plan}"
        );
        let generic = clinicflow_store::testing::explain_generic(&ctx.store, statement).await;
        assert!(
            generic.contains(index),
            "{what} is not served by {index} in its generic plan:\n{generic}"
        );
        proven.insert(index.to_owned());
    }

    // Every other btree index on the table backs a constraint (the primary key, and the
    // `(clinic_id, id)` key the queue's and encounters' foreign keys name); the GiST ones are
    // the exclusion constraints. An index beside them that no read needs only slows writes.
    let raw = sea_orm::Database::connect(ctx.db.url.as_str())
        .await
        .unwrap();
    let rows = raw
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT i.relname AS name FROM pg_index x \
             JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
             JOIN pg_am am ON am.oid = i.relam \
             WHERE t.relname = 'appointments' AND am.amname = 'btree' \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
        ))
        .await
        .unwrap();
    let unbacked: BTreeSet<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect();
    raw.close().await.unwrap();
    assert_eq!(
        unbacked, proven,
        "each index serves a read, each read has its index"
    );
}

/// A second store on the test's database with short bounds, as a deployment would set them.
async fn bounded(ctx: &Ctx) -> Store {
    let pool = PoolOptions {
        bounds: DatabaseBounds {
            statement_timeout: Duration::from_millis(1_000),
            lock_timeout: Duration::from_millis(200),
            idle_in_transaction_timeout: Duration::from_millis(10_000),
            sqlite_busy_timeout: Duration::from_millis(200),
        },
        ..PoolOptions::default()
    };
    Store::connect(&ctx.db.url, &pool).await.unwrap()
}

/// How long a bounded wait may take here at most: the bound plus generous slack for a busy
/// machine; an unbounded wait never ends, which is what this tells apart.
const WITHIN: Duration = Duration::from_secs(5);

pub async fn every_pooled_connection_carries_the_bounds(ctx: Ctx) {
    if ctx.backend() != Backend::Postgres {
        // SQLite's only bound is busy_timeout, shown by the lock tests below.
        return;
    }
    let store = bounded(&ctx).await;
    assert_eq!(setting(&store, "statement_timeout").await, "1s");
    assert_eq!(setting(&store, "lock_timeout").await, "200ms");
    assert_eq!(
        setting(&store, "idle_in_transaction_session_timeout").await,
        "10s"
    );
}

pub async fn a_wait_for_a_booking_lock_another_holds_ends_as_a_timeout(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let store = bounded(&ctx).await;
    // Another booking of the same parties is under way (on SQLite: any write transaction).
    let mut holder = ctx.write().await;
    ctx.store
        .lock_parties(&mut holder, clinic, house.id, ada.id)
        .await
        .unwrap();

    let started = Instant::now();
    let err = match store.begin(TxMode::Write).await {
        // SQLite: the write lock itself is what a writer waits for.
        Err(err) => err,
        Ok(mut tx) => store
            .lock_parties(&mut tx, clinic, house.id, ada.id)
            .await
            .unwrap_err(),
    };
    assert!(matches!(err, RepoError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < WITHIN, "{:?}", started.elapsed());

    drop(holder);
    let mut tx = store.begin(TxMode::Write).await.unwrap();
    store
        .lock_parties(&mut tx, clinic, house.id, ada.id)
        .await
        .unwrap();
}

pub async fn a_wait_for_another_requests_idempotency_key_ends_as_a_timeout(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let desk = ctx.user(clinic, "desk@example.org").await;
    let claim = KeyClaim {
        clinic_id: clinic,
        user_id: desk.id,
        key: IdempotencyKey::parse("retry-1").unwrap(),
        fingerprint: "POST /api/v1/patients {}".to_owned(),
        created_at: created(),
        expires_at: created() + chrono::Duration::hours(24),
    };
    let store = bounded(&ctx).await;
    // The first request with this key has claimed it and not committed yet.
    let mut first = ctx.write().await;
    assert_eq!(
        ctx.store.claim(&mut first, &claim).await.unwrap(),
        Claimed::Fresh
    );

    let started = Instant::now();
    let err = match store.begin(TxMode::Write).await {
        Err(err) => err,
        Ok(mut tx) => store.claim(&mut tx, &claim).await.unwrap_err(),
    };
    assert!(matches!(err, RepoError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < WITHIN, "{:?}", started.elapsed());
}

/// Ends every other session of the test database, from a connection of its own, as a server
/// restart or a stopped worker's runtime would leave pooled connections: open but dead.
async fn cut_off_other_sessions(ctx: &Ctx) -> u64 {
    let one = PoolOptions {
        max_connections: 1,
        ..PoolOptions::default()
    };
    let killer = Store::connect(&ctx.db.url, &one).await.unwrap();
    execute_raw(
        &killer,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap()
}

pub async fn a_dead_connection_is_replaced_before_use_once_connections_are_distrusted(ctx: Ctx) {
    if ctx.backend() != Backend::Postgres {
        // SQLite's connections are files opened by this process: nothing cuts them off.
        return;
    }
    let pool = PoolOptions {
        max_connections: 1,
        min_connections: 1,
        test_idle_after: Duration::from_secs(3600),
        ..PoolOptions::default()
    };
    let store = Store::connect(&ctx.db.url, &pool).await.unwrap();
    execute_raw(&store, "SELECT 1").await.unwrap();
    assert!(cut_off_other_sessions(&ctx).await >= 1);
    // A connection in steady use is handed out untested: its statement finds it dead. The
    // test sqlx runs when it takes the connection back then closes it, so only one fails.
    let err = execute_raw(&store, "SELECT 1").await.unwrap_err();
    assert!(matches!(err, RepoError::Unavailable(_)), "{err:?}");
    execute_raw(&store, "SELECT 1").await.unwrap();

    store.distrust_connections();
    assert!(cut_off_other_sessions(&ctx).await >= 1);
    execute_raw(&store, "SELECT 1").await.unwrap();
}

pub async fn a_statement_running_past_its_bound_ends_as_a_timeout(ctx: Ctx) {
    if ctx.backend() != Backend::Postgres {
        // SQLite has no statement timeout: it runs in-process, one writer at a time.
        return;
    }
    let store = bounded(&ctx).await;
    let started = Instant::now();
    let err = execute_raw(&store, "SELECT pg_sleep(30)")
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < WITHIN, "{:?}", started.elapsed());
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
        clinicflow_store::testing::record_skip(
            "no PostgreSQL with TLS (CLINICFLOW_TEST_PG_URL or CLINICFLOW_TEST_PG_SSLROOTCERT is not set)",
        );
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

/// The outbox dispatcher's claim must find due messages through the partial index of pending
/// ones also in its generic plan: otherwise each claim reads every message ever sent, a cost
/// that grows with the clinic's history (it was 60 ms at 90,000 messages).
pub async fn the_outbox_claim_reads_the_due_index_in_its_generic_plan(ctx: Ctx) {
    if ctx.backend() != Backend::Postgres {
        // SQLite prepares no generic plans; its plan is checked with the values.
        return;
    }
    let clinic = ctx.clinic("A").await;
    execute_raw(
        &ctx.store,
        &format!(
            "INSERT INTO outbox_messages (id, clinic_id, kind, payload, status, attempts, \
             next_attempt_at, delivered_at, created_at) \
             SELECT gen_random_uuid(), '{clinic}', 'booking.confirmed', '{{}}', \
             CASE WHEN i % 1000 = 0 THEN 'pending' ELSE 'delivered' END, 1, \
             TIMESTAMPTZ '2026-01-01 08:00Z' + i * INTERVAL '1 minute', \
             TIMESTAMPTZ '2026-01-01 08:00Z' + i * INTERVAL '1 minute', \
             TIMESTAMPTZ '2026-01-01 08:00Z' + i * INTERVAL '1 minute' \
             FROM generate_series(1, 20000) AS i",
            clinic = clinic.as_uuid(),
        ),
    )
    .await
    .unwrap();
    execute_raw(&ctx.store, "ANALYZE outbox_messages")
        .await
        .unwrap();
    let now = chrono::DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let statement = clinicflow_store::testing::outbox_claim_statement(now);
    let generic = clinicflow_store::testing::explain_generic(&ctx.store, statement).await;
    assert!(
        generic.contains("outbox_messages_due_idx"),
        "the claim does not read the due index in its generic plan:\n{generic}"
    );
}
