//! A throwaway PostgreSQL cluster: `initdb` into a temporary directory, `pg_ctl start`, `pg_ctl stop`.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{Result, find_program, is_executable, warn};

/// The superuser created by `initdb` and the system user that runs the server as root.
const USER: &str = "postgres";
/// The cluster's data directory inside the temporary directory.
const DATA_DIR: &str = "pgdata";
/// The directory of the server's Unix socket inside the temporary directory.
const SOCKET_DIR: &str = "pgsocket";
/// The server's log file inside the temporary directory.
const LOG_FILE: &str = "postgres.log";
/// The directory of the server's TLS key and certificates inside the temporary directory.
const TLS_DIR: &str = "tls";

/// A directory holding `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Finds them on `PATH`, else in the newest `/usr/lib/postgresql/*/bin`.
    pub fn find() -> Result<Self, String> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let on_path = std::env::split_paths(&path).flat_map(|dir| {
            // Debian links /usr/local/bin/initdb to /usr/lib/postgresql/N/bin: prefer the real one.
            let real = fs::canonicalize(dir.join("initdb"))
                .ok()
                .and_then(|initdb| initdb.parent().map(Path::to_path_buf));
            real.into_iter().chain([dir])
        });
        on_path
            .chain(debian_bin_dirs())
            .map(|dir| Self { dir })
            .find(Self::complete)
            .ok_or_else(|| {
                "PostgreSQL not found: no initdb, pg_ctl and postgres on PATH or in \
                 /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)"
                    .to_owned()
            })
    }

    /// The binaries in `dir`, as found earlier by [`Binaries::find`].
    pub fn in_dir(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory holding the binaries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether all three programs are there.
    fn complete(&self) -> bool {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|program| is_executable(&self.dir.join(program)))
    }

    /// The path of one program.
    fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `/usr/lib/postgresql/*/bin`, newest version first.
fn debian_bin_dirs() -> Vec<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// How PostgreSQL's programs are run: PostgreSQL refuses to run as root.
#[derive(Debug, Clone, Copy)]
enum Runner {
    /// As the current (non-root) user.
    Direct,
    /// As root, through `runuser -u postgres --`.
    Runuser,
    /// As root without `runuser`, through `su postgres -s /bin/sh -c`.
    Su,
}

impl Runner {
    /// Picks how to run them for the current effective user.
    fn detect() -> Result<Self, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|error| format!("cannot run `id -u`: {error}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Ok(Self::Direct);
        }
        let user_exists = Command::new("id")
            .args(["-u", USER])
            .output()
            .is_ok_and(|output| output.status.success());
        if !user_exists {
            return Err(format!(
                "running as root, and PostgreSQL refuses to: there is no `{USER}` user to run it as \
                 (create one: useradd --system --user-group {USER})"
            ));
        }
        Ok(
            if find_program("runuser", &["/usr/sbin", "/sbin"]).is_some() {
                Self::Runuser
            } else {
                Self::Su
            },
        )
    }

    /// A command running `program args…` as the right user, in `dir`.
    fn command(self, program: &Path, args: &[&OsStr], dir: &Path) -> Command {
        let mut command = match self {
            Self::Direct => {
                let mut command = Command::new(program);
                command.args(args);
                command
            }
            Self::Runuser => {
                let mut command = Command::new("runuser");
                command.args(["-u", USER, "--"]).arg(program).args(args);
                command
            }
            Self::Su => {
                let line = std::iter::once(program.as_os_str())
                    .chain(args.iter().copied())
                    .map(shell_quote)
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut command = Command::new("su");
                command
                    .args([USER, "-s", "/bin/sh", "-c"])
                    .arg(format!("exec {line}"));
                command
            }
        };
        // The postgres user may not be allowed into the caller's working directory.
        command.current_dir(dir);
        command
    }

    /// Hands `dir` over to the user that runs the server.
    fn give(self, dir: &Path) -> Result<(), String> {
        if let Self::Direct = self {
            return Ok(());
        }
        let output = Command::new("chown")
            .args(["-R", &format!("{USER}:")])
            .arg(dir)
            .output()
            .map_err(|error| format!("cannot run chown: {error}"))?;
        check("chown", &output)
    }
}

