//! `fuzz`: a property-based fuzz of the whole HTTP API from its own OpenAPI document, and a
//! walk through it with a client generated from that document.
//!
//! Installs a pinned schemathesis and a pinned openapi-python-client into a virtual environment
//! under the target directory (kept between runs, so a re-run downloads nothing), builds the
//! server, seeds the demo clinic into a fresh SQLite database and serves it on a free loopback
//! port. It then generates a Python client from `/api/v1/openapi.json` and runs
//! `xtask/fuzz/walkthrough.py` with it, unchanged (login, patient, slots, booking, every status
//! move without a body); and runs schemathesis against the document as the seeded admin
//! (`xtask/fuzz/hooks.py` logs in), every check on, the stateful phase included. A failed
//! walk, any 5xx, any answer the document does not describe, or any other check that fails
//! fails the run.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use crate::bench::{free_port, random_hex, serve, target_dir};
use crate::{Result, cargo, services, status_of, warn, workspace_root};

/// The schemathesis release the run is pinned to; the venv is rebuilt when this changes.
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// The openapi-python-client release the walk-through's client is generated with.
const CLIENT_GENERATOR_VERSION: &str = "0.29.1";
/// What every response is checked for: every check schemathesis has.
const CHECKS: &str = "all";
/// Checks left out, each justified in docs/operations.md ("The API fuzz"): a schema-valid
/// request may be refused by a rule that needs state (a slot in the past or already taken, a
/// stale `If-Match`, a cursor the server did not hand out), which no schema can express.
const EXCLUDED_CHECKS: [&str; 1] = ["positive_data_acceptance"];
/// Operations left out: the live board is an endless Server-Sent Events stream, which a
/// request-response fuzzer can only time out on.
const EXCLUDED_OPERATIONS: [&str; 1] = ["queue_stream"];
/// The seed's admin (demo data only), whom the hooks log in as.
const ADMIN_EMAIL: &str = "admin@demo-clinic.example";
/// Its password.
const ADMIN_PASSWORD: &str = "demo-admin-password";
/// Examples per operation and phase for `--quick` and for a full run.
const QUICK_EXAMPLES: u32 = 20;
const FULL_EXAMPLES: u32 = 200;

/// What to run, from the command line.
#[derive(Debug)]
struct Options {
    max_examples: u32,
    build: bool,
    /// Passed on to `schemathesis run` (after `--`).
    extra: Vec<OsString>,
}

impl Options {
    fn parse(args: &[OsString]) -> Result<Self> {
        let mut options = Self {
            max_examples: FULL_EXAMPLES,
            build: true,
            extra: Vec::new(),
        };
        let mut explicit = None;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.to_str() {
                Some("--quick") => options.max_examples = QUICK_EXAMPLES,
                Some("--no-build") => options.build = false,
                Some("--max-examples") => {
                    let raw = args
                        .next()
                        .and_then(|v| v.to_str())
                        .ok_or("fuzz: --max-examples needs a number")?;
                    let n =
                        raw.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                            format!("fuzz: --max-examples: {raw:?} is not 1 or more")
                        })?;
                    explicit = Some(n);
                }
                Some("--") => {
                    options.extra = args.cloned().collect();
                    break;
                }
                _ => return Err(format!("fuzz: unexpected argument {arg:?}").into()),
            }
        }
        // An explicit count wins over `--quick`, whichever comes first.
        if let Some(n) = explicit {
            options.max_examples = n;
        }
        Ok(options)
    }
}

/// `fuzz`: prepares schemathesis and a seeded server, runs the fuzz, reports.
pub fn run(args: &[OsString]) -> Result<ExitCode> {
    execute(args).map(|(code, _)| code)
}

/// Runs the fuzz as [`run`] does, and also returns schemathesis' summary lines.
pub fn execute(args: &[OsString]) -> Result<(ExitCode, Vec<String>)> {
    let options = Options::parse(args)?;
    let started = Instant::now();
    let root = workspace_root();
    let work = target_dir(&root).join("fuzz");
    fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let venv = work.join("venv");
    let schemathesis = ensure_tools(&venv)?;

    if options.build {
        eprintln!("cargo xtask fuzz: cargo build -p clinicflow");
        let status = status_of(cargo().args(["build", "-p", "clinicflow"]))?;
        if !status.success() {
            return Ok((crate::exit_code(status), Vec::new()));
        }
    }
    let server = target_dir(&root).join("debug").join("clinicflow");
    if !server.exists() {
        return Err(format!("{} is missing: run without --no-build", server.display()).into());
    }

    let scratch = services::create_temp_dir()?;
    let outcome = fuzz(&options, &server, &venv, &schemathesis, &scratch, &work);
    if let Err(error) = fs::remove_dir_all(&scratch) {
        warn(format_args!("cannot remove {}: {error}", scratch.display()));
    }
    let (status, summary) = outcome?;
    let verdict = if status.success() { "passed" } else { "FAILED" };
    eprintln!(
        "cargo xtask fuzz: {verdict}: schemathesis {SCHEMATHESIS_VERSION}, up to {} examples \
         per operation and phase, in {:.0} s; the server's log is {}",
        options.max_examples,
        started.elapsed().as_secs_f64(),
        work.join("server.log").display()
    );
    for line in &summary {
        eprintln!("  {line}");
    }
    Ok((crate::exit_code(status), summary))
}

