//! The walk-in queue and encounters, and each clinic's queue settings.
//!
//! `clinics` gains one column per triage category's target wait (Manchester Triage System
//! bands by default) and the check-in grace; existing clinics get the defaults.
//!
//! `queue_entries` keeps each entry's deadline, fixed when it joins, next to the category's
//! rank, so the queue is served by an index scan on `(clinic_id, status, deadline,
//! category_rank, arrived_at, id)`: no per-entry recomputation. A partial unique index lets
//! one appointment have at most one open entry (waiting, called or in service); the store
//! maps its violation to `Duplicate("appointment_id")` by its name. `encounters` record
//! visits and reference the queue entry they came from.
//!
//! Child rows reference their parents through `(clinic_id, id)`, like every child table, so
//! the database refuses a link across clinics; `appointments` gets that key here. This
//! migration is self-contained (no helpers shared with the others), so editing one migration
//! can never change what another does.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    integer, pk_uuid, small_integer, text, text_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null, uuid, uuid_null,
};

/// Statuses in which an entry is on the board; mirrors `QueueStatus::is_open`.
const OPEN_STATUSES: [&str; 3] = ["waiting", "called", "in_service"];

/// Name of the partial unique index behind "one open entry per appointment"; part of the
/// store's error contract.
const ONE_OPEN_ENTRY_PER_APPOINTMENT: &str = "queue_entries_open_appointment_key";

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Clinics {
    Table,
    Id,
    TriageTargetImmediate,
    TriageTargetVeryUrgent,
    TriageTargetUrgent,
    TriageTargetStandard,
    TriageTargetNonUrgent,
    CheckinGraceMinutes,
}

#[derive(DeriveIden)]
enum Patients {
    Table,
    Id,
    ClinicId,
}

#[derive(DeriveIden)]
enum Practitioners {
    Table,
    Id,
    ClinicId,
}

#[derive(DeriveIden)]
enum Appointments {
    Table,
    Id,
    ClinicId,
}

