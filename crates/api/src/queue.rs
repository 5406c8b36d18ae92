//! `/api/v1/queue`: the walk-in queue, its live board (Server-Sent Events) and statistics.

use std::time::Duration as StdDuration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use clinicflow_domain::{Actor, QueueEntry, QueueEntryId};
use clinicflow_services::{Board, BoardEntry, DayStats, JoinInput, Priority, QueueAction};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::body::{Json, OptionalJson};
use crate::openapi::problems;
use crate::page::path_action;
use crate::{ApiError, AppState, Authenticated, idempotency};

mod hub;

pub use hub::BoardHub;

/// Registers the queue routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/queue").route(web::get().to(board)))
        .service(web::resource("/queue/stream").route(web::get().to(stream)))
        .service(web::resource("/queue/stats").route(web::get().to(stats)))
        .service(web::resource("/queue/call-next").route(web::post().to(call_next)))
        .service(web::resource("/queue/entries").route(web::post().to(join)))
        .service(web::resource("/queue/entries/{id}/{action}").route(web::post().to(act)));
}

/// `POST /queue/entries` body: a walk-in, for a practitioner, a department or anyone.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinIn {
    /// The patient's id.
    patient_id: String,
    /// Only this practitioner may call them.
    practitioner_id: Option<String>,
    /// Only this department's practitioners may call them.
    department: Option<String>,
    /// `immediate`, `very_urgent`, `urgent`, `standard` or `non_urgent`.
    #[schema(example = "standard")]
    category: String,
    /// A note for the staff.
    note: Option<String>,
}

/// Why an entry stands where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriorityOut {
    /// The triage category.
    category: &'static str,
    /// 0 (immediate) to 4 (non-urgent).
    category_rank: i16,
    /// `walk_in` or `appointment`: how the deadline was set.
    rule: &'static str,
    /// `walk_in`: the category's target wait.
    target_minutes: Option<u32>,
    /// `appointment`: when the appointment starts.
    appointment_starts_at: Option<DateTime<Utc>>,
    /// `appointment`: the clinic's check-in grace.
    grace_minutes: Option<u32>,
    /// The rule in words.
    explanation: String,
}

/// A queue entry as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryOut {
    /// The entry's id.
    id: String,
    /// The patient's id.
    patient_id: String,
    /// The practitioner it is for, if any.
    practitioner_id: Option<String>,
    /// The department it is for, if any.
    department: Option<String>,
    /// The checked-in appointment it came from, if any.
    appointment_id: Option<String>,
    /// `waiting`, `called`, `in_service`, `done` or `left`.
    status: &'static str,
    /// The triage category.
    category: &'static str,
    /// When the patient arrived.
    arrived_at: DateTime<Utc>,
    /// When they should be called by; the queue is served in deadline order.
    deadline: DateTime<Utc>,
    /// A note for the staff.
    note: Option<String>,
    /// The user who called them.
    called_by: Option<String>,
    /// When they were called.
    called_at: Option<DateTime<Utc>>,
    /// When service started.
    started_at: Option<DateTime<Utc>>,
    /// When service finished.
    finished_at: Option<DateTime<Utc>>,
    /// When they left unserved.
    left_at: Option<DateTime<Utc>>,
    /// When they were last recalled (sent back from called to waiting, keeping their deadline).
    recalled_at: Option<DateTime<Utc>>,
    /// The entry's version.
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
            recalled_at: e.recalled_at,
            version: e.version,
        }
    }
}

/// One line of the board: the entry and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardEntryOut {
    /// Place among the waiting, from 1; `null` for entries already called or in service.
    position: Option<usize>,
    /// Minutes until the deadline; negative when late.
    minutes_early: i64,
    /// Estimated minutes until the patient is called.
    estimated_wait_minutes: Option<i64>,
    /// Why the entry stands where it stands.
    priority: PriorityOut,
    #[serde(flatten)]
    entry: EntryOut,
}

/// The board: open entries in serve order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardOut {
    /// When the board was computed.
    generated_at: DateTime<Utc>,
    /// Mean service time of the last 20 finished visits (15 without history), in minutes.
    mean_service_minutes: f64,
    /// Practitioners serving this board's scope.
    practitioners: u32,
    /// Open entries in serve order.
    entries: Vec<BoardEntryOut>,
}

