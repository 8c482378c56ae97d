//! Login throttling: failed logins counted per client address and per account, in the
//! database so that every replica sees the same counts.
//!
//! Policy:
//! - An attempt takes a place *before* its password is checked, under the counters' row
//!   locks: it is in flight until its outcome is known. Holding that place is what keeps
//!   parallel guesses from slipping past the limit. A refused password turns its place into a
//!   failure; a success (or a failure for the server's sake, such as a full hashing queue, or
//!   an interrupted request) gives it back, so only refused credentials are counted.
//! - An attempt that would take the failures and the attempts in flight past a limit *waits
//!   for a place*, without a lockout: those in flight may all succeed, so correct logins from
//!   one address are never refused for being many (an office behind a NAT, CI jobs). It waits
//!   at most half the request timeout (so the login itself still fits), then gets a 429 with
//!   `Retry-After: 1`. A waiter that finds a counter locked out (the failures of those it
//!   waited for reached the limit) gets the lockout's 429 at once (those ahead of it in line
//!   try once each), so wrong passwords never exceed the limit, however parallel. While
//!   waiting, nothing is hashed and nothing is held: a waiter dropped with its request leaves
//!   no trace, and each try for a place runs in a task of its own whose `Pending` gives the
//!   place back if nobody waits for it any more.
//! - Fairness. Within one process, waiters stand in a line per counter (the first one found
//!   full), first come, first served: only the first in line tries again, the others wait
//!   their turn, and a newcomer with a line on one of its counters queues behind it, so no
//!   attempt of this process overtakes an earlier one. The first in line tries again at once
//!   when an attempt of this process gives a place of its counter back, and otherwise after a
//!   pause of 4 ms doubling to 50 ms, jittered (each try one locked read-write of the
//!   counters). Across replicas there is no common line: the database row is the only shared
//!   truth, and a place given back goes to whichever replica's first in line asks first (its
//!   own replica's, usually, which hears of it at once). A waiter may thus be overtaken by
//!   later arrivals at another replica; what bounds its wait is half the request timeout, not
//!   its rank. (A fair order across replicas would need a ticket in the row, a new column.)
//! - Places are counted in two aligned buckets as long as the longest attempt
//!   (`http.request_timeout`): the current one and the one before. An attempt ends within its
//!   own bucket or the next, so a place that no replica gave back (one that died mid-login,
//!   or an outage that outlasted the retries) is forgotten one to two request timeouts after
//!   it was taken, and a late end of a forgotten attempt takes nothing from the live ones.
//! - The window slides: the count is the current fixed window's plus the previous one's
//!   weighted by how much of it still overlaps (the usual two-bucket approximation).
//! - An attempt past the limit of failures starts a lockout of `lockout`, doubled for each
//!   earlier lockout of the same counter, up to `max_lockout`. Attempts during a lockout are refused and not counted,
//!   so hammering a locked counter costs the database one locked read-write and no hashing.
//! - Per address first: an attacker at one address is stopped by that address's limit long
//!   before the (much higher) per-account limit, so the owner logging in from elsewhere is
//!   not locked out. IPv6 addresses count by /64, since one host usually holds a whole /64.
//! - Unknown account names are counted like known ones, so a 429 tells nothing about which
//!   accounts exist. Names that cannot be account names at all are counted per address only.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Notify, OwnedMutexGuard};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::config::{ThrottleConfig, ThrottleRule};
use crate::error::Error;
use crate::metrics::{ThrottleMetrics, ThrottleWaitLabels};
use crate::model::{PrincipalKind, Username};
use crate::model::{ThrottleCounter, ThrottleScope};
use crate::store::Store;
use crate::token::clock::Clock;

/// A counter's key: its scope and subject.
pub type Key = (ThrottleScope, String);

/// The throttle: the rules, over the store's counters, and this process's lines of attempts
/// waiting for a place (shared by its clones).
#[derive(Debug, Clone)]
pub struct Throttle {
    config: ThrottleConfig,
    /// The longest an attempt can be in flight (the request timeout).
    attempt_limit: Duration,
    lines: Arc<Lines>,
    metrics: ThrottleMetrics,
}

/// An admitted attempt: the counters it holds a place in, until `Throttle::finish`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an admitted attempt must be finished with `Throttle::finish` (or watched by a `Pending`)"]
pub struct Admission {
    keys: Vec<(ThrottleScope, String)>,
    /// The bucket its places were taken in.
    bucket: OffsetDateTime,
}

/// What one try for a place found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an admitted attempt must be finished with `Throttle::finish` (or watched by a `Pending`)"]
pub enum Admit {
    /// A place was taken in every counter.
    Admitted(Admission),
    /// None was taken: the counter of the key at this index is full (its failures and
    /// attempts in flight are at its limit), though not locked out.
    Full(usize),
}

/// How an admitted attempt ended, for its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Refused credentials: the attempt counts as a failure.
    Failed,
    /// Anything else (a success, a failure for the server's sake, an interrupted request):
    /// its place is given back.
    Released,
}

