//! Fresh, migrated databases for tests (the `testing` feature): one per test, never shared.
//!
//! SQLite databases are files in a temporary directory. PostgreSQL databases are created
//! as `t_<uuid>` on the server named by `CLINICFLOW_TEST_PG_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped again when the
//! [`TestDatabase`] is dropped. Without that variable PostgreSQL tests are skipped, unless
//! `CLINICFLOW_REQUIRE_SERVICES=1` (as in CI), where a missing server is an error.

use clinicflow_ports::RepoError;
use sea_orm::{ConnectOptions, ConnectionTrait};
use tempfile::TempDir;
use uuid::Uuid;

use crate::error::repo_error;
use crate::{PoolOptions, Store};

/// Admin URL of the PostgreSQL server that test databases are created on.
pub const PG_URL_VAR: &str = "CLINICFLOW_TEST_PG_URL";
/// Set to `1` to make a missing test server fail instead of skipping.
pub const REQUIRE_SERVICES_VAR: &str = "CLINICFLOW_REQUIRE_SERVICES";
/// A file that every skipped test appends a line to; `cargo xtask test` sums it up at the end.
pub const SKIP_LOG_VAR: &str = "CLINICFLOW_SKIP_LOG";

/// Says that the running test is skipped and why, so a skip is never mistaken for a pass:
/// straight to the process's stderr (past the test harness's capture, so a plain `cargo
/// test` shows it) and into the file named by [`SKIP_LOG_VAR`], which `cargo xtask test`
/// counts and prints after the run.
pub fn record_skip(reason: &str) {
    use std::io::Write;
    // libtest and nextest name the thread that runs a test after the test.
    let line = format!(
        "skipped: {}: {reason}\n",
        std::thread::current().name().unwrap_or("a test")
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os(SKIP_LOG_VAR) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        if let Ok(mut file) = file {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// A new SQLite file.
    Sqlite,
    /// A new database on the server at `CLINICFLOW_TEST_PG_URL`.
    Postgres,
}

/// A fresh, migrated database that lives as long as this value.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL to connect to it.
    pub url: String,
    guard: Guard,
}

#[derive(Debug)]
enum Guard {
    /// Holds the directory of the SQLite file; removing it deletes the database.
    Sqlite(#[allow(dead_code)] TempDir),
    /// The server and name of the database to drop.
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// Fresh, migrated database. Sqlite: a new file in a TempDir. Postgres: `CREATE DATABASE
    /// t_<uuid>` on the server at `CLINICFLOW_TEST_PG_URL`, then migrated; `None` when that
    /// variable is unset, unless `CLINICFLOW_REQUIRE_SERVICES=1`, in which case it panics.
    ///
    /// # Panics
    /// When the database cannot be created or migrated: a test cannot run without it.
    pub async fn new(backend: TestBackend) -> Option<TestDatabase> {
        let db = match backend {
            TestBackend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory for the SQLite file");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("clinicflow.db").display()
                );
                TestDatabase {
                    url,
                    guard: Guard::Sqlite(dir),
                }
            }
            TestBackend::Postgres => {
                let admin_url = postgres_admin_url()?;
                let name = format!("t_{}", Uuid::now_v7().simple());
                let admin = admin_connection(&admin_url).await;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
                // Closing is best-effort: the database exists whatever happens to this connection.
                let _ = admin.close().await;
                TestDatabase {
                    url: with_database(&admin_url, &name),
                    guard: Guard::Postgres { admin_url, name },
                }
            }
        };
        db.store()
            .await
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("cannot migrate the test database: {e:?}"));
        Some(db)
    }

    /// A store connected to this (migrated) database.
    ///
    /// # Panics
    /// When it cannot connect.
    pub async fn store(&self) -> Store {
        Store::connect(&self.url, &PoolOptions::default())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test database {}: {e:?}", self.url))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Guard::Postgres { admin_url, name } = &self.guard else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop cannot await, and the test's runtime may be single-threaded: use a runtime of
        // our own on a thread of our own. Failing to drop only leaves a database behind.
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let admin = admin_connection(&admin_url).await;
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
            });
        });
        let _ = dropped.join();
    }
}

