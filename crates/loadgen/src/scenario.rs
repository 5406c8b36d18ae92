//! The scenarios: what one operation of each sends, and the sample of ids it picks from.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Duration, NaiveDate, Utc};
use reqwest::Method;
use serde_json::Value;

use crate::session::Session;

/// Patients read into the sample the scenarios pick from.
const SAMPLE_PATIENTS: usize = 2_000;
/// Patients per page while sampling (the most a page holds).
const PAGE: u64 = 200;
/// Days of slots asked for at once (the slots route answers at most 62).
const SLOT_WINDOW_DAYS: i64 = 56;
/// Windows of free slots in the booking pool: 24 weeks, ample for a full run's bookings,
/// the capacity search's steps included.
const BOOK_POOL_WINDOWS: i64 = 3;

/// One kind of operation, measured on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `GET /patients/{id}` of a random sampled patient.
    PatientById,
    /// `GET /patients?q=<3-letter name prefix>&limit=20`: a type-ahead search, first keyset page.
    PatientSearch,
    /// `GET /appointments?from=<random day>&limit=50`: one keyset page of the appointment list.
    AppointmentPage,
    /// `GET /practitioners/{id}/slots` for the next 30 days, of a random practitioner.
    Slots30d,
    /// `GET /slots?from=<today>&to=<+30 days>&limit=1`: the earliest free slot across practitioners.
    FirstFreeSlot,
    /// `POST /appointments` into a free slot, then `POST /appointments/{id}/cancel`.
    BookCancel,
    /// `GET /dashboard/stats`.
    Dashboard,
    /// `GET /me`: who the token speaks for, what every page of a client asks first.
    Me,
    /// `GET /practitioners`: the first page of the practitioner directory.
    Practitioners,
    /// 3 `GET /patients?limit=50` : 2 `GET /dashboard/stats` : 1 `POST /appointments`.
    Mixed,
    /// `GET /json` of the bare actix-web server.
    Ceiling,
}

impl Scenario {
    /// Every scenario run against clinicflow, in report order.
    pub const ALL: [Self; 10] = [
        Self::PatientById,
        Self::PatientSearch,
        Self::AppointmentPage,
        Self::Slots30d,
        Self::FirstFreeSlot,
        Self::BookCancel,
        Self::Dashboard,
        Self::Me,
        Self::Practitioners,
        Self::Mixed,
    ];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Self::PatientById => "patient-by-id",
            Self::PatientSearch => "patient-search",
            Self::AppointmentPage => "appointment-page",
            Self::Slots30d => "slots-30d",
            Self::FirstFreeSlot => "first-free-slot",
            Self::BookCancel => "book-cancel",
            Self::Dashboard => "dashboard",
            Self::Me => "me",
            Self::Practitioners => "practitioners",
            Self::Mixed => "mixed",
            Self::Ceiling => "ceiling",
        }
    }

    /// Parses a comma-separated list of names, or `all`.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, String> {
        let mut found = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "all" {
                found.extend(Self::ALL);
                continue;
            }
            let scenario = Self::ALL
                .into_iter()
                .chain([Self::Ceiling])
                .find(|s| s.name() == name)
                .ok_or_else(|| format!("unknown scenario {name:?}"))?;
            found.push(scenario);
        }
        if found.is_empty() {
            return Err("no scenario given".into());
        }
        Ok(found)
    }
}

/// A free slot to book, with a patient who is free then.
#[derive(Debug, Clone)]
struct Booking {
    practitioner_id: String,
    patient_id: String,
    starts_at: String,
}

/// What the scenarios pick from: sampled ids, name prefixes, dates and free slots.
#[derive(Debug)]
pub struct Fixture {
    session: Session,
    patients: Vec<String>,
    prefixes: Vec<String>,
    practitioners: Vec<String>,
    today: NaiveDate,
    first_day: NaiveDate,
    last_day: NaiveDate,
    /// Free slots, taken from the front and given back at the end after a cancel.
    pool: Mutex<VecDeque<Booking>>,
    /// Operations of the mixed scenario so far, to keep its 3 : 2 : 1 shares exact.
    mixed: AtomicU64,
}

impl Fixture {
    /// For the ceiling scenario: nothing to sample.
    pub fn anonymous(client: reqwest::Client, base: &str) -> Self {
        let today = Utc::now().date_naive();
        Self {
            session: Session::anonymous(client, base),
            patients: Vec::new(),
            prefixes: Vec::new(),
            practitioners: Vec::new(),
            today,
            first_day: today,
            last_day: today,
            pool: Mutex::default(),
            mixed: AtomicU64::new(0),
        }
    }

