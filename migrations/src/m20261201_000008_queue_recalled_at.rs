//! `queue_entries.recalled_at`: when an entry was last sent back from called to waiting.
//!
//! A recall clears `called_at` and `called_by`, so without this column the move left no
//! trace on the entry. Existing rows get `NULL`: no recall of theirs was recorded.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::timestamp_with_time_zone_null;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum QueueEntries {
    Table,
    RecalledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(QueueEntries::Table)
                    .add_column(timestamp_with_time_zone_null(QueueEntries::RecalledAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(QueueEntries::Table)
                    .drop_column(QueueEntries::RecalledAt)
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