impl From<Priority> for PriorityOut {
    fn from(p: Priority) -> Self {
        Self {
            category: p.category.as_str(),
            category_rank: p.category.rank(),
            rule: p.rule,
            target_minutes: p.target_minutes,
            appointment_starts_at: p.appointment_starts_at,
            grace_minutes: p.grace_minutes,
            explanation: p.explanation,
        }
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
                 priority,
             }| BoardEntryOut {
                position: *position,
                minutes_early: entry.minutes_early(board.now),
                estimated_wait_minutes: estimated_wait.map(|w| w.num_minutes()),
                priority: PriorityOut::from(priority.clone()),
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
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    /// What this practitioner may be called for: entries for them, their department, and
    /// general ones.
    practitioner_id: Option<String>,
    /// A department's entries and general ones.
    department: Option<String>,
}

/// The queue board: open entries in serve order (earliest deadline first), with positions,
/// deadlines, estimated waits and the priority rule of each.
#[utoipa::path(
    get,
    path = "/api/v1/queue",
    operation_id = "queue_board",
    tag = "queue",
    params(ScopeQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The board", body = BoardOut),
        problems::Common,
        problems::Forbidden,
        problems::Invalid,
    )
)]
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

/// Adds a walk-in to the queue.
#[utoipa::path(
    post,
    path = "/api/v1/queue/entries",
    operation_id = "join_queue",
    tag = "queue",
    params(idempotency::KeyHeader),
    request_body = JoinIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new entry", body = EntryOut),
        problems::Common,
        problems::Forbidden,
        problems::Conflict,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn join(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    body: Json<JoinIn>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let keyed = idempotency::key_of(&req, &b)?;
    let input = JoinInput {
        patient_id: b.patient_id,
        practitioner_id: b.practitioner_id,
        department: b.department,
        category: b.category,
        note: b.note,
    };
    let queue = &state.services.queue;
    let created = |entry: &QueueEntry| HttpResponse::Created().json(EntryOut::from(entry.clone()));
    let Some(keyed) = keyed else {
        return Ok(created(&queue.join(&auth.0, input).await?));
    };
    let render = |entry: &QueueEntry| idempotency::stored(created(entry));
    let once = keyed.once(state.limits.idempotency_ttl_secs, &render);
    let answered = queue.join_idempotent(&auth.0, input, &once).await?;
    Ok(idempotency::respond(answered))
}

/// `POST /queue/call-next` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallNextIn {
    /// The practitioner who calls.
    practitioner_id: String,
}

/// The answer of `call-next`: the entry called, or none when nobody waits.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalledOut {
    /// The entry now `called`; `null` when nobody waits.
    entry: Option<EntryOut>,
    /// Whether nobody the practitioner may serve waits.
    queue_empty: bool,
}

/// Atomically takes the first waiting entry the practitioner may serve and marks it called;
/// two practitioners calling at once never get the same patient.
#[utoipa::path(
    post,
    path = "/api/v1/queue/call-next",
    operation_id = "call_next",
    tag = "queue",
    request_body = CallNextIn,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The entry called, or `queue_empty`", body = CalledOut),
        problems::Common,
        problems::Forbidden,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn call_next(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: Json<CallNextIn>,
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
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActIn {
    /// `retriage`: the new triage category (required there).
    category: Option<String>,
}

/// The moves `POST /queue/entries/{id}/{action}` makes; any other word is a 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryAction {
    /// called → in_service; opens the encounter.
    Start,
    /// in_service → done; closes the encounter and completes the appointment.
    Finish,
    /// waiting or called → left.
    Leave,
    /// called → waiting, keeping the deadline.
    Recall,
    /// A new `category`; recomputes this entry's deadline only.
    Retriage,
}

/// Moves a queue entry: `start`, `finish`, `leave`, `recall` or `retriage` (with
/// `{category}`). An illegal move is a 409 `illegal_transition` with `allowed`.
#[utoipa::path(
    post,
    path = "/api/v1/queue/entries/{id}/{action}",
    operation_id = "move_queue_entry",
    tag = "queue",
    params(
        ("id" = Uuid, Path, description = "The entry's id"),
        ("action" = EntryAction, Path, description = "The move"),
    ),
    request_body(content = Option<ActIn>, description = "Only `retriage` reads a body"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The moved entry", body = EntryOut),
        problems::Common,
        problems::Forbidden,
        problems::NotFound,
        problems::Conflict,
        problems::JsonBody,
        problems::Invalid,
    )
)]
async fn act(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(Uuid, String)>,
    body: OptionalJson<ActIn>,
) -> Result<HttpResponse, ApiError> {
    let (id, action) = path.into_inner();
    let action = match path_action(&action).ok_or(ApiError::NoRoute)? {
        EntryAction::Start => QueueAction::Start,
        EntryAction::Finish => QueueAction::Finish,
        EntryAction::Leave => QueueAction::Leave,
        EntryAction::Recall => QueueAction::Recall,
        EntryAction::Retriage => {
            let category = body.0.and_then(|b| b.category).ok_or_else(|| {
                ApiError::Service(clinicflow_services::FieldErrors::single(
                    "category",
                    "is required to re-triage",
                ))
            })?;
            QueueAction::Retriage(category)
        }
    };
    let entry = state
        .services
        .queue
        .act(&auth.0, QueueEntryId::from_uuid(id), action)
        .await?;
    Ok(HttpResponse::Ok().json(EntryOut::from(entry)))
}

