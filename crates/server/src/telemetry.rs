//! The one place the tracing subscriber is built.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Default filter: our own info, the database libraries' warnings only (their debug lines can carry query values).
pub const DEFAULT_FILTER: &str =
    "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,actix_server=warn";

/// Keeps the log writer running; dropping it (at the end of `main`) writes out every line
/// still queued.
#[must_use = "log lines still queued are lost unless this lives until the process ends"]
pub struct LogGuard(#[allow(dead_code)] WorkerGuard);

/// Installs the global subscriber; `RUST_LOG` overrides the default filter.
///
/// Lines are formatted on the thread that logs them and written to stderr by a thread of
/// their own, in batches: one `write` per burst instead of one per line (the access log
/// writes a line per request). The queue blocks when full rather than drop a line.
pub fn init(format: LogFormat) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("clinicflow-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ));
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            // The request span is the only one a line is ever in; listing it again under
            // `spans` doubled the access log's formatting for nothing.
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    // A subscriber set earlier (in tests) wins; that is fine.
    drop(result);
    LogGuard(guard)
}

/// Whether log lines get ANSI colours: only on a terminal, where a person reads them, and not
/// when `NO_COLOR` is set to anything but the empty string (no-color.org). Escape codes in a
/// file or a log collector are noise.
fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new("1"))));
    }
}
