//! The clinic's dashboard: today's appointments by status, the queue, waits and the no-show
//! rate, per clinic and per practitioner. Computed from aggregates, kept in the cache, and
//! refreshed ahead of requests by the server's warmer, so a wall of front-desk screens
//! polling it costs the database one computation per refresh.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::{Actor, AppointmentStatus, ClinicId, Permission, QueueStatus};
use clinicflow_ports::{Derived, TxMode};
use serde::{Deserialize, Serialize};

use crate::{Ports, ServiceError};

/// How old a cached dashboard may be when no warmer refreshes it.
pub const DEFAULT_MAX_AGE: StdDuration = StdDuration::from_secs(30);

/// One practitioner's day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PractitionerDay {
    /// The practitioner's id.
    pub practitioner_id: String,
    /// Today's appointments by status (every status, zeros included).
    pub appointments: BTreeMap<String, u64>,
    /// Patients waiting for them now.
    pub queue_waiting: u64,
    /// Mean wait from arrival to being called by them today, in minutes.
    pub mean_wait_minutes: Option<f64>,
    /// No-shows among today's appointments that were due (see [`Dashboard::no_show_rate`]).
    pub no_show_rate: Option<f64>,
}

/// A clinic's day at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// The clinic-local date (`YYYY-MM-DD`).
    pub date: String,
    /// When these figures were computed (RFC 3339).
    pub generated_at: DateTime<Utc>,
    /// Today's appointments by status.
    pub appointments: BTreeMap<String, u64>,
    /// Patients waiting now, among those who arrived today.
    pub queue_waiting: u64,
    /// Mean wait from arrival to call today, in minutes.
    pub mean_wait_minutes: Option<f64>,
    /// No-shows divided by the appointments that were due: checked in, in progress,
    /// completed or no-show. `None` before any was due.
    pub no_show_rate: Option<f64>,
    /// The same per practitioner with appointments or waiting patients today, by id.
    pub practitioners: Vec<PractitionerDay>,
}

/// A dashboard in the form its reader serves (the API's rendered answer), with when its
/// figures were computed; made once per cached dashboard.
#[derive(Debug)]
pub struct RenderedDashboard<T> {
    /// When the figures were computed.
    pub generated_at: DateTime<Utc>,
    /// The dashboard as the reader's `render` made it.
    pub form: T,
}

/// Builds dashboards and keeps them in the cache.
#[derive(Debug, Clone)]
pub struct DashboardService {
    ports: Ports,
    max_age: StdDuration,
}

/// Per-status counts with every status present.
fn empty_counts() -> BTreeMap<String, u64> {
    AppointmentStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect()
}

fn no_show_rate(counts: &BTreeMap<String, u64>) -> Option<f64> {
    let of = |s: AppointmentStatus| counts.get(s.as_str()).copied().unwrap_or(0);
    let no_shows = of(AppointmentStatus::NoShow);
    let due = no_shows
        + of(AppointmentStatus::CheckedIn)
        + of(AppointmentStatus::InProgress)
        + of(AppointmentStatus::Completed);
    (due > 0).then(|| no_shows as f64 / due as f64)
}

fn minutes(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.num_milliseconds() as f64 / 60_000.0)
}

fn key(clinic: ClinicId) -> String {
    format!("dashboard:{clinic}")
}

