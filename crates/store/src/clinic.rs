//! [`ClinicRepo`] on the `clinics` table.

use async_trait::async_trait;
use chrono::Utc;
use clinicflow_domain::{Clinic, ClinicId, ClinicName, QueueSettings, TimeZone};
use clinicflow_ports::{ClinicRepo, RepoError, Tx};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::Store;
use crate::entity::{clinic, instant};
use crate::error::{invalid_row, repo_error, to_i32};
use crate::transaction::db;

fn to_domain(row: clinic::Model) -> Result<Clinic, RepoError> {
    let invalid = |reason: String| invalid_row("clinics", row.id, reason);
    let minutes = |value: i32| u32::try_from(value).map_err(|e| invalid(e.to_string()));
    Ok(Clinic {
        id: ClinicId::from_uuid(row.id),
        name: ClinicName::parse(&row.name).map_err(|e| invalid(e.to_string()))?,
        time_zone: TimeZone::parse(&row.time_zone).map_err(|e| invalid(e.to_string()))?,
        no_show_grace_minutes: minutes(row.no_show_grace_minutes)?,
        queue: QueueSettings {
            target_minutes: [
                minutes(row.triage_target_immediate)?,
                minutes(row.triage_target_very_urgent)?,
                minutes(row.triage_target_urgent)?,
                minutes(row.triage_target_standard)?,
                minutes(row.triage_target_non_urgent)?,
            ],
            checkin_grace_minutes: minutes(row.checkin_grace_minutes)?,
        },
    })
}

#[async_trait]
impl ClinicRepo for Store {
    async fn insert(&self, tx: &mut Tx, clinic: &Clinic) -> Result<(), RepoError> {
        let [immediate, very_urgent, urgent, standard, non_urgent] = clinic.queue.target_minutes;
        let row = clinic::ActiveModel {
            id: Set(clinic.id.as_uuid()),
            name: Set(clinic.name.as_ref().to_owned()),
            time_zone: Set(clinic.time_zone.name().to_owned()),
            no_show_grace_minutes: Set(to_i32(
                "no_show_grace_minutes",
                clinic.no_show_grace_minutes,
            )?),
            // `target_minutes` is indexed by `TriageCategory::rank`, most urgent first.
            triage_target_immediate: Set(to_i32("triage_target_immediate", immediate)?),
            triage_target_very_urgent: Set(to_i32("triage_target_very_urgent", very_urgent)?),
            triage_target_urgent: Set(to_i32("triage_target_urgent", urgent)?),
            triage_target_standard: Set(to_i32("triage_target_standard", standard)?),
            triage_target_non_urgent: Set(to_i32("triage_target_non_urgent", non_urgent)?),
            checkin_grace_minutes: Set(to_i32(
                "checkin_grace_minutes",
                clinic.queue.checkin_grace_minutes,
            )?),
            created_at: Set(instant(Utc::now())),
        };
        clinic::Entity::insert(row)
            .exec_without_returning(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(())
    }

    async fn get(&self, tx: &mut Tx, id: ClinicId) -> Result<Option<Clinic>, RepoError> {
        clinic::Entity::find_by_id(id.as_uuid())
            .one(db(tx))
            .await
            .map_err(repo_error)?
            .map(to_domain)
            .transpose()
    }

    async fn find_by_name(&self, tx: &mut Tx, name: &str) -> Result<Option<Clinic>, RepoError> {
        // Names are not unique; the oldest clinic of that name is the one seeding made.
        clinic::Entity::find()
            .filter(clinic::Column::Name.eq(name))
            .order_by_asc(clinic::Column::CreatedAt)
            .order_by_asc(clinic::Column::Id)
            .one(db(tx))
            .await
            .map_err(repo_error)?
            .map(to_domain)
            .transpose()
    }
}