/// Runs `sql` as it is on `store`'s pool, outside any unit of work, and returns the rows it
/// changed; for tests that must reach past the repositories, such as proving that the
/// database itself refuses to change the audit log. Errors map as the repositories' do.
pub async fn execute_raw(store: &Store, sql: &str) -> Result<u64, RepoError> {
    let result = store
        .conn
        .execute_unprepared(sql)
        .await
        .map_err(repo_error)?;
    Ok(result.rows_affected())
}

/// The value of the PostgreSQL setting `name` (`SHOW name`) on a pooled connection of `store`.
///
/// # Panics
/// When the setting cannot be read.
pub async fn setting(store: &Store, name: &str) -> String {
    let row = store
        .conn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SHOW {name}"),
        ))
        .await
        .unwrap_or_else(|e| panic!("SHOW {name}: {e}"))
        .unwrap_or_else(|| panic!("SHOW {name} answered no row"));
    row.try_get_by_index::<String>(0)
        .unwrap_or_else(|e| panic!("SHOW {name}: {e}"))
}

/// Waits until at least `count` sessions of the PostgreSQL database at `url` wait for a lock
/// (`pg_stat_activity`), polling until `within` has passed: for tests that must know other
/// requests are blocked before they release what those wait for. SQLite shows no waiting
/// writer from outside; there it returns `false` at once and the caller relies on the
/// single writer alone.
///
/// # Panics
/// When the waiters do not appear in time, or the view cannot be read.
pub async fn await_lock_waiters(url: &str, count: i64, within: std::time::Duration) -> bool {
    if !url.starts_with("postgres") {
        return false;
    }
    // A connection of its own: the waiters may hold every pooled one.
    let conn = admin_connection(url).await;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ))
            .await
            .unwrap_or_else(|e| panic!("cannot read pg_stat_activity: {e}"))
            .unwrap_or_else(|| panic!("pg_stat_activity answered no row"));
        let waiting = row
            .try_get_by_index::<i64>(0)
            .unwrap_or_else(|e| panic!("cannot read the waiter count: {e}"));
        if waiting >= count {
            return true;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{waiting} of {count} sessions wait for a lock after {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A write unit of work held open on a connection of its own, with the locks it took, until
/// dropped: for tests of what a request does while another holds a lock.
#[derive(Debug)]
pub struct HeldLock {
    _tx: clinicflow_ports::Tx,
    _store: Store,
}

/// Connects to `url` apart from any other store, begins a write unit of work (on SQLite
/// that alone holds the database's write lock), runs each statement of `sql` in it (such as
/// `SELECT … FOR UPDATE` or `SELECT pg_advisory_xact_lock(…)` on PostgreSQL) and keeps it
/// open. Its own connection has no bounds, so it holds as long as the test needs.
///
/// # Panics
/// When it cannot connect or a statement fails: the test cannot go on without the lock.
pub async fn hold_lock(url: &str, sql: &[&str]) -> HeldLock {
    use clinicflow_ports::{Database, TxMode};
    let pool = PoolOptions {
        max_connections: 1,
        min_connections: 0,
        bounds: crate::DatabaseBounds {
            statement_timeout: std::time::Duration::ZERO,
            lock_timeout: std::time::Duration::ZERO,
            idle_in_transaction_timeout: std::time::Duration::ZERO,
            ..crate::DatabaseBounds::default()
        },
        ..PoolOptions::default()
    };
    let store = Store::connect(url, &pool)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to hold a lock: {e:?}"));
    let mut tx = store
        .begin(TxMode::Write)
        .await
        .unwrap_or_else(|e| panic!("cannot begin to hold a lock: {e:?}"));
    for statement in sql {
        crate::transaction::db(&mut tx)
            .execute_unprepared(statement)
            .await
            .unwrap_or_else(|e| panic!("cannot take the lock with {statement}: {e}"));
    }
    HeldLock {
        _tx: tx,
        _store: store,
    }
}

/// The admin URL, `None` to skip, or a panic when services are required.
fn postgres_admin_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var(REQUIRE_SERVICES_VAR).as_deref() == Ok("1") => panic!(
            "{REQUIRE_SERVICES_VAR}=1 but {PG_URL_VAR} is not set: PostgreSQL tests need an admin URL such as postgres://postgres@127.0.0.1:5432/postgres"
        ),
        _ => {
            record_skip(&format!("no PostgreSQL ({PG_URL_VAR} is not set)"));
            None
        }
    }
}

