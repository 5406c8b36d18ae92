//! The walk-in queue: triage categories, earliest-deadline-first order, the entry status
//! machine and wait estimates.
//!
//! Every entry gets a deadline when it joins and keeps it while it waits, so the order is
//! fixed by stored values (an index scan) and waiting longer never lets anyone overtake a
//! more urgent patient unfairly: aging is built into the deadline.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use crate::{
    AppointmentId, ClinicId, InvalidValue, PatientId, PractitionerId, QueueEntryId, Urgency,
};

/// Manchester Triage System categories, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TriageCategory {
    /// Red: at once.
    Immediate,
    /// Orange: within 10 minutes.
    VeryUrgent,
    /// Yellow: within an hour.
    Urgent,
    /// Green: within two hours.
    Standard,
    /// Blue: within four hours.
    NonUrgent,
}

impl TriageCategory {
    /// Every category, most urgent first.
    pub const ALL: [TriageCategory; 5] = [
        TriageCategory::Immediate,
        TriageCategory::VeryUrgent,
        TriageCategory::Urgent,
        TriageCategory::Standard,
        TriageCategory::NonUrgent,
    ];

    /// The stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            TriageCategory::Immediate => "immediate",
            TriageCategory::VeryUrgent => "very_urgent",
            TriageCategory::Urgent => "urgent",
            TriageCategory::Standard => "standard",
            TriageCategory::NonUrgent => "non_urgent",
        }
    }

    /// 0 for the most urgent; what ties on the deadline are broken by.
    pub fn rank(&self) -> i16 {
        match self {
            TriageCategory::Immediate => 0,
            TriageCategory::VeryUrgent => 1,
            TriageCategory::Urgent => 2,
            TriageCategory::Standard => 3,
            TriageCategory::NonUrgent => 4,
        }
    }

    /// The category a checked-in appointment joins the queue with.
    pub fn for_urgency(urgency: Urgency) -> Self {
        match urgency {
            Urgency::Emergency => TriageCategory::Immediate,
            Urgency::Urgent => TriageCategory::Urgent,
            Urgency::Routine => TriageCategory::Standard,
        }
    }
}

impl FromStr for TriageCategory {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TriageCategory::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                InvalidValue::new(
                    "must be one of immediate, very_urgent, urgent, standard, non_urgent",
                )
            })
    }
}

impl fmt::Display for TriageCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A clinic's queue settings: target waits per category and the grace after an appointment's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Target wait in minutes per category, most urgent first.
    pub target_minutes: [u32; 5],
    /// Minutes after the later of arrival and appointment start by which a checked-in patient is due.
    pub checkin_grace_minutes: u32,
}

impl Default for QueueSettings {
    /// The Manchester Triage System bands and a 10-minute grace.
    fn default() -> Self {
        Self {
            target_minutes: [0, 10, 60, 120, 240],
            checkin_grace_minutes: 10,
        }
    }
}

/// The longest target wait a clinic may set, in minutes: a day.
pub const MAX_TARGET_MINUTES: u32 = 24 * 60;

impl QueueSettings {
    /// Parses target waits, most urgent first: each 0 to [`MAX_TARGET_MINUTES`], and never
    /// longer for a more urgent category than for a less urgent one.
    pub fn parse_targets(minutes: [i64; 5]) -> Result<[u32; 5], InvalidValue> {
        let mut targets = [0; 5];
        for (category, (target, raw)) in TriageCategory::ALL
            .iter()
            .zip(targets.iter_mut().zip(minutes))
        {
            *target = u32::try_from(raw)
                .ok()
                .filter(|m| *m <= MAX_TARGET_MINUTES)
                .ok_or_else(|| {
                    InvalidValue::new(format!(
                        "{category} must be 0 to {MAX_TARGET_MINUTES} minutes"
                    ))
                })?;
        }
        // Otherwise a more urgent walk-in could be due after a less urgent one who arrived with them.
        for (pair, categories) in targets.windows(2).zip(TriageCategory::ALL.windows(2)) {
            if pair[0] > pair[1] {
                return Err(InvalidValue::new(format!(
                    "{} may not be longer than {}",
                    categories[0], categories[1]
                )));
            }
        }
        Ok(targets)
    }

