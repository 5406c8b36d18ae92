//! Where a request's time goes, for the `Server-Timing` header: adapters add the time they
//! spend (in database transactions, in the cache) to the request being served, if any.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

tokio::task_local! {
    static SPENT: Arc<Spent>;
}

/// Time one request spent in the adapters.
#[derive(Debug, Default)]
pub struct Spent {
    db_micros: AtomicU64,
    cache_micros: AtomicU64,
}

impl Spent {
    /// Time holding database transactions (waiting for a connection included).
    pub fn db(&self) -> Duration {
        Duration::from_micros(self.db_micros.load(Ordering::Relaxed))
    }

    /// Time in cache calls.
    pub fn cache(&self) -> Duration {
        Duration::from_micros(self.cache_micros.load(Ordering::Relaxed))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Runs `work` with what the adapters spend added to `spent`.
pub async fn measured<F: Future>(spent: Arc<Spent>, work: F) -> F::Output {
    SPENT.scope(spent, work).await
}

/// Adds database time to the current request; outside a request (workers) it goes nowhere.
pub fn add_db(d: Duration) {
    let _ = SPENT.try_with(|s| s.db_micros.fetch_add(micros(d), Ordering::Relaxed));
}

/// Adds cache time to the current request.
pub fn add_cache(d: Duration) {
    let _ = SPENT.try_with(|s| s.cache_micros.fetch_add(micros(d), Ordering::Relaxed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn time_adds_up_inside_the_scope_only() {
        add_db(Duration::from_millis(5));
        let spent = Arc::new(Spent::default());
        measured(spent.clone(), async {
            add_db(Duration::from_millis(2));
            add_db(Duration::from_millis(3));
            add_cache(Duration::from_micros(40));
        })
        .await;
        assert_eq!(spent.db(), Duration::from_millis(5));
        assert_eq!(spent.cache(), Duration::from_micros(40));
    }
}
