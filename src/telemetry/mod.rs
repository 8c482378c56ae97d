//! Logging: a tracing subscriber writing to stderr, filtered by `RUST_LOG`, as text or JSON
//! (one flat object a line, see `json`). Lines are formatted on the thread that logs them and
//! written by a thread of their own, a few milliseconds later, in batches (see `writer`).

mod json;
mod writer;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::JsonFields;

use crate::config::LogFormat;

/// Keeps the log writer's thread; dropping it writes what is still waiting. Hold it until
/// the process is about to exit.
#[must_use = "lines still waiting are written when this is dropped"]
pub struct LogGuard {
    _flusher: Option<writer::Flusher>,
}

/// Install the global subscriber. `default_filter` applies when `RUST_LOG` is unset. A second
/// call (tests) is a no-op.
pub fn init(format: LogFormat, default_filter: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let (batched, flusher) = writer::batched(std::io::stderr());
    let builder = builder.with_writer(batched);
    let installed = match format {
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.fmt_fields(JsonFields::new()).event_format(json::FlatJson).try_init(),
    };
    // why: when another subscriber was installed first, this writer has nothing to write.
    LogGuard { _flusher: installed.is_ok().then_some(flusher) }
}