impl DashboardService {
    /// Builds the service; cached dashboards are served for at most [`DEFAULT_MAX_AGE`].
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            max_age: DEFAULT_MAX_AGE,
        }
    }

    /// The same service serving cached dashboards up to `max_age` old.
    pub fn with_max_age(self, max_age: StdDuration) -> Self {
        Self { max_age, ..self }
    }

    /// The actor's clinic's dashboard in the form `render` makes of it: from the cache when
    /// fresh, else computed and cached. A hit of a dashboard already rendered on this instance
    /// is neither parsed nor rendered again, only handed back; the form is kept beside the
    /// cached value, so it goes when the value does.
    pub async fn stats<T: Send + Sync + 'static>(
        &self,
        actor: &Actor,
        render: impl Fn(Dashboard) -> T + Send + Sync,
    ) -> Result<Arc<RenderedDashboard<T>>, ServiceError> {
        actor.require(Permission::ReadAppointments)?;
        let rendered = |d: Dashboard| RenderedDashboard {
            generated_at: d.generated_at,
            form: render(d),
        };
        let derive = |bytes: &[u8]| -> Option<Derived> {
            let dashboard = serde_json::from_slice::<Dashboard>(bytes).ok()?;
            Some(Arc::new(rendered(dashboard)))
        };
        let now = self.ports.clock.now();
        if let Some(derived) = self
            .ports
            .cache
            .get_derived(&key(actor.clinic_id), &derive)
            .await
            && let Ok(cached) = derived.downcast::<RenderedDashboard<T>>()
            && (now - cached.generated_at)
                .to_std()
                .is_ok_and(|age| age <= self.max_age)
        {
            return Ok(cached);
        }
        Ok(Arc::new(rendered(self.refresh(actor.clinic_id).await?)))
    }

    /// Computes a clinic's dashboard and puts it in the cache: what the warmer calls.
    pub async fn refresh(&self, clinic_id: ClinicId) -> Result<Dashboard, ServiceError> {
        let dashboard = self.compute(clinic_id).await?;
        if let Ok(bytes) = serde_json::to_vec(&dashboard) {
            // Kept a little longer than it is served, so a late warmer never leaves a gap.
            self.ports
                .cache
                .set(&key(clinic_id), bytes, self.max_age * 2)
                .await;
        }
        Ok(dashboard)
    }

    /// Refreshes every clinic's dashboard; returns how many were refreshed.
    pub async fn refresh_all(&self) -> Result<usize, ServiceError> {
        let clinics = {
            let mut tx = self.ports.db.begin(TxMode::Read).await?;
            self.ports.clinics.list_ids(&mut tx).await?
        };
        for clinic in &clinics {
            self.refresh(*clinic).await?;
        }
        Ok(clinics.len())
    }

    async fn compute(&self, clinic_id: ClinicId) -> Result<Dashboard, ServiceError> {
        let now = self.ports.clock.now();
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, clinic_id).await?;
        let date = clinic.local_date(now);
        let day = crate::queue::local_day(&clinic, date)?;
        let counts = self
            .ports
            .stats
            .appointment_counts(&mut tx, clinic_id, day)
            .await?;
        let entries = self
            .ports
            .queue
            .arrived_within(&mut tx, clinic_id, day, None)
            .await?;
        drop(tx);

        let mut appointments = empty_counts();
        let mut by_practitioner: BTreeMap<String, PractitionerDay> = BTreeMap::new();
        for c in &counts {
            *appointments
                .entry(c.status.as_str().to_owned())
                .or_default() += c.count;
            let day = practitioner_day(&mut by_practitioner, c.practitioner_id.to_string());
            *day.appointments
                .entry(c.status.as_str().to_owned())
                .or_default() += c.count;
        }
        let waiting = |e: &&clinicflow_domain::QueueEntry| e.status == QueueStatus::Waiting;
        let queue_waiting = entries.iter().filter(waiting).count() as u64;
        let wait_of = |e: &clinicflow_domain::QueueEntry| e.called_at.map(|c| c - e.arrived_at);
        let all_waits: Vec<Duration> = entries.iter().filter_map(wait_of).collect();
        let mut waits: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
        for e in &entries {
            let Some(p) = e.called_by.or(e.practitioner_id) else {
                continue;
            };
            let day = practitioner_day(&mut by_practitioner, p.to_string());
            if e.status == QueueStatus::Waiting {
                day.queue_waiting += 1;
            }
            if let Some(w) = wait_of(e) {
                waits.entry(p.to_string()).or_default().push(w);
            }
        }
        for (id, day) in &mut by_practitioner {
            day.no_show_rate = no_show_rate(&day.appointments);
            day.mean_wait_minutes = waits.get(id).and_then(|w| minutes(crate::queue::mean(w)));
        }
        Ok(Dashboard {
            date: date.to_string(),
            generated_at: now,
            no_show_rate: no_show_rate(&appointments),
            appointments,
            queue_waiting,
            mean_wait_minutes: minutes(crate::queue::mean(&all_waits)),
            practitioners: by_practitioner.into_values().collect(),
        })
    }
}