    /// The target wait of a category.
    pub fn target(&self, category: TriageCategory) -> Duration {
        Duration::minutes(i64::from(self.target_minutes[category.rank() as usize]))
    }

    /// The grace after an appointment's start.
    pub fn grace(&self) -> Duration {
        Duration::minutes(i64::from(self.checkin_grace_minutes))
    }
}

/// Which rule set an entry's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineRule {
    /// `arrived_at + target(category)`.
    WalkIn,
    /// `max(arrived_at, starts_at) + grace`.
    Appointment {
        /// The appointment's start.
        starts_at: DateTime<Utc>,
    },
}

/// A walk-in's deadline.
pub fn walk_in_deadline(
    arrived_at: DateTime<Utc>,
    category: TriageCategory,
    settings: &QueueSettings,
) -> DateTime<Utc> {
    arrived_at + settings.target(category)
}

/// A checked-in appointment's deadline.
pub fn appointment_deadline(
    arrived_at: DateTime<Utc>,
    starts_at: DateTime<Utc>,
    settings: &QueueSettings,
) -> DateTime<Utc> {
    arrived_at.max(starts_at) + settings.grace()
}

/// Where a queue entry is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueStatus {
    /// In the lobby.
    Waiting,
    /// Called to a room.
    Called,
    /// Being seen.
    InService,
    /// Seen.
    Done,
    /// Left without being seen.
    Left,
}

impl QueueStatus {
    /// Every status.
    pub const ALL: [QueueStatus; 5] = [
        QueueStatus::Waiting,
        QueueStatus::Called,
        QueueStatus::InService,
        QueueStatus::Done,
        QueueStatus::Left,
    ];

    /// The stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            QueueStatus::Waiting => "waiting",
            QueueStatus::Called => "called",
            QueueStatus::InService => "in_service",
            QueueStatus::Done => "done",
            QueueStatus::Left => "left",
        }
    }

    /// The statuses this one may move to.
    pub fn allowed_moves(&self) -> &'static [QueueStatus] {
        use QueueStatus::*;
        match self {
            Waiting => &[Called, Left],
            Called => &[InService, Waiting, Left],
            InService => &[Done],
            Done | Left => &[],
        }
    }

    /// Whether the entry still belongs on the board.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            QueueStatus::Waiting | QueueStatus::Called | QueueStatus::InService
        )
    }
}

impl FromStr for QueueStatus {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QueueStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                InvalidValue::new("must be one of waiting, called, in_service, done, left")
            })
    }
}

impl fmt::Display for QueueStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queue move the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a queue entry that is {from} cannot become {to}")]
pub struct IllegalQueueMove {
    /// Current status.
    pub from: QueueStatus,
    /// Requested status.
    pub to: QueueStatus,
    /// Moves allowed from `from`.
    pub allowed: Vec<QueueStatus>,
}

