//! Schedules, time off, and the free slots derived from them.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clinicflow_domain::schedule::{ExceptionKind, check_range, parse_weekday, utc_span};
use clinicflow_domain::{
    Actor, Availability, Clinic, Interval, OpenHours, Permission, Practitioner, PractitionerId,
    Schedule, ScheduleException, ScheduleExceptionId, WeeklyRule,
};
use clinicflow_ports::{Derived, PractitionerFilter, Tx, TxMode, practitioner_tag, schedule_tag};
use futures::{StreamExt as _, TryStreamExt as _};
use uuid::Uuid;

use crate::flight::Flights;
use crate::{FieldErrors, Ports, ServiceError, input};

/// Most slots returned by a search across practitioners.
pub const MAX_SLOT_LIMIT: u32 = 100;
/// How far ahead the next free slots are looked for after a conflict.
const NEXT_SLOTS_HORIZON_DAYS: i64 = 14;
/// How many next free slots a conflict answer suggests.
const NEXT_SLOTS: usize = 3;
/// Longest time off or extra hours accepted in one request.
const MAX_TIME_OFF_DAYS: i64 = 366;
/// How many practitioners' slots a search across practitioners computes at once: enough to
/// overlap their reads, few enough to leave the pool's connections to other requests.
const SLOT_SEARCH_FAN_OUT: usize = 4;

/// One weekly rule as sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInput {
    /// `mon` … `sun`.
    pub weekday: String,
    /// Local `HH:MM`.
    pub start: String,
    /// Local `HH:MM`.
    pub end: String,
    /// Slot length for this window.
    pub slot_minutes: Option<u32>,
}

/// A whole weekly schedule as sent by a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleInput {
    /// The rules.
    pub rules: Vec<RuleInput>,
    /// First local date (default: today in the clinic).
    pub valid_from: Option<String>,
    /// Last local date, inclusive.
    pub valid_to: Option<String>,
}

/// Time off or extra hours as sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeOffInput {
    /// RFC 3339 start.
    pub starts_at: String,
    /// RFC 3339 end.
    pub ends_at: String,
    /// Why.
    pub reason: Option<String>,
}

/// A slot search across practitioners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotQuery {
    /// Only practitioners with this specialty.
    pub specialty: Option<String>,
    /// Only practitioners of this department.
    pub department: Option<String>,
    /// First local date.
    pub from: String,
    /// Local date after the last one.
    pub to: String,
    /// Most slots to return (default 20).
    pub limit: Option<u32>,
}

/// Sets schedules and time off, and derives free slots.
#[derive(Debug, Clone)]
pub struct ScheduleService {
    ports: Ports,
    flights: std::sync::Arc<Flights>,
}

/// The schedule, exceptions and busy time of one practitioner around `span`.
pub(crate) struct Calendar {
    pub schedule: Schedule,
    pub exceptions: Vec<ScheduleException>,
    pub busy: Vec<Interval>,
}

impl Calendar {
    /// Loads everything slot derivation needs for `span`.
    pub(crate) async fn load(
        ports: &Ports,
        tx: &mut Tx,
        clinic: &Clinic,
        practitioner: &Practitioner,
        span: Interval,
    ) -> Result<Self, ServiceError> {
        let schedule = ports
            .schedules
            .get(tx, clinic.id, practitioner.id)
            .await?
            .unwrap_or_else(|| Schedule::empty(NaiveDate::MIN));
        let exceptions = ports
            .schedules
            .exceptions_overlapping(tx, clinic.id, practitioner.id, span)
            .await?;
        let busy = ports
            .appointments
            .active_for_practitioner(tx, clinic.id, practitioner.id, span)
            .await?
            .into_iter()
            .map(|a| a.interval)
            .collect();
        Ok(Self {
            schedule,
            exceptions,
            busy,
        })
    }

    /// The availability view over this calendar.
    pub(crate) fn availability<'a>(
        &'a self,
        clinic: &Clinic,
        practitioner: &Practitioner,
    ) -> Availability<'a> {
        Availability {
            schedule: &self.schedule,
            exceptions: &self.exceptions,
            time_zone: clinic.time_zone,
            default_slot_minutes: practitioner.slot_minutes,
        }
    }

    /// Free slots on local dates `from..to`.
    pub(crate) fn free_slots(
        &self,
        clinic: &Clinic,
        practitioner: &Practitioner,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> Vec<Interval> {
        let buffer = Duration::minutes(i64::from(practitioner.buffer_minutes));
        self.availability(clinic, practitioner)
            .free_slots(from, to, now, buffer, &self.busy)
    }
}