fn practitioner_day(
    days: &mut BTreeMap<String, PractitionerDay>,
    id: String,
) -> &mut PractitionerDay {
    days.entry(id.clone()).or_insert_with(|| PractitionerDay {
        practitioner_id: id,
        appointments: empty_counts(),
        queue_waiting: 0,
        mean_wait_minutes: None,
        no_show_rate: None,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use clinicflow_domain::{
        Clinic, ClinicName, PractitionerId, QueueSettings, ReminderOffsets, Role, TimeZone, UserId,
    };
    use clinicflow_ports::StatusCount;
    use uuid::Uuid;

    use super::*;
    use crate::mocks::Mocks;

    fn clinic() -> Clinic {
        Clinic {
            id: ClinicId::from_uuid(Uuid::from_u128(1)),
            name: ClinicName::parse("Praxis").expect("valid"),
            time_zone: TimeZone::parse("Europe/Berlin").expect("valid"),
            no_show_grace_minutes: 15,
            queue: QueueSettings::default(),
            reminders: ReminderOffsets::default(),
            check_in: clinicflow_domain::CheckInWindow::default(),
            version: 1,
        }
    }

    #[tokio::test]
    async fn counts_add_up_per_clinic_and_practitioner_with_the_no_show_rate_of_due_visits() {
        // 23:30 UTC is already the next day in Berlin: the day is the clinic's.
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 23, 30, 0).unwrap();
        let (a, b) = (
            PractitionerId::from_uuid(Uuid::from_u128(10)),
            PractitionerId::from_uuid(Uuid::from_u128(11)),
        );
        let mut m = Mocks::new(now);
        m.clinics.expect_get().returning(|_, _| Ok(Some(clinic())));
        m.stats
            .expect_appointment_counts()
            .times(1)
            .withf(|_, _, span| {
                span.start() == Utc.with_ymd_and_hms(2026, 11, 30, 23, 0, 0).unwrap()
            })
            .returning(move |_, _, _| {
                let count = |practitioner_id, status, count| StatusCount {
                    practitioner_id,
                    status,
                    count,
                };
                Ok(vec![
                    count(a, AppointmentStatus::Completed, 3),
                    count(a, AppointmentStatus::NoShow, 1),
                    count(a, AppointmentStatus::Booked, 2),
                    count(b, AppointmentStatus::Cancelled, 1),
                ])
            });
        m.queue
            .expect_arrived_within()
            .returning(|_, _, _, _| Ok(Vec::new()));
        let (ports, _) = m.ports();
        let actor = Actor {
            user_id: UserId::from_uuid(Uuid::from_u128(2)),
            clinic_id: clinic().id,
            role: Role::Receptionist,
            practitioner_id: None,
            request_id: None,
        };
        let d = &DashboardService::new(ports)
            .stats(&actor, |d| d)
            .await
            .expect("a dashboard")
            .form;
        assert_eq!(d.date, "2026-12-01");
        assert_eq!(d.appointments["completed"], 3);
        assert_eq!(d.appointments["booked"], 2);
        assert_eq!(d.appointments["in_progress"], 0);
        assert_eq!(d.no_show_rate, Some(0.25), "1 of 4 due visits");
        assert_eq!(d.practitioners.len(), 2);
        assert_eq!(d.practitioners[0].no_show_rate, Some(0.25));
        assert_eq!(d.practitioners[1].no_show_rate, None, "nothing was due");
        assert_eq!(d.queue_waiting, 0);
        assert_eq!(d.mean_wait_minutes, None);
    }
}
