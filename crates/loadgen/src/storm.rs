//! `storm`: many bookings of overlapping times sent at once, spread round-robin over the
//! instances of one deployment, so that the database alone decides which one wins.
//!
//! Every request's interval contains one common stretch of time, so any two of them
//! overlap and at most one can be booked. With `--conflict practitioner` they are for one
//! practitioner and each has its own patient; with `--conflict patient` they are for one
//! patient and alternate between two practitioners whose free slots overlap. With
//! `--conflict retry` every request is the same booking with the same `Idempotency-Key`, as
//! a client retrying through several instances at once: all must get the one booking's 201.
//! Connections
//! are opened before the storm (a round of `GET /health/live` as wide as the storm) and
//! every request waits on one barrier, so all of them are in flight together.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::answer::{self, Answer};
use crate::clinic::{self, ACTIVE, Slot};
use crate::session::Session;

/// Whose overlap the storm provokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Conflict {
    /// One practitioner, a different patient per request.
    Practitioner,
    /// One patient, two practitioners in turn.
    Patient,
    /// One booking with one idempotency key, sent by every request.
    Retry,
}

/// What to send.
#[derive(Debug)]
pub struct Storm {
    /// The instances, each `http://host:port`.
    pub bases: Vec<String>,
    /// Requests in the storm.
    pub requests: usize,
    /// Whose overlap.
    pub conflict: Conflict,
    /// Login.
    pub email: String,
    /// Password.
    pub password: String,
    /// The storm books a time from this many days ahead on.
    pub days_ahead: i64,
}

