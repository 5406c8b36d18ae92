//! Cache invalidation that no use case can forget: every unit of work begun through the
//! services invalidates, once it has committed, the cache tags its writes touched.

use std::sync::Arc;

use async_trait::async_trait;
use clinicflow_ports::{Cache, Database, RepoError, Tx, TxMode};

/// A database whose transactions invalidate what they touched after committing.
pub(crate) struct Invalidating {
    pub inner: Arc<dyn Database>,
    pub cache: Arc<dyn Cache>,
}

#[async_trait]
impl Database for Invalidating {
    async fn begin(&self, mode: TxMode) -> Result<Tx, RepoError> {
        let mut tx = self.inner.begin(mode).await?;
        let cache = self.cache.clone();
        tx.set_after_commit(Arc::new(move |tags| {
            let cache = cache.clone();
            Box::pin(async move { cache.invalidate(&tags).await })
        }));
        Ok(tx)
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use clinicflow_ports::{FakeTransaction, MockCache, MockDatabase};

    use super::*;

    #[tokio::test]
    async fn touched_tags_are_invalidated_after_commit_and_only_then() {
        let mut db = MockDatabase::new();
        db.expect_begin()
            .returning(|_| Ok(FakeTransaction::counting(Arc::new(AtomicUsize::new(0)))));
        let mut cache = MockCache::new();
        cache
            .expect_invalidate()
            .times(1)
            .withf(|tags| tags == ["practitioner:1".to_owned()])
            .return_const(());
        let db = Invalidating {
            inner: Arc::new(db),
            cache: Arc::new(cache),
        };
        let mut committed = db.begin(TxMode::Write).await.expect("begun");
        committed.touch("practitioner:1".into());
        committed.touch("practitioner:1".into());
        committed.commit().await.expect("committed");
        // Rolled back: nothing changed, nothing is invalidated.
        let mut dropped = db.begin(TxMode::Write).await.expect("begun");
        dropped.touch("practitioner:2".into());
        drop(dropped);
        // Nothing touched: no call at all.
        db.begin(TxMode::Read)
            .await
            .expect("begun")
            .commit()
            .await
            .expect("committed");
    }
}
