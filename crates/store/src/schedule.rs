//! [`ScheduleRepo`] on `schedules`, `schedule_rules` and `schedule_exceptions`.

use async_trait::async_trait;
use chrono::{NaiveTime, Timelike, Weekday};
use clinicflow_domain::{
    ClinicId, ExceptionKind, Interval, PractitionerId, Schedule, ScheduleException,
    ScheduleExceptionId, WeeklyRule,
};
use clinicflow_ports::{RepoError, ScheduleRepo, Tx, practitioner_tag, schedule_tag};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::Store;
use crate::entity::{instant, not_before, schedule, schedule_exception, schedule_rule};
use crate::error::{invalid_row, repo_error, to_i32};
use crate::transaction::db;

/// Minutes since local midnight; rules lie on whole minutes.
fn minute_of_day(t: NaiveTime) -> i32 {
    // At most 23 * 60 + 59, so the cast cannot truncate.
    (t.hour() * 60 + t.minute()) as i32
}

fn time_of_day(minute: i32) -> Option<NaiveTime> {
    let minute = u32::try_from(minute).ok()?;
    NaiveTime::from_hms_opt(minute / 60, minute % 60, 0)
}

fn rule_to_domain(row: &schedule_rule::Model) -> Result<WeeklyRule, RepoError> {
    let invalid = |reason: String| invalid_row("schedule_rules", row.id, reason);
    let weekday = u8::try_from(row.weekday - 1)
        .ok()
        .and_then(|d| Weekday::try_from(d).ok())
        .ok_or_else(|| invalid(format!("weekday {} is not 1..=7", row.weekday)))?;
    let start = time_of_day(row.start_minute)
        .ok_or_else(|| invalid(format!("start minute {}", row.start_minute)))?;
    let end = time_of_day(row.end_minute)
        .ok_or_else(|| invalid(format!("end minute {}", row.end_minute)))?;
    let slot_minutes = row
        .slot_minutes
        .map(u32::try_from)
        .transpose()
        .map_err(|e| invalid(e.to_string()))?;
    WeeklyRule::new(weekday, start, end, slot_minutes).map_err(|e| invalid(e.to_string()))
}

fn exception_to_domain(row: schedule_exception::Model) -> Result<ScheduleException, RepoError> {
    let invalid = |reason: String| invalid_row("schedule_exceptions", row.id, reason);
    Ok(ScheduleException {
        id: ScheduleExceptionId::from_uuid(row.id),
        kind: row
            .kind
            .parse()
            .map_err(|e: clinicflow_domain::InvalidValue| invalid(e.to_string()))?,
        interval: Interval::new(row.starts_at, row.ends_at).map_err(|e| invalid(e.to_string()))?,
        reason: row.reason,
    })
}

#[async_trait]
impl ScheduleRepo for Store {
    async fn get(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
    ) -> Result<Option<Schedule>, RepoError> {
        let txn = db(tx);
        let Some(head) = schedule::Entity::find()
            .filter(schedule::Column::ClinicId.eq(clinic.as_uuid()))
            .filter(schedule::Column::PractitionerId.eq(practitioner.as_uuid()))
            .one(txn)
            .await
            .map_err(repo_error)?
        else {
            return Ok(None);
        };
        let rules = schedule_rule::Entity::find()
            .filter(schedule_rule::Column::ClinicId.eq(clinic.as_uuid()))
            .filter(schedule_rule::Column::PractitionerId.eq(practitioner.as_uuid()))
            .order_by_asc(schedule_rule::Column::Weekday)
            .order_by_asc(schedule_rule::Column::StartMinute)
            .all(txn)
            .await
            .map_err(repo_error)?
            .iter()
            .map(rule_to_domain)
            .collect::<Result<Vec<_>, _>>()?;
        Schedule::new(rules, head.valid_from, head.valid_to)
            .map(Some)
            .map_err(|e| invalid_row("schedules", head.practitioner_id, e))
    }

