//! How database failures become the ports' [`RepoError`], by constraint name.
//!
//! The names come from `clinicflow-migration`; PostgreSQL reports them with each
//! violation, SQLite only names the columns of a unique violation in its message.

use clinicflow_ports::{BoxError, OverlapParty, RepoError};
use sea_orm::sqlx::error::{DatabaseError, ErrorKind};
use sea_orm::{DbErr, RuntimeErr};

/// Why the store could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database URL: expected sqlite:… or postgres://…")]
    UnsupportedUrl,
    /// The database could not be reached or opened.
    #[error("cannot connect to the database")]
    Connect(#[source] BoxError),
    /// Applying the migrations failed.
    #[error("cannot migrate the database")]
    Migrate(#[source] BoxError),
}

/// A stored row that no longer parses into its domain type.
#[derive(Debug, thiserror::Error)]
#[error("stored {table} row {id} is invalid: {reason}")]
pub(crate) struct InvalidRow {
    table: &'static str,
    id: String,
    reason: String,
}

/// The error for a row of `table` that fails to parse.
pub(crate) fn invalid_row(
    table: &'static str,
    id: impl ToString,
    reason: impl ToString,
) -> RepoError {
    RepoError::Other(Box::new(InvalidRow {
        table,
        id: id.to_string(),
        reason: reason.to_string(),
    }))
}

/// A domain value that does not fit its column (for example minutes beyond `i32`).
#[derive(Debug, thiserror::Error)]
#[error("{0} does not fit its column")]
pub(crate) struct OutOfRange(pub(crate) &'static str);

/// Converts a domain count to its `int` column.
pub(crate) fn to_i32(what: &'static str, value: u32) -> Result<i32, RepoError> {
    i32::try_from(value).map_err(|_| RepoError::Other(Box::new(OutOfRange(what))))
}

/// Maps a SeaORM error to the ports' error contract.
pub(crate) fn repo_error(err: DbErr) -> RepoError {
    let sqlx_err = match &err {
        DbErr::ConnectionAcquire(_) => return RepoError::Unavailable(Box::new(err)),
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e.clone(),
        DbErr::Conn(_) => return RepoError::Unavailable(Box::new(err)),
        _ => return RepoError::Other(Box::new(err)),
    };
    match sqlx_err.as_ref() {
        sea_orm::sqlx::Error::Database(db) => match violation(db.as_ref()) {
            Some(mapped) => mapped,
            None if is_concurrency_abort(db.as_ref()) => RepoError::Retry(Box::new(err)),
            None if is_timeout(db.as_ref()) => RepoError::Timeout(Box::new(err)),
            None if is_transient(db.as_ref()) => RepoError::Unavailable(Box::new(err)),
            None => RepoError::Other(Box::new(err)),
        },
        sea_orm::sqlx::Error::PoolTimedOut
        | sea_orm::sqlx::Error::PoolClosed
        | sea_orm::sqlx::Error::Io(_)
        | sea_orm::sqlx::Error::Tls(_)
        | sea_orm::sqlx::Error::WorkerCrashed => RepoError::Unavailable(Box::new(err)),
        _ => RepoError::Other(Box::new(err)),
    }
}

/// The contract variant for a constraint violation, if it is one the ports name.
fn violation(db: &dyn DatabaseError) -> Option<RepoError> {
    let constraint = db.constraint().unwrap_or_default();
    match db.kind() {
        ErrorKind::ExclusionViolation => match constraint {
            "appointments_practitioner_no_overlap" => {
                Some(RepoError::Overlap(OverlapParty::Practitioner))
            }
            "appointments_patient_no_overlap" => Some(RepoError::Overlap(OverlapParty::Patient)),
            _ => None,
        },
        ErrorKind::UniqueViolation => {
            // SQLite names no constraint, only the columns: "UNIQUE constraint failed: users.clinic_id, users.email".
            let message = db.message();
            if constraint == "users_clinic_id_email_key" || message.contains("users.email") {
                Some(RepoError::Duplicate("email"))
            } else if constraint == "refresh_tokens_token_hash_key"
                || message.contains("refresh_tokens.token_hash")
            {
                Some(RepoError::Duplicate("token_hash"))
            } else if constraint == "queue_entries_open_appointment_key"
                || message.contains("queue_entries.appointment_id")
            {
                // The partial unique index: an appointment has at most one open queue entry.
                Some(RepoError::Duplicate("appointment_id"))
            } else if constraint == "queue_entries_open_patient_key"
                || message.contains("queue_entries.patient_id")
            {
                // The partial unique index: a patient has at most one open queue entry.
                Some(RepoError::AlreadyQueued)
            } else if constraint.ends_with("_pkey")
                || constraint.ends_with("_clinic_id_id_key")
                || message.ends_with(".id")
            {
                Some(RepoError::Duplicate("id"))
            } else {
                None
            }
        }
        // Every foreign key points at the clinic or at a row of the same clinic.
        ErrorKind::ForeignKeyViolation => Some(RepoError::NotFound),
        _ => None,
    }
}

/// Whether PostgreSQL aborted the transaction to resolve a deadlock (40P01) or a
/// serialization failure (40001): concurrent exclusion-constraint checks can deadlock.
fn is_concurrency_abort(db: &dyn DatabaseError) -> bool {
    matches!(db.code().as_deref(), Some("40P01" | "40001"))
}

/// Whether a configured bound cut a statement or a lock wait short: PostgreSQL's
/// `statement_timeout` (57014 `query_canceled`), `lock_timeout` (55P03 `lock_not_available`,
/// also for advisory locks and for the wait on another transaction's uncommitted
/// idempotency key), `idle_in_transaction_session_timeout` (25P03); SQLite's `busy_timeout`
/// running out on the write lock (`SQLITE_BUSY`, `SQLITE_BUSY_RECOVERY`, `SQLITE_BUSY_TIMEOUT`).
fn is_timeout(db: &dyn DatabaseError) -> bool {
    matches!(
        db.code().as_deref(),
        Some("57014" | "55P03" | "25P03" | "5" | "261" | "773")
    )
}

/// Whether the failure is about load or connectivity, so the request may be retried.
fn is_transient(db: &dyn DatabaseError) -> bool {
    let code = db.code().unwrap_or_default();
    let code = code.as_ref();
    // PostgreSQL SQLSTATE classes 08 (connection), 53 (resources), 57P (shutdown).
    let postgres = code.starts_with("08") || code.starts_with("53") || code.starts_with("57P");
    // SQLite (extended) result codes of SQLITE_LOCKED and SQLITE_BUSY_SNAPSHOT: a lock
    // conflict that no waiting resolves (the waits themselves are timeouts, above).
    let sqlite = matches!(code, "6" | "262" | "517");
    postgres || sqlite
}

/// A failed batch (of audit events or of SQLite write units) fails every request in it with a
/// retryable error: the database, not the request, is at fault, and none was answered.
pub(crate) fn batch_error(e: DbErr) -> RepoError {
    match repo_error(e) {
        timeout @ RepoError::Timeout(_) => timeout,
        RepoError::Unavailable(e) | RepoError::Other(e) | RepoError::Retry(e) => {
            RepoError::Unavailable(e)
        }
        other => RepoError::Unavailable(Box::new(other)),
    }
}
