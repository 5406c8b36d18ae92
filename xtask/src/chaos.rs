//! `chaos`: the fault-injection suite. It starts a throwaway PostgreSQL and Redis, serves
//! real `clinicflow` instances on loopback, drives them with `clinicflow-loadgen` and breaks
//! things underneath: a storm of overlapping bookings over three instances (and over one on
//! SQLite), a SIGKILL under load (bookings and audited reads), PostgreSQL stopped and started again, Redis stopped and
//! started again. Each scenario prints one `chaos <name> key=value … ok|FAILED: why` line;
//! the task fails when any expectation fails.
//!
//! As in `bench`, xtask only orchestrates processes (standard library only); the HTTP work
//! is the load generator's, which prints `result key=value …` lines (and, for `steady`,
//! one `event` line per answer with its send time) that this module judges. Faults are
//! timed here, on the same Unix clock as those send times.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::bench::{self, Process};
use crate::services::{self, Requirement, Services};
use crate::{Result, cargo, find_program, status_of, warn, workspace_root};

/// Acquire timeout of the pg-restart scenario's pool: how long a request may wait for a
/// connection while the database is down before it is answered 503.
const OUTAGE_ACQUIRE_SECS: u64 = 2;
/// What a request may take beyond the acquire timeout during an outage (the rest of the
/// request, a loaded 2-core machine).
const OUTAGE_MARGIN: Duration = Duration::from_secs(2);
/// The pool must serve again this soon after PostgreSQL is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
/// How long pending outbox messages may take to arrive after a restart: the dispatcher's
/// lease (set to 5 s here) plus retries.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(45);

/// Sizes of a run.
#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    build: bool,
    /// Requests per storm.
    storm_requests: usize,
    /// Patients seeded for the storms (each practitioner-storm request has its own).
    storm_patients: usize,
    /// Seconds of steady load around each fault.
    steady_secs: f64,
    /// Seconds a fault lasts (database or Redis down).
    outage_secs: f64,
}

impl Options {
    fn full() -> Self {
        Self {
            quick: false,
            build: true,
            storm_requests: 1000,
            storm_patients: 1000,
            steady_secs: 16.0,
            outage_secs: 6.0,
        }
    }

    fn quick() -> Self {
        Self {
            quick: true,
            storm_requests: 200,
            storm_patients: 200,
            steady_secs: 10.0,
            outage_secs: 4.0,
            ..Self::full()
        }
    }

    fn parse(args: &[OsString]) -> Result<Self> {
        let args = bench::utf8_args("chaos", args)?;
        let mut options = if args.contains(&"--quick") {
            Self::quick()
        } else {
            Self::full()
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut number = |flag: &str| -> Result<f64> {
                let raw = args
                    .next()
                    .ok_or_else(|| format!("chaos: {flag} needs a value"))?;
                raw.parse::<f64>().ok().filter(|n| *n > 0.0).ok_or_else(|| {
                    format!("chaos: {flag}: {raw:?} is not a positive number").into()
                })
            };
            match arg {
                "--quick" => {}
                "--no-build" => options.build = false,
                "--requests" => {
                    let n = number(arg)? as usize;
                    options.storm_requests = n;
                    options.storm_patients = options.storm_patients.max(n);
                }
                "--duration" => options.steady_secs = number(arg)?,
                "--outage" => options.outage_secs = number(arg)?,
                _ => return Err(format!("chaos: unexpected argument {arg:?}").into()),
            }
        }
        if options.steady_secs < options.outage_secs + 4.0 {
            return Err("chaos: --duration must exceed --outage by at least 4 s".into());
        }
        Ok(options)
    }

    /// The cargo profile directory the binaries are in.
    fn profile(&self) -> &'static str {
        if self.quick { "debug" } else { "release" }
    }
}

/// A scenario (or two sharing one deployment): its verdicts, or why it could not run.
type Scenario = fn(&mut Suite) -> Result<Vec<Verdict>>;

/// One scenario's verdict.
struct Verdict {
    name: &'static str,
    fields: String,
    failures: Vec<String>,
}

impl Verdict {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            fields: String::new(),
            failures: Vec::new(),
        }
    }

    /// Appends ` key=value` to the line.
    fn field(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.fields, " {key}={value}");
        self
    }

    /// Records a failed expectation unless `holds`.
    fn expect(&mut self, holds: bool, why: impl FnOnce() -> String) {
        if !holds {
            self.failures.push(why());
        }
    }

    fn line(&self) -> String {
        if self.failures.is_empty() {
            format!("chaos {}{} ok", self.name, self.fields)
        } else {
            format!(
                "chaos {}{} FAILED: {}",
                self.name,
                self.fields,
                self.failures.join("; ")
            )
        }
    }
}

