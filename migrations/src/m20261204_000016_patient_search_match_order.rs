//! A name-prefix search is ordered by the key it matched, then the id, and each search key's
//! index is in that order: `(clinic_id, name_key, id)` and `(clinic_id, name_key_alt, id,
//! name_key)`, over the live rows. Each key's branch of a search reads its index range in
//! order and stops after a page, and the page is the two short ranges merged.
//!
//! Migration 14's key indexes carried the list order (family name, given name, id) after
//! the key instead, because a search was listed in that order: no index gives that order
//! for a prefix, so the database read every match's index entry (about 6,000 per keystroke
//! on the bulk seed) and sorted them to keep the first page. The `given family` key's index
//! still carries the `family given` key, so its branch leaves out what the first matched
//! without reading the table, and `deleted_at` (always null in these partial indexes) is
//! still a column because SQLite counts an index as covering only when it holds every
//! column the query names, `deleted_at IS NULL` included. ADR 0010 records the order.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Patients {
    Table,
    ClinicId,
    FamilyName,
    GivenName,
    Id,
    NameKey,
    NameKeyAlt,
    DeletedAt,
}

/// Migration 14's key indexes, in list order after the key.
const KEY_ORDER: &str = "patients_clinic_id_name_key_order_idx";
const ALT_KEY_ORDER: &str = "patients_clinic_id_name_key_alt_order_idx";
/// The key indexes in match order (the key, then the id).
const KEY_MATCH: &str = "patients_clinic_id_name_key_match_idx";
const ALT_KEY_MATCH: &str = "patients_clinic_id_name_key_alt_match_idx";

fn live_index(name: &str, cols: &[Patients]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(Patients::Table);
    for col in cols {
        index.col(*col);
    }
    // Soft-deleted rows are never listed, so they need no place in the index.
    index.and_where(Expr::col(Patients::DeletedAt).is_null());
    index
}

/// Drops the indexes named `drop` and creates `create`.
async fn replace(
    manager: &SchemaManager<'_>,
    drop: &[&str],
    create: &[(&str, &[Patients])],
) -> Result<(), DbErr> {
    for &name in drop {
        manager
            .drop_index(
                Index::drop()
                    .name(name)
                    .table(Patients::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
    }
    for &(name, cols) in create {
        manager.create_index(live_index(name, cols)).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Patients::*;
        replace(
            manager,
            &[KEY_ORDER, ALT_KEY_ORDER],
            &[
                (KEY_MATCH, &[ClinicId, NameKey, Id, DeletedAt]),
                (
                    ALT_KEY_MATCH,
                    &[ClinicId, NameKeyAlt, Id, NameKey, DeletedAt],
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Patients::*;
        replace(
            manager,
            &[KEY_MATCH, ALT_KEY_MATCH],
            &[
                (
                    KEY_ORDER,
                    &[ClinicId, NameKey, FamilyName, GivenName, Id, DeletedAt],
                ),
                (
                    ALT_KEY_ORDER,
                    &[
                        ClinicId, NameKeyAlt, NameKey, FamilyName, GivenName, Id, DeletedAt,
                    ],
                ),
            ],
        )
        .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
