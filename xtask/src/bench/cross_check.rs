//! `--cross-check`: the GET scenarios once more with `wrk`, a second load generator that
//! shares no code with `clinicflow-loadgen`, at the same concurrency and duration, so a
//! throughput limited by our own generator shows up as a disagreement.
//!
//! wrk cannot log in or sample ids, so `clinicflow-loadgen paths` does both and prints a
//! bearer token and random request paths; a small Lua script sends them in random order.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{ADMIN_EMAIL, ADMIN_PASSWORD, Options, random_hex};
use crate::{Result, find_program};

/// Paths the script picks from.
const PATHS: usize = 2_000;

/// The scenarios that are one GET each; wrk sends those only.
const GETS: [&str; 6] = [
    "patient-by-id",
    "patient-search",
    "appointment-page",
    "slots-30d",
    "first-free-slot",
    "dashboard",
];

/// Whether wrk can send `scenario`.
pub(super) fn is_get(scenario: &str) -> bool {
    GETS.contains(&scenario)
}

/// One scenario measured by both generators, closed loop at the same concurrency.
#[derive(Debug, Clone)]
pub(super) struct Agreement {
    pub(super) scenario: &'static str,
    /// clinicflow-loadgen's closed-loop throughput.
    pub(super) loadgen: f64,
    /// wrk's requests per second.
    pub(super) wrk: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    /// Answers that were not 2xx or 3xx.
    pub(super) failed: u64,
}

/// The wrk program.
#[derive(Debug)]
pub(super) struct Wrk(PathBuf);

impl Wrk {
    /// Finds wrk on `PATH`; says so when it is missing.
    pub(super) fn find() -> Option<Self> {
        let found = find_program("wrk", &["/usr/bin", "/usr/local/bin"]).map(Self);
        if found.is_none() {
            crate::warn(
                "--cross-check: wrk is not installed (Debian: apt-get install wrk); \
                 the generator agreement is skipped",
            );
        }
        found
    }

