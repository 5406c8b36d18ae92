//! The SQL floor of each scenario: a pgbench script (in `xtask/bench/sql`) replaying the
//! fewest statements the scenario's meaning needs — the same tables, constraints, indexes and
//! rows written — against the bench's own seeded PostgreSQL database, at the scenarios'
//! concurrency, right after that scenario's HTTP rows. A scenario's throughput over its
//! floor's says how much of the request's time is more than its SQL.
//!
//! `setup.sql` samples ids, name prefixes and days into the schema `bench_floor` (which the
//! server never reads) and prints the `-D` variables the scripts use; the schema is dropped
//! when the backend's run ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{ADMIN_EMAIL, Options, Pgbench, psql};
use crate::{Result, find_program, workspace_root};

/// Where the scripts live, relative to the workspace.
pub(super) const DIR: &str = "xtask/bench/sql";
/// The database the bench seeds and serves.
pub(super) const DATABASE: &str = "clinicflow_bench";

/// Each scenario's pgbench scripts with their weights. One script run is one operation of the
/// scenario as the load generator counts it: `book-cancel`'s script books and cancels (one
/// operation, two requests); `mixed` draws its three request kinds 3 : 2 : 1, each a run.
pub(super) const SCRIPTS: [(&str, &[(&str, u32)]); 10] = [
    ("patient-by-id", &[("patient-by-id.sql", 1)]),
    ("patient-search", &[("patient-search.sql", 1)]),
    ("appointment-page", &[("appointment-page.sql", 1)]),
    ("slots-30d", &[("slots-30d.sql", 1)]),
    ("first-free-slot", &[("first-free-slot.sql", 1)]),
    ("book-cancel", &[("book-cancel.sql", 1)]),
    ("dashboard", &[("dashboard.sql", 1)]),
    ("me", &[("me.sql", 1)]),
    ("practitioners", &[("practitioners.sql", 1)]),
    (
        "mixed",
        &[
            ("patient-page.sql", 3),
            ("dashboard.sql", 2),
            ("book.sql", 1),
        ],
    ),
];

