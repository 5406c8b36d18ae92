//! The audit log and refresh tokens.
//!
//! `audit_events` is append-only: triggers refuse every `UPDATE` and `DELETE` (and, on
//! PostgreSQL, `TRUNCATE`), so the log cannot be rewritten through the application's own
//! database user either. It references only the clinic: a patient may be soft-deleted, and
//! the log must stay readable and independent of the rows it describes.
//!
//! `refresh_tokens` references its user through `(clinic_id, user_id)`, like every child
//! table, which needs a unique key on `users (clinic_id, id)`; this migration adds it.
//! `users.failed_logins` and `users.locked_until` already exist since the initial schema.
//!
//! This migration is self-contained (no helpers shared with the initial one), so editing
//! one migration can never change what another does.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    pk_uuid, text, timestamp_with_time_zone, timestamp_with_time_zone_null, uuid, uuid_null,
};
use sea_orm_migration::sea_orm::DbBackend;

/// What every refused change to the audit log fails with, on both databases.
const APPEND_ONLY: &str = "audit_events is append-only";

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Clinics {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    ClinicId,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    ClinicId,
    ActorId,
    ActorRole,
    Action,
    ResourceType,
    ResourceId,
    PatientId,
    At,
    RequestId,
    Outcome,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    FamilyId,
    UserId,
    ClinicId,
    TokenHash,
    IssuedAt,
    ExpiresAt,
    RotatedAt,
    RevokedAt,
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(pk_uuid(AuditEvents::Id))
                    .col(uuid(AuditEvents::ClinicId))
                    // The actor is a plain id too: the log outlives any change to the user.
                    .col(uuid(AuditEvents::ActorId))
                    .col(text(AuditEvents::ActorRole))
                    .col(text(AuditEvents::Action))
                    .col(text(AuditEvents::ResourceType))
                    .col(uuid_null(AuditEvents::ResourceId))
                    .col(uuid_null(AuditEvents::PatientId))
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(uuid_null(AuditEvents::RequestId))
                    .col(text(AuditEvents::Outcome))
                    .foreign_key(
                        ForeignKey::create()
                            .name("audit_events_clinic_id_fkey")
                            .from(AuditEvents::Table, AuditEvents::ClinicId)
                            .to(Clinics::Table, Clinics::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // Ids are UUIDv7, so `id` orders by time: the keyset pagination of the log walks
        // these indexes backwards from `before`.
        for (name, cols) in [
            ("audit_events_clinic_id_id_idx", &["clinic_id", "id"][..]),
            (
                "audit_events_clinic_id_patient_id_id_idx",
                &["clinic_id", "patient_id", "id"][..],
            ),
            (
                "audit_events_clinic_id_actor_id_id_idx",
                &["clinic_id", "actor_id", "id"][..],
            ),
            ("audit_events_clinic_id_at_idx", &["clinic_id", "at"][..]),
        ] {
            manager
                .create_index(index(name, AuditEvents::Table, cols))
                .await?;
        }

        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION audit_events_append_only() RETURNS trigger \
                     LANGUAGE plpgsql AS $$ \
                     BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END \
                     $$"
                ))
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_append_only \
                     BEFORE UPDATE OR DELETE ON audit_events \
                     FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
                )
                .await?;
                // TRUNCATE fires no row triggers, so it needs a statement trigger of its own.
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_no_truncate \
                     BEFORE TRUNCATE ON audit_events \
                     FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
                )
                .await?;
            }
            _ => {
                for (name, event) in [
                    ("audit_events_no_update", "UPDATE"),
                    ("audit_events_no_delete", "DELETE"),
                ] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {name} BEFORE {event} ON audit_events \
                         BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
                    ))
                    .await?;
                }
            }
        }

        // The parent key of `refresh_tokens_user_fkey`.
        manager
            .create_index(
                Index::create()
                    .name("users_clinic_id_id_key")
                    .table(Users::Table)
                    .col(Users::ClinicId)
                    .col(Users::Id)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(pk_uuid(RefreshTokens::Id))
                    .col(uuid(RefreshTokens::FamilyId))
                    .col(uuid(RefreshTokens::UserId))
                    .col(uuid(RefreshTokens::ClinicId))
                    .col(text(RefreshTokens::TokenHash))
                    .col(timestamp_with_time_zone(RefreshTokens::IssuedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RotatedAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
                    .index(
                        Index::create()
                            .name("refresh_tokens_token_hash_key")
                            .unique()
                            .col(RefreshTokens::TokenHash),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("refresh_tokens_user_fkey")
                            .from(
                                RefreshTokens::Table,
                                (RefreshTokens::ClinicId, RefreshTokens::UserId),
                            )
                            .to(Users::Table, (Users::ClinicId, Users::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("refresh_tokens_family_id_idx", &["family_id"][..]),
            (
                "refresh_tokens_clinic_id_user_id_idx",
                &["clinic_id", "user_id"][..],
            ),
        ] {
            manager
                .create_index(index(name, RefreshTokens::Table, cols))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Triggers go with their table; the trigger function and the users key do not.
        manager
            .drop_table(
                Table::drop()
                    .table(RefreshTokens::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("users_clinic_id_id_key")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(AuditEvents::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS audit_events_append_only()")
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
