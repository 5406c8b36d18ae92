//! The `queue_entries` table.

use sea_orm::entity::prelude::*;

/// A row of `queue_entries`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "queue_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub patient_id: Uuid,
    pub practitioner_id: Option<Uuid>,
    pub department: Option<String>,
    pub appointment_id: Option<Uuid>,
    pub category: String,
    /// `TriageCategory::rank` of `category`, stored so the serve order is an index scan.
    pub category_rank: i16,
    /// `walk_in` or `appointment`; the latter with `appointment_starts_at`.
    pub rule: String,
    pub appointment_starts_at: Option<DateTimeUtc>,
    pub arrived_at: DateTimeUtc,
    pub deadline: DateTimeUtc,
    pub status: String,
    pub note: Option<String>,
    pub called_by: Option<Uuid>,
    pub called_at: Option<DateTimeUtc>,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub left_at: Option<DateTimeUtc>,
    /// The last move from `called` back to `waiting`; added by `m20261201_000008_queue_recalled_at`.
    pub recalled_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are expressed by explicit queries in the repositories, not through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
