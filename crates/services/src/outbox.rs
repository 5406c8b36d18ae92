//! The transactional outbox: what booking, cancelling, rescheduling and the queue announce,
//! written in the same unit of work as the change, and the dispatch that delivers it at least
//! once with backoff.
//!
//! Dispatch leases messages instead of holding a transaction while a channel is slow: a
//! short write transaction claims due messages (skipping those another dispatcher holds) and
//! pushes their next attempt a lease ahead; delivery runs outside any transaction; a second
//! transaction records each outcome. A dispatcher that dies mid-delivery leaves its messages
//! due again when the lease ends, so nothing acknowledged is lost, and receivers deduplicate
//! the rare second delivery by the message id.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::outbox::reminder_still_useful;
use clinicflow_domain::{
    Actor, Appointment, AppointmentId, AttemptOutcome, ClinicId, DeliveryStatus, Endpoint,
    EventKind, OutboxMessage, OutboxMessageId, Page, PageRequest, Permission, RetryPolicy,
};
use clinicflow_ports::{Notifier, Tx, TxMode};
use uuid::Uuid;

use crate::{FieldErrors, Ports, ServiceError};

/// How long claimed messages are held before another dispatcher may take them again; longer
/// than any channel's delivery timeout.
pub const LEASE: Duration = Duration::seconds(120);

/// The JSON body of an event about an appointment: ids and times only, never patient data,
/// so receivers look up what they are allowed to see.
fn appointment_payload(
    id: OutboxMessageId,
    kind: EventKind,
    a: &Appointment,
    at: Option<DateTime<Utc>>,
) -> String {
    let reminder = at
        .map(|t| format!(",\"remind_at\":\"{}\"", t.to_rfc3339()))
        .unwrap_or_default();
    format!(
        "{{\"id\":\"{id}\",\"event\":\"{kind}\",\"clinic_id\":\"{}\",\"appointment_id\":\"{}\",\"patient_id\":\"{}\",\
         \"practitioner_id\":\"{}\",\"starts_at\":\"{}\",\"ends_at\":\"{}\",\"status\":\"{}\"{reminder}}}",
        a.clinic_id,
        a.id,
        a.patient_id,
        a.practitioner_id,
        a.interval.start().to_rfc3339(),
        a.interval.end().to_rfc3339(),
        a.status,
    )
}

fn message(
    kind: EventKind,
    a: &Appointment,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    remind_at: Option<DateTime<Utc>>,
) -> OutboxMessage {
    let id = OutboxMessageId::from_uuid(Uuid::now_v7());
    OutboxMessage {
        id,
        clinic_id: a.clinic_id,
        kind,
        appointment_id: Some(a.id),
        payload: appointment_payload(id, kind, a, remind_at),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
        delivered_at: None,
        created_at: now,
    }
}

/// Writes, in the caller's unit of work, that a patient was called from the queue (for a
/// waiting-room display or a pager): ids and times only.
pub(crate) async fn announce_call(
    ports: &Ports,
    tx: &mut Tx,
    entry: &clinicflow_domain::QueueEntry,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let id = OutboxMessageId::from_uuid(Uuid::now_v7());
    let kind = EventKind::PatientCalled;
    let practitioner = entry
        .called_by
        .map(|p| format!(",\"practitioner_id\":\"{p}\""))
        .unwrap_or_default();
    let payload = format!(
        "{{\"id\":\"{id}\",\"event\":\"{kind}\",\"clinic_id\":\"{}\",\"queue_entry_id\":\"{}\",\"patient_id\":\"{}\",\"called_at\":\"{}\"{practitioner}}}",
        entry.clinic_id,
        entry.id,
        entry.patient_id,
        now.to_rfc3339(),
    );
    let message = OutboxMessage {
        id,
        clinic_id: entry.clinic_id,
        kind,
        appointment_id: entry.appointment_id,
        payload,
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        delivered_at: None,
        created_at: now,
    };
    Ok(ports.outbox.enqueue(tx, &message).await?)
}

