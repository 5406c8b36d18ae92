//! The `schedule_rules` table.

use sea_orm::entity::prelude::*;

/// One weekly window, in clinic-local minutes since midnight.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "schedule_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub practitioner_id: Uuid,
    /// 1 = Monday … 7 = Sunday.
    pub weekday: i16,
    pub start_minute: i32,
    pub end_minute: i32,
    pub slot_minutes: Option<i32>,
}

/// Relations are expressed by explicit queries in the repositories, not through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
