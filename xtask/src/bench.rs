//! `bench`: the HTTP load benchmark. Builds the release server and `clinicflow-loadgen`,
//! measures the ceilings of this machine (a bare actix-web JSON handler; pgbench select-only
//! and a one-row insert against the same PostgreSQL), then for SQLite and PostgreSQL seeds a
//! clinic, starts the release server and drives every scenario closed- and open-loop, and
//! writes the tables into the "HTTP load" section of docs/benchmarks.md.
//!
//! Each scenario runs on its own, followed (on PostgreSQL) by its SQL floor (`floor`), and,
//! with `--cross-check`, by the same GET load from `wrk` (`cross_check`); the load generator
//! also searches each scenario's open-loop capacity (the highest rate with p99 under 10 ms).
//! `--server PATH` benches another clinicflow binary (a baseline copy) with the same run.
//!
//! The load generator is a workspace binary because xtask itself uses the standard library
//! only; it prints one `result key=value …` line per measurement, which is all xtask reads.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::postgres::Binaries;
use crate::services::{self, Requirement, Services};
use crate::{Result, cargo, find_program, status_of, warn, workspace_root};

mod chart;
mod cross_check;
mod floor;

/// Where the tables go.
const DOC: &str = "docs/benchmarks.md";
/// The section of [`DOC`] this command owns, up to the next `## ` heading.
const SECTION: &str = "## HTTP load";
/// The seed's admin, whose login the load uses.
const ADMIN_EMAIL: &str = "admin@demo-clinic.example";
/// Its password (demo data only).
const ADMIN_PASSWORD: &str = "demo-admin-password";
/// Scenarios in report order, with what one operation sends.
const SCENARIOS: [(&str, &str); 10] = [
    (
        "patient-by-id",
        "`GET /patients/{id}` of a random patient of a 2,000-patient sample spread over the whole list",
    ),
    (
        "patient-search",
        "`GET /patients?q=<3-letter prefix of a family or given name>&limit=20` (a type-ahead: first keyset page)",
    ),
    (
        "appointment-page",
        "`GET /appointments?from=<random day with appointments>&limit=50` (one keyset page)",
    ),
    (
        "slots-30d",
        "`GET /practitioners/{id}/slots` for the next 30 days of a random practitioner",
    ),
    (
        "first-free-slot",
        "`GET /slots?from=<today>&to=<+30 days>&limit=1`: the earliest free slot across all practitioners",
    ),
    (
        "book-cancel",
        "`POST /appointments` into a free slot 5–29 weeks ahead, then `POST /appointments/{id}/cancel` (one operation, two write transactions)",
    ),
    (
        "dashboard",
        "`GET /dashboard/stats` (served from the warmer's cache)",
    ),
    (
        "me",
        "`GET /me`: the user and their clinic (served from the tagged cache)",
    ),
    (
        "practitioners",
        "`GET /practitioners`: the first page of the directory (served from the tagged cache)",
    ),
    (
        "mixed",
        "3 `GET /patients?limit=50` : 2 `GET /dashboard/stats` : 1 `POST /appointments`, in turn",
    ),
];
/// The live-board scenario: many streams, one change; run on a server of its own, so its
/// memory figures are the streams' alone.
const LIVE_BOARD: (&str, &str) = (
    "live-board",
    "`GET /queue/stream` opened by many clients (one user; the benchmark's server allows \
     that many streams per user), then one walk-in (`POST /queue/entries`): the time until \
     each stream shows it, counted from the walk-in's sending, and the server's memory",
);
/// Scenarios that write; the others are measured against pgbench's select-only ceiling.
const WRITING: [&str; 1] = ["book-cancel"];
/// The open-loop capacity is the highest rate whose p99 stays under this many milliseconds.
const CAPACITY_P99_MS: f64 = 10.0;

/// What to run, from the command line.
#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    build: bool,
    patients: u64,
    practitioners: u64,
    appointments: u64,
    duration: f64,
    warmup: f64,
    concurrency: String,
    rates: String,
    scenarios: String,
    backends: Vec<Backend>,
    pgbench_scale: u32,
    output: PathBuf,
    /// The clinicflow binary to bench; `None` for the release build of this workspace.
    server: Option<PathBuf>,
    /// Run each scenario's SQL floor (PostgreSQL).
    floors: bool,
    /// Search each scenario's open-loop capacity.
    capacity: bool,
    /// Check the GET scenarios with `wrk` too.
    cross_check: bool,
    /// Draw each scenario's latency against the offered rate into `bench/*.svg` beside the output.
    charts: bool,
    /// Streams the live-board scenario opens.
    subscribers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

impl Options {
    fn full() -> Self {
        Self {
            quick: false,
            build: true,
            patients: 100_000,
            practitioners: 10,
            appointments: 200_000,
            duration: 15.0,
            warmup: 5.0,
            concurrency: "16".into(),
            rates: "100,75%".into(),
            scenarios: "all".into(),
            backends: vec![Backend::Sqlite, Backend::Postgres],
            pgbench_scale: 10,
            output: workspace_root().join(DOC),
            server: None,
            floors: true,
            capacity: true,
            cross_check: false,
            charts: true,
            subscribers: 10_000,
        }
    }

    fn quick() -> Self {
        Self {
            quick: true,
            patients: 2_000,
            appointments: 4_000,
            duration: 2.0,
            warmup: 1.0,
            rates: "50%".into(),
            pgbench_scale: 1,
            subscribers: 500,
            ..Self::full()
        }
    }

    /// Parses `bench`'s arguments: `--quick` picks the defaults, the other flags override them.
    fn parse(args: &[OsString]) -> Result<Self> {
        let args = utf8_args("bench", args)?;
        let mut options = if args.contains(&"--quick") {
            Self::quick()
        } else {
            Self::full()
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| format!("bench: {arg} needs a value"))
            };
            fn number<T: std::str::FromStr>(flag: &str, raw: &str) -> Result<T> {
                raw.parse()
                    .map_err(|_| format!("bench: {flag}: {raw:?} is not a number").into())
            }
            match arg {
                "--quick" => {}
                "--no-build" => options.build = false,
                "--patients" => options.patients = number(arg, value()?)?,
                "--practitioners" => options.practitioners = number(arg, value()?)?,
                "--appointments" => options.appointments = number(arg, value()?)?,
                "--duration" => options.duration = number(arg, value()?)?,
                "--warmup" => options.warmup = number(arg, value()?)?,
                "--concurrency" => options.concurrency = value()?.to_owned(),
                "--rates" => options.rates = value()?.to_owned(),
                "--scenarios" => options.scenarios = value()?.to_owned(),
                "--pgbench-scale" => options.pgbench_scale = number(arg, value()?)?,
                "--output" => options.output = PathBuf::from(value()?),
                "--server" => options.server = Some(PathBuf::from(value()?)),
                "--no-floors" => options.floors = false,
                "--no-capacity" => options.capacity = false,
                "--cross-check" => options.cross_check = true,
                "--no-charts" => options.charts = false,
                "--subscribers" => options.subscribers = number(arg, value()?)?,
                "--backends" => {
                    options.backends = value()?
                        .split(',')
                        .map(|name| match name.trim() {
                            "sqlite" => Ok(Backend::Sqlite),
                            "postgres" => Ok(Backend::Postgres),
                            other => Err(format!(
                                "bench: --backends: {other:?} is neither sqlite nor postgres"
                            )),
                        })
                        .collect::<Result<_, _>>()?;
                }
                _ => return Err(format!("bench: unexpected argument {arg:?}").into()),
            }
        }
        if options.patients == 0 || options.practitioners == 0 {
            return Err("bench: --patients and --practitioners must be at least 1".into());
        }
        if !(options.duration > 0.0 && options.warmup >= 0.0) {
            return Err("bench: --duration must be positive and --warmup not negative".into());
        }
        options.scenario_list()?;
        Ok(options)
    }
}

