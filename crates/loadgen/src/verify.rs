//! `verify`: after a crash, checks through the API that every booking answered 201 is
//! stored whole: the appointment, its `booking.confirmed` outbox message, one
//! `reminder.due` per reminder offset of the clinic, and its `create` audit event. It also
//! checks every active appointment created since the run began (answered or not, such as
//! one committed just before the kill), because a half-written booking would show there.
//! This is the SQLite side of the check; on PostgreSQL xtask asks the database directly too.
//! With `--disclosed`, it also checks that every patient read answered 200 has its audit
//! event (found by the request id the answer carried).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::Value;

use crate::answer;
use crate::clinic::{self, ACTIVE};
use crate::session::Session;

/// What to check.
#[derive(Debug)]
pub struct Verify {
    /// The server.
    pub base: String,
    /// Login.
    pub email: String,
    /// Password.
    pub password: String,
    /// The ids answered 201, one a line.
    pub created: PathBuf,
    /// When the run began: appointments created since then are checked whole.
    pub since: DateTime<Utc>,
    /// The request ids of patient reads answered 200, one a line.
    pub disclosed: Option<PathBuf>,
}

/// What one appointment has besides its row.
#[derive(Debug, Default, Clone, Copy)]
struct Parts {
    confirmed: usize,
    reminders: usize,
    audited: bool,
}

/// Runs the checks and prints one `result` line.
pub async fn run(verify: Verify) -> Result<(), String> {
    let text = read(&verify.created)?;
    let acked = lines(&text);
    let disclosed_text = verify.disclosed.as_ref().map(read).transpose()?;
    let disclosed = disclosed_text.as_deref().map(lines).unwrap_or_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let session = Session::login(client, &verify.base, &verify.email, &verify.password).await?;
    let offsets = clinic::get_json(&session, "/api/v1/clinic")
        .await?
        .get("reminder_offsets_minutes")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);

    let mut parts: HashMap<String, Parts> = HashMap::new();
    for message in clinic::outbox(&session).await? {
        let Some(id) = clinic::text(&message, "appointment_id") else {
            continue;
        };
        let entry = parts.entry(id.to_owned()).or_default();
        match clinic::text(&message, "event") {
            Some("booking.confirmed") => entry.confirmed += 1,
            Some("reminder.due") => entry.reminders += 1,
            _ => {}
        }
    }
    let mut audited_requests = HashSet::new();
    for event in clinic::audit_events(&session, verify.since).await? {
        let reads_patient = clinic::text(&event, "action") == Some("read")
            && clinic::text(&event, "resource_type") == Some("patient");
        if let (true, Some(request)) = (reads_patient, clinic::text(&event, "request_id")) {
            audited_requests.insert(request.to_owned());
        }
        let creates_appointment = clinic::text(&event, "action") == Some("create")
            && clinic::text(&event, "resource_type") == Some("appointment");
        if let (true, Some(id)) = (creates_appointment, clinic::text(&event, "resource_id")) {
            parts.entry(id.to_owned()).or_default().audited = true;
        }
    }
    let whole = |id: &str| {
        parts
            .get(id)
            .is_some_and(|p| p.confirmed == 1 && p.reminders == offsets && p.audited)
    };

    let mut found = 0;
    let mut half_written = 0;
    for id in &acked {
        let request = session
            .request(Method::GET, &format!("/api/v1/appointments/{id}"))
            .await?;
        let answer = answer::send(request).await;
        match answer.status {
            200 => {
                found += 1;
                if !whole(id) {
                    half_written += 1;
                    eprintln!("verify: appointment {id} is stored without all of its parts");
                }
            }
            404 => eprintln!("verify: appointment {id} was answered 201 but is not stored"),
            _ => return Err(format!("GET /api/v1/appointments/{{id}}: {answer}")),
        }
    }

    // Every active appointment created during the run, answered or not.
    let acked_set: HashSet<&str> = acked.iter().copied().collect();
    let far = verify.since + chrono::Duration::days(400);
    let mut unacked_checked = 0;
    for appointment in clinic::appointments(&session, "", verify.since, far).await? {
        let created_at = clinic::text(&appointment, "created_at")
            .and_then(|raw| DateTime::parse_from_rfc3339(raw).ok())
            .map(|t| t.with_timezone(&Utc));
        let active = clinic::text(&appointment, "status").is_some_and(|s| ACTIVE.contains(&s));
        let Some(id) = clinic::text(&appointment, "id") else {
            continue;
        };
        if !active || created_at.is_none_or(|t| t < verify.since) || acked_set.contains(id) {
            continue;
        }
        unacked_checked += 1;
        if !whole(id) {
            half_written += 1;
            eprintln!(
                "verify: appointment {id} (never answered) is stored without all of its parts"
            );
        }
    }
    let unaudited = disclosed
        .iter()
        .filter(|id| !audited_requests.contains(**id))
        .count();
    if unaudited > 0 {
        eprintln!("verify: {unaudited} patient reads were answered without an audit event");
    }
    println!(
        "result scenario=verify acked={} found={found} missing={} half_written={half_written} \
         unacked_checked={unacked_checked} reminder_offsets={offsets} disclosed={} \
         unaudited={unaudited}",
        acked.len(),
        acked.len() - found,
        disclosed.len(),
    );
    Ok(())
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The non-empty lines of a file of ids.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}
