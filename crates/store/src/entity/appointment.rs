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
        Ok(Self {
            id: row.try_get("id")?,
            clinic_id: row.try_get("clinic_id")?,
            patient_id: row.try_get("patient_id")?,
            practitioner_id: row.try_get("practitioner_id")?,
            starts_at: row.try_get("starts_at")?,
            ends_at: row.try_get("ends_at")?,
            urgency: row.try_get("urgency")?,
            reason: row.try_get("reason")?,
            status: row.try_get("status")?,
            overbooked: row.try_get("overbooked")?,
            version: row.try_get("version")?,
            rescheduled_from: row.try_get("rescheduled_from")?,
            rescheduled_to: row.try_get("rescheduled_to")?,
            cancelled_by: row.try_get("cancelled_by")?,
            cancel_reason: row.try_get("cancel_reason")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            deleted_at: row.try_get("deleted_at")?,
        })
    }
}