impl Options {
    /// The scenarios `--scenarios` names (`all`, or a comma-separated list), in its order.
    fn scenario_list(&self) -> Result<Vec<&'static str>> {
        let mut chosen = Vec::new();
        for name in self.scenarios.split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            if name == "all" {
                chosen.extend(SCENARIOS.map(|(name, _)| name));
                chosen.push(LIVE_BOARD.0);
                continue;
            }
            if name == LIVE_BOARD.0 {
                chosen.push(LIVE_BOARD.0);
                continue;
            }
            let (known, _) = SCENARIOS
                .iter()
                .find(|(known, _)| *known == name)
                .ok_or_else(|| format!("bench: --scenarios: unknown scenario {name:?}"))?;
            chosen.push(*known);
        }
        if chosen.is_empty() {
            return Err("bench: --scenarios names no scenario".into());
        }
        Ok(chosen)
    }

    /// The closed-loop concurrency the floors and the cross-check use: the first one asked.
    fn clients(&self) -> &str {
        self.concurrency.split(',').next().unwrap_or("16").trim()
    }
}

/// One `result` line of the load generator, as key/value pairs.
#[derive(Debug, Clone)]
struct Row(BTreeMap<String, String>);

impl Row {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("result ")?;
        Some(Self(
            rest.split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ))
    }

    fn text(&self, key: &str) -> &str {
        self.0.get(key).map_or("-", String::as_str)
    }

    fn number(&self, key: &str) -> f64 {
        self.0.get(key).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    }

    fn millis(&self, key: &str) -> String {
        format_millis(self.number(key) / 1000.0)
    }

    fn load(&self) -> String {
        match self.text("mode") {
            "closed" => format!("closed, {} workers", self.text("concurrency")),
            _ => {
                let rate = self.text("rate");
                if rate == "capacity" {
                    format!(
                        "open, {}/s (capacity: p99 < {CAPACITY_P99_MS} ms)",
                        self.text("target_rps")
                    )
                } else if rate.ends_with('%') {
                    format!("open, {}/s ({rate} of closed)", self.text("target_rps"))
                } else {
                    format!("open, {}/s", self.text("target_rps"))
                }
            }
        }
    }
}

/// What a pgbench run reported.
#[derive(Debug, Clone)]
struct Pgbench {
    what: String,
    tps: f64,
    latency_ms: f64,
    failed: u64,
}

/// Everything measured on one backend.
#[derive(Debug)]
struct BackendRun {
    backend: Backend,
    seed_seconds: f64,
    seed_summary: String,
    rows: Vec<Row>,
    /// Each scenario's SQL floor (PostgreSQL only).
    floors: BTreeMap<&'static str, Pgbench>,
    /// The same GET load from `wrk`, per scenario.
    cross_checks: Vec<cross_check::Agreement>,
}

impl BackendRun {
    /// Whether `row` is a row of the report: the capacity search's steps (and a confirmation
    /// that failed and was retried lower) are its working, drawn in the charts only.
    fn shown(&self, row: &Row) -> bool {
        match (row.text("mode"), row.text("rate")) {
            // The live board has a table of its own.
            ("capacity", _) | ("open", "search") | ("live", _) => false,
            ("open", "capacity") => self.rows.iter().any(|found| {
                found.text("mode") == "capacity"
                    && found.text("scenario") == row.text("scenario")
                    && found.text("capacity_rps") == row.text("target_rps")
            }),
            _ => true,
        }
    }

    /// The scenario's open-loop capacity (p99 under the bound), when searched.
    fn capacity(&self, scenario: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.text("scenario") == scenario && r.text("mode") == "capacity")
            .map(|r| r.number("capacity_rps"))
    }
}

/// The ceilings of this machine.
#[derive(Debug, Default)]
struct Ceilings {
    http: Option<Row>,
    /// The same handler under wrk (`--cross-check`).
    http_wrk: Option<cross_check::Agreement>,
    select_only: Option<Pgbench>,
    insert: Option<Pgbench>,
}

