//! The cache port: opaque bytes by key, with a time to live, and tags that invalidate them
//! on every instance.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// What a caller made of a cached value (its decoded or rendered form); see [`Cache::get_derived`].
pub type Derived = Arc<dyn Any + Send + Sync>;

/// How a caller turns a cached value into its [`Derived`] form; `None` counts as a miss.
pub type Derive<'a> = &'a (dyn Fn(&[u8]) -> Option<Derived> + Send + Sync);

/// Tags and their versions at one moment; see [`Cache::stamp`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagStamp(pub Vec<(String, u64)>);

/// A best-effort key-value cache; a miss or an outage never changes an answer, only its speed.
///
/// A value stored with tags is returned only while none of its tags has been invalidated
/// since, on any instance: a write that invalidates a tag before it answers its client is
/// never followed by a stale read of a value tied to that tag.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Cache: Send + Sync {
    /// The value under `key`, if cached, fresh, and none of its tags was invalidated since.
    async fn get(&self, key: &str) -> Option<Vec<u8>>;

    /// Stores `value` under `key` for at most `ttl`.
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration);

    /// The current versions of `tags`, taken BEFORE the value to cache is read, so that an
    /// invalidation in between makes the stored value stale; `None` when they cannot be known
    /// (then nothing should be cached).
    async fn stamp(&self, tags: &[String]) -> Option<TagStamp>;

    /// Stores `value` under `key` for at most `ttl`, tied to the tags of `stamp`.
    async fn set_tagged(&self, key: &str, stamp: TagStamp, value: Vec<u8>, ttl: Duration);

    /// Makes every value tied to any of `tags` stale, on every instance.
    async fn invalidate(&self, tags: &[String]);

    /// The value [`Cache::get`] would answer, turned by `derive` into the form the caller
    /// serves. An in-process level keeps that form beside the value it came from, so later
    /// hits of the same stored value hand it back without decoding (or rendering) again; it
    /// is gone with the value, on expiry, replacement and invalidation alike. Every caller of
    /// one key derives the same type.
    async fn get_derived<'a>(&self, key: &str, derive: Derive<'a>) -> Option<Derived> {
        let bytes = self.get(key).await?;
        derive(&bytes)
    }
}

/// The tag of every cached value derived from a practitioner's schedule, time off or
/// appointments (their free slots). Repositories touch it on every such write.
pub fn practitioner_tag(id: clinicflow_domain::PractitionerId) -> String {
    format!("practitioner:{id}")
}

/// The tag of every cached value derived from a practitioner's schedule and time off alone,
/// not from their appointments (the open hours a booking is checked against). Schedule and
/// time-off writes touch it beside [`practitioner_tag`]; bookings do not, so a booking leaves
/// the open hours the next booking reads cached.
pub fn schedule_tag(id: clinicflow_domain::PractitionerId) -> String {
    format!("schedule:{id}")
}

/// The tag of every cached value derived from a user's record (who `/me` says they are).
/// Repositories touch it on every write of that user.
pub fn user_tag(id: clinicflow_domain::UserId) -> String {
    format!("user:{id}")
}

/// The tag of every cached list of a clinic's practitioners, and of each cached practitioner
/// record of the clinic. Repositories touch it on every write of one of them (a new one, a
/// change, a deactivation); bookings do not, so a booking reads its practitioner cached.
pub fn practitioner_list_tag(clinic: clinicflow_domain::ClinicId) -> String {
    format!("practitioners:{clinic}")
}
