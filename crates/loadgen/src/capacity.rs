//! The open-loop capacity of a scenario: the highest rate at which p99 stays under a bound.
//!
//! A closed loop overstates what a server can take: its workers wait for each answer, so the
//! server is never offered more than it serves. The search offers fixed rates instead
//! (open loop, latency from each request's due time) in short steps: it starts at half the
//! closed-loop throughput, goes up by half while p99 stays under the bound and bisects once a
//! step fails, then confirms the best passing rate with one step as long as the other
//! measurements. A confirmation that fails is retried at 80 % of the rate before, at most
//! [`CONFIRMATIONS`] steps in all: a short step can pass by luck where a long one does not,
//! and the capacity quoted is one that held for a whole measurement.

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
/// Most confirming steps, each at 80 % of the one before: down to about half the best
/// search step.
const CONFIRMATIONS: usize = 4;

/// The rates that confirm a search whose best passing step was `best`, in the order tried.
fn confirmations(best: f64) -> impl Iterator<Item = f64> {
    std::iter::successors(Some(best), |rate| Some(rate * 0.8))
        .take(CONFIRMATIONS)
        .take_while(|rate| *rate >= MIN_RATE)
}

impl Search {
    fn passes(&self, m: &Measurement) -> bool {
        m.errors() == 0
            && m.throughput() > 0.0
            && Duration::from_micros(m.p99_micros()) < self.p99_bound
    }
}

/// The rates tried so far: the highest that passed and the lowest that failed.
#[derive(Debug, Clone, Copy)]
struct Bracket {
    passed: f64,
    failed: f64,
    ceiling: f64,
    closed: f64,
}

impl Bracket {
    fn new(closed_throughput: f64) -> Self {
        Self {
            passed: 0.0,
            failed: f64::INFINITY,
            ceiling: (closed_throughput * MAX_OVER_CLOSED).max(MIN_RATE),
            closed: closed_throughput,
        }
    }

    /// Half the closed-loop throughput.
    fn first(&self) -> f64 {
        (self.closed * 0.5).max(MIN_RATE)
    }

    /// Records how `rate` did; answers the next rate to try, or `None` when done.
    fn next(&mut self, rate: f64, passed: bool) -> Option<f64> {
        if passed {
            self.passed = self.passed.max(rate);
        } else {
            self.failed = self.failed.min(rate);
        }
        if self.passed >= self.ceiling
            || (self.passed > 0.0 && self.failed / self.passed < CLOSE_ENOUGH)
        {
            return None;
        }
        let next = if self.failed.is_finite() {
            if self.passed > 0.0 {
                (self.passed + self.failed) / 2.0
            } else {
                self.failed / 2.0
            }
        } else {
            (rate * 1.5).min(self.ceiling)
        };
        (next >= MIN_RATE).then_some(next)
    }
}

/// Searches `scenario`'s capacity; `report` prints each step. Answers the confirmed rate and
/// its measurement, or `None` when no search step passed or no confirmation held.
pub async fn search(
    fixture: &Arc<Fixture>,
    scenario: Scenario,
    closed_throughput: f64,
    search: &Search,
    report: impl Fn(&Measurement),
) -> Option<(f64, Measurement)> {
    let mut bracket = Bracket::new(closed_throughput);
    let mut rate = bracket.first();
    for _ in 0..search.max_steps {
        let m = step(fixture, scenario, rate, "search", search.step, search).await;
        report(&m);
        match bracket.next(rate, search.passes(&m)) {
            Some(next) => rate = next,
            None => break,
        }
    }
    for candidate in confirmations(bracket.passed) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the bracket against a server whose p99 holds up to `capacity`, for `steps` steps.
    fn search_against(closed: f64, capacity: f64, steps: usize) -> (Vec<f64>, f64) {
        let mut bracket = Bracket::new(closed);
        let mut rate = bracket.first();
        let mut tried = vec![rate];
        for _ in 0..steps {
            match bracket.next(rate, rate <= capacity) {
                Some(next) => {
                    rate = next;
                    tried.push(rate);
                }
                None => break,
            }
        }
        (tried, bracket.passed)
    }

    #[test]
    fn the_search_starts_at_half_the_closed_loop_and_closes_in_from_both_sides() {
        let (tried, passed) = search_against(1000.0, 700.0, 6);
        assert_eq!(tried[..3], [500.0, 750.0, 625.0]);
        assert!(passed > 600.0 && passed <= 700.0, "{passed}");
    }

    #[test]
    fn a_server_that_fails_every_rate_ends_below_one_per_second() {
        let (tried, passed) = search_against(4.0, 0.0, 10);
        assert_eq!(passed, 0.0);
        assert!(tried.iter().all(|r| *r >= MIN_RATE), "{tried:?}");
    }

    #[test]
    fn a_failed_confirmation_steps_down_by_a_fifth_to_about_half_the_best_step() {
        let tried: Vec<f64> = confirmations(1000.0).collect();
        assert_eq!(tried.len(), CONFIRMATIONS);
        assert_eq!(tried[..2], [1000.0, 800.0]);
        assert!((tried[CONFIRMATIONS - 1] - 512.0).abs() < 1e-9, "{tried:?}");
        // Nothing below one operation per second is tried, and nothing at all when no step passed.
        assert_eq!(confirmations(1.5).count(), 2);
        assert_eq!(confirmations(0.0).count(), 0);
    }

    #[test]
    fn the_search_stops_at_one_and_a_half_times_the_closed_loop() {
        let (tried, passed) = search_against(100.0, f64::INFINITY, 10);
        assert_eq!(passed, 150.0);
        assert_eq!(tried, vec![50.0, 75.0, 112.5, 150.0]);
    }
}