/// `bench`: runs everything, writes the doc, prints the tables.
pub fn run(args: &[OsString]) -> Result<ExitCode> {
    let options = Options::parse(args)?;
    let started = Instant::now();
    let load_before = load_average();
    let root = workspace_root();
    if options.build {
        eprintln!("cargo xtask bench: cargo build --release -p clinicflow -p clinicflow-loadgen");
        let status = status_of(cargo().args([
            "build",
            "--release",
            "-p",
            "clinicflow",
            "-p",
            "clinicflow-loadgen",
        ]))?;
        if !status.success() {
            return Ok(crate::exit_code(status));
        }
    }
    let release = target_dir(&root).join("release");
    let loadgen = release.join("clinicflow-loadgen");
    if !loadgen.exists() {
        return Err(format!("{} is missing: run without --no-build", loadgen.display()).into());
    }
    let server = match &options.server {
        Some(path) if path.is_file() => fs::canonicalize(path)?,
        Some(path) => {
            return Err(format!("bench: --server {} is not a file", path.display()).into());
        }
        None => release.join("clinicflow"),
    };
    if !server.exists() {
        return Err(format!("{} is missing: run without --no-build", server.display()).into());
    }
    let scratch = services::create_temp_dir()?;
    let outcome = measure(&options, &server, &loadgen, &scratch);
    if let Err(error) = fs::remove_dir_all(&scratch) {
        warn(format_args!("cannot remove {}: {error}", scratch.display()));
    }
    let (ceilings, runs, postgres_version) = outcome?;
    let elapsed = started.elapsed();

    let load = format!("1-minute load average {load_before} when it started");
    let charts = if options.charts {
        chart::draw_all(&options, &loadgen, &runs)
    } else {
        Vec::new()
    };
    let section = render(
        &options,
        &ceilings,
        &runs,
        &postgres_version,
        elapsed,
        &load,
        &charts,
    );
    if let Some(dir) = options
        .output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let doc = fs::read_to_string(&options.output).unwrap_or_else(|_| "# Benchmarks\n".into());
    fs::write(&options.output, replace_section(&doc, &section))
        .map_err(|e| format!("cannot write {}: {e}", options.output.display()))?;
    println!("{section}");
    eprintln!(
        "cargo xtask bench: done in {:.0} s; wrote the \"{SECTION}\" section of {}",
        elapsed.as_secs_f64(),
        options.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the ceilings and both backends; `scratch` holds databases and logs.
fn measure(
    options: &Options,
    server: &Path,
    loadgen: &Path,
    scratch: &Path,
) -> Result<(Ceilings, Vec<BackendRun>, String)> {
    let (http, http_wrk) = http_ceiling(options, loadgen, scratch)?;
    let mut ceilings = Ceilings {
        http: Some(http),
        http_wrk,
        ..Ceilings::default()
    };
    let mut runs = Vec::new();
    let mut postgres_version = String::new();
    for &backend in &options.backends {
        eprintln!("cargo xtask bench: {}", backend.name());
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}?mode=rwc", scratch.join("bench.db").display());
                runs.push(backend_run(
                    options, backend, &url, server, loadgen, scratch, None,
                )?);
            }
            Backend::Postgres => {
                let postgres = Services::start(&services::Options {
                    postgres: Requirement::Required,
                    redis: Requirement::Skip,
                    postgres_port: None,
                    redis_port: None,
                })?;
                let admin_url = postgres.postgres_url().ok_or("PostgreSQL did not start")?;
                let bin = Binaries::find()?.dir().to_path_buf();
                postgres_version = program_version(&bin.join("postgres"));
                let port = admin_url
                    .rsplit(':')
                    .next()
                    .and_then(|tail| tail.split('/').next())
                    .ok_or("no port in the PostgreSQL URL")?
                    .to_owned();
                psql(&bin, &port, "postgres", "CREATE DATABASE clinicflow_bench")?;
                psql(&bin, &port, "postgres", "CREATE DATABASE pgbench_scratch")?;
                let url = match admin_url.rsplit_once('/') {
                    Some((server, _database)) => format!("{server}/clinicflow_bench"),
                    None => return Err(format!("unexpected PostgreSQL URL {admin_url}").into()),
                };
                let pg = floor::Server {
                    bin: bin.clone(),
                    port: port.clone(),
                };
                runs.push(backend_run(
                    options,
                    backend,
                    &url,
                    server,
                    loadgen,
                    scratch,
                    Some(&pg),
                )?);
                let (select_only, insert) = pgbench(options, &bin, &port, scratch)?;
                ceilings.select_only = Some(select_only);
                ceilings.insert = Some(insert);
                drop(postgres);
            }
        }
    }
    Ok((ceilings, runs, postgres_version))
}

/// Seeds `url`, serves it with `server`, and drives every scenario, each followed by its SQL
/// floor on `postgres` (the server behind `url`, when it is PostgreSQL) and its cross-check.
fn backend_run(
    options: &Options,
    backend: Backend,
    url: &str,
    server: &Path,
    loadgen: &Path,
    scratch: &Path,
    postgres: Option<&floor::Server>,
) -> Result<BackendRun> {
    let log_path = scratch.join(format!("server-{}.log", backend.name()));
    let seed_log_path = scratch.join(format!("seed-{}.log", backend.name()));
    let seed_log = fs::File::create(&seed_log_path)
        .map_err(|e| format!("cannot create {}: {e}", seed_log_path.display()))?;
    let seeded = Instant::now();
    let output = server_command(server, url)
        .args(["seed", "--bulk"])
        .args(["--patients", &options.patients.to_string()])
        .args(["--practitioners", &options.practitioners.to_string()])
        .args(["--appointments", &options.appointments.to_string()])
        .stdin(Stdio::null())
        .stderr(seed_log)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", server.display()))?;
    let seed_seconds = seeded.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "clinicflow seed --bulk failed ({}):\n{stdout}{}",
            output.status,
            tail(&seed_log_path, 40)
        )
        .into());
    }
    let seed_summary = stdout
        .lines()
        .find(|line| line.starts_with("created"))
        .unwrap_or("")
        .to_owned();
    eprintln!("  seeded in {seed_seconds:.1} s: {seed_summary}");
    let floors = match postgres {
        Some(pg) => {
            // A bulk load leaves no statistics and no visibility map; autovacuum would
            // catch up within minutes in production, so do its work before measuring.
            psql(&pg.bin, &pg.port, floor::DATABASE, "VACUUM ANALYZE")?;
            if options.floors {
                Some(floor::Floors::setup(options, pg)?)
            } else {
                None
            }
        }
        None => None,
    };
    let wrk = if options.cross_check {
        cross_check::Wrk::find()
    } else {
        None
    };

    let port = free_port()?;
    let log = fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut process = serve(
        server_command(server, url),
        port,
        log,
        &log_path,
        "/health/ready",
    )?;
    let base_url = format!("http://127.0.0.1:{port}");
    let mut measured =
        measure_scenarios(options, loadgen, &base_url, floors.as_ref(), wrk.as_ref());
    process.stop();
    if measured.is_ok() && options.scenario_list()?.contains(&LIVE_BOARD.0) {
        let log_path = scratch.join(format!("server-live-{}.log", backend.name()));
        match live_board(options, server, url, loadgen, &log_path) {
            Ok(live) => {
                if let Ok((rows, _, _)) = &mut measured {
                    rows.extend(live);
                }
            }
            Err(error) => {
                measured = Err(format!(
                    "{error}\n--- the server's log ({}) ends with ---\n{}",
                    log_path.display(),
                    tail(&log_path, 40)
                )
                .into());
            }
        }
    }
    if let Some(floors) = floors
        && let Err(error) = floors.teardown()
    {
        warn(format_args!("cannot drop the SQL floors' sample: {error}"));
    }
    let (rows, floors, cross_checks) = measured.map_err(|e| {
        format!(
            "{e}\n--- the server's log ({}) ends with ---\n{}",
            log_path.display(),
            tail(&log_path, 40)
        )
    })?;
    Ok(BackendRun {
        backend,
        seed_seconds,
        seed_summary,
        rows,
        floors,
        cross_checks,
    })
}

/// What [`measure_scenarios`] measured: the load generator's rows, the SQL floors and the
/// cross-checks.
type Measured = (
    Vec<Row>,
    BTreeMap<&'static str, Pgbench>,
    Vec<cross_check::Agreement>,
);

