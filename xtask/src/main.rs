//! `cargo xtask`: clinicflow's developer and CI tasks, written in Rust instead
//! of shell scripts (matklad's cargo-xtask). It starts throwaway PostgreSQL and
//! Redis servers for development (`db-up`) and for the test suites (`test`),
//! runs the whole CI gate (`ci`: fmt, clippy, tests with required services),
//! runs the HTTP load benchmark (`bench`, which drives the workspace's
//! `clinicflow-loadgen` binary as a separate process), and forwards `migrate`,
//! `seed` and `demo` to the server binary. It depends on the standard library
//! only and never on the workspace's own crates, so it builds even when they
//! do not; its tidy test checks the architecture rules of
//! `docs/architecture.md` on the crates' manifests.

mod bench;
mod chaos;
mod fuzz;
mod postgres;
mod redis;
mod services;
#[cfg(test)]
mod tidy;
mod watchdog;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use services::{Requirement, Services};

/// Error type of every task: a message for the developer.
pub type Error = Box<dyn std::error::Error>;
/// Result of every task.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The help text.
const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  db-up [--port N] [--redis-port N]
        start a throwaway PostgreSQL (and Redis when redis-server exists) on
        127.0.0.1, print DATABASE_URL / REDIS_URL, stop them on Ctrl-C
  test [--require-services] [--no-chaos] [-- ARGS...]
        start PostgreSQL and Redis on free ports, run the workspace's tests
        (cargo nextest when installed, else cargo test), stop the servers;
        --require-services turns a missing server into an error; then, when
        both servers ran and no runner ARGS narrowed the run, `chaos --quick`
        (its last scenario is `fuzz --quick`; --no-chaos skips it)
  ci    cargo fmt --check, cargo clippy -D warnings, then test --require-services
  bench [--quick] [--patients N] [--appointments N] [--duration S] ...
        HTTP load on SQLite and PostgreSQL (release server, clinicflow-loadgen)
        with the actix-web and pgbench ceilings, each scenario's SQL floor
        (xtask/bench/sql) and open-loop capacity (p99 < 10 ms) and a chart;
        writes docs/benchmarks.md. --scenarios A,B, --backends sqlite|postgres,
        --warmup S, --output FILE, --server PATH (bench another clinicflow
        binary), --cross-check (the GET scenarios through wrk too),
        --no-floors, --no-capacity, --no-charts, --no-build; the live-board
        scenario opens --subscribers N streams (default 10000), one change
  fuzz [--quick] [--max-examples N] [--no-build] [-- SCHEMATHESIS-ARGS...]
        schemathesis (pinned, in a venv under the target dir) against a seeded
        server on SQLite: fails on any 5xx or answer the OpenAPI document omits
  chaos [--quick] [--requests N] [--duration S] [--outage S] [--no-build]
        fault injection on real servers (release; --quick: debug build, smaller):
        booking storms (one of them retried with one Idempotency-Key) over 3
        instances on PostgreSQL and 1 on SQLite, SIGKILL under load, PostgreSQL
        restarted and Redis stopped under load, then the fuzz; one line per
        scenario, non-zero exit when any expectation fails
  migrate [--database-url URL]
  seed [--patients N] [--practitioners N] [--database-url URL]
  demo  the server's own commands, run as
        `cargo run --release -p clinicflow -- <command> ARGS...`
