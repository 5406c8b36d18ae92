//! The `clinic_webhooks` table.

use sea_orm::entity::prelude::*;

/// A row of `clinic_webhooks`: one clinic's receiver and signing secret.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clinic_webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub clinic_id: Uuid,
    pub url: String,
    pub secret: String,
    pub updated_at: DateTimeUtc,
}

/// Relations are expressed by explicit queries in the repositories, not through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