/// The `Retry-After` of an attempt that waited for a place as long as it may. why 1 s: the
/// attempts in flight are password checks, which end within a second or so.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The first in line's first pause between two tries, doubled each try up to `POLL_MAX`, each
/// jittered down by up to half. why this short: a place given back on another replica (this
/// one's are announced at once) is taken within a few ms while the wait is young, and the cap
/// keeps a long wait to about 20 locked read-writes a second per line and replica.
const POLL_FIRST: Duration = Duration::from_millis(4);
const POLL_MAX: Duration = Duration::from_millis(50);

impl Throttle {
    /// A throttle with the given rules (already validated by `Config::validate`); no attempt
    /// takes longer than `attempt_limit` (the request timeout).
    pub fn new(config: ThrottleConfig, attempt_limit: Duration) -> Self {
        Throttle { config, attempt_limit, lines: Arc::default(), metrics: ThrottleMetrics::default() }
    }

    /// Report waits into these figures (the service's `/metrics`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: ThrottleMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// How many of this process's login attempts wait in line for a place now.
    pub fn waiting(&self) -> usize {
        self.lines.waiting()
    }

    /// The counters a login attempt for `username` of `kind` from `client` counts in: the
    /// address's, and the account's unless the name cannot be one. None when throttling is off.
    pub fn keys(&self, kind: PrincipalKind, username: &str, client: IpAddr) -> Vec<Key> {
        if !self.config.enabled {
            return Vec::new();
        }
        let mut keys = vec![(ThrottleScope::Ip, ip_subject(client))];
        if let Some(account) = account_subject(kind, username) {
            keys.push((ThrottleScope::Account, account));
        }
        keys
    }

    fn rule(&self, scope: ThrottleScope) -> &ThrottleRule {
        match scope {
            ThrottleScope::Ip => &self.config.ip,
            ThrottleScope::Account => &self.config.account,
        }
    }

    /// Try once to take a place in the counters of `keys` (see `keys`) for a login attempt:
    /// admitted, or full; refused with `Error::Throttled` when a counter is locked out, or
    /// locks out now (the attempt is past a limit of failures).
    pub async fn admit(&self, store: &dyn Store, keys: &[Key], now: OffsetDateTime) -> Result<Admit, Error> {
        if keys.is_empty() {
            return Ok(Admit::Admitted(Admission { keys: Vec::new(), bucket: now }));
        }
        let borrowed: Vec<(ThrottleScope, &str)> = keys.iter().map(|(s, k)| (*s, k.as_str())).collect();
        let busy = AtomicBool::new(false);
        let step = |counters: &mut [ThrottleCounter]| self.attempt(counters, now, &busy);
        let counters = store.update_throttle(&borrowed, &step).await?;
        if let Some(until) = counters.iter().filter_map(|c| c.locked_until).filter(|&until| until > now).max() {
            return Err(Error::Throttled { retry_after: whole_seconds(until - now) });
        }
        if busy.load(Ordering::Relaxed) {
            // why from the counters written: `step` may have run more than once (the store
            // retries a serialization failure), and its last run is the one that counts.
            return Ok(Admit::Full(counters.iter().position(|c| self.full(c, now)).unwrap_or(0)));
        }
        Ok(Admit::Admitted(Admission { keys: keys.to_vec(), bucket: window_start(now, self.attempt_limit) }))
    }

    /// End an admitted attempt: its place becomes a failure (`Outcome::Failed`) or is given
    /// back (`Outcome::Released`).
    pub async fn finish(
        &self,
        store: &dyn Store,
        admission: Admission,
        outcome: Outcome,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        if admission.keys.is_empty() {
            return Ok(());
        }
        let borrowed: Vec<(ThrottleScope, &str)> = admission.keys.iter().map(|(s, k)| (*s, k.as_str())).collect();
        let step = |counters: &mut [ThrottleCounter]| self.end(counters, outcome, admission.bucket, now);
        store.update_throttle(&borrowed, &step).await?;
        // why a failure too: the first in line then finds at once whether the counter locked.
        self.lines.freed(&admission.keys);
        Ok(())
    }

    /// The change the end of an attempt admitted in `bucket` makes to its counters.
    fn end(&self, counters: &mut [ThrottleCounter], outcome: Outcome, bucket: OffsetDateTime, now: OffsetDateTime) {
        for c in counters {
            let rule = *self.rule(c.scope);
            roll(c, &rule, now);
            self.shift(c, now);
            // why by bucket: a place already forgotten is not taken from a live attempt.
            if bucket == c.in_flight_bucket {
                c.in_flight = c.in_flight.saturating_sub(1);
            } else if after(bucket, self.attempt_limit) == c.in_flight_bucket {
                c.prev_in_flight = c.prev_in_flight.saturating_sub(1);
            }
            if outcome == Outcome::Failed {
                c.failures = c.failures.saturating_add(1);
            }
            c.expires_at = self.expiry(c, &rule);
        }
    }

    /// Move the buckets of attempts in flight on to `now`'s: the current one becomes the
    /// previous, and anything older is forgotten.
    fn shift(&self, c: &mut ThrottleCounter, now: OffsetDateTime) {
        let current = window_start(now, self.attempt_limit);
        // why `>=`: a bucket ahead (another replica's clock) is kept rather than dropped.
        if c.in_flight_bucket >= current {
            return;
        }
        c.prev_in_flight = if after(c.in_flight_bucket, self.attempt_limit) == current { c.in_flight } else { 0 };
        c.in_flight = 0;
        c.in_flight_bucket = current;
    }

