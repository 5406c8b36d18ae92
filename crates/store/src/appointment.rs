//! [`AppointmentRepo`] on the `appointments` table.
//!
//! On PostgreSQL the exclusion constraints reject an overlapping active appointment and
//! [`crate::error`] turns that into `Overlap`; on SQLite the services check for overlap
//! inside the `BEGIN IMMEDIATE` transaction, so the store simply writes.
//!
//! The no-show sweeper's candidates are locked with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
//! sweepers on several instances share the work instead of taking one appointment twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clinicflow_domain::appointment::longest;
use clinicflow_domain::page::AppointmentKey;
use clinicflow_domain::{
    Appointment, AppointmentId, AppointmentStatus, ClinicId, Interval, Page, PageRequest,
    PatientId, PractitionerId, UserId,
};
use clinicflow_ports::{AppointmentFilter, AppointmentRepo, RepoError, Tx, practitioner_tag};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Statement,
};

use crate::entity::{appointment, instant, not_before};
use crate::error::{invalid_row, repo_error};
use crate::page::{keyset_query, page_rows};
use crate::query::{all_decoded, all_parsed, skip_locked};
use crate::transaction::{carry, db};
use crate::version::update_versioned;
use crate::{Backend, Store};

fn to_domain(row: appointment::Model) -> Result<Appointment, RepoError> {
    let invalid = |reason: String| invalid_row("appointments", row.id, reason);
    let parse_failed = |e: clinicflow_domain::InvalidValue| invalid(e.to_string());
    Ok(Appointment {
        id: AppointmentId::from_uuid(row.id),
        clinic_id: ClinicId::from_uuid(row.clinic_id),
        patient_id: PatientId::from_uuid(row.patient_id),
        practitioner_id: PractitionerId::from_uuid(row.practitioner_id),
        interval: Interval::new(row.starts_at, row.ends_at).map_err(parse_failed)?,
        urgency: row.urgency.parse().map_err(parse_failed)?,
        reason: row.reason,
        status: row.status.parse().map_err(parse_failed)?,
        version: row.version,
        rescheduled_from: row.rescheduled_from.map(AppointmentId::from_uuid),
        rescheduled_to: row.rescheduled_to.map(AppointmentId::from_uuid),
        cancelled_by: row.cancelled_by.map(UserId::from_uuid),
        cancel_reason: row.cancel_reason,
        overbooked: row.overbooked,
        created_at: row.created_at,
        updated_at: row.updated_at,
        deleted_at: row.deleted_at,
    })
}

/// Every column that a change may write; identity, tenant and creation time stay as they are.
fn changes(a: &Appointment) -> appointment::ActiveModel {
    appointment::ActiveModel {
        id: NotSet,
        clinic_id: NotSet,
        patient_id: Set(a.patient_id.as_uuid()),
        practitioner_id: Set(a.practitioner_id.as_uuid()),
        starts_at: Set(instant(a.interval.start())),
        ends_at: Set(instant(a.interval.end())),
        urgency: Set(a.urgency.as_str().to_owned()),
        reason: Set(a.reason.clone()),
        status: Set(a.status.as_str().to_owned()),
        overbooked: Set(a.overbooked),
        version: Set(a.version),
        rescheduled_from: Set(a.rescheduled_from.map(|id| id.as_uuid())),
        rescheduled_to: Set(a.rescheduled_to.map(|id| id.as_uuid())),
        cancelled_by: Set(a.cancelled_by.map(|id| id.as_uuid())),
        cancel_reason: Set(a.cancel_reason.clone()),
        created_at: NotSet,
        updated_at: Set(instant(a.updated_at)),
        deleted_at: Set(a.deleted_at.map(instant)),
    }
}

/// Rows of the clinic's appointments that are not soft-deleted.
pub(crate) fn live_in(clinic: ClinicId) -> Condition {
    Condition::all()
        .add(appointment::Column::ClinicId.eq(clinic.as_uuid()))
        .add(appointment::Column::DeletedAt.is_null())
}

