//! Password hashing, a port because it is deliberately slow and must not block request threads.

use async_trait::async_trait;

use crate::BoxError;

/// Hashes and verifies passwords (argon2id in production).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a password into a self-describing PHC string.
    async fn hash(&self, password: &str) -> Result<String, BoxError>;

    /// Whether `password` matches `hash`; a malformed hash is simply no match.
    async fn verify(&self, password: &str, hash: &str) -> bool;
}
