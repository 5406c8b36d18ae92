//! An index for the no-show sweeper: a clinic's live appointments by status, then start.
//!
//! The sweeper asks on every round, for every clinic, for the appointments still booked or
//! confirmed whose start has passed. The `(clinic_id, starts_at, id)` index would walk the
//! clinic's whole history of completed and cancelled visits to find them, and
//! `(clinic_id, status, created_at)` every future booking; with `status` before `starts_at`
//! the scan touches only the overdue rows. It is partial on `deleted_at IS NULL` like the
//! other appointment indexes, which works the same on both databases.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Appointments {
    Table,
    ClinicId,
    Status,
    StartsAt,
    DeletedAt,
}

const INDEX: &str = "appointments_clinic_id_status_starts_at_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Appointments::Table)
                    .col(Appointments::ClinicId)
                    .col(Appointments::Status)
                    .col(Appointments::StartsAt)
                    .and_where(Expr::col(Appointments::DeletedAt).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(Appointments::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
