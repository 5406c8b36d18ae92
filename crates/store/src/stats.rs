//! [`StatsRepo`]: counts done by the database with `GROUP BY`, for the dashboard.

use async_trait::async_trait;
use clinicflow_domain::{AppointmentStatus, ClinicId, Interval, PractitionerId};
use clinicflow_ports::{RepoError, StatsRepo, StatusCount, Tx};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::Store;
use crate::appointment::live_in;
use crate::entity::{appointment, not_before};
use crate::error::{invalid_row, repo_error};
use crate::transaction::db;

#[async_trait]
impl StatsRepo for Store {
    async fn appointment_counts(
        &self,
        tx: &mut Tx,
        clinic: ClinicId,
        span: Interval,
    ) -> Result<Vec<StatusCount>, RepoError> {
        let rows: Vec<(Uuid, String, i64)> = appointment::Entity::find()
            .select_only()
            .column(appointment::Column::PractitionerId)
            .column(appointment::Column::Status)
            .column_as(appointment::Column::Id.count(), "n")
            .filter(live_in(clinic))
            .filter(appointment::Column::StartsAt.gte(not_before(span.start())))
            .filter(appointment::Column::StartsAt.lt(not_before(span.end())))
            .group_by(appointment::Column::PractitionerId)
            .group_by(appointment::Column::Status)
            .into_tuple()
            .all(db(tx))
            .await
            .map_err(repo_error)?;
        rows.into_iter()
            .map(|(practitioner, status, n)| {
                Ok(StatusCount {
                    practitioner_id: PractitionerId::from_uuid(practitioner),
                    status: status
                        .parse::<AppointmentStatus>()
                        .map_err(|e| invalid_row("appointments", practitioner, e.to_string()))?,
                    count: u64::try_from(n).unwrap_or(0),
                })
            })
            .collect()
    }
}
