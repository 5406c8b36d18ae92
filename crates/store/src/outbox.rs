//! [`OutboxRepo`] on the `outbox_messages` table.
//!
//! Claiming due messages works like calling the next queue entry (`queue.rs`): on PostgreSQL
//! the select takes its rows with `FOR UPDATE SKIP LOCKED`, so concurrent dispatchers each
//! get different messages instead of blocking; on SQLite the dispatcher's `BEGIN IMMEDIATE`
//! write transaction keeps every other writer out, so the plain select is enough. The scan
//! is served by the partial index `outbox_messages_due_idx` on pending rows.
//!
//! `last_error` is cut to [`LAST_ERROR_MAX_CHARS`] characters on write: a receiver's error
//! body is unbounded, and only its beginning helps anyone.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clinicflow_domain::{
    AppointmentId, ClinicId, DeliveryStatus, EventKind, InvalidValue, OutboxMessage,
    OutboxMessageId, Page, PageRequest,
};
use clinicflow_ports::{OutboxRepo, RepoError, Tx};
use sea_orm::sea_query::{Expr, ExprTrait, Query, UpdateStatement};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Select,
};

use crate::entity::{instant, outbox_message};
use crate::error::{invalid_row, repo_error, to_i32};
use crate::page::page_rows;
use crate::query::{skip_locked, update_one};
use crate::transaction::{Deferred, Write, db_after_writes, defer};
use crate::{Backend, Store};

/// The table, for the writes a unit of work holds back (`transaction::defer`).
const TABLE: &str = "outbox_messages";

/// The most characters of `last_error` that are stored.
pub(crate) const LAST_ERROR_MAX_CHARS: usize = 1000;