/// The clinic's appointments that are not soft-deleted.
fn live(clinic: ClinicId) -> sea_orm::Select<appointment::Entity> {
    appointment::Entity::find().filter(live_in(clinic))
}

/// The clinic's live appointments that `filter` selects, in no particular order.
fn filtered(clinic: ClinicId, filter: &AppointmentFilter) -> sea_orm::Select<appointment::Entity> {
    let mut query = live(clinic);
    if let Some(practitioner) = filter.practitioner_id {
        query = query.filter(appointment::Column::PractitionerId.eq(practitioner.as_uuid()));
    }
    if let Some(patient) = filter.patient_id {
        query = query.filter(appointment::Column::PatientId.eq(patient.as_uuid()));
    }
    if let Some(status) = filter.status {
        query = query.filter(appointment::Column::Status.eq(status.as_str()));
    }
    if let Some(from) = filter.from {
        query = query.filter(appointment::Column::StartsAt.gte(not_before(from)));
    }
    if let Some(to) = filter.to {
        query = query.filter(appointment::Column::StartsAt.lt(not_before(to)));
    }
    query
}

/// The list order: start, then the id, which makes it total.
fn in_list_order(
    query: sea_orm::Select<appointment::Entity>,
) -> sea_orm::Select<appointment::Entity> {
    query
        .order_by_asc(appointment::Column::StartsAt)
        .order_by_asc(appointment::Column::Id)
}

/// The rows strictly after `key` in [`in_list_order`]: `(starts_at, id) > key` written out.
///
/// Stored starts are whole microseconds, so `instant` is the exact bound for `>`; a key
/// between two microseconds (only a forged cursor has one) has no row at its own start.
fn following(key: &AppointmentKey) -> Condition {
    let start = instant(key.starts_at);
    let later = Condition::any().add(appointment::Column::StartsAt.gt(start));
    if start != key.starts_at {
        return later;
    }
    later.add(
        Condition::all()
            .add(appointment::Column::StartsAt.eq(start))
            .add(appointment::Column::Id.gt(key.id.as_uuid())),
    )
}

/// Live appointments in an active status that overlap `span`, ordered by start.
fn active_overlapping(clinic: ClinicId, span: Interval) -> sea_orm::Select<appointment::Entity> {
    let active = AppointmentStatus::ALL
        .into_iter()
        .filter(AppointmentStatus::is_active)
        .map(|s| s.as_str());
    live(clinic)
        .filter(appointment::Column::Status.is_in(active))
        .filter(overlapping(span))
        .order_by_asc(appointment::Column::StartsAt)
        .order_by_asc(appointment::Column::Id)
}

/// Rows whose `[starts_at, ends_at)` overlaps `span`.
///
/// The lower bound on the start adds nothing logically (an appointment starting more than
/// [`longest`] before the span has ended before it), but it turns the index scan on
/// `(clinic, practitioner or patient, starts_at)` into a short range instead of a walk
/// through all of that practitioner's history.
fn overlapping(span: Interval) -> Condition {
    Condition::all()
        .add(appointment::Column::StartsAt.lt(not_before(span.end())))
        .add(appointment::Column::StartsAt.gt(instant(span.start()) - longest()))
        .add(appointment::Column::EndsAt.gt(instant(span.start())))
}

/// The booking check's one overlap read: the practitioner's active appointments overlapping
/// `practitioner_span` or the patient's overlapping `patient_span`. Each side of the `OR`
/// names its party and its bounded start range, so PostgreSQL serves each with its own index
/// range (`(clinic_id, practitioner_id, starts_at)`, `(clinic_id, patient_id, starts_at)`)
/// and ORs the two bitmaps.
fn active_for_parties(
    clinic: ClinicId,
    practitioner: PractitionerId,
    practitioner_span: Interval,
    patient: PatientId,
    patient_span: Interval,
) -> sea_orm::Select<appointment::Entity> {
    let party = |column: appointment::Column, id: uuid::Uuid, span: Interval| {
        Condition::all()
            .add(appointment::Column::ClinicId.eq(clinic.as_uuid()))
            .add(column.eq(id))
            .add(overlapping(span))
    };
    let active = AppointmentStatus::ALL
        .into_iter()
        .filter(AppointmentStatus::is_active)
        .map(|s| s.as_str());
    live(clinic)
        .filter(appointment::Column::Status.is_in(active))
        .filter(
            Condition::any()
                .add(party(
                    appointment::Column::PractitionerId,
                    practitioner.as_uuid(),
                    practitioner_span,
                ))
                .add(party(
                    appointment::Column::PatientId,
                    patient.as_uuid(),
                    patient_span,
                )),
        )
        .order_by_asc(appointment::Column::StartsAt)
        .order_by_asc(appointment::Column::Id)
}

