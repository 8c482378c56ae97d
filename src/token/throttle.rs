//! Login throttling: failed logins counted per client address and per account, in the
//! database so that every replica sees the same counts.
//!
//! Policy:
//! - An attempt is counted *before* its password is checked, under the counters' row locks,
//!   and refused (429 with `Retry-After`) if it would exceed a limit. Counting first is what
//!   keeps parallel guesses from slipping past the limit: each one holds a place in the
//!   count while its password is hashed. A successful login takes its place back (as does
//!   one that failed for the server's sake, such as a full hashing queue), so only refused
//!   credentials remain counted.
//! - The window slides: the count is the current fixed window's plus the previous one's
//!   weighted by how much of it still overlaps (the usual two-bucket approximation).
//! - Going over a limit starts a lockout of `lockout`, doubled for each earlier lockout of the
//!   same counter, up to `max_lockout`. Attempts during a lockout are refused and not counted,
//!   so hammering a locked counter costs the database one locked read-write and no hashing.
//! - Per address first: an attacker at one address is stopped by that address's limit long
//!   before the (much higher) per-account limit, so the owner logging in from elsewhere is
//!   not locked out. IPv6 addresses count by /64, since one host usually holds a whole /64.
//! - Unknown account names are counted like known ones, so a 429 tells nothing about which
//!   accounts exist. Names that cannot be account names at all are counted per address only.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::config::{ThrottleConfig, ThrottleRule};
use crate::error::Error;
use crate::principal::{PrincipalKind, Username};
use crate::store::{Store, ThrottleCounter, ThrottleScope};
use crate::token::clock::Clock;

/// The throttle: the rules, over the store's counters.
#[derive(Debug, Clone)]
pub struct Throttle {
    config: ThrottleConfig,
}

/// An admitted attempt: the counters it holds a place in, to give back on success.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an attempt that was not refused must give its place back with `Throttle::give_back`"]
pub struct Admission {
    keys: Vec<(ThrottleScope, String)>,
}

impl Throttle {
    /// A throttle with the given rules (already validated by `Config::validate`).
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle { config }
    }

    fn rule(&self, scope: ThrottleScope) -> &ThrottleRule {
        match scope {
            ThrottleScope::Ip => &self.config.ip,
            ThrottleScope::Account => &self.config.account,
        }
    }

    /// Count a login attempt for `username` of `kind` from `client`, or refuse it with
    /// `Error::Throttled` when the address or the account is locked out or at its limit.
    pub async fn admit(
        &self,
        store: &dyn Store,
        kind: PrincipalKind,
        username: &str,
        client: IpAddr,
        now: OffsetDateTime,
    ) -> Result<Admission, Error> {
        if !self.config.enabled {
            return Ok(Admission { keys: Vec::new() });
        }
        let mut keys = vec![(ThrottleScope::Ip, ip_subject(client))];
        if let Some(account) = account_subject(kind, username) {
            keys.push((ThrottleScope::Account, account));
        }
        let borrowed: Vec<(ThrottleScope, &str)> = keys.iter().map(|(s, k)| (*s, k.as_str())).collect();
        let step = |counters: &mut [ThrottleCounter]| self.attempt(counters, now);
        let counters = store.update_throttle(&borrowed, &step).await?;
        match counters.iter().filter_map(|c| c.locked_until).filter(|&until| until > now).max() {
            Some(until) => Err(Error::Throttled { retry_after: whole_seconds(until - now) }),
            None => Ok(Admission { keys }),
        }
    }

    /// Give back the place an attempt held in its counters: a successful login, or one that
    /// failed for the server's sake rather than for its credentials.
    pub async fn give_back(&self, store: &dyn Store, admission: Admission, now: OffsetDateTime) -> Result<(), Error> {
        if admission.keys.is_empty() {
            return Ok(());
        }
        let borrowed: Vec<(ThrottleScope, &str)> = admission.keys.iter().map(|(s, k)| (*s, k.as_str())).collect();
        let step = |counters: &mut [ThrottleCounter]| {
            for c in counters {
                let rule = *self.rule(c.scope);
                roll(c, &rule, now);
                // why the previous window too: the attempt may have been counted just before
                // the window turned.
                if c.failures > 0 {
                    c.failures -= 1;
                } else {
                    c.prev_failures = c.prev_failures.saturating_sub(1);
                }
                c.expires_at = expiry(c, &rule);
            }
        };
        store.update_throttle(&borrowed, &step).await?;
        Ok(())
    }

    /// The change an attempt makes to its counters (the ones of one login, all locked).
    fn attempt(&self, counters: &mut [ThrottleCounter], now: OffsetDateTime) {
        for c in counters.iter_mut() {
            let rule = *self.rule(c.scope);
            roll(c, &rule, now);
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
        for c in counters.iter_mut() {
            if !refused {
                c.failures = c.failures.saturating_add(1);
            }
            c.expires_at = expiry(c, self.rule(c.scope));
        }
    }

    /// How many failures a counter holds now, by the sliding window.
    pub fn failures(&self, c: &ThrottleCounter, now: OffsetDateTime) -> u64 {
        let rule = *self.rule(c.scope);
        let mut c = c.clone();
        roll(&mut c, &rule, now);
        count(&c, &rule, now)
    }
}

/// An admitted attempt on its way: on drop, unless kept (refused credentials) or already
/// given back, its place is given back in the background, retried while the database is
/// unreachable.
pub struct Pending {
    throttle: Throttle,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    admission: Option<Admission>,
}

