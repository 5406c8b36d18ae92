//! `/api/v1/queue`: the walk-in queue, its live board (Server-Sent Events) and statistics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{Actor, DeadlineRule, QueueEntry, QueueEntryId, UserId};
use clinicflow_services::{Board, BoardEntry, DayStats, JoinInput, QueueAction, ServiceError};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ApiError, AppState, Authenticated};

/// Registers the queue routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/queue").route(web::get().to(board)))
        .service(web::resource("/queue/stream").route(web::get().to(stream)))
        .service(web::resource("/queue/stats").route(web::get().to(stats)))
        .service(web::resource("/queue/call-next").route(web::post().to(call_next)))
        .service(web::resource("/queue/entries").route(web::post().to(join)))
        .service(web::resource("/queue/entries/{id}/{action}").route(web::post().to(act)));
}

/// `POST /queue/entries` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinIn {
    patient_id: String,
    practitioner_id: Option<String>,
    department: Option<String>,
    category: String,
    note: Option<String>,
}

/// Why an entry stands where it stands.
#[derive(Debug, Serialize)]
pub struct PriorityOut {
    category: &'static str,
    category_rank: i16,
    rule: &'static str,
    target_minutes: Option<u32>,
    appointment_starts_at: Option<DateTime<Utc>>,
    grace_minutes: Option<u32>,
    explanation: String,
}

/// A queue entry as the API shows it.
#[derive(Debug, Serialize)]
pub struct EntryOut {
    id: String,
    patient_id: String,
    practitioner_id: Option<String>,
    department: Option<String>,
    appointment_id: Option<String>,
    status: &'static str,
    category: &'static str,
    arrived_at: DateTime<Utc>,
    deadline: DateTime<Utc>,
    note: Option<String>,
    called_by: Option<String>,
    called_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    left_at: Option<DateTime<Utc>>,
    version: i32,
}

impl From<QueueEntry> for EntryOut {
    fn from(e: QueueEntry) -> Self {
        Self {
            id: e.id.to_string(),
            patient_id: e.patient_id.to_string(),
            practitioner_id: e.practitioner_id.map(|v| v.to_string()),
            department: e.department,
            appointment_id: e.appointment_id.map(|v| v.to_string()),
            status: e.status.as_str(),
            category: e.category.as_str(),
            arrived_at: e.arrived_at,
            deadline: e.deadline,
            note: e.note,
            called_by: e.called_by.map(|v| v.to_string()),
            called_at: e.called_at,
            started_at: e.started_at,
            finished_at: e.finished_at,
            left_at: e.left_at,
            version: e.version,
        }
    }
}

/// One line of the board.
#[derive(Debug, Serialize)]
pub struct BoardEntryOut {
    position: Option<usize>,
    minutes_early: i64,
    estimated_wait_minutes: Option<i64>,
    priority: PriorityOut,
    #[serde(flatten)]
    entry: EntryOut,
}

/// The board.
#[derive(Debug, Serialize)]
pub struct BoardOut {
    generated_at: DateTime<Utc>,
    mean_service_minutes: f64,
    practitioners: u32,
    entries: Vec<BoardEntryOut>,
}

