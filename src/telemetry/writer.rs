//! The log writer: lines gathered in memory and written to stderr by a thread of their own,
//! every few milliseconds, in one system call.
//!
//! why: a write system call per access-log line, on the request's own thread, and the two
//! runtime threads queueing for stderr's lock, were a large share of a cached token check
//! (issue 15's profile: 1 write and 0.2 futex calls a request). tracing-appender's
//! non-blocking writer took the write off the request but woke its thread for nearly every
//! line (a futex call and a context switch each, on a 2-core machine where wrk, two runtime
//! threads and that thread then compete). Here a line costs an uncontended lock and a copy;
//! the writer thread wakes every `FLUSH_EVERY`, or at once when `SOON` bytes are waiting.
//!
//! No line is dropped: past `CAP` bytes waiting (stderr blocked), a logging thread waits for
//! the writer. Lines reach stderr at most `FLUSH_EVERY` late, in the order each thread logged
//! them, and all of them by the time `Flusher` is dropped (end of `Cli::run`); only a process
//! killed outright (SIGKILL) can lose the last few milliseconds' lines. A line logged after
//! that (a task ending with the runtime) is written directly.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// why 10 ms: a line seen by a person or a shipper that late is on time, and at most a
/// hundred batches a second cost nothing.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// Waiting bytes that wake the writer early. why 64 KiB: a pipe's buffer.
const SOON: usize = 64 * 1024;
/// Waiting bytes past which logging threads wait for the writer.
const CAP: usize = 16 * 1024 * 1024;
/// The capacity a buffer keeps after a write. why: after a burst (or a stalled stderr) the
/// buffers would otherwise keep their largest size for good.
const KEEP: usize = 4 * SOON;

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: a first line waiting, `SOON` bytes waiting, or the stop.
    wake: Condvar,
    /// Wakes logging threads held at `CAP`.
    drained: Condvar,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    /// `Flusher` was dropped: the writer writes what is waiting, then ends.
    stopping: bool,
    /// The writer has ended (or never started): lines are written directly.
    ended: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // why into_inner on poison: the state is bytes and flags, valid whatever panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `MakeWriter` for the subscriber.
#[derive(Clone)]
pub(super) struct Batched {
    shared: Arc<Shared>,
}

/// Owns the writer thread; dropping it writes what is waiting and ends the thread.
pub(super) struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer of `out` through a thread of its own, and the handle that stops it. If the
/// thread cannot start, lines go to stderr directly, one write each: slower, never lost.
pub(super) fn batched<W: Write + Send + 'static>(out: W) -> (Batched, Flusher) {
    let shared = Arc::new(Shared::default());
    let spawned = std::thread::Builder::new().name("tokenauth-log".into()).spawn({
        let shared = Arc::clone(&shared);
        move || write_until_stopped(&shared, out)
    });
    let thread = spawned.ok();
    if thread.is_none() {
        shared.lock().ended = true;
    }
    (Batched { shared: Arc::clone(&shared) }, Flusher { shared, thread })
}

fn write_until_stopped<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        {
            let mut state = shared.lock();
            // Idle: sleep until a first line (or the stop) arrives.
            while state.lines.is_empty() && !state.stopping {
                state = shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            // Gather for `FLUSH_EVERY`, unless much is waiting already or this is the stop.
            let deadline = Instant::now() + FLUSH_EVERY;
            while state.lines.len() < SOON && !state.stopping {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = shared.wake.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
            }
            if state.lines.is_empty() && state.stopping {
                // why under the lock: no line can slip in between the last batch and `ended`.
                state.ended = true;
                shared.drained.notify_all();
                return;
            }
            std::mem::swap(&mut state.lines, &mut batch);
        }
        shared.drained.notify_all();
        // why ignored: there is nowhere left to report a failing stderr.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        batch.shrink_to(KEEP);
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = &'a Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Write for &Batched {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        while state.lines.len() >= CAP && !state.ended {
            self.shared.wake.notify_one();
            state = self.shared.drained.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if state.ended {
            // why under the lock: lines written directly keep their order among themselves.
            return io::stderr().write(buf);
        }
        let first = state.lines.is_empty();
        state.lines.extend_from_slice(buf);
        if first || state.lines.len() >= SOON {
            self.shared.wake.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` into shared bytes, counting its calls.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut sink = self.0.lock().unwrap();
            sink.0.extend_from_slice(buf);
            sink.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_in_few_writes() {
        let sink = Sink::default();
        let (writer, flusher) = batched(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        (&writer).write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(flusher);
        let (bytes, writes) = std::mem::take(&mut *sink.0.lock().unwrap());
        let text = String::from_utf8(bytes).unwrap();
        let mut next = [0; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines out of order or lost");
            next[t] += 1;
        }
        assert_eq!(next, [10_000; 4], "every line written");
        assert!(writes < 4_000, "{writes} writes for 40,000 lines");
    }

    #[test]
    fn a_quiet_line_is_written_within_the_flush_interval() {
        let sink = Sink::default();
        let (writer, _flusher) = batched(sink.clone());
        (&writer).write_all(b"one line\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().unwrap().0.is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line was never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sink.0.lock().unwrap().0, b"one line\n");
    }
}