";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "cargo xtask: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Dispatches the command line to a task and returns the process exit code.
fn run(args: Vec<OsString>) -> Result<ExitCode> {
    let mut args = args.into_iter();
    let Some(command) = args.next() else {
        eprint!("{USAGE}");
        return Ok(ExitCode::from(2));
    };
    let rest: Vec<OsString> = args.collect();
    match command.to_str() {
        Some("db-up") => db_up(&rest),
        Some("test") => {
            let (flags, runner_args) = parse_test_args(&rest)?;
            test(&flags, &runner_args)
        }
        Some("ci") => {
            if let Some(arg) = rest.first() {
                return Err(format!("`ci` takes no arguments, got {arg:?}").into());
            }
            ci()
        }
        Some(server_command @ ("migrate" | "seed" | "demo")) => server(server_command, &rest),
        Some("bench") => bench::run(&rest),
        Some("fuzz") => fuzz::run(&rest),
        Some("chaos") => chaos::run(&rest),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(watchdog::COMMAND) => watchdog::run(&rest).map(|()| ExitCode::SUCCESS),
        _ => {
            eprint!("unknown command {command:?}\n\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

/// `db-up`: runs PostgreSQL (required) and Redis (when installed) until killed.
fn db_up(args: &[OsString]) -> Result<ExitCode> {
    let mut postgres_port = None;
    let mut redis_port = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--port") => postgres_port = Some(parse_port(args.next(), "--port")?),
            Some("--redis-port") => redis_port = Some(parse_port(args.next(), "--redis-port")?),
            _ => return Err(format!("db-up: unexpected argument {arg:?}\n\n{USAGE}").into()),
        }
    }
    let mut services = Services::start(&services::Options {
        postgres: Requirement::Required,
        // Redis is optional unless asked for on a given port.
        redis: if redis_port.is_some() {
            Requirement::Required
        } else {
            Requirement::Optional
        },
        postgres_port,
        redis_port,
    })?;
    let mut stdout = std::io::stdout().lock();
    if let Some(url) = services.postgres_url() {
        writeln!(stdout, "DATABASE_URL={url}")?;
    }
    if let Some(url) = services.redis_url() {
        writeln!(stdout, "REDIS_URL={url}")?;
    }
    stdout.flush()?;
    drop(stdout);
    eprintln!(
        "cargo xtask db-up: servers run in {}; press Ctrl-C (or send SIGTERM) to stop them",
        services.dir().display()
    );
    loop {
        std::thread::sleep(Duration::from_millis(500));
        services.check_alive()?;
    }
}

/// Parses the value following a `--port`-like flag.
fn parse_port(value: Option<&OsString>, flag: &str) -> Result<u16> {
    let value = value.ok_or_else(|| format!("{flag} needs a port number"))?;
    value
        .to_str()
        .and_then(|text| text.parse::<u16>().ok())
        .filter(|port| *port != 0)
        .ok_or_else(|| format!("{flag}: {value:?} is not a port number (1-65535)").into())
}

/// `test`'s flags.
#[derive(Debug, Default, PartialEq, Eq)]
struct TestFlags {
    require_services: bool,
    no_chaos: bool,
}

/// Splits `test`'s arguments into its flags and the runner's arguments.
fn parse_test_args(args: &[OsString]) -> Result<(TestFlags, Vec<OsString>)> {
    let mut flags = TestFlags::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--require-services") => flags.require_services = true,
            Some("--no-chaos") => flags.no_chaos = true,
            Some("--") => return Ok((flags, args.cloned().collect())),
            _ => {
                return Err(format!(
                    "test: unexpected argument {arg:?}; pass test-runner arguments after `--`\n\n{USAGE}"
                )
                .into());
            }
        }
    }
    Ok((flags, Vec::new()))
}