/// Writes, in the caller's unit of work, the event of an appointment's change and the
/// reminders it needs: a booking is confirmed and reminded of; a cancellation withdraws its
/// reminders; a no-show is announced.
pub(crate) async fn announce_appointment(
    ports: &Ports,
    tx: &mut Tx,
    kind: EventKind,
    appointment: &Appointment,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    // A visit recorded after it ended (an admin back-dating it) is nothing to confirm to
    // anyone, and it has no reminders ahead.
    if kind == EventKind::BookingConfirmed && appointment.interval.end() <= now {
        return Ok(());
    }
    // The event and the reminders it schedules go in one insert.
    let mut messages = vec![message(kind, appointment, now, now, None)];
    if kind == EventKind::BookingConfirmed {
        let clinic = crate::clinic::clinic_settings(ports, tx, appointment.clinic_id).await?;
        messages.extend(
            clinic
                .reminders
                .due_times(appointment.interval.start(), now)
                .into_iter()
                .map(|at| message(EventKind::ReminderDue, appointment, at, now, Some(at))),
        );
    }
    // Withdrawn before the new messages are stored, although none of them is a reminder: the
    // outbox may hold both writes back to the commit, and sends them in one statement only
    // when the withdrawal comes first (see `OutboxRepo::cancel_pending`).
    match kind {
        EventKind::BookingCancelled | EventKind::BookingRescheduled | EventKind::NoShow => {
            withdraw_reminders(ports, tx, appointment).await?;
        }
        EventKind::BookingConfirmed | EventKind::ReminderDue | EventKind::PatientCalled => {}
    }
    ports.outbox.enqueue_many(tx, &messages).await?;
    Ok(())
}

/// Withdraws, in the caller's unit of work, the reminders still pending for an appointment.
pub(crate) async fn withdraw_reminders(
    ports: &Ports,
    tx: &mut Tx,
    appointment: &Appointment,
) -> Result<(), ServiceError> {
    ports
        .outbox
        .cancel_pending(
            tx,
            appointment.clinic_id,
            appointment.id,
            EventKind::ReminderDue,
        )
        .await?;
    Ok(())
}

/// What one dispatch round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Messages claimed.
    pub claimed: usize,
    /// Accepted by their receivers.
    pub delivered: usize,
    /// To be tried again later.
    pub retried: usize,
    /// Given up on.
    pub dead: usize,
    /// Withdrawn at send time (reminders of appointments that started or ended).
    pub withdrawn: usize,
}

/// Delivers the outbox, and lets admins look at it.
#[derive(Debug, Clone)]
pub struct OutboxService {
    ports: Ports,
    lease: Duration,
}

