//! The initial schema: clinics, users, patients, practitioners, schedules and appointments.
//!
//! Every row but a clinic's carries `clinic_id`, and child rows reference their parent
//! through `(clinic_id, id)`, so the database itself refuses a link across clinics.
//! Constraint names are part of the store's error contract (it maps violations by name):
//! change them only together with `clinicflow-store`'s `error.rs`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    boolean, date, date_null, integer, integer_null, pk_uuid, small_integer, text, text_null,
    timestamp_with_time_zone, timestamp_with_time_zone_null, uuid, uuid_null,
};
use sea_orm_migration::sea_orm::DbBackend;

/// Statuses in which an appointment holds its time; mirrors `AppointmentStatus::is_active`.
const ACTIVE_STATUSES: &str = "'booked', 'confirmed', 'checked_in', 'in_progress'";

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Clinics {
    Table,
    Id,
    Name,
    TimeZone,
    NoShowGraceMinutes,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    ClinicId,
    Email,
    PasswordHash,
    Role,
    PractitionerId,
    Active,
    FailedLogins,
    LockedUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Patients {
    Table,
    Id,
    ClinicId,
    GivenName,
    FamilyName,
    NameKey,
    NameKeyAlt,
    BirthDate,
    Sex,
    Phone,
    Email,
    EmergencyContactName,
    EmergencyContactPhone,
    InsurancePayer,
    InsuranceMemberId,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Practitioners {
    Table,
    Id,
    ClinicId,
    GivenName,
    FamilyName,
    Department,
    SlotMinutes,
    BufferMinutes,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PractitionerSpecialties {
    Table,
    PractitionerId,
    ClinicId,
    Specialty,
}

#[derive(DeriveIden)]
enum Schedules {
    Table,
    PractitionerId,
    ClinicId,
    ValidFrom,
    ValidTo,
}

#[derive(DeriveIden)]
enum ScheduleRules {
    Table,
    Id,
    ClinicId,
    PractitionerId,
    Weekday,
    StartMinute,
    EndMinute,
    SlotMinutes,
}

#[derive(DeriveIden)]
enum ScheduleExceptions {
    Table,
    Id,
    ClinicId,
    PractitionerId,
    Kind,
    StartsAt,
    EndsAt,
    Reason,
}

#[derive(DeriveIden)]
enum Appointments {
    Table,
    Id,
    ClinicId,
    PatientId,
    PractitionerId,
    StartsAt,
    EndsAt,
    Urgency,
    Reason,
    Status,
    Overbooked,
    Version,
    RescheduledFrom,
    RescheduledTo,
    CancelledBy,
    CancelReason,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

/// `FOREIGN KEY (clinic_id) REFERENCES clinics (id)`.
fn clinic_fk(name: &str, table: impl IntoTableRef) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, Alias::new("clinic_id"))
        .to(Clinics::Table, Clinics::Id)
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

/// `FOREIGN KEY (clinic_id, practitioner_id) REFERENCES practitioners (clinic_id, id)`: the
/// practitioner must belong to the same clinic.
fn practitioner_fk(
    name: &str,
    table: impl IntoTableRef,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(
            table,
            (Alias::new("clinic_id"), Alias::new("practitioner_id")),
        )
        .to(
            Practitioners::Table,
            (Practitioners::ClinicId, Practitioners::Id),
        )
        .on_delete(on_delete)
        .to_owned()
}

/// A plain (or partial, with `live_only`) index named `name`.
fn index(
    name: &str,
    table: impl IntoIden + 'static,
    cols: &[&'static str],
    live_only: bool,
) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(Alias::new(*col));
    }
    if live_only {
        // Soft-deleted rows are never read, so they need no place in the index.
        index.and_where(Expr::col(Alias::new("deleted_at")).is_null());
    }
    index
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let postgres = manager.get_database_backend() == DbBackend::Postgres;

        manager
            .create_table(
                Table::create()
                    .table(Clinics::Table)
                    .col(pk_uuid(Clinics::Id))
                    .col(text(Clinics::Name))
                    .col(text(Clinics::TimeZone))
                    .col(integer(Clinics::NoShowGraceMinutes))
                    .col(timestamp_with_time_zone(Clinics::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("clinics_name_idx", Clinics::Table, &["name"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Practitioners::Table)
                    .col(pk_uuid(Practitioners::Id))
                    .col(uuid(Practitioners::ClinicId))
                    .col(text(Practitioners::GivenName))
                    .col(text(Practitioners::FamilyName))
                    .col(text_null(Practitioners::Department))
                    .col(integer(Practitioners::SlotMinutes))
                    .col(integer(Practitioners::BufferMinutes))
                    .col(integer(Practitioners::Version))
                    .col(timestamp_with_time_zone(Practitioners::CreatedAt))
                    .col(timestamp_with_time_zone(Practitioners::UpdatedAt))
                    .index(
                        Index::create()
                            .name("practitioners_clinic_id_id_key")
                            .unique()
                            .col(Practitioners::ClinicId)
                            .col(Practitioners::Id),
                    )
                    .foreign_key(&mut clinic_fk(
                        "practitioners_clinic_id_fkey",
                        Practitioners::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "practitioners_clinic_id_name_idx",
                Practitioners::Table,
                &["clinic_id", "family_name", "given_name", "id"],
                false,
            ))
            .await?;
        manager
            .create_index(index(
                "practitioners_clinic_id_department_idx",
                Practitioners::Table,
                &["clinic_id", "department"],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PractitionerSpecialties::Table)
                    .col(uuid(PractitionerSpecialties::PractitionerId))
                    .col(uuid(PractitionerSpecialties::ClinicId))
                    .col(text(PractitionerSpecialties::Specialty))
                    .primary_key(
                        Index::create()
                            .name("practitioner_specialties_pkey")
                            .col(PractitionerSpecialties::PractitionerId)
                            .col(PractitionerSpecialties::Specialty),
                    )
                    .foreign_key(&mut practitioner_fk(
                        "practitioner_specialties_practitioner_fkey",
                        PractitionerSpecialties::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "practitioner_specialties_clinic_id_specialty_idx",
                PractitionerSpecialties::Table,
                &["clinic_id", "specialty"],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(uuid(Users::ClinicId))
                    .col(text(Users::Email))
                    .col(text(Users::PasswordHash))
                    .col(text(Users::Role))
                    .col(uuid_null(Users::PractitionerId))
                    .col(boolean(Users::Active))
                    .col(integer(Users::FailedLogins).default(0))
                    .col(timestamp_with_time_zone_null(Users::LockedUntil))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .index(
                        Index::create()
                            .name("users_clinic_id_email_key")
                            .unique()
                            .col(Users::ClinicId)
                            .col(Users::Email),
                    )
                    .foreign_key(&mut clinic_fk("users_clinic_id_fkey", Users::Table))
                    .foreign_key(&mut practitioner_fk(
                        "users_practitioner_fkey",
                        Users::Table,
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        // Login looks a user up by e-mail before it knows the clinic.
        manager
            .create_index(index("users_email_idx", Users::Table, &["email"], false))
            .await?;

        // Name-search keys are matched by a `>= p AND < p_next` range, which is only a
        // prefix match under a byte-wise collation; SQLite compares text byte-wise already.
        let name_key = |col: Patients| {
            let mut def = text(col);
            if postgres {
                def.extra(r#"COLLATE "C""#);
            }
            def
        };
        manager
            .create_table(
                Table::create()
                    .table(Patients::Table)
                    .col(pk_uuid(Patients::Id))
                    .col(uuid(Patients::ClinicId))
                    .col(text(Patients::GivenName))
                    .col(text(Patients::FamilyName))
                    .col(name_key(Patients::NameKey))
                    .col(name_key(Patients::NameKeyAlt))
                    .col(date(Patients::BirthDate))
                    .col(text(Patients::Sex))
                    .col(text_null(Patients::Phone))
                    .col(text_null(Patients::Email))
                    .col(text_null(Patients::EmergencyContactName))
                    .col(text_null(Patients::EmergencyContactPhone))
                    .col(text_null(Patients::InsurancePayer))
                    .col(text_null(Patients::InsuranceMemberId))
                    .col(integer(Patients::Version))
                    .col(timestamp_with_time_zone(Patients::CreatedAt))
                    .col(timestamp_with_time_zone(Patients::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Patients::DeletedAt))
                    .index(
                        Index::create()
                            .name("patients_clinic_id_id_key")
                            .unique()
                            .col(Patients::ClinicId)
                            .col(Patients::Id),
                    )
                    .foreign_key(&mut clinic_fk("patients_clinic_id_fkey", Patients::Table))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "patients_clinic_id_name_idx",
                &["clinic_id", "family_name", "given_name", "id"][..],
            ),
            ("patients_clinic_id_phone_idx", &["clinic_id", "phone"][..]),
            ("patients_clinic_id_email_idx", &["clinic_id", "email"][..]),
            (
                "patients_clinic_id_name_key_idx",
                &["clinic_id", "name_key"][..],
            ),
            (
                "patients_clinic_id_name_key_alt_idx",
                &["clinic_id", "name_key_alt"][..],
            ),
        ] {
            manager
                .create_index(index(name, Patients::Table, cols, true))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Schedules::Table)
                    .col(pk_uuid(Schedules::PractitionerId))
                    .col(uuid(Schedules::ClinicId))
                    .col(date(Schedules::ValidFrom))
                    .col(date_null(Schedules::ValidTo))
                    .foreign_key(&mut practitioner_fk(
                        "schedules_practitioner_fkey",
                        Schedules::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ScheduleRules::Table)
                    .col(pk_uuid(ScheduleRules::Id))
                    .col(uuid(ScheduleRules::ClinicId))
                    .col(uuid(ScheduleRules::PractitionerId))
                    .col(small_integer(ScheduleRules::Weekday))
                    .col(integer(ScheduleRules::StartMinute))
                    .col(integer(ScheduleRules::EndMinute))
                    .col(integer_null(ScheduleRules::SlotMinutes))
                    .check((
                        Alias::new("schedule_rules_weekday_check"),
                        Expr::col(ScheduleRules::Weekday).between(1, 7),
                    ))
                    .check((
                        Alias::new("schedule_rules_window_check"),
                        Expr::col(ScheduleRules::EndMinute)
                            .gt(Expr::col(ScheduleRules::StartMinute)),
                    ))
                    .foreign_key(&mut practitioner_fk(
                        "schedule_rules_practitioner_fkey",
                        ScheduleRules::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "schedule_rules_clinic_id_practitioner_id_idx",
                ScheduleRules::Table,
                &["clinic_id", "practitioner_id"],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ScheduleExceptions::Table)
                    .col(pk_uuid(ScheduleExceptions::Id))
                    .col(uuid(ScheduleExceptions::ClinicId))
                    .col(uuid(ScheduleExceptions::PractitionerId))
                    .col(text(ScheduleExceptions::Kind))
                    .col(timestamp_with_time_zone(ScheduleExceptions::StartsAt))
                    .col(timestamp_with_time_zone(ScheduleExceptions::EndsAt))
                    .col(text_null(ScheduleExceptions::Reason))
                    .check((
                        Alias::new("schedule_exceptions_interval_check"),
                        Expr::col(ScheduleExceptions::EndsAt)
                            .gt(Expr::col(ScheduleExceptions::StartsAt)),
                    ))
                    .foreign_key(&mut practitioner_fk(
                        "schedule_exceptions_practitioner_fkey",
                        ScheduleExceptions::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "schedule_exceptions_clinic_id_practitioner_id_starts_at_idx",
                ScheduleExceptions::Table,
                &["clinic_id", "practitioner_id", "starts_at"],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Appointments::Table)
                    .col(pk_uuid(Appointments::Id))
                    .col(uuid(Appointments::ClinicId))
                    .col(uuid(Appointments::PatientId))
                    .col(uuid(Appointments::PractitionerId))
                    .col(timestamp_with_time_zone(Appointments::StartsAt))
                    .col(timestamp_with_time_zone(Appointments::EndsAt))
                    .col(text(Appointments::Urgency))
                    .col(text_null(Appointments::Reason))
                    .col(text(Appointments::Status))
                    .col(boolean(Appointments::Overbooked))
                    .col(integer(Appointments::Version))
                    // Reschedule links are plain ids: the two rows are written in either
                    // order within one transaction, so a foreign key would get in the way.
                    .col(uuid_null(Appointments::RescheduledFrom))
                    .col(uuid_null(Appointments::RescheduledTo))
                    .col(uuid_null(Appointments::CancelledBy))
                    .col(text_null(Appointments::CancelReason))
                    .col(timestamp_with_time_zone(Appointments::CreatedAt))
                    .col(timestamp_with_time_zone(Appointments::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Appointments::DeletedAt))
                    .check((
                        Alias::new("appointments_interval_check"),
                        Expr::col(Appointments::EndsAt).gt(Expr::col(Appointments::StartsAt)),
                    ))
                    .foreign_key(&mut clinic_fk(
                        "appointments_clinic_id_fkey",
                        Appointments::Table,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("appointments_patient_fkey")
                            .from(
                                Appointments::Table,
                                (Appointments::ClinicId, Appointments::PatientId),
                            )
                            .to(Patients::Table, (Patients::ClinicId, Patients::Id))
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(&mut practitioner_fk(
                        "appointments_practitioner_fkey",
                        Appointments::Table,
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, cols, live_only) in [
            (
                "appointments_clinic_id_practitioner_id_starts_at_idx",
                &["clinic_id", "practitioner_id", "starts_at"][..],
                true,
            ),
            (
                "appointments_clinic_id_patient_id_starts_at_idx",
                &["clinic_id", "patient_id", "starts_at"][..],
                true,
            ),
            (
                "appointments_clinic_id_patient_id_status_idx",
                &["clinic_id", "patient_id", "status"][..],
                false,
            ),
            (
                "appointments_clinic_id_status_created_at_idx",
                &["clinic_id", "status", "created_at"][..],
                false,
            ),
            (
                "appointments_clinic_id_starts_at_idx",
                &["clinic_id", "starts_at", "id"][..],
                true,
            ),
        ] {
            manager
                .create_index(index(name, Appointments::Table, cols, live_only))
                .await?;
        }

        if postgres {
            // SQLite has no exclusion constraints; there the store serializes writers with
            // BEGIN IMMEDIATE and the services check for overlap inside the transaction.
            let db = manager.get_connection();
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS btree_gist")
                .await?;
            for (name, party) in [
                ("appointments_practitioner_no_overlap", "practitioner_id"),
                ("appointments_patient_no_overlap", "patient_id"),
            ] {
                db.execute_unprepared(&format!(
                    "ALTER TABLE appointments ADD CONSTRAINT {name} \
                     EXCLUDE USING gist ({party} WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&) \
                     WHERE (status IN ({ACTIVE_STATUSES}) AND deleted_at IS NULL)"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents; indexes and constraints go with their tables. The
        // btree_gist extension stays: other schemas of the database may use it.
        let tables: [DynIden; 9] = [
            Appointments::Table.into_iden(),
            ScheduleExceptions::Table.into_iden(),
            ScheduleRules::Table.into_iden(),
            Schedules::Table.into_iden(),
            Patients::Table.into_iden(),
            Users::Table.into_iden(),
            PractitionerSpecialties::Table.into_iden(),
            Practitioners::Table.into_iden(),
            Clinics::Table.into_iden(),
        ];
        for table in tables {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        // SQLite can create tables transactionally too, so a failed migration leaves nothing half-made.
        Some(true)
    }
}
