//! Changing a versioned record: the client's `If-Match`, and the write that names the
//! version it read.

use clinicflow_domain::{Clinic, User};
use clinicflow_ports::{RepoError, Tx, TxMode};

use crate::error::ATTEMPTS;
use crate::{Ports, ServiceError};

/// A record whose updates name the version they read.
pub(crate) trait Versioned {
    /// The record's version, to compare and to move on.
    fn version_mut(&mut self) -> &mut i32;
}

impl Versioned for User {
    fn version_mut(&mut self) -> &mut i32 {
        &mut self.version
    }
}

impl Versioned for Clinic {
    fn version_mut(&mut self) -> &mut i32 {
        &mut self.version
    }
}

/// A 412 naming the `current` version when the client's `If-Match` names another one.
pub(crate) fn require_version(if_match: Option<i32>, current: i32) -> Result<(), ServiceError> {
    match if_match {
        Some(v) if v != current => Err(ServiceError::PreconditionFailed {
            current: Some(current),
        }),
        _ => Ok(()),
    }
}

/// Reads a record with `read` in a new write unit of work, checks `if_match`, applies
/// `apply` and writes it with `write`, which names the version read. Without `if_match`, a
/// write that lost to a concurrent one is made again on a fresh read: a change names only
/// the fields it sets, so applying it to the newer record loses neither. Returns the
/// record as written and its unit of work, still open.
pub(crate) async fn change<T: Versioned>(
    ports: &Ports,
    if_match: Option<i32>,
    read: impl AsyncFn(&mut Tx) -> Result<T, ServiceError>,
    apply: impl Fn(&mut T),
    write: impl AsyncFn(&mut Tx, &T, i32) -> Result<(), RepoError>,
) -> Result<(T, Tx), ServiceError> {
    let mut attempt = 1;
    loop {
        let mut tx = ports.db.begin(TxMode::Write).await?;
        let mut record = read(&mut tx).await?;
        require_version(if_match, *record.version_mut())?;
        apply(&mut record);
        let expected = *record.version_mut();
        *record.version_mut() += 1;
        match write(&mut tx, &record, expected).await {
            Ok(()) => return Ok((record, tx)),
            Err(RepoError::StaleVersion) if if_match.is_none() && attempt < ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
