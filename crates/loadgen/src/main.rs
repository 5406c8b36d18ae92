//! `clinicflow-loadgen`: the HTTP load generator that `cargo xtask bench` runs against a
//! release `clinicflow` server, and the bare actix-web JSON server it measures as the HTTP
//! ceiling of the same machine.
//!
//! `run` logs in once (as the seeded demo admin), reads a sample of the clinic's ids, then
//! drives each scenario closed-loop (a fixed number of workers, each sending its next request
//! when the last one answered) and open-loop (requests sent at a fixed rate, whatever the
//! answers do). Open-loop latency is measured from the moment a request was *due*, not from
//! when it was sent, so a server that falls behind shows its queueing delay instead of
//! slowing the client down (no coordinated omission). Latencies go into an HDR histogram
//! (microseconds); every measurement prints one `result key=value …` line on stdout for xtask
//! to read, and a readable summary on stderr.
//!
//! It talks to the server over HTTP only and depends on no crate of the workspace.

mod ceiling;
mod load;
mod scenario;
mod session;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::load::{Measurement, RateSpec};
use crate::scenario::{Fixture, Scenario};
use crate::session::Session;

#[derive(Parser)]
#[command(
    name = "clinicflow-loadgen",
    about = "HTTP load for `cargo xtask bench`"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive scenarios against a server and print one `result` line per measurement.
    Run(RunArgs),
    /// Serve the bare actix-web JSON handler (`GET /json`) that is the HTTP ceiling.
    Ceiling {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: String,
        /// actix-web workers (default: one per core, as the clinicflow server).
        #[arg(long)]
        workers: Option<usize>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The server, such as http://127.0.0.1:8080.
    #[arg(long)]
    base_url: String,
    /// Login e-mail (not needed for the `ceiling` scenario).
    #[arg(long, default_value = "admin@demo-clinic.example")]
    email: String,
    /// Login password.
    #[arg(long, default_value = "demo-admin-password")]
    password: String,
    /// Scenarios, comma-separated: patient-by-id, patient-search, appointment-page, slots-30d,
    /// first-free-slot, book-cancel, dashboard, mixed, ceiling; or `all` (all but ceiling).
    #[arg(long, default_value = "all")]
    scenarios: String,
    /// Closed-loop workers, comma-separated (one measurement each); empty for none.
    #[arg(long, default_value = "16")]
    concurrency: String,
    /// Open-loop rates, comma-separated: requests per second (`100`) or a share of the
    /// scenario's closed-loop throughput measured just before (`75%`); empty for none.
    #[arg(long, default_value = "100,75%")]
    rates: String,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before each measured run, not recorded.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Most open-loop requests in flight at once (more wait, and their wait counts).
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// Client threads (the server shares the machine: keep it small).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Bookings go to slots from this many days ahead on, after the seeded appointments.
    #[arg(long, default_value_t = 35)]
    book_after_days: i64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Ceiling { bind, workers } => ceiling::serve(&bind, workers),
        Command::Run(args) => run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("clinicflow-loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the run's arguments, then measures every scenario on a small tokio runtime.
fn run(args: RunArgs) -> Result<(), String> {
    let scenarios = Scenario::parse_list(&args.scenarios)?;
    let concurrency = parse_list(&args.concurrency, |s| {
        s.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("--concurrency: {s:?} is not a positive number"))
    })?;
    let rates = parse_list(&args.rates, RateSpec::parse)?;
    if rates.iter().any(RateSpec::is_relative) && concurrency.is_empty() {
        return Err("a relative rate (`75%`) needs a closed-loop run (--concurrency)".into());
    }
    if !(args.duration > 0.0 && args.warmup >= 0.0) {
        return Err("--duration must be positive and --warmup not negative".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let base = args.base_url.trim_end_matches('/').to_owned();
        let needs_login = scenarios.iter().any(|s| *s != Scenario::Ceiling);
        let fixture = if needs_login {
            let session =
                Session::login(client.clone(), &base, &args.email, &args.password).await?;
            Fixture::load(session, args.book_after_days).await?
        } else {
            Fixture::anonymous(client.clone(), &base)
        };
        let fixture = Arc::new(fixture);
        let timing = load::Timing {
            warmup: Duration::from_secs_f64(args.warmup),
            duration: Duration::from_secs_f64(args.duration),
        };
        for scenario in scenarios {
            let mut closed_throughput = None;
            for &workers in &concurrency {
                let m = load::closed(&fixture, scenario, workers, timing).await;
                closed_throughput.get_or_insert(m.throughput());
                report(&m);
            }
            for rate in &rates {
                let per_second = rate.per_second(closed_throughput);
                if per_second < 0.1 {
                    eprintln!(
                        "{}: open loop at {rate} skipped (under 0.1 requests per second)",
                        scenario.name()
                    );
                    continue;
                }
                let m = load::open(
                    &fixture,
                    scenario,
                    per_second,
                    rate.label(),
                    args.max_in_flight,
                    timing,
                )
                .await;
                report(&m);
            }
        }
        Ok(())
    })
}

/// Prints one measurement: a `result` line on stdout, a summary on stderr.
fn report(m: &Measurement) {
    println!("{}", m.result_line());
    eprintln!("{}", m.summary());
}

/// Splits a comma-separated list, parsing each non-empty item.
fn parse_list<T>(raw: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect()
}