    /// Runs `scenario` with wrk against `base_url` (a warm-up, then the measured run).
    pub(super) fn check(
        &self,
        options: &Options,
        loadgen: &Path,
        base_url: &str,
        scenario: &'static str,
        loadgen_throughput: f64,
    ) -> Result<Agreement> {
        eprintln!("cargo xtask bench: wrk {scenario} (cross-check)");
        let output = Command::new(loadgen)
            .args(["paths", "--base-url", base_url, "--scenario", scenario])
            .args(["--count", &PATHS.to_string()])
            .args(["--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()?;
        if !output.status.success() {
            return Err(format!("clinicflow-loadgen paths failed ({})", output.status).into());
        }
        let script = lua_script(&String::from_utf8_lossy(&output.stdout))?;
        self.measure(options, base_url, scenario, loadgen_throughput, &script)
    }

    /// The bare handler's `GET /json` with wrk, so the GET scenarios' wrk throughputs have a
    /// ceiling measured by the same generator.
    pub(super) fn ceiling(
        &self,
        options: &Options,
        base_url: &str,
        loadgen_throughput: f64,
    ) -> Result<Agreement> {
        eprintln!("cargo xtask bench: wrk ceiling (cross-check)");
        let script = lua_script("path /json\n")?;
        self.measure(options, base_url, "ceiling", loadgen_throughput, &script)
    }

    /// A warm-up, then the measured run, of `script` against `base_url`.
    fn measure(
        &self,
        options: &Options,
        base_url: &str,
        scenario: &'static str,
        loadgen_throughput: f64,
        script: &str,
    ) -> Result<Agreement> {
        let path = std::env::temp_dir().join(format!("clinicflow-wrk-{}.lua", random_hex(6)));
        fs::write(&path, script)?;
        let run = |seconds: f64| {
            Command::new(&self.0)
                .args(["-t", "1", "-c", options.clients()])
                .args(["-d", &format!("{}s", seconds.ceil().max(1.0))])
                .arg("--latency")
                .arg("-s")
                .arg(&path)
                .arg(base_url)
                .stdin(Stdio::null())
                .output()
        };
        let outcome = (|| {
            if options.warmup > 0.0 {
                run(options.warmup)?;
            }
            let measured = run(options.duration)?;
            let report = String::from_utf8_lossy(&measured.stdout);
            if !measured.status.success() {
                return Err(format!(
                    "wrk failed ({}): {}{report}",
                    measured.status,
                    String::from_utf8_lossy(&measured.stderr)
                )
                .into());
            }
            parse_report(scenario, loadgen_throughput, &report)
        })();
        let _ = fs::remove_file(&path);
        outcome
    }
}

/// The Lua script sending the paths of `paths_output` (`path …` lines) in random order, with
/// the bearer token of its `token …` line when it has one.
fn lua_script(paths_output: &str) -> Result<String> {
    let mut token = None;
    let mut paths = Vec::new();
    for line in paths_output.lines() {
        if let Some(t) = line.strip_prefix("token ") {
            token = Some(t.trim());
        } else if let Some(p) = line.strip_prefix("path ") {
            paths.push(p.trim());
        }
    }
    if paths.is_empty() {
        return Err("clinicflow-loadgen paths printed no path".into());
    }
    // Lua string literals: nothing the API's paths or a JWT contain needs escaping.
    let plain = |s: &str| !s.contains(['"', '\\', '\n']);
    if !token.is_none_or(plain) || !paths.iter().all(|p| plain(p)) {
        return Err("a path or the token holds a quote or backslash".into());
    }
    let mut script = String::from("local paths = {\n");
    for path in &paths {
        let _ = writeln!(script, "  \"{path}\",");
    }
    let _ = writeln!(script, "}}");
    if let Some(token) = token {
        let _ = writeln!(
            script,
            "wrk.headers[\"Authorization\"] = \"Bearer {token}\""
        );
    }
    script.push_str(
        "request = function()\n  return wrk.format(\"GET\", paths[math.random(#paths)])\nend\n",
    );
    Ok(script)
}

/// Reads requests per second, p50, p99 and failed answers from wrk's `--latency` report.
fn parse_report(scenario: &'static str, loadgen: f64, report: &str) -> Result<Agreement> {
    let after = |prefix: &str| {
        report
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let wrk = after("Requests/sec:")
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's report:\n{report}"))?;
    let millis = |quantile: &str| {
        after(quantile)
            .and_then(duration_ms)
            .ok_or_else(|| format!("no {quantile} latency in wrk's report:\n{report}"))
    };
    Ok(Agreement {
        scenario,
        loadgen,
        wrk,
        p50_ms: millis("50%")?,
        p99_ms: millis("99%")?,
        failed: after("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}

/// `812.00us`, `1.23ms`, `2.01s` or `1.5m` in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return None,
    };
    Some(value * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrk_latency_report_parses() {
        let report = "Running 3s test @ http://127.0.0.1:8080\n  1 threads and 16 connections\n\
            \x20 Latency Distribution\n     50%  812.00us\n     75%    1.20ms\n     90%    2.00ms\n\
            \x20    99%    4.51ms\n  3000 requests in 3.00s, 1.00MB read\n\
            \x20 Non-2xx or 3xx responses: 7\nRequests/sec:   1000.50\nTransfer/sec:    341.33KB\n";
        let a = parse_report("dashboard", 900.0, report).expect("a report");
        assert_eq!(a.wrk, 1000.5);
        assert!((a.p50_ms - 0.812).abs() < 1e-9);
        assert_eq!(a.p99_ms, 4.51);
        assert_eq!(a.failed, 7);
        assert!(parse_report("dashboard", 1.0, "Running").is_err());
    }

    #[test]
    fn the_script_sends_every_path_with_the_token() {
        let script =
            lua_script("token abc.def\npath /api/v1/a\npath /api/v1/b?q=x\n").expect("a script");
        assert!(script.contains("\"/api/v1/a\","));
        assert!(script.contains("\"/api/v1/b?q=x\","));
        assert!(script.contains("Bearer abc.def"));
        let anonymous = lua_script("path /json\n").expect("a script without a token");
        assert!(anonymous.contains("\"/json\",") && !anonymous.contains("Authorization"));
        assert!(lua_script("token t\n").is_err(), "no path");
        assert!(lua_script("token t\npath /a\"b\n").is_err());
    }

    #[test]
    fn only_single_get_scenarios_are_cross_checked() {
        assert!(is_get("patient-by-id"));
        assert!(!is_get("book-cancel"));
        assert!(!is_get("mixed"));
    }
}