    /// Reads the sample through the API: practitioners, a few thousand patients, the first
    /// appointment's day, and free slots from `book_after_days` days ahead on for bookings.
    pub async fn load(session: Session, book_after_days: i64) -> Result<Self, String> {
        let today = Utc::now().date_naive();
        let practitioners: Vec<String> = get_json(&session, "/api/v1/practitioners?page_size=200")
            .await?
            .get("results")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(id_of).collect())
            .unwrap_or_default();
        if practitioners.is_empty() {
            return Err("the clinic has no practitioners: seed it first".into());
        }

        // The list is in name order, so its first pages would hold one family name only:
        // read pages spread evenly over the whole list instead.
        let mut patients = Vec::new();
        let mut prefixes = Vec::new();
        let count = get_json(&session, &format!("/api/v1/patients?page_size={PAGE}"))
            .await?
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let pages = count.div_ceil(PAGE).max(1);
        let wanted = (SAMPLE_PATIENTS as u64).div_ceil(PAGE).min(pages);
        for k in 0..wanted {
            let page = 1 + k * pages / wanted;
            let path = format!("/api/v1/patients?page={page}&page_size={PAGE}");
            for p in get_json(&session, &path)
                .await?
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = id_of(p) {
                    patients.push(id);
                }
                for name in ["family_name", "given_name"] {
                    if let Some(name) = p.get(name).and_then(Value::as_str) {
                        let prefix: String = name.chars().take(3).collect();
                        if !prefixes.contains(&prefix) {
                            prefixes.push(prefix);
                        }
                    }
                }
            }
        }
        if patients.is_empty() {
            return Err("the clinic has no patients: seed it first".into());
        }

        let first_day = get_json(&session, "/api/v1/appointments?limit=1")
            .await?
            .pointer("/results/0/starts_at")
            .and_then(Value::as_str)
            .and_then(|s| s.get(..10))
            .and_then(|s| s.parse::<NaiveDate>().ok())
            .unwrap_or(today);

        // Slots in time order, each with the next sampled patient in turn: slots that overlap
        // are close together in that order, so they get different patients.
        let mut slots = Vec::new();
        for window in 0..BOOK_POOL_WINDOWS {
            let from = today + Duration::days(book_after_days + window * SLOT_WINDOW_DAYS);
            let to = from + Duration::days(SLOT_WINDOW_DAYS);
            for p in &practitioners {
                let path = format!("/api/v1/practitioners/{p}/slots?from={from}&to={to}");
                let answer = get_json(&session, &path).await?;
                for slot in answer
                    .get("slots")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(start) = slot.get("starts_at").and_then(Value::as_str) {
                        slots.push((start.to_owned(), p.clone()));
                    }
                }
            }
        }
        slots.sort();
        let pool: VecDeque<Booking> = slots
            .into_iter()
            .zip(patients.iter().cycle())
            .map(|((starts_at, practitioner_id), patient)| Booking {
                practitioner_id,
                patient_id: patient.clone(),
                starts_at,
            })
            .collect();
        eprintln!(
            "sample: {} practitioners, {} patients, {} name prefixes, appointments from {first_day}, {} free slots to book",
            practitioners.len(),
            patients.len(),
            prefixes.len(),
            pool.len(),
        );
        Ok(Self {
            session,
            patients,
            prefixes,
            practitioners,
            today,
            first_day,
            last_day: today + Duration::days(28),
            pool: Mutex::new(pool),
            mixed: AtomicU64::new(0),
        })
    }

    /// The path of one operation of a scenario that is a single GET (random parameters
    /// picked anew each time); `None` for the scenarios that write.
    pub fn get_path(&self, scenario: Scenario) -> Result<Option<String>, String> {
        Ok(Some(match scenario {
            Scenario::PatientById => format!("/api/v1/patients/{}", pick(&self.patients)?),
            Scenario::PatientSearch => {
                let q = encode(pick(&self.prefixes)?);
                format!("/api/v1/patients?q={q}&limit=20")
            }
            Scenario::AppointmentPage => {
                let span = (self.last_day - self.first_day).num_days().max(0);
                let day = self.first_day + Duration::days(rand::random_range(0..=span));
                format!("/api/v1/appointments?from={day}T00:00:00Z&limit=50")
            }
            Scenario::Slots30d => {
                let p = pick(&self.practitioners)?;
                let (from, to) = (self.today, self.today + Duration::days(30));
                format!("/api/v1/practitioners/{p}/slots?from={from}&to={to}")
            }
            Scenario::FirstFreeSlot => {
                let (from, to) = (self.today, self.today + Duration::days(30));
                format!("/api/v1/slots?from={from}&to={to}&limit=1")
            }
            Scenario::Dashboard => "/api/v1/dashboard/stats".to_owned(),
            Scenario::Me => "/api/v1/me".to_owned(),
            Scenario::Practitioners => "/api/v1/practitioners".to_owned(),
            Scenario::Ceiling => "/json".to_owned(),
            Scenario::BookCancel | Scenario::Mixed => return Ok(None),
        }))
    }

    /// The session's current bearer token, for a second load generator to send.
    pub async fn bearer(&self) -> Result<Option<String>, String> {
        self.session.bearer().await
    }

    /// Runs one operation of `scenario`; an error names what failed.
    pub async fn run(&self, scenario: Scenario) -> Result<(), String> {
        if let Some(path) = self.get_path(scenario)? {
            return self.get(&path).await;
        }
        match scenario {
            Scenario::BookCancel => {
                let booking = self.take_slot()?;
                let id = self.book(&booking).await?;
                let cancelled = self
                    .post(
                        &format!("/api/v1/appointments/{id}/cancel"),
                        &serde_json::json!({"reason": "benchmark"}),
                    )
                    .await;
                // Free again only once cancelled; a failed cancel keeps the slot out.
                if cancelled.is_ok() {
                    self.give_back(booking);
                }
                cancelled.map(drop)
            }
            Scenario::Mixed => match self.mixed.fetch_add(1, Ordering::Relaxed) % 6 {
                0..=2 => self.get("/api/v1/patients?limit=50").await,
                3 | 4 => self.get("/api/v1/dashboard/stats").await,
                _ => {
                    let booking = self.take_slot()?;
                    self.book(&booking).await.map(drop)
                }
            },
            _ => Err(format!("{} has no operation", scenario.name())),
        }
    }

    /// Books `booking` and answers the new appointment's id.
    async fn book(&self, booking: &Booking) -> Result<String, String> {
        let body = serde_json::json!({
            "patient_id": booking.patient_id,
            "practitioner_id": booking.practitioner_id,
            "starts_at": booking.starts_at,
            "reason": "benchmark",
        });
        let answer = self.post("/api/v1/appointments", &body).await?;
        serde_json::from_slice::<Value>(&answer)
            .ok()
            .as_ref()
            .and_then(id_of)
            .ok_or_else(|| "POST /api/v1/appointments: no id in the answer".to_owned())
    }

    fn take_slot(&self) -> Result<Booking, String> {
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
            .ok_or_else(|| "no free slot left to book".to_owned())
    }

    fn give_back(&self, booking: Booking) {
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(booking);
    }

    async fn get(&self, path: &str) -> Result<(), String> {
        let request = self.session.request(Method::GET, path).await?;
        send(request, path).await.map(drop)
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Vec<u8>, String> {
        let request = self.session.request(Method::POST, path).await?.json(body);
        send(request, path).await
    }
}

/// Sends a request and reads the whole body; a non-2xx status is an error.
async fn send(request: reqwest::RequestBuilder, path: &str) -> Result<Vec<u8>, String> {
    let route = path.split('?').next().unwrap_or(path);
    let response = request.send().await.map_err(|e| format!("{route}: {e}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("{route}: {e}"))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let text: String = text.chars().take(300).collect();
        return Err(format!("{route}: {status} {text}"));
    }
    Ok(body.to_vec())
}

/// GETs `path` and parses the JSON answer.
async fn get_json(session: &Session, path: &str) -> Result<Value, String> {
    let request = session.request(Method::GET, path).await?;
    let body = send(request, path).await?;
    serde_json::from_slice(&body).map_err(|e| format!("{path}: {e}"))
}

fn id_of(item: &Value) -> Option<String> {
    item.get("id").and_then(Value::as_str).map(str::to_owned)
}

/// A random item; an error when there is none.
fn pick(items: &[String]) -> Result<&str, String> {
    if items.is_empty() {
        return Err("nothing sampled to pick from".into());
    }
    Ok(&items[rand::random_range(0..items.len())])
}

/// Percent-encodes a query value (a name prefix), keeping RFC 3986's unreserved characters.
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
