//! The no-show sweep: marking, clinic by clinic, the appointments nobody came to.

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::{Actor, Clinic, ClinicId};
use clinicflow_ports::TxMode;

use super::moves::Step;
use super::{AppointmentAction, BookingService};
use crate::ServiceError;

/// One run of the no-show sweeper over every clinic.
#[derive(Debug, Clone, Copy)]
struct Sweep {
    now: DateTime<Utc>,
    limit: u32,
    announce_within: Duration,
}

/// What one no-show sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Clinics swept.
    pub clinics: usize,
    /// Appointments marked no-show.
    pub marked: usize,
    /// Marks given up because the appointment or its queue entry changed meanwhile; one that
    /// is still overdue is claimed again, in this sweep or the next.
    pub skipped: usize,
    /// Clinics that used up the sweep's limit and may have more to mark.
    pub clinics_at_limit: usize,
    /// Clinics whose sweep failed (logged with the clinic id); the others were swept anyway.
    pub clinics_failed: usize,
}

impl BookingService {
    /// Marks as no-shows, in every clinic, the appointments nobody checked in for by their
    /// start plus the clinic's grace: at most `limit` per clinic, each in its own unit of work,
    /// recorded as done by clinicflow itself ([`Actor::system`]) and announced like a no-show
    /// recorded by staff when it started within `announce_within`. An appointment that
    /// changes meanwhile is skipped.
    #[tracing::instrument(skip_all)]
    pub async fn sweep_no_shows(
        &self,
        limit: u32,
        announce_within: Duration,
    ) -> Result<SweepReport, ServiceError> {
        let now = self.ports.clock.now();
        let clinics = {
            let mut tx = self.ports.db.begin(TxMode::Read).await?;
            self.ports.clinics.list_ids(&mut tx).await?
        };
        let mut report = SweepReport::default();
        let sweep = Sweep {
            now,
            limit,
            announce_within,
        };
        for clinic in clinics {
            // Each clinic on its own: one clinic's broken row or failing query must not leave
            // every later clinic's no-shows unmarked.
            if let Err(e) = self.sweep_clinic(clinic, &sweep, &mut report).await {
                report.clinics_failed += 1;
                tracing::warn!(clinic_id = %clinic, error = %e, "no-show sweep of a clinic failed; the other clinics are swept, this one again at the next interval");
            }
        }
        if report.marked > 0 || report.skipped > 0 || report.clinics_failed > 0 {
            tracing::info!(
                marked = report.marked,
                skipped = report.skipped,
                clinics_failed = report.clinics_failed,
                "no-show sweep"
            );
        }
        Ok(report)
    }

    async fn sweep_clinic(
        &self,
        id: ClinicId,
        sweep: &Sweep,
        report: &mut SweepReport,
    ) -> Result<(), ServiceError> {
        let actor = Actor::system(id);
        actor.require(AppointmentAction::NoShow.permission())?;
        let clinic = {
            let mut tx = self.ports.db.begin(TxMode::Read).await?;
            crate::clinic::clinic_settings(&self.ports, &mut tx, id).await?
        };
        report.clinics += 1;
        let mut queue_changed = false;
        let outcome = self
            .mark_no_shows(&actor, &clinic, sweep, report, &mut queue_changed)
            .await;
        // Marks already committed reach the boards even when a later one failed.
        if queue_changed {
            crate::queue::announce(&self.ports, id).await;
        }
        outcome
    }

    async fn mark_no_shows(
        &self,
        actor: &Actor,
        clinic: &Clinic,
        sweep: &Sweep,
        report: &mut SweepReport,
        queue_changed: &mut bool,
    ) -> Result<(), ServiceError> {
        let Sweep {
            now,
            limit,
            announce_within,
        } = *sweep;
        let started_before = now - Duration::minutes(i64::from(clinic.no_show_grace_minutes));
        for _ in 0..limit {
            let mut tx = self.ports.db.begin(TxMode::Write).await?;
            // Claimed in the unit of work that marks it, so one checked in meanwhile is no
            // longer found, and one another sweeper holds is passed over.
            let Some(mut appointment) = self
                .ports
                .appointments
                .overdue_unattended(&mut tx, actor.clinic_id, started_before, 1)
                .await?
                .pop()
            else {
                return Ok(());
            };
            let action = AppointmentAction::NoShow;
            // An old appointment is set right silently: nobody should be told today that
            // they missed a visit weeks ago (as on the sweeper's first run over old data).
            let announce = appointment.interval.start() >= now - announce_within;
            match self
                .apply(
                    &mut tx,
                    actor,
                    clinic,
                    &mut appointment,
                    Step {
                        action: &action,
                        now,
                        announce,
                    },
                )
                .await
            {
                Ok(changed) => {
                    tx.commit().await?;
                    report.marked += 1;
                    *queue_changed |= changed;
                    tracing::debug!(appointment_id = %appointment.id, "appointment marked no-show");
                }
                // A version check failed: the appointment or its queue entry changed while it
                // was being marked. Dropping `tx` undoes the rest.
                Err(ServiceError::PreconditionFailed { .. }) => report.skipped += 1,
                Err(e) => return Err(e),
            }
        }
        report.clinics_at_limit += 1;
        Ok(())
    }
}
