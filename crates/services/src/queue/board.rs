//! The board: a scope's open entries in serve order, with positions and wait estimates.

use chrono::{DateTime, Duration, Utc};
use clinicflow_domain::queue::{active_practitioners, estimated_wait};
use clinicflow_domain::{
    Actor, Clinic, ClinicId, DeadlineRule, Encounter, PageRequest, Permission, PractitionerId,
    QueueEntry, QueueStatus, ResourceType, TriageCategory,
};
use clinicflow_ports::{PractitionerFilter, TxMode};

use super::{QueueService, mean};
use crate::audit::{self, Access};
use crate::{FieldErrors, ServiceError, input};

/// Service time assumed when a queue has no history yet.
pub const DEFAULT_SERVICE_MINUTES: i64 = 15;
/// How many recent visits the mean service time is taken over.
const SERVICE_HISTORY: u32 = 20;

/// One entry on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardEntry {
    /// The entry.
    pub entry: QueueEntry,
    /// 1-based place among the waiting; `None` once called.
    pub position: Option<usize>,
    /// Expected wait from now, for the waiting.
    pub estimated_wait: Option<Duration>,
    /// Why the entry stands where it stands.
    pub priority: Priority,
}

/// The rule that set an entry's deadline, and so its place: what a front desk shows when a
/// patient asks why someone who came later goes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priority {
    /// The triage category.
    pub category: TriageCategory,
    /// `walk_in` or `appointment`: how the deadline was set.
    pub rule: &'static str,
    /// `walk_in`: the category's target wait.
    pub target_minutes: Option<u32>,
    /// `appointment`: when the appointment starts.
    pub appointment_starts_at: Option<DateTime<Utc>>,
    /// `appointment`: the clinic's check-in grace.
    pub grace_minutes: Option<u32>,
    /// The rule in words.
    pub explanation: String,
}

impl Priority {
    /// The rule that placed `entry` under `clinic`'s queue settings.
    fn of(clinic: &Clinic, entry: &QueueEntry) -> Self {
        let settings = &clinic.queue;
        match entry.rule {
            DeadlineRule::WalkIn => {
                let target = settings.target_minutes[entry.category.rank() as usize];
                Self {
                    category: entry.category,
                    rule: "walk_in",
                    target_minutes: Some(target),
                    appointment_starts_at: None,
                    grace_minutes: None,
                    explanation: format!(
                        "walk-in: arrival + {target} min target for {}",
                        entry.category
                    ),
                }
            }
            DeadlineRule::Appointment { starts_at } => Self {
                category: entry.category,
                rule: "appointment",
                target_minutes: None,
                appointment_starts_at: Some(starts_at),
                grace_minutes: Some(settings.checkin_grace_minutes),
                explanation: format!(
                    "checked-in appointment: later of arrival and start + {} min grace",
                    settings.checkin_grace_minutes
                ),
            },
        }
    }
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

/// A board a live stream follows: a scope of one clinic whose reader was checked and audited
/// when the stream opened ([`QueueService::watch_board`]). Every stream of one scope shares it,
/// so it names the scope only, never who reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LiveBoard {
    clinic: ClinicId,
    practitioner: Option<PractitionerId>,
    department: Option<String>,
}

impl LiveBoard {
    /// The clinic whose queue changes the board follows.
    pub fn clinic(&self) -> ClinicId {
        self.clinic
    }
}

impl QueueService {
    /// The open entries of a scope in serve order, with positions and wait estimates.
    pub async fn board(
        &self,
        actor: &Actor,
        practitioner_id: Option<&str>,
        department: Option<&str>,
    ) -> Result<Board, ServiceError> {
        let (live, access) = self.board_scope(actor, practitioner_id, department).await?;
        let board = self.live_board(&live).await?;
        audit::disclose(&self.ports, actor, access).await?;
        Ok(board)
    }

    /// Opens a live board for `actor`: the same checks and audit event as reading
    /// [`QueueService::board`], without reading it; the boards themselves come from
    /// [`QueueService::live_board`], computed once for every stream of the scope.
    pub async fn watch_board(
        &self,
        actor: &Actor,
        practitioner_id: Option<&str>,
        department: Option<&str>,
    ) -> Result<LiveBoard, ServiceError> {
        let (live, access) = self.board_scope(actor, practitioner_id, department).await?;
        if live.practitioner.is_some() {
            // An unknown practitioner is refused as when reading the board.
            let mut tx = self.ports.db.begin(TxMode::Read).await?;
            self.scope_in(
                &mut tx,
                live.clinic,
                live.practitioner,
                live.department.clone(),
            )
            .await?;
            tx.commit().await?;
        }
        audit::disclose(&self.ports, actor, access).await?;
        Ok(live)
    }

    async fn board_scope(
        &self,
        actor: &Actor,
        practitioner_id: Option<&str>,
        department: Option<&str>,
    ) -> Result<(LiveBoard, Access), ServiceError> {
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
        let live = LiveBoard {
            clinic: actor.clinic_id,
            practitioner,
            // A practitioner's board is their department's: the department asked for is not used.
            department: if practitioner.is_some() {
                None
            } else {
                department
            },
        };
        Ok((live, access))
    }

    /// The board of a live scope now, read in a read-only unit of work. Not audited: the
    /// caller audits the reading ([`QueueService::board`]) or each stream's opening.
    pub async fn live_board(&self, live: &LiveBoard) -> Result<Board, ServiceError> {
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, live.clinic).await?;
        let scope = self
            .scope_in(
                &mut tx,
                live.clinic,
                live.practitioner,
                live.department.clone(),
            )
            .await?;
        let entries = self.ports.queue.open(&mut tx, live.clinic, &scope).await?;
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
                    .list(&mut tx, live.clinic, &filter, page)
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
            .recently_ended(&mut tx, live.clinic, &serving, SERVICE_HISTORY)
            .await?;
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
                let priority = Priority::of(&clinic, &entry);
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
                        priority,
                    }
                } else {
                    BoardEntry {
                        entry,
                        position: None,
                        estimated_wait: None,
                        priority,
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
}
