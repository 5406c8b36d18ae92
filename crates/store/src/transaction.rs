//! The store's side of the ports' unit of work.

use std::any::Any;
use std::time::Instant;

use async_trait::async_trait;
use clinicflow_ports::{RepoError, Transaction, Tx};
use sea_orm::sea_query::{
    Alias, CommonTableExpression, Expr, InsertStatement, Query, SubQueryStatement, UpdateStatement,
    WithClause,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement,
};

use crate::error::repo_error;
use crate::group::Unit;

/// An open SeaORM transaction behind the ports' opaque [`Tx`].
///
/// Dropping it without a commit rolls back: SeaORM sends the rollback at once on SQLite
/// (so the write lock of a `BEGIN IMMEDIATE` is released) and before the connection's
/// next use on PostgreSQL.
pub(crate) struct StoreTx {
    conn: Conn,
    deferred: Vec<Deferred>,
    _timer: Timer,
}

impl StoreTx {
    /// Wraps a unit of work begun at `started` (before waiting for a connection).
    pub(crate) fn new(conn: Conn, started: Instant) -> Self {
        Self {
            conn,
            deferred: Vec::new(),
            _timer: Timer(started),
        }
    }

    /// Whether writes may wait for the commit: only in a PostgreSQL transaction, where each
    /// statement is a round trip; SQLite runs in the process, and a pooled read has no commit.
    fn defers(&self) -> bool {
        matches!(&self.conn, Conn::Transaction(t) if t.get_database_backend() == DbBackend::Postgres)
    }

    /// Sends every held-back write in one statement (a data-modifying CTE per write).
    async fn flush(&mut self) -> Result<(), RepoError> {
        let writes = std::mem::take(&mut self.deferred);
        let statement = match writes.len() {
            0 => return Ok(()),
            1 => {
                let backend = self.conn.get_database_backend();
                writes[0].write.build(backend)
            }
            _ => {
                let done = Query::select().expr(Expr::val(1)).to_owned();
                self.conn
                    .get_database_backend()
                    .build(&ctes(writes).query(done))
            }
        };
        self.conn.execute_raw(statement).await.map_err(repo_error)?;
        Ok(())
    }
}

/// A write a PostgreSQL unit of work holds back until its commit or its next statement on the
/// same table, whichever comes first.
///
/// Only blind writes qualify, ones whose result nobody in the unit of work reads: an audit
/// event or an outbox message appended, pending reminders withdrawn. The writes of one flush
/// run as CTEs of one statement, on one snapshot, so none of them sees another's rows; `defer`
/// keeps that harmless by flushing first where it would not be.
pub(crate) struct Deferred {
    /// The table written, so that a later statement on it sees the write first.
    pub(crate) table: &'static str,
    pub(crate) write: Write,
}

/// The statement of a [`Deferred`] write.
pub(crate) enum Write {
    /// New rows, which no earlier write of the flush could have touched.
    Insert(InsertStatement),
    /// Changes to existing rows: in a CTE it would not see the rows inserted before it in the
    /// same flush, so it is held back only behind no other write to its table.
    Update(UpdateStatement),
}

impl Write {
    fn build(&self, backend: DbBackend) -> Statement {
        match self {
            Write::Insert(insert) => backend.build(insert),
            Write::Update(update) => backend.build(update),
        }
    }

    fn into_subquery(self) -> SubQueryStatement {
        match self {
            Write::Insert(insert) => insert.into(),
            Write::Update(update) => update.into(),
        }
    }
}

/// Runs `write` in the unit of work now, or holds it back to be sent with the others at the
/// commit when the unit of work is a PostgreSQL transaction. An update is held back only
/// when no earlier write to its table is, so that it changes the rows it would have changed
/// in order.
pub(crate) async fn defer(tx: &mut Tx, write: Deferred) -> Result<(), RepoError> {
    let store_tx = store_tx(tx);
    if !store_tx.defers() {
        let statement = write.write.build(store_tx.conn.get_database_backend());
        store_tx
            .conn
            .execute_raw(statement)
            .await
            .map_err(repo_error)?;
        return Ok(());
    }
    let updates = matches!(write.write, Write::Update(_));
    if updates && store_tx.deferred.iter().any(|d| d.table == write.table) {
        store_tx.flush().await?;
    }
    store_tx.deferred.push(write);
    Ok(())
}

/// A write statement that can carry held-back writes as CTEs in front of it.
pub(crate) trait Carrier {
    /// Puts `with` in front of the statement.
    fn carry(&mut self, with: WithClause);
}

impl Carrier for InsertStatement {
    fn carry(&mut self, with: WithClause) {
        self.with_cte(with);
    }
}