/// `test`: starts the services, runs every test suite, stops the services, then runs the
/// quick chaos suite when both servers were there.
fn test(flags: &TestFlags, runner_args: &[OsString]) -> Result<ExitCode> {
    let require_services = flags.require_services;
    let requirement = if require_services {
        Requirement::Required
    } else {
        Requirement::Optional
    };
    let services = Services::start(&services::Options {
        postgres: requirement,
        redis: requirement,
        postgres_port: None,
        redis_port: None,
    })?;

    let nextest = has_nextest();
    let mut runner = cargo();
    if nextest {
        runner.args(["nextest", "run"]);
    } else {
        runner.arg("test");
    }
    runner
        .args(["--workspace", "--no-fail-fast"])
        .args(runner_args);
    match services.postgres_url() {
        Some(url) => runner.env("CLINICFLOW_TEST_PG_URL", url),
        None => runner.env_remove("CLINICFLOW_TEST_PG_URL"),
    };
    match services.postgres_ssl_root_cert() {
        Some(cert) => runner.env("CLINICFLOW_TEST_PG_SSLROOTCERT", cert),
        None => runner.env_remove("CLINICFLOW_TEST_PG_SSLROOTCERT"),
    };
    match services.redis_url() {
        Some(url) => runner.env("CLINICFLOW_TEST_REDIS_URL", url),
        None => runner.env_remove("CLINICFLOW_TEST_REDIS_URL"),
    };
    if require_services {
        runner.env("CLINICFLOW_REQUIRE_SERVICES", "1");
    }
    // Every skipped test appends a line here (`clinicflow_store::testing::record_skip`), so
    // the run ends by saying how many tests did not really run, and why.
    let skip_log =
        std::env::temp_dir().join(format!("clinicflow-skips-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&skip_log);
    runner.env("CLINICFLOW_SKIP_LOG", &skip_log);

    eprintln!(
        "cargo xtask test: {}; runner: {}",
        services.summary(),
        if nextest {
            "cargo nextest"
        } else {
            "cargo test"
        }
    );
    let status = status_of(&mut runner)?;
    let both_ran = services.postgres_url().is_some() && services.redis_url().is_some();
    drop(services);
    let skips = std::fs::read_to_string(&skip_log).unwrap_or_default();
    let _ = std::fs::remove_file(&skip_log);
    eprintln!("cargo xtask test: {}", skip_summary(&skips));
    if !status.success() {
        return Ok(exit_code(status));
    }
    // A filtered run is someone iterating on a few tests: no chaos suite or fuzz for them.
    if flags.no_chaos || !runner_args.is_empty() || !both_ran {
        if !flags.no_chaos && runner_args.is_empty() {
            eprintln!("cargo xtask test: chaos --quick skipped (it needs PostgreSQL and Redis)");
        }
        return Ok(exit_code(status));
    }
    // Its last scenario is the quick fuzz: the Rust regression tests keep what the fuzz found,
    // and each run looks for new cases.
    eprintln!("cargo xtask test: cargo xtask chaos --quick");
    chaos::run(&[OsString::from("--quick")])
}

/// One line saying how many tests were skipped and why, from the lines of the skip log
/// (`skipped: <test>: <reason>`).
fn skip_summary(log: &str) -> String {
    let mut reasons: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    let mut total = 0;
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("skipped: ") else {
            continue;
        };
        let reason = rest.split_once(": ").map_or(rest, |(_, reason)| reason);
        *reasons.entry(reason).or_default() += 1;
        total += 1;
    }
    if total == 0 {
        return "no test was skipped".to_owned();
    }
    let reasons: Vec<String> = reasons
        .into_iter()
        .map(|(reason, count)| format!("{count} for {reason}"))
        .collect();
    format!(
        "{total} tests were SKIPPED, not passed: {}; run with the missing servers installed \
         (or --require-services) to run them",
        reasons.join(", ")
    )
}

/// `ci`: the whole gate; if it passes locally, CI is green.
fn ci() -> Result<ExitCode> {
    let steps: [(&str, &[&str]); 2] = [
        (
            "cargo fmt --all -- --check",
            &["fmt", "--all", "--", "--check"],
        ),
        (
            "cargo clippy --workspace --all-targets -- -D warnings",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ];
    for (name, args) in steps {
        eprintln!("cargo xtask ci: {name}");
        let status = status_of(cargo().args(args))?;
        if !status.success() {
            eprintln!("cargo xtask ci: `{name}` failed");
            return Ok(exit_code(status));
        }
    }
    eprintln!("cargo xtask ci: cargo xtask test --require-services");
    let flags = TestFlags {
        require_services: true,
        no_chaos: false,
    };
    test(&flags, &[])
}

/// `migrate`, `seed`, `demo`: forwarded to the server binary.
fn server(command: &str, args: &[OsString]) -> Result<ExitCode> {
    let status = status_of(
        cargo()
            .args(["run", "--release", "-p", "clinicflow", "--", command])
            .args(args),
    )?;
    Ok(exit_code(status))
}

/// Whether `cargo nextest` is installed.
fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A `cargo` command (the one running us, if known) in the workspace root.
fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root());
    command
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Runs a command to completion with inherited stdio.
fn status_of(command: &mut Command) -> Result<ExitStatus> {
    command
        .status()
        .map_err(|error| format!("cannot run {:?}: {error}", command.get_program()).into())
}

/// Prints a warning; unlike `eprintln!`, never panics when stderr is gone (clean-up paths).
fn warn(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "warning: {message}");
}

/// The first executable called `name` on `PATH`, else in one of `extra_dirs`.
fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a file (after symlinks) with an execute bit.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// The exit code that passes on a child's status (128 + signal when killed).
fn exit_code(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

#[cfg(test)]
mod skip_summary_tests {
    use super::skip_summary;

    #[test]
    fn skips_are_counted_by_reason() {
        let log = "skipped: postgres::a: no PostgreSQL (X is not set)\n\
                   skipped: postgres::b: no PostgreSQL (X is not set)\n\
                   skipped: redis_x: no Redis (Y is not set)\n";
        let summary = skip_summary(log);
        assert!(summary.starts_with("3 tests were SKIPPED"), "{summary}");
        assert!(
            summary.contains("2 for no PostgreSQL (X is not set)"),
            "{summary}"
        );
        assert!(
            summary.contains("1 for no Redis (Y is not set)"),
            "{summary}"
        );
        assert_eq!(skip_summary(""), "no test was skipped");
    }
}
