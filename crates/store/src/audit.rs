//! [`AuditRepo`] on the append-only `audit_events` table.
//!
//! The store only ever inserts here; the database's triggers refuse updates and deletes
//! on both backends. Ids are UUIDv7, so ordering by id is ordering by time of creation, and
//! a page is continued with `id < before` (keyset pagination) rather than an offset, which
//! stays correct while new events are appended.
//!
//! The events of reads go through [`AuditWriter`], a group commit: whatever events concurrent
//! requests queued while the previous batch was being written become the next batch, one
//! multi-row `INSERT` in a statement of its own (atomic and durable when it returns; on SQLite
//! a unit of the write group commit, `group.rs`), and each caller is answered only then. An idle server writes one event at once, without waiting for
//! company; a busy one writes hundreds per round trip.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use clinicflow_domain::{
    AuditEvent, AuditEventId, ClinicId, InvalidValue, PatientId, Role, UserId,
};
use clinicflow_ports::{AuditFilter, AuditRepo, RepoError, Tx};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use tokio::sync::{mpsc, oneshot};

use crate::Store;
use crate::entity::{audit_event, instant, not_before};
use crate::error::{batch_error, invalid_row, repo_error};
use crate::group::GroupCommit;
use crate::transaction::{Deferred, Write, db_after_writes, defer};

/// The table, for the writes a unit of work holds back (`transaction::defer`).
const TABLE: &str = "audit_events";

fn to_domain(row: audit_event::Model) -> Result<AuditEvent, RepoError> {
    let invalid = |e: InvalidValue| invalid_row("audit_events", row.id, e);
    Ok(AuditEvent {
        id: AuditEventId::from_uuid(row.id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        actor_id: UserId::from_uuid(row.actor_id),
        actor_role: Role::parse_recorded(&row.actor_role).map_err(invalid)?,
        action: row.action.parse().map_err(invalid)?,
        resource_type: row.resource_type.parse().map_err(invalid)?,
        resource_id: row.resource_id,
        patient_id: row.patient_id.map(PatientId::from_uuid),
        at: row.at,
        request_id: row.request_id,
        outcome: row.outcome.parse().map_err(invalid)?,
    })
}

fn to_row(event: &AuditEvent) -> audit_event::ActiveModel {
    audit_event::ActiveModel {
        id: Set(event.id.as_uuid()),
        clinic_id: Set(event.clinic_id.as_uuid()),
        actor_id: Set(event.actor_id.as_uuid()),
        actor_role: Set(event.actor_role.as_str().to_owned()),
        action: Set(event.action.as_str().to_owned()),
        resource_type: Set(event.resource_type.as_str().to_owned()),
        resource_id: Set(event.resource_id),
        patient_id: Set(event.patient_id.map(|p| p.as_uuid())),
        at: Set(instant(event.at)),
        request_id: Set(event.request_id),
        outcome: Set(event.outcome.as_str().to_owned()),
    }
}

/// The most events one batch writes: 11 bound values each stays far below SQLite's and
/// PostgreSQL's limits on the parameters of one statement.
const BATCH_MAX: usize = 500;

/// An event waiting for its batch, and whoever waits for the batch's outcome.
type Pending = (AuditEvent, oneshot::Sender<Result<(), Unwritten>>);

/// Why a batch was not written, told to each of its callers.
#[derive(Debug, Clone)]
enum Unwritten {
    /// The insert or its commit failed.
    Db(DbErr),
    /// SQLite's writer did not come free in time.
    Timeout(String),
    /// SQLite's write batch failed.
    Unavailable(String),
}

impl From<RepoError> for Unwritten {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Timeout(e) => Unwritten::Timeout(e.to_string()),
            other => Unwritten::Unavailable(other.to_string()),
        }
    }
}

/// The group commit of audit events of reads (see the module's documentation).
///
/// Its writer task is started by the first event and started again if it is gone (for
/// example when the runtime it ran on stopped, as between tests).
#[derive(Debug)]
pub(crate) struct AuditWriter {
    conn: DatabaseConnection,
    /// On SQLite, batches are written as units of the write group commit, as every write is.
    group: Option<Arc<GroupCommit>>,
    queue: Mutex<Option<mpsc::UnboundedSender<Pending>>>,
}

impl AuditWriter {
    /// A writer over `conn`'s pool (through `group` on SQLite); no task runs until the first event.
    pub(crate) fn new(conn: DatabaseConnection, group: Option<Arc<GroupCommit>>) -> Self {
        Self {
            conn,
            group,
            queue: Mutex::new(None),
        }
    }