/// The shared stretch of time and who is booked into it.
struct Target {
    practitioners: Vec<String>,
    patients: Vec<String>,
    /// The window every request's interval lies in.
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// Runs the storm and prints its `result` line.
pub async fn run(storm: Storm) -> Result<(), String> {
    let clients: Vec<reqwest::Client> = storm
        .bases
        .iter()
        .map(|_| client(storm.requests))
        .collect::<Result<_, _>>()?;
    let first = Session::login(
        clients[0].clone(),
        &storm.bases[0],
        &storm.email,
        &storm.password,
    )
    .await?;
    let sessions: Vec<Session> = storm
        .bases
        .iter()
        .zip(&clients)
        .map(|(base, client)| first.on(client.clone(), base))
        .collect();
    let from = Utc::now().date_naive() + chrono::Duration::days(storm.days_ahead);
    let target = target(&first, storm.conflict, storm.requests, from).await?;
    let window = (target.end - target.start).num_minutes();
    // Starts spread over the window's first third, each lasting the other two thirds: every
    // interval contains the window's middle third, so any two overlap.
    let step = window / 3;
    let duration = window - step;
    let bodies: Vec<Value> = (0..storm.requests)
        .map(|i| {
            let offset = match storm.conflict {
                Conflict::Retry => 0,
                _ => i64::try_from(i).unwrap_or(0) % (step + 1),
            };
            let practitioner = &target.practitioners[i % target.practitioners.len()];
            let patient = &target.patients[i % target.patients.len()];
            json!({
                "patient_id": patient,
                "practitioner_id": practitioner,
                "starts_at": clinic::query_time(target.start + chrono::Duration::minutes(offset)),
                "duration_minutes": duration,
                "reason": "chaos storm",
            })
        })
        .collect();
    eprintln!(
        "storm: {} requests over {} instances, {} practitioner(s), {} patient(s), window {} – {}",
        storm.requests,
        sessions.len(),
        target.practitioners.len(),
        target.patients.len(),
        clinic::query_time(target.start),
        clinic::query_time(target.end),
    );

    open_connections(&sessions, storm.requests).await;
    // One key per storm, so a second run books afresh.
    let key = (storm.conflict == Conflict::Retry)
        .then(|| format!("chaos-retry-{}", Utc::now().timestamp_micros()));
    let answers = fire(&sessions, bodies, key.as_deref()).await?;
    let mut ids: Vec<String> = answers
        .iter()
        .filter(|a| a.status == 201)
        .filter_map(Answer::id)
        .collect();
    ids.sort();
    ids.dedup();

    let created = answers.iter().filter(|a| a.status == 201).count();
    let conflicts = answers.iter().filter(|a| a.is_conflict()).count();
    let mut others: BTreeMap<String, usize> = BTreeMap::new();
    for answer in answers
        .iter()
        .filter(|a| a.status != 201 && !a.is_conflict())
    {
        *others.entry(answer.to_string()).or_default() += 1;
    }
    for (what, count) in &others {
        eprintln!("storm: {count} × {what}");
    }
    let first_sent = answers.iter().map(|a| a.sent_unix_ms).min().unwrap_or(0);
    let last_sent = answers.iter().map(|a| a.sent_unix_ms).max().unwrap_or(0);
    let first_answered = answers
        .iter()
        .map(|a| a.sent_unix_ms + a.latency.as_millis())
        .min()
        .unwrap_or(0);
    let max_ms = answers
        .iter()
        .map(|a| a.latency.as_millis())
        .max()
        .unwrap_or(0);

    let filter = match storm.conflict {
        Conflict::Practitioner | Conflict::Retry => {
            format!("practitioner_id={}", target.practitioners[0])
        }
        Conflict::Patient => format!("patient_id={}", target.patients[0]),
    };
    // Appointments that start up to a day before the window could reach into it too.
    let listed = clinic::appointments(
        &first,
        &filter,
        target.start - chrono::Duration::days(1),
        target.end,
    )
    .await?;
    let active_rows = listed
        .iter()
        .filter(|a| clinic::text(a, "status").is_some_and(|s| ACTIVE.contains(&s)))
        .filter(|a| overlaps(a, target.start, target.end))
        .count();
    println!(
        "result scenario=storm conflict={} requests={} created={created} conflicts={conflicts} \
         other={} active_rows={active_rows} distinct_ids={} in_flight_together={} send_spread_ms={} max_ms={max_ms} \
         practitioner_ids={} patient_id={} window_start={} window_end={}",
        match storm.conflict {
            Conflict::Practitioner => "practitioner",
            Conflict::Patient => "patient",
            Conflict::Retry => "retry",
        },
        answers.len(),
        answers.len() - created - conflicts,
        ids.len(),
        last_sent <= first_answered,
        last_sent - first_sent,
        target.practitioners.join(","),
        target.patients[0],
        clinic::query_time(target.start),
        clinic::query_time(target.end),
    );
    Ok(())
}

/// A client whose pool keeps a connection for every request of the storm.
fn client(requests: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(requests)
        .pool_idle_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Finds free time for the storm from `from` on, and the parties to book into it.
async fn target(
    session: &Session,
    conflict: Conflict,
    requests: usize,
    from: NaiveDate,
) -> Result<Target, String> {
    let practitioners = clinic::practitioners(session).await?;
    match conflict {
        Conflict::Practitioner | Conflict::Retry => {
            let wanted = if conflict == Conflict::Retry {
                1
            } else {
                requests
            };
            let patients = clinic::patients(session, wanted).await?;
            for practitioner in &practitioners {
                let slots = clinic::free_slots(session, practitioner, from, 14).await?;
                if let Some(slot) = slots
                    .into_iter()
                    .find(|s| long_enough(s.starts_at, s.ends_at))
                {
                    return Ok(Target {
                        practitioners: vec![practitioner.clone()],
                        patients,
                        start: slot.starts_at,
                        end: slot.ends_at,
                    });
                }
            }
            Err(format!("no practitioner has a free slot from {from} on"))
        }
        Conflict::Patient => {
            let patients = clinic::patients(session, 1).await?;
            let mut slots: Vec<Vec<Slot>> = Vec::new();
            for practitioner in &practitioners {
                slots.push(clinic::free_slots(session, practitioner, from, 14).await?);
            }
            for (i, first) in slots.iter().enumerate() {
                for second in &slots[i + 1..] {
                    for a in first {
                        for b in second {
                            let start = a.starts_at.max(b.starts_at);
                            let end = a.ends_at.min(b.ends_at);
                            if long_enough(start, end) {
                                return Ok(Target {
                                    practitioners: vec![
                                        a.practitioner_id.clone(),
                                        b.practitioner_id.clone(),
                                    ],
                                    patients,
                                    start,
                                    end,
                                });
                            }
                        }
                    }
                }
            }
            Err(format!(
                "no two practitioners have overlapping free slots from {from} on"
            ))
        }
    }
}

/// Whether a window leaves room for overlapping intervals of whole minutes.
fn long_enough(start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    (end - start).num_minutes() >= 3
}

/// Whether appointment `a` overlaps `[start, end)`.
fn overlaps(a: &Value, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    let instant = |name: &str| {
        clinic::text(a, name)
            .and_then(|raw| DateTime::parse_from_rfc3339(raw).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    match (instant("starts_at"), instant("ends_at")) {
        (Some(s), Some(e)) => s < end && start < e,
        _ => false,
    }
}

/// Opens as many connections as the storm has requests, spread like the storm, so the
/// storm itself does not wait on TCP handshakes.
async fn open_connections(sessions: &[Session], requests: usize) {
    let barrier = Arc::new(Barrier::new(requests));
    let mut tasks = JoinSet::new();
    for i in 0..requests {
        let session = sessions[i % sessions.len()].clone();
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            answer::send(session.client.get(session.url("/health/live"))).await
        });
    }
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        if done.map_or(true, |a| a.status != 200) {
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!(
            "storm: {failed} warm-up connections failed; those requests connect in the storm"
        );
    }
}

/// Sends every body at once, body `i` to instance `i mod n`, and collects the answers.
async fn fire(
    sessions: &[Session],
    bodies: Vec<Value>,
    key: Option<&str>,
) -> Result<Vec<Answer>, String> {
    let barrier = Arc::new(Barrier::new(bodies.len()));
    let mut tasks = JoinSet::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let session = &sessions[i % sessions.len()];
        // Built (token included) before the barrier, so the barrier releases ready requests.
        let mut request = session
            .request(Method::POST, "/api/v1/appointments")
            .await?
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            answer::send(request).await
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        answers.push(done.map_err(|e| format!("a storm request panicked: {e}"))?);
    }
    Ok(answers)
}
