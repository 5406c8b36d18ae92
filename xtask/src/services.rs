//! The throwaway servers of `db-up` and `test`, stopped by a drop guard.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::postgres::{self, Postgres};
use crate::redis::{self, Redis};
use crate::{Result, warn, watchdog};

/// Whether a missing or failing server is an error or a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// A missing binary or a failed start is an error.
    Required,
    /// A missing binary or a failed start prints a warning and is skipped.
    Optional,
    /// Not started at all.
    Skip,
}

impl Requirement {
    /// Passes on a server's failure to start when required, else prints it as a warning.
    fn check<T>(self, server: &str, started: &Result<T, String>) -> Result<()> {
        match (self, started) {
            (_, Ok(_)) | (Self::Skip, Err(_)) => Ok(()),
            (Self::Required, Err(error)) => Err(error.clone().into()),
            (Self::Optional, Err(error)) => {
                warn(format_args!("{server} not started: {error}"));
                Ok(())
            }
        }
    }
}

/// What to start, and on which ports (`None`: a free one).
#[derive(Debug)]
pub struct Options {
    /// Requirement for PostgreSQL.
    pub postgres: Requirement,
    /// Requirement for Redis.
    pub redis: Requirement,
    /// PostgreSQL's port.
    pub postgres_port: Option<u16>,
    /// Redis's port.
    pub redis_port: Option<u16>,
}

/// Running servers in a temporary directory; dropping it stops them and removes the directory.
#[derive(Debug)]
pub struct Services {
    dir: PathBuf,
    postgres: Result<Postgres, String>,
    redis: Result<Redis, String>,
    watchdog: Option<Child>,
}

impl Services {
    /// Starts what `options` asks for; an error only for a required server.
    pub fn start(options: &Options) -> Result<Self> {
        let postgres_binaries = postgres::Binaries::find();
        let redis_binary = redis::find_server();
        // A required server that is not installed fails before anything starts.
        if let (Requirement::Required, Err(error)) = (options.postgres, &postgres_binaries) {
            return Err(error.clone().into());
        }
        if let (Requirement::Required, Err(error)) = (options.redis, &redis_binary) {
            return Err(error.clone().into());
        }
        let (postgres_port, redis_port) = free_ports(options.postgres_port, options.redis_port)?;

        let dir = create_temp_dir()?;
        let mut services = Self {
            dir,
            postgres: Err("not started".into()),
            redis: Err("not started".into()),
            watchdog: None,
        };
        let bin_dir = postgres_binaries
            .as_ref()
            .ok()
            .map(|binaries| binaries.dir());
        services.watchdog = match watchdog::spawn(&services.dir, bin_dir) {
            Ok(child) => Some(child),
            Err(error) => {
                warn(format_args!(
                    "no watchdog, servers outlive a killed xtask: {error}"
                ));
                None
            }
        };

        if options.postgres != Requirement::Skip {
            services.postgres = postgres_binaries
                .and_then(|binaries| Postgres::start(binaries, &services.dir, postgres_port));
            options.postgres.check("PostgreSQL", &services.postgres)?;
        }
        if options.redis != Requirement::Skip {
            services.redis =
                redis_binary.and_then(|binary| Redis::start(&binary, &services.dir, redis_port));
            options.redis.check("Redis", &services.redis)?;
        }
        Ok(services)
    }

    /// The temporary directory holding the servers' data, sockets and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` when PostgreSQL runs.
    pub fn postgres_url(&self) -> Option<String> {
        self.postgres.as_ref().ok().map(Postgres::url)
    }

    /// The CA certificate PostgreSQL's TLS certificate is signed by, when it speaks TLS.
    pub fn postgres_ssl_root_cert(&self) -> Option<PathBuf> {
        self.postgres
            .as_ref()
            .ok()
            .and_then(Postgres::ssl_root_cert)
    }

    /// `redis://127.0.0.1:PORT` when Redis runs.
    pub fn redis_url(&self) -> Option<String> {
        self.redis.as_ref().ok().map(Redis::url)
    }

    /// The running PostgreSQL, to stop and resume it (the chaos suite).
    pub fn postgres(&self) -> Option<&Postgres> {
        self.postgres.as_ref().ok()
    }

    /// The running Redis, to stop and restart it (the chaos suite).
    pub fn redis_mut(&mut self) -> Option<&mut Redis> {
        self.redis.as_mut().ok()
    }

    /// One line saying which servers are up, at which URLs.
    pub fn summary(&self) -> String {
        let postgres = match &self.postgres {
            Ok(postgres) => format!("PostgreSQL up at {}", postgres.url()),
            Err(_) => "PostgreSQL not running (its tests skip)".to_owned(),
        };
        let redis = match &self.redis {
            Ok(redis) => format!("Redis up at {}", redis.url()),
            Err(_) => "Redis not running (its tests skip)".to_owned(),
        };
        format!("{postgres}, {redis}")
    }

    /// Fails when a server that was started has stopped.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Ok(postgres) = &self.postgres {
            postgres.check_alive()?;
        }
        if let Ok(redis) = &mut self.redis {
            redis.check_alive()?;
        }
        Ok(())
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if let Ok(redis) = &mut self.redis {
            redis.stop();
        }
        if let Ok(postgres) = &self.postgres {
            postgres.stop();
        }
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            warn(format_args!(
                "cannot remove {}: {error}",
                self.dir.display()
            ));
        }
        if let Some(watchdog) = &mut self.watchdog {
            // It may have exited on its own already; either way it is reaped.
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// Two distinct ports: the given ones, or free ones found by binding `127.0.0.1:0`.
fn free_ports(first: Option<u16>, second: Option<u16>) -> Result<(u16, u16)> {
    // Both listeners are held at once so the two free ports differ.
    let bind = |port: Option<u16>| match port {
        Some(_) => Ok(None),
        None => TcpListener::bind(("127.0.0.1", 0)).map(Some),
    };
    let first_listener = bind(first)?;
    let second_listener = bind(second)?;
    let port = |given: Option<u16>, listener: &Option<TcpListener>| -> Result<u16> {
        match (given, listener) {
            (Some(port), _) => Ok(port),
            (None, Some(listener)) => Ok(listener.local_addr()?.port()),
            (None, None) => Err("no port".into()),
        }
    };
    Ok((
        port(first, &first_listener)?,
        port(second, &second_listener)?,
    ))
}

/// Creates a fresh directory under the system's temporary directory.
pub fn create_temp_dir() -> Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = base.join(format!(
            "clinicflow-xtask-{}-{nanos:08x}{attempt}",
            std::process::id()
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(format!("cannot create {}: {error}", dir.display()).into()),
        }
    }
    Err(format!("cannot create a fresh directory in {}", base.display()).into())
}