fn priority(board: &Board, e: &QueueEntry) -> PriorityOut {
    let settings = &board.clinic.queue;
    match e.rule {
        DeadlineRule::WalkIn => {
            let target = settings.target_minutes[e.category.rank() as usize];
            PriorityOut {
                category: e.category.as_str(),
                category_rank: e.category.rank(),
                rule: "walk_in",
                target_minutes: Some(target),
                appointment_starts_at: None,
                grace_minutes: None,
                explanation: format!("walk-in: arrival + {target} min target for {}", e.category),
            }
        }
        DeadlineRule::Appointment { starts_at } => PriorityOut {
            category: e.category.as_str(),
            category_rank: e.category.rank(),
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

fn board_out(board: Board) -> BoardOut {
    let entries = board
        .entries
        .iter()
        .map(
            |BoardEntry {
                 entry,
                 position,
                 estimated_wait,
             }| BoardEntryOut {
                position: *position,
                minutes_early: entry.minutes_early(board.now),
                estimated_wait_minutes: estimated_wait.map(|w| w.num_minutes()),
                priority: priority(&board, entry),
                entry: EntryOut::from(entry.clone()),
            },
        )
        .collect();
    BoardOut {
        generated_at: board.now,
        mean_service_minutes: board.mean_service.num_seconds() as f64 / 60.0,
        practitioners: board.practitioners,
        entries,
    }
}

/// `?practitioner_id=&department=`.
#[derive(Debug, Clone, Deserialize)]
pub struct ScopeQuery {
    practitioner_id: Option<String>,
    department: Option<String>,
}

async fn board(
    state: web::Data<AppState>,
    auth: Authenticated,
    q: web::Query<ScopeQuery>,
) -> Result<HttpResponse, ApiError> {
    let board = state
        .services
        .queue
        .board(
            &auth.0,
            q.practitioner_id.as_deref(),
            q.department.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(board_out(board)))
}

async fn join(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Json<JoinIn>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let input = JoinInput {
        patient_id: b.patient_id,
        practitioner_id: b.practitioner_id,
        department: b.department,
        category: b.category,
        note: b.note,
    };
    let entry = state.services.queue.join(&auth.0, input).await?;
    Ok(HttpResponse::Created().json(EntryOut::from(entry)))
}

/// `POST /queue/call-next` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallNextIn {
    practitioner_id: String,
}

/// The answer of `call-next`: the entry called, or none when nobody waits.
#[derive(Debug, Serialize)]
pub struct CalledOut {
    entry: Option<EntryOut>,
    queue_empty: bool,
}

async fn call_next(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Json<CallNextIn>,
) -> Result<HttpResponse, ApiError> {
    let called = state
        .services
        .queue
        .call_next(&auth.0, &body.practitioner_id)
        .await?;
    Ok(HttpResponse::Ok().json(CalledOut {
        queue_empty: called.is_none(),
        entry: called.map(EntryOut::from),
    }))
}

/// Optional body of an entry move (only `retriage` reads it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActIn {
    category: Option<String>,
}

async fn act(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(Uuid, String)>,
    body: Option<web::Json<ActIn>>,
) -> Result<HttpResponse, ApiError> {
    let (id, action) = path.into_inner();
    let action = match action.as_str() {
        "start" => QueueAction::Start,
        "finish" => QueueAction::Finish,
        "leave" => QueueAction::Leave,
        "recall" => QueueAction::Recall,
        "retriage" => {
            let category = body.and_then(|b| b.into_inner().category).ok_or_else(|| {
                ApiError::Service(clinicflow_services::FieldErrors::single(
                    "category",
                    "is required to re-triage",
                ))
            })?;
            QueueAction::Retriage(category)
        }
        _ => return Err(ApiError::NoRoute),
    };
    let entry = state
        .services
        .queue
        .act(&auth.0, QueueEntryId::from_uuid(id), action)
        .await?;
    Ok(HttpResponse::Ok().json(EntryOut::from(entry)))
}

/// `?date=&practitioner_id=`.
#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    date: Option<String>,
    practitioner_id: Option<String>,
}

/// A day's figures.
#[derive(Debug, Serialize)]
pub struct StatsOut {
    date: String,
    waiting: u64,
    called: u64,
    in_service: u64,
    done: u64,
    left: u64,
    mean_wait_minutes: Option<f64>,
    p90_wait_minutes: Option<f64>,
    mean_service_minutes: Option<f64>,
    no_shows: u64,
}

fn minutes(d: Option<chrono::Duration>) -> Option<f64> {
    d.map(|d| (d.num_seconds() as f64 / 60.0 * 10.0).round() / 10.0)
}

