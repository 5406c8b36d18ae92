//! The statistics port: aggregates the dashboard reads, counted by the database rather than
//! by loading rows.

use async_trait::async_trait;
use clinicflow_domain::{AppointmentStatus, ClinicId, Interval, PractitionerId};

use crate::{RepoError, Tx};

/// How many appointments of one practitioner are in one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCount {
    /// The practitioner.
    pub practitioner_id: PractitionerId,
    /// The status.
    pub status: AppointmentStatus,
    /// How many.
    pub count: u64,
}

/// Aggregates over a clinic's data.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait StatsRepo: Send + Sync {
    /// Non-deleted appointments of the clinic starting within `span`, counted per practitioner
    /// and status (pairs with no appointment are absent).
    async fn appointment_counts(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        span: Interval,
    ) -> Result<Vec<StatusCount>, RepoError>;
}
