//! Pagination shared by every list: page numbers (one count, then one page in a total
//! order) and keyset pages (the rows strictly after a position in that order, no count).

use clinicflow_domain::PageRequest;
use clinicflow_ports::RepoError;
use sea_orm::sea_query::{Alias, Expr, Query, SelectStatement};
use sea_orm::{
    Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Select,
};

use crate::error::repo_error;

/// The total number of rows `query` selects, and the rows of `page` once `order` (which
/// must make the order total, ending with the id) is applied.
pub(crate) async fn page_rows<E>(
    txn: &crate::transaction::Conn,
    query: Select<E>,
    order: impl FnOnce(Select<E>) -> Select<E>,
    page: PageRequest,
) -> Result<(Vec<E::Model>, u64), RepoError>
where
    E: EntityTrait,
    E::Model: Sync,
{
    // Counted before ordering: the count needs no ORDER BY.
    let total = query.clone().count(txn).await.map_err(repo_error)?;
    let rows = order(query)
        .offset(page.offset())
        .limit(u64::from(page.size()))
        .all(txn)
        .await
        .map_err(repo_error)?;
    Ok((rows, total))
}

/// Up to `limit` rows of `query` in `order` (which must make the order total, ending with the
/// id), only those that `after` matches when given: the condition that holds exactly for the
/// rows following a keyset position in that same order.
pub(crate) fn keyset_query<E>(
    query: Select<E>,
    order: impl FnOnce(Select<E>) -> Select<E>,
    after: Option<Condition>,
    limit: u32,
) -> Select<E>
where
    E: EntityTrait,
{
    let query = match after {
        Some(after) => query.filter(after),
        None => query,
    };
    order(query).limit(u64::from(limit))
}

/// How many rows `query` selects: `SELECT COUNT(*)` over it as a derived table.
pub(crate) async fn count_rows(
    txn: &crate::transaction::Conn,
    query: SelectStatement,
) -> Result<u64, RepoError> {
    let count = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from_subquery(query, Alias::new("counted"))
        .to_owned();
    let row = txn
        .query_one(&count)
        .await
        .map_err(repo_error)?
        .ok_or_else(|| RepoError::Other("COUNT(*) answered no row".into()))?;
    let count: i64 = row.try_get_by_index(0).map_err(repo_error)?;
    u64::try_from(count).map_err(|_| RepoError::Other("a negative COUNT(*)".into()))
}
