//! Logging: a tracing subscriber writing to stderr, filtered by `RUST_LOG`, as text or JSON
//! (one flat object a line, see `json`).
//!
//! Lines are written by a thread of their own (tracing-appender's non-blocking writer), so a
//! request never waits on a write to stderr (a pipe to journald or a container runtime can be
//! slow), and lines that queue up while the writer is busy go out together in one write.
//! Never lossy: when the queue is full, the logging thread waits instead of dropping a line.

mod json;

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::JsonFields;

use crate::config::LogFormat;

/// Keeps the log writer's thread; dropping it writes out every queued line. Hold it until
/// the process is done logging.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] WorkerGuard);

/// Install the global subscriber. `default_filter` applies when `RUST_LOG` is unset. A second
/// call (tests) is a no-op.
pub fn init(format: LogFormat, default_filter: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // why a BufWriter: the writer thread flushes when its queue is empty, so under load many
    // lines leave in one write, and at rest each line leaves at once.
    // why 16,384 lines: the queue is allocated up front (tracing-appender's default of 128,000
    // lines held 4 MiB of an idle server's 30); a full queue makes a request wait, never drops.
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(16_384)
        .lossy(false)
        .thread_name("tokenauth-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match format {
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.fmt_fields(JsonFields::new()).event_format(json::FlatJson).try_init(),
    };
    LogGuard(guard)
}
