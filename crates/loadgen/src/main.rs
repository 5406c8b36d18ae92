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
//! For `cargo xtask chaos` it also has the subcommands that drive a deployment while xtask
//! breaks it: `storm` (many overlapping bookings at once over several instances), `steady`
//! (a booking load that logs every answer with its time), `verify` (after a crash, every
//! acknowledged booking is stored whole) and `receiver` (a webhook receiver that counts
//! deliveries). They print `result key=value …` lines the same way.
//!
//! It talks to the server over HTTP only and depends on no crate of the workspace.

mod answer;
mod capacity;
mod ceiling;
mod chart;
mod clinic;
mod live_board;
mod load;
mod receiver;
mod scenario;
mod session;
mod steady;
mod storm;
mod verify;

use std::path::PathBuf;
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
    /// Log in and print a bearer token and random request paths of a GET scenario, for a
    /// second, independent load generator (`token …` and `path …` lines).
    Paths(PathsArgs),
    /// Draw one scenario's open-loop latency against the offered rate as an SVG chart.
    Chart(ChartArgs),
    /// Serve the bare actix-web JSON handler (`GET /json`) that is the HTTP ceiling.
    Ceiling {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: String,
        /// actix-web workers (default: one per core, as the clinicflow server).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Open many live-board streams, make one queue change, and time its arrival on each.
    LiveBoard(LiveBoardArgs),
    /// Send many overlapping bookings at once, round-robin over instances (chaos suite).
    Storm(StormArgs),
    /// Book at a steady pace, logging every answer with its send time (chaos suite).
    Steady(SteadyArgs),
    /// Check that every booking answered 201 is stored whole (chaos suite).
    Verify(VerifyArgs),
    /// Serve a webhook receiver that appends each delivered message to a file (chaos suite).
    Receiver {
        /// Address to listen on.
        #[arg(long)]
        bind: String,
        /// The file to append `id event appointment_id` lines to.
        #[arg(long)]
        out: PathBuf,
    },
}

/// The seeded admin's login, as every chaos subcommand takes it.
#[derive(Args)]
struct Login {
    /// Login e-mail.
    #[arg(long, default_value = "admin@demo-clinic.example")]
    email: String,
    /// Login password.
    #[arg(long, default_value = "demo-admin-password")]
    password: String,
}

#[derive(Args)]
struct LiveBoardArgs {
    /// The server, such as http://127.0.0.1:8080.
    #[arg(long)]
    base_url: String,
    #[command(flatten)]
    login: Login,
    /// Streams to open.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    connecting: usize,
    /// The server's process id, to read its memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds to wait for every first board, and again for the change.
    #[arg(long, default_value_t = 120.0)]
    patience: f64,
}

#[derive(Args)]
struct StormArgs {
    /// The instances, comma-separated, such as http://127.0.0.1:8080,http://127.0.0.1:8081.
    #[arg(long)]
    base_urls: String,
    #[command(flatten)]
    login: Login,
    /// Requests in the storm.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Whose overlap: one practitioner, or one patient across two practitioners.
    #[arg(long, value_enum)]
    conflict: storm::Conflict,
    /// The storm books a time from this many days ahead on.
    #[arg(long, default_value_t = 42)]
    days_ahead: i64,
}

#[derive(Args)]
struct SteadyArgs {
    /// The server.
    #[arg(long)]
    base_url: String,
    #[command(flatten)]
    login: Login,
    /// Seconds of load.
    #[arg(long)]
    duration: f64,
    /// Concurrent workers.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Milliseconds each worker pauses between rounds.
    #[arg(long, default_value_t = 20)]
    pause_ms: u64,
    /// File for the `event` lines.
    #[arg(long)]
    events: PathBuf,
    /// File for the ids of appointments answered 201.
    #[arg(long)]
    created: PathBuf,
    /// Point the clinic's webhook at this URL first.
    #[arg(long)]
    webhook: Option<String>,
    /// Bookings go to slots from this many days ahead on.
    #[arg(long, default_value_t = 70)]
    days_ahead: i64,
    /// Also read patients without pause, and write the request ids of the reads answered
    /// 200 to this file.
    #[arg(long)]
    disclosed: Option<PathBuf>,
}

