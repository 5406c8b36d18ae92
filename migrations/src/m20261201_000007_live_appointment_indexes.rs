//! The last two appointment indexes become partial on `deleted_at IS NULL`, like the others.
//!
//! Every appointment query reads live rows only, so soft-deleted appointments had a place in
//! `(clinic_id, patient_id, status)` and `(clinic_id, status, created_at)` that no query
//! could use. Each is rebuilt under its own name, so the schema reads the same afterwards.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Appointments {
    Table,
    ClinicId,
    PatientId,
    Status,
    CreatedAt,
    DeletedAt,
}

const PATIENT_STATUS: &str = "appointments_clinic_id_patient_id_status_idx";
const STATUS_CREATED: &str = "appointments_clinic_id_status_created_at_idx";

fn drop(name: &str) -> IndexDropStatement {
    Index::drop()
        .name(name)
        .table(Appointments::Table)
        .if_exists()
        .to_owned()
}

fn create(name: &str, cols: [Appointments; 3], live_only: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(Appointments::Table);
    for col in cols {
        index.col(col);
    }
    if live_only {
        index.and_where(Expr::col(Appointments::DeletedAt).is_null());
    }
    index
}

async fn rebuild(manager: &SchemaManager<'_>, live_only: bool) -> Result<(), DbErr> {
    for (name, cols) in [
        (
            PATIENT_STATUS,
            [
                Appointments::ClinicId,
                Appointments::PatientId,
                Appointments::Status,
            ],
        ),
        (
            STATUS_CREATED,
            [
                Appointments::ClinicId,
                Appointments::Status,
                Appointments::CreatedAt,
            ],
        ),
    ] {
        manager.drop_index(drop(name)).await?;
        manager.create_index(create(name, cols, live_only)).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, false).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