/// `chaos [--quick]`: runs every scenario and prints one line each.
pub fn run(args: &[OsString]) -> Result<ExitCode> {
    let options = Options::parse(args)?;
    let quick = options.quick;
    let started = Instant::now();
    if options.build {
        let mut build = cargo();
        build.args(["build", "-p", "clinicflow", "-p", "clinicflow-loadgen"]);
        if !options.quick {
            build.arg("--release");
        }
        eprintln!(
            "cargo xtask chaos: cargo build{} -p clinicflow -p clinicflow-loadgen",
            if options.quick { "" } else { " --release" }
        );
        let status = status_of(&mut build)?;
        if !status.success() {
            return Ok(crate::exit_code(status));
        }
    }
    let bin = bench::target_dir(&workspace_root()).join(options.profile());
    let suite_bins = (bin.join("clinicflow"), bin.join("clinicflow-loadgen"));
    for binary in [&suite_bins.0, &suite_bins.1] {
        if !binary.exists() {
            return Err(format!("{} is missing: run without --no-build", binary.display()).into());
        }
    }
    let services = Services::start(&services::Options {
        postgres: Requirement::Required,
        redis: Requirement::Required,
        postgres_port: None,
        redis_port: None,
    })?;
    let scratch = services::create_temp_dir()?;
    let mut suite = Suite {
        options,
        server: suite_bins.0,
        loadgen: suite_bins.1,
        scratch: scratch.clone(),
        services,
        secret: bench::random_hex(32),
    };
    let scenarios: [(&'static str, Scenario); 6] = [
        ("storms on PostgreSQL", |s| s.storms(Backend::Postgres)),
        ("storms on SQLite", |s| s.storms(Backend::Sqlite)),
        ("kill on PostgreSQL", |s| {
            s.kill(Backend::Postgres).map(|v| vec![v])
        }),
        ("kill on SQLite", |s| {
            s.kill(Backend::Sqlite).map(|v| vec![v])
        }),
        ("pg-restart", |s| s.pg_restart().map(|v| vec![v])),
        ("redis-stop", |s| s.redis_stop().map(|v| vec![v])),
    ];
    let mut failed = 0;
    for (what, scenario) in scenarios {
        eprintln!("cargo xtask chaos: {what}");
        match scenario(&mut suite) {
            Ok(verdicts) => {
                for verdict in verdicts {
                    failed += usize::from(!verdict.failures.is_empty());
                    println!("{}", verdict.line());
                }
            }
            Err(error) => {
                failed += 1;
                println!("chaos {what}: FAILED: {error}");
            }
        }
        let _ = std::io::stdout().flush();
    }
    drop(suite);
    if let Err(error) = fs::remove_dir_all(&scratch) {
        warn(format_args!("cannot remove {}: {error}", scratch.display()));
    }
    // Bad input is a fault too: the fuzz runs its own server, after the others stopped.
    eprintln!("cargo xtask chaos: fuzz");
    let fuzz_args: Vec<OsString> = if quick {
        vec![OsString::from("--quick")]
    } else {
        Vec::new()
    };
    match crate::fuzz::execute(&fuzz_args) {
        Ok((code, summary)) => {
            let passed = code == ExitCode::SUCCESS;
            failed += usize::from(!passed);
            println!("{}", fuzz_line(&summary, passed));
        }
        Err(error) => {
            failed += 1;
            println!("chaos fuzz: FAILED: {error}");
        }
    }
    eprintln!(
        "cargo xtask chaos{}: {} in {:.0} s",
        if quick { " --quick" } else { "" },
        if failed == 0 {
            "every scenario passed".to_owned()
        } else {
            format!("{failed} scenario(s) FAILED")
        },
        started.elapsed().as_secs_f64()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The fuzz's line from schemathesis' summary (`Tested: 48`, `2938 generated, 2938 passed`).
fn fuzz_line(summary: &[String], passed: bool) -> String {
    let operations = summary
        .iter()
        .find_map(|l| l.strip_prefix("Tested:"))
        .map_or("?", str::trim);
    // "2938 generated, 2936 passed, 2 failed" becomes "generated=2938 passed=2936 failed=2".
    let counts = summary
        .iter()
        .find(|l| {
            l.contains(" generated")
                && l.split(' ')
                    .next()
                    .is_some_and(|n| n.parse::<u64>().is_ok())
        })
        .map(|l| {
            l.split(',')
                .filter_map(|part| {
                    let (n, what) = part.trim().split_once(' ')?;
                    Some(format!("{}={n}", what.trim()))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "generated=?".to_owned());
    format!(
        "chaos fuzz operations={operations} {counts} {}",
        if passed { "ok" } else { "FAILED" }
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What every scenario shares.
struct Suite {
    options: Options,
    server: PathBuf,
    loadgen: PathBuf,
    scratch: PathBuf,
    services: Services,
    /// One JWT secret for every instance, so a token from one is good on all.
    secret: String,
}

/// A served instance.
struct Instance {
    process: Process,
    port: u16,
    log: PathBuf,
}

impl Instance {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// How instances of one deployment are configured.
#[derive(Clone)]
struct Deployment {
    url: String,
    redis: bool,
    env: Vec<(&'static str, String)>,
}

impl Suite {
    /// A fresh database named `name`: its URL.
    fn database(&self, backend: Backend, name: &str) -> Result<String> {
        match backend {
            Backend::Sqlite => Ok(format!(
                "sqlite://{}?mode=rwc",
                self.scratch.join(format!("{name}.db")).display()
            )),
            Backend::Postgres => {
                self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
                let admin = self
                    .services
                    .postgres_url()
                    .ok_or("PostgreSQL is not running")?;
                let (server, _) = admin
                    .rsplit_once('/')
                    .ok_or_else(|| format!("unexpected PostgreSQL URL {admin}"))?;
                Ok(format!("{server}/{name}"))
            }
        }
    }

    /// The server binary with the suite's configuration for `deployment`.
    fn server_command(&self, deployment: &Deployment) -> Command {
        let mut command = Command::new(&self.server);
        command
            .env("DATABASE_URL", &deployment.url)
            .env("CLINICFLOW_PROFILE", "production")
            .env("CLINICFLOW_JWT_SECRET", &self.secret)
            // Production wants /metrics protected; the suite's webhook receiver is on loopback,
            // which webhooks may reach only when the operator allows it.
            .env("CLINICFLOW_METRICS_TOKEN", bench::random_hex(32))
            .env("CLINICFLOW_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
            // The load is one user from one address: limits out of the way.
            .env("CLINICFLOW_HTTP_PER_USER_PER_HOUR", "1000000000")
            .env("CLINICFLOW_HTTP_PER_IP_PER_HOUR", "1000000000")
            .env("CLINICFLOW_AUTH_LOGIN_PER_IP_PER_MINUTE", "100000")
            .env("CLINICFLOW_AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE", "100000")
            .env("CLINICFLOW_AUTH_ACCESS_TOKEN_TTL_SECS", "86400")
            // Deliveries cut short by a kill come due again after the lease: keep it short.
            .env("CLINICFLOW_OUTBOX_POLL_INTERVAL_MS", "200")
            .env("CLINICFLOW_OUTBOX_WEBHOOK_CONNECT_TIMEOUT_SECS", "1")
            .env("CLINICFLOW_OUTBOX_WEBHOOK_TIMEOUT_SECS", "2")
            .env("CLINICFLOW_OUTBOX_LEASE_SECS", "5")
            .env("CLINICFLOW_HTTP_WORKERS", "2")
            .env_remove("RUST_LOG");
        match (deployment.redis, self.services.redis_url()) {
            (true, Some(url)) => command.env("REDIS_URL", url),
            _ => command.env_remove("REDIS_URL"),
        };
        for (key, value) in &deployment.env {
            command.env(key, value);
        }
        command
    }

    /// Seeds the demo clinic with `patients` patients.
    fn seed(&self, deployment: &Deployment, patients: usize) -> Result<()> {
        let output = self
            .server_command(deployment)
            .args(["seed", "--patients", &patients.to_string()])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.server.display()))?;
        if !output.status.success() {
            return Err(format!(
                "clinicflow seed failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(())
    }

    /// Starts one instance on `port` (a free one when `None`) and waits until it is ready.
    fn start(&self, deployment: &Deployment, port: Option<u16>, tag: &str) -> Result<Instance> {
        let port = match port {
            Some(port) => port,
            None => bench::free_port()?,
        };
        let log = self.scratch.join(format!("server-{tag}-{port}.log"));
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let process = bench::serve(
            self.server_command(deployment),
            port,
            file,
            &log,
            "/health/live",
        )?;
        Ok(Instance { process, port, log })
    }

    /// A fresh, seeded deployment of `count` instances.
    fn deploy(
        &self,
        backend: Backend,
        name: &str,
        count: usize,
        patients: usize,
        env: Vec<(&'static str, String)>,
    ) -> Result<(Deployment, Vec<Instance>)> {
        let deployment = Deployment {
            url: self.database(backend, name)?,
            redis: backend == Backend::Postgres,
            env,
        };
        self.seed(&deployment, patients)?;
        let instances = (0..count)
            .map(|_| self.start(&deployment, None, name))
            .collect::<Result<Vec<_>>>()?;
        Ok((deployment, instances))
    }

    /// storm-practitioner and storm-patient on one deployment.
    fn storms(&mut self, backend: Backend) -> Result<Vec<Verdict>> {
        let count = match backend {
            Backend::Postgres => 3,
            Backend::Sqlite => 1,
        };
        let name = format!("chaos_storm_{}", backend.name());
        let (_deployment, mut instances) = self.deploy(
            backend,
            &name,
            count,
            self.options.storm_patients,
            Vec::new(),
        )?;
        let bases = instances
            .iter()
            .map(Instance::base)
            .collect::<Vec<_>>()
            .join(",");
        let mut verdicts = Vec::new();
        // Different weeks, so the two storms cannot get in each other's way.
        for (scenario, conflict, days_ahead) in [
            ("storm-practitioner", "practitioner", "42"),
            ("storm-patient", "patient", "56"),
            ("storm-retry", "retry", "70"),
        ] {
            let requests = self.options.storm_requests.to_string();
            let row = self.loadgen_result(&[
                "storm",
                "--base-urls",
                &bases,
                "--requests",
                &requests,
                "--conflict",
                conflict,
                "--days-ahead",
                days_ahead,
            ]);
            let row = match row {
                Ok(row) => row,
                Err(error) => {
                    let mut verdict = Verdict::new(scenario);
                    verdict.field("backend", backend.name());
                    verdict
                        .failures
                        .push(format!("{error}\n{}", logs_tail(&mut instances)));
                    verdicts.push(verdict);
                    continue;
                }
            };
            let active_rows = match backend {
                Backend::Postgres => self.active_rows(&name, &row)?,
                Backend::Sqlite => row.number("active_rows"),
            };
            let (created, conflicts, other) = (
                row.number("created"),
                row.number("conflicts"),
                row.number("other"),
            );
            let sent = row.number("requests");
            let mut verdict = Verdict::new(scenario);
            verdict
                .field("backend", backend.name())
                .field("instances", count)
                .field("requests", sent)
                .field("created", created)
                .field("conflicts", conflicts)
                .field("other", other)
                .field("active_rows", active_rows);
            let wanted = self.options.storm_requests as u64;
            verdict.expect(sent == wanted, || format!("{sent} of {wanted} answered"));
            if conflict == "retry" {
                // One booking sent with one Idempotency-Key by every request: each gets its 201.
                let ids = row.number("distinct_ids");
                verdict.field("distinct_ids", ids);
                verdict.expect(created == wanted && conflicts == 0, || {
                    format!("{created} answers 201 and {conflicts} 409, not {wanted} and 0")
                });
                verdict.expect(ids == 1, || {
                    format!("{ids} different bookings answered, not 1")
                });
            } else {
                verdict.expect(created == 1, || {
                    format!("{created} bookings created, not 1")
                });
                verdict.expect(conflicts + 1 == wanted, || {
                    format!("{conflicts} booking_conflict answers, not {}", wanted - 1)
                });
            }
            verdict.field("max_ms", row.number("max_ms"));
            verdict.expect(other == 0, || {
                format!("{other} answers neither 201 nor 409")
            });
            verdict.expect(active_rows == 1, || {
                format!("{active_rows} active appointments in the window, not 1")
            });
            if !verdict.failures.is_empty() {
                verdict.failures.push(logs_tail(&mut instances));
            }
            verdicts.push(verdict);
        }
        for instance in &mut instances {
            instance.process.stop();
        }
        Ok(verdicts)
    }

    /// Active appointments in a storm's window, counted by PostgreSQL itself.
    fn active_rows(&self, database: &str, row: &Row) -> Result<u64> {
        let party = match row.text("conflict") {
            "practitioner" => format!(
                "practitioner_id = '{}'",
                row.text("practitioner_ids").split(',').next().unwrap_or("")
            ),
            _ => format!("patient_id = '{}'", row.text("patient_id")),
        };
        let sql = format!(
            "SELECT count(*) FROM appointments WHERE {party} \
             AND status IN ('booked', 'confirmed', 'checked_in', 'in_progress') \
             AND deleted_at IS NULL \
             AND starts_at < '{}' AND ends_at > '{}'",
            row.text("window_end"),
            row.text("window_start"),
        );
        let out = self.psql(database, &sql)?;
        out.trim()
            .parse()
            .map_err(|_| format!("psql answered {out:?} for a count").into())
    }

    /// kill: SIGKILL under a steady booking load and a patient read storm, restart, and check
    /// that no acknowledged booking and no audit event of an answered read was lost.
    fn kill(&mut self, backend: Backend) -> Result<Verdict> {
        let name = format!("chaos_kill_{}", backend.name());
        let (deployment, mut instances) = self.deploy(backend, &name, 1, 200, Vec::new())?;
        let mut instance = instances.pop().ok_or("no instance")?;
        let receiver_out = self.scratch.join(format!("{name}-received.txt"));
        let receiver_port = bench::free_port()?;
        let receiver_log = self.scratch.join(format!("{name}-receiver.log"));
        let receiver = Command::new(&self.loadgen)
            .args(["receiver", "--bind", &format!("127.0.0.1:{receiver_port}")])
            .arg("--out")
            .arg(&receiver_out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&receiver_log)?)
            .spawn()
            .map_err(|e| format!("cannot start the receiver: {e}"))?;
        let mut receiver = Process::new(receiver, "webhook receiver");
        bench::wait_ready(&mut receiver, receiver_port, "/health", &receiver_log)?;

        let since = unix_ms();
        let events = self.scratch.join(format!("{name}-events.txt"));
        let created = self.scratch.join(format!("{name}-created.txt"));
        let disclosed = self.scratch.join(format!("{name}-disclosed.txt"));
        let mut steady = self.steady(
            &instance,
            &events,
            &created,
            Some(&format!("http://127.0.0.1:{receiver_port}/hook")),
            Some(&disclosed),
        )?;
        steady.started()?;
        sleep(self.options.steady_secs * 0.35);
        instance.process.kill();
        let killed_at = unix_ms();
        sleep(1.0);
        let mut restarted = self.start(&deployment, Some(instance.port), &name)?;
        let restart_ms = unix_ms() - killed_at;
        let row = steady.finish()?;

        let acked = read_ids(&created)?;
        let delivered = wait_for_deliveries(&receiver_out, &acked);
        let verified = self.loadgen_result(&[
            "verify",
            "--base-url",
            &restarted.base(),
            "--created",
            &created.display().to_string(),
            "--since-unix-ms",
            &since.to_string(),
            "--disclosed",
            &disclosed.display().to_string(),
        ])?;
        let (rows_found, half_written) = match backend {
            Backend::Postgres => {
                self.kill_rows(&name, &acked, since, verified.number("reminder_offsets"))?
            }
            Backend::Sqlite => (verified.number("found"), verified.number("half_written")),
        };
        receiver.stop();
        let lost = acked.len() as u64 - delivered.min(acked.len() as u64);

        let mut verdict = Verdict::new("kill");
        verdict
            .field("backend", backend.name())
            .field("instances", 1)
            .field("requests", row.number("requests"))
            .field("created", acked.len())
            .field("rows_found", rows_found)
            .field("half_written", half_written)
            .field("delivered", delivered)
            .field("lost", lost)
            .field("no_answer", row.number("transport"))
            .field("restart_ms", restart_ms)
            .field("reads", verified.number("disclosed"))
            .field("unaudited", verified.number("unaudited"));
        verdict.expect(!acked.is_empty(), || "no booking was answered 201".into());
        verdict.expect(verified.number("disclosed") > 0, || {
            "no patient read was answered 200".into()
        });
        let unaudited = verified.number("unaudited");
        verdict.expect(unaudited == 0, || {
            format!("{unaudited} patient reads were answered but their audit event is lost")
        });
        verdict.expect(rows_found == acked.len() as u64, || {
            format!(
                "{rows_found} of {} acknowledged bookings are stored",
                acked.len()
            )
        });
        verdict.expect(half_written == 0, || {
            format!("{half_written} appointments lack reminders or their audit event")
        });
        verdict.expect(
            backend == Backend::Sqlite || verified.number("half_written") == 0,
            || "the API shows appointments without all of their parts".into(),
        );
        verdict.expect(lost == 0, || {
            format!("{lost} booking.confirmed messages never reached the receiver")
        });
        let other = row.number("other");
        verdict.expect(other == 0, || {
            format!("{other} unexpected answers (see stderr)")
        });
        let double = row.number("double_booked");
        verdict.expect(double == 0, || format!("{double} slots booked twice"));
        if !verdict.failures.is_empty() {
            verdict
                .failures
                .push(logs_tail(std::slice::from_mut(&mut restarted)));
        }
        restarted.process.stop();
        Ok(verdict)
    }

    /// Appointments found, and those of the run that lack a part, counted by PostgreSQL.
    fn kill_rows(
        &self,
        database: &str,
        acked: &[String],
        since_ms: u128,
        offsets: u64,
    ) -> Result<(u64, u64)> {
        let ids = acked
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        let found = if acked.is_empty() {
            0
        } else {
            let sql = format!("SELECT count(*) FROM appointments WHERE id IN ({ids})");
            self.count(database, &sql)?
        };
        let since = since_ms as f64 / 1000.0;
        let sql = format!(
            "SELECT count(*) FROM appointments a \
             WHERE a.created_at >= to_timestamp({since}) AND a.deleted_at IS NULL AND ( \
               NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.resource_id = a.id \
                           AND e.action = 'create' AND e.resource_type = 'appointment') \
               OR (SELECT count(*) FROM outbox_messages o WHERE o.appointment_id = a.id \
                   AND o.kind = 'booking.confirmed') <> 1 \
               OR (SELECT count(*) FROM outbox_messages o WHERE o.appointment_id = a.id \
                   AND o.kind = 'reminder.due') <> {offsets})"
        );
        let half_written = self.count(database, &sql)?;
        Ok((found, half_written))
    }

    /// pg-restart: PostgreSQL stopped under load, then started again.
    fn pg_restart(&mut self) -> Result<Verdict> {
        let name = "chaos_pg_restart";
        let env = vec![(
            "CLINICFLOW_DB_ACQUIRE_TIMEOUT_SECS",
            OUTAGE_ACQUIRE_SECS.to_string(),
        )];
        let (_deployment, mut instances) = self.deploy(Backend::Postgres, name, 1, 200, env)?;
        let events = self.scratch.join(format!("{name}-events.txt"));
        let created = self.scratch.join(format!("{name}-created.txt"));
        let mut steady = self.steady(&instances[0], &events, &created, None, None)?;
        steady.started()?;
        let port = instances[0].port;
        let lead = (self.options.steady_secs - self.options.outage_secs) / 3.0;
        sleep(lead);
        let postgres = self
            .services
            .postgres()
            .ok_or("PostgreSQL is not running")?;
        postgres.stop();
        let down = unix_ms();
        let ready_during = poll_ready(port, self.options.outage_secs);
        let resuming = unix_ms();
        postgres.resume()?;
        let up = unix_ms();
        let (ready_after, ready_ms) = wait_ready_status(port, |status, _| status == 200, 30.0);
        let row = steady.finish()?;
        let answers = read_events(&events)?;

        let during: Vec<&Event> = answers
            .iter()
            .filter(|e| e.sent_ms >= down && e.answered_ms() <= resuming)
            .collect();
        let wrong_during: Vec<&&Event> = during
            .iter()
            .filter(|e| {
                let unavailable = e.status == 503 && e.kind == "problem";
                // A read the cache can answer without the database may still succeed.
                let cached = e.op == "read" && e.status == 200;
                !(unavailable || cached)
            })
            .collect();
        let limit = Duration::from_secs(OUTAGE_ACQUIRE_SECS) + OUTAGE_MARGIN;
        let max_ms = answers.iter().map(|e| e.latency_ms).fold(0.0, f64::max);
        let recovery_ms = answers
            .iter()
            .filter(|e| e.answered_ms() >= up && e.succeeded())
            .map(|e| e.answered_ms() - up)
            .min();
        let late_failures = answers
            .iter()
            .filter(|e| e.sent_ms >= up + RECOVERY_BOUND.as_millis() && !e.succeeded())
            .count();
        let unavailable = during.iter().filter(|e| e.status == 503).count();

        let mut verdict = Verdict::new("pg-restart");
        verdict
            .field("backend", "postgres")
            .field("instances", 1)
            .field("requests", row.number("requests"))
            .field("outage_requests", during.len())
            .field("outage_503", unavailable)
            .field("other", row.number("other"))
            .field("max_ms", format!("{max_ms:.0}"))
            .field(
                "recovery_ms",
                recovery_ms.map_or_else(|| "none".to_owned(), |ms| ms.to_string()),
            )
            .field("ready_during", summary(&ready_during))
            .field("ready_after_ms", ready_ms);
        verdict.expect(!during.is_empty(), || {
            "no request was answered during the outage".into()
        });
        verdict.expect(wrong_during.is_empty(), || {
            let shown: Vec<String> = wrong_during.iter().take(5).map(|e| e.to_string()).collect();
            format!(
                "{} answers during the outage were not 503 problem+json: {}",
                wrong_during.len(),
                shown.join(", ")
            )
        });
        verdict.expect(max_ms <= limit.as_secs_f64() * 1000.0, || {
            format!("a request took {max_ms:.0} ms, more than {limit:?}")
        });
        verdict.expect(
            recovery_ms.is_some_and(|ms| ms <= RECOVERY_BOUND.as_millis()),
            || format!("no success within {RECOVERY_BOUND:?} of PostgreSQL being back"),
        );
        verdict.expect(late_failures == 0, || {
            format!("{late_failures} requests failed more than {RECOVERY_BOUND:?} after PostgreSQL was back")
        });
        verdict.expect(
            !ready_during.is_empty() && ready_during.iter().all(|(s, _)| *s == 503),
            || {
                format!(
                    "/health/ready during the outage: {}",
                    summary(&ready_during)
                )
            },
        );
        verdict.expect(ready_after == Some(200), || {
            "/health/ready did not answer 200 after PostgreSQL was back".into()
        });
        let transport = row.number("transport");
        verdict.expect(transport == 0, || {
            format!("{transport} requests got no answer")
        });
        let double = row.number("double_booked");
        verdict.expect(double == 0, || format!("{double} slots booked twice"));
        if !verdict.failures.is_empty() {
            verdict.failures.push(logs_tail(&mut instances));
        }
        instances[0].process.stop();
        Ok(verdict)
    }

    /// redis-stop: Redis stopped under load, then started again.
    fn redis_stop(&mut self) -> Result<Verdict> {
        let name = "chaos_redis_stop";
        let (_deployment, mut instances) =
            self.deploy(Backend::Postgres, name, 1, 200, Vec::new())?;
        let events = self.scratch.join(format!("{name}-events.txt"));
        let created = self.scratch.join(format!("{name}-created.txt"));
        let mut steady = self.steady(&instances[0], &events, &created, None, None)?;
        steady.started()?;
        let port = instances[0].port;
        let lead = (self.options.steady_secs - self.options.outage_secs) / 3.0;
        sleep(lead);
        let redis = self.services.redis_mut().ok_or("Redis is not running")?;
        redis.stop();
        let down = unix_ms();
        let ready_during = poll_ready(port, self.options.outage_secs);
        let back_at = unix_ms();
        let redis = self.services.redis_mut().ok_or("Redis is not running")?;
        redis.restart()?;
        let (ready_after, ready_ms) = wait_ready_status(
            port,
            |status, body| status == 200 && body.contains(r#""status":"ok""#),
            30.0,
        );
        let row = steady.finish()?;
        let answers = read_events(&events)?;

        let during = answers
            .iter()
            .filter(|e| e.sent_ms >= down && e.answered_ms() <= back_at)
            .count();
        let wrong: Vec<&Event> = answers
            .iter()
            .filter(|e| match e.op.as_str() {
                "book" => e.status != 201,
                "rebook" => !(e.status == 409 && e.code == "booking_conflict"),
                _ => e.status != 200,
            })
            .collect();
        let server_errors = answers.iter().filter(|e| e.status >= 500).count();
        let during_ready_ok = !ready_during.is_empty()
            && ready_during
                .iter()
                .all(|(s, body)| *s == 200 && body.contains(r#""status":"degraded""#));

        let mut verdict = Verdict::new("redis-stop");
        verdict
            .field("backend", "postgres")
            .field("instances", 1)
            .field("requests", row.number("requests"))
            .field("outage_requests", during)
            .field("created", row.number("created"))
            .field("conflicts", row.number("conflicts"))
            .field("other", wrong.len())
            .field("server_errors", server_errors)
            .field(
                "ready_during",
                if during_ready_ok {
                    "degraded".to_owned()
                } else {
                    summary(&ready_during)
                },
            )
            .field("ready_ok_after_ms", ready_ms);
        verdict.expect(during > 0, || {
            "no request was answered during the outage".into()
        });
        verdict.expect(wrong.is_empty(), || {
            let shown: Vec<String> = wrong.iter().take(5).map(|e| e.to_string()).collect();
            format!("{} wrong answers: {}", wrong.len(), shown.join(", "))
        });
        verdict.expect(during_ready_ok, || {
            format!(
                "/health/ready during the outage was not 200 degraded: {}",
                summary(&ready_during)
            )
        });
        verdict.expect(ready_after.is_some(), || {
            "/health/ready did not report Redis up again".into()
        });
        let double = row.number("double_booked");
        verdict.expect(double == 0, || format!("{double} slots booked twice"));
        if !verdict.failures.is_empty() {
            verdict.failures.push(logs_tail(&mut instances));
        }
        instances[0].process.stop();
        Ok(verdict)
    }

    /// Starts `clinicflow-loadgen steady` against `instance`.
    fn steady(
        &self,
        instance: &Instance,
        events: &Path,
        created: &Path,
        webhook: Option<&str>,
        disclosed: Option<&Path>,
    ) -> Result<Steady> {
        let mut command = Command::new(&self.loadgen);
        command
            .args(["steady", "--base-url", &instance.base()])
            .args(["--duration", &self.options.steady_secs.to_string()])
            .arg("--events")
            .arg(events)
            .arg("--created")
            .arg(created)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = webhook {
            command.args(["--webhook", url]);
        }
        if let Some(disclosed) = disclosed {
            command.arg("--disclosed").arg(disclosed);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.loadgen.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("no stdout from the load generator")?;
        Ok(Steady {
            child,
            lines: BufReader::new(stdout),
        })
    }

    /// Runs the load generator to completion and parses its one `result` line.
    fn loadgen_result(&self, args: &[&str]) -> Result<Row> {
        let output = Command::new(&self.loadgen)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.loadgen.display()))?;
        if !output.status.success() {
            return Err(
                format!("clinicflow-loadgen {} failed ({})", args[0], output.status).into(),
            );
        }
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(Row::parse)
            .ok_or_else(|| format!("clinicflow-loadgen {} printed no result", args[0]).into())
    }

    /// Runs one SQL statement with psql on `database` and answers its unaligned output.
    fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let postgres = self
            .services
            .postgres()
            .ok_or("PostgreSQL is not running")?;
        let psql = Some(postgres.bin_dir().join("psql"))
            .filter(|p| crate::is_executable(p))
            .or_else(|| find_program("psql", &[]))
            .ok_or("psql not found next to initdb or on PATH")?;
        let port = postgres.port().to_string();
        let output = Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-X",
                "-q",
                "-A",
                "-t",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "psql `{sql}` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A `SELECT count(*)`-like query's number.
    fn count(&self, database: &str, sql: &str) -> Result<u64> {
        let out = self.psql(database, sql)?;
        out.trim()
            .parse()
            .map_err(|_| format!("psql answered {out:?} for `{sql}`").into())
    }
}

/// A running `clinicflow-loadgen steady`.
struct Steady {
    child: Child,
    lines: BufReader<ChildStdout>,
}

impl Steady {
    /// Waits for its `started` line: the load runs from then on.
    fn started(&mut self) -> Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.lines.read_line(&mut line)? == 0 {
                let status = self.child.wait()?;
                return Err(
                    format!("clinicflow-loadgen steady exited before the load ({status})").into(),
                );
            }
            if line.starts_with("started") {
                return Ok(());
            }
        }
    }

    /// Waits for it to end and parses its `result` line.
    fn finish(mut self) -> Result<Row> {
        let mut rest = String::new();
        self.lines.read_to_string(&mut rest)?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("clinicflow-loadgen steady failed ({status})").into());
        }
        rest.lines()
            .find_map(Row::parse)
            .ok_or_else(|| "clinicflow-loadgen steady printed no result".into())
    }
}

impl Drop for Steady {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `result` line of the load generator, as key/value pairs.
#[derive(Debug, Clone)]
struct Row(BTreeMap<String, String>);

impl Row {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("result ")?;
        Some(Self(pairs(rest)))
    }

    fn text(&self, key: &str) -> &str {
        self.0.get(key).map_or("-", String::as_str)
    }

    fn number(&self, key: &str) -> u64 {
        self.0.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// `key=value` pairs separated by spaces.
fn pairs(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// One answer the steady load got.
#[derive(Debug)]
struct Event {
    op: String,
    sent_ms: u128,
    latency_ms: f64,
    status: u16,
    kind: String,
    code: String,
}

impl Event {
    fn parse(line: &str) -> Option<Self> {
        let fields = pairs(line.strip_prefix("event ")?);
        let get = |key: &str| fields.get(key).cloned().unwrap_or_default();
        Some(Self {
            op: get("op"),
            sent_ms: get("sent_ms").parse().ok()?,
            latency_ms: get("latency_ms").parse().ok()?,
            status: get("status").parse().ok()?,
            kind: get("kind"),
            code: get("code"),
        })
    }

    fn answered_ms(&self) -> u128 {
        self.sent_ms + self.latency_ms as u128
    }

    /// An answer the API gives when all is well: created, conflict, or a read.
    fn succeeded(&self) -> bool {
        matches!(self.status, 200 | 201) || (self.status == 409 && self.code == "booking_conflict")
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {} in {:.0} ms",
            self.op, self.status, self.kind, self.code, self.latency_ms
        )
    }
}

fn read_events(path: &Path) -> Result<Vec<Event>> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text.lines().filter_map(Event::parse).collect())
}

fn read_ids(path: &Path) -> Result<Vec<String>> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Waits until the receiver has a `booking.confirmed` for every acknowledged booking (or
/// the deadline passes) and answers how many of them it has.
fn wait_for_deliveries(received: &Path, acked: &[String]) -> u64 {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    loop {
        let text = fs::read_to_string(received).unwrap_or_default();
        let confirmed: HashSet<&str> = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let (_id, event, appointment) = (words.next()?, words.next()?, words.next()?);
                (event == "booking.confirmed").then_some(appointment)
            })
            .collect();
        let delivered = acked
            .iter()
            .filter(|id| confirmed.contains(id.as_str()))
            .count() as u64;
        if delivered == acked.len() as u64 || Instant::now() > deadline {
            return delivered;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `GET /health/ready` every 250 ms for `seconds`: each status with its body.
fn poll_ready(port: u16, seconds: f64) -> Vec<(u16, String)> {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut seen = Vec::new();
    while Instant::now() < end {
        if let Some(answer) = http_get(port, "/health/ready") {
            seen.push(answer);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    seen
}

/// Polls `GET /health/ready` until `done` holds (or `seconds` pass): its status then, and
/// the milliseconds it took.
fn wait_ready_status(
    port: u16,
    done: impl Fn(u16, &str) -> bool,
    seconds: f64,
) -> (Option<u16>, u128) {
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        if let Some((status, body)) = http_get(port, "/health/ready")
            && done(status, &body)
        {
            return (Some(status), started.elapsed().as_millis());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (None, started.elapsed().as_millis())
}

/// `503×12`-style counts of readiness answers, with the statuses in body order.
fn summary(seen: &[(u16, String)]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (status, body) in seen {
        let state = body
            .split(r#""status":""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        *counts.entry(format!("{status}:{state}")).or_default() += 1;
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k}x{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A plain HTTP/1.1 GET on 127.0.0.1: the status and the body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((status, body))
}

/// The last lines of every instance's log, for a failure message.
fn logs_tail(instances: &mut [Instance]) -> String {
    let mut text = String::new();
    for instance in instances.iter_mut() {
        let _ = instance.process.check_alive();
        let _ = write!(
            text,
            "\n--- {} ends with ---\n{}",
            instance.log.display(),
            bench::tail(&instance.log, 15)
        );
    }
    text
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}

fn sleep(seconds: f64) {
    std::thread::sleep(Duration::from_secs_f64(seconds.max(0.0)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_parse() {
        let event = Event::parse(
            "event op=book sent_ms=1700000000000 latency_ms=12.5 status=503 kind=problem code=unavailable",
        )
        .expect("an event line");
        assert_eq!(event.op, "book");
        assert_eq!(event.status, 503);
        assert_eq!(event.answered_ms(), 1_700_000_000_012);
        assert!(!event.succeeded());
    }

    #[test]
    fn a_verdict_with_a_failure_says_why() {
        let mut verdict = Verdict::new("kill");
        verdict.field("lost", 0);
        assert_eq!(verdict.line(), "chaos kill lost=0 ok");
        verdict.expect(false, || "1 booking lost".into());
        assert_eq!(verdict.line(), "chaos kill lost=0 FAILED: 1 booking lost");
    }

    #[test]
    fn the_fuzz_line_counts_what_schemathesis_summed_up() {
        let summary = [
            "Selected: 48/49".to_owned(),
            "Tested: 48".to_owned(),
            "⚠️ Schema validation mismatch: 20 operations mostly rejected generated data"
                .to_owned(),
            "10 generated, 8 passed, 2 failed".to_owned(),
        ];
        assert_eq!(
            fuzz_line(&summary, false),
            "chaos fuzz operations=48 generated=10 passed=8 failed=2 FAILED"
        );
        assert_eq!(
            fuzz_line(&[], true),
            "chaos fuzz operations=? generated=? ok"
        );
    }

    #[test]
    fn quick_is_smaller() {
        let quick = Options::parse(&[OsString::from("--quick")]).expect("valid");
        assert!(quick.quick);
        assert_eq!(quick.storm_requests, 200);
        assert_eq!(quick.profile(), "debug");
        assert_eq!(Options::full().profile(), "release");
    }
}
