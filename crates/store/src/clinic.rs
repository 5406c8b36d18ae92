//! [`ClinicRepo`] on the `clinics` table.

use async_trait::async_trait;
use chrono::DateTime;
use chrono::Utc;
use clinicflow_domain::{
    CheckInWindow, Clinic, ClinicId, ClinicName, QueueSettings, ReminderOffsets, TimeZone,
    WebhookEndpoint, WebhookSecret, WebhookUrl,
};
use clinicflow_ports::{ClinicRepo, RepoError, Tx};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::Store;
use crate::entity::{clinic, clinic_webhook, instant};
use crate::error::{invalid_row, repo_error, to_i32};
use crate::transaction::db;
use crate::version::update_versioned;

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
        reminders: parse_offsets(&row.reminder_offsets_minutes).map_err(invalid)?,
        check_in: CheckInWindow {
            opens_minutes_before: minutes(row.check_in_opens_minutes_before)?,
            closes_minutes_after: row.check_in_closes_minutes_after.map(minutes).transpose()?,
        },
        version: row.version,
    })
}

fn parse_offsets(stored: &str) -> Result<ReminderOffsets, String> {
    let minutes = stored
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|e| e.to_string())?;
    ReminderOffsets::parse(&minutes).map_err(|e| e.to_string())
}

fn stored_offsets(offsets: &ReminderOffsets) -> String {
    let minutes: Vec<String> = offsets.minutes().iter().map(u32::to_string).collect();
    minutes.join(",")
}

/// Every column a settings change writes; the id and creation time stay.
fn settings(clinic: &Clinic) -> Result<clinic::ActiveModel, RepoError> {
    let [immediate, very_urgent, urgent, standard, non_urgent] = clinic.queue.target_minutes;
    Ok(clinic::ActiveModel {
        id: NotSet,
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
        reminder_offsets_minutes: Set(stored_offsets(&clinic.reminders)),
        check_in_opens_minutes_before: Set(to_i32(
            "check_in_opens_minutes_before",
            clinic.check_in.opens_minutes_before,
        )?),
        check_in_closes_minutes_after: Set(clinic
            .check_in
            .closes_minutes_after
            .map(|m| to_i32("check_in_closes_minutes_after", m))
            .transpose()?),
        version: Set(clinic.version),
        created_at: NotSet,
    })
}

#[async_trait]
impl ClinicRepo for Store {
    async fn insert(&self, tx: &mut Tx, clinic: &Clinic) -> Result<(), RepoError> {
        let mut row = settings(clinic)?;
        row.id = Set(clinic.id.as_uuid());
        row.created_at = Set(instant(Utc::now()));
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

    async fn list_ids(&self, tx: &mut Tx) -> Result<Vec<ClinicId>, RepoError> {
        let ids: Vec<uuid::Uuid> = clinic::Entity::find()
            .select_only()
            .column(clinic::Column::Id)
            .order_by_asc(clinic::Column::Id)
            .into_tuple()
            .all(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(ids.into_iter().map(ClinicId::from_uuid).collect())
    }

    async fn update(
        &self,
        tx: &mut Tx,
        clinic: &Clinic,
        expected_version: i32,
    ) -> Result<(), RepoError> {
        update_versioned::<clinic::Entity>(
            tx,
            Condition::all().add(clinic::Column::Id.eq(clinic.id.as_uuid())),
            clinic::Column::Version,
            expected_version,
            settings(clinic)?,
        )
        .await
    }

    async fn webhook(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
    ) -> Result<Option<WebhookEndpoint>, RepoError> {
        let Some(row) = clinic_webhook::Entity::find_by_id(clinic.as_uuid())
            .one(db(tx))
            .await
            .map_err(repo_error)?
        else {
            return Ok(None);
        };
        let invalid = |reason: String| invalid_row("clinic_webhooks", row.clinic_id, reason);
        Ok(Some(WebhookEndpoint {
            url: WebhookUrl::parse(&row.url).map_err(|e| invalid(e.to_string()))?,
            secret: WebhookSecret::parse(&row.secret).map_err(|e| invalid(e.to_string()))?,
        }))
    }

    async fn set_webhook(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        webhook: Option<WebhookEndpoint>,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let Some(webhook) = webhook else {
            clinic_webhook::Entity::delete_by_id(clinic.as_uuid())
                .exec(db(tx))
                .await
                .map_err(repo_error)?;
            return Ok(());
        };
        let row = clinic_webhook::ActiveModel {
            clinic_id: Set(clinic.as_uuid()),
            url: Set(webhook.url.as_str().to_owned()),
            secret: Set(webhook.secret.expose().to_owned()),
            updated_at: Set(instant(now)),
        };
        clinic_webhook::Entity::insert(row)
            .on_conflict(
                OnConflict::column(clinic_webhook::Column::ClinicId)
                    .update_columns([
                        clinic_webhook::Column::Url,
                        clinic_webhook::Column::Secret,
                        clinic_webhook::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(db(tx))
            .await
            .map_err(repo_error)?;
        Ok(())
    }
}
