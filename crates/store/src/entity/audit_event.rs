//! The `audit_events` table (append-only: the database refuses updates and deletes).

use sea_orm::entity::prelude::*;

/// A row of `audit_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub actor_id: Uuid,
    pub actor_role: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    pub at: DateTimeUtc,
    pub request_id: Option<Uuid>,
    pub outcome: String,
}

/// Relations are expressed by explicit queries in the repositories, not through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