    /// When a counter is empty again: its failures have left the window, its lockout is
    /// over, its attempts in flight are forgotten, and `forget_after` has passed (which is
    /// how long the lockout count is remembered).
    fn expiry(&self, c: &ThrottleCounter, rule: &ThrottleRule) -> OffsetDateTime {
        let counted = after(c.window_start, rule.window.saturating_mul(2));
        let mut end = c.locked_until.map_or(counted, |until| until.max(counted));
        if c.in_flight + c.prev_in_flight > 0 {
            end = end.max(after(c.in_flight_bucket, self.attempt_limit.saturating_mul(2)));
        }
        after(end, rule.forget_after)
    }

    /// Whether one more attempt would take a rolled counter's failures and attempts in flight
    /// past its limit.
    fn full(&self, c: &ThrottleCounter, now: OffsetDateTime) -> bool {
        let rule = self.rule(c.scope);
        let in_flight = u64::from(c.in_flight) + u64::from(c.prev_in_flight);
        count(c, rule, now) + in_flight + 1 > u64::from(rule.max_failures)
    }

    /// The change an attempt makes to its counters (the ones of one login, all locked).
    /// Sets `busy` when no place was taken only because of the attempts in flight, and clears
    /// it otherwise: the store may call this again on fresh counters for one admission.
    fn attempt(&self, counters: &mut [ThrottleCounter], now: OffsetDateTime, busy: &AtomicBool) {
        busy.store(false, Ordering::Relaxed);
        for c in counters.iter_mut() {
            let rule = *self.rule(c.scope);
            roll(c, &rule, now);
            self.shift(c, now);
        }
        let locked = counters.iter().any(|c| c.locked_until.is_some_and(|until| until > now));
        if locked {
            return;
        }
        let mut refused = false;
        for c in counters.iter_mut() {
            let rule = *self.rule(c.scope);
            if count(c, &rule, now) + 1 > u64::from(rule.max_failures) {
                let doubling = 1u32 << c.strikes.min(16);
                let lockout = rule.lockout.saturating_mul(doubling).min(rule.max_lockout);
                c.strikes = c.strikes.saturating_add(1);
                c.locked_until = Some(after(now, lockout));
                refused = true;
            }
        }
        if !refused {
            if counters.iter().any(|c| self.full(c, now)) {
                busy.store(true, Ordering::Relaxed);
            } else {
                for c in counters.iter_mut() {
                    c.in_flight = c.in_flight.saturating_add(1);
                }
            }
        }
        for c in counters.iter_mut() {
            c.expires_at = self.expiry(c, self.rule(c.scope));
        }
    }

    /// How many failures a counter holds now, by the sliding window.
    pub fn failures(&self, c: &ThrottleCounter, now: OffsetDateTime) -> u64 {
        let rule = *self.rule(c.scope);
        let mut c = c.clone();
        roll(&mut c, &rule, now);
        count(&c, &rule, now)
    }

    /// How many attempts of a counter are in flight now.
    pub fn in_flight(&self, c: &ThrottleCounter, now: OffsetDateTime) -> u32 {
        let mut c = c.clone();
        let rule = *self.rule(c.scope);
        roll(&mut c, &rule, now);
        self.shift(&mut c, now);
        c.in_flight + c.prev_in_flight
    }
}

/// An admitted attempt on its way. On drop, unless finished, it is finished in the background
/// (a place given back, or the failure it was being recorded as), retried while the database
/// is unreachable.
pub struct Pending {
    throttle: Throttle,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    admission: Option<Admission>,
    outcome: Outcome,
    /// It waited in a line before it was admitted.
    waited: bool,
}

/// The first wait before an interrupted attempt's end is retried, doubled each time up to
/// `FINISH_RETRY_MAX` while the database does not answer. why short at first: right after an
/// outage, a place held a moment too long may ask a correct login to retry.
const FINISH_RETRY: Duration = Duration::from_millis(50);
const FINISH_RETRY_MAX: Duration = Duration::from_secs(1);

