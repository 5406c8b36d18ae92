//! Appointment indexes, each proven by a read the store issues (issue 13).
//!
//! - `(clinic_id, patient_id, status)` and `(clinic_id, status, created_at)` go: no query of
//!   the store filters a patient's appointments by status without a start range (that is
//!   `(clinic_id, patient_id, starts_at)`), and none orders by creation. Every booking,
//!   status move and reschedule paid for keeping them.
//! - `(clinic_id, status, starts_at)` (migration 6, for the no-show sweeper) becomes
//!   `appointments_unattended_idx`: `(clinic_id, starts_at, id)` over the live rows still
//!   booked or confirmed. PostgreSQL never chose the old one for the sweeper's
//!   `status IN ('booked', 'confirmed') … ORDER BY starts_at, id LIMIT n`: an `IN` on its second
//!   column gives no start order, so the planner walked `(clinic_id, starts_at, id)` through
//!   the clinic's whole history instead, filtering on status. The partial index is in the
//!   sweeper's order and holds only the rows it looks for (the sweeper writes the statuses into
//!   its SQL as this predicate does, so the planner can prove the index applies).
//!
//! The contract test `every_appointment_index_serves_a_read_the_store_issues` EXPLAINs each
//! read on a year of appointments and fails on an index that no read uses. `down` builds the
//! old indexes again as migrations 6 and 7 left them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Appointments {
    Table,
    Id,
    ClinicId,
    PatientId,
    Status,
    StartsAt,
    CreatedAt,
    DeletedAt,
}

const PATIENT_STATUS: &str = "appointments_clinic_id_patient_id_status_idx";
const STATUS_CREATED: &str = "appointments_clinic_id_status_created_at_idx";
const STATUS_STARTS: &str = "appointments_clinic_id_status_starts_at_idx";
const UNATTENDED: &str = "appointments_unattended_idx";

fn drop(name: &str) -> IndexDropStatement {
    Index::drop()
        .name(name)
        .table(Appointments::Table)
        .if_exists()
        .to_owned()
}

/// A btree index over `cols` of the live appointments (and only those `also` selects).
fn create(name: &str, cols: [Appointments; 3], also: Option<SimpleExpr>) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(Appointments::Table);
    for col in cols {
        index.col(col);
    }
    index.and_where(Expr::col(Appointments::DeletedAt).is_null());
    if let Some(also) = also {
        index.and_where(also);
    }
    index
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [PATIENT_STATUS, STATUS_CREATED, STATUS_STARTS] {
            manager.drop_index(drop(name)).await?;
        }
        manager
            .create_index(create(
                UNATTENDED,
                [
                    Appointments::ClinicId,
                    Appointments::StartsAt,
                    Appointments::Id,
                ],
                Some(Expr::col(Appointments::Status).is_in(["booked", "confirmed"])),
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(drop(UNATTENDED)).await?;
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
            (
                STATUS_STARTS,
                [
                    Appointments::ClinicId,
                    Appointments::Status,
                    Appointments::StartsAt,
                ],
            ),
        ] {
            manager.create_index(create(name, cols, None)).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