    async fn put(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        schedule: &Schedule,
    ) -> Result<(), RepoError> {
        tx.touch(practitioner_tag(practitioner));
        tx.touch(schedule_tag(practitioner));
        let txn = db(tx);
        let (clinic, practitioner) = (clinic.as_uuid(), practitioner.as_uuid());
        schedule_rule::Entity::delete_many()
            .filter(schedule_rule::Column::ClinicId.eq(clinic))
            .filter(schedule_rule::Column::PractitionerId.eq(practitioner))
            .exec(txn)
            .await
            .map_err(repo_error)?;
        schedule::Entity::delete_many()
            .filter(schedule::Column::ClinicId.eq(clinic))
            .filter(schedule::Column::PractitionerId.eq(practitioner))
            .exec(txn)
            .await
            .map_err(repo_error)?;
        // The foreign key to (clinic_id, practitioner_id) turns another clinic's practitioner into NotFound.
        schedule::Entity::insert(schedule::ActiveModel {
            practitioner_id: Set(practitioner),
            clinic_id: Set(clinic),
            valid_from: Set(schedule.valid_from()),
            valid_to: Set(schedule.valid_to()),
        })
        .exec_without_returning(txn)
        .await
        .map_err(repo_error)?;
        let rules = schedule
            .rules()
            .iter()
            .map(|rule| {
                Ok(schedule_rule::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    clinic_id: Set(clinic),
                    practitioner_id: Set(practitioner),
                    // 1..=7, so the cast cannot truncate.
                    weekday: Set(rule.weekday().number_from_monday() as i16),
                    start_minute: Set(minute_of_day(rule.start())),
                    end_minute: Set(minute_of_day(rule.end())),
                    slot_minutes: Set(rule
                        .slot_minutes()
                        .map(|m| to_i32("slot_minutes", m))
                        .transpose()?),
                })
            })
            .collect::<Result<Vec<_>, RepoError>>()?;
        if !rules.is_empty() {
            schedule_rule::Entity::insert_many(rules)
                .exec_without_returning(txn)
                .await
                .map_err(repo_error)?;
        }
        Ok(())
    }

    async fn add_exception(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        exception: &ScheduleException,
    ) -> Result<(), RepoError> {
        tx.touch(practitioner_tag(practitioner));
        tx.touch(schedule_tag(practitioner));
        schedule_exception::Entity::insert(schedule_exception::ActiveModel {
            id: Set(exception.id.as_uuid()),
            clinic_id: Set(clinic.as_uuid()),
            practitioner_id: Set(practitioner.as_uuid()),
            kind: Set(exception.kind.as_str().to_owned()),
            starts_at: Set(instant(exception.interval.start())),
            ends_at: Set(instant(exception.interval.end())),
            reason: Set(exception.reason.clone()),
        })
        .exec_without_returning(db(tx))
        .await
        .map_err(repo_error)?;
        Ok(())
    }

    async fn exceptions(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        kind: ExceptionKind,
    ) -> Result<Vec<ScheduleException>, RepoError> {
        schedule_exception::Entity::find()
            .filter(schedule_exception::Column::ClinicId.eq(clinic.as_uuid()))
            .filter(schedule_exception::Column::PractitionerId.eq(practitioner.as_uuid()))
            .filter(schedule_exception::Column::Kind.eq(kind.as_str()))
            .order_by_asc(schedule_exception::Column::StartsAt)
            .order_by_asc(schedule_exception::Column::Id)
            .all(db(tx))
            .await
            .map_err(repo_error)?
            .into_iter()
            .map(exception_to_domain)
            .collect()
    }

    async fn remove_exception(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        kind: ExceptionKind,
        id: ScheduleExceptionId,
    ) -> Result<(), RepoError> {
        let removed = schedule_exception::Entity::delete_many()
            .filter(schedule_exception::Column::ClinicId.eq(clinic.as_uuid()))
            .filter(schedule_exception::Column::PractitionerId.eq(practitioner.as_uuid()))
            .filter(schedule_exception::Column::Kind.eq(kind.as_str()))
            .filter(schedule_exception::Column::Id.eq(id.as_uuid()))
            .exec(db(tx))
            .await
            .map_err(repo_error)?;
        if removed.rows_affected == 0 {
            return Err(RepoError::NotFound);
        }
        // Only a change that happened makes the cached slots stale.
        tx.touch(practitioner_tag(practitioner));
        tx.touch(schedule_tag(practitioner));
        Ok(())
    }

    async fn exceptions_overlapping(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        practitioner: PractitionerId,
        span: Interval,
    ) -> Result<Vec<ScheduleException>, RepoError> {
        schedule_exception::Entity::find()
            .filter(schedule_exception::Column::ClinicId.eq(clinic.as_uuid()))
            .filter(schedule_exception::Column::PractitionerId.eq(practitioner.as_uuid()))
            .filter(schedule_exception::Column::StartsAt.lt(not_before(span.end())))
            .filter(schedule_exception::Column::EndsAt.gt(instant(span.start())))
            .order_by_asc(schedule_exception::Column::StartsAt)
            .order_by_asc(schedule_exception::Column::Id)
            .all(db(tx))
            .await
            .map_err(repo_error)?
            .into_iter()
            .map(exception_to_domain)
            .collect()
    }
}