    /// Queues `event` and waits until the batch that holds it is durable.
    async fn record(&self, event: &AuditEvent) -> Result<(), RepoError> {
        let started = std::time::Instant::now();
        let (done, outcome) = oneshot::channel();
        let mut pending = (event.clone(), done);
        {
            let mut queue = self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // A writer that is gone is started again, once: a runtime that is shutting down
            // drops a new task at once, and this caller then fails instead of spinning.
            for _ in 0..2 {
                let sender = queue.get_or_insert_with(|| self.start());
                match sender.send(pending) {
                    Ok(()) => break,
                    Err(mpsc::error::SendError(back)) => {
                        pending = back;
                        *queue = None;
                    }
                }
            }
        }
        let outcome = outcome.await;
        // The wait for the batch is the request's time in the database.
        clinicflow_ports::timing::add_db(started.elapsed());
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Unwritten::Db(e))) => Err(batch_error(e)),
            Ok(Err(Unwritten::Timeout(e))) => Err(RepoError::Timeout(e.into())),
            Ok(Err(Unwritten::Unavailable(e))) => Err(RepoError::Unavailable(e.into())),
            Err(_) => Err(RepoError::Unavailable(
                "the audit writer stopped before writing the event".into(),
            )),
        }
    }

    fn start(&self) -> mpsc::UnboundedSender<Pending> {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(
            self.conn.clone(),
            self.group.clone(),
            waiting,
        ));
        queue
    }
}

/// Writes every queued event, batch after batch, until no sender is left.
async fn write_batches(
    conn: DatabaseConnection,
    group: Option<Arc<GroupCommit>>,
    mut waiting: mpsc::UnboundedReceiver<Pending>,
) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while waiting.recv_many(&mut batch, BATCH_MAX).await > 0 {
        let started = std::time::Instant::now();
        let insert = || audit_event::Entity::insert_many(batch.iter().map(|(e, _)| to_row(e)));
        let written = match &group {
            None => insert()
                .exec_without_returning(&conn)
                .await
                .map(drop)
                .map_err(Unwritten::Db),
            Some(group) => match group.begin().await {
                Err(e) => Err(e.into()),
                Ok(unit) => match insert().exec_without_returning(unit.transaction()).await {
                    // Dropping the unit rolls its savepoint back.
                    Err(e) => Err(Unwritten::Db(e)),
                    Ok(_) => unit.commit().await.map_err(Unwritten::from),
                },
            },
        };
        log::debug!(
            "audit batch of {} events written in {:.2} ms (ok: {})",
            batch.len(),
            started.elapsed().as_secs_f64() * 1e3,
            written.is_ok()
        );
        for (_, done) in batch.drain(..) {
            // A caller that gave up (its request was cancelled) no longer listens.
            let _ = done.send(written.clone());
        }
    }
}

#[async_trait]
impl AuditRepo for Store {
    async fn append(&self, tx: &mut Tx, event: &AuditEvent) -> Result<(), RepoError> {
        let insert = audit_event::Entity::insert(to_row(event)).into_query();
        defer(
            tx,
            Deferred {
                table: TABLE,
                write: Write::Insert(insert),
            },
        )
        .await
    }

    async fn record(&self, event: &AuditEvent) -> Result<(), RepoError> {
        self.audit_writer.record(event).await
    }

    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &AuditFilter,
        before: Option<AuditEventId>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, RepoError> {
        let mut query =
            audit_event::Entity::find().filter(audit_event::Column::ClinicId.eq(clinic.as_uuid()));
        if let Some(patient) = filter.patient_id {
            query = query.filter(audit_event::Column::PatientId.eq(patient.as_uuid()));
        }
        if let Some(actor) = filter.actor_id {
            query = query.filter(audit_event::Column::ActorId.eq(actor.as_uuid()));
        }
        if let Some(from) = filter.from {
            query = query.filter(audit_event::Column::At.gte(not_before(from)));
        }
        if let Some(to) = filter.to {
            query = query.filter(audit_event::Column::At.lt(not_before(to)));
        }
        if let Some(before) = before {
            query = query.filter(audit_event::Column::Id.lt(before.as_uuid()));
        }
        query
            .order_by_desc(audit_event::Column::Id)
            .limit(u64::from(limit))
            .all(db_after_writes(tx, TABLE).await?)
            .await
            .map_err(repo_error)?
            .into_iter()
            .map(to_domain)
            .collect()
    }
}
