//! The walk-in queue: joining, the ordered board with wait estimates, calling the next
//! patient atomically, service (which opens and closes the encounter), and daily statistics.

use chrono::{DateTime, Duration, NaiveTime, TimeZone as _, Utc};
use clinicflow_domain::queue::{
    active_practitioners, appointment_deadline, estimated_wait, walk_in_deadline,
};
use clinicflow_domain::{
    Actor, Appointment, AppointmentStatus, AuditAction, Clinic, DeadlineRule, Encounter, Interval,
    PageRequest, PatientId, Permission, PractitionerId, QueueEntry, QueueEntryId, QueueStatus,
    ResourceType, TriageCategory,
};
use clinicflow_ports::{AppointmentFilter, PractitionerFilter, QueueScope, Tx, TxMode};
use uuid::Uuid;

use crate::audit::{self, Access, own_practitioner};
use crate::encounter::{Visit, close_visit, open_visit};
use crate::idempotency::{self, Answered, Once, Outcome};
use crate::{FieldErrors, Ports, ServiceError, input};

/// Service time assumed when a queue has no history yet.
pub const DEFAULT_SERVICE_MINUTES: i64 = 15;
/// How many recent visits the mean service time is taken over.
const SERVICE_HISTORY: u32 = 20;
/// Longest note on a queue entry.
const MAX_NOTE_CHARS: usize = 500;

/// The event topic of a clinic's queue.
pub fn topic(clinic: clinicflow_domain::ClinicId) -> String {
    format!("queue:{clinic}")
}

/// A walk-in joining the queue, as sent by a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinInput {
    /// The patient.
    pub patient_id: String,
    /// Waiting for this practitioner.
    pub practitioner_id: Option<String>,
    /// Or for this department.
    pub department: Option<String>,
    /// Triage category.
    pub category: String,
    /// Free text.
    pub note: Option<String>,
}

/// A move of a queue entry requested through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueAction {
    /// called -> in_service; opens the encounter.
    Start,
    /// in_service -> done; closes the encounter and completes the appointment.
    Finish,
    /// waiting|called -> left.
    Leave,
    /// called -> waiting, keeping the deadline.
    Recall,
    /// A new triage category; recomputes this entry's deadline.
    Retriage(String),
}

/// One entry on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardEntry {
    /// The entry.
    pub entry: QueueEntry,
    /// 1-based place among the waiting; `None` once called.
    pub position: Option<usize>,
    /// Expected wait from now, for the waiting.
    pub estimated_wait: Option<Duration>,
}

/// The ordered queue of a scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    /// Open entries in serve order.
    pub entries: Vec<BoardEntry>,
    /// The clinic (its queue settings explain the deadlines).
    pub clinic: Clinic,
    /// Mean service time the estimates use.
    pub mean_service: Duration,
    /// Practitioners the waiting are shared across.
    pub practitioners: u32,
    /// When the board was computed.
    pub now: DateTime<Utc>,
}

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

/// Runs the queue.
#[derive(Debug, Clone)]
pub struct QueueService {
    ports: Ports,
}

fn parse_note(errors: &mut FieldErrors, raw: Option<&str>) -> Option<String> {
    match raw.map(str::trim) {
        None | Some("") => None,
        Some(s) if s.chars().count() > MAX_NOTE_CHARS => {
            errors.add(
                "note",
                format!("must be at most {MAX_NOTE_CHARS} characters"),
            );
            None
        }
        Some(s) => Some(s.to_owned()),
    }
}

/// Puts a checked-in appointment in the queue, in the caller's unit of work.
pub(crate) async fn enqueue_appointment(
    ports: &Ports,
    tx: &mut Tx,
    clinic: &Clinic,
    appointment: &Appointment,
    now: DateTime<Utc>,
) -> Result<QueueEntry, ServiceError> {
    let starts_at = appointment.interval.start();
    let entry = QueueEntry {
        id: QueueEntryId::from_uuid(Uuid::now_v7()),
        clinic_id: clinic.id,
        patient_id: appointment.patient_id,
        practitioner_id: Some(appointment.practitioner_id),
        department: None,
        appointment_id: Some(appointment.id),
        category: TriageCategory::for_urgency(appointment.urgency),
        rule: DeadlineRule::Appointment { starts_at },
        arrived_at: now,
        deadline: appointment_deadline(now, starts_at, &clinic.queue),
        status: QueueStatus::Waiting,
        note: None,
        called_by: None,
        called_at: None,
        started_at: None,
        finished_at: None,
        left_at: None,
        recalled_at: None,
        version: 1,
        updated_at: now,
    };
    ports.queue.insert(tx, &entry).await?;
    Ok(entry)
}

