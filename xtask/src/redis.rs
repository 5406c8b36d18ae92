//! A throwaway Redis: `redis-server` as a child process without persistence, killed when done.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, find_program, warn};

/// Redis's working directory inside the temporary directory.
const DATA_DIR: &str = "redis";
/// Redis's log (its stdout and stderr) inside the temporary directory.
const LOG_FILE: &str = "redis.log";
/// The server's process id inside the temporary directory, for the watchdog.
const PID_FILE: &str = "redis.pid";
/// How long Redis may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Finds `redis-server` on `PATH`.
pub fn find_server() -> Result<PathBuf, String> {
    find_program("redis-server", &[]).ok_or_else(|| {
        "Redis not found: no redis-server on PATH (Debian: apt-get install redis-server)".to_owned()
    })
}

/// A running `redis-server` child on 127.0.0.1.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    port: u16,
    log: PathBuf,
    binary: PathBuf,
    dir: PathBuf,
}

impl Redis {
    /// Starts `binary` on `port` with its files in `dir`, and waits until it answers PING.
    pub fn start(binary: &Path, dir: &Path, port: u16) -> Result<Self, String> {
        let data = dir.join(DATA_DIR);
        fs::create_dir(&data)
            .map_err(|error| format!("cannot create {}: {error}", data.display()))?;
        let log = dir.join(LOG_FILE);
        let child = spawn(binary, dir, port)?;
        let mut redis = Self {
            child,
            port,
            log,
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
        };
        redis.wait_started()?;
        Ok(redis)
    }

    /// Starts the server again after [`Redis::stop`], on the same port; it starts empty,
    /// as a Redis without persistence does after a crash.
    pub fn restart(&mut self) -> Result<(), String> {
        self.child = spawn(&self.binary, &self.dir, self.port)?;
        self.wait_started()
    }

    /// Records the pid for the watchdog and waits for PONG; stops the server on failure.
    fn wait_started(&mut self) -> Result<(), String> {
        if let Err(error) = fs::write(self.dir.join(PID_FILE), self.child.id().to_string()) {
            warn(format_args!("cannot write Redis's pid file: {error}"));
        }
        if let Err(error) = self.wait_until_ready() {
            self.stop();
            return Err(format!(
                "Redis did not start on port {}: {error}\n--- {} ---\n{}",
                self.port,
                self.log.display(),
                fs::read_to_string(&self.log).unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Fails when the server has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(format!(
                "Redis stopped unexpectedly ({status}); its log:\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            )
            .into()),
        }
    }

    /// Kills the server and reaps it.
    pub fn stop(&mut self) {
        // An error here means it has already exited.
        let _ = self.child.kill();
        if let Err(error) = self.child.wait() {
            warn(format_args!("cannot reap redis-server: {error}"));
        }
    }

    /// Polls PING until PONG, the child's exit, or the timeout.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("redis-server exited ({status})"));
            }
            if self.answers_ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no PONG within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server answers `PING` with `+PONG`.
    fn answers_ping(&self) -> bool {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200))
        else {
            return false;
        };
        let mut reply = [0u8; 7];
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .is_ok()
            && stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

/// Spawns `binary` on `port` without persistence, its log appended to the directory's log.
fn spawn(binary: &Path, dir: &Path, port: u16) -> Result<Child, String> {
    let data = dir.join(DATA_DIR);
    let log = dir.join(LOG_FILE);
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|error| format!("cannot open {}: {error}", log.display()))?;
    let log_copy = log_file
        .try_clone()
        .map_err(|error| format!("cannot share {}: {error}", log.display()))?;
    Command::new(binary)
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .arg("--dir")
        .arg(&data)
        .current_dir(&data)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_copy)
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", binary.display()))
}

/// Kills a `redis-server` that [`Redis::start`] left running in `dir` (for the watchdog).
pub fn stop_in(dir: &Path) {
    let Some(pid) = fs::read_to_string(dir.join(PID_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
    else {
        return;
    };
    // Only if that pid is still redis-server, not a newer process that reused it.
    let cmdline = format!("/proc/{pid}/cmdline");
    if Path::new("/proc/self").exists()
        && !fs::read(&cmdline)
            .is_ok_and(|text| String::from_utf8_lossy(&text).contains("redis-server"))
    {
        return;
    }
    // The shell's built-in kill: minimal systems may have no kill binary.
    let killed = Command::new("sh")
        .args(["-c", r#"kill "$1""#, "sh", &pid.to_string()])
        .status();
    if let Err(error) = killed {
        warn(format_args!("cannot run sh -c kill {pid}: {error}"));
    }
}
