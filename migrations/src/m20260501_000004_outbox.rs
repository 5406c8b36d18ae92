//! The transactional outbox: `outbox_messages`, written in the transaction of the change that
//! causes each message and delivered from there at least once.
//!
//! `appointment_id` has no foreign key on purpose: a message outlives what it is about (a
//! cancellation notice is still delivered when the appointment is gone). The dispatcher
//! finds due messages through a partial index on `(status, next_attempt_at)` that holds
//! pending rows only, so delivered history does not slow it down; partial indexes work the
//! same on both databases. This migration is self-contained, like every other.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    integer, pk_uuid, text, text_null, timestamp_with_time_zone, timestamp_with_time_zone_null,
    uuid, uuid_null,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Clinics {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OutboxMessages {
    Table,
    Id,
    ClinicId,
    Kind,
    AppointmentId,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    DeliveredAt,
    CreatedAt,
}

/// A plain index named `name` on `cols` of `outbox_messages`.
fn index(name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(OutboxMessages::Table);
    for col in cols {
        index.col(Alias::new(*col));
    }
    index
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OutboxMessages::Table)
                    .col(pk_uuid(OutboxMessages::Id))
                    .col(uuid(OutboxMessages::ClinicId))
                    .col(text(OutboxMessages::Kind))
                    .col(uuid_null(OutboxMessages::AppointmentId))
                    .col(text(OutboxMessages::Payload))
                    .col(text(OutboxMessages::Status))
                    .col(integer(OutboxMessages::Attempts).default(0))
                    .col(timestamp_with_time_zone(OutboxMessages::NextAttemptAt))
                    .col(text_null(OutboxMessages::LastError))
                    .col(timestamp_with_time_zone_null(OutboxMessages::DeliveredAt))
                    .col(timestamp_with_time_zone(OutboxMessages::CreatedAt))
                    .check((
                        Alias::new("outbox_messages_attempts_check"),
                        Expr::col(OutboxMessages::Attempts).gte(0),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("outbox_messages_clinic_id_fkey")
                            .from(OutboxMessages::Table, OutboxMessages::ClinicId)
                            .to(Clinics::Table, Clinics::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // The dispatcher's scan: pending messages, earliest due first.
        manager
            .create_index(
                index("outbox_messages_due_idx", &["status", "next_attempt_at"])
                    .and_where(Expr::col(OutboxMessages::Status).eq("pending"))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            // A clinic's messages by status, newest first.
            (
                "outbox_messages_clinic_id_status_created_at_idx",
                &["clinic_id", "status", "created_at"][..],
            ),
            // Cancelling the reminders of an appointment.
            (
                "outbox_messages_clinic_id_appointment_id_kind_idx",
                &["clinic_id", "appointment_id", "kind"][..],
            ),
        ] {
            manager.create_index(index(name, cols)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Its indexes go with the table.
        manager
            .drop_table(
                Table::drop()
                    .table(OutboxMessages::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