/// `?date=&practitioner_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// A clinic-local day (`YYYY-MM-DD`); default today.
    #[param(format = Date)]
    date: Option<String>,
    /// One practitioner's figures.
    practitioner_id: Option<String>,
}

/// A day's figures, among that day's arrivals.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsOut {
    /// The clinic-local day.
    #[schema(format = Date)]
    date: String,
    /// Entries waiting.
    waiting: u64,
    /// Entries called.
    called: u64,
    /// Entries in service.
    in_service: u64,
    /// Entries done.
    done: u64,
    /// Entries that left unserved.
    left: u64,
    /// Mean wait from arrival to call, in minutes.
    mean_wait_minutes: Option<f64>,
    /// 90th percentile of that wait.
    p90_wait_minutes: Option<f64>,
    /// Mean service time, in minutes.
    mean_service_minutes: Option<f64>,
    /// Appointments marked no-show that day.
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

/// A clinic-local day's queue figures.
#[utoipa::path(
    get,
    path = "/api/v1/queue/stats",
    operation_id = "queue_stats",
    tag = "queue",
    params(StatsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The day's figures", body = StatsOut),
        problems::Common,
        problems::Forbidden,
        problems::Invalid,
    )
)]
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

fn sse(event: &str, data: &str) -> web::Bytes {
    web::Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// `GET /queue/stream`: the ordered board now and after every change, with heartbeats.
///
/// Server-Sent Events: `event: queue` with `data:` the same JSON as `GET /api/v1/queue`
/// (schema `BoardOut`), sent on connection and after every change on any instance, and a
/// `: heartbeat` comment every 15 s. At most 5 open streams per user per instance (429 beyond).
/// The stream ends with `event: end`, `data: {"reason": …, "reconnect": …}` when its access
/// token expires (`token_expired`), its user logs out (`logged_out`) or is deactivated
/// (`deactivated`), or the instance shuts down (`shutdown`).
#[utoipa::path(
    get,
    path = "/api/v1/queue/stream",
    operation_id = "queue_stream",
    tag = "queue",
    params(ScopeQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A `text/event-stream` of `queue` events, each a `BoardOut` as JSON, ending with one `end` event (`{\"reason\": \"shutdown|token_expired|logged_out|deactivated\", \"reconnect\": bool}`)", content_type = "text/event-stream", body = String),
        problems::Common,
        problems::Forbidden,
        problems::Invalid,
    )
)]
async fn stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    q: web::Query<ScopeQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor: Actor = auth.0;
    let (_, expires_at) = crate::auth::authenticate_until(&req, &state)?;
    let scope = q.into_inner();
    let slot = state.streams.acquire(actor.user_id)?;
    let ended = clinicflow_services::live::announced_ends(state.events.as_ref(), actor.user_id)
        .await
        .boxed();
    let end = crate::live::first_end(&state.live, ended, expires_at);
    let live = state
        .services
        .queue
        .watch_board(
            &actor,
            scope.practitioner_id.as_deref(),
            scope.department.as_deref(),
        )
        .await?;
    let (first, boards) = state
        .boards
        .follow(live, &state.services, &state.events)
        .await?;
    let heartbeat = StdDuration::from_secs(state.limits.stream_heartbeat_secs.max(1));
    let ticks = futures::stream::unfold((), move |()| async move {
        actix_web::rt::time::sleep(heartbeat).await;
        Some((web::Bytes::from_static(b": heartbeat\n\n"), ()))
    });
    let updates = futures::stream::select(boards, ticks).map(Ok::<_, actix_web::Error>);
    let body =
        futures::stream::once(async move { Ok::<_, actix_web::Error>(first) }).chain(updates);
    let body = crate::live::until_end(body, end)
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