/// A patient waiting to be seen (walk-in or checked-in appointment). Its `Debug` shows
/// whether there is a note, not what it says.
#[derive(Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Identity.
    pub id: QueueEntryId,
    /// Owning clinic.
    pub clinic_id: ClinicId,
    /// Who waits.
    pub patient_id: PatientId,
    /// Waiting for this practitioner, if any.
    pub practitioner_id: Option<PractitionerId>,
    /// Waiting for this department, if any.
    pub department: Option<String>,
    /// The appointment checked in, if any.
    pub appointment_id: Option<AppointmentId>,
    /// Triage category.
    pub category: TriageCategory,
    /// The rule that set the deadline.
    pub rule: DeadlineRule,
    /// When the patient arrived.
    pub arrived_at: DateTime<Utc>,
    /// When the patient should be seen by.
    pub deadline: DateTime<Utc>,
    /// Status.
    pub status: QueueStatus,
    /// Free-text note (kept out of logs).
    pub note: Option<String>,
    /// Who called the patient.
    pub called_by: Option<PractitionerId>,
    /// When called.
    pub called_at: Option<DateTime<Utc>>,
    /// When service started.
    pub started_at: Option<DateTime<Utc>>,
    /// When service ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// When the patient left unseen.
    pub left_at: Option<DateTime<Utc>>,
    /// When the patient was last sent back from called to waiting.
    pub recalled_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency version.
    pub version: i32,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for QueueEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueEntry")
            .field("id", &self.id)
            .field("clinic_id", &self.clinic_id)
            .field("patient_id", &self.patient_id)
            .field("practitioner_id", &self.practitioner_id)
            .field("department", &self.department)
            .field("appointment_id", &self.appointment_id)
            .field("category", &self.category)
            .field("rule", &self.rule)
            .field("arrived_at", &self.arrived_at)
            .field("deadline", &self.deadline)
            .field("status", &self.status)
            .field("note", &crate::redacted(&self.note))
            .field("called_by", &self.called_by)
            .field("called_at", &self.called_at)
            .field("started_at", &self.started_at)
            .field("finished_at", &self.finished_at)
            .field("left_at", &self.left_at)
            .field("recalled_at", &self.recalled_at)
            .field("version", &self.version)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

impl QueueEntry {
    /// The key the queue is served in: deadline, then the more urgent category, then arrival, then id.
    pub fn priority_key(&self) -> (DateTime<Utc>, i16, DateTime<Utc>, QueueEntryId) {
        (
            self.deadline,
            self.category.rank(),
            self.arrived_at,
            self.id,
        )
    }

    /// The total order of the queue.
    pub fn serve_order(a: &QueueEntry, b: &QueueEntry) -> Ordering {
        a.priority_key().cmp(&b.priority_key())
    }

    /// Moves to `to` at `now`, stamping the move; bumps the version.
    pub fn transition(
        &mut self,
        to: QueueStatus,
        now: DateTime<Utc>,
    ) -> Result<(), IllegalQueueMove> {
        let from = self.status;
        if !from.allowed_moves().contains(&to) {
            return Err(IllegalQueueMove {
                from,
                to,
                allowed: from.allowed_moves().to_vec(),
            });
        }
        match to {
            QueueStatus::Called => self.called_at = Some(now),
            QueueStatus::InService => self.started_at = Some(now),
            QueueStatus::Done => self.finished_at = Some(now),
            QueueStatus::Left => self.left_at = Some(now),
            // A recall puts the patient back with the deadline they had: nobody loses their place.
            QueueStatus::Waiting => {
                self.called_at = None;
                self.called_by = None;
                self.recalled_at = Some(now);
            }
        }
        self.status = to;
        self.version += 1;
        self.updated_at = now;
        Ok(())
    }

    /// Changes the category and recomputes this entry's deadline only. A checked-in appointment
    /// keeps its appointment deadline when that is earlier: a re-triage can make a patient more
    /// urgent, never later than their appointment.
    pub fn retriage(
        &mut self,
        category: TriageCategory,
        settings: &QueueSettings,
        now: DateTime<Utc>,
    ) {
        let walk_in = walk_in_deadline(self.arrived_at, category, settings);
        self.deadline = match self.rule {
            DeadlineRule::WalkIn => walk_in,
            DeadlineRule::Appointment { starts_at } => {
                walk_in.min(appointment_deadline(self.arrived_at, starts_at, settings))
            }
        };
        self.category = category;
        self.version += 1;
        self.updated_at = now;
    }

    /// Minutes until the deadline at `now` (negative when late).
    pub fn minutes_early(&self, now: DateTime<Utc>) -> i64 {
        (self.deadline - now).num_minutes()
    }
}

/// How long after finishing a visit a practitioner still counts as serving a queue.
pub const ACTIVE_WINDOW_MINUTES: i64 = 60;