/// Makes a throwaway certificate authority and a server certificate it signs for `localhost`
/// and `127.0.0.1` in `dir`, with openssl: `ca.crt`, `server.crt` and `server.key` (mode 0600,
/// as PostgreSQL demands). A separate authority because rustls refuses a CA certificate as a
/// server's own.
fn make_certificates(dir: &Path) -> Result<(), String> {
    let openssl = find_program("openssl", &["/usr/bin"]).ok_or("openssl not found")?;
    fs::create_dir_all(dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let extensions = dir.join("server.ext");
    fs::write(
        &extensions,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|error| format!("cannot write {}: {error}", extensions.display()))?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.crt"],
        ]
        .concat()
        .into_iter()
        .chain(["-days", "2", "-subj", "/CN=clinicflow test CA"])
        .collect(),
        [
            &["req"][..],
            &ec[..],
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat()
        .into_iter()
        .chain(["-subj", "/CN=localhost"])
        .collect(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let output = Command::new(&openssl)
            .args(&args)
            .current_dir(dir)
            .output()
            .map_err(|error| format!("cannot run openssl: {error}"))?;
        check(&format!("openssl {}", args[0]), &output)?;
    }
    let key = dir.join("server.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .map_err(|error| format!("cannot restrict {}: {error}", key.display()))?;
    }
    Ok(())
}

/// Quotes one word for `/bin/sh`.
fn shell_quote(word: &OsStr) -> String {
    format!("'{}'", word.to_string_lossy().replace('\'', r"'\''"))
}

/// Turns a failed command's output into an error message.
fn check(what: &str, output: &Output) -> Result<(), String> {
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// A running cluster with the trusted superuser `postgres`, on 127.0.0.1.
#[derive(Debug)]
pub struct Postgres {
    binaries: Binaries,
    runner: Runner,
    dir: PathBuf,
    port: u16,
    /// Whether the server speaks TLS with the certificates in [`TLS_DIR`].
    tls: bool,
}

impl Postgres {
    /// Creates a cluster in `dir` and starts it on `port`.
    pub fn start(binaries: Binaries, dir: &Path, port: u16) -> Result<Self, String> {
        let runner = Runner::detect()?;
        let socket_dir = dir.join(SOCKET_DIR);
        fs::create_dir(&socket_dir)
            .map_err(|error| format!("cannot create {}: {error}", socket_dir.display()))?;
        // TLS lets the tests connect with `sslmode=require` and `verify-full`; without openssl
        // the server runs without it and those tests say they were skipped.
        let tls = match make_certificates(&dir.join(TLS_DIR)) {
            Ok(()) => true,
            Err(error) => {
                warn(format_args!("PostgreSQL runs without TLS: {error}"));
                false
            }
        };
        runner.give(dir)?;
        let postgres = Self {
            binaries,
            runner,
            dir: dir.to_path_buf(),
            port,
            tls,
        };
        postgres.init()?;
        postgres.resume()?;
        Ok(postgres)
    }

    /// Starts the server of this cluster again (after [`Postgres::stop`]), on the same port
    /// with the same data, and waits until it accepts connections.
    pub fn resume(&self) -> Result<(), String> {
        let port = self.port;
        // Concurrent exclusion-constraint checks of one range may deadlock, and PostgreSQL
        // only looks for a deadlock after `deadlock_timeout` (1 s by default): the contract
        // tests race many such inserts with no advisory lock in front, and a chain of
        // one-second detections ran into the 5 s statement bound on a loaded machine.
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
             -c deadlock_timeout=100ms",
            shell_quote(self.dir.join(SOCKET_DIR).as_os_str())
        );
        if self.tls {
            let tls = self.dir.join(TLS_DIR);
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                shell_quote(tls.join("server.crt").as_os_str()),
                shell_quote(tls.join("server.key").as_os_str())
            ));
        }
        let data = self.data_dir();
        let log = self.log_file();
        let output = self
            .pg_ctl(&[
                "-w".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "start".as_ref(),
            ])
            .output()
            .map_err(|error| format!("cannot run pg_ctl: {error}"))?;
        if let Err(error) = check("pg_ctl start", &output) {
            // pg_ctl may have given up waiting on a server that is still starting.
            if self.data_dir().join("postmaster.pid").exists() {
                self.stop();
            }
            return Err(format!(
                "PostgreSQL did not start on port {port}: {error}\n--- {} ---\n{}",
                log.display(),
                fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of its programs (`psql` usually sits there too).
    pub fn bin_dir(&self) -> &Path {
        self.binaries.dir()
    }

    /// Stops a cluster that [`Postgres::start`] may have left running in `dir`.
    pub fn stop_in(bin_dir: PathBuf, dir: &Path) {
        let Ok(runner) = Runner::detect() else {
            return;
        };
        let postgres = Self {
            binaries: Binaries::in_dir(bin_dir),
            runner,
            dir: dir.to_path_buf(),
            port: 0,
            tls: false,
        };
        if postgres.data_dir().join("postmaster.pid").exists() {
            postgres.stop();
        }
    }

    /// The certificate of the authority that signed the server's certificate (for
    /// `sslrootcert`), when the server speaks TLS.
    pub fn ssl_root_cert(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.join(TLS_DIR).join("ca.crt"))
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Fails when the server is gone.
    pub fn check_alive(&self) -> Result<()> {
        let pid_file = self.data_dir().join("postmaster.pid");
        let pid = fs::read_to_string(&pid_file).ok().and_then(|text| {
            text.lines()
                .next()
                .and_then(|line| line.trim().parse::<u32>().ok())
        });
        let alive = match pid {
            Some(pid) => {
                !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
            }
            None => false,
        };
        if alive {
            return Ok(());
        }
        Err(format!(
            "PostgreSQL stopped unexpectedly; its log:\n{}",
            fs::read_to_string(self.log_file()).unwrap_or_default()
        )
        .into())
    }

    /// `pg_ctl stop -m fast`; failures are printed, not returned.
    pub fn stop(&self) {
        let data = self.data_dir();
        let output = self
            .pg_ctl(&[
                "stop".as_ref(),
                "-w".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
            ])
            .output();
        match output {
            Ok(output) => {
                if let Err(error) = check("pg_ctl stop", &output) {
                    warn(error);
                }
            }
            Err(error) => warn(format_args!("cannot run pg_ctl stop: {error}")),
        }
    }

    /// `initdb` with trust authentication for the superuser `postgres`.
    fn init(&self) -> Result<(), String> {
        let data = self.data_dir();
        // C.UTF-8 is always there on glibc >= 2.35 (Debian 12); plain C elsewhere.
        let locale = if cfg!(target_os = "linux") {
            "--locale=C.UTF-8"
        } else {
            "--no-locale"
        };
        let args: [&OsStr; 10] = [
            "-D".as_ref(),
            data.as_os_str(),
            "-U".as_ref(),
            USER.as_ref(),
            "-A".as_ref(),
            "trust".as_ref(),
            "--no-sync".as_ref(),
            "-E".as_ref(),
            "UTF8".as_ref(),
            locale.as_ref(),
        ];
        let output = self
            .runner
            .command(&self.binaries.program("initdb"), &args, &self.dir)
            .output()
            .map_err(|error| format!("cannot run initdb: {error}"))?;
        check("initdb", &output)
    }

    /// A `pg_ctl` command with `args`.
    fn pg_ctl(&self, args: &[&OsStr]) -> Command {
        self.runner
            .command(&self.binaries.program("pg_ctl"), args, &self.dir)
    }

    /// The cluster's data directory.
    fn data_dir(&self) -> PathBuf {
        self.dir.join(DATA_DIR)
    }

    /// The server's log file.
    fn log_file(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_keeps_single_quotes() {
        assert_eq!(shell_quote(OsStr::new("it's")), r"'it'\''s'");
    }
}
