//! The appointment life cycle's missing guards.
//!
//! - `clinics` gains its check-in window: `check_in_opens_minutes_before` (default 60) and
//!   `check_in_closes_minutes_after` (`NULL`: the clinic's no-show grace). Existing clinics
//!   get the defaults.
//! - `practitioners.active` (default true): a deactivated practitioner takes no new bookings
//!   and is left out of slot searches; their appointments stay.
//! - A patient has at most one open queue entry (waiting, called or in service): a partial
//!   unique index on `(clinic_id, patient_id)`, named so that the store maps its violation to
//!   `RepoError::AlreadyQueued`. Before the index is built, a patient's surplus open entries
//!   are closed as `left` (the entry in service, else the called one, else the first to
//!   arrive stays), because the index cannot be built over duplicates.
//!
//! Self-contained, like every migration here: no helper is shared with another one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{boolean, integer, integer_null};

/// Name of the partial unique index behind "one open entry per patient"; part of the store's
/// error contract.
const ONE_OPEN_ENTRY_PER_PATIENT: &str = "queue_entries_open_patient_key";

/// Statuses in which an entry is on the board; mirrors `QueueStatus::is_open`.
const OPEN_STATUSES: [&str; 3] = ["waiting", "called", "in_service"];

/// Closes every open entry of a patient but one, so the unique index can be built. The row
/// comparison ranks entries in service first, then called, then waiting, then by arrival.
const CLOSE_DUPLICATE_OPEN_ENTRIES: &str = "\
UPDATE queue_entries SET status = 'left', left_at = updated_at, version = version + 1 \
WHERE status IN ('waiting', 'called', 'in_service') AND EXISTS ( \
  SELECT 1 FROM queue_entries AS kept \
  WHERE kept.clinic_id = queue_entries.clinic_id \
    AND kept.patient_id = queue_entries.patient_id \
    AND kept.status IN ('waiting', 'called', 'in_service') \
    AND kept.id <> queue_entries.id \
    AND (CASE kept.status WHEN 'in_service' THEN 0 WHEN 'called' THEN 1 ELSE 2 END, \
         kept.arrived_at, kept.id) \
      < (CASE queue_entries.status WHEN 'in_service' THEN 0 WHEN 'called' THEN 1 ELSE 2 END, \
         queue_entries.arrived_at, queue_entries.id))";

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Clinics {
    Table,
    CheckInOpensMinutesBefore,
    CheckInClosesMinutesAfter,
}

#[derive(DeriveIden)]
enum Practitioners {
    Table,
    Active,
}

#[derive(DeriveIden)]
enum QueueEntries {
    Table,
    ClinicId,
    PatientId,
    Status,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Clinics::Table)
                    .add_column(integer(Clinics::CheckInOpensMinutesBefore).default(60))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Clinics::Table)
                    .add_column(integer_null(Clinics::CheckInClosesMinutesAfter))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Practitioners::Table)
                    .add_column(boolean(Practitioners::Active).default(true))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(CLOSE_DUPLICATE_OPEN_ENTRIES)
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ONE_OPEN_ENTRY_PER_PATIENT)
                    .table(QueueEntries::Table)
                    .col(QueueEntries::ClinicId)
                    .col(QueueEntries::PatientId)
                    .unique()
                    .and_where(Expr::col(QueueEntries::Status).is_in(OPEN_STATUSES))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(ONE_OPEN_ENTRY_PER_PATIENT)
                    .table(QueueEntries::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Practitioners::Table)
                    .drop_column(Practitioners::Active)
                    .to_owned(),
            )
            .await?;
        for column in [
            Clinics::CheckInClosesMinutesAfter,
            Clinics::CheckInOpensMinutesBefore,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Clinics::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