fn to_domain(row: outbox_message::Model) -> Result<OutboxMessage, RepoError> {
    let invalid = |reason: String| invalid_row("outbox_messages", row.id, reason);
    let parse_failed = |e: InvalidValue| invalid(e.to_string());
    let kind: EventKind = row.kind.parse().map_err(parse_failed)?;
    let status: DeliveryStatus = row.status.parse().map_err(parse_failed)?;
    let attempts = u32::try_from(row.attempts)
        .map_err(|_| invalid(format!("attempts {} is negative", row.attempts)))?;
    Ok(OutboxMessage {
        id: OutboxMessageId::from_uuid(row.id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        kind,
        appointment_id: row.appointment_id.map(AppointmentId::from_uuid),
        payload: row.payload,
        status,
        attempts,
        next_attempt_at: row.next_attempt_at,
        last_error: row.last_error,
        delivered_at: row.delivered_at,
        created_at: row.created_at,
    })
}

/// `error` as stored: at most [`LAST_ERROR_MAX_CHARS`] characters.
fn stored_error(error: &str) -> String {
    error.chars().take(LAST_ERROR_MAX_CHARS).collect()
}

/// The delivery state of `m`: every column that `record` writes.
fn delivery_state(m: &OutboxMessage) -> Result<outbox_message::ActiveModel, RepoError> {
    Ok(outbox_message::ActiveModel {
        id: NotSet,
        clinic_id: NotSet,
        kind: NotSet,
        appointment_id: NotSet,
        payload: NotSet,
        status: Set(m.status.as_str().to_owned()),
        attempts: Set(to_i32("attempts", m.attempts)?),
        next_attempt_at: Set(instant(m.next_attempt_at)),
        last_error: Set(m.last_error.as_deref().map(stored_error)),
        delivered_at: Set(m.delivered_at.map(instant)),
        created_at: NotSet,
    })
}

/// The clinic's messages.
fn of_clinic(clinic: ClinicId) -> Select<outbox_message::Entity> {
    outbox_message::Entity::find().filter(outbox_message::Column::ClinicId.eq(clinic.as_uuid()))
}

/// The pending status, written into the SQL as the partial index `outbox_messages_due_idx`
/// states it: bound as a parameter, PostgreSQL's generic plan (which a prepared statement
/// takes after five runs) cannot know that the index applies, and the dispatcher's claim
/// became a scan of every message ever sent, growing with the history.
const PENDING: &str = "\"outbox_messages\".\"status\" = 'pending'";

fn pending() -> Select<outbox_message::Entity> {
    outbox_message::Entity::find().filter(Expr::cust(PENDING))
}

/// Up to `limit` pending messages due at `now`, earliest due first, locked on PostgreSQL so
/// that concurrent dispatchers skip them.
fn due(now: DateTime<Utc>, limit: u32, backend: Backend) -> Select<outbox_message::Entity> {
    let query = pending()
        // Stored instants are whole microseconds, so `instant(now)` is the exact `<=` bound.
        .filter(outbox_message::Column::NextAttemptAt.lte(instant(now)))
        .order_by_asc(outbox_message::Column::NextAttemptAt)
        .order_by_asc(outbox_message::Column::Id)
        .limit(u64::from(limit));
    skip_locked(backend, query)
}

/// The one statement that claims due messages: picks them as [`due`] does (locked on
/// PostgreSQL) and leases them, `RETURNING` the rows as they now are.
fn claim(
    now: DateTime<Utc>,
    limit: u32,
    lease_until: DateTime<Utc>,
    backend: Backend,
) -> UpdateStatement {
    let picked = due(now, limit, backend)
        .select_only()
        .column(outbox_message::Column::Id)
        .into_query();
    Query::update()
        .table(outbox_message::Entity)
        .value(
            outbox_message::Column::Attempts,
            Expr::col(outbox_message::Column::Attempts).add(1),
        )
        .value(outbox_message::Column::NextAttemptAt, instant(lease_until))
        .and_where(Expr::col(outbox_message::Column::Id).in_subquery(picked))
        .returning_all()
        .to_owned()
}

/// [`claim`] as the dispatcher sends it to PostgreSQL, for the contract suite's plan checks.
#[cfg(feature = "testing")]
pub(crate) fn claim_statement(now: DateTime<Utc>) -> sea_orm::Statement {
    sea_orm::DbBackend::Postgres.build(&claim(
        now,
        50,
        now + chrono::Duration::minutes(1),
        Backend::Postgres,
    ))
}

/// Messages whose delivery state one statement of [`OutboxRepo::record_all`] writes: with five
/// parameters a message, well below the parameter limits of both databases.
const RECORD_CHUNK: usize = 500;

/// One `UPDATE` writing the delivery state of each of `messages`: every column is a `CASE` on
/// the id. `messages` is not empty.
fn record_many(
    messages: &[OutboxMessage],
) -> Result<sea_orm::UpdateMany<outbox_message::Entity>, RepoError> {
    use outbox_message::Column;
    let mut columns: [(Column, Vec<(uuid::Uuid, sea_orm::Value)>); 5] = [
        (Column::Status, Vec::new()),
        (Column::Attempts, Vec::new()),
        (Column::NextAttemptAt, Vec::new()),
        (Column::LastError, Vec::new()),
        (Column::DeliveredAt, Vec::new()),
    ];
    for m in messages {
        let id = m.id.as_uuid();
        let [status, attempts, next, error, delivered] = &mut columns;
        status.1.push((id, m.status.as_str().into()));
        attempts
            .1
            .push((id, to_i32("attempts", m.attempts)?.into()));
        next.1.push((id, instant(m.next_attempt_at).into()));
        error
            .1
            .push((id, m.last_error.as_deref().map(stored_error).into()));
        delivered.1.push((id, m.delivered_at.map(instant).into()));
    }
    let mut update = outbox_message::Entity::update_many()
        .filter(Column::Id.is_in(messages.iter().map(|m| m.id.as_uuid())));
    for (col, values) in columns {
        let mut values = values.into_iter();
        let Some((first_id, first)) = values.next() else {
            return Ok(update);
        };
        let case = values.fold(
            Expr::case(Column::Id.eq(first_id), first),
            |case, (id, value)| case.case(Column::Id.eq(id), value),
        );
        update = update.col_expr(col, case.finally(Expr::col(col)).into());
    }
    Ok(update)
}

/// The whole row of a new message.
fn new_row(message: &OutboxMessage) -> Result<outbox_message::ActiveModel, RepoError> {
    let mut row = delivery_state(message)?;
    row.id = Set(message.id.as_uuid());
    row.clinic_id = Set(message.clinic_id.as_uuid());
    row.kind = Set(message.kind.as_str().to_owned());
    row.appointment_id = Set(message.appointment_id.map(|id| id.as_uuid()));
    row.payload = Set(message.payload.clone());
    row.created_at = Set(instant(message.created_at));
    Ok(row)
}

/// Most messages inserted by one statement: 11 parameters each stays far below SQLite's
/// 32,766 and PostgreSQL's 65,535 bound parameters.
const ENQUEUE_CHUNK: usize = 500;

#[async_trait]
impl OutboxRepo for Store {
    async fn enqueue(&self, tx: &mut Tx, message: &OutboxMessage) -> Result<(), RepoError> {
        self.enqueue_many(tx, std::slice::from_ref(message)).await
    }

    async fn enqueue_many(&self, tx: &mut Tx, messages: &[OutboxMessage]) -> Result<(), RepoError> {
        for chunk in messages.chunks(ENQUEUE_CHUNK) {
            let rows = chunk.iter().map(new_row).collect::<Result<Vec<_>, _>>()?;
            let insert = outbox_message::Entity::insert_many(rows).into_query();
            let write = Deferred {
                table: TABLE,
                write: Write::Insert(insert),
            };
            defer(tx, write).await?;
        }
        Ok(())
    }

    async fn claim_due(
        &self,
        tx: &mut Tx,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<OutboxMessage>, RepoError> {
        let txn = db_after_writes(tx, TABLE).await?;
        let statement =
            txn.get_database_backend()
                .build(&claim(now, limit, lease_until, self.backend));
        let mut claimed = outbox_message::Model::find_by_statement(statement)
            .all(txn)
            .await
            .map_err(repo_error)?
            .into_iter()
            .map(to_domain)
            .collect::<Result<Vec<_>, _>>()?;
        // `RETURNING` promises no order.
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    async fn record_all(&self, tx: &mut Tx, messages: &[OutboxMessage]) -> Result<(), RepoError> {
        for chunk in messages.chunks(RECORD_CHUNK) {
            let expected = chunk
                .iter()
                .map(|m| m.id)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let updated = record_many(chunk)?
                .exec(db_after_writes(tx, TABLE).await?)
                .await
                .map_err(repo_error)?;
            if updated.rows_affected != expected as u64 {
                return Err(RepoError::NotFound);
            }
        }
        Ok(())
    }

    async fn record(&self, tx: &mut Tx, message: &OutboxMessage) -> Result<(), RepoError> {
        update_one(
            tx,
            outbox_message::Entity::update_many()
                .set(delivery_state(message)?)
                .filter(outbox_message::Column::Id.eq(message.id.as_uuid()))
                .filter(outbox_message::Column::ClinicId.eq(message.clinic_id.as_uuid())),
        )
        .await
    }

    async fn cancel_pending(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        appointment: AppointmentId,
        kind: EventKind,
    ) -> Result<(), RepoError> {
        let update = outbox_message::Entity::update_many()
            .col_expr(
                outbox_message::Column::Status,
                Expr::value(DeliveryStatus::Cancelled.as_str()),
            )
            .filter(outbox_message::Column::ClinicId.eq(clinic.as_uuid()))
            .filter(outbox_message::Column::AppointmentId.eq(appointment.as_uuid()))
            .filter(outbox_message::Column::Kind.eq(kind.as_str()))
            .filter(outbox_message::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .into_query();
        let write = Deferred {
            table: TABLE,
            write: Write::Update(update),
        };
        defer(tx, write).await
    }

    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: OutboxMessageId,
    ) -> Result<Option<OutboxMessage>, RepoError> {
        of_clinic(clinic)
            .filter(outbox_message::Column::Id.eq(id.as_uuid()))
            .one(db_after_writes(tx, TABLE).await?)
            .await
            .map_err(repo_error)?
            .map(to_domain)
            .transpose()
    }

    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        status: Option<DeliveryStatus>,
        page: PageRequest,
    ) -> Result<Page<OutboxMessage>, RepoError> {
        let mut query = of_clinic(clinic);
        if let Some(status) = status {
            query = query.filter(outbox_message::Column::Status.eq(status.as_str()));
        }
        let order = |q: Select<outbox_message::Entity>| {
            q.order_by_desc(outbox_message::Column::CreatedAt)
                .order_by_desc(outbox_message::Column::Id)
        };
        let (rows, total) =
            page_rows(db_after_writes(tx, TABLE).await?, query, order, page).await?;
        Ok(Page {
            items: rows.into_iter().map(to_domain).collect::<Result<_, _>>()?,
            total,
            request: page,
        })
    }

    async fn pending_count(&self, tx: &mut Tx) -> Result<u64, RepoError> {
        pending()
            .count(db_after_writes(tx, TABLE).await?)
            .await
            .map_err(repo_error)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use sea_orm::{DbBackend, QueryTrait};

    use super::{LAST_ERROR_MAX_CHARS, due, stored_error};
    use crate::Backend;

    fn sql(backend: Backend, db: DbBackend) -> String {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
            .single()
            .expect("valid");
        due(now, 10, backend).build(db).to_string()
    }

    #[test]
    fn due_messages_are_claimed_with_skip_locked_on_postgres_only() {
        let postgres = sql(Backend::Postgres, DbBackend::Postgres);
        assert!(
            postgres.ends_with(
                r#"ORDER BY "outbox_messages"."next_attempt_at" ASC, "outbox_messages"."id" ASC LIMIT 10 FOR UPDATE SKIP LOCKED"#
            ),
            "{postgres}"
        );
        let sqlite = sql(Backend::Sqlite, DbBackend::Sqlite);
        assert!(sqlite.ends_with(r#""id" ASC LIMIT 10"#), "{sqlite}");
        assert!(
            sqlite.contains(r#""outbox_messages"."status" = 'pending'"#),
            "{sqlite}"
        );
    }

    #[test]
    fn a_long_error_is_cut_at_a_character_boundary() {
        let long = "é".repeat(LAST_ERROR_MAX_CHARS + 5);
        let stored = stored_error(&long);
        assert_eq!(stored.chars().count(), LAST_ERROR_MAX_CHARS);
        assert_eq!(stored_error("short"), "short");
    }
}
