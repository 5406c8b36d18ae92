//! Closed-loop and open-loop load, recorded into an HDR histogram of microseconds.
//!
//! Closed loop: `workers` tasks, each sending its next request as soon as the last one
//! answered; latency is send to answer, and throughput is what the server sustains at that
//! concurrency. Open loop: request `i` is due at `start + i / rate` whatever happened to the
//! others, and its latency runs from that due time, not from when it could be sent: when
//! the server (or the client's cap on requests in flight) falls behind, the waiting shows up
//! in the percentiles instead of silently lowering the rate (coordinated omission). Requests
//! still unsent well after the run's end are counted as errors (`dropped`), not forgotten.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::scenario::{Fixture, Scenario};

/// Highest latency the histogram tells apart (larger ones count as this): two minutes.
const MAX_MICROS: u64 = 120_000_000;

/// How long each measurement runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Load before the measured window, not recorded.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// How the load was driven.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// A fixed number of workers back to back.
    Closed {
        /// Workers.
        workers: usize,
    },
    /// Requests due at a fixed rate.
    Open {
        /// Requests per second.
        per_second: f64,
    },
}

/// An open-loop rate as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSpec {
    /// Requests per second.
    Absolute(f64),
    /// A share of the scenario's closed-loop throughput (0.75 for `75%`).
    Relative(f64),
}

impl RateSpec {
    /// Parses `100` (per second) or `75%`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let invalid = || format!("--rates: {raw:?} is neither a rate (`100`) nor a share (`75%`)");
        let (number, relative) = match raw.strip_suffix('%') {
            Some(n) => (n, true),
            None => (raw, false),
        };
        let value: f64 = number.trim().parse().map_err(|_| invalid())?;
        if !(value.is_finite() && value > 0.0) {
            return Err(invalid());
        }
        Ok(if relative {
            Self::Relative(value / 100.0)
        } else {
            Self::Absolute(value)
        })
    }

    /// Whether it depends on a closed-loop measurement.
    pub fn is_relative(&self) -> bool {
        matches!(self, Self::Relative(_))
    }

    /// Requests per second, given the scenario's closed-loop throughput.
    pub fn per_second(&self, closed_throughput: Option<f64>) -> f64 {
        match *self {
            Self::Absolute(rate) => rate,
            Self::Relative(share) => share * closed_throughput.unwrap_or(0.0),
        }
    }

    /// How the rate was asked for, for the report.
    pub fn label(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absolute(rate) => write!(f, "{rate}/s"),
            Self::Relative(share) => write!(f, "{}%", share * 100.0),
        }
    }
}

/// What the tasks of one measurement record into.
struct Recorder {
    histogram: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    last_answer: Option<Instant>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("1 µs to 2 min at 3 significant figures are valid bounds"),
            ok: 0,
            errors: 0,
            first_error: None,
            last_answer: None,
        }
    }

    /// Records one answer; only successful ones go into the latency histogram.
    fn record(&mut self, latency: Duration, outcome: Result<(), String>, answered: Instant) {
        match outcome {
            Ok(()) => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.histogram
                    .saturating_record(micros.clamp(1, MAX_MICROS));
                self.ok += 1;
            }
            Err(message) => {
                self.errors += 1;
                self.first_error.get_or_insert(message);
            }
        }
        self.last_answer = Some(self.last_answer.map_or(answered, |t| t.max(answered)));
    }
}

/// Shared handle on a [`Recorder`].
#[derive(Clone)]
struct Shared(Arc<Mutex<Recorder>>);

impl Shared {
    fn record(&self, latency: Duration, outcome: Result<(), String>, answered: Instant) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(latency, outcome, answered);
    }

    /// Turns the recording into a measurement; `window_start` is when recording began.
    fn finish(
        self,
        scenario: Scenario,
        mode: Mode,
        rate: Option<String>,
        window_start: Instant,
        timing: Timing,
        dropped: u64,
    ) -> Measurement {
        let recorder = match Arc::try_unwrap(self.0) {
            Ok(mutex) => mutex
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            Err(shared) => {
                let mut guard = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                std::mem::replace(&mut *guard, Recorder::new())
            }
        };
        // Answers that came in after the window still belong to it: count their time too.
        let elapsed = recorder
            .last_answer
            .map_or(timing.duration, |t| {
                t.saturating_duration_since(window_start)
            })
            .max(timing.duration);
        Measurement {
            scenario,
            mode,
            rate,
            histogram: recorder.histogram,
            ok: recorder.ok,
            errors: recorder.errors + dropped,
            dropped,
            first_error: recorder.first_error,
            elapsed,
        }
    }
}

/// The outcome of one measured run.
#[derive(Debug)]
pub struct Measurement {
    scenario: Scenario,
    mode: Mode,
    rate: Option<String>,
    histogram: Histogram<u64>,
    ok: u64,
    errors: u64,
    dropped: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

impl Measurement {
    /// Successful operations per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Failed operations (non-2xx, transport errors, never sent).
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The 99th percentile latency in microseconds (0 when nothing succeeded).
    pub fn p99_micros(&self) -> u64 {
        self.micros_at(0.99)
    }

