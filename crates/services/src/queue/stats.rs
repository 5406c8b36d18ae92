//! A clinic-local day's queue figures: counts, waits and service times.

use chrono::{Duration, NaiveTime, TimeZone as _, Utc};
use clinicflow_domain::{
    Actor, AppointmentStatus, Clinic, Interval, PageRequest, Permission, PractitionerId,
    QueueStatus,
};
use clinicflow_ports::{AppointmentFilter, TxMode};

use super::QueueService;
use crate::{FieldErrors, ServiceError, input};

/// A day's queue figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayStats {
    /// The clinic-local date.
    pub date: chrono::NaiveDate,
    /// Entries now waiting, called, in service, done and left, among those that arrived that day.
    pub counts: [(QueueStatus, u64); 5],
    /// Mean wait from arrival to call.
    pub mean_wait: Option<Duration>,
    /// 90th percentile of that wait.
    pub p90_wait: Option<Duration>,
    /// Mean service time.
    pub mean_service: Option<Duration>,
    /// Appointments of that day marked no-show.
    pub no_shows: u64,
}

impl QueueService {
    /// A clinic-local day's figures, optionally of one practitioner.
    pub async fn stats(
        &self,
        actor: &Actor,
        date: Option<&str>,
        practitioner_id: Option<&str>,
    ) -> Result<DayStats, ServiceError> {
        actor.require(Permission::ReadQueue)?;
        let mut errors = FieldErrors::new();
        let date = date.and_then(|d| errors.check("date", input::date(d)));
        let practitioner = practitioner_id
            .and_then(|v| errors.check("practitioner_id", input::id(v)))
            .map(PractitionerId::from_uuid);
        errors.into_result()?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        let date = date.unwrap_or_else(|| clinic.local_date(self.ports.clock.now()));
        let day = local_day(&clinic, date)?;
        let entries = self
            .ports
            .queue
            .arrived_within(&mut tx, actor.clinic_id, day, practitioner)
            .await?;
        let filter = AppointmentFilter {
            practitioner_id: practitioner,
            status: Some(AppointmentStatus::NoShow),
            from: Some(day.start()),
            to: Some(day.end()),
            ..AppointmentFilter::default()
        };
        let one = PageRequest::first(1);
        let no_shows = self
            .ports
            .appointments
            .list(&mut tx, actor.clinic_id, &filter, one)
            .await?
            .total;
        let counts =
            QueueStatus::ALL.map(|s| (s, entries.iter().filter(|e| e.status == s).count() as u64));
        let waits: Vec<Duration> = entries
            .iter()
            .filter_map(|e| e.called_at.map(|c| c - e.arrived_at))
            .collect();
        let services: Vec<Duration> = entries
            .iter()
            .filter_map(|e| Some(e.finished_at? - e.started_at?))
            .collect();
        Ok(DayStats {
            date,
            counts,
            mean_wait: mean(&waits),
            p90_wait: percentile(&waits, 0.9),
            mean_service: mean(&services),
            no_shows,
        })
    }
}

/// The UTC interval of a clinic-local calendar day (23 or 25 hours long across DST changes).
pub(crate) fn local_day(
    clinic: &Clinic,
    date: chrono::NaiveDate,
) -> Result<Interval, ServiceError> {
    let tz = clinic.time_zone.tz();
    let start_of = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_time(NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| d.and_time(NaiveTime::MIN).and_utc())
    };
    let next = date
        .succ_opt()
        .ok_or_else(|| FieldErrors::single("date", "is out of range"))?;
    Interval::new(start_of(date), start_of(next)).map_err(|e| FieldErrors::single("date", e.0))
}

pub(crate) fn mean(values: &[Duration]) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let total: i64 = values.iter().map(Duration::num_milliseconds).sum();
    Some(Duration::milliseconds(total / values.len() as i64))
}

/// The `quantile` of `values` from an HDR histogram at millisecond resolution.
pub(super) fn percentile(values: &[Duration], quantile: f64) -> Option<Duration> {
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).ok()?;
    for v in values {
        histogram
            .record(u64::try_from(v.num_milliseconds()).unwrap_or(0))
            .ok()?;
    }
    (!histogram.is_empty()).then(|| {
        Duration::milliseconds(
            i64::try_from(histogram.value_at_quantile(quantile)).unwrap_or(i64::MAX),
        )
    })
}
