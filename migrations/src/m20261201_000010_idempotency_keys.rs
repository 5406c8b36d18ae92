//! `idempotency_keys`: the first answer to each idempotent write, per clinic, user and key.
//!
//! The primary key is what makes concurrent retries safe: a second request with a key
//! whose first request has not committed yet waits on the key's index entry (PostgreSQL)
//! or on the write lock (SQLite), then finds the stored answer instead of writing again.
//! The answer columns are empty only inside the unit of work that claimed the key, so no
//! other transaction ever sees them empty. `expires_at` is indexed for the purge.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{integer_null, text, text_null, timestamp_with_time_zone, uuid};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Clinics {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    ClinicId,
    UserId,
    Key,
    Fingerprint,
    Status,
    Headers,
    Body,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(uuid(IdempotencyKeys::ClinicId))
                    // A plain id: the answer stays valid whatever happens to the user later.
                    .col(uuid(IdempotencyKeys::UserId))
                    .col(text(IdempotencyKeys::Key))
                    .col(text(IdempotencyKeys::Fingerprint))
                    .col(integer_null(IdempotencyKeys::Status))
                    .col(text_null(IdempotencyKeys::Headers))
                    .col(text_null(IdempotencyKeys::Body))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .name("idempotency_keys_pkey")
                            .col(IdempotencyKeys::ClinicId)
                            .col(IdempotencyKeys::UserId)
                            .col(IdempotencyKeys::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("idempotency_keys_clinic_id_fkey")
                            .from(IdempotencyKeys::Table, IdempotencyKeys::ClinicId)
                            .to(Clinics::Table, Clinics::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idempotency_keys_expires_at_idx")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