    fn micros_at(&self, quantile: f64) -> u64 {
        if self.ok == 0 {
            0
        } else {
            self.histogram.value_at_quantile(quantile)
        }
    }

    /// `result key=value …`, the line xtask reads.
    pub fn result_line(&self) -> String {
        let (mode, workers, target) = match self.mode {
            Mode::Closed { workers } => ("closed", workers.to_string(), "-".to_owned()),
            Mode::Open { per_second } => ("open", "-".to_owned(), format!("{per_second:.1}")),
        };
        format!(
            "result scenario={} mode={mode} concurrency={workers} rate={} target_rps={target} \
             seconds={:.2} ok={} errors={} dropped={} throughput={:.1} p50_us={} p95_us={} \
             p99_us={} max_us={} mean_us={:.0}",
            self.scenario.name(),
            self.rate.as_deref().unwrap_or("-"),
            self.elapsed.as_secs_f64(),
            self.ok,
            self.errors,
            self.dropped,
            self.throughput(),
            self.micros_at(0.50),
            self.micros_at(0.95),
            self.micros_at(0.99),
            if self.ok == 0 {
                0
            } else {
                self.histogram.max()
            },
            if self.ok == 0 {
                0.0
            } else {
                self.histogram.mean()
            },
        )
    }

    /// A readable line for the terminal.
    pub fn summary(&self) -> String {
        let how = match self.mode {
            Mode::Closed { workers } => format!("closed, {workers} workers"),
            Mode::Open { per_second } => format!(
                "open, {per_second:.1}/s ({})",
                self.rate.as_deref().unwrap_or("-")
            ),
        };
        let ms = |q| self.micros_at(q) as f64 / 1000.0;
        let mut line = format!(
            "{:<17} {how:<30} {:>9.1}/s  p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms  errors {}",
            self.scenario.name(),
            self.throughput(),
            ms(0.50),
            ms(0.95),
            ms(0.99),
            self.errors,
        );
        if let Some(error) = &self.first_error {
            line.push_str(&format!(" (first: {error})"));
        }
        if self.dropped > 0 {
            line.push_str(&format!(" ({} never sent in time)", self.dropped));
        }
        line
    }
}

/// `workers` tasks back to back for the warm-up and the window; records operations started in the window.
pub async fn closed(
    fixture: &Arc<Fixture>,
    scenario: Scenario,
    workers: usize,
    timing: Timing,
) -> Measurement {
    let recorder = Shared(Arc::new(Mutex::new(Recorder::new())));
    let window_start = Instant::now() + timing.warmup;
    let end = window_start + timing.duration;
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let fixture = Arc::clone(fixture);
        let recorder = recorder.clone();
        tasks.spawn(async move {
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let outcome = fixture.run(scenario).await;
                let answered = Instant::now();
                if sent >= window_start {
                    recorder.record(answered - sent, outcome, answered);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    recorder.finish(
        scenario,
        Mode::Closed { workers },
        None,
        window_start,
        timing,
        0,
    )
}

/// Requests due every `1 / per_second` for the warm-up and the window, each timed from when
/// it was due; at most `max_in_flight` at once. Records requests due in the window.
pub async fn open(
    fixture: &Arc<Fixture>,
    scenario: Scenario,
    per_second: f64,
    label: String,
    max_in_flight: usize,
    timing: Timing,
) -> Measurement {
    let recorder = Shared(Arc::new(Mutex::new(Recorder::new())));
    let start = Instant::now();
    let window_start = start + timing.warmup;
    let end = window_start + timing.duration;
    // A backlog still unsent this long after the end is given up on and counted.
    let give_up = end + timing.duration.max(Duration::from_secs(10));
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    let mut dropped = 0u64;
    let mut i = 0u64;
    loop {
        let due = start + Duration::from_secs_f64(i as f64 / per_second);
        if due >= end {
            break;
        }
        i += 1;
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let permit =
            match tokio::time::timeout_at(give_up, Arc::clone(&in_flight).acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    // Too far behind: this request and every later one in the window are dropped.
                    let mut k = i - 1;
                    loop {
                        let due = start + Duration::from_secs_f64(k as f64 / per_second);
                        if due >= end {
                            break;
                        }
                        if due >= window_start {
                            dropped += 1;
                        }
                        k += 1;
                    }
                    break;
                }
            };
        let fixture = Arc::clone(fixture);
        let recorder = recorder.clone();
        tasks.spawn(async move {
            let outcome = fixture.run(scenario).await;
            let answered = Instant::now();
            if due >= window_start {
                recorder.record(answered - due, outcome, answered);
            }
            drop(permit);
        });
        // Reap finished tasks now and then so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    recorder.finish(
        scenario,
        Mode::Open { per_second },
        Some(label),
        window_start,
        timing,
        dropped,
    )
}
