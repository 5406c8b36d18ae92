//! The `clinics` table.

use sea_orm::entity::prelude::*;

/// A row of `clinics`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clinics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub time_zone: String,
    pub no_show_grace_minutes: i32,
    pub triage_target_immediate: i32,
    pub triage_target_very_urgent: i32,
    pub triage_target_urgent: i32,
    pub triage_target_standard: i32,
    pub triage_target_non_urgent: i32,
    pub checkin_grace_minutes: i32,
    pub reminder_offsets_minutes: String,
    /// Added by `m20261203_000012_lifecycle`, like the next one.
    pub check_in_opens_minutes_before: i32,
    /// `NULL`: the check-in window closes with the no-show grace.
    pub check_in_closes_minutes_after: Option<i32>,
    pub created_at: DateTimeUtc,
    /// Added by `m20261203_000013_clinic_versions`.
    pub version: i32,
}

/// Relations are expressed by explicit queries in the repositories, not through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
