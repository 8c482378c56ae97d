//! The fault tests that measure time (recovery within a second, answers within the request
//! timeout): a binary of their own, because cargo runs test binaries one after another, so
//! these run alone and not beside the `api` suite's password hashing and load generators on
//! the same cores. The helpers are the `api` suite's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

// why dead_code: this binary uses a few of the helpers the `api` suite shares.
#[allow(dead_code, unused_macros)]
#[path = "../api/helpers.rs"]
mod helpers;

// why: the real binary as a child process, as the `api` suite starts it.
#[allow(dead_code)]
#[path = "../api/process.rs"]
mod process;

mod forwarder;
mod outage;
mod replicas;

/// Held by each test for its whole run: libtest runs a binary's tests in parallel, and these
/// measure time, so they take turns.
pub(crate) static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What went wrong, one line each. A test that returns it (rather than panicking) is reported
/// as its message alone, so the reasons are the last lines of the output, not buried above a
/// backtrace.
pub(crate) struct Failures(pub(crate) Vec<String>);

impl std::fmt::Debug for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failure(s):", self.0.len())?;
        self.0.iter().try_for_each(|failure| write!(f, "\n  {failure}"))
    }
}
