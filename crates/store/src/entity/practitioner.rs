//! The `practitioners` table.

use sea_orm::entity::prelude::*;

/// A row of `practitioners`; its specialties live in `practitioner_specialties`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "practitioners")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub given_name: String,
    pub family_name: String,
    pub department: Option<String>,
    pub slot_minutes: i32,
    pub buffer_minutes: i32,
    /// Added by `m20261203_000012_lifecycle`.
    pub active: bool,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are expressed by explicit queries in the repositories, not through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
