//! Login throttle counters, as stored. Their meaning (sliding window, lockouts, places in
//! flight) belongs to `token::throttle`.

use time::OffsetDateTime;

/// What a login throttle counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ThrottleScope {
    /// One client address (an IPv6 /64).
    Ip,
    /// One account name, of one kind (`user:alice`).
    Account,
}

impl ThrottleScope {
    /// The name stored in the `scope` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleScope::Ip => "ip",
            ThrottleScope::Account => "account",
        }
    }

    /// The scope stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ip" => Some(ThrottleScope::Ip),
            "account" => Some(ThrottleScope::Account),
            _ => None,
        }
    }
}

/// A login throttle counter, as stored. Its meaning (sliding window, lockouts) belongs to
/// `token::throttle`; the store only reads and writes it, under a row lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleCounter {
    /// What is counted.
    pub scope: ThrottleScope,
    /// The address or account.
    pub subject: String,
    /// Start of the current fixed window.
    pub window_start: OffsetDateTime,
    /// Refused passwords in the current window.
    pub failures: u32,
    /// Failures in the window before it.
    pub prev_failures: u32,
    /// Lockouts so far.
    pub strikes: u32,
    /// Logins refused until then.
    pub locked_until: Option<OffsetDateTime>,
    /// After this the counter is empty (and the sweep deletes it).
    pub expires_at: OffsetDateTime,
    /// Attempts admitted in the bucket starting at `in_flight_bucket` whose outcome is not
    /// known yet.
    pub in_flight: u32,
    /// The same, admitted in the bucket before it.
    pub prev_in_flight: u32,
    /// Start of the current bucket of attempts in flight (aligned, as long as the longest
    /// attempt).
    pub in_flight_bucket: OffsetDateTime,
}

impl ThrottleCounter {
    /// A counter with nothing counted, as a new row starts.
    pub fn empty(scope: ThrottleScope, subject: String) -> Self {
        ThrottleCounter {
            scope,
            subject,
            window_start: OffsetDateTime::UNIX_EPOCH,
            failures: 0,
            prev_failures: 0,
            strikes: 0,
            locked_until: None,
            expires_at: OffsetDateTime::UNIX_EPOCH,
            in_flight: 0,
            prev_in_flight: 0,
            in_flight_bucket: OffsetDateTime::UNIX_EPOCH,
        }
    }
}
