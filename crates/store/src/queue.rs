//! [`QueueRepo`] on the `queue_entries` table.
//!
//! Every list comes in serve order: `deadline, category_rank, arrived_at, id`, the order of
//! the `queue_entries_serve_order_idx` index behind `(clinic_id, status)`. A deadline is
//! fixed when the entry joins, so the order needs no computation at read time.
//!
//! Calling the next patient is `lock_next_waiting` then `update` in one write transaction.
//! On PostgreSQL the select takes the row with `FOR UPDATE SKIP LOCKED`: a concurrent caller
//! skips it and gets the next waiting one instead of blocking, and one that reads it after
//! the first committed sees it no longer waiting. On SQLite the write transaction is
//! `BEGIN IMMEDIATE`, so no other writer runs in between and the plain select is enough.
//! A caller that takes an entry and then gives up should end its transaction at once: a
//! PostgreSQL transaction that is dropped rather than committed is rolled back when its
//! connection goes back to the pool, a moment later, and holds the row's lock until then.

use async_trait::async_trait;
use clinicflow_domain::{
    AppointmentId, ClinicId, DeadlineRule, Interval, PatientId, PractitionerId, QueueEntry,
    QueueEntryId, QueueStatus,
};
use clinicflow_ports::{QueueRepo, QueueScope, RepoError, Tx};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use crate::entity::{instant, not_before, queue_entry};
use crate::error::{invalid_row, repo_error};
use crate::query::{all_parsed, skip_locked};
use crate::transaction::db;
use crate::version::update_versioned;
use crate::{Backend, Store};

/// Stored names of [`DeadlineRule`].
const WALK_IN: &str = "walk_in";
const APPOINTMENT: &str = "appointment";

fn to_domain(row: queue_entry::Model) -> Result<QueueEntry, RepoError> {
    let invalid = |reason: String| invalid_row("queue_entries", row.id, reason);
    let parse_failed = |e: clinicflow_domain::InvalidValue| invalid(e.to_string());
    let category: clinicflow_domain::TriageCategory = row.category.parse().map_err(parse_failed)?;
    if category.rank() != row.category_rank {
        return Err(invalid(format!(
            "category_rank {} does not match category {category}",
            row.category_rank
        )));
    }
    let rule = match (row.rule.as_str(), row.appointment_starts_at) {
        (WALK_IN, None) => DeadlineRule::WalkIn,
        (APPOINTMENT, Some(starts_at)) => DeadlineRule::Appointment { starts_at },
        (rule, starts_at) => {
            return Err(invalid(format!(
                "rule `{rule}` does not go with appointment_starts_at {starts_at:?}"
            )));
        }
    };
    Ok(QueueEntry {
        id: QueueEntryId::from_uuid(row.id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        patient_id: PatientId::from_uuid(row.patient_id),
        practitioner_id: row.practitioner_id.map(PractitionerId::from_uuid),
        department: row.department,
        appointment_id: row.appointment_id.map(AppointmentId::from_uuid),
        category,
        rule,
        arrived_at: row.arrived_at,
        deadline: row.deadline,
        status: row.status.parse().map_err(parse_failed)?,
        note: row.note,
        called_by: row.called_by.map(PractitionerId::from_uuid),
        called_at: row.called_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        left_at: row.left_at,
        recalled_at: row.recalled_at,
        version: row.version,
        updated_at: row.updated_at,
    })
}

/// Every column that a change may write; identity, tenant and creation time stay as they are.
fn changes(e: &QueueEntry) -> queue_entry::ActiveModel {
    let (rule, appointment_starts_at) = match e.rule {
        DeadlineRule::WalkIn => (WALK_IN, None),
        DeadlineRule::Appointment { starts_at } => (APPOINTMENT, Some(instant(starts_at))),
    };
    queue_entry::ActiveModel {
        id: NotSet,
        clinic_id: NotSet,
        patient_id: Set(e.patient_id.as_uuid()),
        practitioner_id: Set(e.practitioner_id.map(|id| id.as_uuid())),
        department: Set(e.department.clone()),
        appointment_id: Set(e.appointment_id.map(|id| id.as_uuid())),
        category: Set(e.category.as_str().to_owned()),
        category_rank: Set(e.category.rank()),
        rule: Set(rule.to_owned()),
        appointment_starts_at: Set(appointment_starts_at),
        arrived_at: Set(instant(e.arrived_at)),
        deadline: Set(instant(e.deadline)),
        status: Set(e.status.as_str().to_owned()),
        note: Set(e.note.clone()),
        called_by: Set(e.called_by.map(|id| id.as_uuid())),
        called_at: Set(e.called_at.map(instant)),
        started_at: Set(e.started_at.map(instant)),
        finished_at: Set(e.finished_at.map(instant)),
        left_at: Set(e.left_at.map(instant)),
        recalled_at: Set(e.recalled_at.map(instant)),
        version: Set(e.version),
        created_at: NotSet,
        updated_at: Set(instant(e.updated_at)),
    }
}

/// The clinic's entries.
fn of_clinic(clinic: ClinicId) -> Select<queue_entry::Entity> {
    queue_entry::Entity::find().filter(queue_entry::Column::ClinicId.eq(clinic.as_uuid()))
}

/// Entries in an open status (waiting, called, in service).
fn open_statuses() -> impl Iterator<Item = &'static str> {
    QueueStatus::ALL
        .into_iter()
        .filter(QueueStatus::is_open)
        .map(|s| s.as_str())
}