/// The scripts of `scenario`, as `name@weight` (or `name` alone), for the report.
pub(super) fn describe(scenario: &str) -> String {
    scripts(scenario)
        .iter()
        .map(|(file, weight)| {
            if *weight == 1 && scripts(scenario).len() == 1 {
                format!("`{file}`")
            } else {
                format!("`{file}@{weight}`")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn scripts(scenario: &str) -> &'static [(&'static str, u32)] {
    SCRIPTS
        .iter()
        .find(|(name, _)| *name == scenario)
        .map_or(&[], |(_, scripts)| scripts)
}

/// A PostgreSQL server of the bench: where its programs are and its port.
#[derive(Debug, Clone)]
pub(super) struct Server {
    pub(super) bin: PathBuf,
    pub(super) port: String,
}

/// Ready to run floors: the sample is in place and the scripts' variables known.
#[derive(Debug)]
pub(super) struct Floors {
    pgbench: PathBuf,
    server: Server,
    clients: String,
    defines: Vec<String>,
    warm: String,
    seconds: String,
}

impl Floors {
    /// Checks that every script is there, runs `setup.sql` and reads the variables it prints.
    pub(super) fn setup(options: &Options, server: &Server) -> Result<Self> {
        let dir = workspace_root().join(DIR);
        for (_, files) in SCRIPTS {
            for (file, _) in files {
                if !dir.join(file).is_file() {
                    return Err(format!("{} is missing", dir.join(file).display()).into());
                }
            }
        }
        let pgbench = pgbench_program(&server.bin)?;
        let output = psql_command(&server.bin)?
            .args(["-h", "127.0.0.1", "-p", &server.port, "-U", "postgres"])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-v", &format!("admin_email={ADMIN_EMAIL}")])
            .args(["-d", DATABASE, "-f"])
            .arg(dir.join("setup.sql"))
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "the SQL floors' setup.sql failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let defines: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::trim)
            .filter(|line| line.contains('='))
            .map(str::to_owned)
            .collect();
        for needed in ["clinic=", "actor=", "patients=", "practitioners="] {
            if !defines.iter().any(|d| d.starts_with(needed)) {
                return Err(format!(
                    "the SQL floors' setup.sql printed no {needed}…: is the clinic seeded?"
                )
                .into());
            }
        }
        Ok(Self {
            pgbench,
            server: server.clone(),
            clients: options
                .concurrency
                .split(',')
                .next()
                .unwrap_or("16")
                .trim()
                .to_owned(),
            defines,
            warm: (options.warmup.ceil() as u64).to_string(),
            seconds: (options.duration.ceil() as u64).max(1).to_string(),
        })
    }

    /// Runs `scenario`'s floor: a warm-up, then one measured pgbench run.
    pub(super) fn run(&self, scenario: &str) -> Result<Pgbench> {
        let dir = workspace_root().join(DIR);
        let files = scripts(scenario);
        if files.is_empty() {
            return Err(format!("no SQL floor for {scenario}").into());
        }
        let mut workload = Vec::new();
        for (file, weight) in files {
            workload.push("-f".to_owned());
            workload.push(format!("{}@{weight}", dir.join(file).display()));
        }
        for define in &self.defines {
            workload.push("-D".to_owned());
            workload.push(define.clone());
        }
        pgbench_run(
            &self.pgbench,
            &self.server.port,
            DATABASE,
            format!("SQL floor of {scenario}"),
            &workload,
            &self.clients,
            &self.warm,
            &self.seconds,
        )
    }

    /// Drops the sample; the rows the floors wrote stay, as the scenarios' do.
    pub(super) fn teardown(self) -> Result<()> {
        psql(
            &self.server.bin,
            &self.server.port,
            DATABASE,
            "DROP SCHEMA bench_floor CASCADE",
        )
    }
}

/// pgbench next to initdb, else on `PATH`.
pub(super) fn pgbench_program(bin: &Path) -> Result<PathBuf> {
    Ok(Some(bin.join("pgbench"))
        .filter(|p| crate::is_executable(p))
        .or_else(|| find_program("pgbench", &[]))
        .ok_or("pgbench not found next to initdb or on PATH (it ships with PostgreSQL)")?)
}

/// psql next to initdb, else on `PATH`.
fn psql_command(bin: &Path) -> Result<Command> {
    let psql = Some(bin.join("psql"))
        .filter(|p| crate::is_executable(p))
        .or_else(|| find_program("psql", &[]))
        .ok_or("psql not found next to initdb or on PATH")?;
    Ok(Command::new(psql))
}

/// A pgbench workload on `database` at `clients` clients, prepared statements: `warm` seconds
/// unmeasured (like the scenarios' warm-up), then `seconds` measured, parsed.
#[allow(clippy::too_many_arguments)]
pub(super) fn pgbench_run(
    pgbench: &Path,
    port: &str,
    database: &str,
    what: String,
    workload: &[String],
    clients: &str,
    warm: &str,
    seconds: &str,
) -> Result<Pgbench> {
    eprintln!("cargo xtask bench: pgbench {what}");
    let connection = ["-h", "127.0.0.1", "-p", port, "-U", "postgres"];
    let common = ["-n", "-M", "prepared", "-c", clients, "-j", "2"];
    if warm != "0" {
        let _ = Command::new(pgbench)
            .args(connection)
            .args(workload)
            .args(common)
            .args(["-T", warm])
            .arg(database)
            .stdin(Stdio::null())
            .output()?;
    }
    let output = Command::new(pgbench)
        .args(connection)
        .args(workload)
        .args(common)
        .args(["-T", seconds])
        .arg(database)
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "pgbench {what} failed: {}{text}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let result = parse_pgbench(what, &text)?;
    eprintln!(
        "  {}: {:.0} tps, latency average {:.3} ms",
        result.what, result.tps, result.latency_ms
    );
    Ok(result)
}

/// Reads tps, mean latency and failed transactions from pgbench's report.
pub(super) fn parse_pgbench(what: String, text: &str) -> Result<Pgbench> {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    Ok(Pgbench {
        tps: field("tps = ").ok_or_else(|| format!("no tps in pgbench's output:\n{text}"))?,
        latency_ms: field("latency average = ").unwrap_or(0.0),
        failed: field("number of failed transactions: ").unwrap_or(0.0) as u64,
        what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_a_floor_and_every_script_is_committed() {
        let dir = workspace_root().join(DIR);
        for (name, _) in super::super::SCENARIOS {
            let files = scripts(name);
            assert!(!files.is_empty(), "{name} has no SQL floor");
            for (file, weight) in files {
                assert!(*weight > 0, "{name}: {file} has weight 0");
                assert!(dir.join(file).is_file(), "{name}: {file} is not committed");
            }
        }
        assert!(dir.join("setup.sql").is_file());
    }

    #[test]
    fn the_mixed_floor_draws_its_requests_as_the_scenario_does() {
        assert_eq!(
            describe("mixed"),
            "`patient-page.sql@3` `dashboard.sql@2` `book.sql@1`"
        );
        assert_eq!(describe("book-cancel"), "`book-cancel.sql`");
    }

    #[test]
    fn pgbench_reports_parse() {
        let report = "transaction type: multiple scripts\nnumber of failed transactions: 2 (0.1%)\n\
                      latency average = 1.234 ms\ninitial connection time = 3.1 ms\n\
                      tps = 12961.512345 (without initial connection time)\n";
        let parsed = parse_pgbench("x".into(), report).expect("a report");
        assert_eq!(parsed.tps, 12961.512345);
        assert_eq!(parsed.latency_ms, 1.234);
        assert_eq!(parsed.failed, 2);
        assert!(parse_pgbench("x".into(), "nothing").is_err());
    }
}