#[derive(DeriveIden)]
enum QueueEntries {
    Table,
    Id,
    ClinicId,
    PatientId,
    PractitionerId,
    Department,
    AppointmentId,
    Category,
    CategoryRank,
    Rule,
    AppointmentStartsAt,
    ArrivedAt,
    Deadline,
    Status,
    Note,
    CalledBy,
    CalledAt,
    StartedAt,
    FinishedAt,
    LeftAt,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Encounters {
    Table,
    Id,
    ClinicId,
    PatientId,
    PractitionerId,
    AppointmentId,
    QueueEntryId,
    StartedAt,
    EndedAt,
    Notes,
    Version,
    CreatedAt,
    UpdatedAt,
}

/// The queue columns of `clinics` with their defaults, most urgent category first.
fn clinic_columns() -> [(Clinics, i32); 6] {
    [
        (Clinics::TriageTargetImmediate, 0),
        (Clinics::TriageTargetVeryUrgent, 10),
        (Clinics::TriageTargetUrgent, 60),
        (Clinics::TriageTargetStandard, 120),
        (Clinics::TriageTargetNonUrgent, 240),
        (Clinics::CheckinGraceMinutes, 10),
    ]
}

/// `FOREIGN KEY (clinic_id, <column>) REFERENCES <parent> (clinic_id, id)`: the parent must
/// belong to the same clinic. A null `column` is not checked.
fn same_clinic_fk<T: IntoIden>(
    name: &str,
    table: T,
    column: T,
    (parent, parent_clinic_id, parent_id): (impl IntoIden, impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(
            table.into_iden(),
            (Alias::new("clinic_id").into_iden(), column.into_iden()),
        )
        .to(
            parent.into_iden(),
            (parent_clinic_id.into_iden(), parent_id.into_iden()),
        )
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

/// A plain index named `name` on `cols` of `table`.
fn index(
    name: &str,
    table: impl IntoIden + 'static,
    cols: &[&'static str],
) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(Alias::new(*col));
    }
    index
}

/// The unique `(clinic_id, id)` key that child rows reference.
fn clinic_id_key(name: &str, table: impl IntoIden + 'static) -> IndexCreateStatement {
    index(name, table, &["clinic_id", "id"]).unique().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for (column, default) in clinic_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Clinics::Table)
                        .add_column(integer(column).default(default))
                        .to_owned(),
                )
                .await?;
        }

        // The parent key of `queue_entries_appointment_fkey` and `encounters_appointment_fkey`.
        manager
            .create_index(clinic_id_key(
                "appointments_clinic_id_id_key",
                Appointments::Table,
            ))
            .await?;

        let walk_in = Expr::col(QueueEntries::Rule)
            .eq("walk_in")
            .and(Expr::col(QueueEntries::AppointmentStartsAt).is_null());
        let appointment = Expr::col(QueueEntries::Rule)
            .eq("appointment")
            .and(Expr::col(QueueEntries::AppointmentStartsAt).is_not_null());
        manager
            .create_table(
                Table::create()
                    .table(QueueEntries::Table)
                    .col(pk_uuid(QueueEntries::Id))
                    .col(uuid(QueueEntries::ClinicId))
                    .col(uuid(QueueEntries::PatientId))
                    .col(uuid_null(QueueEntries::PractitionerId))
                    .col(text_null(QueueEntries::Department))
                    .col(uuid_null(QueueEntries::AppointmentId))
                    .col(text(QueueEntries::Category))
                    .col(small_integer(QueueEntries::CategoryRank))
                    .col(text(QueueEntries::Rule))
                    .col(timestamp_with_time_zone_null(
                        QueueEntries::AppointmentStartsAt,
                    ))
                    .col(timestamp_with_time_zone(QueueEntries::ArrivedAt))
                    .col(timestamp_with_time_zone(QueueEntries::Deadline))
                    .col(text(QueueEntries::Status))
                    .col(text_null(QueueEntries::Note))
                    .col(uuid_null(QueueEntries::CalledBy))
                    .col(timestamp_with_time_zone_null(QueueEntries::CalledAt))
                    .col(timestamp_with_time_zone_null(QueueEntries::StartedAt))
                    .col(timestamp_with_time_zone_null(QueueEntries::FinishedAt))
                    .col(timestamp_with_time_zone_null(QueueEntries::LeftAt))
                    .col(integer(QueueEntries::Version))
                    .col(timestamp_with_time_zone(QueueEntries::CreatedAt))
                    .col(timestamp_with_time_zone(QueueEntries::UpdatedAt))
                    .check((
                        Alias::new("queue_entries_category_rank_check"),
                        Expr::col(QueueEntries::CategoryRank).between(0, 4),
                    ))
                    // The appointment's start is there exactly when the appointment rule set the deadline.
                    .check((
                        Alias::new("queue_entries_rule_check"),
                        walk_in.or(appointment),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("queue_entries_clinic_id_fkey")
                            .from(QueueEntries::Table, QueueEntries::ClinicId)
                            .to(Clinics::Table, Clinics::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(&mut same_clinic_fk(
                        "queue_entries_patient_fkey",
                        QueueEntries::Table,
                        QueueEntries::PatientId,
                        (Patients::Table, Patients::ClinicId, Patients::Id),
                    ))
                    .foreign_key(&mut same_clinic_fk(
                        "queue_entries_practitioner_fkey",
                        QueueEntries::Table,
                        QueueEntries::PractitionerId,
                        (
                            Practitioners::Table,
                            Practitioners::ClinicId,
                            Practitioners::Id,
                        ),
                    ))
                    .foreign_key(&mut same_clinic_fk(
                        "queue_entries_called_by_fkey",
                        QueueEntries::Table,
                        QueueEntries::CalledBy,
                        (
                            Practitioners::Table,
                            Practitioners::ClinicId,
                            Practitioners::Id,
                        ),
                    ))
                    .foreign_key(&mut same_clinic_fk(
                        "queue_entries_appointment_fkey",
                        QueueEntries::Table,
                        QueueEntries::AppointmentId,
                        (
                            Appointments::Table,
                            Appointments::ClinicId,
                            Appointments::Id,
                        ),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(clinic_id_key(
                "queue_entries_clinic_id_id_key",
                QueueEntries::Table,
            ))
            .await?;
        for (name, cols) in [
            // The serve order: earliest deadline, then the more urgent, then arrival, then id.
            (
                "queue_entries_serve_order_idx",
                &[
                    "clinic_id",
                    "status",
                    "deadline",
                    "category_rank",
                    "arrived_at",
                    "id",
                ][..],
            ),
            (
                "queue_entries_clinic_id_appointment_id_idx",
                &["clinic_id", "appointment_id"][..],
            ),
            (
                "queue_entries_clinic_id_arrived_at_idx",
                &["clinic_id", "arrived_at"][..],
            ),
        ] {
            manager
                .create_index(index(name, QueueEntries::Table, cols))
                .await?;
        }
        // Partial unique indexes work the same on both databases; rows without an
        // appointment (null) never collide.
        manager
            .create_index(
                index(
                    ONE_OPEN_ENTRY_PER_APPOINTMENT,
                    QueueEntries::Table,
                    &["clinic_id", "appointment_id"],
                )
                .unique()
                .and_where(Expr::col(QueueEntries::Status).is_in(OPEN_STATUSES))
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Encounters::Table)
                    .col(pk_uuid(Encounters::Id))
                    .col(uuid(Encounters::ClinicId))
                    .col(uuid(Encounters::PatientId))
                    .col(uuid(Encounters::PractitionerId))
                    .col(uuid_null(Encounters::AppointmentId))
                    .col(uuid_null(Encounters::QueueEntryId))
                    .col(timestamp_with_time_zone(Encounters::StartedAt))
                    .col(timestamp_with_time_zone_null(Encounters::EndedAt))
                    .col(text_null(Encounters::Notes))
                    .col(integer(Encounters::Version))
                    .col(timestamp_with_time_zone(Encounters::CreatedAt))
                    .col(timestamp_with_time_zone(Encounters::UpdatedAt))
                    .check((
                        Alias::new("encounters_interval_check"),
                        Expr::col(Encounters::EndedAt)
                            .is_null()
                            .or(Expr::col(Encounters::EndedAt)
                                .gte(Expr::col(Encounters::StartedAt))),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("encounters_clinic_id_fkey")
                            .from(Encounters::Table, Encounters::ClinicId)
                            .to(Clinics::Table, Clinics::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(&mut same_clinic_fk(
                        "encounters_patient_fkey",
                        Encounters::Table,
                        Encounters::PatientId,
                        (Patients::Table, Patients::ClinicId, Patients::Id),
                    ))
                    .foreign_key(&mut same_clinic_fk(
                        "encounters_practitioner_fkey",
                        Encounters::Table,
                        Encounters::PractitionerId,
                        (
                            Practitioners::Table,
                            Practitioners::ClinicId,
                            Practitioners::Id,
                        ),
                    ))
                    .foreign_key(&mut same_clinic_fk(
                        "encounters_appointment_fkey",
                        Encounters::Table,
                        Encounters::AppointmentId,
                        (
                            Appointments::Table,
                            Appointments::ClinicId,
                            Appointments::Id,
                        ),
                    ))
                    .foreign_key(&mut same_clinic_fk(
                        "encounters_queue_entry_fkey",
                        Encounters::Table,
                        Encounters::QueueEntryId,
                        (
                            QueueEntries::Table,
                            QueueEntries::ClinicId,
                            QueueEntries::Id,
                        ),
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "encounters_clinic_id_patient_id_started_at_idx",
                &["clinic_id", "patient_id", "started_at"][..],
            ),
            (
                "encounters_clinic_id_queue_entry_id_idx",
                &["clinic_id", "queue_entry_id"][..],
            ),
            (
                "encounters_clinic_id_ended_at_idx",
                &["clinic_id", "ended_at"][..],
            ),
        ] {
            manager
                .create_index(index(name, Encounters::Table, cols))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents; indexes and constraints go with their tables.
        for table in [
            Encounters::Table.into_iden(),
            QueueEntries::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("appointments_clinic_id_id_key")
                    .table(Appointments::Table)
                    .to_owned(),
            )
            .await?;
        for (column, _) in clinic_columns() {
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