/// Moves an appointment's open queue entry to match the appointment's new status (in
/// progress -> in service, completed -> done, cancelled or no-show -> left), stepping through
/// the entry's own machine; whether an entry moved.
pub(crate) async fn follow_appointment(
    ports: &Ports,
    tx: &mut Tx,
    appointment: &Appointment,
    now: DateTime<Utc>,
) -> Result<bool, ServiceError> {
    let target = match appointment.status {
        AppointmentStatus::InProgress => QueueStatus::InService,
        AppointmentStatus::Completed => QueueStatus::Done,
        AppointmentStatus::Cancelled | AppointmentStatus::NoShow => QueueStatus::Left,
        _ => return Ok(false),
    };
    let Some(mut entry) = ports
        .queue
        .for_appointment(tx, appointment.clinic_id, appointment.id)
        .await?
    else {
        return Ok(false);
    };
    let expected = entry.version;
    while entry.status != target {
        let next = match (entry.status, target) {
            (QueueStatus::Waiting | QueueStatus::Called, QueueStatus::Left) => QueueStatus::Left,
            (QueueStatus::Waiting, _) => QueueStatus::Called,
            (QueueStatus::Called, _) => QueueStatus::InService,
            (QueueStatus::InService, QueueStatus::Done) => QueueStatus::Done,
            // Nothing sensible to follow (an entry in service cannot be "left").
            _ => break,
        };
        if next == QueueStatus::Called {
            entry.called_by = Some(appointment.practitioner_id);
        }
        entry
            .transition(next, now)
            .map_err(ServiceError::IllegalQueueMove)?;
    }
    if entry.version == expected {
        return Ok(false);
    }
    // The entry moved several steps in one write: it is stored once, at its new version.
    ports.queue.update(tx, &entry, expected).await?;
    Ok(true)
}

/// Tells every board of the clinic, on every instance, that the queue changed.
pub(crate) async fn announce(ports: &Ports, clinic: clinicflow_domain::ClinicId) {
    ports
        .events
        .publish(&topic(clinic), b"changed".to_vec())
        .await;
}