async fn admin_connection(admin_url: &str) -> sea_orm::DatabaseConnection {
    let mut options = ConnectOptions::new(admin_url);
    options
        .max_connections(1)
        .min_connections(0)
        .sqlx_logging(false);
    sea_orm::Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server at {PG_URL_VAR}: {e}"))
}

/// `url` with its database name replaced by `name`, keeping credentials and query.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The plan the database chooses for the statement of a keyset page of patients after
/// `after` ([`clinicflow_ports::PatientRepo::list_after`]) exactly as the repository issues it,
/// parameters included: one line per plan node (PostgreSQL `EXPLAIN`, SQLite `EXPLAIN QUERY
/// PLAN`'s detail column indented two spaces per level of nesting), for tests that prove
/// which indexes a query uses.
///
/// # Panics
/// When the plan cannot be read.
pub async fn patient_keyset_page_plan(
    store: &Store,
    clinic: clinicflow_domain::ClinicId,
    filter: &clinicflow_ports::PatientFilter,
    after: Option<&clinicflow_domain::page::PatientKey>,
    limit: u32,
) -> Vec<String> {
    use sea_orm::QueryTrait;

    let backend = store.conn.get_database_backend();
    let statement = crate::patient::keyset_page(clinic, filter, after, limit).build(backend);
    let (explain, column) = match store.backend() {
        crate::Backend::Postgres => ("EXPLAIN", "QUERY PLAN"),
        crate::Backend::Sqlite => ("EXPLAIN QUERY PLAN", "detail"),
    };
    let explained = sea_orm::Statement {
        sql: format!("{explain} {}", statement.sql),
        ..statement
    };
    let rows = store
        .conn
        .query_all_raw(explained)
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN of the patient page: {e}"));
    // SQLite's lines name their parent; indented like PostgreSQL's, the nesting shows.
    let mut depths = std::collections::HashMap::new();
    rows.iter()
        .map(|row| {
            let line = row
                .try_get::<String>("", column)
                .unwrap_or_else(|e| panic!("a plan line: {e}"));
            if store.backend() == crate::Backend::Postgres {
                return line;
            }
            let id: i64 = row.try_get("", "id").expect("a plan node's id");
            let parent: i64 = row.try_get("", "parent").expect("a plan node's parent");
            let depth = depths.get(&parent).map_or(0, |d| d + 1);
            depths.insert(id, depth);
            format!("{}{line}", "  ".repeat(depth))
        })
        .collect()
}

/// One node of a plan PostgreSQL ran (`EXPLAIN (ANALYZE, FORMAT JSON)`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunNode {
    /// The node's type (`Index Only Scan`, `Sort`, `Limit` …).
    pub kind: String,
    /// The index the node reads, if it reads one.
    pub index: Option<String>,
    /// The rows the node returned, over all its loops.
    pub rows: f64,
    /// The rows its inputs returned to it, over all their loops: what a `Sort` sorted.
    pub input: f64,
}

/// Runs the statement of a keyset page of patients after `after`, exactly as the repository
/// issues it, under `EXPLAIN (ANALYZE, FORMAT JSON)` on PostgreSQL, and returns every node of the
/// plan it ran, depth first: for tests that prove how many index entries a query reads.
///
/// # Panics
/// On SQLite, and when the plan cannot be read.
pub async fn patient_keyset_page_run(
    store: &Store,
    clinic: clinicflow_domain::ClinicId,
    filter: &clinicflow_ports::PatientFilter,
    after: Option<&clinicflow_domain::page::PatientKey>,
    limit: u32,
) -> Vec<RunNode> {
    use sea_orm::QueryTrait;

    fn rows(plan: &sea_orm::JsonValue) -> f64 {
        let field = |name: &str| plan[name].as_f64().unwrap_or_default();
        field("Actual Rows") * field("Actual Loops")
    }
    fn walk(plan: &sea_orm::JsonValue, into: &mut Vec<RunNode>) {
        let children = plan["Plans"].as_array().cloned().unwrap_or_default();
        into.push(RunNode {
            kind: plan["Node Type"].as_str().unwrap_or_default().to_owned(),
            index: plan["Index Name"].as_str().map(str::to_owned),
            rows: rows(plan),
            input: children.iter().map(rows).sum(),
        });
        for child in &children {
            walk(child, into);
        }
    }

    assert_eq!(
        store.backend(),
        crate::Backend::Postgres,
        "EXPLAIN ANALYZE of PostgreSQL"
    );
    let backend = store.conn.get_database_backend();
    let statement = crate::patient::keyset_page(clinic, filter, after, limit).build(backend);
    let explained = sea_orm::Statement {
        sql: format!("EXPLAIN (ANALYZE, FORMAT JSON) {}", statement.sql),
        ..statement
    };
    let row = store
        .conn
        .query_one_raw(explained)
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN ANALYZE of the patient page: {e}"))
        .expect("a plan");
    let plan: sea_orm::JsonValue = row
        .try_get("", "QUERY PLAN")
        .unwrap_or_else(|e| panic!("the plan: {e}"));
    let mut nodes = Vec::new();
    walk(&plan[0]["Plan"], &mut nodes);
    nodes
}

