//! One SVG chart per scenario: open-loop p50 and p99 against the offered rate on each
//! database, with the p99 target and the SQL floor marked. xtask gathers the points from the
//! load generator's `result` lines; `clinicflow-loadgen chart` (plotters) draws them into
//! `bench/<scenario>.svg` beside the output document.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{BackendRun, CAPACITY_P99_MS, Options, warn};

/// A chart that was written.
#[derive(Debug, Clone)]
pub(super) struct Drawn {
    pub(super) scenario: &'static str,
    /// Its path relative to the output document.
    pub(super) link: String,
}

/// The points file of one scenario: `backend rate p50_ms p99_ms`, one open-loop row a line.
pub(super) fn points(runs: &[BackendRun], scenario: &str) -> String {
    let mut text = String::new();
    for run in runs {
        for row in &run.rows {
            if row.text("scenario") != scenario || row.text("mode") != "open" {
                continue;
            }
            let _ = writeln!(
                text,
                "{} {} {} {}",
                run.backend.name(),
                row.number("target_rps"),
                row.number("p50_us") / 1000.0,
                row.number("p99_us") / 1000.0,
            );
        }
    }
    text
}

/// Draws every scenario that has open-loop rows; a chart that fails is reported and left out.
pub(super) fn draw_all(options: &Options, loadgen: &Path, runs: &[BackendRun]) -> Vec<Drawn> {
    let dir = options
        .output
        .parent()
        .unwrap_or(Path::new("."))
        .join("bench");
    let mut drawn = Vec::new();
    let Ok(scenarios) = options.scenario_list() else {
        return drawn;
    };
    if let Err(error) = fs::create_dir_all(&dir) {
        warn(format_args!(
            "charts skipped: cannot create {}: {error}",
            dir.display()
        ));
        return drawn;
    }
    for scenario in scenarios {
        let text = points(runs, scenario);
        if text.is_empty() {
            continue;
        }
        let points_file = dir.join(format!("{scenario}.points"));
        let out = dir.join(format!("{scenario}.svg"));
        let floor = runs
            .iter()
            .find_map(|run| run.floors.get(scenario))
            .map(|f| f.tps);
        let outcome = fs::write(&points_file, &text)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let mut command = Command::new(loadgen);
                command
                    .args(["chart", "--points"])
                    .arg(&points_file)
                    .arg("--out")
                    .arg(&out)
                    .args([
                        "--title",
                        &format!("{scenario}: latency against offered rate"),
                    ])
                    .args(["--target-ms", &CAPACITY_P99_MS.to_string()]);
                if let Some(floor) = floor {
                    command.args(["--floor", &floor.to_string()]);
                }
                let output = command
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| e.to_string())?;
                if output.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&output.stderr).into_owned())
                }
            });
        let _ = fs::remove_file(&points_file);
        match outcome {
            Ok(()) => drawn.push(Drawn {
                scenario,
                link: format!("bench/{scenario}.svg"),
            }),
            Err(error) => warn(format_args!("chart of {scenario}: {error}")),
        }
    }
    drawn
}