/// The statuses of an appointment nobody checked in for, written into the SQL as the partial
/// index `appointments_unattended_idx` is (migration 15): a bound parameter in their place
/// would hide from the planner that the index applies.
const UNATTENDED: &str = "\"appointments\".\"status\" IN ('booked', 'confirmed')";

/// Up to `limit` live appointments of the clinic that nobody checked in for although they
/// started before `started_before`, oldest first, locked on PostgreSQL so that concurrent
/// sweepers skip them.
fn overdue_unattended(
    clinic: ClinicId,
    started_before: DateTime<Utc>,
    limit: u32,
    backend: Backend,
) -> sea_orm::Select<appointment::Entity> {
    let query = live(clinic)
        .filter(Expr::cust(UNATTENDED))
        .filter(appointment::Column::StartsAt.lt(not_before(started_before)))
        .order_by_asc(appointment::Column::StartsAt)
        .order_by_asc(appointment::Column::Id)
        .limit(u64::from(limit));
    skip_locked(backend, query)
}

/// The reads of `appointments` that an index must serve on PostgreSQL, each with what it is
/// and that index, built by the functions the repository runs (for the contract suite's
/// EXPLAIN of each index, `testing::appointment_index_reads`).
#[cfg(feature = "testing")]
pub(crate) fn indexed_reads(
    clinic: ClinicId,
    practitioner: PractitionerId,
    patient: PatientId,
    at: DateTime<Utc>,
) -> Vec<(&'static str, &'static str, Statement)> {
    use sea_orm::QueryTrait as _;
    let pg = |query: sea_orm::Select<appointment::Entity>| query.build(DbBackend::Postgres);
    let slot = Interval::starting_at(at, chrono::Duration::minutes(30)).expect("30 minutes");
    let overlaps = pg(active_for_parties(
        clinic,
        practitioner,
        slot,
        patient,
        slot,
    ));
    // A list page as `list_after` reads it: 50 rows and one more to know of a next page.
    let page = |filter: AppointmentFilter| pg(in_list_order(filtered(clinic, &filter)).limit(51));
    vec![
        (
            "a booking's overlaps, the practitioner's side",
            "appointments_clinic_id_practitioner_id_starts_at_idx",
            overlaps.clone(),
        ),
        (
            "a booking's overlaps, the patient's side",
            "appointments_clinic_id_patient_id_starts_at_idx",
            overlaps,
        ),
        (
            "a practitioner's appointments from a day on",
            "appointments_clinic_id_practitioner_id_starts_at_idx",
            page(AppointmentFilter {
                practitioner_id: Some(practitioner),
                from: Some(at),
                ..AppointmentFilter::default()
            }),
        ),
        (
            "a patient's appointments",
            "appointments_clinic_id_patient_id_starts_at_idx",
            page(AppointmentFilter {
                patient_id: Some(patient),
                ..AppointmentFilter::default()
            }),
        ),
        (
            "the clinic's appointments of a day",
            "appointments_clinic_id_starts_at_idx",
            page(AppointmentFilter {
                from: Some(at),
                to: Some(at + chrono::Duration::days(1)),
                ..AppointmentFilter::default()
            }),
        ),
        (
            "the no-show sweeper's overdue appointments",
            "appointments_unattended_idx",
            overdue_unattended(clinic, at, 25, Backend::Postgres).build(DbBackend::Postgres),
        ),
    ]
}

