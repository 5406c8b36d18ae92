//! Page-number pagination shared by every list: one count, then one page in a total order.

use clinicflow_domain::PageRequest;
use clinicflow_ports::RepoError;
use sea_orm::{DatabaseTransaction, EntityTrait, PaginatorTrait, QuerySelect, Select};

use crate::error::repo_error;

/// The total number of rows `query` selects, and the rows of `page` once `order` (which
/// must make the order total, ending with the id) is applied.
pub(crate) async fn page_rows<E>(
    txn: &DatabaseTransaction,
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