/// How many practitioners share the waiting patients: those of `in_scope` who have a
/// patient called or in service now, or who finished a visit within the last
/// [`ACTIVE_WINDOW_MINUTES`]. When none has (the day's first patients), all of `in_scope`
/// count, and never fewer than one.
///
/// A department with ten practitioners of whom two work today should not promise a tenth
/// of the wait; activity is what shows who works, without reading every schedule.
pub fn active_practitioners(
    in_scope: &[PractitionerId],
    open: &[QueueEntry],
    recently_ended: &[(PractitionerId, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> u32 {
    let since = now - Duration::minutes(ACTIVE_WINDOW_MINUTES);
    let mut active: Vec<PractitionerId> = open
        .iter()
        .filter(|e| matches!(e.status, QueueStatus::Called | QueueStatus::InService))
        .filter_map(|e| e.called_by)
        .chain(
            recently_ended
                .iter()
                .filter(|(_, ended)| *ended >= since)
                .map(|(p, _)| *p),
        )
        .filter(|p| in_scope.contains(p))
        .collect();
    active.sort();
    active.dedup();
    let count = if active.is_empty() {
        in_scope.len()
    } else {
        active.len()
    };
    u32::try_from(count).unwrap_or(u32::MAX).max(1)
}

/// Estimated wait of the patient at 0-based `position`: the patients ahead share the
/// practitioners serving the queue, each taking the recent mean service time.
pub fn estimated_wait(position: usize, mean_service: Duration, practitioners: u32) -> Duration {
    let ahead = i32::try_from(position).unwrap_or(i32::MAX);
    mean_service * ahead / i32::try_from(practitioners.max(1)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000)
    }

    #[test]
    fn debug_hides_the_note() {
        let entry = QueueEntry {
            note: Some("allergic to penicillin".into()),
            ..walk_in(1, 0, TriageCategory::Urgent)
        };
        let shown = format!("{entry:?}");
        assert!(!shown.contains("penicillin"), "{shown}");
        assert!(shown.contains("Urgent"), "{shown}");
    }

    fn walk_in(n: u128, arrived_min: i64, category: TriageCategory) -> QueueEntry {
        let arrived_at = t0() + Duration::minutes(arrived_min);
        QueueEntry {
            id: QueueEntryId::from_uuid(uuid::Uuid::from_u128(n)),
            clinic_id: ClinicId::from_uuid(uuid::Uuid::nil()),
            patient_id: PatientId::from_uuid(uuid::Uuid::from_u128(n)),
            practitioner_id: None,
            department: None,
            appointment_id: None,
            category,
            rule: DeadlineRule::WalkIn,
            arrived_at,
            deadline: walk_in_deadline(arrived_at, category, &QueueSettings::default()),
            status: QueueStatus::Waiting,
            note: None,
            called_by: None,
            called_at: None,
            started_at: None,
            finished_at: None,
            left_at: None,
            recalled_at: None,
            version: 1,
            updated_at: arrived_at,
        }
    }

    fn ordered(mut v: Vec<QueueEntry>) -> Vec<u128> {
        v.sort_by(QueueEntry::serve_order);
        v.iter().map(|e| e.id.as_uuid().as_u128()).collect()
    }

    #[test]
    fn manchester_bands_are_the_default_targets() {
        let s = QueueSettings::default();
        let minutes: Vec<i64> = TriageCategory::ALL
            .iter()
            .map(|c| s.target(*c).num_minutes())
            .collect();
        assert_eq!(minutes, [0, 10, 60, 120, 240]);
    }

    #[test]
    fn an_urgent_late_arrival_goes_ahead_only_while_its_deadline_is_earlier() {
        // A standard patient at 0 is due at 120; an urgent one at 30 is due at 90: ahead.
        assert_eq!(
            ordered(vec![
                walk_in(1, 0, TriageCategory::Standard),
                walk_in(2, 30, TriageCategory::Urgent)
            ]),
            [2, 1]
        );
        // An urgent one arriving at 70 is due at 130: behind.
        assert_eq!(
            ordered(vec![
                walk_in(1, 0, TriageCategory::Standard),
                walk_in(2, 70, TriageCategory::Urgent)
            ]),
            [1, 2]
        );
    }

    #[test]
    fn ties_go_to_the_more_urgent_then_the_earlier_arrival() {
        // Both due at 60: very urgent arriving at 50 beats urgent arriving at 0.
        assert_eq!(
            ordered(vec![
                walk_in(1, 0, TriageCategory::Urgent),
                walk_in(2, 50, TriageCategory::VeryUrgent)
            ]),
            [2, 1]
        );
    }

    #[test]
    fn appointment_deadlines_use_the_later_of_arrival_and_start() {
        let s = QueueSettings::default();
        assert_eq!(
            appointment_deadline(t0(), t0() + Duration::minutes(30), &s),
            t0() + Duration::minutes(40)
        );
        assert_eq!(
            appointment_deadline(
                t0() + Duration::minutes(45),
                t0() + Duration::minutes(30),
                &s
            ),
            t0() + Duration::minutes(55)
        );
    }

    #[test]
    fn retriage_recomputes_that_entry_only_and_never_delays_an_appointment() {
        let s = QueueSettings::default();
        let mut e = walk_in(1, 0, TriageCategory::NonUrgent);
        e.retriage(TriageCategory::VeryUrgent, &s, t0());
        assert_eq!(e.deadline, t0() + Duration::minutes(10));
        let mut a = walk_in(2, 0, TriageCategory::Standard);
        a.rule = DeadlineRule::Appointment { starts_at: t0() };
        a.deadline = appointment_deadline(a.arrived_at, t0(), &s);
        a.retriage(TriageCategory::NonUrgent, &s, t0());
        assert_eq!(
            a.deadline,
            t0() + Duration::minutes(10),
            "the appointment deadline stays"
        );
        a.retriage(TriageCategory::Immediate, &s, t0());
        assert_eq!(a.deadline, t0(), "more urgent: earlier");
    }

    #[test]
    fn the_status_machine_stamps_moves_and_refuses_others() {
        let mut e = walk_in(1, 0, TriageCategory::Standard);
        e.transition(QueueStatus::Called, t0() + Duration::minutes(5))
            .expect("call");
        e.transition(QueueStatus::Waiting, t0() + Duration::minutes(6))
            .expect("recall");
        assert_eq!(
            (e.called_at, e.recalled_at),
            (None, Some(t0() + Duration::minutes(6)))
        );
        e.transition(QueueStatus::Called, t0() + Duration::minutes(7))
            .expect("call again");
        e.transition(QueueStatus::InService, t0() + Duration::minutes(8))
            .expect("start");
        e.transition(QueueStatus::Done, t0() + Duration::minutes(20))
            .expect("finish");
        assert_eq!(
            (e.called_at, e.finished_at),
            (
                Some(t0() + Duration::minutes(7)),
                Some(t0() + Duration::minutes(20))
            )
        );
        let err = e
            .transition(QueueStatus::Waiting, t0())
            .expect_err("done is final");
        assert!(err.allowed.is_empty());
        let mut w = walk_in(2, 0, TriageCategory::Standard);
        assert_eq!(
            w.transition(QueueStatus::InService, t0())
                .expect_err("not called")
                .allowed,
            [QueueStatus::Called, QueueStatus::Left]
        );
    }

    #[test]
    fn a_recall_is_stamped_keeps_the_deadline_and_a_new_call_keeps_the_stamp() {
        let mut e = walk_in(1, 0, TriageCategory::Urgent);
        let deadline = e.deadline;
        e.called_by = Some(PractitionerId::from_uuid(uuid::Uuid::from_u128(7)));
        e.transition(QueueStatus::Called, t0() + Duration::minutes(3))
            .expect("call");
        e.transition(QueueStatus::Waiting, t0() + Duration::minutes(4))
            .expect("recall");
        assert_eq!(e.recalled_at, Some(t0() + Duration::minutes(4)));
        assert_eq!((e.called_at, e.called_by), (None, None));
        assert_eq!((e.deadline, e.version), (deadline, 3));
        e.transition(QueueStatus::Called, t0() + Duration::minutes(9))
            .expect("call again");
        assert_eq!(
            (e.called_at, e.recalled_at),
            (
                Some(t0() + Duration::minutes(9)),
                Some(t0() + Duration::minutes(4))
            )
        );
        let mut w = walk_in(2, 0, TriageCategory::Urgent);
        w.transition(QueueStatus::Waiting, t0())
            .expect_err("only a called patient is recalled");
        assert_eq!(w.recalled_at, None, "a refused move stamps nothing");
    }

    #[test]
    fn target_waits_are_bounded_and_never_longer_for_the_more_urgent() {
        assert_eq!(
            QueueSettings::parse_targets([0, 5, 30, 90, 1440]),
            Ok([0, 5, 30, 90, 1440])
        );
        assert_eq!(
            QueueSettings::parse_targets([15, 15, 15, 15, 15]),
            Ok([15; 5])
        );
        let err = |m| QueueSettings::parse_targets(m).expect_err("refused").0;
        assert_eq!(
            err([0, -1, 60, 120, 240]),
            "very_urgent must be 0 to 1440 minutes"
        );
        assert_eq!(
            err([0, 10, 60, 120, 1441]),
            "non_urgent must be 0 to 1440 minutes"
        );
        assert_eq!(
            err([0, 10, 130, 120, 240]),
            "urgent may not be longer than standard"
        );
    }

    #[test]
    fn waits_are_shared_across_practitioners() {
        assert_eq!(
            estimated_wait(0, Duration::minutes(15), 2),
            Duration::zero()
        );
        assert_eq!(
            estimated_wait(4, Duration::minutes(15), 2),
            Duration::minutes(30)
        );
        assert_eq!(
            estimated_wait(3, Duration::minutes(10), 0),
            Duration::minutes(30),
            "no practitioner counts as one"
        );
    }

    #[test]
    fn only_practitioners_at_work_share_the_wait() {
        let p = |n: u128| PractitionerId::from_uuid(uuid::Uuid::from_u128(1000 + n));
        let scope: Vec<PractitionerId> = (0..10).map(p).collect();
        let now = t0() + Duration::hours(3);
        // Nobody has called anyone yet: the whole department counts.
        assert_eq!(active_practitioners(&scope, &[], &[], now), 10);
        let mut called = walk_in(1, 0, TriageCategory::Standard);
        called.status = QueueStatus::Called;
        called.called_by = Some(p(0));
        let mut waiting = walk_in(2, 0, TriageCategory::Standard);
        waiting.called_by = Some(p(5));
        let ended = [
            (p(1), now - Duration::minutes(20)),
            (p(1), now - Duration::minutes(5)),
            (p(2), now - Duration::minutes(ACTIVE_WINDOW_MINUTES + 1)),
            (p(0), now - Duration::minutes(2)),
            // Not of this queue's scope.
            (PractitionerId::from_uuid(uuid::Uuid::from_u128(7)), now),
        ];
        // p0 (calling and finished), p1 (finished lately); p2 finished too long ago, and a
        // waiting entry's stale called_by (after a recall) counts for nobody.
        assert_eq!(
            active_practitioners(&scope, &[called, waiting], &ended, now),
            2
        );
        assert_eq!(active_practitioners(&[], &[], &[], now), 1, "at least one");
    }

    /// A checked-in appointment starting at `starts_min`, the patient arriving at `arrived_min`.
    fn checked_in(
        n: u128,
        arrived_min: i64,
        starts_min: i64,
        category: TriageCategory,
    ) -> QueueEntry {
        let mut e = walk_in(n, arrived_min, category);
        let starts_at = t0() + Duration::minutes(starts_min);
        e.appointment_id = Some(AppointmentId::from_uuid(uuid::Uuid::from_u128(n)));
        e.rule = DeadlineRule::Appointment { starts_at };
        e.deadline = appointment_deadline(e.arrived_at, starts_at, &QueueSettings::default());
        e
    }

    /// Walk-ins and checked-in appointments (early, on time or late), some of them re-triaged,
    /// arriving at a minute drawn from `arrived`.
    fn arb_entry_arriving(
        arrived: impl Strategy<Value = i64>,
    ) -> impl Strategy<Value = QueueEntry> {
        (
            0u128..1_000_000,
            arrived,
            0usize..5,
            any::<bool>(),
            -120i64..240,
            proptest::option::of(0usize..5),
        )
            .prop_map(|(n, arrived, c, appointment, starts_after, retriage)| {
                let category = TriageCategory::ALL[c];
                let mut e = if appointment {
                    checked_in(n, arrived, arrived + starts_after, category)
                } else {
                    walk_in(n, arrived, category)
                };
                if let Some(r) = retriage {
                    e.retriage(
                        TriageCategory::ALL[r],
                        &QueueSettings::default(),
                        e.arrived_at,
                    );
                }
                e
            })
    }

    fn arb_entry() -> impl Strategy<Value = QueueEntry> {
        arb_entry_arriving(0i64..600)
    }

    proptest! {
        #[test]
        fn the_order_is_total_and_consistent(a in arb_entry(), b in arb_entry(), c in arb_entry()) {
            let ab = QueueEntry::serve_order(&a, &b);
            prop_assert_eq!(ab, QueueEntry::serve_order(&b, &a).reverse());
            prop_assert_eq!(ab == Ordering::Equal, a.id == b.id);
            if ab != Ordering::Greater && QueueEntry::serve_order(&b, &c) != Ordering::Greater {
                prop_assert_ne!(QueueEntry::serve_order(&a, &c), Ordering::Greater);
            }
        }

        #[test]
        fn a_later_more_urgent_arrival_is_ahead_exactly_while_its_deadline_is_earlier(
            waiting in arb_entry(),
            delay in 0i64..600,
            c in 0usize..5,
        ) {
            let newcomer = walk_in(waiting.id.as_uuid().as_u128() + 1, (waiting.arrived_at - t0()).num_minutes() + delay, TriageCategory::ALL[c]);
            prop_assume!(newcomer.category < waiting.category);
            let ahead = QueueEntry::serve_order(&newcomer, &waiting) == Ordering::Less;
            prop_assert_eq!(ahead, newcomer.deadline <= waiting.deadline);
        }

        #[test]
        fn nobody_loses_a_place_except_to_an_arrival_with_an_earlier_deadline(
            queue in proptest::collection::vec(arb_entry(), 1..30),
            newcomer in arb_entry(),
        ) {
            let mut queue = queue;
            // One entry per id: two generated with one id but different fields need not sort
            // next to each other, so they are removed in id order first.
            queue.sort_by_key(|e| e.id.as_uuid());
            queue.dedup_by_key(|e| e.id);
            queue.sort_by(QueueEntry::serve_order);
            prop_assume!(queue.iter().all(|e| e.id != newcomer.id));
            let mut after = queue.clone();
            after.push(newcomer.clone());
            after.sort_by(QueueEntry::serve_order);
            for (before_pos, e) in queue.iter().enumerate() {
                let after_pos = after.iter().position(|x| x.id == e.id).expect("still queued");
                let overtaken = after_pos > before_pos;
                prop_assert_eq!(overtaken, QueueEntry::serve_order(&newcomer, e) == Ordering::Less);
                prop_assert!(after_pos <= before_pos + 1);
            }
        }

        #[test]
        fn every_deadline_is_finite_and_bounded_by_its_rule(e in arb_entry()) {
            let s = QueueSettings::default();
            let bound = match e.rule {
                DeadlineRule::WalkIn => e.arrived_at + s.target(TriageCategory::NonUrgent),
                DeadlineRule::Appointment { starts_at } => appointment_deadline(e.arrived_at, starts_at, &s),
            };
            prop_assert!(e.deadline >= e.arrived_at && e.deadline <= bound);
        }

        #[test]
        fn nobody_who_arrives_after_an_entrys_deadline_goes_ahead_of_it(
            (e, later) in arb_entry().prop_flat_map(|e| {
                let after = (e.deadline - t0()).num_minutes() + 1;
                (Just(e), arb_entry_arriving(after..after + 600))
            })
        ) {
            prop_assume!(e.id != later.id);
            prop_assert_eq!(QueueEntry::serve_order(&e, &later), Ordering::Less);
        }
    }
}
