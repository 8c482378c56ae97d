//! The clock: the only place in tokenauth that reads the wall clock.
//!
//! Everything that depends on time (expiry, bump, sliding refresh, the sweep) asks a `Clock`,
//! so tests drive time with a `FixedClock`. `clippy.toml` bans `OffsetDateTime::now_utc` and
//! `SystemTime::now` everywhere else.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// A source of the current time, always UTC and truncated to whole microseconds.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, in UTC, truncated to microseconds.
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // why: this is the one sanctioned reader of the wall clock
    fn now(&self) -> OffsetDateTime {
        truncate(OffsetDateTime::now_utc())
    }
}

/// A clock that stands still until told to move; for tests of expiry and refresh.
#[derive(Debug)]
pub struct FixedClock(Mutex<OffsetDateTime>);

impl FixedClock {
    /// A clock stopped at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        FixedClock(Mutex::new(truncate(at)))
    }

    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now = truncate(*now + by);
    }

    /// Set the clock to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = truncate(at);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Truncate to whole microseconds in UTC.
///
/// why: Postgres `timestamptz` keeps microseconds, so a value with nanoseconds would not
/// round-trip; truncating at the source makes both backends return exactly what was written.
/// Never panics: a time whose UTC equivalent falls outside the calendar is returned as is
/// (callers with client input use `to_utc_checked` first).
pub fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.checked_to_offset(time::UtcOffset::UTC).unwrap_or(t);
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

/// `t` in UTC, truncated to microseconds, if that is within years 1..=9999 (what RFC 3339
/// and both databases can represent); `None` otherwise.
pub fn to_utc_checked(t: OffsetDateTime) -> Option<OffsetDateTime> {
    t.checked_to_offset(time::UtcOffset::UTC).filter(|u| (1..=9999).contains(&u.year())).map(truncate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn truncates_to_microseconds_in_utc() {
        let t = datetime!(2030-01-02 03:04:05.123_456_789 +02:00);
        let got = truncate(t);
        assert_eq!(got, datetime!(2030-01-02 01:04:05.123_456 UTC));
        assert_eq!(got.offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn out_of_calendar_times_are_refused_not_panicked_on() {
        let edge = datetime!(9999-12-31 23:59:59 -01:00);
        assert_eq!(to_utc_checked(edge), None);
        assert_eq!(truncate(edge), edge, "returned as is");
        let ok = datetime!(2030-01-01 00:00:00.5 -05:00);
        assert_eq!(to_utc_checked(ok), Some(datetime!(2030-01-01 05:00:00.5 UTC)));
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let clock = FixedClock::new(datetime!(2030-01-01 00:00 UTC));
        assert_eq!(clock.now(), datetime!(2030-01-01 00:00 UTC));
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), datetime!(2030-01-01 00:01:30 UTC));
    }
}
