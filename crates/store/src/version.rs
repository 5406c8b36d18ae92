//! Optimistic concurrency: an update that applies only while the row still has the version
//! its writer read.

use clinicflow_ports::{RepoError, Tx};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryTrait,
};

use crate::error::repo_error;
use crate::transaction::{carry, db};

/// Writes `changes` to the row that `row` selects (by id, clinic and, where rows are
/// soft-deleted, liveness) if its `version` column is still `expected`.
///
/// When nothing was written, a second query tells the two failures of the contract apart:
/// [`RepoError::StaleVersion`] when the row is there at another version, [`RepoError::NotFound`]
/// when it is not there at all (unknown, in another clinic, or soft-deleted).
pub(crate) async fn update_versioned<E>(
    tx: &mut Tx,
    row: Condition,
    version: E::Column,
    expected: i32,
    changes: E::ActiveModel,
) -> Result<(), RepoError>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E>,
    E::Model: Sync,
{
    let mut update = E::update_many()
        .set(changes)
        .filter(row.clone())
        .filter(version.eq(expected))
        .into_query();
    carry(tx, &mut update);
    let txn = db(tx);
    let updated = txn.execute(&update).await.map_err(repo_error)?;
    if updated.rows_affected() > 0 {
        return Ok(());
    }
    let exists = E::find().filter(row).count(txn).await.map_err(repo_error)?;
    Err(if exists > 0 {
        RepoError::StaleVersion
    } else {
        RepoError::NotFound
    })
}