#[derive(Args)]
struct VerifyArgs {
    /// The server.
    #[arg(long)]
    base_url: String,
    #[command(flatten)]
    login: Login,
    /// File with the ids of appointments answered 201 (from `steady --created`).
    #[arg(long)]
    created: PathBuf,
    /// When the load began (Unix milliseconds): appointments created since are checked whole.
    #[arg(long)]
    since_unix_ms: i64,
    /// File with the request ids of patient reads answered 200 (from `steady --disclosed`):
    /// each must have its audit event.
    #[arg(long)]
    disclosed: Option<PathBuf>,
}

#[derive(Args)]
struct ChartArgs {
    /// The points: `series rate p50_ms p99_ms` lines.
    #[arg(long)]
    points: PathBuf,
    /// The SVG file to write.
    #[arg(long)]
    out: PathBuf,
    /// The chart's title.
    #[arg(long)]
    title: String,
    /// The scenario's SQL floor (operations per second), drawn as a vertical line.
    #[arg(long)]
    floor: Option<f64>,
    /// The p99 target (milliseconds), drawn as a horizontal line.
    #[arg(long, default_value_t = 10.0)]
    target_ms: f64,
}

#[derive(Args)]
struct PathsArgs {
    /// The server, such as http://127.0.0.1:8080.
    #[arg(long)]
    base_url: String,
    #[command(flatten)]
    login: Login,
    /// The scenario (one that is a single GET).
    #[arg(long)]
    scenario: String,
    /// How many paths.
    #[arg(long, default_value_t = 1000)]
    count: usize,
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
    /// After the closed loop, search the highest open-loop rate whose p99 stays under this
    /// many milliseconds (one `mode=capacity` result line per scenario).
    #[arg(long)]
    capacity_p99_ms: Option<f64>,
    /// Seconds measured per search step (after a quarter of it as warm-up).
    #[arg(long, default_value_t = 2.0)]
    search_duration: f64,
    /// Most search steps before the confirming one.
    #[arg(long, default_value_t = 6)]
    search_steps: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Ceiling { bind, workers } => ceiling::serve(&bind, workers),
        Command::Run(args) => run(args),
        Command::Paths(args) => small_runtime().and_then(|rt| rt.block_on(paths(args))),
        Command::Chart(args) => std::fs::read_to_string(&args.points)
            .map_err(|e| format!("cannot read {}: {e}", args.points.display()))
            .and_then(|text| chart::parse_points(&text))
            .and_then(|points| {
                let marks = chart::Marks {
                    title: args.title,
                    floor: args.floor,
                    target_ms: args.target_ms,
                };
                chart::draw(&points, &marks, &args.out)
            }),
        Command::Receiver { bind, out } => receiver::serve(&bind, out),
        Command::LiveBoard(args) => small_runtime().and_then(|rt| {
            rt.block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
                let base = args.base_url.trim_end_matches('/');
                let session =
                    Session::login(client, base, &args.login.email, &args.login.password).await?;
                live_board::run(
                    &session,
                    live_board::Plan {
                        subscribers: args.subscribers.max(1),
                        connecting: args.connecting,
                        server_pid: args.server_pid,
                        patience: Duration::from_secs_f64(args.patience.max(1.0)),
                    },
                )
                .await
            })
        }),
        Command::Storm(args) => small_runtime().and_then(|rt| {
            rt.block_on(storm::run(storm::Storm {
                bases: args
                    .base_urls
                    .split(',')
                    .map(|b| b.trim().trim_end_matches('/').to_owned())
                    .filter(|b| !b.is_empty())
                    .collect(),
                requests: args.requests.max(1),
                conflict: args.conflict,
                email: args.login.email,
                password: args.login.password,
                days_ahead: args.days_ahead,
            }))
        }),
        Command::Steady(args) => small_runtime().and_then(|rt| {
            if !args.duration.is_finite() || args.duration <= 0.0 {
                return Err("--duration must be positive".into());
            }
            rt.block_on(steady::run(steady::Steady {
                base: args.base_url.trim_end_matches('/').to_owned(),
                email: args.login.email,
                password: args.login.password,
                duration: Duration::from_secs_f64(args.duration),
                workers: args.workers,
                pause: Duration::from_millis(args.pause_ms),
                events: args.events,
                created: args.created,
                webhook: args.webhook,
                days_ahead: args.days_ahead,
                disclosed: args.disclosed,
            }))
        }),
        Command::Verify(args) => small_runtime().and_then(|rt| {
            let since = chrono::DateTime::from_timestamp_millis(args.since_unix_ms)
                .ok_or("--since-unix-ms is out of range")?;
            rt.block_on(verify::run(verify::Verify {
                base: args.base_url.trim_end_matches('/').to_owned(),
                email: args.login.email,
                password: args.login.password,
                created: args.created,
                since,
                disclosed: args.disclosed,
            }))
        }),
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
    if args.capacity_p99_ms.is_some() && concurrency.is_empty() {
        return Err("--capacity-p99-ms starts from a closed-loop run (--concurrency)".into());
    }
    let search = match args.capacity_p99_ms {
        Some(ms) if ms.is_finite() && ms > 0.0 && args.search_duration > 0.0 => {
            Some(capacity::Search {
                p99_bound: Duration::from_secs_f64(ms / 1000.0),
                step: load::Timing {
                    warmup: Duration::from_secs_f64(args.search_duration / 4.0),
                    duration: Duration::from_secs_f64(args.search_duration),
                },
                confirm: load::Timing {
                    warmup: Duration::from_secs_f64(args.warmup),
                    duration: Duration::from_secs_f64(args.duration),
                },
                max_steps: args.search_steps.max(1),
                max_in_flight: args.max_in_flight,
            })
        }
        Some(_) => {
            return Err("--capacity-p99-ms and --search-duration must be positive".into());
        }
        None => None,
    };
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
            if let (Some(search), Some(closed)) = (&search, closed_throughput) {
                let found = capacity::search(&fixture, scenario, closed, search, report).await;
                let (rate, p99) = found.map_or((0.0, 0), |(rate, m)| (rate, m.p99_micros()));
                println!(
                    "result scenario={} mode=capacity capacity_rps={rate:.1} p99_us={p99} \
                     bound_ms={}",
                    scenario.name(),
                    search.p99_bound.as_secs_f64() * 1000.0
                );
                eprintln!(
                    "{:<17} capacity (p99 < {} ms): {rate:.1}/s",
                    scenario.name(),
                    search.p99_bound.as_secs_f64() * 1000.0
                );
            }
        }
        Ok(())
    })
}

/// Prints `token <bearer>` and `count` lines `path <path>` of one GET scenario.
async fn paths(args: PathsArgs) -> Result<(), String> {
    let scenario = match Scenario::parse_list(&args.scenario)?.as_slice() {
        [one] => *one,
        _ => return Err("--scenario takes one scenario".into()),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let base = args.base_url.trim_end_matches('/');
    let session = Session::login(client, base, &args.login.email, &args.login.password).await?;
    let fixture = Fixture::load(session, 35).await?;
    let token = fixture.bearer().await?.ok_or("logged in without a token")?;
    println!("token {token}");
    for _ in 0..args.count.max(1) {
        match fixture.get_path(scenario)? {
            Some(path) => println!("path {path}"),
            None => return Err(format!("{} is not a single GET", scenario.name())),
        }
    }
    Ok(())
}

/// A two-thread runtime: the servers under test share the machine.
fn small_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
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
