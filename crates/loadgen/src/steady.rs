//! `steady`: a steady booking load while xtask breaks something underneath it.
//!
//! Each of a few workers, in a loop until the duration is over: books the next free slot
//! (expected 201), books the same slot again for another patient (expected 409
//! `booking_conflict`, the invariant under fault), and reads that practitioner's slots (a
//! cached read). Every answer becomes one `event` line in `--events` with its send time in
//! Unix milliseconds, so xtask can judge it by when its fault began and ended; the ids of
//! the bookings answered 201 go to `--created`.
//!
//! With `--disclosed`, a few more workers read patients (audited reads) without pause
//! beside the bookings, and the request ids of the reads answered 200 go to that file, so
//! xtask can check after a crash that every answered read has its audit event.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::answer::{self, Answer, Kind};
use crate::clinic::{self, Slot};
use crate::session::Session;

/// Days of free slots read into the pool (the slots route answers at most 62).
const POOL_DAYS: i64 = 56;
/// Patients the bookings rotate through.
const PATIENTS: usize = 200;
/// Pause after a request got no answer, so a worker does not spin while the server is down.
const TRANSPORT_BACKOFF: Duration = Duration::from_millis(100);

/// What to run.
#[derive(Debug)]
pub struct Steady {
    /// The server.
    pub base: String,
    /// Login.
    pub email: String,
    /// Password.
    pub password: String,
    /// How long the load lasts.
    pub duration: Duration,
    /// Concurrent workers.
    pub workers: usize,
    /// Pause between one worker's rounds.
    pub pause: Duration,
    /// Where the `event` lines go.
    pub events: PathBuf,
    /// Where the ids of created appointments go, one a line.
    pub created: PathBuf,
    /// Points the clinic's webhook here first.
    pub webhook: Option<String>,
    /// Bookings go to slots from this many days ahead on.
    pub days_ahead: i64,
    /// Where the request ids of patient reads answered 200 go; no reads without it.
    pub disclosed: Option<PathBuf>,
}

/// Workers reading patients beside the bookings, when asked for.
const READERS: usize = 4;

/// A slot with the patient who books it and the one who tries it again.
#[derive(Debug, Clone)]
struct Booking {
    slot: Slot,
    patient: String,
    rival: String,
}

/// What the workers share.
struct Shared {
    session: Session,
    pool: Mutex<VecDeque<Booking>>,
    events: Mutex<Vec<String>>,
    created: Mutex<Vec<String>>,
    disclosed: Mutex<Vec<String>>,
    patients: Vec<String>,
    counts: Mutex<Counts>,
}

/// Answers by outcome.
#[derive(Debug, Default)]
struct Counts {
    requests: u64,
    created: u64,
    conflicts: u64,
    unavailable: u64,
    transport: u64,
    other: u64,
    double_booked: u64,
}

/// Runs the load and prints its `result` line.
pub async fn run(steady: Steady) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let session = Session::login(client, &steady.base, &steady.email, &steady.password).await?;
    if let Some(url) = &steady.webhook {
        let request = session
            .request(Method::PUT, "/api/v1/clinic/webhook")
            .await?
            .json(&json!({ "url": url }));
        let answer = answer::send(request).await;
        if !(200..300).contains(&answer.status) {
            return Err(format!("PUT /api/v1/clinic/webhook: {answer}"));
        }
    }
    let patients = clinic::patients(&session, PATIENTS).await?;
    let pool = pool(&session, &patients, steady.days_ahead).await?;
    eprintln!(
        "steady: {} free slots to book, {} workers for {:?}",
        pool.len(),
        steady.workers,
        steady.duration
    );
    let shared = Arc::new(Shared {
        session,
        pool: Mutex::new(pool),
        events: Mutex::default(),
        created: Mutex::default(),
        disclosed: Mutex::default(),
        patients,
        counts: Mutex::default(),
    });
    // xtask times its fault from this line.
    println!("started unix_ms={}", answer::unix_ms());
    std::io::Write::flush(&mut std::io::stdout())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    let deadline = Instant::now() + steady.duration;
    let mut workers = JoinSet::new();
    for _ in 0..steady.workers.max(1) {
        let shared = Arc::clone(&shared);
        let pause = steady.pause;
        workers.spawn(async move { work(&shared, deadline, pause).await });
    }
    if steady.disclosed.is_some() {
        for reader in 0..READERS {
            let shared = Arc::clone(&shared);
            workers.spawn(async move { read_patients(&shared, deadline, reader).await });
        }
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| format!("a worker panicked: {e}"))??;
    }

    let lines = |lines: &Mutex<Vec<String>>| {
        let mut text = lock(lines).join("\n");
        text.push('\n');
        text
    };
    std::fs::write(&steady.events, lines(&shared.events))
        .map_err(|e| format!("cannot write {}: {e}", steady.events.display()))?;
    std::fs::write(&steady.created, lines(&shared.created))
        .map_err(|e| format!("cannot write {}: {e}", steady.created.display()))?;
    if let Some(disclosed) = &steady.disclosed {
        std::fs::write(disclosed, lines(&shared.disclosed))
            .map_err(|e| format!("cannot write {}: {e}", disclosed.display()))?;
    }
    let c = lock(&shared.counts);
    println!(
        "result scenario=steady requests={} created={} conflicts={} unavailable={} transport={} \
         other={} double_booked={}",
        c.requests, c.created, c.conflicts, c.unavailable, c.transport, c.other, c.double_booked
    );
    Ok(())
}

