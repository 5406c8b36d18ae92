//! Idempotent writes: a use case called with a [`Once`] claims the client's key in its own
//! unit of work, and stores its answer there too, so the key is remembered exactly when the
//! write committed.
//!
//! A request whose write fails (a conflict, a validation error, a lost database) leaves no
//! trace, so its retry runs again; only a committed write's answer is given again. The
//! answer is rendered by the caller ([`Once::render`]), because only the caller knows what
//! the client was told.

use chrono::Duration;
use clinicflow_domain::{Actor, Claimed, IdempotencyKey, KeyClaim, StoredAnswer};
use clinicflow_ports::{Tx, TxMode};

use crate::{Ports, ServiceError};

/// How a write made through [`Once`] renders the answer it stores.
pub type Render<'a, T> = &'a (dyn Fn(&T) -> StoredAnswer + Send + Sync);

/// Reads the id of the record a stored answer shows, so that a replay can be audited as the
/// disclosure it is and refused once the record is gone.
pub type Subject<'a> = &'a (dyn Fn(&StoredAnswer) -> Option<uuid::Uuid> + Send + Sync);

/// A write to make at most once per idempotency key of the actor.
pub struct Once<'a, T> {
    key: IdempotencyKey,
    fingerprint: String,
    ttl: Duration,
    render: Render<'a, T>,
    subject: Option<Subject<'a>>,
}

impl<T> std::fmt::Debug for Once<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Once")
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<'a, T> Once<'a, T> {
    /// A write under `key`, for a request whose method, path and body digest to
    /// `fingerprint`, remembered for `ttl`, whose answer `render` makes from its result.
    pub fn new(
        key: IdempotencyKey,
        fingerprint: String,
        ttl: Duration,
        render: Render<'a, T>,
    ) -> Self {
        Self {
            key,
            fingerprint,
            ttl,
            render,
            subject: None,
        }
    }

    /// The same write, whose stored answer names its record through `subject`; use cases
    /// whose answers hold patient data need it to audit a replay.
    pub fn with_subject(self, subject: Subject<'a>) -> Self {
        Self {
            subject: Some(subject),
            ..self
        }
    }

    /// The id of the record `answer` shows, when the caller said how to read it.
    pub(crate) fn subject_of(&self, answer: &StoredAnswer) -> Option<uuid::Uuid> {
        self.subject.and_then(|read| read(answer))
    }
}

/// The answer of a write made through [`Once`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// What the client is told.
    pub answer: StoredAnswer,
    /// Whether it is the stored answer of an earlier request with the same key.
    pub replayed: bool,
}

/// A use case's result: its value for a plain call, its answer for one made through [`Once`].
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    Value(T),
    Answered(Answered),
}

impl<T> Outcome<T> {
    /// The stored answer, when this is one.
    pub(crate) fn stored(&self) -> Option<&StoredAnswer> {
        match self {
            Outcome::Answered(a) => Some(&a.answer),
            Outcome::Value(_) => None,
        }
    }

    /// The value of a plain call.
    pub(crate) fn value(self) -> Result<T, ServiceError> {
        match self {
            Outcome::Value(v) => Ok(v),
            Outcome::Answered(_) => Err(ServiceError::Unexpected(
                "a plain call answered as an idempotent one".into(),
            )),
        }
    }

    /// The answer of a call made through [`Once`].
    pub(crate) fn answered(self) -> Result<Answered, ServiceError> {
        match self {
            Outcome::Answered(a) => Ok(a),
            Outcome::Value(_) => Err(ServiceError::Unexpected(
                "an idempotent call answered as a plain one".into(),
            )),
        }
    }
}

/// The key's claim for this actor at the current time.
fn key_claim<T>(ports: &Ports, actor: &Actor, once: &Once<'_, T>) -> KeyClaim {
    let now = ports.clock.now();
    KeyClaim {
        clinic_id: actor.clinic_id,
        user_id: actor.user_id,
        key: once.key.clone(),
        fingerprint: once.fingerprint.clone(),
        created_at: now,
        expires_at: now + once.ttl,
    }
}

/// Claims the key in `tx`, first thing in the unit of work: `Some` is the earlier answer to
/// give instead of writing, and a key used for another request is a 422.
pub(crate) async fn claim<T>(
    ports: &Ports,
    tx: &mut Tx,
    actor: &Actor,
    once: Option<&Once<'_, T>>,
) -> Result<Option<Outcome<T>>, ServiceError> {
    let Some(once) = once else {
        return Ok(None);
    };
    match ports
        .idempotency
        .claim(tx, &key_claim(ports, actor, once))
        .await?
    {
        Claimed::Fresh => Ok(None),
        Claimed::Replay(answer) => Ok(Some(Outcome::Answered(Answered {
            answer,
            replayed: true,
        }))),
        Claimed::Mismatch => Err(ServiceError::IdempotencyKeyReused),
    }
}

/// The id of the record a replayed answer shows, read through the caller's subject: the
/// replay discloses that record again, so it is audited like a read of it.
pub(crate) fn replayed_id<T>(
    once: Option<&Once<'_, T>>,
    earlier: &Outcome<T>,
) -> Result<uuid::Uuid, ServiceError> {
    once.zip(earlier.stored())
        .and_then(|(once, answer)| once.subject_of(answer))
        .ok_or_else(|| ServiceError::Unexpected("a replayed answer names no record".into()))
}

/// Stores the answer of a write that claimed its key in `tx`, last thing before the commit.
pub(crate) async fn finish<T>(
    ports: &Ports,
    tx: &mut Tx,
    actor: &Actor,
    once: Option<&Once<'_, T>>,
    value: T,
) -> Result<Outcome<T>, ServiceError> {
    let Some(once) = once else {
        return Ok(Outcome::Value(value));
    };
    let answer = (once.render)(&value);
    ports
        .idempotency
        .answer(tx, &key_claim(ports, actor, once), &answer)
        .await?;
    Ok(Outcome::Answered(Answered {
        answer,
        replayed: false,
    }))
}

/// The housekeeping of idempotency keys.
#[derive(Debug, Clone)]
pub struct IdempotencyService {
    ports: Ports,
}

impl IdempotencyService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// Forgets every key whose time is up, in every clinic; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, ServiceError> {
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let purged = self
            .ports
            .idempotency
            .purge_expired(&mut tx, self.ports.clock.now())
            .await?;
        tx.commit().await?;
        Ok(purged)
    }
}