impl Pending {
    /// Take a place for an attempt, waiting for one while its counters are full (see the
    /// module doc): at most half the request timeout, then refused with `Error::Throttled`
    /// (`Retry-After: 1`). Refused at once when a counter is locked out, or locks out now.
    ///
    /// Cancellation-safe: dropped while waiting, the attempt holds nothing and leaves its line;
    /// each try for a place runs in a task of its own (see `try_once`).
    pub async fn admit(
        throttle: &Throttle,
        store: &Arc<dyn Store>,
        clock: &Arc<dyn Clock>,
        (kind, username, client): (PrincipalKind, &str, IpAddr),
    ) -> Result<Self, Error> {
        let keys = throttle.keys(kind, username, client);
        // why half: the login itself (a hash, a few writes) must still fit in the request timeout.
        let give_up = Instant::now() + throttle.attempt_limit / 2;
        // why: an attempt that finds others of this process in line for one of its counters
        // queues behind them, so that nobody here overtakes them.
        let mut place = throttle.join_existing_line(&keys);
        let jitter = RandomState::new();
        let mut tries = 0u32;
        loop {
            if let Some(place) = place.as_mut()
                && tokio::time::timeout_at(give_up, place.first_in_line()).await.is_err()
            {
                return Err(place.gave_up());
            }
            let full = match Self::try_once(throttle, store, clock, &keys).await {
                Ok(Ok(mut pending)) => {
                    if let Some(place) = place.as_mut() {
                        place.outcome = "admitted";
                        pending.waited = true;
                    }
                    return Ok(pending);
                }
                Ok(Err(full)) => full,
                Err(e) => {
                    if let Some(place) = place.as_mut() {
                        place.outcome = if matches!(e, Error::Throttled { .. }) { "locked_out" } else { "error" };
                    }
                    return Err(e);
                }
            };
            // Full on a first try: into the line of the counter that is full.
            let first = place.get_or_insert_with(|| throttle.join_line(&keys[full]));
            if tokio::time::timeout_at(give_up, first.first_in_line()).await.is_err() || Instant::now() >= give_up {
                return Err(first.gave_up());
            }
            // First in line: try again when a place is given back here, or after a pause for
            // one given back on another replica.
            let pause = poll_pause(tries, jitter.hash_one(tries));
            tries = tries.saturating_add(1);
            tokio::select! {
                () = first.turn.freed.notified() => {}
                () = tokio::time::sleep_until((Instant::now() + pause).min(give_up)) => {}
            }
        }
    }

    /// One try for a place, in a task of its own: a request cancelled while the place is being
    /// written (its timeout, a client gone, a database that stalls) cannot leave it taken,
    /// since the task's `Pending`, which nobody waits for any more, is then dropped and gives
    /// it back. The pending attempt, or the index of the key whose counter is full.
    async fn try_once(
        throttle: &Throttle,
        store: &Arc<dyn Store>,
        clock: &Arc<dyn Clock>,
        keys: &[Key],
    ) -> Result<Result<Self, usize>, Error> {
        let (throttle, store, clock, keys) = (throttle.clone(), Arc::clone(store), Arc::clone(clock), keys.to_vec());
        let admission = async move {
            match throttle.admit(&*store, &keys, clock.now()).await? {
                Admit::Admitted(admission) => Ok(Ok(Pending {
                    throttle,
                    store,
                    clock,
                    admission: Some(admission),
                    outcome: Outcome::Released,
                    waited: false,
                })),
                Admit::Full(full) => Ok(Err(full)),
            }
        };
        tokio::spawn(admission.in_current_span())
            .await
            .map_err(|e| Error::Internal(format!("the throttle task failed: {e}")))?
    }

    /// Whether the attempt waited in a line (for a place of a counter that was full) before
    /// it was admitted: what was read before admission may be that much older.
    pub fn waited(&self) -> bool {
        self.waited
    }

    /// End the attempt now (and in the background if the database does not answer).
    pub async fn finish(&mut self, outcome: Outcome) {
        self.outcome = outcome;
        // why a clone, cleared only once done: if this await is cancelled, drop retries, so
        // an attempt is never left in flight.
        let Some(admission) = self.admission.clone() else { return };
        match self.throttle.finish(&*self.store, admission, outcome, self.clock.now()).await {
            Ok(()) => self.admission = None,
            Err(e) => tracing::warn!(error = %e, "could not finish a login attempt on the throttle counters; retrying"),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(admission) = self.admission.take() else { return };
        let (throttle, store, clock, outcome) =
            (self.throttle.clone(), Arc::clone(&self.store), Arc::clone(&self.clock), self.outcome);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        // why until forgotten: past two buckets the place is gone anyway; the count bounds the
        // task where the clock does not move (tests) or jumps.
        let forgotten = after(admission.bucket, throttle.attempt_limit.saturating_mul(2));
        let tries = (throttle.attempt_limit.as_secs() * 2).clamp(5, 600);
        let finish = async move {
            let mut wait = FINISH_RETRY;
            for attempt in 0..=tries {
                if attempt > 0 {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(FINISH_RETRY_MAX);
                }
                if throttle.finish(&*store, admission.clone(), outcome, clock.now()).await.is_ok() {
                    return;
                }
                if clock.now() >= forgotten {
                    break;
                }
            }
            tracing::warn!("could not finish an interrupted login attempt; its place is forgotten in time");
        };
        runtime.spawn(finish.in_current_span());
    }
}

impl Throttle {
    /// Join the line of the first of `keys` that has one on this process, if any.
    fn join_existing_line(&self, keys: &[Key]) -> Option<Place> {
        let (key, turn) = self.lines.join_existing(keys)?;
        Some(self.place(key, turn))
    }

    /// Join (or start) the line of `key`.
    fn join_line(&self, key: &Key) -> Place {
        let turn = self.lines.join(key);
        self.place(key.clone(), turn)
    }