impl QueueService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// Adds a walk-in with its triage category; the deadline follows from arrival and category.
    #[tracing::instrument(skip_all)]
    pub async fn join(&self, actor: &Actor, input: JoinInput) -> Result<QueueEntry, ServiceError> {
        self.join_with(actor, input, None).await?.value()
    }

    /// Adds a walk-in at most once per idempotency key: a retry gets the first answer.
    #[tracing::instrument(skip_all)]
    pub async fn join_idempotent(
        &self,
        actor: &Actor,
        input: JoinInput,
        once: &Once<'_, QueueEntry>,
    ) -> Result<Answered, ServiceError> {
        self.join_with(actor, input, Some(once)).await?.answered()
    }

    async fn join_with(
        &self,
        actor: &Actor,
        input: JoinInput,
        once: Option<&Once<'_, QueueEntry>>,
    ) -> Result<Outcome<QueueEntry>, ServiceError> {
        let create = Access::kind(AuditAction::Create, ResourceType::QueueEntry);
        audit::require(&self.ports, actor, Permission::ManageQueue, create).await?;
        let mut errors = FieldErrors::new();
        let patient_id = errors
            .check("patient_id", input::id(&input.patient_id))
            .map(PatientId::from_uuid);
        let practitioner_id = input
            .practitioner_id
            .as_deref()
            .and_then(|v| errors.check("practitioner_id", input::id(v)))
            .map(PractitionerId::from_uuid);
        let department = input.department.as_deref().and_then(|d| {
            errors.check("department", clinicflow_domain::practitioner::parse_code(d))
        });
        if practitioner_id.is_some() && department.is_some() {
            errors.add(
                "department",
                "name a practitioner or a department, not both",
            );
        }
        let category = errors.check("category", input.category.parse::<TriageCategory>());
        let note = parse_note(&mut errors, input.note.as_deref());
        errors.into_result()?;
        let (Some(patient_id), Some(category)) = (patient_id, category) else {
            unreachable!("parsed when no error was recorded")
        };
        let now = self.ports.clock.now();
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        if let Some(earlier) = idempotency::claim(&self.ports, &mut tx, actor, once).await? {
            return Ok(earlier);
        }
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        if self
            .ports
            .patients
            .get(&mut tx, actor.clinic_id, patient_id)
            .await?
            .is_none()
        {
            return Err(FieldErrors::single(
                "patient_id",
                "no such patient in this clinic",
            ));
        }
        if let Some(p) = practitioner_id {
            let practitioner = self
                .ports
                .practitioners
                .get(&mut tx, actor.clinic_id, p)
                .await?
                .ok_or_else(|| {
                    FieldErrors::single("practitioner_id", "no such practitioner in this clinic")
                })?;
            if !practitioner.active {
                return Err(ServiceError::PractitionerInactive);
            }
        }
        // The early, helpful answer; the partial unique index on the patient's open entries
        // is the guarantee when two joins race (`RepoError::AlreadyQueued`).
        if self
            .ports
            .queue
            .open_for_patient(&mut tx, actor.clinic_id, patient_id)
            .await?
            .is_some()
        {
            return Err(ServiceError::AlreadyInQueue);
        }
        let entry = QueueEntry {
            id: QueueEntryId::from_uuid(Uuid::now_v7()),
            clinic_id: actor.clinic_id,
            patient_id,
            practitioner_id,
            department,
            appointment_id: None,
            category,
            rule: DeadlineRule::WalkIn,
            arrived_at: now,
            deadline: walk_in_deadline(now, category, &clinic.queue),
            status: QueueStatus::Waiting,
            note,
            called_by: None,
            called_at: None,
            started_at: None,
            finished_at: None,
            left_at: None,
            recalled_at: None,
            version: 1,
            updated_at: now,
        };
        self.ports.queue.insert(&mut tx, &entry).await?;
        let access = Access {
            resource_id: Some(entry.id.as_uuid()),
            ..Access::patient(AuditAction::Create, patient_id)
        };
        audit::record(
            &self.ports,
            &mut tx,
            actor,
            Access {
                resource_type: ResourceType::QueueEntry,
                ..access
            },
        )
        .await?;
        let outcome = idempotency::finish(&self.ports, &mut tx, actor, once, entry).await?;
        tx.commit().await?;
        announce(&self.ports, actor.clinic_id).await;
        Ok(outcome)
    }

    async fn scope(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        practitioner: Option<PractitionerId>,
        department: Option<String>,
    ) -> Result<QueueScope, ServiceError> {
        let Some(id) = practitioner else {
            return Ok(QueueScope {
                practitioner_id: None,
                department,
            });
        };
        let p = self
            .ports
            .practitioners
            .get(tx, actor.clinic_id, id)
            .await?
            .ok_or_else(|| {
                FieldErrors::single("practitioner_id", "no such practitioner in this clinic")
            })?;
        Ok(QueueScope {
            practitioner_id: Some(id),
            department: p.department,
        })
    }

    /// The open entries of a scope in serve order, with positions and wait estimates.
    pub async fn board(
        &self,
        actor: &Actor,
        practitioner_id: Option<&str>,
        department: Option<&str>,
    ) -> Result<Board, ServiceError> {
        self.read_board(actor, practitioner_id, department, true)
            .await
    }

    /// The board again for a live stream whose opening [`QueueService::board`] was audited:
    /// pushes of the same view are not logged one by one.
    pub async fn board_refresh(
        &self,
        actor: &Actor,
        practitioner_id: Option<&str>,
        department: Option<&str>,
    ) -> Result<Board, ServiceError> {
        self.read_board(actor, practitioner_id, department, false)
            .await
    }

    async fn read_board(
        &self,
        actor: &Actor,
        practitioner_id: Option<&str>,
        department: Option<&str>,
        audited: bool,
    ) -> Result<Board, ServiceError> {
        let access = Access::list(ResourceType::QueueEntry, None);
        audit::require(&self.ports, actor, Permission::ReadQueue, access).await?;
        let mut errors = FieldErrors::new();
        let practitioner = practitioner_id
            .and_then(|v| errors.check("practitioner_id", input::id(v)))
            .map(PractitionerId::from_uuid);
        let department = department.and_then(|d| {
            errors.check("department", clinicflow_domain::practitioner::parse_code(d))
        });
        errors.into_result()?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        let scope = self.scope(&mut tx, actor, practitioner, department).await?;
        let entries = self
            .ports
            .queue
            .open(&mut tx, actor.clinic_id, &scope)
            .await?;
        let serving: Vec<PractitionerId> = match scope.practitioner_id {
            Some(p) => vec![p],
            None => {
                // A deactivated practitioner serves nobody, so shares no wait.
                let filter = PractitionerFilter {
                    specialty: None,
                    department: scope.department.clone(),
                    active: Some(true),
                };
                let page = PageRequest::first(200);
                self.ports
                    .practitioners
                    .list(&mut tx, actor.clinic_id, &filter, page)
                    .await?
                    .items
                    .into_iter()
                    .map(|p| p.id)
                    .collect()
            }
        };
        let history = self
            .ports
            .encounters
            .recently_ended(&mut tx, actor.clinic_id, &serving, SERVICE_HISTORY)
            .await?;
        if audited {
            audit::record(&self.ports, &mut tx, actor, access).await?;
        }
        tx.commit().await?;
        // A visit recorded after the fact (started and completed at once through the
        // appointment routes) took no measurable time and says nothing about service times.
        let times: Vec<Duration> = history
            .iter()
            .filter_map(Encounter::service_time)
            .filter(|t| *t > Duration::zero())
            .collect();
        let mean_service = mean(&times).unwrap_or(Duration::minutes(DEFAULT_SERVICE_MINUTES));
        let ended: Vec<_> = history
            .iter()
            .filter_map(|e| Some((e.practitioner_id, e.ended_at?)))
            .collect();
        // On a practitioner's board `serving` is that practitioner alone, so this is 1.
        let practitioners =
            active_practitioners(&serving, &entries, &ended, self.ports.clock.now());
        let mut position = 0;
        let entries = entries
            .into_iter()
            .map(|entry| {
                if entry.status == QueueStatus::Waiting {
                    position += 1;
                    BoardEntry {
                        entry,
                        position: Some(position),
                        estimated_wait: Some(estimated_wait(
                            position - 1,
                            mean_service,
                            practitioners,
                        )),
                    }
                } else {
                    BoardEntry {
                        entry,
                        position: None,
                        estimated_wait: None,
                    }
                }
            })
            .collect();
        Ok(Board {
            entries,
            clinic,
            mean_service,
            practitioners,
            now: self.ports.clock.now(),
        })
    }

    /// Calls the first waiting patient the practitioner may serve; `None` when nobody waits.
    /// Two practitioners calling at once never get the same patient.
    #[tracing::instrument(skip_all)]
    pub async fn call_next(
        &self,
        actor: &Actor,
        practitioner_id: &str,
    ) -> Result<Option<QueueEntry>, ServiceError> {
        let update = Access::kind(AuditAction::Update, ResourceType::QueueEntry);
        audit::require(&self.ports, actor, Permission::ServePatients, update).await?;
        let practitioner = PractitionerId::from_uuid(
            input::id(practitioner_id).map_err(|e| FieldErrors::single("practitioner_id", e.0))?,
        );
        if own_practitioner(actor).is_some_and(|own| own != practitioner) {
            return Err(ServiceError::Forbidden(
                "a practitioner calls patients for themselves only".into(),
            ));
        }
        let now = self.ports.clock.now();
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let scope = self.scope(&mut tx, actor, Some(practitioner), None).await?;
        let Some(mut entry) = self
            .ports
            .queue
            .lock_next_waiting(&mut tx, actor.clinic_id, &scope)
            .await?
        else {
            return Ok(None);
        };
        let expected = entry.version;
        entry
            .transition(QueueStatus::Called, now)
            .map_err(|e| ServiceError::Unexpected(e.into()))?;
        entry.called_by = Some(practitioner);
        self.ports.queue.update(&mut tx, &entry, expected).await?;
        audit::record(
            &self.ports,
            &mut tx,
            actor,
            entry_access(AuditAction::Update, &entry),
        )
        .await?;
        crate::outbox::announce_call(&self.ports, &mut tx, &entry, now).await?;
        tx.commit().await?;
        announce(&self.ports, actor.clinic_id).await;
        Ok(Some(entry))
    }

    /// Moves an entry (start, finish, leave, recall, re-triage); starting and finishing open and
    /// close the encounter and move the appointment along, in the same unit of work.
    #[tracing::instrument(skip_all, fields(queue_entry_id = %id))]
    pub async fn act(
        &self,
        actor: &Actor,
        id: QueueEntryId,
        action: QueueAction,
    ) -> Result<QueueEntry, ServiceError> {
        let permission = match action {
            QueueAction::Start | QueueAction::Finish => Permission::ServePatients,
            QueueAction::Leave | QueueAction::Recall | QueueAction::Retriage(_) => {
                Permission::ManageQueue
            }
        };
        let update = Access {
            resource_id: Some(id.as_uuid()),
            ..Access::kind(AuditAction::Update, ResourceType::QueueEntry)
        };
        audit::require(&self.ports, actor, permission, update).await?;
        let category = match &action {
            QueueAction::Retriage(raw) => Some(
                raw.parse::<TriageCategory>()
                    .map_err(|e| FieldErrors::single("category", e.0))?,
            ),
            _ => None,
        };
        let now = self.ports.clock.now();
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        let mut entry = self
            .ports
            .queue
            .get(&mut tx, actor.clinic_id, id)
            .await?
            .ok_or(ServiceError::NotFound("queue entry"))?;
        // As with call-next: a practitioner serves the patients they called, not a colleague's.
        if matches!(action, QueueAction::Start | QueueAction::Finish)
            && let Some(own) = own_practitioner(actor)
            && entry.called_by != Some(own)
        {
            return Err(ServiceError::Forbidden(
                "a practitioner starts and finishes only the patients they called".into(),
            ));
        }
        let expected = entry.version;
        let illegal =
            |e: clinicflow_domain::queue::IllegalQueueMove| ServiceError::IllegalQueueMove(e);
        match action {
            QueueAction::Start => {
                entry
                    .transition(QueueStatus::InService, now)
                    .map_err(illegal)?;
                self.open_encounter(&mut tx, actor, &entry, now).await?;
            }
            QueueAction::Finish => {
                entry.transition(QueueStatus::Done, now).map_err(illegal)?;
                self.close_encounter(&mut tx, actor, &clinic, &entry, now)
                    .await?;
            }
            QueueAction::Leave => entry.transition(QueueStatus::Left, now).map_err(illegal)?,
            QueueAction::Recall => entry
                .transition(QueueStatus::Waiting, now)
                .map_err(illegal)?,
            QueueAction::Retriage(_) => {
                if !entry.status.is_open() || entry.status == QueueStatus::InService {
                    return Err(illegal(clinicflow_domain::queue::IllegalQueueMove {
                        from: entry.status,
                        to: entry.status,
                        allowed: entry.status.allowed_moves().to_vec(),
                    }));
                }
                let Some(category) = category else {
                    unreachable!("parsed above")
                };
                entry.retriage(category, &clinic.queue, now);
            }
        }
        self.ports.queue.update(&mut tx, &entry, expected).await?;
        audit::record(
            &self.ports,
            &mut tx,
            actor,
            entry_access(AuditAction::Update, &entry),
        )
        .await?;
        tx.commit().await?;
        announce(&self.ports, actor.clinic_id).await;
        Ok(entry)
    }

    async fn open_encounter(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        entry: &QueueEntry,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let practitioner_id = entry.called_by.or(entry.practitioner_id).ok_or_else(|| {
            FieldErrors::single("practitioner_id", "the entry was called by no practitioner")
        })?;
        let visit = Visit {
            patient_id: entry.patient_id,
            practitioner_id,
            appointment_id: entry.appointment_id,
            queue_entry_id: Some(entry.id),
        };
        open_visit(&self.ports, tx, actor, visit, now).await?;
        if let Some(id) = entry.appointment_id {
            self.move_appointment(tx, actor, id, AppointmentStatus::InProgress, now)
                .await?;
        }
        Ok(())
    }

    async fn close_encounter(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        clinic: &Clinic,
        entry: &QueueEntry,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        if let Some(encounter) = self
            .ports
            .encounters
            .open_for_entry(tx, clinic.id, entry.id)
            .await?
        {
            close_visit(&self.ports, tx, encounter, now).await?;
        }
        if let Some(id) = entry.appointment_id {
            self.move_appointment(tx, actor, id, AppointmentStatus::Completed, now)
                .await?;
        }
        Ok(())
    }

    /// Moves the linked appointment along with the visit when its status allows it.
    async fn move_appointment(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: clinicflow_domain::AppointmentId,
        to: AppointmentStatus,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let Some(mut appointment) = self.ports.appointments.get(tx, actor.clinic_id, id).await?
        else {
            return Ok(());
        };
        if !appointment.status.allowed_moves().contains(&to) {
            return Ok(());
        }
        let expected = appointment.version;
        appointment.transition(to, now, Duration::zero())?;
        self.ports
            .appointments
            .update(tx, &appointment, expected)
            .await?;
        let access =
            Access::appointment(AuditAction::Update, appointment.id, appointment.patient_id);
        audit::record(&self.ports, tx, actor, access).await
    }

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

