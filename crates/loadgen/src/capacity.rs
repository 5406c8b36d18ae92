//! The open-loop capacity of a scenario: the highest rate at which p99 stays under a bound.
//!
//! A closed loop overstates what a server can take: its workers wait for each answer, so the
//! server is never offered more than it serves. The search offers fixed rates instead
//! (open loop, latency from each request's due time) in short steps: it starts at half the
//! closed-loop throughput, goes up by half while p99 stays under the bound and bisects once a
//! step fails, then confirms the best passing rate with one step as long as the other
//! measurements. A confirmation that fails is retried once at 80 % of that rate.

use std::sync::Arc;
use std::time::Duration;

use crate::load::{self, Measurement, Timing};
use crate::scenario::{Fixture, Scenario};

/// How to search.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    /// The p99 latency a rate must stay under.
    pub p99_bound: Duration,
    /// Timing of each search step.
    pub step: Timing,
    /// Timing of the confirming step.
    pub confirm: Timing,
    /// Most search steps before confirming.
    pub max_steps: usize,
    /// Most open-loop requests in flight at once.
    pub max_in_flight: usize,
}

/// Rates closer than this factor end the bisection.
const CLOSE_ENOUGH: f64 = 1.15;
/// Below one operation per second there is no capacity worth reporting.
const MIN_RATE: f64 = 1.0;
/// The search never offers more than this multiple of the closed-loop throughput.
const MAX_OVER_CLOSED: f64 = 1.5;

impl Search {
    fn passes(&self, m: &Measurement) -> bool {
        m.errors() == 0
            && m.throughput() > 0.0
            && Duration::from_micros(m.p99_micros()) < self.p99_bound
    }
}

/// Searches `scenario`'s capacity; `report` prints each step. Answers the confirmed rate and
/// its measurement, or `None` when not even [`MIN_RATE`] keeps p99 under the bound.
pub async fn search(
    fixture: &Arc<Fixture>,
    scenario: Scenario,
    closed_throughput: f64,
    search: &Search,
    report: impl Fn(&Measurement),
) -> Option<(f64, Measurement)> {
    let ceiling = (closed_throughput * MAX_OVER_CLOSED).max(MIN_RATE);
    let mut passed: f64 = 0.0;
    let mut failed = f64::INFINITY;
    let mut rate = (closed_throughput * 0.5).max(MIN_RATE);
    for _ in 0..search.max_steps {
        let m = step(fixture, scenario, rate, "search", search.step, search).await;
        report(&m);
        if search.passes(&m) {
            passed = rate;
        } else {
            failed = rate;
        }
        if passed >= ceiling || (passed > 0.0 && failed / passed < CLOSE_ENOUGH) {
            break;
        }
        rate = if failed.is_finite() {
            if passed > 0.0 {
                (passed + failed) / 2.0
            } else {
                failed / 2.0
            }
        } else {
            (rate * 1.5).min(ceiling)
        };
        if rate < MIN_RATE {
            break;
        }
    }
    let mut candidate = passed;
    for _ in 0..2 {
        if candidate < MIN_RATE {
            return None;
        }
        let m = step(
            fixture,
            scenario,
            candidate,
            "capacity",
            search.confirm,
            search,
        )
        .await;
        report(&m);
        if search.passes(&m) {
            return Some((candidate, m));
        }
        candidate *= 0.8;
    }
    None
}

async fn step(
    fixture: &Arc<Fixture>,
    scenario: Scenario,
    rate: f64,
    label: &str,
    timing: Timing,
    search: &Search,
) -> Measurement {
    load::open(
        fixture,
        scenario,
        rate,
        label.to_owned(),
        search.max_in_flight,
        timing,
    )
    .await
}