/// Each scenario on its own: the load generator's closed and open loops (and the capacity
/// search), then at once its SQL floor against the same database and its cross-check.
fn measure_scenarios(
    options: &Options,
    loadgen: &Path,
    base_url: &str,
    floors: Option<&floor::Floors>,
    wrk: Option<&cross_check::Wrk>,
) -> Result<Measured> {
    let mut rows = Vec::new();
    let mut floor_results = BTreeMap::new();
    let mut agreements = Vec::new();
    let duration = options.duration.to_string();
    let warmup = options.warmup.to_string();
    // Search steps are short: a fifth of a measurement, between 1 and 3 s.
    let search_duration = (options.duration / 5.0).clamp(1.0, 3.0).to_string();
    let bound = CAPACITY_P99_MS.to_string();
    for scenario in options.scenario_list()? {
        if scenario == LIVE_BOARD.0 {
            // On a server of its own: see `live_board`.
            continue;
        }
        let mut args = vec![
            "--scenarios",
            scenario,
            "--concurrency",
            &options.concurrency,
            "--rates",
            &options.rates,
            "--duration",
            &duration,
            "--warmup",
            &warmup,
            "--email",
            ADMIN_EMAIL,
            "--password",
            ADMIN_PASSWORD,
        ];
        if options.capacity {
            args.extend(["--capacity-p99-ms", &bound]);
            args.extend(["--search-duration", &search_duration]);
        }
        let scenario_rows = run_loadgen(loadgen, base_url, &args)?;
        if let Some(floors) = floors {
            match floors.run(scenario) {
                Ok(result) => {
                    floor_results.insert(scenario, result);
                }
                // A floor that fails leaves its column empty, said here, not silently.
                Err(error) => warn(format_args!("SQL floor of {scenario}: {error}")),
            }
        }
        if options.cross_check && cross_check::is_get(scenario) {
            match wrk {
                Some(wrk) => {
                    let ours = scenario_rows
                        .iter()
                        .find(|r| r.text("mode") == "closed")
                        .map_or(0.0, |r| r.number("throughput"));
                    match wrk.check(options, loadgen, base_url, scenario, ours) {
                        Ok(agreement) => agreements.push(agreement),
                        Err(error) => warn(format_args!("cross-check of {scenario}: {error}")),
                    }
                }
                None => warn(format_args!(
                    "cross-check of {scenario} skipped: wrk is not installed \
                     (Debian: apt-get install wrk)"
                )),
            }
        }
        rows.extend(scenario_rows);
    }
    Ok((rows, floor_results, agreements))
}