fn entry_access(action: AuditAction, entry: &QueueEntry) -> Access {
    Access {
        action,
        resource_type: ResourceType::QueueEntry,
        resource_id: Some(entry.id.as_uuid()),
        patient_id: Some(entry.patient_id),
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
fn percentile(values: &[Duration], quantile: f64) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p90_of_one_to_ten_minutes_is_nine_minutes() {
        let waits: Vec<Duration> = (1..=10).map(Duration::minutes).collect();
        let p90 = percentile(&waits, 0.9).expect("values");
        assert!(
            (p90 - Duration::minutes(9)).num_seconds().abs() <= 1,
            "{p90}"
        );
        assert_eq!(mean(&waits), Some(Duration::seconds(330)));
        assert_eq!(percentile(&[], 0.9), None);
    }

    #[test]
    fn a_local_day_spans_23_hours_on_the_spring_change() {
        let clinic = Clinic {
            id: clinicflow_domain::ClinicId::from_uuid(Uuid::nil()),
            name: clinicflow_domain::ClinicName::parse("X").expect("valid"),
            time_zone: clinicflow_domain::TimeZone::parse("Europe/Berlin").expect("valid"),
            no_show_grace_minutes: 15,
            queue: clinicflow_domain::QueueSettings::default(),
            reminders: clinicflow_domain::ReminderOffsets::default(),
            check_in: clinicflow_domain::CheckInWindow::default(),
        };
        let day = local_day(
            &clinic,
            chrono::NaiveDate::from_ymd_opt(2026, 3, 29).expect("valid"),
        )
        .expect("a day");
        assert_eq!(day.duration(), Duration::hours(23));
    }

    fn entry(n: u128, status: QueueStatus) -> QueueEntry {
        let at = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
        QueueEntry {
            id: QueueEntryId::from_uuid(Uuid::from_u128(n)),
            clinic_id: clinicflow_domain::ClinicId::from_uuid(Uuid::from_u128(1)),
            patient_id: PatientId::from_uuid(Uuid::from_u128(100 + n)),
            practitioner_id: None,
            department: None,
            appointment_id: None,
            category: TriageCategory::Standard,
            rule: DeadlineRule::WalkIn,
            arrived_at: at,
            deadline: at + Duration::minutes(120),
            status,
            note: None,
            called_by: None,
            called_at: None,
            started_at: None,
            finished_at: None,
            left_at: None,
            recalled_at: None,
            version: 1,
            updated_at: at,
        }
    }

    fn nurse() -> Actor {
        Actor {
            user_id: clinicflow_domain::UserId::from_uuid(Uuid::from_u128(9)),
            clinic_id: clinicflow_domain::ClinicId::from_uuid(Uuid::from_u128(1)),
            role: clinicflow_domain::Role::Nurse,
            practitioner_id: None,
            request_id: None,
        }
    }

    fn house() -> clinicflow_domain::Practitioner {
        clinicflow_domain::Practitioner {
            id: PractitionerId::from_uuid(Uuid::from_u128(3)),
            clinic_id: clinicflow_domain::ClinicId::from_uuid(Uuid::from_u128(1)),
            name: clinicflow_domain::PersonName::parse("Gregory", "House").expect("valid"),
            specialties: Vec::new(),
            department: Some("internal-medicine".into()),
            slot_minutes: 30,
            buffer_minutes: 0,
            active: true,
            version: 1,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn calling_next_takes_the_locked_entry_for_that_practitioner_and_announces_it() {
        let mut m = crate::mocks::Mocks::new(DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_001));
        m.practitioners
            .expect_get()
            .returning(|_, _, _| Ok(Some(house())));
        m.queue
            .expect_lock_next_waiting()
            .times(1)
            .withf(|_, _, scope| {
                scope.practitioner_id == Some(house().id)
                    && scope.department.as_deref() == Some("internal-medicine")
            })
            .returning(|_, _, _| Ok(Some(entry(1, QueueStatus::Waiting))));
        m.queue
            .expect_update()
            .times(1)
            .withf(|_, e, expected| {
                e.status == QueueStatus::Called && e.called_by == Some(house().id) && *expected == 1
            })
            .returning(|_, _, _| Ok(()));
        m.audit.expect_append().times(1).returning(|_, _| Ok(()));
        m.outbox
            .expect_enqueue()
            .times(1)
            .withf(|_, msg| {
                msg.kind == clinicflow_domain::EventKind::PatientCalled
                    && msg.payload.contains(&house().id.to_string())
            })
            .returning(|_, _| Ok(()));
        m.events.expect_publish().times(1).return_const(());
        let (ports, commits) = m.ports();
        let called = QueueService::new(ports)
            .call_next(&nurse(), &house().id.to_string())
            .await
            .expect("called")
            .expect("someone waits");
        assert_eq!(called.id, entry(1, QueueStatus::Waiting).id);
        assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_empty_queue_calls_nobody_and_writes_nothing() {
        let mut m = crate::mocks::Mocks::new(DateTime::<Utc>::UNIX_EPOCH);
        m.practitioners
            .expect_get()
            .returning(|_, _, _| Ok(Some(house())));
        m.queue
            .expect_lock_next_waiting()
            .returning(|_, _, _| Ok(None));
        m.queue.expect_update().never();
        m.events.expect_publish().never();
        let (ports, commits) = m.ports();
        let called = QueueService::new(ports)
            .call_next(&nurse(), &house().id.to_string())
            .await
            .expect("answered");
        assert_eq!(called, None);
        assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    /// A clinic with targets of its own, so that a deadline shows where it came from.
    fn clinic(zone: &str) -> Clinic {
        Clinic {
            id: clinicflow_domain::ClinicId::from_uuid(Uuid::from_u128(1)),
            name: clinicflow_domain::ClinicName::parse("Praxis").expect("valid"),
            time_zone: clinicflow_domain::TimeZone::parse(zone).expect("valid"),
            no_show_grace_minutes: 15,
            queue: clinicflow_domain::QueueSettings {
                target_minutes: [0, 5, 30, 90, 180],
                checkin_grace_minutes: 10,
            },
            reminders: clinicflow_domain::ReminderOffsets::default(),
            check_in: clinicflow_domain::CheckInWindow::default(),
        }
    }

    fn patient() -> clinicflow_domain::Patient {
        clinicflow_domain::Patient {
            id: PatientId::from_uuid(Uuid::from_u128(101)),
            clinic_id: clinic("UTC").id,
            name: clinicflow_domain::PersonName::parse("Ada", "Lovelace").expect("valid"),
            birth_date: clinicflow_domain::BirthDate::from_stored(
                chrono::NaiveDate::from_ymd_opt(1985, 12, 10).expect("valid"),
            ),
            sex: clinicflow_domain::Sex::Female,
            phone: None,
            email: None,
            emergency_contact: None,
            insurance: None,
            version: 1,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            deleted_at: None,
        }
    }

    fn appointment(status: AppointmentStatus) -> Appointment {
        let starts_at = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
        Appointment {
            id: clinicflow_domain::AppointmentId::from_uuid(Uuid::from_u128(50)),
            clinic_id: clinic("UTC").id,
            patient_id: PatientId::from_uuid(Uuid::from_u128(101)),
            practitioner_id: house().id,
            interval: Interval::starting_at(starts_at, Duration::minutes(30)).expect("valid"),
            urgency: clinicflow_domain::Urgency::Routine,
            reason: None,
            status,
            version: 3,
            rescheduled_from: None,
            rescheduled_to: None,
            cancelled_by: None,
            cancel_reason: None,
            overbooked: false,
            created_at: starts_at,
            updated_at: starts_at,
            deleted_at: None,
        }
    }

    /// Entry 1 of the appointment above, called by House and moved to `status`.
    fn checked_in(status: QueueStatus) -> QueueEntry {
        QueueEntry {
            appointment_id: Some(appointment(AppointmentStatus::CheckedIn).id),
            called_by: Some(house().id),
            version: 2,
            ..entry(1, status)
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(40)
    }

    fn mocks_with_clinic() -> crate::mocks::Mocks {
        let mut m = crate::mocks::Mocks::new(now());
        m.clinics
            .expect_get()
            .returning(|_, _| Ok(Some(clinic("UTC"))));
        m
    }

    #[tokio::test]
    async fn a_walk_in_is_due_its_clinics_target_after_arriving() {
        let mut m = mocks_with_clinic();
        m.patients
            .expect_get()
            .times(1)
            .returning(|_, _, _| Ok(Some(patient())));
        m.queue
            .expect_open_for_patient()
            .times(1)
            .returning(|_, _, _| Ok(None));
        m.queue
            .expect_insert()
            .times(1)
            .withf(|_, e| {
                e.rule == DeadlineRule::WalkIn
                    && e.category == TriageCategory::Urgent
                    && e.status == QueueStatus::Waiting
                    && e.arrived_at == now()
                    && e.deadline == now() + Duration::minutes(30)
                    && e.note.as_deref() == Some("dizzy")
            })
            .returning(|_, _| Ok(()));
        m.audit.expect_append().times(1).returning(|_, _| Ok(()));
        m.events.expect_publish().times(1).return_const(());
        let (ports, commits) = m.ports();
        let input = JoinInput {
            patient_id: patient().id.to_string(),
            category: "urgent".into(),
            note: Some("  dizzy ".into()),
            ..JoinInput::default()
        };
        let joined = QueueService::new(ports)
            .join(&nurse(), input)
            .await
            .expect("joined");
        assert_eq!(
            joined.deadline,
            now() + Duration::minutes(30),
            "the clinic's 30-minute urgent target, not the default 60"
        );
        assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    fn walk_in() -> JoinInput {
        JoinInput {
            patient_id: patient().id.to_string(),
            category: "standard".into(),
            ..JoinInput::default()
        }
    }

    #[tokio::test]
    async fn a_patient_who_already_waits_is_refused_before_anything_is_written() {
        let mut m = mocks_with_clinic();
        m.patients
            .expect_get()
            .returning(|_, _, _| Ok(Some(patient())));
        m.queue
            .expect_open_for_patient()
            .times(1)
            .returning(|_, _, _| Ok(Some(checked_in(QueueStatus::Waiting))));
        m.queue.expect_insert().never();
        m.events.expect_publish().never();
        let (ports, commits) = m.ports();
        let err = QueueService::new(ports)
            .join(&nurse(), walk_in())
            .await
            .expect_err("already waiting");
        assert!(matches!(err, ServiceError::AlreadyInQueue), "got {err:?}");
        assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_second_entry_the_database_refuses_is_the_same_conflict() {
        // Two desks add the patient at once: both pass the early check, the index decides.
        let mut m = mocks_with_clinic();
        m.patients
            .expect_get()
            .returning(|_, _, _| Ok(Some(patient())));
        m.queue
            .expect_open_for_patient()
            .returning(|_, _, _| Ok(None));
        m.queue
            .expect_insert()
            .times(1)
            .returning(|_, _| Err(clinicflow_ports::RepoError::AlreadyQueued));
        m.events.expect_publish().never();
        let (ports, commits) = m.ports();
        let err = QueueService::new(ports)
            .join(&nurse(), walk_in())
            .await
            .expect_err("lost the race");
        assert!(matches!(err, ServiceError::AlreadyInQueue), "got {err:?}");
        assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn starting_service_opens_an_encounter_and_moves_the_appointment_in_progress() {
        let mut m = mocks_with_clinic();
        m.queue
            .expect_get()
            .returning(|_, _, _| Ok(Some(checked_in(QueueStatus::Called))));
        m.encounters
            .expect_insert()
            .times(1)
            .withf(|_, v| {
                v.practitioner_id == house().id
                    && v.patient_id == entry(1, QueueStatus::Called).patient_id
                    && v.queue_entry_id == Some(entry(1, QueueStatus::Called).id)
                    && v.appointment_id == checked_in(QueueStatus::Called).appointment_id
                    && v.started_at == now()
                    && v.ended_at.is_none()
            })
            .returning(|_, _| Ok(()));
        m.appointments
            .expect_get()
            .returning(|_, _, _| Ok(Some(appointment(AppointmentStatus::CheckedIn))));
        m.appointments
            .expect_update()
            .times(1)
            .withf(|_, a, expected| a.status == AppointmentStatus::InProgress && *expected == 3)
            .returning(|_, _, _| Ok(()));
        m.queue
            .expect_update()
            .times(1)
            .withf(|_, e, expected| {
                e.status == QueueStatus::InService && e.started_at == Some(now()) && *expected == 2
            })
            .returning(|_, _, _| Ok(()));
        // The encounter made, the appointment moved, the entry moved.
        m.audit.expect_append().times(3).returning(|_, _| Ok(()));
        m.events.expect_publish().times(1).return_const(());
        let (ports, commits) = m.ports();
        let started = QueueService::new(ports)
            .act(
                &nurse(),
                entry(1, QueueStatus::Called).id,
                QueueAction::Start,
            )
            .await
            .expect("started");
        assert_eq!(started.status, QueueStatus::InService);
        assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn finishing_closes_the_encounter_and_completes_the_appointment() {
        let mut m = mocks_with_clinic();
        m.queue
            .expect_get()
            .returning(|_, _, _| Ok(Some(checked_in(QueueStatus::InService))));
        m.encounters
            .expect_open_for_entry()
            .times(1)
            .withf(|_, _, id| *id == entry(1, QueueStatus::InService).id)
            .returning(|_, _, _| {
                Ok(Some(Encounter {
                    id: clinicflow_domain::EncounterId::from_uuid(Uuid::from_u128(70)),
                    clinic_id: clinic("UTC").id,
                    patient_id: entry(1, QueueStatus::InService).patient_id,
                    practitioner_id: house().id,
                    appointment_id: checked_in(QueueStatus::InService).appointment_id,
                    queue_entry_id: Some(entry(1, QueueStatus::InService).id),
                    started_at: now() - Duration::minutes(12),
                    ended_at: None,
                    notes: Some("fluids".into()),
                    version: 1,
                    updated_at: now() - Duration::minutes(12),
                }))
            });
        m.encounters
            .expect_update()
            .times(1)
            .withf(|_, v, expected| {
                v.ended_at == Some(now())
                    && v.notes.as_deref() == Some("fluids")
                    && v.version == 2
                    && *expected == 1
            })
            .returning(|_, _, _| Ok(()));
        m.appointments
            .expect_get()
            .returning(|_, _, _| Ok(Some(appointment(AppointmentStatus::InProgress))));
        m.appointments
            .expect_update()
            .times(1)
            .withf(|_, a, _| a.status == AppointmentStatus::Completed)
            .returning(|_, _, _| Ok(()));
        m.queue
            .expect_update()
            .times(1)
            .withf(|_, e, _| e.status == QueueStatus::Done && e.finished_at == Some(now()))
            .returning(|_, _, _| Ok(()));
        m.audit.expect_append().times(2).returning(|_, _| Ok(()));
        m.events.expect_publish().times(1).return_const(());
        let (ports, commits) = m.ports();
        QueueService::new(ports)
            .act(
                &nurse(),
                entry(1, QueueStatus::InService).id,
                QueueAction::Finish,
            )
            .await
            .expect("finished");
        assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_retriage_recomputes_that_entrys_deadline_from_the_clinics_targets() {
        let mut m = mocks_with_clinic();
        m.queue
            .expect_get()
            .returning(|_, _, _| Ok(Some(entry(1, QueueStatus::Waiting))));
        let arrived_at = entry(1, QueueStatus::Waiting).arrived_at;
        m.queue
            .expect_update()
            .times(1)
            .withf(move |_, e, expected| {
                e.category == TriageCategory::VeryUrgent
                    && e.deadline == arrived_at + Duration::minutes(5)
                    && e.status == QueueStatus::Waiting
                    && *expected == 1
            })
            .returning(|_, _, _| Ok(()));
        m.audit.expect_append().times(1).returning(|_, _| Ok(()));
        m.events.expect_publish().times(1).return_const(());
        let (ports, _) = m.ports();
        let moved = QueueService::new(ports)
            .act(
                &nurse(),
                entry(1, QueueStatus::Waiting).id,
                QueueAction::Retriage("very_urgent".into()),
            )
            .await
            .expect("re-triaged");
        assert_eq!(moved.deadline, arrived_at + Duration::minutes(5));
    }

    #[tokio::test]
    async fn an_illegal_move_writes_nothing_and_names_the_allowed_moves() {
        for action in [
            QueueAction::Leave,
            QueueAction::Recall,
            QueueAction::Start,
            QueueAction::Retriage("urgent".into()),
        ] {
            let mut m = mocks_with_clinic();
            m.queue
                .expect_get()
                .returning(|_, _, _| Ok(Some(checked_in(QueueStatus::InService))));
            m.queue.expect_update().never();
            m.encounters.expect_insert().never();
            m.appointments.expect_update().never();
            m.audit.expect_append().never();
            m.events.expect_publish().never();
            let (ports, commits) = m.ports();
            let err = QueueService::new(ports)
                .act(
                    &nurse(),
                    entry(1, QueueStatus::InService).id,
                    action.clone(),
                )
                .await
                .expect_err("in service: only finish");
            let ServiceError::IllegalQueueMove(err) = err else {
                panic!("{action:?}: {err:?}")
            };
            assert_eq!(
                (err.from, err.allowed),
                (QueueStatus::InService, vec![QueueStatus::Done]),
                "{action:?}"
            );
            assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 0);
        }
    }

    #[tokio::test]
    async fn stats_count_the_clinic_local_day_of_one_practitioner() {
        let mut m = crate::mocks::Mocks::new(now());
        m.clinics
            .expect_get()
            .returning(|_, _| Ok(Some(clinic("Europe/Berlin"))));
        let day = |h: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 3, 29)
                .expect("valid")
                .and_hms_opt(0, 0, 0)
                .expect("valid")
                .and_utc()
                + Duration::hours(i64::from(h))
        };
        // Berlin's 29 March 2026 (the spring change): 28 March 23:00 to 29 March 22:00 UTC.
        let berlin = Interval::new(day(0) - Duration::hours(1), day(22)).expect("valid");
        m.queue
            .expect_arrived_within()
            .times(1)
            .withf(move |_, _, span, practitioner| {
                *span == berlin && *practitioner == Some(house().id)
            })
            .returning(|_, _, _, _| {
                Ok(vec![
                    entry(1, QueueStatus::Left),
                    QueueEntry {
                        called_at: Some(
                            entry(2, QueueStatus::Called).arrived_at + Duration::minutes(20),
                        ),
                        ..entry(2, QueueStatus::Called)
                    },
                ])
            });
        m.appointments
            .expect_list()
            .times(1)
            .withf(move |_, _, f, _| {
                f.status == Some(AppointmentStatus::NoShow)
                    && f.practitioner_id == Some(house().id)
                    && f.from == Some(berlin.start())
                    && f.to == Some(berlin.end())
            })
            .returning(|_, _, _, page| {
                Ok(clinicflow_domain::Page {
                    items: Vec::new(),
                    total: 2,
                    request: page,
                })
            });
        let (ports, _) = m.ports();
        let stats = QueueService::new(ports)
            .stats(&nurse(), Some("2026-03-29"), Some(&house().id.to_string()))
            .await
            .expect("stats");
        assert_eq!(
            stats.counts.map(|(_, n)| n),
            [0, 1, 0, 0, 1],
            "waiting, called, in service, done, left"
        );
        assert_eq!(stats.no_shows, 2);
        assert_eq!(stats.mean_wait, Some(Duration::minutes(20)));
    }
}
