//! clinicflow's database schema, as sea-orm-migration migrations that run on both
//! SQLite and PostgreSQL.
//!
//! Tables are built with SeaQuery's schema builder so one migration serves both
//! databases; what only PostgreSQL can do (the `btree_gist` exclusion constraints that
//! keep active appointments from overlapping, the `C` collation of the name-search keys)
//! is raw SQL guarded by the backend, and so are the triggers that keep the audit log
//! append-only (they differ in syntax on the two databases). Partial indexes (one open queue
//! entry per appointment and per patient, the outbox's pending messages) work on both. Only `clinicflow-store`
//! depends on this crate; it must never depend on the domain, the services or any other
//! crate of the workspace.

use sea_orm_migration::prelude::*;

/// Applies and reverts [`Migrator`]'s migrations (`Migrator::up(&db, None)`).
pub use sea_orm_migration::MigratorTrait;

mod m20260101_000001_initial_schema;
mod m20260301_000002_audit_log_and_refresh_tokens;
mod m20260401_000003_queue_and_encounters;
mod m20260501_000004_outbox;
mod m20260601_000005_clinic_notifications;
mod m20260701_000006_appointments_unattended_index;
mod m20261201_000007_live_appointment_indexes;
mod m20261201_000008_queue_recalled_at;
mod m20261201_000009_patient_search_covering_indexes;
mod m20261201_000010_idempotency_keys;
mod m20261203_000011_user_versions;
mod m20261203_000012_lifecycle;
mod m20261203_000013_clinic_versions;
mod m20261204_000014_patient_search_index;
mod m20261204_000015_appointment_indexes;
mod m20261204_000016_patient_search_match_order;

/// Every migration of clinicflow, in the order they apply.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_initial_schema::Migration),
            Box::new(m20260301_000002_audit_log_and_refresh_tokens::Migration),
            Box::new(m20260401_000003_queue_and_encounters::Migration),
            Box::new(m20260501_000004_outbox::Migration),
            Box::new(m20260601_000005_clinic_notifications::Migration),
            Box::new(m20260701_000006_appointments_unattended_index::Migration),
            Box::new(m20261201_000007_live_appointment_indexes::Migration),
            Box::new(m20261201_000008_queue_recalled_at::Migration),
            Box::new(m20261201_000009_patient_search_covering_indexes::Migration),
            Box::new(m20261201_000010_idempotency_keys::Migration),
            Box::new(m20261203_000011_user_versions::Migration),
            Box::new(m20261203_000012_lifecycle::Migration),
            Box::new(m20261203_000013_clinic_versions::Migration),
            Box::new(m20261204_000014_patient_search_index::Migration),
            Box::new(m20261204_000015_appointment_indexes::Migration),
            Box::new(m20261204_000016_patient_search_match_order::Migration),
        ]
    }
}
