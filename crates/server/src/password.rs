//! argon2id password hashing on the blocking pool, so hashing never stalls request threads.
//!
//! Each hash costs about 19 MiB and tens of milliseconds of one core. Without a bound, a login
//! flood would start one blocking thread per attempt (up to tokio's 512), starving every other
//! blocking task and the memory; so at most one hash per core runs at once, and the others wait
//! their turn without holding a thread.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use async_trait::async_trait;
use clinicflow_ports::{BoxError, PasswordHasher};
use tokio::sync::Semaphore;

/// argon2id with the crate's default (OWASP-recommended) parameters, with a bounded number
/// of hashes running at once.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Argon2Hasher {
    /// One hash at a time per core.
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    }
}

impl Argon2Hasher {
    /// A hasher running at most `concurrent` hashes at once (at least one).
    pub fn new(concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free. The permit moves into the
    /// blocking task, so it is held until the work ends even if the caller stops waiting.
    async fn bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, BoxError> {
        let permit = self.permits.clone().acquire_owned().await?;
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await?)
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &str) -> Result<String, BoxError> {
        let password = password.to_owned();
        self.bounded(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| e.to_string())
        })
        .await?
        .map_err(Into::into)
    }

    async fn verify(&self, password: &str, hash: &str) -> bool {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        self.bounded(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Argon2Hasher::default();
        let h = hasher.hash("correct horse battery").await.expect("hashed");
        assert!(h.starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse battery", &h).await);
        assert!(!hasher.verify("wrong horse battery", &h).await);
        assert!(!hasher.verify("anything", "not a hash").await);
    }

    #[tokio::test]
    async fn the_login_dummy_hash_is_a_real_argon2id_hash() {
        // Unknown accounts are rejected by verifying against it, which must cost a real verification.
        let dummy = clinicflow_services::auth::DUMMY_HASH;
        assert!(PasswordHash::new(dummy).is_ok());
        assert!(!Argon2Hasher::default().verify("guess", dummy).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_the_permitted_number_of_hashes_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hasher = Argon2Hasher::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (hasher, running, most) = (hasher.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    hasher
                        .bounded(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            // A real hash in each: long enough for unbounded work to overlap.
                            let salt = SaltString::generate(&mut OsRng);
                            let _ = Argon2::default().hash_password(b"load", &salt);
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                        .expect("ran")
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("joined");
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} hashes ran at once");
    }

    #[test]
    fn the_default_bound_is_the_number_of_cores() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        assert_eq!(Argon2Hasher::default().permits.available_permits(), cores);
    }
}