/// The reads of `appointments` that an index must serve on PostgreSQL, as the repository
/// sends them for these parties and this instant: what each is, the index that must serve it,
/// and its statement. The contract suite EXPLAINs each on a realistic table.
pub fn appointment_index_reads(
    clinic: clinicflow_domain::ClinicId,
    practitioner: clinicflow_domain::PractitionerId,
    patient: clinicflow_domain::PatientId,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<(&'static str, &'static str, sea_orm::Statement)> {
    crate::appointment::indexed_reads(clinic, practitioner, patient, at)
}

/// PostgreSQL's plan for `statement` (`EXPLAIN`, text format, one line per node), planned
/// with its bound values as the repository's own statement would be.
///
/// # Panics
/// When the statement cannot be explained.
pub async fn explain(store: &Store, statement: sea_orm::Statement) -> String {
    let explained = sea_orm::Statement {
        sql: format!("EXPLAIN {}", statement.sql),
        ..statement
    };
    store
        .conn
        .query_all_raw(explained)
        .await
        .expect("explained")
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("a plan line"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// PostgreSQL's generic plan for `statement`: the plan a prepared statement settles on after
/// five runs, made without its bound values (`PREPARE`, then `EXPLAIN EXECUTE` under
/// `plan_cache_mode = force_generic_plan`, the values written as literals). A partial index
/// whose condition the statement binds as a parameter is missing from this plan.
///
/// # Panics
/// When the statement cannot be prepared or explained.
pub async fn explain_generic(store: &Store, statement: sea_orm::Statement) -> String {
    use sea_orm::sea_query::{PostgresQueryBuilder, QueryBuilder};
    use sea_orm::{DbBackend, TransactionTrait};
    let args = statement
        .values
        .as_ref()
        .map(|values| {
            values
                .0
                .iter()
                .map(|v| PostgresQueryBuilder.value_to_string(v))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let txn = store.conn.begin().await.expect("a transaction");
    for sql in [
        "SET LOCAL plan_cache_mode = force_generic_plan".to_owned(),
        format!("PREPARE generic_plan AS {}", statement.sql),
    ] {
        txn.execute_unprepared(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let explain = if args.is_empty() {
        "EXPLAIN EXECUTE generic_plan".to_owned()
    } else {
        format!("EXPLAIN EXECUTE generic_plan({args})")
    };
    let plan = txn
        .query_all_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            explain,
        ))
        .await
        .expect("explained")
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("a plan line"))
        .collect::<Vec<_>>()
        .join("\n");
    // A prepared statement outlives the transaction; the pooled session must not keep it.
    txn.execute_unprepared("DEALLOCATE generic_plan")
        .await
        .expect("deallocated");
    txn.rollback().await.expect("rolled back");
    plan
}

/// The statement the outbox dispatcher claims due messages with, on PostgreSQL.
pub fn outbox_claim_statement(now: chrono::DateTime<chrono::Utc>) -> sea_orm::Statement {
    crate::outbox::claim_statement(now)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t_1"),
            "postgres://postgres@127.0.0.1:5432/t_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/admin?sslmode=disable", "t_1"),
            "postgres://u:p@h:1/t_1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t_1"), "postgres://h/t_1");
    }
}