/// Whether `program --version` prints `version`.
fn has_version(program: &Path, version: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(version))
}

/// The venv's `schemathesis`, installing the pinned versions of it and of the client generator
/// unless they are there already.
fn ensure_tools(venv: &Path) -> Result<PathBuf> {
    let program = venv.join("bin").join("schemathesis");
    let generator = venv.join("bin").join("openapi-python-client");
    if has_version(&program, &format!("version {SCHEMATHESIS_VERSION}"))
        && has_version(&generator, CLIENT_GENERATOR_VERSION)
    {
        return Ok(program);
    }
    let python = venv.join("bin").join("python");
    if !python.exists() {
        eprintln!("cargo xtask fuzz: python3 -m venv {}", venv.display());
        let status = status_of(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
        if !status.success() {
            return Err(
                format!("python3 -m venv failed ({status}); is python3-venv installed?").into(),
            );
        }
    }
    let pins = [
        format!("schemathesis=={SCHEMATHESIS_VERSION}"),
        format!("openapi-python-client=={CLIENT_GENERATOR_VERSION}"),
    ];
    eprintln!("cargo xtask fuzz: pip install {}", pins.join(" "));
    let status = status_of(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&pins),
    )?;
    if !status.success() {
        return Err(format!("pip install {} failed ({status})", pins.join(" ")).into());
    }
    Ok(program)
}

/// The server with the fuzz's configuration: rate limits and the account lock far out of the
/// way (the fuzzer sends thousands of requests as one user and logs in with random passwords,
/// which would otherwise end in 429s and a locked admin), day-long access tokens, and no
/// outbox delivery, so webhook URLs the fuzzer sets are never called.
fn server_command(server: &Path, url: &str) -> Command {
    let mut command = Command::new(server);
    command
        .env("DATABASE_URL", url)
        .env("CLINICFLOW_PROFILE", "production")
        .env("CLINICFLOW_JWT_SECRET", random_hex(32))
        // Production wants /metrics protected: the fuzzer meets its documented 401.
        .env("CLINICFLOW_METRICS_TOKEN", random_hex(32))
        .env("CLINICFLOW_HTTP_PER_USER_PER_HOUR", "1000000000")
        .env("CLINICFLOW_HTTP_PER_IP_PER_HOUR", "1000000000")
        .env("CLINICFLOW_AUTH_LOGIN_PER_IP_PER_MINUTE", "1000000")
        .env("CLINICFLOW_AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE", "1000000")
        .env("CLINICFLOW_AUTH_LOCKOUT_FAILURES", "1000000")
        .env("CLINICFLOW_AUTH_ACCESS_TOKEN_TTL_SECS", "86400")
        .env("CLINICFLOW_OUTBOX_POLL_INTERVAL_MS", "86400000")
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG");
    command
}