/// The entries `scope` covers, as the port documents it.
fn in_scope(scope: &QueueScope) -> Condition {
    use queue_entry::Column;
    match (scope.practitioner_id, scope.department.as_deref()) {
        (Some(practitioner), department) => {
            // The clinic's general entries, and with a department that department's too.
            let mut unassigned_department = Condition::any().add(Column::Department.is_null());
            if let Some(department) = department {
                unassigned_department =
                    unassigned_department.add(Column::Department.eq(department));
            }
            Condition::any()
                .add(Column::PractitionerId.eq(practitioner.as_uuid()))
                .add(
                    Condition::all()
                        .add(Column::PractitionerId.is_null())
                        .add(unassigned_department),
                )
        }
        (None, Some(department)) => Condition::all().add(Column::Department.eq(department)),
        (None, None) => Condition::all(),
    }
}

/// Serve order: the earliest deadline, then the more urgent category, then the earlier
/// arrival, then the id, which makes it total.
fn in_serve_order(query: Select<queue_entry::Entity>) -> Select<queue_entry::Entity> {
    query
        .order_by_asc(queue_entry::Column::Deadline)
        .order_by_asc(queue_entry::Column::CategoryRank)
        .order_by_asc(queue_entry::Column::ArrivedAt)
        .order_by_asc(queue_entry::Column::Id)
}

/// The first waiting entry in `scope`, locked on PostgreSQL so that concurrent callers skip it.
fn next_waiting(
    clinic: ClinicId,
    scope: &QueueScope,
    backend: Backend,
) -> Select<queue_entry::Entity> {
    let query = in_serve_order(
        of_clinic(clinic)
            .filter(queue_entry::Column::Status.eq(QueueStatus::Waiting.as_str()))
            .filter(in_scope(scope)),
    )
    .limit(1);
    skip_locked(backend, query)
}

async fn one(
    tx: &mut Tx,
    query: Select<queue_entry::Entity>,
) -> Result<Option<QueueEntry>, RepoError> {
    query
        .one(db(tx))
        .await
        .map_err(repo_error)?
        .map(to_domain)
        .transpose()
}

#[async_trait]
impl QueueRepo for Store {
    async fn insert(&self, tx: &mut Tx, entry: &QueueEntry) -> Result<(), RepoError> {
        let mut row = changes(entry);
        row.id = Set(entry.id.as_uuid());
        row.clinic_id = Set(entry.clinic_id.as_uuid());
        // The domain keeps no creation time: a new entry's last change is its creation.
        row.created_at = Set(instant(entry.updated_at));
        queue_entry::Entity::insert(row)
            .exec_without_returning(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(())
    }

    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: QueueEntryId,
    ) -> Result<Option<QueueEntry>, RepoError> {
        one(
            tx,
            of_clinic(clinic).filter(queue_entry::Column::Id.eq(id.as_uuid())),
        )
        .await
    }

