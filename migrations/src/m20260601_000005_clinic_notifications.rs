//! A clinic's notification settings: its reminder offsets on `clinics`, and its webhook (URL
//! and signing secret) in `clinic_webhooks`, one row per clinic that has one.
//!
//! The webhook lives in its own table so that the clinic row, read on every booking and
//! cached, never carries the signing secret. Offsets are stored as comma-separated minutes
//! (`1440,120`): SQLite has no arrays, and the list is read and written whole.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{text, timestamp_with_time_zone, uuid};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Clinics {
    Table,
    Id,
    ReminderOffsetsMinutes,
}

#[derive(DeriveIden)]
enum ClinicWebhooks {
    Table,
    ClinicId,
    Url,
    Secret,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Clinics::Table)
                    .add_column(text(Clinics::ReminderOffsetsMinutes).default("1440,120"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ClinicWebhooks::Table)
                    .col(uuid(ClinicWebhooks::ClinicId).primary_key())
                    .col(text(ClinicWebhooks::Url))
                    .col(text(ClinicWebhooks::Secret))
                    .col(timestamp_with_time_zone(ClinicWebhooks::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("clinic_webhooks_clinic_id_fkey")
                            .from(ClinicWebhooks::Table, ClinicWebhooks::ClinicId)
                            .to(Clinics::Table, Clinics::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ClinicWebhooks::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Clinics::Table)
                    .drop_column(Clinics::ReminderOffsetsMinutes)
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