impl Carrier for UpdateStatement {
    fn carry(&mut self, with: WithClause) {
        self.with_cte(with);
    }
}

/// Puts the writes `tx` holds back in front of `statement`, the next write the unit of work
/// sends, so that they travel in its round trip instead of one of their own at the commit.
///
/// They run whatever `statement` does, even when it changes no row: its caller drops `tx` on
/// any failure, and must, for they are no longer held back to be discarded.
pub(crate) fn carry(tx: &mut Tx, statement: &mut impl Carrier) {
    let store_tx = store_tx(tx);
    if !store_tx.deferred.is_empty() {
        statement.carry(ctes(std::mem::take(&mut store_tx.deferred)));
    }
}

/// The writes as data-modifying CTEs of one statement.
fn ctes(writes: Vec<Deferred>) -> WithClause {
    let mut with = WithClause::new();
    for (n, write) in writes.into_iter().enumerate() {
        with.cte(
            CommonTableExpression::new()
                .query(write.write.into_subquery())
                .table_name(Alias::new(format!("w{n}")))
                .to_owned(),
        );
    }
    with
}

/// Where the statements of a unit of work this store began run, after the writes held back
/// for `table` were sent, so that what runs next sees them.
pub(crate) async fn db_after_writes<'a>(
    tx: &'a mut Tx,
    table: &str,
) -> Result<&'a Conn, RepoError> {
    let store_tx = store_tx(tx);
    if store_tx.deferred.iter().any(|d| d.table == table) {
        store_tx.flush().await?;
    }
    Ok(&store_tx.conn)
}

/// Where a unit of work's statements run.
///
/// A read-only unit of work on PostgreSQL runs each statement on a pooled connection, with no
/// `BEGIN` and `COMMIT` around it: under READ COMMITTED each statement sees its own snapshot
/// inside a transaction as well, so the two round trips would buy nothing. Every other unit
/// of work is a transaction (on SQLite a deferred one keeps a read's statements on one snapshot,
/// and a write is a savepoint of the group commit's batch, see `group.rs`).
#[derive(Debug)]
pub(crate) enum Conn {
    /// An open transaction.
    Transaction(DatabaseTransaction),
    /// The pool, one statement at a time (read-only units of work on PostgreSQL).
    Pool(DatabaseConnection),
    /// A write unit of work on SQLite, inside the group commit's shared transaction.
    Batch(Unit),
}

#[async_trait]
impl ConnectionTrait for Conn {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Conn::Transaction(t) => t.get_database_backend(),
            Conn::Pool(p) => p.get_database_backend(),
            Conn::Batch(u) => u.transaction().get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Conn::Transaction(t) => t.execute_raw(stmt).await,
            Conn::Pool(p) => p.execute_raw(stmt).await,
            Conn::Batch(u) => u.transaction().execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Conn::Transaction(t) => t.execute_unprepared(sql).await,
            Conn::Pool(p) => p.execute_unprepared(sql).await,
            Conn::Batch(u) => u.transaction().execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Conn::Transaction(t) => t.query_one_raw(stmt).await,
            Conn::Pool(p) => p.query_one_raw(stmt).await,
            Conn::Batch(u) => u.transaction().query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Conn::Transaction(t) => t.query_all_raw(stmt).await,
            Conn::Pool(p) => p.query_all_raw(stmt).await,
            Conn::Batch(u) => u.transaction().query_all_raw(stmt).await,
        }
    }

    fn support_returning(&self) -> bool {
        match self {
            Conn::Transaction(t) => t.support_returning(),
            Conn::Pool(p) => p.support_returning(),
            Conn::Batch(u) => u.transaction().support_returning(),
        }
    }
}

/// Adds the transaction's lifetime to the request's database time when it ends, committed or not.
struct Timer(Instant);

impl Drop for Timer {
    fn drop(&mut self) {
        clinicflow_ports::timing::add_db(self.0.elapsed());
    }
}

#[async_trait]
impl Transaction for StoreTx {
    async fn commit(mut self: Box<Self>) -> Result<(), RepoError> {
        self.flush().await?;
        match self.conn {
            Conn::Transaction(t) => t.commit().await.map_err(repo_error),
            Conn::Pool(_) => Ok(()),
            Conn::Batch(u) => u.commit().await,
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Where the statements of a unit of work this store began run.
///
/// # Panics
/// When `tx` was begun by another adapter: mixing adapters in one unit of work is a wiring bug.
pub(crate) fn db(tx: &mut Tx) -> &Conn {
    &store_tx(tx).conn
}

fn store_tx(tx: &mut Tx) -> &mut StoreTx {
    tx.downcast_mut::<StoreTx>()
        .expect("the unit of work was begun by clinicflow-store, the adapter of every repository")
}
