//! Query pieces every repository shares: reading rows back into domain values, and the row
//! lock that lets concurrent workers skip what another holds.

use clinicflow_ports::{RepoError, Tx};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{EntityTrait, QuerySelect, Select, UpdateMany};

use crate::Backend;
use crate::error::repo_error;
use crate::transaction::db;

/// Runs `query` in `tx` and parses every row with `parse`.
pub(crate) async fn all_parsed<E, T>(
    tx: &mut Tx,
    query: Select<E>,
    parse: impl Fn(E::Model) -> Result<T, RepoError>,
) -> Result<Vec<T>, RepoError>
where
    E: EntityTrait,
{
    query
        .all(db(tx))
        .await
        .map_err(repo_error)?
        .into_iter()
        .map(parse)
        .collect()
}

/// Locks the selected rows for the rest of the transaction, skipping rows another transaction
/// holds (PostgreSQL `FOR UPDATE SKIP LOCKED`). SQLite has no row locks; its `BEGIN IMMEDIATE`
/// already keeps other writers out, so the query is left as it is.
pub(crate) fn skip_locked<E: EntityTrait>(backend: Backend, query: Select<E>) -> Select<E> {
    match backend {
        Backend::Postgres => query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked),
        Backend::Sqlite => query,
    }
}

/// Runs an update meant for one row; `NotFound` when it matched none (absent, or of another clinic).
pub(crate) async fn update_one<E: EntityTrait>(
    tx: &mut Tx,
    update: UpdateMany<E>,
) -> Result<(), RepoError> {
    let updated = update.exec(db(tx)).await.map_err(repo_error)?;
    if updated.rows_affected == 0 {
        return Err(RepoError::NotFound);
    }
    Ok(())
}
