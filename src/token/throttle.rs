//! Login throttling: failed logins counted per client address and per account, in the
//! database so that every replica sees the same counts.
//!
//! Policy:
//! - An attempt takes a place *before* its password is checked, under the counters' row
//!   locks: it is in flight until its outcome is known. Holding that place is what keeps
//!   parallel guesses from slipping past the limit. An attempt that would take the failures
//!   and the attempts in flight past a limit is refused (429, `Retry-After: 1`) without a
//!   lockout: in-flight attempts may all succeed, so many correct logins at once from one
//!   address are never locked out. A refused password turns its place into a failure; a
//!   success (or a failure for the server's sake, such as a full hashing queue, or an
//!   interrupted request) gives it back, so only refused credentials are counted.
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

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tracing::Instrument as _;

use crate::config::{ThrottleConfig, ThrottleRule};
use crate::error::Error;
use crate::model::{PrincipalKind, Username};
use crate::model::{ThrottleCounter, ThrottleScope};
use crate::store::Store;
use crate::token::clock::Clock;

/// The throttle: the rules, over the store's counters.
#[derive(Debug, Clone)]
pub struct Throttle {
    config: ThrottleConfig,
    /// The longest an attempt can be in flight (the request timeout).
    attempt_limit: Duration,
}

/// An admitted attempt: the counters it holds a place in, until `Throttle::finish`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an admitted attempt must be finished with `Throttle::finish` (or watched by a `Pending`)"]
pub struct Admission {
    keys: Vec<(ThrottleScope, String)>,
    /// The bucket its places were taken in.
    bucket: OffsetDateTime,
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

/// why 1 s: the attempts in flight are password checks, which end within a second or so.
const BUSY_RETRY: Duration = Duration::from_secs(1);

impl Throttle {
    /// A throttle with the given rules (already validated by `Config::validate`); no attempt
    /// takes longer than `attempt_limit` (the request timeout).
    pub fn new(config: ThrottleConfig, attempt_limit: Duration) -> Self {
        Throttle { config, attempt_limit }
    }

    fn rule(&self, scope: ThrottleScope) -> &ThrottleRule {
        match scope {
            ThrottleScope::Ip => &self.config.ip,
            ThrottleScope::Account => &self.config.account,
        }
    }

    /// Take a place for a login attempt for `username` of `kind` from `client`, or refuse it
    /// with `Error::Throttled` when the address or the account is locked out or at its limit.
    pub async fn admit(
        &self,
        store: &dyn Store,
        kind: PrincipalKind,
        username: &str,
        client: IpAddr,
        now: OffsetDateTime,
    ) -> Result<Admission, Error> {
        if !self.config.enabled {
            return Ok(Admission { keys: Vec::new(), bucket: now });
        }
        let mut keys = vec![(ThrottleScope::Ip, ip_subject(client))];
        if let Some(account) = account_subject(kind, username) {
            keys.push((ThrottleScope::Account, account));
        }
        let borrowed: Vec<(ThrottleScope, &str)> = keys.iter().map(|(s, k)| (*s, k.as_str())).collect();
        let busy = AtomicBool::new(false);
        let step = |counters: &mut [ThrottleCounter]| self.attempt(counters, now, &busy);
        let counters = store.update_throttle(&borrowed, &step).await?;
        match counters.iter().filter_map(|c| c.locked_until).filter(|&until| until > now).max() {
            Some(until) => Err(Error::Throttled { retry_after: whole_seconds(until - now) }),
            None if busy.load(Ordering::Relaxed) => Err(Error::Throttled { retry_after: BUSY_RETRY }),
            None => Ok(Admission { keys, bucket: window_start(now, self.attempt_limit) }),
        }
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

    /// The change an attempt makes to its counters (the ones of one login, all locked).
    /// Sets `busy` when the attempt is refused only because of the attempts in flight.
    fn attempt(&self, counters: &mut [ThrottleCounter], now: OffsetDateTime, busy: &AtomicBool) {
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
            let full = counters.iter().any(|c| {
                let rule = self.rule(c.scope);
                let in_flight = u64::from(c.in_flight) + u64::from(c.prev_in_flight);
                count(c, rule, now) + in_flight + 1 > u64::from(rule.max_failures)
            });
            if full {
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
}

/// The first wait before an interrupted attempt's end is retried, doubled each time up to
/// `FINISH_RETRY_MAX` while the database does not answer. why short at first: right after an
/// outage, a place held a moment too long may ask a correct login to retry.
const FINISH_RETRY: Duration = Duration::from_millis(50);
const FINISH_RETRY_MAX: Duration = Duration::from_secs(1);

impl Pending {
    /// Take a place for an attempt, in a task of its own: a request cancelled while the place
    /// is being written (its timeout, a client gone, a database that stalls) cannot leave it
    /// taken, since the task's `Pending`, which nobody waits for any more, is then dropped and
    /// gives it back.
    pub async fn admit(
        throttle: &Throttle,
        store: &Arc<dyn Store>,
        clock: &Arc<dyn Clock>,
        (kind, username, client): (PrincipalKind, &str, IpAddr),
    ) -> Result<Self, Error> {
        let (throttle, store, clock, username) =
            (throttle.clone(), Arc::clone(store), Arc::clone(clock), username.to_owned());
        let admission = async move {
            let admission = throttle.admit(&*store, kind, &username, client, clock.now()).await?;
            Ok(Pending { throttle, store, clock, admission: Some(admission), outcome: Outcome::Released })
        };
        tokio::spawn(admission.in_current_span())
            .await
            .map_err(|e| Error::Internal(format!("the throttle task failed: {e}")))?
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
