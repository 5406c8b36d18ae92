//! A helper process that stops the servers after an xtask killed by a signal.

// The workspace forbids `unsafe`, so xtask cannot install signal handlers,
// and Ctrl-C or SIGTERM ends it without running its drop guard. Each
// `Services` therefore spawns `xtask __watchdog` in its own process group (so
// Ctrl-C at the terminal does not reach it): it polls its parent, and once
// the parent is gone it stops PostgreSQL and Redis and removes the temporary
// directory. The drop guard kills it after a normal clean-up.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::Result;
use crate::postgres::Postgres;

/// The hidden subcommand that runs the watchdog.
pub const COMMAND: &str = "__watchdog";

/// Spawns a watchdog for the servers in `dir` (PostgreSQL's binaries in `postgres_bin`).
pub fn spawn(dir: &Path, postgres_bin: Option<&Path>) -> Result<Child> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg(COMMAND)
        .arg(std::process::id().to_string())
        .arg(dir);
    if let Some(bin) = postgres_bin {
        command.arg(bin);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()?;
    Ok(child)
}

/// `__watchdog PARENT_PID DIR [POSTGRES_BIN]`: waits for the parent to go, then cleans up.
pub fn run(args: &[OsString]) -> Result<()> {
    let [parent, dir, rest @ ..] = args else {
        return Err(format!("usage: xtask {COMMAND} PARENT_PID DIR [POSTGRES_BIN]").into());
    };
    let parent: u32 = parent
        .to_str()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("{COMMAND}: bad parent pid {parent:?}"))?;
    let dir = PathBuf::from(dir);
    let postgres_bin = rest.first().map(PathBuf::from);
    while std::os::unix::process::parent_id() == parent {
        if !dir.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !dir.exists() {
        return Ok(());
    }
    // Not eprintln!: the terminal may be gone, and a panic here would skip the clean-up.
    let _ = writeln!(
        std::io::stderr(),
        "cargo xtask: xtask (pid {parent}) is gone; stopping its servers in {}",
        dir.display()
    );
    crate::redis::stop_in(&dir);
    if let Some(bin) = postgres_bin {
        Postgres::stop_in(bin, &dir);
    }
    fs::remove_dir_all(&dir)?;
    Ok(())
}