/// why 5 tries a second apart: long enough to ride out a brief outage (the case that leaves
/// places behind), short enough that a task does not linger.
const GIVE_BACK_TRIES: u32 = 5;

impl Pending {
    /// Watch `admission` until the attempt's outcome is known.
    pub fn new(throttle: &Throttle, store: &Arc<dyn Store>, clock: &Arc<dyn Clock>, admission: Admission) -> Self {
        Pending {
            throttle: throttle.clone(),
            store: Arc::clone(store),
            clock: Arc::clone(clock),
            admission: Some(admission),
        }
    }

    /// The attempt failed on its credentials: it stays counted.
    pub fn keep(&mut self) {
        self.admission = None;
    }

    /// Give the place back now (and in the background if the database does not answer).
    pub async fn give_back(&mut self) {
        // why a clone, cleared only once done: if this await is cancelled, drop retries, so
        // an attempt is never left counted (at worst it is given back twice, which errs
        // toward the person logging in).
        let Some(admission) = self.admission.clone() else { return };
        match self.throttle.give_back(&*self.store, admission, self.clock.now()).await {
            Ok(()) => self.admission = None,
            Err(e) => tracing::warn!(error = %e, "could not take an attempt back off the throttle counters; retrying"),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(admission) = self.admission.take() else { return };
        let (throttle, store, clock) = (self.throttle.clone(), Arc::clone(&self.store), Arc::clone(&self.clock));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            for _ in 0..GIVE_BACK_TRIES {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if throttle.give_back(&*store, admission.clone(), clock.now()).await.is_ok() {
                    return;
                }
            }
            tracing::warn!("gave up taking an interrupted attempt back off the throttle counters");
        });
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

/// The sliding-window count of a rolled counter.
fn count(c: &ThrottleCounter, rule: &ThrottleRule, now: OffsetDateTime) -> u64 {
    let window = micros(rule.window);
    let into = (now - c.window_start).whole_microseconds().clamp(0, window);
    let carried = i128::from(c.prev_failures) * (window - into) / window;
    u64::try_from(carried).unwrap_or(0) + u64::from(c.failures)
}

/// When a counter is empty again: its failures have left the window, its lockout is over,
/// and `forget_after` has passed (which is how long the lockout count is remembered).
fn expiry(c: &ThrottleCounter, rule: &ThrottleRule) -> OffsetDateTime {
    let counted = after(c.window_start, rule.window.saturating_mul(2));
    let end = c.locked_until.map_or(counted, |until| until.max(counted));
    after(end, rule.forget_after)
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
        Throttle::new(ThrottleConfig { enabled: true, ip: rule(3), account: rule(100) })
    }

    fn counter() -> ThrottleCounter {
        ThrottleCounter::empty(ThrottleScope::Ip, "192.0.2.1".into())
    }

    const T0: OffsetDateTime = datetime!(2030-01-01 00:00:00 UTC);

    fn secs(s: i64) -> time::Duration {
        time::Duration::seconds(s)
    }

    #[test]
    fn the_attempt_past_the_limit_is_refused_and_locks() {
        let t = throttle();
        let mut c = [counter()];
        for i in 0..3 {
            t.attempt(&mut c, T0 + secs(i));
            assert_eq!(c[0].locked_until, None, "attempt {i} admitted");
        }
        assert_eq!(c[0].failures, 3);
        t.attempt(&mut c, T0 + secs(3));
        assert_eq!(c[0].locked_until, Some(T0 + secs(3 + 60)));
        assert_eq!(c[0].failures, 3, "a refused attempt is not counted");
        assert_eq!(c[0].strikes, 1);
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
                t.attempt(&mut c, now);
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
            t.attempt(&mut c, T0 + secs(50 + i));
        }
        // ...still count, weighted, early in the next: 3 * (60 - 15) / 60 = 2 carried.
        let now = T0 + secs(75);
        assert_eq!(t.failures(&c[0], now), 2);
        t.attempt(&mut c, now);
        assert_eq!(c[0].locked_until, None, "2 carried + 1 is within 3");
        t.attempt(&mut c, now);
        assert!(c[0].locked_until.is_some_and(|u| u > now), "2 carried + 2 is over 3");
        // Two windows later nothing is carried.
        assert_eq!(t.failures(&c[0], T0 + secs(60 * 4)), 0);
    }

    #[test]
    fn a_locked_counter_stays_locked_and_a_forgotten_one_is_empty() {
        let t = throttle();
        let mut c = [counter()];
        for i in 0..4 {
            t.attempt(&mut c, T0 + secs(i));
        }
        let until = c[0].locked_until.unwrap();
        t.attempt(&mut c, until - secs(1));
        assert_eq!(c[0].locked_until, Some(until), "attempts during a lockout do not extend it");
        assert_eq!(c[0].strikes, 1);
        let later = c[0].expires_at;
        t.attempt(&mut c, later);
        assert_eq!((c[0].failures, c[0].strikes, c[0].locked_until), (1, 0, None));
    }

    #[test]
    fn one_refusing_counter_refuses_the_attempt_everywhere() {
        let t = throttle();
        let mut c = [counter(), ThrottleCounter::empty(ThrottleScope::Account, "user:alice".into())];
        for i in 0..3 {
            t.attempt(&mut c, T0 + secs(i));
        }
        t.attempt(&mut c, T0 + secs(3));
        assert!(c[0].locked_until.is_some());
        assert_eq!(c[1].locked_until, None, "the account is far below its own limit");
        assert_eq!(c[1].failures, 3, "the refused attempt is not counted on the account either");
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
