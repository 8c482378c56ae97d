//! Transactions refused for the sake of concurrent ones, tried again.
//!
//! Under SERIALIZABLE (a PostgreSQL setting, and what distributed engines such as CockroachDB
//! run by default) two transactions that update one hot row (an address's throttle counter,
//! a principal's row locked for the token limit) do not queue: the later one fails with
//! SQLSTATE 40001 once the first commits, and a deadlock fails one side with 40P01. Both are
//! the database asking for the whole transaction again. Every write of the store goes through
//! `retried!`, which runs it again after a jittered, growing pause, a bounded number of
//! times; past that the failure is a `Contention` error, which callers answer with a 503.
//!
//! Only whole units are retried: a statement on its own (which the database rolled back), or
//! a closure that begins, runs and commits its transaction. Nothing outside the database is
//! changed before the commit, so running the unit again is safe.

use std::time::Duration;

use super::{StoreError, StoreResult};

/// why 30, paused at most 100 ms: 1.3 to 2.5 seconds in all (the pauses are jittered), well
/// within a request's timeout. This process's writers of one row queue before they reach the
/// database (`hot_rows.rs`), so a row's contenders are the other replicas' writers; but those
/// come fresh while a loser pauses, so a loser may lose several rounds in a row (up to 6 seen
/// with two replicas and a crowd of 16 logins of one user under SERIALIZABLE), and what it
/// needs is many short tries rather than a few long pauses.
const ATTEMPTS: u32 = 30;
/// The first pause, doubled after each failure up to `MAX_PAUSE`. why 2 ms: about one of
/// our transactions, so the one that won has usually committed by then. why 100 ms at most:
/// past a few rounds, the pause only needs to spread the losers apart.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// The pauses between attempts of one unit. why a value and a macro (`retried!`) rather
/// than a function taking a closure: a closure returning a borrowing future defeats the
/// compiler's proof that the store's futures are `Send`.
#[derive(Debug)]
pub(super) struct Backoff {
    /// What is retried, for the log: the store method's name.
    unit: &'static str,
    attempt: u32,
    pause: Duration,
}

impl Backoff {
    pub(super) fn new(unit: &'static str) -> Self {
        Backoff { unit, attempt: 1, pause: FIRST_PAUSE }
    }

    /// The unit's final result, or `None` after pausing when it should run again.
    pub(super) async fn settle<T>(&mut self, result: StoreResult<T>) -> Option<StoreResult<T>> {
        match result {
            Err(StoreError::Contention(why)) if self.attempt < ATTEMPTS => {
                tracing::debug!(unit = self.unit, attempt = self.attempt, error = %why, "transaction refused for a concurrent one; retrying");
                tokio::time::sleep(jittered(self.pause)).await;
                self.pause = (self.pause * 2).min(MAX_PAUSE);
                self.attempt += 1;
                None
            }
            Err(StoreError::Contention(why)) => {
                // why a line of its own: the 503 that follows reads like an outage otherwise.
                tracing::warn!(unit = self.unit, attempts = self.attempt, error = %why, "the database kept refusing a transaction for concurrent ones");
                Some(Err(StoreError::Contention(format!("{why} ({} attempts)", self.attempt))))
            }
            other => Some(other),
        }
    }
}

/// Run the async block `$unit` (a whole unit: see the module doc; `$name` names it in the
/// log), again while the database refuses it for a concurrent transaction; evaluates to its
/// final result.
macro_rules! retried {
    ($name:expr, $unit:expr) => {{
        let mut backoff = $crate::store::retry::Backoff::new($name);
        loop {
            let result = $unit.await;
            if let Some(done) = backoff.settle(result).await {
                break done;
            }
        }
    }};
}
pub(super) use retried;

/// A pause drawn evenly from [pause/2, pause]. why jitter: transactions that failed together
/// would otherwise all try again at the same moment and fail together again.
fn jittered(pause: Duration) -> Duration {
    // why a UUID: it is the random source already at hand (getrandom), and this is no secret.
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let half = pause / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_nanos(random % nanos)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn contention_is_retried_then_reported() {
        let calls = AtomicU32::new(0);
        let done: StoreResult<i32> = retried!("test", async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 { Err(StoreError::Contention("40001".into())) } else { Ok(7) }
        });
        assert_eq!((done.unwrap(), calls.load(Ordering::SeqCst)), (7, 4));

        let calls = AtomicU32::new(0);
        let given_up: StoreResult<()> = retried!("test", async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Contention("could not serialize access".into()))
        });
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
        assert!(matches!(given_up, Err(StoreError::Contention(m)) if m.contains("30 attempts")));
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let failed: StoreResult<()> = retried!("test", async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Conflict("unique".into()))
        });
        assert!(matches!(failed, Err(StoreError::Conflict(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn pauses_are_jittered_within_bounds() {
        for _ in 0..100 {
            let p = jittered(Duration::from_millis(100));
            assert!(p >= Duration::from_millis(50) && p <= Duration::from_millis(100), "{p:?}");
        }
    }
}
