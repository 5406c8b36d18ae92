//! A name-prefix search chooses its page inside the search-key indexes: each key's index
//! also carries the list-order columns (family name, given name, id), so the keyset page of
//! a search reads the sort keys of its matches from one key range per key and only the
//! page's own rows from the table.
//!
//! Before, PostgreSQL answered `name_key range OR name_key_alt range ORDER BY family_name,
//! given_name, id LIMIT 21` by walking the name-order index and reading every row from the
//! table until it had a page: half the clinic on average for a family-name prefix (tens of
//! milliseconds per keystroke at 100k patients). The `family given` key's index keeps the
//! other key too, so the search can leave out rows the first key already matched without
//! reading the table. On PostgreSQL the keys keep their `C` collation in the index, which
//! makes their `>= prefix AND < next` ranges exact prefix matches. `deleted_at` (always null
//! in these partial indexes) is a column too: SQLite counts an index as covering only when
//! it holds every column the query names, `deleted_at IS NULL` included.
//!
//! The name-order index loses the two keys migration 9 gave it: with them it was a covering
//! index for a search too, and SQLite (without statistics) chose to walk it, in list order,
//! through the whole clinic rather than read two key ranges and sort the matches. Only the
//! unsearched list walks it now.

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

/// The index names of migration 9's key indexes, and of the ones that replace them.
const KEY: &str = "patients_clinic_id_name_key_idx";
const ALT_KEY: &str = "patients_clinic_id_name_key_alt_idx";
const KEY_ORDER: &str = "patients_clinic_id_name_key_order_idx";
const ALT_KEY_ORDER: &str = "patients_clinic_id_name_key_alt_order_idx";
/// The name-order index, which serves the unsearched list.
const NAME_ORDER: &str = "patients_clinic_id_name_idx";

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
            &[KEY, ALT_KEY, NAME_ORDER],
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
                (NAME_ORDER, &[ClinicId, FamilyName, GivenName, Id]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Patients::*;
        replace(
            manager,
            &[KEY_ORDER, ALT_KEY_ORDER, NAME_ORDER],
            &[
                (KEY, &[ClinicId, NameKey]),
                (ALT_KEY, &[ClinicId, NameKeyAlt, NameKey]),
                (
                    NAME_ORDER,
                    &[ClinicId, FamilyName, GivenName, Id, NameKey, NameKeyAlt],
                ),
            ],
        )
        .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
