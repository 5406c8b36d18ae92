//! Query pieces every repository shares: reading rows back into domain values, and the row
//! lock that lets concurrent workers skip what another holds.

use std::sync::Arc;

use clinicflow_ports::{RepoError, Tx};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryResult, QuerySelect, QueryTrait,
    RuntimeErr, Select, UpdateMany,
};

use crate::Backend;
use crate::error::repo_error;
use crate::transaction::{Conn, db};

/// A model read from its row by hand on PostgreSQL, for the tables whose lists are read most.
///
/// SeaORM's derived decoding looks every column up by name through its own layer and, for
/// each NULL column, formats an error message it then discards: on a page of fifty
/// appointments that was a quarter of the server's time. sqlx decodes an `Option` without
/// either. SQLite keeps the derived decoding (its rows are read in-process).
pub(crate) trait Decode: FromQueryResult {
    /// The model of a PostgreSQL row, each column read by sqlx.
    fn decode_pg(row: &sea_orm::sqlx::postgres::PgRow) -> Result<Self, sea_orm::sqlx::Error>;

    /// The model of `row`, by hand on PostgreSQL and by SeaORM elsewhere.
    fn decode(row: &QueryResult) -> Result<Self, DbErr> {
        match row.try_as_pg_row() {
            Some(pg) => {
                Self::decode_pg(pg).map_err(|e| DbErr::Query(RuntimeErr::SqlxError(Arc::new(e))))
            }
            None => Self::from_query_result(row, ""),
        }
    }
}

/// Every row of `query` on `conn`, decoded by [`Decode`].
pub(crate) async fn all_decoded<E>(
    conn: &Conn,
    query: Select<E>,
) -> Result<Vec<E::Model>, RepoError>
where
    E: EntityTrait,
    E::Model: Decode,
{
    let statement = query.build(conn.get_database_backend());
    conn.query_all_raw(statement)
        .await
        .map_err(repo_error)?
        .iter()
        .map(E::Model::decode)
        .collect::<Result<_, _>>()
        .map_err(repo_error)
}

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
