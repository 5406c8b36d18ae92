//! What the chaos subcommands read of the seeded clinic through the API: practitioners,
//! patients, free slots, and the appointment, outbox and audit lists they check afterwards.

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::Value;

use crate::answer;
use crate::session::Session;

/// The most rows one page of a list holds.
const PAGE_SIZE: usize = 200;
/// Statuses in which an appointment holds its time (the booking invariant's "active").
pub const ACTIVE: [&str; 4] = ["booked", "confirmed", "checked_in", "in_progress"];

/// A free slot of one practitioner.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Whose slot.
    pub practitioner_id: String,
    /// Its start.
    pub starts_at: DateTime<Utc>,
    /// Its end.
    pub ends_at: DateTime<Utc>,
}

/// An instant as the API's query strings take it (`Z`, no `+` to escape).
pub fn query_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// GETs `path` and parses its JSON answer; anything but 200 is an error.
pub async fn get_json(session: &Session, path: &str) -> Result<Value, String> {
    let request = session.request(Method::GET, path).await?;
    let answer = answer::send(request).await;
    let route = path.split('?').next().unwrap_or(path);
    if answer.status != 200 {
        return Err(format!("GET {route}: {answer}"));
    }
    Ok(answer.body)
}

/// The `results` array of a list answer.
fn results(page: &Value) -> &[Value] {
    page.get("results")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The string member `name` of `item`.
pub fn text<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    item.get(name).and_then(Value::as_str)
}

/// Every practitioner's id.
pub async fn practitioners(session: &Session) -> Result<Vec<String>, String> {
    let page = get_json(session, "/api/v1/practitioners?page_size=200").await?;
    let ids: Vec<String> = results(&page)
        .iter()
        .filter_map(|p| text(p, "id").map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Err("the clinic has no practitioners: seed it first".into());
    }
    Ok(ids)
}

/// The ids of the first `wanted` patients (in the list's name order).
pub async fn patients(session: &Session, wanted: usize) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    let mut page_number = 1;
    while ids.len() < wanted {
        let path = format!("/api/v1/patients?page={page_number}&page_size={PAGE_SIZE}");
        let page = get_json(session, &path).await?;
        let rows = results(&page);
        ids.extend(rows.iter().filter_map(|p| text(p, "id").map(str::to_owned)));
        if rows.len() < PAGE_SIZE {
            break;
        }
        page_number += 1;
    }
    if ids.len() < wanted {
        return Err(format!(
            "the clinic has {} patients, {wanted} are needed: seed more",
            ids.len()
        ));
    }
    ids.truncate(wanted);
    Ok(ids)
}

/// A practitioner's free slots on the clinic-local days `from` … `from + days` (excluded).
pub async fn free_slots(
    session: &Session,
    practitioner_id: &str,
    from: NaiveDate,
    days: i64,
) -> Result<Vec<Slot>, String> {
    let to = from + Duration::days(days);
    let path = format!("/api/v1/practitioners/{practitioner_id}/slots?from={from}&to={to}");
    let answer = get_json(session, &path).await?;
    let instant = |slot: &Value, name: &str| {
        text(slot, name).and_then(|raw| DateTime::parse_from_rfc3339(raw).ok())
    };
    Ok(answer
        .get("slots")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|slot| {
            Some(Slot {
                practitioner_id: practitioner_id.to_owned(),
                starts_at: instant(slot, "starts_at")?.with_timezone(&Utc),
                ends_at: instant(slot, "ends_at")?.with_timezone(&Utc),
            })
        })
        .collect())
}

/// Every appointment starting in `[from, to)` that `filter` (`practitioner_id=…` or
/// `patient_id=…`, or empty) selects, all pages.
pub async fn appointments(
    session: &Session,
    filter: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Value>, String> {
    let mut all = Vec::new();
    for page_number in 1.. {
        let mut path = format!(
            "/api/v1/appointments?from={}&to={}&page={page_number}&page_size={PAGE_SIZE}",
            query_time(from),
            query_time(to)
        );
        if !filter.is_empty() {
            path.push('&');
            path.push_str(filter);
        }
        let page = get_json(session, &path).await?;
        let rows = results(&page);
        all.extend(rows.iter().cloned());
        if rows.len() < PAGE_SIZE {
            break;
        }
    }
    Ok(all)
}

/// Every outbox message of the clinic, all pages, newest first.
pub async fn outbox(session: &Session) -> Result<Vec<Value>, String> {
    let mut all = Vec::new();
    for page_number in 1.. {
        let path = format!("/api/v1/outbox?page={page_number}&page_size={PAGE_SIZE}");
        let page = get_json(session, &path).await?;
        let rows = results(&page);
        all.extend(rows.iter().cloned());
        if rows.len() < PAGE_SIZE {
            break;
        }
    }
    Ok(all)
}

/// Every audit event since `from`, following the keyset cursor.
pub async fn audit_events(session: &Session, from: DateTime<Utc>) -> Result<Vec<Value>, String> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/api/v1/audit-events?from={}&limit={PAGE_SIZE}",
            query_time(from)
        );
        if let Some(cursor) = &cursor {
            path.push_str("&cursor=");
            path.push_str(&crate::scenario::encode(cursor));
        }
        let page = get_json(session, &path).await?;
        all.extend(results(&page).iter().cloned());
        match text(&page, "next_cursor") {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(all),
        }
    }
}