impl OutboxService {
    /// Builds the service, with the default lease.
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            lease: LEASE,
        }
    }

    /// The same service holding claimed messages for `lease` instead of [`LEASE`]; it must
    /// exceed the longest delivery, or a slow receiver sees a message twice.
    pub fn with_lease(self, lease: Duration) -> Self {
        Self { lease, ..self }
    }

    /// One round: claims up to `limit` due messages, delivers them per clinic in batches of at
    /// most `batch` through `notifier`, and records each outcome under `policy`.
    pub async fn dispatch(
        &self,
        notifier: &dyn Notifier,
        policy: &RetryPolicy,
        limit: u32,
        batch: usize,
    ) -> Result<DispatchReport, ServiceError> {
        let now = self.ports.clock.now();
        let mut report = DispatchReport::default();
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        // One statement claims the batch and leases it: one more attempt each, and due again
        // only when the lease ends.
        let claimed = self
            .ports
            .outbox
            .claim_due(&mut tx, now, limit, now + self.lease)
            .await?;
        report.claimed = claimed.len();
        if claimed.is_empty() {
            return Ok(report);
        }
        let wanted = self.reminders_wanted(&mut tx, &claimed, now).await?;
        let mut endpoints = BTreeMap::new();
        let mut sendable = Vec::with_capacity(claimed.len());
        let mut withdrawn = Vec::new();
        for mut m in claimed {
            let unwanted = m.kind == EventKind::ReminderDue
                && !m.appointment_id.is_some_and(|id| wanted.contains(&id));
            if unwanted {
                // Checked at send time too: a reminder never goes out once the appointment
                // has started. The claim counted an attempt that is not made.
                m.status = DeliveryStatus::Cancelled;
                m.attempts = m.attempts.saturating_sub(1);
                withdrawn.push(m);
                continue;
            }
            if let std::collections::btree_map::Entry::Vacant(slot) = endpoints.entry(m.clinic_id) {
                // Resolved at send time: a webhook configured after a booking still gets the
                // messages that booking left pending.
                slot.insert(
                    match self.ports.clinics.webhook(&mut tx, m.clinic_id).await? {
                        Some(webhook) => Endpoint::Webhook(webhook),
                        None => Endpoint::Log,
                    },
                );
            }
            sendable.push(m);
        }
        report.withdrawn = withdrawn.len();
        if !withdrawn.is_empty() {
            self.ports.outbox.record_all(&mut tx, &withdrawn).await?;
        }
        tx.commit().await?;

        let mut by_clinic: BTreeMap<_, Vec<OutboxMessage>> = BTreeMap::new();
        for m in sendable {
            by_clinic.entry(m.clinic_id).or_default().push(m);
        }
        // Every request of the round at once, so a round lasts one delivery timeout however
        // many receivers it reaches; the lease is sized against that.
        let requests = by_clinic.iter().flat_map(|(clinic, messages)| {
            let endpoint = endpoints.get(clinic).unwrap_or(&Endpoint::Log);
            messages.chunks(batch.max(1)).map(move |chunk| async move {
                let results = notifier.deliver(endpoint, chunk).await;
                chunk.iter().cloned().zip(results).collect::<Vec<_>>()
            })
        });
        let outcomes: Vec<(OutboxMessage, AttemptOutcome)> = futures::future::join_all(requests)
            .await
            .into_iter()
            .flatten()
            .collect();
        let done = self.ports.clock.now();
        let mut recorded = Vec::with_capacity(outcomes.len());
        for (mut m, outcome) in outcomes {
            let (status, next) = policy.after(&outcome, m.attempts, done, rand::random::<f64>());
            m.status = status;
            match (&outcome, status) {
                (AttemptOutcome::Delivered, _) => {
                    m.delivered_at = Some(done);
                    report.delivered += 1;
                }
                (
                    AttemptOutcome::Retry(e) | AttemptOutcome::Refused(e),
                    DeliveryStatus::Pending,
                ) => {
                    m.last_error = Some(e.clone());
                    report.retried += 1;
                }
                (AttemptOutcome::Retry(e) | AttemptOutcome::Refused(e), _) => {
                    m.last_error = Some(e.clone());
                    report.dead += 1;
                }
            }
            if let Some(next) = next {
                m.next_attempt_at = next;
            }
            recorded.push(m);
        }
        // Every outcome of the round in one statement.
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        self.ports.outbox.record_all(&mut tx, &recorded).await?;
        tx.commit().await?;
        if report.dead > 0 {
            tracing::warn!(
                dead = report.dead,
                "outbox messages gave up after their last attempt"
            );
        }
        Ok(report)
    }

    /// The appointments of `claimed` reminders that still want them (active, not started),
    /// read with one query per clinic.
    async fn reminders_wanted(
        &self,
        tx: &mut Tx,
        claimed: &[OutboxMessage],
        now: DateTime<Utc>,
    ) -> Result<BTreeSet<AppointmentId>, ServiceError> {
        let mut by_clinic: BTreeMap<ClinicId, Vec<AppointmentId>> = BTreeMap::new();
        for m in claimed {
            if let (EventKind::ReminderDue, Some(id)) = (m.kind, m.appointment_id) {
                by_clinic.entry(m.clinic_id).or_default().push(id);
            }
        }
        let mut wanted = BTreeSet::new();
        for (clinic, ids) in by_clinic {
            let appointments = self.ports.appointments.get_many(tx, clinic, &ids).await?;
            wanted.extend(
                appointments
                    .into_iter()
                    .filter(|a| a.is_active() && reminder_still_useful(a.interval.start(), now))
                    .map(|a| a.id),
            );
        }
        Ok(wanted)
    }

    /// Pending messages of every clinic: the outbox depth.
    pub async fn depth(&self) -> Result<u64, ServiceError> {
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        Ok(self.ports.outbox.pending_count(&mut tx).await?)
    }

    /// One page of the clinic's messages (admins).
    pub async fn list(
        &self,
        actor: &Actor,
        status: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<OutboxMessage>, ServiceError> {
        actor.require(Permission::ManageClinic)?;
        let status = status
            .map(|s| s.parse::<DeliveryStatus>())
            .transpose()
            .map_err(|e| FieldErrors::single("status", e.0))?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        Ok(self
            .ports
            .outbox
            .list(&mut tx, actor.clinic_id, status, page)
            .await?)
    }

    /// Sends a dead (or pending) message again at once, with a fresh attempt count (admins).
    pub async fn retry(
        &self,
        actor: &Actor,
        id: OutboxMessageId,
    ) -> Result<OutboxMessage, ServiceError> {
        actor.require(Permission::ManageClinic)?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let mut m = self
            .ports
            .outbox
            .get(&mut tx, actor.clinic_id, id)
            .await?
            .ok_or(ServiceError::NotFound("outbox message"))?;
        if matches!(
            m.status,
            DeliveryStatus::Delivered | DeliveryStatus::Cancelled
        ) {
            return Err(FieldErrors::single(
                "status",
                format!("a {} message is not sent again", m.status),
            ));
        }
        m.status = DeliveryStatus::Pending;
        m.attempts = 0;
        m.next_attempt_at = self.ports.clock.now();
        self.ports.outbox.record(&mut tx, &m).await?;
        tx.commit().await?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use clinicflow_domain::{
        AppointmentId, AppointmentStatus, ClinicId, Interval, PatientId, PractitionerId, Urgency,
    };
    use clinicflow_ports::MockNotifier;

    use super::*;
    use crate::mocks::Mocks;

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000)
    }

    fn appointment(starts_in: Duration) -> Appointment {
        Appointment {
            id: AppointmentId::from_uuid(Uuid::from_u128(50)),
            clinic_id: ClinicId::from_uuid(Uuid::from_u128(1)),
            patient_id: PatientId::from_uuid(Uuid::from_u128(2)),
            practitioner_id: PractitionerId::from_uuid(Uuid::from_u128(3)),
            interval: Interval::starting_at(now() + starts_in, Duration::minutes(30))
                .expect("valid"),
            urgency: Urgency::Routine,
            reason: None,
            status: AppointmentStatus::Booked,
            version: 1,
            rescheduled_from: None,
            rescheduled_to: None,
            cancelled_by: None,
            cancel_reason: None,
            overbooked: false,
            created_at: now(),
            updated_at: now(),
            deleted_at: None,
        }
    }

    fn pending(kind: EventKind, n: u128) -> OutboxMessage {
        let mut m = message(kind, &appointment(Duration::hours(1)), now(), now(), None);
        m.id = OutboxMessageId::from_uuid(Uuid::from_u128(n));
        m
    }

    /// `m` as the claim returns it: leased, with the attempt counted.
    fn claimed(mut m: OutboxMessage) -> OutboxMessage {
        m.attempts += 1;
        m.next_attempt_at = now() + LEASE;
        m
    }

    #[tokio::test]
    async fn a_round_delivers_retries_and_withdraws_reminders_of_started_appointments() {
        let mut m = Mocks::new(now());
        m.outbox
            .expect_claim_due()
            .times(1)
            .withf(|_, at, limit, lease_until| {
                *at == now() && *limit == 10 && *lease_until == now() + LEASE
            })
            .returning(|_, _, _, _| {
                Ok(vec![
                    claimed(pending(EventKind::BookingConfirmed, 1)),
                    claimed(pending(EventKind::BookingCancelled, 2)),
                    claimed(pending(EventKind::ReminderDue, 3)),
                ])
            });
        // The reminder's appointment started five minutes ago: read once for the batch.
        m.appointments
            .expect_get_many()
            .times(1)
            .withf(|_, _, ids| ids.to_vec() == vec![appointment(Duration::hours(1)).id])
            .returning(|_, _, _| Ok(vec![appointment(-Duration::minutes(5))]));
        m.appointments.expect_get().never();
        // No webhook: the clinic's messages go to the log.
        m.clinics
            .expect_webhook()
            .times(1)
            .returning(|_, _| Ok(None));
        m.outbox.expect_record().never();
        let recorded = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = recorded.clone();
        m.outbox
            .expect_record_all()
            .times(2)
            .returning(move |_, batch| {
                sink.lock().expect("records").push(
                    batch
                        .iter()
                        .map(|msg| (msg.id.as_uuid().as_u128(), msg.status, msg.attempts))
                        .collect::<Vec<_>>(),
                );
                Ok(())
            });
        let (ports, commits) = m.ports();
        let mut notifier = MockNotifier::new();
        notifier
            .expect_deliver()
            .times(1)
            .withf(|endpoint, batch| {
                *endpoint == Endpoint::Log
                    && batch.len() == 2
                    && batch.iter().all(|m| m.attempts == 1)
            })
            .returning(|_, _| {
                vec![
                    AttemptOutcome::Delivered,
                    AttemptOutcome::Retry("503".into()),
                ]
            });
        let report = OutboxService::new(ports)
            .dispatch(&notifier, &RetryPolicy::default(), 10, 50)
            .await
            .expect("a round");
        assert_eq!(
            report,
            DispatchReport {
                claimed: 3,
                delivered: 1,
                retried: 1,
                dead: 0,
                withdrawn: 1
            }
        );
        assert_eq!(
            commits.load(Ordering::SeqCst),
            2,
            "the claim and the outcomes"
        );
        let records = recorded.lock().expect("records").clone();
        // One write for the withdrawal (its attempt not counted), one for every outcome.
        assert_eq!(
            records,
            [
                vec![(3, DeliveryStatus::Cancelled, 0)],
                vec![
                    (1, DeliveryStatus::Delivered, 1),
                    (2, DeliveryStatus::Pending, 1),
                ],
            ]
        );
    }

    #[tokio::test]
    async fn nothing_due_is_a_quiet_round() {
        let mut m = Mocks::new(now());
        m.outbox
            .expect_claim_due()
            .returning(|_, _, _, _| Ok(Vec::new()));
        m.outbox.expect_record_all().never();
        let (ports, commits) = m.ports();
        let mut notifier = MockNotifier::new();
        notifier.expect_deliver().never();
        let report = OutboxService::new(ports)
            .dispatch(&notifier, &RetryPolicy::default(), 10, 50)
            .await
            .expect("a round");
        assert_eq!(report, DispatchReport::default());
        assert_eq!(commits.load(Ordering::SeqCst), 0);
    }
}
