//! The `schedules` table: one row per practitioner that has a weekly schedule.

use sea_orm::entity::prelude::*;

/// A row of `schedules`; its rules live in `schedule_rules`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub practitioner_id: Uuid,
    pub clinic_id: Uuid,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
}

/// Relations are expressed by explicit queries in the repositories, not through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