/// The practitioner's first free slots starting at or after `after`, looked for in a fresh read.
pub(crate) async fn next_free_slots(
    ports: &Ports,
    actor: &Actor,
    practitioner_id: PractitionerId,
    after: DateTime<Utc>,
) -> Result<Vec<Interval>, ServiceError> {
    let mut tx = ports.db.begin(TxMode::Read).await?;
    let clinic = crate::clinic::clinic_settings(ports, &mut tx, actor.clinic_id).await?;
    let Some(practitioner) = ports
        .practitioners
        .get(&mut tx, actor.clinic_id, practitioner_id)
        .await?
    else {
        return Ok(Vec::new());
    };
    let now = ports.clock.now();
    let from = clinic.local_date(after.max(now));
    let to = from + Duration::days(NEXT_SLOTS_HORIZON_DAYS);
    let calendar =
        Calendar::load(ports, &mut tx, &clinic, &practitioner, utc_span(from, to)).await?;
    Ok(calendar
        .free_slots(&clinic, &practitioner, from, to, now)
        .into_iter()
        .filter(|s| s.start() >= after)
        .take(NEXT_SLOTS)
        .collect())
}

/// How long a practitioner's open hours stay cached; a schedule or time-off change of theirs
/// makes them stale at once, so this only bounds what unused entries cost.
const OPEN_HOURS_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// The practitioner's open hours on the local dates `interval` touches, from the cache when it
/// has them, else read in `tx` (and cached).
///
/// The booking rules check a new appointment against these instead of reading the schedule
/// and time off inside the booking's transaction. Their cache entry is tied to
/// [`schedule_tag`], which only schedule and time-off writes touch, so bookings do not evict
/// it. A schedule change is invalidated after it commits, so a booking running in between may
/// still see the old hours: that is a business rule applied a moment late, never an overlap,
/// which the exclusion constraints (PostgreSQL) and the serialized overlap check (SQLite)
/// keep out on their own. See docs/adr/0006-booking-reads-open-hours-from-the-cache.md.
pub(crate) async fn open_hours(
    ports: &Ports,
    tx: &mut Tx,
    clinic: &Clinic,
    practitioner: &Practitioner,
    interval: &Interval,
) -> Result<OpenHours, ServiceError> {
    let first = clinic.local_date(interval.start());
    let last = clinic.local_date(interval.end());
    // The zone is part of the key: a clinic that moves zones finds none of its old hours.
    let key = format!(
        "open-hours:{}:{}:{}:{first}:{last}",
        clinic.id,
        practitioner.id,
        clinic.time_zone.name()
    );
    if let Some(hours) = ports
        .cache
        .get(&key)
        .await
        .and_then(|b| decode_open_hours(&b))
    {
        return Ok(hours);
    }
    let load = async {
        let schedule = ports
            .schedules
            .get(tx, clinic.id, practitioner.id)
            .await?
            .unwrap_or_else(|| Schedule::empty(NaiveDate::MIN));
        let exceptions = ports
            .schedules
            .exceptions_overlapping(
                tx,
                clinic.id,
                practitioner.id,
                utc_span(first, last + Duration::days(1)),
            )
            .await?;
        let availability = Availability {
            schedule: &schedule,
            exceptions: &exceptions,
            time_zone: clinic.time_zone,
            default_slot_minutes: practitioner.slot_minutes,
        };
        Ok(availability.open_hours(first, last))
    };
    let tags = [schedule_tag(practitioner.id)];
    crate::cached::load_tagged(ports, &key, &tags, OPEN_HOURS_TTL, encode_open_hours, load).await
}

/// Open hours as the number of working intervals (4 bytes), then the working intervals and
/// the time off, as [`encode_slots`] writes them.
pub(crate) fn encode_open_hours(hours: &OpenHours) -> Vec<u8> {
    let count = u32::try_from(hours.working.len()).unwrap_or(u32::MAX);
    let mut out = count.to_le_bytes().to_vec();
    out.extend(encode_slots(&hours.working));
    out.extend(encode_slots(&hours.time_off));
    out
}

fn decode_open_hours(bytes: &[u8]) -> Option<OpenHours> {
    let (count, rest) = bytes.split_first_chunk::<4>()?;
    let split = usize::try_from(u32::from_le_bytes(*count))
        .ok()?
        .checked_mul(16)?;
    if split > rest.len() {
        return None;
    }
    let (working, time_off) = rest.split_at(split);
    Some(OpenHours {
        working: decode_slots(working)?,
        time_off: decode_slots(time_off)?,
    })
}

/// How long a practitioner's free slots stay cached; any booking, status change, schedule or
/// time-off change of theirs makes them stale at once.
const SLOTS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Slots as pairs of microsecond timestamps, 16 bytes each.
fn encode_slots(slots: &[Interval]) -> Vec<u8> {
    let mut out = Vec::with_capacity(slots.len() * 16);
    for s in slots {
        out.extend_from_slice(&s.start().timestamp_micros().to_le_bytes());
        out.extend_from_slice(&s.end().timestamp_micros().to_le_bytes());
    }
    out
}

