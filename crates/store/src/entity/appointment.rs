//! The `appointments` table.

use sea_orm::entity::prelude::*;

/// A row of `appointments`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "appointments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    pub urgency: String,
    pub reason: Option<String>,
    pub status: String,
    pub overbooked: bool,
    pub version: i32,
    pub rescheduled_from: Option<Uuid>,
    pub rescheduled_to: Option<Uuid>,
    pub cancelled_by: Option<Uuid>,
    pub cancel_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

/// Relations are expressed by explicit queries in the repositories, not through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl crate::query::Decode for Model {
    fn decode_pg(row: &sea_orm::sqlx::postgres::PgRow) -> Result<Self, sea_orm::sqlx::Error> {
        use sea_orm::sqlx::Row as _;
        // Named by the entity, so a renamed column cannot be read under its old name.
        Ok(Self {
            id: row.try_get(Column::Id.as_str())?,
            clinic_id: row.try_get(Column::ClinicId.as_str())?,
            patient_id: row.try_get(Column::PatientId.as_str())?,
            practitioner_id: row.try_get(Column::PractitionerId.as_str())?,
            starts_at: row.try_get(Column::StartsAt.as_str())?,
            ends_at: row.try_get(Column::EndsAt.as_str())?,
            urgency: row.try_get(Column::Urgency.as_str())?,
            reason: row.try_get(Column::Reason.as_str())?,
            status: row.try_get(Column::Status.as_str())?,
            overbooked: row.try_get(Column::Overbooked.as_str())?,
            version: row.try_get(Column::Version.as_str())?,
            rescheduled_from: row.try_get(Column::RescheduledFrom.as_str())?,
            rescheduled_to: row.try_get(Column::RescheduledTo.as_str())?,
            cancelled_by: row.try_get(Column::CancelledBy.as_str())?,
            cancel_reason: row.try_get(Column::CancelReason.as_str())?,
            created_at: row.try_get(Column::CreatedAt.as_str())?,
            updated_at: row.try_get(Column::UpdatedAt.as_str())?,
            deleted_at: row.try_get(Column::DeletedAt.as_str())?,
        })
    }
}