    fn place(&self, key: Key, turn: Arc<Turn>) -> Place {
        self.metrics.waiting.inc();
        Place {
            lines: Arc::clone(&self.lines),
            key,
            turn,
            first: None,
            metrics: self.metrics.clone(),
            outcome: "cancelled",
        }
    }
}

/// This process's attempts waiting for a place, in line per counter: the first in line tries
/// the counter again and again, the others wait their turn. A line exists only while someone
/// is in it.
#[derive(Debug, Default)]
struct Lines(Mutex<HashMap<Key, Line>>);

#[derive(Debug)]
struct Line {
    /// How many are in it.
    waiting: usize,
    turn: Arc<Turn>,
}

/// The turn of a line.
#[derive(Debug, Default)]
struct Turn {
    /// Held by the first in line. why a tokio mutex: it hands itself over in the order it was
    /// asked for, which is the line's order.
    first: Arc<tokio::sync::Mutex<()>>,
    /// A place of the line's counter was given back on this process. why `notify_one`: only
    /// the first in line listens, and a notice sent while it is trying is kept for it.
    freed: Notify,
}

impl Lines {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Line>> {
        // why a poisoned lock is taken anyway: every change under it is a single insert,
        // count or remove, which a panic cannot leave half done.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Join (or start) the line of `key`.
    fn join(&self, key: &Key) -> Arc<Turn> {
        let mut map = self.map();
        let line = map.entry(key.clone()).or_insert_with(|| Line { waiting: 0, turn: Arc::default() });
        line.waiting += 1;
        Arc::clone(&line.turn)
    }

    /// Join the line of the first of `keys` that has one: its key and turn.
    fn join_existing(&self, keys: &[Key]) -> Option<(Key, Arc<Turn>)> {
        let mut map = self.map();
        let key = keys.iter().find(|k| map.contains_key(*k))?;
        let line = map.get_mut(key)?;
        line.waiting += 1;
        Some((key.clone(), Arc::clone(&line.turn)))
    }

    fn leave(&self, key: &Key) {
        let mut map = self.map();
        if let Some(line) = map.get_mut(key) {
            line.waiting = line.waiting.saturating_sub(1);
            if line.waiting == 0 {
                map.remove(key);
            }
        }
    }

    /// Tell the first in the lines of `keys` that a place was given back.
    fn freed(&self, keys: &[Key]) {
        let map = self.map();
        for key in keys {
            if let Some(line) = map.get(key) {
                line.turn.freed.notify_one();
            }
        }
    }

