//! `clinics.version`: optimistic concurrency for a clinic's settings.
//!
//! `PATCH /clinic` read the settings, changed the fields it was given and wrote every field
//! back, so two admins changing different settings at once could each undo the other's
//! change. Every update now names the version it read in its `WHERE`, as every other mutable
//! row does. Existing rows start at 1, as new rows do.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::integer;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Clinics {
    Table,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Clinics::Table)
                    .add_column(integer(Clinics::Version).default(1))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Clinics::Table)
                    .drop_column(Clinics::Version)
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