fn decode_slots(bytes: &[u8]) -> Option<Vec<Interval>> {
    if !bytes.len().is_multiple_of(16) {
        return None;
    }
    bytes
        .chunks_exact(16)
        .map(|pair| {
            let at =
                |b: &[u8]| DateTime::from_timestamp_micros(i64::from_le_bytes(b.try_into().ok()?));
            let start = at(&pair[..8])?;
            let end = at(&pair[8..])?;
            Interval::new(start, end).ok()
        })
        .collect()
}

fn parse_range(errors: &mut FieldErrors, from: &str, to: &str) -> Option<(NaiveDate, NaiveDate)> {
    let from = errors.check("from", input::date(from));
    let to = errors.check("to", input::date(to));
    let (from, to) = (from?, to?);
    errors
        .check("to", check_range(from, to))
        .map(|_| (from, to))
}

impl ScheduleService {
    /// Builds the service.
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            flights: Default::default(),
        }
    }

    /// Practitioners may change only their own schedule and time off.
    fn may_change(actor: &Actor, id: PractitionerId) -> Result<(), ServiceError> {
        actor.require(Permission::WriteSchedules)?;
        match crate::audit::own_practitioner(actor) {
            Some(own) if own != id => Err(ServiceError::Forbidden(
                "a practitioner may change only their own schedule".into(),
            )),
            _ => Ok(()),
        }
    }

    async fn practitioner(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: PractitionerId,
    ) -> Result<Practitioner, ServiceError> {
        self.ports
            .practitioners
            .get(tx, actor.clinic_id, id)
            .await?
            .ok_or(ServiceError::NotFound("practitioner"))
    }

    /// Replaces a practitioner's weekly schedule.
    #[tracing::instrument(skip_all)]
    pub async fn put_schedule(
        &self,
        actor: &Actor,
        practitioner_id: PractitionerId,
        input: ScheduleInput,
    ) -> Result<Schedule, ServiceError> {
        Self::may_change(actor, practitioner_id)?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        self.practitioner(&mut tx, actor, practitioner_id).await?;
        let mut errors = FieldErrors::new();
        let mut rules = Vec::with_capacity(input.rules.len());
        for (i, r) in input.rules.iter().enumerate() {
            let weekday = errors.check(&format!("rules[{i}].weekday"), parse_weekday(&r.weekday));
            let start = errors.check(&format!("rules[{i}].start"), input::time(&r.start));
            let end = errors.check(&format!("rules[{i}].end"), input::time(&r.end));
            if let (Some(w), Some(s), Some(e)) = (weekday, start, end)
                && let Some(rule) = errors.check(
                    &format!("rules[{i}]"),
                    WeeklyRule::new(w, s, e, r.slot_minutes),
                )
            {
                rules.push(rule);
            }
        }
        let valid_from = match &input.valid_from {
            Some(raw) => errors.check("valid_from", input::date(raw)),
            None => Some(clinic.local_date(self.ports.clock.now())),
        };
        let valid_to = input
            .valid_to
            .as_deref()
            .and_then(|raw| errors.check("valid_to", input::date(raw)));
        errors.into_result()?;
        let Some(valid_from) = valid_from else {
            unreachable!("parsed when no error was recorded")
        };
        let schedule = Schedule::new(rules, valid_from, valid_to)
            .map_err(|e| FieldErrors::single("rules", e.0))?;
        self.ports
            .schedules
            .put(&mut tx, actor.clinic_id, practitioner_id, &schedule)
            .await?;
        tx.commit().await?;
        Ok(schedule)
    }

    /// The practitioner's weekly schedule (empty when never set) and the clinic it is written in.
    pub async fn get_schedule(
        &self,
        actor: &Actor,
        practitioner_id: PractitionerId,
    ) -> Result<(Schedule, Clinic), ServiceError> {
        actor.require(Permission::ReadPractitioners)?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        let clinic = crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
        self.practitioner(&mut tx, actor, practitioner_id).await?;
        let schedule = self
            .ports
            .schedules
            .get(&mut tx, actor.clinic_id, practitioner_id)
            .await?
            .unwrap_or_else(|| Schedule::empty(clinic.local_date(self.ports.clock.now())));
        Ok((schedule, clinic))
    }

    /// Records time off; slots inside it disappear and bookings there are refused.
    #[tracing::instrument(skip_all)]
    pub async fn add_time_off(
        &self,
        actor: &Actor,
        practitioner_id: PractitionerId,
        input: TimeOffInput,
    ) -> Result<ScheduleException, ServiceError> {
        self.add_exception(actor, practitioner_id, ExceptionKind::TimeOff, input)
            .await
    }

    /// Adds working time outside the weekly rules; its slots have the practitioner's default
    /// length, and time off still wins over it.
    #[tracing::instrument(skip_all)]
    pub async fn add_extra_hours(
        &self,
        actor: &Actor,
        practitioner_id: PractitionerId,
        input: TimeOffInput,
    ) -> Result<ScheduleException, ServiceError> {
        self.add_exception(actor, practitioner_id, ExceptionKind::ExtraHours, input)
            .await
    }

    /// Stores a time-off or extra-hours exception, from the same input shape.
    async fn add_exception(
        &self,
        actor: &Actor,
        practitioner_id: PractitionerId,
        kind: ExceptionKind,
        input: TimeOffInput,
    ) -> Result<ScheduleException, ServiceError> {
        Self::may_change(actor, practitioner_id)?;
        let mut errors = FieldErrors::new();
        let start = errors.check("starts_at", input::instant(&input.starts_at));
        let end = errors.check("ends_at", input::instant(&input.ends_at));
        let reason = errors
            .check(
                "reason",
                clinicflow_domain::appointment::parse_reason(input.reason.as_deref()),
            )
            .flatten();
        let interval = match (start, end) {
            (Some(s), Some(e)) => errors.check("ends_at", Interval::new(s, e)),
            _ => None,
        };
        if interval.is_some_and(|i| i.duration() > Duration::days(MAX_TIME_OFF_DAYS)) {
            errors.add(
                "ends_at",
                format!("an exception may last at most {MAX_TIME_OFF_DAYS} days per request"),
            );
        }
        errors.into_result()?;
        let Some(interval) = interval else {
            unreachable!("parsed when no error was recorded")
        };
        let exception = ScheduleException {
            id: ScheduleExceptionId::from_uuid(Uuid::now_v7()),
            kind,
            interval,
            reason,
        };
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        self.practitioner(&mut tx, actor, practitioner_id).await?;
        self.ports
            .schedules
            .add_exception(&mut tx, actor.clinic_id, practitioner_id, &exception)
            .await?;
        tx.commit().await?;
        Ok(exception)
    }

    /// A practitioner's exceptions of one kind (time off or extra hours), ordered by start.
    pub async fn exceptions(
        &self,
        actor: &Actor,
        practitioner_id: PractitionerId,
        kind: ExceptionKind,
    ) -> Result<Vec<ScheduleException>, ServiceError> {
        actor.require(Permission::ReadPractitioners)?;
        let mut tx = self.ports.db.begin(TxMode::Read).await?;
        self.practitioner(&mut tx, actor, practitioner_id).await?;
        Ok(self
            .ports
            .schedules
            .exceptions(&mut tx, actor.clinic_id, practitioner_id, kind)
            .await?)
    }

    /// Deletes one exception of that kind; its slots come back (or, for extra hours, go)
    /// at once, and appointments already booked stay.
    #[tracing::instrument(skip_all)]
    pub async fn remove_exception(
        &self,
        actor: &Actor,
        practitioner_id: PractitionerId,
        kind: ExceptionKind,
        id: ScheduleExceptionId,
    ) -> Result<(), ServiceError> {
        Self::may_change(actor, practitioner_id)?;
        let mut tx = self.ports.db.begin(TxMode::Write).await?;
        self.practitioner(&mut tx, actor, practitioner_id).await?;
        match self
            .ports
            .schedules
            .remove_exception(&mut tx, actor.clinic_id, practitioner_id, kind, id)
            .await
        {
            Ok(()) => {}
            Err(clinicflow_ports::RepoError::NotFound) => {
                return Err(ServiceError::NotFound(match kind {
                    ExceptionKind::TimeOff => "time off",
                    ExceptionKind::ExtraHours => "extra hours",
                }));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(())
    }

    /// A practitioner's free slots on local dates `from..to` (`to` excluded), in the form
    /// `render` makes of them and the clinic (whose zone they are shown in).
    ///
    /// The form is kept beside the cached slots on this instance: another request for the
    /// same list, while no slot of it has begun and the clinic is unchanged, gets the same
    /// form back without rendering it again. It goes with the cached slots.
    pub async fn slots<T: Send + Sync + 'static>(
        &self,
        actor: &Actor,
        practitioner_id: PractitionerId,
        from: &str,
        to: &str,
        render: impl Fn(&[Interval], &Clinic) -> T,
    ) -> Result<Arc<T>, ServiceError> {
        actor.require(Permission::ReadPractitioners)?;
        let mut errors = FieldErrors::new();
        let range = parse_range(&mut errors, from, to);
        errors.into_result()?;
        let Some((from, to)) = range else {
            unreachable!("parsed when no error was recorded")
        };
        // Both from the cache when warm, with no transaction begun: on SQLite even a read
        // transaction is a `BEGIN` and a connection taken from the pool.
        let cached = (
            crate::clinic::cached_clinic(&self.ports, actor.clinic_id).await,
            crate::practitioner::practitioner_from_cache(
                &self.ports,
                actor.clinic_id,
                practitioner_id,
            )
            .await,
        );
        let (clinic, practitioner) = match cached {
            (Some(clinic), Some(practitioner)) => (clinic, practitioner),
            _ => {
                let mut tx = self.ports.db.begin(TxMode::Read).await?;
                let clinic =
                    crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?;
                // The cached read is keyed by the actor's clinic: another clinic's id is still a 404.
                let practitioner = crate::practitioner::cached_practitioner(
                    &self.ports,
                    &mut tx,
                    actor.clinic_id,
                    practitioner_id,
                )
                .await?;
                (clinic, practitioner)
            }
        };
        // A deactivated practitioner offers no slots; their schedule stays for a reactivation.
        if !practitioner.active {
            return Ok(Arc::new(render(&[], &clinic)));
        }
        let now = self.ports.clock.now();
        let slots = self
            .free_slots(&clinic, &practitioner, from, to, now)
            .await?;
        Ok(slots.rendered(&clinic, now, render))
    }

    /// A practitioner's free slots on local dates `from..to` as computed, sorted, from the
    /// cache when it has them: slots that have begun since may lead, see [`upcoming`].
    ///
    /// A hit hands back the slots decoded on an earlier hit of the same cached value.
    /// Called with no transaction open: a miss may wait for another caller's computation of
    /// the same key, and a connection held (with a snapshot open) through that wait would
    /// be taken from everyone else for nothing. The computation reads in a short read
    /// transaction of its own.
    async fn free_slots(
        &self,
        clinic: &Clinic,
        practitioner: &Practitioner,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Arc<FreeSlots>, ServiceError> {
        let key = format!("slots:{}:{from}:{to}", practitioner.id);
        let derive = |bytes: &[u8]| -> Option<Derived> {
            Some(Arc::new(FreeSlots::new(decode_slots(bytes)?)))
        };
        let cached = || async {
            let derived = self.ports.cache.get_derived(&key, &derive).await?;
            derived.downcast::<FreeSlots>().ok()
        };
        if let Some(slots) = cached().await {
            return Ok(slots);
        }
        // Concurrent misses of this key wait here for the first one, then read its result.
        let _flight = self.flights.enter(&key).await;
        if let Some(slots) = cached().await {
            return Ok(slots);
        }
        let load = async {
            let mut tx = self.ports.db.begin(TxMode::Read).await?;
            let calendar = Calendar::load(
                &self.ports,
                &mut tx,
                clinic,
                practitioner,
                utc_span(from, to),
            )
            .await?;
            drop(tx);
            Ok(Arc::new(FreeSlots::new(calendar.free_slots(
                clinic,
                practitioner,
                from,
                to,
                now,
            ))))
        };
        let tags = [practitioner_tag(practitioner.id)];
        let encode = |slots: &Arc<FreeSlots>| encode_slots(&slots.all);
        crate::cached::load_tagged(&self.ports, &key, &tags, SLOTS_TTL, encode, load).await
    }

    /// The first free slots across the clinic's practitioners (optionally of one specialty or department), earliest first.
    pub async fn first_slots(
        &self,
        actor: &Actor,
        query: SlotQuery,
    ) -> Result<Vec<(PractitionerId, Interval)>, ServiceError> {
        actor.require(Permission::ReadPractitioners)?;
        let mut errors = FieldErrors::new();
        let range = parse_range(&mut errors, &query.from, &query.to);
        let limit = query.limit.unwrap_or(20);
        if limit == 0 || limit > MAX_SLOT_LIMIT {
            errors.add("limit", format!("must be between 1 and {MAX_SLOT_LIMIT}"));
        }
        let filter = PractitionerFilter {
            specialty: query.specialty.as_deref().and_then(|s| {
                errors.check("specialty", clinicflow_domain::practitioner::parse_code(s))
            }),
            department: query.department.as_deref().and_then(|d| {
                errors.check("department", clinicflow_domain::practitioner::parse_code(d))
            }),
            // Deactivated practitioners take no bookings, so they offer no slots.
            active: Some(true),
        };
        errors.into_result()?;
        let Some((from, to)) = range else {
            unreachable!("parsed when no error was recorded")
        };
        // Who to ask: the clinic and the directory from the cache when warm, else each in a
        // short read of its own, ended before any slot is looked up.
        let clinic = match crate::clinic::cached_clinic(&self.ports, actor.clinic_id).await {
            Some(clinic) => clinic,
            None => {
                let mut tx = self.ports.db.begin(TxMode::Read).await?;
                crate::clinic::clinic_settings(&self.ports, &mut tx, actor.clinic_id).await?
            }
        };
        let mut practitioners = Vec::new();
        let mut page = clinicflow_domain::PageRequest::first(200);
        loop {
            let listed =
                crate::practitioner::directory_page(&self.ports, actor.clinic_id, &filter, page)
                    .await?;
            let more = listed.has_next();
            practitioners.extend(listed.items);
            if !more {
                break;
            }
            page = page.next();
        }
        let now = self.ports.clock.now();
        let limit = limit as usize;
        // The same cached slots as each practitioner's own slot list, so a search across
        // practitioners costs a cache read per practitioner when warm; misses are computed a
        // few at a time, each in its own short read transaction. Only each one's first
        // `limit` upcoming slots can be among the earliest `limit` of all.
        let per_practitioner: Vec<Vec<(PractitionerId, Interval)>> =
            futures::stream::iter(&practitioners)
                .map(|p| async {
                    let slots = self.free_slots(&clinic, p, from, to, now).await?;
                    Ok::<_, ServiceError>(
                        upcoming(&slots.all, now)
                            .iter()
                            .take(limit)
                            .map(|s| (p.id, *s))
                            .collect(),
                    )
                })
                .buffered(SLOT_SEARCH_FAN_OUT)
                .try_collect()
                .await?;
        let mut found: Vec<(PractitionerId, Interval)> =
            per_practitioner.into_iter().flatten().collect();
        found.sort_by_key(|(p, s)| (s.start(), *p));
        found.truncate(limit);
        Ok(found)
    }
}

/// The slots of a sorted list that have not begun at `now`.
fn upcoming(slots: &[Interval], now: DateTime<Utc>) -> &[Interval] {
    &slots[slots.partition_point(|s| s.start() < now)..]
}

/// A practitioner's free slots as computed (sorted), as the cache's in-process level keeps
/// them, with the form a caller last rendered of those upcoming.
struct FreeSlots {
    all: Vec<Interval>,
    rendered: std::sync::Mutex<Option<RenderedSlots>>,
}

/// A rendered form of a slot list, and what it was rendered from.
struct RenderedSlots {
    /// How many leading slots had begun: the list shown was `all[begun..]`.
    begun: usize,
    clinic: Clinic,
    form: Derived,
}

impl FreeSlots {
    fn new(all: Vec<Interval>) -> Self {
        Self {
            all,
            rendered: std::sync::Mutex::new(None),
        }
    }

    /// `render` of the slots upcoming at `now`: the kept form when it shows the same slots
    /// for the same clinic and is of the type asked for, else rendered now and kept.
    fn rendered<T: Send + Sync + 'static>(
        &self,
        clinic: &Clinic,
        now: DateTime<Utc>,
        render: impl Fn(&[Interval], &Clinic) -> T,
    ) -> Arc<T> {
        let upcoming = upcoming(&self.all, now);
        let begun = self.all.len() - upcoming.len();
        let kept = || {
            self.rendered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(r) = kept().as_ref()
            && r.begun == begun
            && r.clinic == *clinic
            && let Ok(form) = r.form.clone().downcast::<T>()
        {
            return form;
        }
        // Rendered with the lock released: a request for the same list meanwhile renders
        // its own copy rather than wait.
        let form = Arc::new(render(upcoming, clinic));
        *kept() = Some(RenderedSlots {
            begun,
            clinic: clinic.clone(),
            form: form.clone(),
        });
        form
    }
}

#[cfg(test)]
mod slot_cache_tests {
    use super::*;

    #[test]
    fn cached_slots_decode_to_what_was_encoded() {
        let start = DateTime::from_timestamp_micros(1_764_576_000_123_456).expect("valid");
        let slots: Vec<Interval> = (0..3)
            .map(|i| {
                Interval::starting_at(start + Duration::minutes(30 * i), Duration::minutes(30))
                    .expect("valid")
            })
            .collect();
        assert_eq!(decode_slots(&encode_slots(&slots)), Some(slots));
        assert_eq!(decode_slots(&[1, 2, 3]), None);
        assert_eq!(decode_slots(&[]), Some(Vec::new()));
    }

    #[test]
    fn cached_open_hours_decode_to_what_was_encoded_and_a_short_entry_to_nothing() {
        let start = DateTime::from_timestamp_micros(1_764_576_000_123_456).expect("valid");
        let hour = |h: i64| {
            Interval::starting_at(start + Duration::hours(h), Duration::hours(1)).expect("valid")
        };
        let hours = OpenHours {
            working: vec![hour(0), hour(2)],
            time_off: vec![hour(5)],
        };
        let bytes = encode_open_hours(&hours);
        assert_eq!(decode_open_hours(&bytes), Some(hours));
        assert_eq!(decode_open_hours(&bytes[..20]), None);
        assert_eq!(decode_open_hours(&[9, 0, 0, 0]), None);
    }
}

#[cfg(test)]
mod transaction_tests {
    use std::any::Any;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use chrono::TimeZone as _;
    use clinicflow_domain::{
        ClinicId, ClinicName, Page, PersonName, QueueSettings, ReminderOffsets, Role, TimeZone,
        UserId,
    };
    use clinicflow_ports::{MockDatabase, RepoError, Transaction};

    use super::*;
    use crate::mocks::Mocks;

    /// What the service did, in order: transactions begun and ended, reads and the
    /// transaction each ran in.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Event {
        Begin(usize),
        End(usize),
        List(usize),
        Calendar(usize, PractitionerId),
    }

    type Log = Arc<Mutex<Vec<Event>>>;

    fn push(log: &Log, event: Event) {
        log.lock().expect("not poisoned").push(event);
    }

    /// A transaction that logs its end, committed or dropped.
    struct Tracked {
        id: usize,
        log: Log,
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            push(&self.log, Event::End(self.id));
        }
    }

    #[async_trait]
    impl Transaction for Tracked {
        async fn commit(self: Box<Self>) -> Result<(), RepoError> {
            Ok(())
        }

        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
    }

    fn id_of(tx: &mut Tx) -> usize {
        tx.downcast_mut::<Tracked>()
            .expect("a tracked transaction")
            .id
    }

    fn clinic() -> Clinic {
        Clinic {
            id: ClinicId::from_uuid(Uuid::from_u128(1)),
            name: ClinicName::parse("Praxis").expect("valid"),
            time_zone: TimeZone::parse("UTC").expect("valid"),
            no_show_grace_minutes: 15,
            queue: QueueSettings::default(),
            reminders: ReminderOffsets::default(),
            check_in: clinicflow_domain::CheckInWindow::default(),
            version: 1,
        }
    }

    #[test]
    fn a_rendered_slot_list_is_reused_until_a_slot_begins_or_the_clinic_changes() {
        let start = Utc
            .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
            .single()
            .expect("valid");
        let slots = FreeSlots::new(
            (0..3)
                .map(|i| {
                    Interval::starting_at(start + Duration::minutes(30 * i), Duration::minutes(30))
                        .expect("valid")
                })
                .collect(),
        );
        let renders = std::sync::atomic::AtomicUsize::new(0);
        let render = |s: &[Interval], _: &Clinic| {
            renders.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            s.iter().map(Interval::start).collect::<Vec<_>>()
        };
        let before = start - Duration::minutes(1);
        let first = slots.rendered(&clinic(), before, render);
        assert_eq!(first.len(), 3);
        let again = slots.rendered(&clinic(), before + Duration::seconds(30), render);
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same form, not rendered again"
        );
        assert_eq!(renders.load(std::sync::atomic::Ordering::Relaxed), 1);
        // The first slot has begun: it is no longer shown.
        let begun = start + Duration::seconds(1);
        let later = slots.rendered(&clinic(), begun, render);
        assert_eq!(
            *later,
            vec![start + Duration::minutes(30), start + Duration::minutes(60)]
        );
        // A clinic change (say, of its zone) renders again.
        let changed = Clinic {
            version: 2,
            ..clinic()
        };
        let other = slots.rendered(&changed, begun, render);
        assert!(!Arc::ptr_eq(&later, &other));
        // A caller asking for another form gets its own.
        let count = slots.rendered(&changed, begun, |s, _| s.len());
        assert_eq!(*count, 2);
        assert_eq!(renders.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    fn practitioner(n: u128) -> Practitioner {
        let created = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid");
        Practitioner {
            id: PractitionerId::from_uuid(Uuid::from_u128(100 + n)),
            clinic_id: clinic().id,
            name: PersonName::parse("Gregory", "House").expect("valid"),
            specialties: Vec::new(),
            department: None,
            slot_minutes: 30,
            buffer_minutes: 0,
            active: true,
            version: 1,
            created_at: created,
            updated_at: created,
        }
    }

    fn actor() -> Actor {
        Actor {
            user_id: UserId::from_uuid(Uuid::from_u128(2)),
            clinic_id: clinic().id,
            role: Role::Receptionist,
            practitioner_id: None,
            request_id: None,
        }
    }

    /// Mocks whose transactions and calendar reads are logged; the clinic has `count`
    /// practitioners, each with an empty schedule.
    fn logged(count: u128) -> (Mocks, Log) {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
            .single()
            .expect("valid");
        let mut m = Mocks::new(now);
        let log: Log = Arc::default();
        let mut db = MockDatabase::new();
        let (begun, l) = (Arc::new(Mutex::new(0)), log.clone());
        db.expect_begin().returning(move |_| {
            let mut n = begun.lock().expect("not poisoned");
            *n += 1;
            push(&l, Event::Begin(*n));
            Ok(Tx::new(Box::new(Tracked {
                id: *n,
                log: l.clone(),
            })))
        });
        m.db = db;
        m.clinics.expect_get().returning(|_, _| Ok(Some(clinic())));
        m.practitioners.expect_get().returning(|_, _, id| {
            Ok(Some(Practitioner {
                id,
                ..practitioner(0)
            }))
        });
        let l = log.clone();
        m.practitioners
            .expect_list()
            .returning(move |tx, _, _, page| {
                push(&l, Event::List(id_of(tx)));
                Ok(Page {
                    items: (1..=count).map(practitioner).collect(),
                    total: count as u64,
                    request: page,
                })
            });
        let l = log.clone();
        m.schedules.expect_get().returning(move |tx, _, p| {
            push(&l, Event::Calendar(id_of(tx), p));
            Ok(None)
        });
        m.schedules
            .expect_exceptions_overlapping()
            .returning(|_, _, _, _| Ok(Vec::new()));
        m.appointments
            .expect_active_for_practitioner()
            .returning(|_, _, _, _| Ok(Vec::new()));
        (m, log)
    }

    fn events(log: &Log) -> Vec<Event> {
        log.lock().expect("not poisoned").clone()
    }

    /// The transactions open after `events`.
    fn open(events: &[Event]) -> Vec<usize> {
        let mut open = Vec::new();
        for e in events {
            match e {
                Event::Begin(id) => open.push(*id),
                Event::End(id) => open.retain(|o| o != id),
                _ => {}
            }
        }
        open
    }

    /// A cache that keeps what it is given, for as long as the test runs.
    fn keeping_cache() -> clinicflow_ports::MockCache {
        let kept: Arc<Mutex<std::collections::HashMap<String, Vec<u8>>>> = Arc::default();
        let mut cache = clinicflow_ports::MockCache::new();
        let k = kept.clone();
        cache
            .expect_get()
            .returning(move |key| k.lock().expect("not poisoned").get(key).cloned());
        let k = kept.clone();
        cache.expect_get_derived().returning(move |key, derive| {
            let bytes = k.lock().expect("not poisoned").get(key).cloned()?;
            derive(&bytes)
        });
        cache
            .expect_stamp()
            .returning(|_| Some(clinicflow_ports::TagStamp::default()));
        cache
            .expect_set_tagged()
            .returning(move |key, _, value, _| {
                kept.lock()
                    .expect("not poisoned")
                    .insert(key.to_owned(), value);
            });
        cache.expect_set().return_const(());
        cache.expect_invalidate().return_const(());
        cache
    }

    #[tokio::test]
    async fn warm_slot_reads_begin_no_transaction() {
        let (m, log) = logged(3);
        let (mut ports, _) = m.ports();
        ports.cache = Arc::new(keeping_cache());
        let service = ScheduleService::new(ports);
        let me = actor();
        let query = || SlotQuery {
            from: "2026-12-01".into(),
            to: "2026-12-02".into(),
            ..SlotQuery::default()
        };
        let p = practitioner(1).id;
        let list = |s: &[Interval], _: &Clinic| s.len();
        service
            .slots(&me, p, "2026-12-01", "2026-12-02", list)
            .await
            .expect("the slots");
        service.first_slots(&me, query()).await.expect("the search");
        let cold = events(&log).len();
        assert!(cold > 0, "the first reads fill the cache from the database");
        service
            .slots(&me, p, "2026-12-01", "2026-12-02", list)
            .await
            .expect("the slots");
        service.first_slots(&me, query()).await.expect("the search");
        let warm = events(&log);
        assert_eq!(warm[cold..], [], "warm reads touched the database");
    }

    #[tokio::test]
    async fn a_slot_list_waits_for_another_callers_computation_with_no_transaction_open() {
        let (m, log) = logged(1);
        let service = ScheduleService::new(m.ports().0);
        let p = practitioner(7);
        let key = format!("slots:{}:2026-12-01:2026-12-02", p.id);
        // Another request is computing these slots right now.
        let theirs = service.flights.enter(&key).await;
        let me = actor();
        let mut mine =
            std::pin::pin!(
                service.slots(&me, p.id, "2026-12-01", "2026-12-02", |s, _| { s.to_vec() })
            );
        assert!(
            futures::poll!(mine.as_mut()).is_pending(),
            "waits for the flight"
        );
        let waiting = events(&log);
        assert_eq!(open(&waiting), Vec::<usize>::new(), "{waiting:?}");
        drop(theirs);
        mine.await.expect("the slots");
        // The miss is computed in a read of its own, begun after the wait.
        let all = events(&log);
        assert_eq!(
            all[waiting.len()..],
            [Event::Begin(2), Event::Calendar(2, p.id), Event::End(2)]
        );
    }

    #[tokio::test]
    async fn a_search_across_practitioners_fans_out_after_its_listing_transaction_ended() {
        let (m, log) = logged(6);
        let service = ScheduleService::new(m.ports().0);
        let query = SlotQuery {
            from: "2026-12-01".into(),
            to: "2026-12-02".into(),
            ..SlotQuery::default()
        };
        service
            .first_slots(&actor(), query)
            .await
            .expect("a search");
        let all = events(&log);
        let listed = all
            .iter()
            .find_map(|e| match e {
                Event::List(tx) => Some(*tx),
                _ => None,
            })
            .expect("practitioners listed");
        let listing_ended = all
            .iter()
            .position(|e| *e == Event::End(listed))
            .expect("the listing's transaction ends");
        let calendars: Vec<(usize, usize)> = all
            .iter()
            .enumerate()
            .filter_map(|(at, e)| match e {
                Event::Calendar(tx, _) => Some((at, *tx)),
                _ => None,
            })
            .collect();
        assert_eq!(calendars.len(), 6, "{all:?}");
        for (at, tx) in calendars {
            assert!(
                at > listing_ended,
                "a calendar read inside the listing: {all:?}"
            );
            assert_ne!(tx, listed, "{all:?}");
        }
        assert_eq!(open(&all), Vec::<usize>::new(), "nothing left open");
    }
}
