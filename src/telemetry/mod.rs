//! Logging: a tracing subscriber writing to stderr, filtered by `RUST_LOG`, as text or JSON
//! (one flat object a line, see `json`). A server's lines are formatted on the thread that
//! logs them and written by a thread of their own, a few milliseconds later, in batches (see
//! `writer`); an admin command's are written at once, in order with what it prints.

mod json;
mod writer;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::JsonFields;

use crate::config::LogFormat;

/// Keeps the log writer's thread, if any; dropping it writes what is still waiting. Hold it
/// until the process is about to exit.
#[must_use = "lines still waiting are written when this is dropped"]
pub struct LogGuard {
    _flusher: Option<writer::Flusher>,
}

/// Install the global subscriber. `default_filter` applies when `RUST_LOG` is unset; `batched`
/// (for a server) writes through the writer thread. A second call (tests) is a no-op.
pub fn init(format: LogFormat, default_filter: &str, batched: bool) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    if !batched {
        let _ = install(format, filter, std::io::stderr);
        return LogGuard { _flusher: None };
    }
    let (writer, flusher) = writer::batched(std::io::stderr());
    // why: when another subscriber was installed first, this writer has nothing to write.
    let installed = install(format, filter, writer).is_ok();
    LogGuard { _flusher: installed.then_some(flusher) }
}

fn install<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.fmt_fields(JsonFields::new()).event_format(json::FlatJson).try_init(),
    }
}