/// The live-board scenario on a fresh server: its streams, one change, and the server's memory.
fn live_board(
    options: &Options,
    server: &Path,
    url: &str,
    loadgen: &Path,
    log_path: &Path,
) -> Result<Vec<Row>> {
    eprintln!(
        "cargo xtask bench: live-board, {} streams",
        options.subscribers
    );
    let port = free_port()?;
    let log = fs::File::create(log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut process = serve(
        server_command(server, url),
        port,
        log,
        log_path,
        "/health/ready",
    )?;
    let pid = process.id().map(|id| id.to_string()).unwrap_or_default();
    let output = Command::new(loadgen)
        .args([
            "live-board",
            "--base-url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(["--subscribers", &options.subscribers.to_string()])
        .args(["--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD])
        .args(if pid.is_empty() {
            vec![]
        } else {
            vec!["--server-pid", pid.as_str()]
        })
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", loadgen.display()));
    process.stop();
    let output = output?;
    if !output.status.success() {
        return Err(format!("clinicflow-loadgen live-board failed ({})", output.status).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(Row::parse)
        .collect())
}

/// The release server with the benchmark's configuration: production profile, rate limits
/// far out of the way, access tokens that outlive the run.
fn server_command(server: &Path, url: &str) -> Command {
    let mut command = Command::new(server);
    command
        .env("DATABASE_URL", url)
        .env("CLINICFLOW_PROFILE", "production")
        .env("CLINICFLOW_JWT_SECRET", random_hex(32))
        // Production wants /metrics protected; the benchmark does not scrape it.
        .env("CLINICFLOW_METRICS_TOKEN", random_hex(32))
        .env("CLINICFLOW_HTTP_PER_USER_PER_HOUR", "1000000000")
        .env("CLINICFLOW_HTTP_PER_IP_PER_HOUR", "1000000000")
        .env("CLINICFLOW_AUTH_LOGIN_PER_IP_PER_MINUTE", "100000")
        .env("CLINICFLOW_AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE", "100000")
        .env("CLINICFLOW_AUTH_ACCESS_TOKEN_TTL_SECS", "86400")
        // The live-board scenario opens all its streams as one user.
        .env("CLINICFLOW_HTTP_MAX_STREAMS_PER_USER", "1000000")
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG");
    command
}

/// The bare actix-web handler, driven closed-loop like the scenarios, and with
/// `--cross-check` by wrk too.
fn http_ceiling(
    options: &Options,
    loadgen: &Path,
    scratch: &Path,
) -> Result<(Row, Option<cross_check::Agreement>)> {
    eprintln!("cargo xtask bench: HTTP ceiling (bare actix-web JSON handler)");
    let port = free_port()?;
    let log_path = scratch.join("ceiling.log");
    let log = fs::File::create(&log_path)?;
    let child = Command::new(loadgen)
        .args(["ceiling", "--bind", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", loadgen.display()))?;
    let mut process = Process::new(child, "ceiling server");
    wait_ready(&mut process, port, "/json", &log_path)?;
    let base_url = format!("http://127.0.0.1:{port}");
    let row = run_loadgen(
        loadgen,
        &base_url,
        &[
            "--scenarios",
            "ceiling",
            "--concurrency",
            &options.concurrency,
            "--rates",
            "",
            "--duration",
            &options.duration.to_string(),
            "--warmup",
            &options.warmup.to_string(),
        ],
    )
    .and_then(|rows| {
        rows.into_iter()
            .next()
            .ok_or_else(|| "the ceiling run reported nothing".into())
    });
    let wrk = match &row {
        Ok(row) if options.cross_check => cross_check::Wrk::find().and_then(|wrk| {
            wrk.ceiling(options, &base_url, row.number("throughput"))
                .map_err(|error| warn(format_args!("cross-check of the ceiling: {error}")))
                .ok()
        }),
        _ => None,
    };
    process.stop();
    Ok((row?, wrk))
}

/// Runs the load generator and collects its `result` lines (its stderr shows progress).
fn run_loadgen(loadgen: &Path, base_url: &str, args: &[&str]) -> Result<Vec<Row>> {
    let output = Command::new(loadgen)
        .args(["run", "--base-url", base_url])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", loadgen.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("clinicflow-loadgen failed ({})", output.status).into());
    }
    Ok(stdout.lines().filter_map(Row::parse).collect())
}

/// pgbench select-only and a one-row insert transaction on `pgbench_scratch`, at the
/// closed-loop concurrency of the scenarios.
fn pgbench(
    options: &Options,
    bin: &Path,
    port: &str,
    scratch: &Path,
) -> Result<(Pgbench, Pgbench)> {
    let pgbench = floor::pgbench_program(bin)?;
    eprintln!(
        "cargo xtask bench: pgbench -i -s {} (scratch database)",
        options.pgbench_scale
    );
    let init = Command::new(&pgbench)
        .args(["-h", "127.0.0.1", "-p", port, "-U", "postgres"])
        .args(["-i", "-q", "-s", &options.pgbench_scale.to_string()])
        .arg("pgbench_scratch")
        .stdin(Stdio::null())
        .output()?;
    if !init.status.success() {
        return Err(format!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        )
        .into());
    }
    psql(
        bin,
        port,
        "pgbench_scratch",
        "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, v integer NOT NULL, \
         at timestamptz NOT NULL DEFAULT now())",
    )?;
    let script = scratch.join("insert.sql");
    fs::write(
        &script,
        "\\set v random(1, 1000000)\nINSERT INTO bench_insert (v) VALUES (:v);\n",
    )?;
    let seconds = (options.duration.ceil() as u64).max(1).to_string();
    let warm = (options.warmup.ceil() as u64).to_string();
    let run = |what: &str, workload: &[String]| {
        floor::pgbench_run(
            &pgbench,
            port,
            "pgbench_scratch",
            what.to_owned(),
            workload,
            options.clients(),
            &warm,
            &seconds,
        )
    };
    let select_only = run("select-only (-S)", &["-S".to_owned()])?;
    let insert = run(
        "one-row insert (-f)",
        &["-f".to_owned(), script.to_string_lossy().into_owned()],
    )?;
    Ok((select_only, insert))
}

/// Runs one SQL statement with psql as the superuser.
fn psql(bin: &Path, port: &str, database: &str, sql: &str) -> Result<()> {
    let psql = Some(bin.join("psql"))
        .filter(|p| crate::is_executable(p))
        .or_else(|| find_program("psql", &[]))
        .ok_or("psql not found next to initdb or on PATH")?;
    let output = Command::new(psql)
        .args(["-h", "127.0.0.1", "-p", port, "-U", "postgres", "-X", "-q"])
        .args(["-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql])
        .stdin(Stdio::null())
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

/// A child process stopped with SIGTERM (then SIGKILL) when done or dropped.
pub(crate) struct Process {
    child: Option<Child>,
    name: &'static str,
}

impl Process {
    pub(crate) fn new(child: Child, name: &'static str) -> Self {
        Self {
            child: Some(child),
            name,
        }
    }

    /// Fails when the process has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            return Err(format!("{} exited ({status})", self.name).into());
        }
        Ok(())
    }

    /// The process id, while it runs.
    pub(crate) fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL at once, as a crash or the OOM killer would, and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, up to 10 s for a graceful stop, then SIGKILL.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        warn(format_args!(
            "{} did not stop on SIGTERM; killing it",
            self.name
        ));
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A task's arguments as text; a task has no use for arguments that are not UTF-8.
pub(crate) fn utf8_args<'a>(task: &str, args: &'a [OsString]) -> Result<Vec<&'a str>> {
    args.iter()
        .map(|a| {
            a.to_str()
                .ok_or_else(|| format!("{task}: {a:?} is not UTF-8").into())
        })
        .collect()
}

/// Runs `command` (a `clinicflow` binary with its environment) as `serve` on 127.0.0.1:`port`,
/// its output going to `log` (the file at `log_path`), and waits until `GET ready_path` answers.
pub(crate) fn serve(
    mut command: Command,
    port: u16,
    log: fs::File,
    log_path: &Path,
    ready_path: &str,
) -> Result<Process> {
    let child = command
        .arg("serve")
        .env("CLINICFLOW_BIND", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", command.get_program().display()))?;
    let mut process = Process::new(child, "clinicflow serve");
    wait_ready(&mut process, port, ready_path, log_path)?;
    Ok(process)
}

/// Waits up to a minute for `GET path` on `port` to answer 200.
pub(crate) fn wait_ready(process: &mut Process, port: u16, path: &str, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Err(error) = process.check_alive() {
            return Err(format!("{error}; its log:\n{}", tail(log, 40)).into());
        }
        if http_status(port, path) == Some(200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not answer GET {path} within a minute; its log:\n{}",
                process.name,
                tail(log, 40)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status of a plain HTTP/1.1 `GET path` on 127.0.0.1:`port`, if it answers.
pub(crate) fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// `bytes` random bytes from the kernel, as hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    if let Ok(mut random) = fs::File::open("/dev/urandom") {
        let _ = random.read_exact(&mut buffer);
    }
    buffer.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// The last `lines` lines of a file.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `target` in the workspace.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// `program --version`'s first line, or empty.
fn program_version(program: &Path) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The 1-minute load average, from /proc/loadavg.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The machine: cores, CPU model, memory, kernel.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown memory".into(),
            |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0),
        );
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!(", Linux {}", k.trim()))
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {memory}{kernel}")
}

fn format_millis(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn format_rate(per_second: f64) -> String {
    if per_second >= 100.0 {
        format!("{per_second:.0}")
    } else {
        format!("{per_second:.1}")
    }
}

fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        let share = 100.0 * part / whole;
        if share >= 10.0 {
            format!("{share:.0} %")
        } else {
            format!("{share:.1} %")
        }
    } else {
        "–".into()
    }
}

/// The command that reproduces this run.
fn command_line(options: &Options) -> String {
    let mut line = String::from("cargo xtask bench");
    let defaults = if options.quick {
        Options::quick()
    } else {
        Options::full()
    };
    if options.quick {
        line.push_str(" --quick");
    }
    let mut flag = |name: &str, value: String, default: String| {
        if value != default {
            let _ = write!(line, " {name} {value}");
        }
    };
    flag(
        "--patients",
        options.patients.to_string(),
        defaults.patients.to_string(),
    );
    flag(
        "--practitioners",
        options.practitioners.to_string(),
        defaults.practitioners.to_string(),
    );
    flag(
        "--appointments",
        options.appointments.to_string(),
        defaults.appointments.to_string(),
    );
    flag(
        "--duration",
        options.duration.to_string(),
        defaults.duration.to_string(),
    );
    flag(
        "--warmup",
        options.warmup.to_string(),
        defaults.warmup.to_string(),
    );
    flag(
        "--concurrency",
        options.concurrency.clone(),
        defaults.concurrency,
    );
    flag(
        "--rates",
        format!("'{}'", options.rates),
        format!("'{}'", defaults.rates),
    );
    flag("--scenarios", options.scenarios.clone(), defaults.scenarios);
    flag(
        "--backends",
        backend_names(&options.backends),
        backend_names(&defaults.backends),
    );
    flag(
        "--pgbench-scale",
        options.pgbench_scale.to_string(),
        defaults.pgbench_scale.to_string(),
    );
    flag(
        "--subscribers",
        options.subscribers.to_string(),
        defaults.subscribers.to_string(),
    );
    if let Some(server) = &options.server {
        let _ = write!(line, " --server {}", server.display());
    }
    for (set, name) in [
        (!options.floors, "--no-floors"),
        (!options.capacity, "--no-capacity"),
        (options.cross_check, "--cross-check"),
        (!options.charts, "--no-charts"),
    ] {
        if set {
            let _ = write!(line, " {name}");
        }
    }
    line
}

/// `sqlite,postgres` as on the command line.
fn backend_names(backends: &[Backend]) -> String {
    backends
        .iter()
        .map(|b| match b {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The "HTTP load" section.
fn render(
    options: &Options,
    ceilings: &Ceilings,
    runs: &[BackendRun],
    postgres_version: &str,
    elapsed: Duration,
    load: &str,
    charts: &[chart::Drawn],
) -> String {
    let mut s = String::new();
    let http_ceiling = ceilings
        .http
        .as_ref()
        .map_or(0.0, |r| r.number("throughput"));
    let _ = writeln!(s, "{SECTION}\n");
    if options.quick {
        let _ = writeln!(
            s,
            "**A `--quick` run** (small clinic, {} s per measurement): a smoke test of the harness, \
             not numbers to compare. The full run is `cargo xtask bench`.\n",
            options.duration
        );
    }
    let _ = writeln!(
        s,
        "Written by `{}`, which took {:.0} min on this machine: {} ({load}). \
         Server, database and load generator share it, so every number here is what one \
         small box does alone, and anything else running at the time (a build) lowers them.\n",
        command_line(options),
        elapsed.as_secs_f64() / 60.0,
        machine(),
    );
    let _ = writeln!(
        s,
        "- **Data**: the demo clinic at {} practitioners, {} patients and {} appointments \
         (`clinicflow seed --bulk`: mostly completed past appointments, some cancelled or \
         no-shows; 40 % of the next 4 weeks' slots booked).",
        options.practitioners, options.patients, options.appointments
    );
    for run in runs {
        let _ = writeln!(
            s,
            "  {}: seeded in {:.0} s ({}).",
            run.backend.name(),
            run.seed_seconds,
            run.seed_summary
                .trim_start_matches("created the demo clinic: ")
        );
    }
    let _ = writeln!(
        s,
        "- **Server**: `{} serve`, production profile (JSON logs to a \
         file), in-process cache and no Redis, default pool and workers, rate limits raised \
         out of the way. SQLite in WAL mode with `synchronous=FULL` on the local disk, so \
         every commit pays an fsync, as it does in production; PostgreSQL{} is xtask's \
         throwaway cluster (`fsync=off`, `synchronous_commit=off`, `full_page_writes=off`), \
         which pays none; it gets a `VACUUM ANALYZE` after seeding, as autovacuum would give it soon after a bulk load.",
        options.server.as_ref().map_or_else(
            || "target/release/clinicflow".to_owned(),
            |path| path.display().to_string()
        ),
        if postgres_version.is_empty() {
            String::new()
        } else {
            format!(" ({postgres_version})")
        }
    );
    let _ = writeln!(
        s,
        "- **Load**: `clinicflow-loadgen` (reqwest on one tokio thread, latencies in µs into an \
         HDR histogram) logs in once as the demo admin. *Closed loop*: {} workers back to back; \
         their throughput is the scenario's capacity. *Open loop* at {}: requests are sent at a \
         fixed rate whatever the answers do, and each latency runs from when its request was \
         due, so queueing behind a slow answer is counted (no coordinated omission). Each row: \
         {} s warm-up, then {} s measured. Throughput counts successful operations; errors are \
         non-2xx answers, transport errors and open-loop requests never sent.",
        options.concurrency,
        options
            .rates
            .split(',')
            .map(|r| {
                if r.ends_with('%') {
                    format!("{r} of the closed-loop throughput")
                } else {
                    format!("{r}/s")
                }
            })
            .collect::<Vec<_>>()
            .join(" and "),
        options.warmup,
        options.duration
    );
    let _ = writeln!(s, "\n### Ceilings on this machine\n");
    let _ = writeln!(s, "| ceiling | throughput | latency |");
    let _ = writeln!(s, "| --- | ---: | --- |");
    if let Some(row) = &ceilings.http {
        let _ = writeln!(
            s,
            "| bare actix-web JSON handler (`GET /json`, {}) | {}/s | p50 {} ms, p95 {} ms, p99 {} ms |",
            row.load(),
            format_rate(row.number("throughput")),
            row.millis("p50_us"),
            row.millis("p95_us"),
            row.millis("p99_us"),
        );
    }
    if let Some(wrk) = &ceilings.http_wrk {
        let _ = writeln!(
            s,
            "| the same handler under `wrk` (1 thread, {} connections) | {}/s | p50 {} ms, p99 {} ms |",
            options.clients(),
            format_rate(wrk.wrk),
            format_millis(wrk.p50_ms),
            format_millis(wrk.p99_ms),
        );
    }
    let clients = options.concurrency.split(',').next().unwrap_or("16");
    for bench in [&ceilings.select_only, &ceilings.insert]
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            s,
            "| pgbench {} on the same PostgreSQL, {clients} clients, prepared{} | {} tps | mean {:.2} ms |",
            bench.what,
            if bench.failed > 0 {
                format!(", {} failed", bench.failed)
            } else {
                String::new()
            },
            format_rate(bench.tps),
            bench.latency_ms,
        );
    }
    for run in runs.iter().filter(|r| !r.floors.is_empty()) {
        let _ = writeln!(s, "\n### SQL floors on {}\n", run.backend.name());
        let _ = writeln!(
            s,
            "| scenario | pgbench scripts (`{}`) | throughput | latency |",
            floor::DIR
        );
        let _ = writeln!(s, "| --- | --- | ---: | --- |");
        for (scenario, bench) in &run.floors {
            let _ = writeln!(
                s,
                "| {scenario} | {} | {} tps{} | mean {:.2} ms |",
                floor::describe(scenario),
                format_rate(bench.tps),
                if bench.failed > 0 {
                    format!(", {} failed", bench.failed)
                } else {
                    String::new()
                },
                bench.latency_ms,
            );
        }
    }
    for run in runs {
        render_backend(&mut s, options, ceilings, run, http_ceiling);
    }
    let agreements: Vec<(&BackendRun, &cross_check::Agreement)> = runs
        .iter()
        .flat_map(|run| run.cross_checks.iter().map(move |a| (run, a)))
        .collect();
    if options.cross_check && agreements.is_empty() {
        let _ = writeln!(
            s,
            "\n### Generator agreement\n\nNot measured: `--cross-check` was asked for, but wrk \
             was not installed or every wrk run failed (the run's log says which)."
        );
    }
    if !agreements.is_empty() {
        let _ = writeln!(s, "\n### Generator agreement\n");
        let _ = writeln!(
            s,
            "Each GET scenario once more with `wrk` (1 thread, {} connections, the same duration, \
             random paths from the same sample), right after the load generator's rows. Close \
             throughputs say that neither generator was the bottleneck; where they differ, \
             \"of wrk's ceiling\" is the like-for-like share: wrk's throughput over wrk's own on \
             the bare handler ({}).\n",
            options.clients(),
            ceilings
                .http_wrk
                .as_ref()
                .map_or("not measured".to_owned(), |c| format!(
                    "{}/s",
                    format_rate(c.wrk)
                )),
        );
        let _ = writeln!(
            s,
            "| scenario | backend | clinicflow-loadgen | wrk | wrk / loadgen | of wrk's ceiling | wrk p50 ms | wrk p99 ms | wrk non-2xx |"
        );
        let _ = writeln!(
            s,
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let wrk_ceiling = ceilings.http_wrk.as_ref().map(|c| c.wrk);
        if let Some(c) = &ceilings.http_wrk {
            let _ = writeln!(
                s,
                "| bare handler | – | {}/s | {}/s | {} | 100 % | {} | {} | {} |",
                format_rate(c.loadgen),
                format_rate(c.wrk),
                percent(c.wrk, c.loadgen),
                format_millis(c.p50_ms),
                format_millis(c.p99_ms),
                c.failed,
            );
        }
        for (run, a) in agreements {
            let _ = writeln!(
                s,
                "| {} | {} | {}/s | {}/s | {} | {} | {} | {} | {} |",
                a.scenario,
                run.backend.name(),
                format_rate(a.loadgen),
                format_rate(a.wrk),
                percent(a.wrk, a.loadgen),
                wrk_ceiling.map_or("–".to_owned(), |c| percent(a.wrk, c)),
                format_millis(a.p50_ms),
                format_millis(a.p99_ms),
                a.failed,
            );
        }
    }
    if !charts.is_empty() {
        let _ = writeln!(s, "\n### Latency against offered rate\n");
        let _ = writeln!(
            s,
            "Open loop, every rate measured (the fixed rates, the capacity search's steps and its \
             confirmation): p50 solid, p99 dashed, one colour per database; the horizontal line \
             is the p99 target ({CAPACITY_P99_MS} ms), the vertical one the scenario's SQL floor \
             on PostgreSQL.\n"
        );
        for drawn in charts {
            let _ = writeln!(s, "![{0}]({1})", drawn.scenario, drawn.link);
        }
    }
    let _ = writeln!(s, "\nScenarios (paths under `/api/v1`):\n");
    for (name, what) in SCENARIOS.iter().chain([&LIVE_BOARD]) {
        let _ = writeln!(s, "- `{name}`: {what}.");
    }
    let _ = writeln!(
        s,
        "\n\"Of HTTP ceiling\" is a scenario's closed-loop throughput over the bare handler's at \
         the same concurrency; \"of pgbench ceiling\" is it over pgbench select-only (reads, \
         and `mixed`) or the one-row insert (`book-cancel`, whose one operation is two write \
         transactions plus the reads around them). Reading a patient also appends an audit \
         event, so `patient-by-id` and `mixed` write too."
    );
    let _ = writeln!(
        s,
        "\n\"Of SQL floor\" is a scenario's closed-loop throughput (and, on its capacity row, \
         its capacity) over the tps of its SQL floor: a pgbench script in `{}` replaying the \
         fewest statements the scenario's meaning needs (the same tables, constraints, indexes \
         and rows written; random parameters from a sample of the seeded ids), run against the \
         same database at the same concurrency ({} clients, prepared statements, the same \
         warm-up and duration) right after the scenario's HTTP rows. One script run is one \
         operation as the load generator counts it: `book-cancel`'s script books and cancels \
         (two requests, one operation); `mixed`'s three scripts are drawn 3 : 2 : 1 like its \
         requests, one request per run. Each script's header says what it writes and what it \
         leaves out. The floors of scenarios the server answers from a cache (`slots-30d`, \
         `first-free-slot`, `dashboard`) are what a cache miss costs, so those may pass 100 %; \
         their reference stays the bare-handler ceiling. SQLite has no pgbench: the PostgreSQL \
         floor is the reference for both databases.",
        floor::DIR,
        options.clients(),
    );
    if options.capacity {
        let _ = writeln!(
            s,
            "\n\"Capacity (p99 < {CAPACITY_P99_MS} ms)\" is the highest open-loop rate at which \
             p99 stayed under {CAPACITY_P99_MS} ms with no error: the capacity these pages quote. \
             The load generator searches it after the closed loop: short steps starting at half \
             the closed-loop throughput, up by half while p99 holds, bisecting once a step fails, \
             at most 6 steps; then one step as long as the others confirms it (its row is the \
             scenario's \"capacity\" row; a failed confirmation is retried at 80 % of its \
             rate, at most 4 confirming steps in all). \"none\" means that no search step \
             passed, or that no confirming step held down to about half the best search step."
        );
    }
    s
}

/// One backend's table: every measured row, with the shares of the ceilings and the floor.
fn render_backend(
    s: &mut String,
    options: &Options,
    ceilings: &Ceilings,
    run: &BackendRun,
    http_ceiling: f64,
) {
    let postgres = run.backend == Backend::Postgres;
    let floors = postgres && !run.floors.is_empty();
    let _ = writeln!(s, "\n### {}\n", run.backend.name());
    let mut head = String::from(
        "| scenario | load | throughput | p50 ms | p95 ms | p99 ms | errors | of HTTP ceiling |",
    );
    let mut rule = String::from("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    if options.capacity {
        let _ = write!(head, " capacity (p99 < {CAPACITY_P99_MS} ms) |");
        rule.push_str(" ---: |");
    }
    if postgres {
        head.push_str(" of pgbench ceiling |");
        rule.push_str(" ---: |");
    }
    if floors {
        head.push_str(" of SQL floor |");
        rule.push_str(" ---: |");
    }
    let shown: Vec<&Row> = run.rows.iter().filter(|row| run.shown(row)).collect();
    if !shown.is_empty() {
        let _ = writeln!(s, "{head}\n{rule}");
    }
    for row in shown {
        let scenario = row.text("scenario");
        let closed = row.text("mode") == "closed";
        let confirming = row.text("rate") == "capacity";
        let throughput = row.number("throughput");
        let http = if closed {
            percent(throughput, http_ceiling)
        } else {
            "–".into()
        };
        let mut line = format!(
            "| {scenario} | {} | {}/s | {} | {} | {} | {} | {http} |",
            row.load(),
            format_rate(throughput),
            row.millis("p50_us"),
            row.millis("p95_us"),
            row.millis("p99_us"),
            row.text("errors"),
        );
        let capacity = run.capacity(scenario);
        if options.capacity {
            let cell = match (closed, capacity) {
                (true, Some(c)) if c > 0.0 => format!("{}/s", format_rate(c)),
                (true, Some(_)) => "none".into(),
                _ => "–".into(),
            };
            let _ = write!(line, " {cell} |");
        }
        if postgres {
            let ceiling = if WRITING.contains(&scenario) {
                &ceilings.insert
            } else {
                &ceilings.select_only
            };
            let db = match (closed, ceiling) {
                (true, Some(bench)) => percent(throughput, bench.tps),
                _ => "–".into(),
            };
            let _ = write!(line, " {db} |");
        }
        if floors {
            let share = match (run.floors.get(scenario), closed, confirming) {
                (Some(floor), true, _) => percent(throughput, floor.tps),
                (Some(floor), _, true) => percent(capacity.unwrap_or(0.0), floor.tps),
                _ => "–".into(),
            };
            let _ = write!(line, " {share} |");
        }
        let _ = writeln!(s, "{line}");
    }
    render_live_board(s, run);
}

/// The live-board table of one backend, when the scenario ran.
fn render_live_board(s: &mut String, run: &BackendRun) {
    let mut live = run
        .rows
        .iter()
        .filter(|r| r.text("mode") == "live")
        .peekable();
    if live.peek().is_none() {
        return;
    }
    let _ = writeln!(
        s,
        "\n`live-board` on {}: streams, the walk-in's answer, the time until each stream showed \
         the change (from the walk-in's sending), and the server's memory (`VmRSS` with the \
         streams open before the change, `VmRSS` and its peak `VmHWM` after it).\n",
        run.backend.name()
    );
    let _ = writeln!(
        s,
        "| streams | all open after | refused or failed | walk-in ms | got the change | p50 ms | p99 ms | last ms | RSS MB (open) | RSS MB (after) | peak RSS MB |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mib = |row: &Row, key: &str| format!("{:.0}", row.number(key) / 1024.0);
    for row in live {
        let _ = writeln!(
            s,
            "| {} | {:.1} s | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.text("subscribers"),
            row.number("ready_s"),
            row.text("refused"),
            row.millis("change_us"),
            row.text("received"),
            row.millis("p50_us"),
            row.millis("p99_us"),
            row.millis("max_us"),
            mib(row, "rss_before_kb"),
            mib(row, "rss_kb"),
            mib(row, "hwm_kb"),
        );
    }
}

/// `doc` with its [`SECTION`] (up to the next `## ` heading or the end) replaced by `section`.
fn replace_section(doc: &str, section: &str) -> String {
    let Some(start) = doc.find(&format!("\n{SECTION}\n")).map(|i| i + 1) else {
        return format!("{}\n\n{section}", doc.trim_end());
    };
    let after = &doc[start + SECTION.len()..];
    let end = after
        .find("\n## ")
        .map_or(doc.len(), |i| start + SECTION.len() + i + 1);
    format!("{}{}{}", &doc[..start], section.trim_end(), {
        let rest = &doc[end..];
        if rest.is_empty() {
            "\n".to_owned()
        } else {
            format!("\n\n{rest}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_up_to_the_next_heading() {
        let doc = "# B\n\n## Micro\n\ntext\n\n## HTTP load\n\nold\n\n## After\n\nkept\n";
        let new = replace_section(doc, "## HTTP load\n\nnew\n");
        assert_eq!(
            new,
            "# B\n\n## Micro\n\ntext\n\n## HTTP load\n\nnew\n\n## After\n\nkept\n"
        );
        let last = "# B\n\n## HTTP load\n\nold\n";
        assert_eq!(
            replace_section(last, "## HTTP load\n\nnew\n"),
            "# B\n\n## HTTP load\n\nnew\n"
        );
    }

    fn run_of(lines: &[&str]) -> BackendRun {
        BackendRun {
            backend: Backend::Postgres,
            seed_seconds: 0.0,
            seed_summary: String::new(),
            rows: lines.iter().filter_map(|l| Row::parse(l)).collect(),
            floors: BTreeMap::new(),
            cross_checks: Vec::new(),
        }
    }

    #[test]
    fn only_the_confirmed_capacity_step_is_a_row_and_every_open_step_is_a_chart_point() {
        let run = run_of(&[
            "result scenario=dashboard mode=closed rate=- target_rps=- throughput=900 p50_us=1000 p99_us=5000",
            "result scenario=dashboard mode=open rate=search target_rps=450.0 throughput=450 p50_us=900 p99_us=4000",
            "result scenario=dashboard mode=open rate=capacity target_rps=600.0 throughput=600 p50_us=950 p99_us=12000",
            "result scenario=dashboard mode=open rate=capacity target_rps=480.0 throughput=480 p50_us=920 p99_us=8000",
            "result scenario=dashboard mode=capacity capacity_rps=480.0 p99_us=8000 bound_ms=10",
        ]);
        let shown: Vec<&str> = run
            .rows
            .iter()
            .filter(|r| run.shown(r))
            .map(|r| r.text("target_rps"))
            .collect();
        assert_eq!(shown, vec!["-", "480.0"]);
        assert_eq!(run.capacity("dashboard"), Some(480.0));
        assert_eq!(
            chart::points(std::slice::from_ref(&run), "dashboard"),
            "PostgreSQL 450 0.9 4\nPostgreSQL 600 0.95 12\nPostgreSQL 480 0.92 8\n"
        );
    }

    #[test]
    fn result_lines_parse_into_fields() {
        let row = Row::parse("result scenario=dashboard mode=closed throughput=12.5 p50_us=1500")
            .expect("a result line");
        assert_eq!(row.text("scenario"), "dashboard");
        assert_eq!(row.millis("p50_us"), "1.50");
        assert!(Row::parse("sample: 10 practitioners").is_none());
    }

    #[test]
    fn quick_and_flags_combine() {
        let args: Vec<OsString> = ["--quick", "--duration", "3", "--backends", "sqlite"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let options = Options::parse(&args).expect("valid");
        assert!(options.quick);
        assert_eq!(options.patients, 2_000);
        assert_eq!(options.duration, 3.0);
        assert_eq!(options.backends, vec![Backend::Sqlite]);
        assert_eq!(
            command_line(&options),
            "cargo xtask bench --quick --duration 3 --backends sqlite"
        );
    }

    #[test]
    fn a_focused_before_and_after_run_is_one_command_line() {
        let args: Vec<OsString> = [
            "--server",
            "/tmp/clinicflow-baseline",
            "--scenarios",
            "patient-by-id,book-cancel",
            "--backends",
            "postgres",
            "--cross-check",
            "--no-capacity",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let options = Options::parse(&args).expect("valid");
        assert_eq!(
            options.server.as_deref(),
            Some(Path::new("/tmp/clinicflow-baseline"))
        );
        assert_eq!(
            options.scenario_list().expect("known scenarios"),
            vec!["patient-by-id", "book-cancel"]
        );
        assert!(options.cross_check && !options.capacity && options.floors);
        assert_eq!(
            command_line(&options),
            "cargo xtask bench --scenarios patient-by-id,book-cancel --backends postgres \
             --server /tmp/clinicflow-baseline --no-capacity --cross-check"
        );
    }

    #[test]
    fn an_unknown_scenario_is_refused_before_anything_runs() {
        let args: Vec<OsString> = ["--scenarios", "patient-by-id,nonsense"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let error = Options::parse(&args).expect_err("refused").to_string();
        assert!(error.contains("nonsense"), "{error}");
    }
}