    async fn update(
        &self,
        tx: &mut Tx,
        entry: &QueueEntry,
        expected_version: i32,
    ) -> Result<(), RepoError> {
        update_versioned::<queue_entry::Entity>(
            tx,
            Condition::all()
                .add(queue_entry::Column::ClinicId.eq(entry.clinic_id.as_uuid()))
                .add(queue_entry::Column::Id.eq(entry.id.as_uuid())),
            queue_entry::Column::Version,
            expected_version,
            changes(entry),
        )
        .await
    }

    async fn open(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        scope: &QueueScope,
    ) -> Result<Vec<QueueEntry>, RepoError> {
        let query = of_clinic(clinic)
            .filter(queue_entry::Column::Status.is_in(open_statuses()))
            .filter(in_scope(scope));
        all_parsed(tx, in_serve_order(query), to_domain).await
    }

    async fn lock_next_waiting(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        scope: &QueueScope,
    ) -> Result<Option<QueueEntry>, RepoError> {
        one(tx, next_waiting(clinic, scope, self.backend)).await
    }

    async fn open_for_patient(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        patient: PatientId,
    ) -> Result<Option<QueueEntry>, RepoError> {
        // `queue_entries_open_patient_key` allows at most one.
        let query = of_clinic(clinic)
            .filter(queue_entry::Column::PatientId.eq(patient.as_uuid()))
            .filter(queue_entry::Column::Status.is_in(open_statuses()));
        one(tx, query).await
    }

    async fn for_appointment(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        appointment: AppointmentId,
    ) -> Result<Option<QueueEntry>, RepoError> {
        // `queue_entries_open_appointment_key` allows at most one.
        let query = of_clinic(clinic)
            .filter(queue_entry::Column::AppointmentId.eq(appointment.as_uuid()))
            .filter(queue_entry::Column::Status.is_in(open_statuses()));
        one(tx, query).await
    }

    async fn arrived_within(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        span: Interval,
        practitioner: Option<PractitionerId>,
    ) -> Result<Vec<QueueEntry>, RepoError> {
        let mut query = of_clinic(clinic)
            .filter(queue_entry::Column::ArrivedAt.gte(not_before(span.start())))
            .filter(queue_entry::Column::ArrivedAt.lt(not_before(span.end())));
        if let Some(practitioner) = practitioner {
            query = query.filter(
                Condition::any()
                    .add(queue_entry::Column::PractitionerId.eq(practitioner.as_uuid()))
                    .add(queue_entry::Column::CalledBy.eq(practitioner.as_uuid())),
            );
        }
        let query = query
            .order_by_asc(queue_entry::Column::ArrivedAt)
            .order_by_asc(queue_entry::Column::Id);
        all_parsed(tx, query, to_domain).await
    }
}

#[cfg(test)]
mod tests {
    use clinicflow_domain::{ClinicId, PractitionerId};
    use clinicflow_ports::QueueScope;
    use sea_orm::{DbBackend, QueryTrait};
    use uuid::Uuid;

    use super::next_waiting;
    use crate::Backend;

    fn sql(backend: Backend, db: DbBackend) -> String {
        let scope = QueueScope {
            practitioner_id: Some(PractitionerId::from_uuid(Uuid::nil())),
            department: Some("Cardiology".into()),
        };
        next_waiting(ClinicId::from_uuid(Uuid::nil()), &scope, backend)
            .build(db)
            .to_string()
    }

    #[test]
    fn the_next_waiting_entry_is_taken_with_skip_locked_on_postgres_only() {
        let postgres = sql(Backend::Postgres, DbBackend::Postgres);
        assert!(
            postgres.ends_with(
                r#"ORDER BY "queue_entries"."deadline" ASC, "queue_entries"."category_rank" ASC, "queue_entries"."arrived_at" ASC, "queue_entries"."id" ASC LIMIT 1 FOR UPDATE SKIP LOCKED"#
            ),
            "{postgres}"
        );
        let sqlite = sql(Backend::Sqlite, DbBackend::Sqlite);
        assert!(sqlite.ends_with(r#""id" ASC LIMIT 1"#), "{sqlite}");
        assert!(
            sqlite.contains(r#"("queue_entries"."practitioner_id" = "#)
                && sqlite.contains(r#""queue_entries"."department" IS NULL OR "queue_entries"."department" = 'Cardiology'"#),
            "{sqlite}"
        );
    }
}