#[async_trait]
impl AppointmentRepo for Store {
    async fn lock_parties(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        patient: PatientId,
    ) -> Result<bool, RepoError> {
        let live_patient = |clinic: &str, id: &str| {
            format!(
                "EXISTS (SELECT 1 FROM patients \
                 WHERE clinic_id = {clinic} AND id = {id} AND deleted_at IS NULL)"
            )
        };
        // SQLite's `BEGIN IMMEDIATE` already admits one writer at a time.
        let statement = if self.backend() == Backend::Postgres {
            // Always the practitioner first, then the patient: one order, so no two bookings
            // wait on each other. Ids are random v7 UUIDs; a shared key only serializes two
            // bookings more than needed, it never lets one through. Both locks and the
            // patient's check in one round trip: the function scan of `unnest` yields the keys
            // in array order and each row's lock is taken as that row is produced, so the
            // patient's lock is asked for only once the practitioner's is held, as with two
            // statements; the CTE calls a volatile function, so it is never inlined, and the
            // count, which nobody reads, runs it to the end.
            let [first, second] = [practitioner.as_uuid(), patient.as_uuid()]
                .map(|id| i64::from_le_bytes(id.as_bytes()[8..].try_into().expect("8 bytes")));
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "WITH locked AS (SELECT pg_advisory_xact_lock(k) \
                       FROM unnest(ARRAY[$1, $2]::bigint[]) AS k) \
                     SELECT (SELECT count(*) FROM locked) AS locks, {} AS live",
                    live_patient("$3", "$4")
                ),
                [
                    first.into(),
                    second.into(),
                    clinic.as_uuid().into(),
                    patient.as_uuid().into(),
                ],
            )
        } else {
            Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("SELECT {} AS live", live_patient("?", "?")),
                [clinic.as_uuid().into(), patient.as_uuid().into()],
            )
        };
        let row = db(tx)
            .query_one_raw(statement)
            .await
            .map_err(repo_error)?
            .ok_or_else(|| RepoError::Other("the party lock returned no row".into()))?;
        row.try_get("", "live").map_err(repo_error)
    }

    async fn insert(&self, tx: &mut Tx, appointment: &Appointment) -> Result<(), RepoError> {
        tx.touch(practitioner_tag(appointment.practitioner_id));
        let mut row = changes(appointment);
        row.id = Set(appointment.id.as_uuid());
        row.clinic_id = Set(appointment.clinic_id.as_uuid());
        row.created_at = Set(instant(appointment.created_at));
        let mut insert = appointment::Entity::insert(row).into_query();
        carry(tx, &mut insert);
        db(tx).execute(&insert).await.map_err(repo_error)?;
        Ok(())
    }

    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        id: AppointmentId,
    ) -> Result<Option<Appointment>, RepoError> {
        live(clinic)
            .filter(appointment::Column::Id.eq(id.as_uuid()))
            .one(db(tx))
            .await
            .map_err(repo_error)?
            .map(to_domain)
            .transpose()
    }

    async fn get_many(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        ids: &[AppointmentId],
    ) -> Result<Vec<Appointment>, RepoError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        all_parsed(
            tx,
            live(clinic).filter(appointment::Column::Id.is_in(ids.iter().map(|id| id.as_uuid()))),
            to_domain,
        )
        .await
    }

    async fn update(
        &self,
        tx: &mut Tx,
        appointment: &Appointment,
        expected_version: i32,
    ) -> Result<(), RepoError> {
        tx.touch(practitioner_tag(appointment.practitioner_id));
        update_versioned::<appointment::Entity>(
            tx,
            live_in(appointment.clinic_id)
                .add(appointment::Column::Id.eq(appointment.id.as_uuid())),
            appointment::Column::Version,
            expected_version,
            changes(appointment),
        )
        .await
    }

    async fn active_for_practitioner(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        span: Interval,
    ) -> Result<Vec<Appointment>, RepoError> {
        let query = active_overlapping(clinic, span)
            .filter(appointment::Column::PractitionerId.eq(practitioner.as_uuid()));
        all_parsed(tx, query, to_domain).await
    }

    async fn active_for_patient(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        patient: PatientId,
        span: Interval,
    ) -> Result<Vec<Appointment>, RepoError> {
        let query = active_overlapping(clinic, span)
            .filter(appointment::Column::PatientId.eq(patient.as_uuid()));
        all_parsed(tx, query, to_domain).await
    }

    async fn active_for_parties(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        practitioner_span: Interval,
        patient: PatientId,
        patient_span: Interval,
    ) -> Result<Vec<Appointment>, RepoError> {
        let mut query = active_for_parties(
            clinic,
            practitioner,
            practitioner_span,
            patient,
            patient_span,
        );
        if self.backend() == Backend::Sqlite {
            // SQLite's planner does not OR two index ranges: given only the `OR`, it walks
            // every appointment of the clinic. The start range that holds both sides lets it
            // take `(clinic_id, starts_at)` over a day or so instead.
            let start = practitioner_span.start().min(patient_span.start());
            let end = practitioner_span.end().max(patient_span.end());
            query = query
                .filter(appointment::Column::StartsAt.lt(not_before(end)))
                .filter(appointment::Column::StartsAt.gt(instant(start) - longest()));
        }
        all_parsed(tx, query, to_domain).await
    }

    async fn list(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &AppointmentFilter,
        page: PageRequest,
    ) -> Result<Page<Appointment>, RepoError> {
        let query = filtered(clinic, filter);
        let (rows, total) = page_rows(db(tx), query, in_list_order, page).await?;
        Ok(Page {
            items: rows.into_iter().map(to_domain).collect::<Result<_, _>>()?,
            total,
            request: page,
        })
    }

    async fn list_after(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        filter: &AppointmentFilter,
        after: Option<AppointmentKey>,
        limit: u32,
    ) -> Result<Vec<Appointment>, RepoError> {
        let query = filtered(clinic, filter);
        let following = after.as_ref().map(following);
        all_decoded(db(tx), keyset_query(query, in_list_order, following, limit))
            .await?
            .into_iter()
            .map(to_domain)
            .collect()
    }

    async fn overdue_unattended(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        started_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Appointment>, RepoError> {
        let query = overdue_unattended(clinic, started_before, limit, self.backend());
        all_parsed(tx, query, to_domain).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use clinicflow_domain::ClinicId;
    use sea_orm::{DbBackend, QueryTrait};
    use uuid::Uuid;

    use super::overdue_unattended;
    use crate::Backend;

    fn sql(backend: Backend, db: DbBackend) -> String {
        let bound = Utc
            .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
            .single()
            .expect("valid");
        overdue_unattended(ClinicId::from_uuid(Uuid::nil()), bound, 25, backend)
            .build(db)
            .to_string()
    }

    #[test]
    fn the_unattended_statuses_are_booked_and_confirmed() {
        use clinicflow_domain::AppointmentStatus::{Booked, Confirmed};
        assert_eq!(
            super::UNATTENDED,
            format!(
                r#""appointments"."status" IN ('{}', '{}')"#,
                Booked.as_str(),
                Confirmed.as_str()
            )
        );
    }

    #[test]
    fn overdue_appointments_are_claimed_with_skip_locked_on_postgres_only() {
        let postgres = sql(Backend::Postgres, DbBackend::Postgres);
        assert!(
            postgres.ends_with(
                r#"ORDER BY "appointments"."starts_at" ASC, "appointments"."id" ASC LIMIT 25 FOR UPDATE SKIP LOCKED"#
            ),
            "{postgres}"
        );
        let sqlite = sql(Backend::Sqlite, DbBackend::Sqlite);
        assert!(sqlite.ends_with(r#""id" ASC LIMIT 25"#), "{sqlite}");
        assert!(
            sqlite.contains(r#""appointments"."status" IN ('booked', 'confirmed')"#)
                && postgres.contains(r#""appointments"."status" IN ('booked', 'confirmed')"#)
                && sqlite.contains(r#""appointments"."deleted_at" IS NULL"#),
            "{sqlite}"
        );
    }
}