impl From<DayStats> for StatsOut {
    fn from(s: DayStats) -> Self {
        let count = |i: usize| s.counts[i].1;
        Self {
            date: s.date.to_string(),
            waiting: count(0),
            called: count(1),
            in_service: count(2),
            done: count(3),
            left: count(4),
            mean_wait_minutes: minutes(s.mean_wait),
            p90_wait_minutes: minutes(s.p90_wait),
            mean_service_minutes: minutes(s.mean_service),
            no_shows: s.no_shows,
        }
    }
}

async fn stats(
    state: web::Data<AppState>,
    auth: Authenticated,
    q: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let s = state
        .services
        .queue
        .stats(&auth.0, q.date.as_deref(), q.practitioner_id.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(StatsOut::from(s)))
}

/// Open live streams per user, so one user cannot hold unbounded connections.
#[derive(Debug, Clone, Default)]
pub struct StreamSlots(Arc<Mutex<HashMap<UserId, u32>>>);

/// A held stream slot; dropping it (the client went away) frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    slots: StreamSlots,
    user: UserId,
}

impl StreamSlots {
    /// Takes a slot for `user` if fewer than `limit` are held.
    pub fn acquire(&self, user: UserId, limit: u32) -> Option<StreamSlot> {
        let mut held = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = held.entry(user).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            slots: self.clone(),
            user,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut held = self
            .slots
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

fn sse(event: &str, data: &str) -> web::Bytes {
    web::Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// `GET /queue/stream`: the ordered board now and after every change, with heartbeats.
async fn stream(
    state: web::Data<AppState>,
    auth: Authenticated,
    q: web::Query<ScopeQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor: Actor = auth.0;
    let scope = q.into_inner();
    let slot = state
        .streams
        .acquire(actor.user_id, state.limits.max_streams_per_user)
        .ok_or(ApiError::Service(ServiceError::RateLimited {
            retry_after_secs: 5,
        }))?;
    // Subscribe before the first read, so no change between the two is missed.
    let changes = state
        .events
        .subscribe(&clinicflow_services::queue::topic(actor.clinic_id))
        .await;
    let first = state
        .services
        .queue
        .board(
            &actor,
            scope.practitioner_id.as_deref(),
            scope.department.as_deref(),
        )
        .await?;
    let first = serde_json::to_string(&board_out(first))
        .map_err(|e| ApiError::Service(ServiceError::Unexpected(e.into())))?;
    let heartbeat = StdDuration::from_secs(state.limits.stream_heartbeat_secs.max(1));
    let ticks = futures::stream::unfold((), move |()| async move {
        actix_web::rt::time::sleep(heartbeat).await;
        Some((Tick::Heartbeat, ()))
    });
    let ticks = futures::stream::select(changes.map(|_| Tick::Changed), ticks);
    let services = state.services.clone();
    let updates = ticks.then(move |tick| {
        let services = services.clone();
        let scope = scope.clone();
        async move {
            match tick {
                Tick::Heartbeat => {
                    Ok::<_, actix_web::Error>(web::Bytes::from_static(b": heartbeat\n\n"))
                }
                Tick::Changed => {
                    let board = services
                        .queue
                        .board_refresh(
                            &actor,
                            scope.practitioner_id.as_deref(),
                            scope.department.as_deref(),
                        )
                        .await;
                    Ok(
                        match board
                            .ok()
                            .and_then(|b| serde_json::to_string(&board_out(b)).ok())
                        {
                            Some(json) => sse("queue", &json),
                            // A failed refresh is skipped: the next change or the client's reconnect recovers.
                            None => web::Bytes::from_static(b": refresh failed\n\n"),
                        },
                    )
                }
            }
        }
    });
    let body =
        futures::stream::once(async move { Ok::<_, actix_web::Error>(sse("queue", &first)) })
            .chain(updates)
            // The slot lives as long as the stream: when the client goes away, actix drops both.
            .map(move |item| {
                let _held = &slot;
                item
            });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// What wakes a live stream.
enum Tick {
    /// Time for a keep-alive comment.
    Heartbeat,
    /// The queue changed.
    Changed,
}