/// Seeds and serves a database in `scratch`, runs schemathesis against it, and returns its
/// status and the lines of its summary.
fn fuzz(
    options: &Options,
    server: &Path,
    venv: &Path,
    schemathesis: &Path,
    scratch: &Path,
    work: &Path,
) -> Result<(std::process::ExitStatus, Vec<String>)> {
    let url = format!("sqlite://{}?mode=rwc", scratch.join("fuzz.db").display());
    let log_path = work.join("server.log");
    let log = fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;

    eprintln!("cargo xtask fuzz: seeding the demo clinic");
    let seed = server_command(server, &url)
        .args(["seed", "--patients", "50"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.try_clone()?)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", server.display()))?;
    if !seed.success() {
        return Err(format!(
            "clinicflow seed failed ({seed}); see {}",
            log_path.display()
        )
        .into());
    }

    let port = free_port()?;
    let mut process = serve(
        server_command(server, &url),
        port,
        log,
        &log_path,
        "/health/ready",
    )?;

    let base = format!("http://127.0.0.1:{port}");
    let walked = walkthrough(venv, &base, scratch);
    let walked = match walked {
        Ok(status) if status.success() => status,
        other => {
            process.stop();
            return other.map(|status| (status, vec![format!("❌ walkthrough failed ({status})")]));
        }
    };
    eprintln!("cargo xtask fuzz: the generated client's walk-through passed ({walked})");
    let mut command = Command::new(schemathesis);
    command
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &options.max_examples.to_string()])
        // One worker: the server shares two cores with it anyway, and parallel workers tripped
        // a thread-safety error in schemathesis' coverage phase on Python 3.11.
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .arg("--no-color");
    for operation in EXCLUDED_OPERATIONS {
        command.args(["--exclude-operation-id", operation]);
    }
    if !EXCLUDED_CHECKS.is_empty() {
        command.args(["--exclude-checks", &EXCLUDED_CHECKS.join(",")]);
    }
    command
        .args(&options.extra)
        .current_dir(work)
        .env(
            "SCHEMATHESIS_HOOKS",
            workspace_root().join("xtask/fuzz/hooks.py"),
        )
        .env("CLINICFLOW_FUZZ_BASE_URL", &base)
        .env("CLINICFLOW_FUZZ_EMAIL", ADMIN_EMAIL)
        .env("CLINICFLOW_FUZZ_PASSWORD", ADMIN_PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    eprintln!(
        "cargo xtask fuzz: schemathesis run {base}/api/v1/openapi.json (checks {CHECKS}; up to {} \
         examples per operation)",
        options.max_examples
    );
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", schemathesis.display()))?;
    let mut summary = Vec::new();
    let mut in_summary = false;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            in_summary |= line.contains(" SUMMARY ");
            if in_summary && is_summary_line(&line) {
                summary.push(line.trim().to_owned());
            }
        }
    }
    let status = child.wait()?;
    process.stop();
    Ok((status, summary))
}

/// Generates a Python client from the served document with openapi-python-client and runs
/// `xtask/fuzz/walkthrough.py` with it as the seeded admin. The generator's warnings fail the
/// walk as its errors do: a piece it leaves out is a piece of the document a client cannot use.
fn walkthrough(venv: &Path, base: &str, scratch: &Path) -> Result<std::process::ExitStatus> {
    let bin = venv.join("bin");
    // The generator formats its output with the venv's ruff.
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let client = scratch.join("client");
    fs::create_dir_all(&client)?;
    let package = client.join("clinicflow_client");
    let document = format!("{base}/api/v1/openapi.json");
    eprintln!(
        "cargo xtask fuzz: openapi-python-client {CLIENT_GENERATOR_VERSION} generate --url {document}"
    );
    let generated = Command::new(bin.join("openapi-python-client"))
        .args([
            "generate",
            "--url",
            &document,
            "--meta",
            "none",
            "--output-path",
        ])
        .arg(&package)
        .env("PATH", &path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openapi-python-client: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    eprint!("{said}");
    if !generated.status.success() {
        return Ok(generated.status);
    }
    if said.contains("Warning") || said.contains("WARNING") {
        return Err("openapi-python-client warned about the document (above)".into());
    }
    eprintln!("cargo xtask fuzz: walkthrough.py with the generated client");
    let status = Command::new(bin.join("python"))
        .arg(workspace_root().join("xtask/fuzz/walkthrough.py"))
        .env("PYTHONPATH", &client)
        .env("CLINICFLOW_FUZZ_BASE_URL", base)
        .env("CLINICFLOW_FUZZ_EMAIL", ADMIN_EMAIL)
        .env("CLINICFLOW_FUZZ_PASSWORD", ADMIN_PASSWORD)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run walkthrough.py: {e}"))?;
    Ok(status)
}

/// The lines of schemathesis' summary worth repeating: operations, test cases, failures and
/// the closing tally.
fn is_summary_line(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("Tested:")
        || line.starts_with("Selected:")
        || line.contains(" generated")
        || ["✅", "❌", "🚫", "⚠️"]
            .iter()
            .any(|mark| line.starts_with(mark))
        || (line.starts_with('=') && line.ends_with('=') && line.contains(" in "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        Options::parse(&args).expect("valid arguments")
    }

    #[test]
    fn quick_and_an_explicit_count_combine_with_the_count_winning() {
        assert_eq!(parse(&[]).max_examples, FULL_EXAMPLES);
        assert_eq!(parse(&["--quick"]).max_examples, QUICK_EXAMPLES);
        assert_eq!(parse(&["--max-examples", "7", "--quick"]).max_examples, 7);
        let options = parse(&["--quick", "--", "--include-tag", "patient"]);
        assert_eq!(options.extra, ["--include-tag", "patient"]);
    }

    #[test]
    fn a_zero_or_missing_count_is_refused() {
        for args in [
            &["--max-examples", "0"][..],
            &["--max-examples"],
            &["--slow"],
        ] {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            assert!(Options::parse(&args).is_err(), "{args:?}");
        }
    }
}
