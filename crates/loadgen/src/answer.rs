//! One answer of the server as the chaos subcommands judge it: its status, whether it is an
//! RFC 9457 problem and with which `code`, and how long it took. A request that got no
//! answer at all (connection refused or reset, timeout) is status 0, kind `transport`.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// What kind of body came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `application/json`.
    Json,
    /// `application/problem+json`.
    Problem,
    /// Anything else (an empty body, text).
    Other,
    /// No answer.
    Transport,
}

impl Kind {
    /// The name in `event` lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Problem => "problem",
            Self::Other => "other",
            Self::Transport => "transport",
        }
    }
}

/// One answer (or the lack of one).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status, 0 when there was no answer.
    pub status: u16,
    /// The body's kind.
    pub kind: Kind,
    /// The problem's `code`, for problem answers.
    pub code: Option<String>,
    /// The parsed body (`Null` when it is not JSON).
    pub body: Value,
    /// When the request was sent, as Unix milliseconds (the clock xtask compares with).
    pub sent_unix_ms: u128,
    /// Send to end of body.
    pub latency: Duration,
    /// Why there was no answer, for transport failures.
    pub error: Option<String>,
    /// The server's id of the request (`x-request-id`), which its audit events carry.
    pub request_id: Option<String>,
}

impl Answer {
    /// Whether this is a `booking_conflict` problem with status 409.
    pub fn is_conflict(&self) -> bool {
        self.status == 409 && self.code.as_deref() == Some("booking_conflict")
    }

    /// The `id` member of a JSON body.
    pub fn id(&self) -> Option<String> {
        self.body
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// One `event key=value …` line naming the operation `op`, for xtask to judge by time.
    pub fn event_line(&self, op: &str) -> String {
        format!(
            "event op={op} sent_ms={} latency_ms={:.1} status={} kind={} code={}",
            self.sent_unix_ms,
            self.latency.as_secs_f64() * 1000.0,
            self.status,
            self.kind.name(),
            self.code.as_deref().unwrap_or("-"),
        )
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.error, &self.code) {
            (Some(error), _) => write!(f, "no answer: {error}"),
            (None, Some(code)) => write!(f, "{} {code}", self.status),
            (None, None) => write!(f, "{} {}", self.status, self.kind.name()),
        }
    }
}

/// Unix time now, in milliseconds.
pub fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}

/// Sends `request` and reads its whole answer; never fails, a failure is an [`Answer`] too.
pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let sent_unix_ms = unix_ms();
    let started = Instant::now();
    let failed = |error: reqwest::Error, started: Instant| Answer {
        status: 0,
        kind: Kind::Transport,
        code: None,
        body: Value::Null,
        sent_unix_ms,
        latency: started.elapsed(),
        // Without the URL: it may carry ids, and the operation names the route anyway.
        error: Some(error.without_url().to_string()),
        request_id: None,
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return failed(error, started),
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => return failed(error, started),
    };
    let latency = started.elapsed();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let kind = if content_type.starts_with("application/problem+json") {
        Kind::Problem
    } else if content_type.starts_with("application/json") {
        Kind::Json
    } else {
        Kind::Other
    };
    let code = match kind {
        Kind::Problem => body.get("code").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    Answer {
        status,
        kind,
        code,
        body,
        sent_unix_ms,
        latency,
        error: None,
        request_id,
    }
}