/// One worker's loop.
async fn work(shared: &Shared, deadline: Instant, pause: Duration) -> Result<(), String> {
    while Instant::now() < deadline {
        let Some(booking) = lock(&shared.pool).pop_front() else {
            return Err("no free slot left to book: lower the duration".into());
        };
        let first = book(shared, &booking.slot, &booking.patient).await?;
        shared.record("book", &first);
        if first.status == 201 {
            match first.id() {
                Some(id) => lock(&shared.created).push(id),
                None => return Err("POST /api/v1/appointments: 201 without an id".into()),
            }
            let again = book(shared, &booking.slot, &booking.rival).await?;
            shared.record("rebook", &again);
            if again.status == 201 {
                lock(&shared.counts).double_booked += 1;
            }
        }
        if first.kind != Kind::Transport {
            let path = format!(
                "/api/v1/practitioners/{}/slots?from={}&to={}",
                booking.slot.practitioner_id,
                booking.slot.starts_at.date_naive(),
                booking.slot.starts_at.date_naive() + chrono::Duration::days(7),
            );
            let request = shared.session.request(Method::GET, &path).await?;
            let read = answer::send(request).await;
            shared.record("read", &read);
        }
        if first.kind == Kind::Transport {
            tokio::time::sleep(TRANSPORT_BACKOFF).await;
        } else {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(())
}

/// One reader's loop: patient after patient, each read audited by the server.
async fn read_patients(shared: &Shared, deadline: Instant, reader: usize) -> Result<(), String> {
    let mut next = reader;
    while Instant::now() < deadline {
        let patient = &shared.patients[next % shared.patients.len()];
        next += READERS;
        let path = format!("/api/v1/patients/{patient}");
        let request = shared.session.request(Method::GET, &path).await?;
        let read = answer::send(request).await;
        shared.record("disclose", &read);
        if read.status == 200 {
            let id = read
                .request_id
                .ok_or("GET /api/v1/patients/{id}: 200 without x-request-id")?;
            lock(&shared.disclosed).push(id);
        } else if read.kind == Kind::Transport {
            tokio::time::sleep(TRANSPORT_BACKOFF).await;
        }
    }
    Ok(())
}

impl Shared {
    /// Counts an answer and keeps its event line.
    fn record(&self, op: &str, answer: &Answer) {
        let mut c = lock(&self.counts);
        c.requests += 1;
        match (answer.status, answer.kind) {
            (201, _) => c.created += 1,
            (_, Kind::Transport) => c.transport += 1,
            (503, Kind::Problem) => c.unavailable += 1,
            _ if answer.is_conflict() => c.conflicts += 1,
            (200, Kind::Json) if op == "read" || op == "disclose" => {}
            _ => {
                c.other += 1;
                eprintln!("steady: {op}: {answer}");
            }
        }
        drop(c);
        lock(&self.events).push(answer.event_line(op));
    }
}

/// Books `slot` for `patient`.
async fn book(shared: &Shared, slot: &Slot, patient: &str) -> Result<Answer, String> {
    let body = json!({
        "patient_id": patient,
        "practitioner_id": slot.practitioner_id,
        "starts_at": clinic::query_time(slot.starts_at),
        "reason": "chaos steady load",
    });
    let request = shared
        .session
        .request(Method::POST, "/api/v1/appointments")
        .await?
        .json(&body);
    Ok(answer::send(request).await)
}

/// Free slots of every practitioner in time order, each with a patient to book it and a
/// rival. Neighbouring slots in that order are the ones that overlap, and they get
/// different patients, so a first booking never conflicts on its patient.
async fn pool(
    session: &Session,
    patients: &[String],
    days_ahead: i64,
) -> Result<VecDeque<Booking>, String> {
    let from = Utc::now().date_naive() + chrono::Duration::days(days_ahead);
    let mut slots = Vec::new();
    for practitioner in clinic::practitioners(session).await? {
        slots.extend(clinic::free_slots(session, &practitioner, from, POOL_DAYS).await?);
    }
    slots.sort_by_key(|s| (s.starts_at, s.practitioner_id.clone()));
    Ok(slots
        .into_iter()
        .enumerate()
        .map(|(i, slot)| Booking {
            slot,
            patient: patients[i % patients.len()].clone(),
            rival: patients[(i + patients.len() / 2) % patients.len()].clone(),
        })
        .collect())
}

/// Locks a mutex, ignoring poisoning (a panicked worker fails the run anyway).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