    fn waiting(&self) -> usize {
        self.map().values().map(|l| l.waiting).sum()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

/// One attempt's place in a line. Dropped (admitted, refused, given up, or cancelled with its
/// request), it hands the turn on, leaves the line (removing it if it was the last), and
/// counts the wait by `outcome`.
struct Place {
    lines: Arc<Lines>,
    key: Key,
    turn: Arc<Turn>,
    /// The turn, once it is this attempt's.
    first: Option<OwnedMutexGuard<()>>,
    metrics: ThrottleMetrics,
    outcome: &'static str,
}

impl Place {
    /// The refusal of an attempt that waited as long as it may.
    fn gave_up(&mut self) -> Error {
        self.outcome = "gave_up";
        Error::Throttled { retry_after: BUSY_RETRY }
    }

    /// Wait to be first in line.
    async fn first_in_line(&mut self) {
        if self.first.is_none() {
            self.first = Some(Arc::clone(&self.turn.first).lock_owned().await);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.first = None;
        self.lines.leave(&self.key);
        self.metrics.waiting.dec();
        self.metrics.waits.get_or_create(&ThrottleWaitLabels { outcome: self.outcome }).inc();
    }
}

/// The pause of the first in line before its try after `tries` tries: `POLL_FIRST` doubled
/// each try up to `POLL_MAX`, less a random part (from `jitter`) of up to half, so that the
/// first in line of several replicas do not ask in step.
fn poll_pause(tries: u32, jitter: u64) -> Duration {
    let full = POLL_FIRST.saturating_mul(1 << tries.min(16)).min(POLL_MAX);
    let half = full / 2;
    let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).saturating_add(1);
    full - Duration::from_micros(jitter % span)
}

/// The subject of an address's counter: the address, or its /64 for IPv6.
pub fn ip_subject(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let net = ipnet::Ipv6Net::new(v6, 64).map(|n| n.trunc()).unwrap_or_else(|_| v6.into());
            net.to_string()
        }
    }
}

/// The subject of an account's counter (`user:alice`), or `None` for a name that no account
/// can have.
pub fn account_subject(kind: PrincipalKind, name: &str) -> Option<String> {
    Username::parse(name).ok().map(|name| format!("{kind}:{}", name.as_str()))
}

/// Start a new fixed window when `now` is past the counter's, or empty an expired counter.
fn roll(c: &mut ThrottleCounter, rule: &ThrottleRule, now: OffsetDateTime) {
    let start = window_start(now, rule.window);
    if c.expires_at <= now {
        *c = ThrottleCounter { window_start: start, ..ThrottleCounter::empty(c.scope, std::mem::take(&mut c.subject)) };
        return;
    }
    let windows = (start - c.window_start).whole_microseconds() / micros(rule.window);
    match windows {
        w if w <= 0 => return,
        1 => c.prev_failures = c.failures,
        _ => c.prev_failures = 0,
    }
    c.failures = 0;
    c.window_start = start;
}

/// The sliding-window count of a rolled counter (failures only).
fn count(c: &ThrottleCounter, rule: &ThrottleRule, now: OffsetDateTime) -> u64 {
    let window = micros(rule.window);
    let into = (now - c.window_start).whole_microseconds().clamp(0, window);
    let carried = i128::from(c.prev_failures) * (window - into) / window;
    u64::try_from(carried).unwrap_or(0) + u64::from(c.failures)
}

fn window_start(now: OffsetDateTime, window: Duration) -> OffsetDateTime {
    let us = now.unix_timestamp_nanos() / 1_000;
    let aligned = us - us.rem_euclid(micros(window));
    OffsetDateTime::from_unix_timestamp_nanos(aligned * 1_000).unwrap_or(now)
}

fn micros(d: Duration) -> i128 {
    i128::try_from(d.as_micros()).unwrap_or(i128::MAX).max(1)
}

fn after(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    time::Duration::try_from(d).ok().and_then(|d| t.checked_add(d)).unwrap_or(t)
}

/// A wait for `Retry-After`: whole seconds, rounded up, at least one.
fn whole_seconds(d: time::Duration) -> Duration {
    let us = d.whole_microseconds().max(1);
    Duration::from_secs(u64::try_from((us + 999_999) / 1_000_000).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn rule(max: u32) -> ThrottleRule {
        ThrottleRule {
            max_failures: max,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
            forget_after: Duration::from_secs(3600),
        }
    }

    fn throttle() -> Throttle {
        Throttle::new(ThrottleConfig { enabled: true, ip: rule(3), account: rule(100) }, Duration::from_secs(30))
    }

    fn counter() -> ThrottleCounter {
        ThrottleCounter::empty(ThrottleScope::Ip, "192.0.2.1".into())
    }

    const T0: OffsetDateTime = datetime!(2030-01-01 00:00:00 UTC);

    fn secs(s: i64) -> time::Duration {
        time::Duration::seconds(s)
    }

    /// Take a place; whether the attempt was admitted (neither locked out nor busy).
    fn admit(t: &Throttle, c: &mut [ThrottleCounter], now: OffsetDateTime) -> bool {
        let busy = AtomicBool::new(false);
        let before: Vec<u32> = c.iter().map(|c| t.in_flight(c, now)).collect();
        t.attempt(c, now, &busy);
        let admitted = c.iter().zip(&before).all(|(c, &b)| t.in_flight(c, now) == b + 1);
        assert!(!(admitted && busy.load(Ordering::Relaxed)), "admitted and busy at once");
        admitted
    }

    /// A wrong password: admitted, then failed. Whether it was admitted.
    fn guess(t: &Throttle, c: &mut [ThrottleCounter], now: OffsetDateTime) -> bool {
        let admitted = admit(t, c, now);
        if admitted {
            t.end(c, Outcome::Failed, bucket(t, now), now);
        }
        admitted
    }

    /// The bucket an attempt admitted at `now` takes its places in.
    fn bucket(t: &Throttle, now: OffsetDateTime) -> OffsetDateTime {
        window_start(now, t.attempt_limit)
    }

    #[test]
    fn the_attempt_past_the_limit_is_refused_and_locks() {
        let t = throttle();
        let mut c = [counter()];
        for i in 0..3 {
            assert!(guess(&t, &mut c, T0 + secs(i)), "attempt {i} admitted");
            assert_eq!(c[0].locked_until, None);
        }
        assert_eq!((c[0].failures, c[0].in_flight), (3, 0));
        assert!(!guess(&t, &mut c, T0 + secs(3)));
        assert_eq!(c[0].locked_until, Some(T0 + secs(3 + 60)));
        assert_eq!(c[0].failures, 3, "a refused attempt is not counted");
        assert_eq!(c[0].strikes, 1);
    }

    #[test]
    fn attempts_in_flight_hold_places_but_only_failures_lock_out() {
        let t = throttle();
        let mut c = [counter()];
        for i in 0..3 {
            assert!(admit(&t, &mut c, T0 + secs(i)), "attempt {i} admitted");
        }
        // A fourth at once is refused (parallel guesses cannot slip past), without a lockout:
        // the three may all be correct.
        let busy = AtomicBool::new(false);
        t.attempt(&mut c, T0 + secs(3), &busy);
        assert!(busy.load(Ordering::Relaxed));
        assert_eq!((c[0].in_flight, c[0].failures, c[0].locked_until, c[0].strikes), (3, 0, None, 0));
        // They succeed: their places are given back, and the next one is admitted.
        for _ in 0..3 {
            t.end(&mut c, Outcome::Released, bucket(&t, T0), T0 + secs(4));
        }
        assert_eq!((c[0].in_flight, c[0].prev_in_flight, c[0].failures), (0, 0, 0));
        assert!(admit(&t, &mut c, T0 + secs(5)));
        // Had they been wrong, the next attempt would be locked out.
        for _ in 0..2 {
            assert!(admit(&t, &mut c, T0 + secs(6)));
        }
        for _ in 0..3 {
            t.end(&mut c, Outcome::Failed, bucket(&t, T0), T0 + secs(7));
        }
        assert_eq!((c[0].in_flight, c[0].failures), (0, 3));
        assert!(!admit(&t, &mut c, T0 + secs(8)));
        assert_eq!(c[0].locked_until, Some(T0 + secs(8 + 60)));
    }

    #[test]
    fn places_never_given_back_are_forgotten_within_two_request_timeouts() {
        // Buckets of 30 s (the attempt limit), aligned: T0 starts one.
        let t = throttle();
        let mut c = [counter()];
        for _ in 0..2 {
            assert!(admit(&t, &mut c, T0 + secs(25)), "two that will never end");
        }
        // A busy address keeps logging in: the lost places still count in the next bucket...
        assert!(admit(&t, &mut c, T0 + secs(35)));
        t.end(&mut c, Outcome::Released, bucket(&t, T0 + secs(35)), T0 + secs(36));
        assert_eq!(t.in_flight(&c[0], T0 + secs(59)), 2);
        assert!(admit(&t, &mut c, T0 + secs(40)));
        assert!(!admit(&t, &mut c, T0 + secs(41)), "2 lost + 1 live: the limit of 3");
        // ...and are forgotten in the one after, however busy the counter stays.
        assert_eq!(t.in_flight(&c[0], T0 + secs(60)), 1, "only the live one");
        assert!(admit(&t, &mut c, T0 + secs(60)));
        assert!(admit(&t, &mut c, T0 + secs(61)));
        // The live one (of the 30 s bucket) ends in the next bucket: its own place is freed...
        t.end(&mut c, Outcome::Released, bucket(&t, T0 + secs(40)), T0 + secs(62));
        assert_eq!((c[0].prev_in_flight, c[0].in_flight), (0, 2));
        // ...and a late end of a forgotten one (of the 0 s bucket) takes nothing from them.
        t.end(&mut c, Outcome::Released, bucket(&t, T0 + secs(25)), T0 + secs(63));
        assert_eq!((c[0].prev_in_flight, c[0].in_flight), (0, 2));
        // A late failure still counts as one.
        t.end(&mut c, Outcome::Failed, bucket(&t, T0 + secs(25)), T0 + secs(64));
        assert_eq!((c[0].in_flight, c[0].failures), (2, 1));
        assert!(c[0].expires_at >= T0 + secs(60 + 60), "a counter outlives its places in flight");
    }

    #[test]
    fn lockouts_double_up_to_the_maximum() {
        let t = throttle();
        let mut c = [counter()];
        let mut now = T0;
        let mut lockouts = Vec::new();
        for _ in 0..9 {
            // Fill the window, then one more to be locked.
            loop {
                guess(&t, &mut c, now);
                if let Some(until) = c[0].locked_until.filter(|&u| u > now) {
                    lockouts.push((until - now).whole_seconds());
                    now = until;
                    break;
                }
                now += secs(1);
            }
        }
        assert_eq!(lockouts, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    }

    #[test]
    fn the_window_slides() {
        let t = throttle();
        let mut c = [counter()];
        // Three failures late in one window...
        for i in 0..3 {
            guess(&t, &mut c, T0 + secs(50 + i));
        }
        // ...still count, weighted, early in the next: 3 * (60 - 15) / 60 = 2 carried.
        let now = T0 + secs(75);
        assert_eq!(t.failures(&c[0], now), 2);
        assert!(guess(&t, &mut c, now));
        assert_eq!(c[0].locked_until, None, "2 carried + 1 is within 3");
        assert!(!guess(&t, &mut c, now));
        assert!(c[0].locked_until.is_some_and(|u| u > now), "2 carried + 2 is over 3");
        // Two windows later nothing is carried.
        assert_eq!(t.failures(&c[0], T0 + secs(60 * 4)), 0);
    }

    #[test]
    fn a_locked_counter_stays_locked_and_a_forgotten_one_is_empty() {
        let t = throttle();
        let mut c = [counter()];
        for i in 0..4 {
            guess(&t, &mut c, T0 + secs(i));
        }
        let until = c[0].locked_until.unwrap();
        assert!(!guess(&t, &mut c, until - secs(1)));
        assert_eq!(c[0].locked_until, Some(until), "attempts during a lockout do not extend it");
        assert_eq!(c[0].strikes, 1);
        let later = c[0].expires_at;
        assert!(guess(&t, &mut c, later));
        assert_eq!((c[0].failures, c[0].strikes, c[0].locked_until), (1, 0, None));
    }

    #[test]
    fn one_refusing_counter_refuses_the_attempt_everywhere() {
        let t = throttle();
        let mut c = [counter(), ThrottleCounter::empty(ThrottleScope::Account, "user:alice".into())];
        for i in 0..3 {
            guess(&t, &mut c, T0 + secs(i));
        }
        assert!(!guess(&t, &mut c, T0 + secs(3)));
        assert!(c[0].locked_until.is_some());
        assert_eq!(c[1].locked_until, None, "the account is far below its own limit");
        assert_eq!((c[1].failures, c[1].in_flight), (3, 0), "the refused attempt is not counted on the account either");
    }

    #[test]
    fn an_attempt_run_again_on_fresh_counters_decides_afresh() {
        // The store retries a serialization failure by running the step again on the counters
        // as they are then: a `busy` from the first run must not refuse an admitted attempt.
        let t = throttle();
        let busy = AtomicBool::new(false);
        let mut full = [counter()];
        for _ in 0..3 {
            assert!(admit(&t, &mut full, T0));
        }
        t.attempt(&mut full, T0, &busy);
        assert!(busy.load(Ordering::Relaxed) && t.full(&full[0], T0));
        let mut fresh = [counter()];
        t.attempt(&mut fresh, T0, &busy);
        assert!(!busy.load(Ordering::Relaxed), "the second run took a place");
        assert_eq!(fresh[0].in_flight, 1);
    }

    #[test]
    fn a_counter_is_full_by_its_own_rule() {
        let t = throttle();
        let mut c = [counter(), ThrottleCounter::empty(ThrottleScope::Account, "user:alice".into())];
        for _ in 0..2 {
            assert!(guess(&t, &mut c, T0));
        }
        assert!(admit(&t, &mut c, T0));
        assert!(t.full(&c[0], T0), "2 failures + 1 in flight: the address's limit of 3");
        assert!(!t.full(&c[1], T0), "far below the account's limit of 100");
    }

    #[test]
    fn pauses_between_tries_grow_to_a_cap_and_are_jittered_down_by_up_to_half() {
        for tries in 0..40 {
            let full = POLL_FIRST.saturating_mul(1 << tries.min(16)).min(POLL_MAX);
            for jitter in [0, 1, 777, u64::MAX / 3, u64::MAX] {
                let pause = poll_pause(tries, jitter);
                assert!(pause <= full && pause >= full / 2, "try {tries}, jitter {jitter}: {pause:?}");
            }
        }
        assert_eq!(poll_pause(0, 0), POLL_FIRST);
        assert_eq!(poll_pause(100, 0), POLL_MAX);
        assert_eq!(poll_pause(100, (POLL_MAX / 2).as_micros() as u64), POLL_MAX / 2);
    }

    #[tokio::test]
    async fn a_line_hands_its_turn_over_in_arrival_order_and_goes_when_empty() {
        let t = throttle();
        let ip: Key = (ThrottleScope::Ip, "192.0.2.1".into());
        let account: Key = (ThrottleScope::Account, "user:alice".into());
        assert!(t.join_existing_line(std::slice::from_ref(&ip)).is_none(), "no line yet");
        let mut first = t.join_line(&ip);
        first.first_in_line().await;
        // Later attempts with the address among their counters queue behind, in order.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut behind = Vec::new();
        for n in 0..4 {
            let mut place = t.join_existing_line(&[account.clone(), ip.clone()]).expect("the address's line");
            assert_eq!(place.key, ip);
            let order = Arc::clone(&order);
            behind.push(tokio::spawn(async move {
                place.first_in_line().await;
                order.lock().unwrap().push(n);
                tokio::task::yield_now().await;
            }));
        }
        // One more, which gives up before its turn: it holds nothing and leaves the line.
        let mut quitter = t.join_existing_line(std::slice::from_ref(&ip)).unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(10), quitter.first_in_line()).await.is_err());
        assert_eq!(t.waiting(), 6);
        drop(quitter);
        assert_eq!(t.waiting(), 5);
        tokio::task::yield_now().await;
        assert!(order.lock().unwrap().is_empty(), "nobody's turn while the first waits");
        drop(first);
        for task in behind {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
        assert_eq!((t.waiting(), t.lines.len()), (0, 0), "an empty line is removed");
        // A notice of a place given back while nobody listens is kept for the first in line.
        let mut next = t.join_line(&account);
        next.first_in_line().await;
        t.lines.freed(std::slice::from_ref(&account));
        tokio::time::timeout(Duration::from_secs(5), next.turn.freed.notified()).await.unwrap();
        drop(next);
        assert_eq!(t.lines.len(), 0);
    }

    #[tokio::test]
    async fn a_wait_dropped_before_its_turn_leaves_no_line() {
        let t = throttle();
        let ip: Key = (ThrottleScope::Ip, "192.0.2.1".into());
        let mut first = t.join_line(&ip);
        first.first_in_line().await;
        let waiter = {
            let t = t.clone();
            let ip = ip.clone();
            async move {
                let mut place = t.join_existing_line(&[ip]).unwrap();
                place.first_in_line().await;
            }
        };
        assert!(tokio::time::timeout(Duration::from_millis(10), waiter).await.is_err());
        assert_eq!(t.waiting(), 1, "only the first is left");
        drop(first);
        assert_eq!((t.waiting(), t.lines.len()), (0, 0));
    }

    #[test]
    fn subjects() {
        assert_eq!(ip_subject("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(ip_subject("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(ip_subject("2001:db8:1:2:3:4:5:6".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(account_subject(PrincipalKind::User, "alice").as_deref(), Some("user:alice"));
        assert_eq!(account_subject(PrincipalKind::Reseller, "acme").as_deref(), Some("reseller:acme"));
        assert_eq!(account_subject(PrincipalKind::User, " alice"), None);
        assert_eq!(whole_seconds(time::Duration::milliseconds(1)), Duration::from_secs(1));
        assert_eq!(whole_seconds(time::Duration::milliseconds(60_001)), Duration::from_secs(61));
    }
}
