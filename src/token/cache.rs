//! The token-check cache: successful lookups by token digest, so a check of a known token
//! costs no database round trip.
//!
//! Policy:
//! - Only lookups that passed every check are cached, and a hit is checked again (expiry,
//!   revocation, enabled flags) exactly as a fresh row would be: the cache saves the read,
//!   never a decision.
//! - Bounded in entries (`cache.capacity`); an entry lives at most `cache.max_staleness` and
//!   never past its token's own expiry.
//! - Every change to a token's validity invalidates locally at once (by digest, token id or
//!   principal) and is published to the other replicas (Postgres NOTIFY; see `server`).
//! - A lookup racing an invalidation must not re-insert what was just invalidated: inserts
//!   carry the invalidation generation read before the database read, and drop themselves
//!   if an invalidation happened meanwhile.
//! - While the replica cannot hear the others (its listener is reconnecting), the cache is
//!   off: nothing is served from it and nothing is put in it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use uuid::Uuid;

use super::secret::TokenHash;
use crate::store::TokenLookup;

/// What changed, and so which cached lookups must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// One token (revoked, disabled, its expiry moved).
    Token(Uuid),
    /// Every token of a principal (logout-all, disabled, removed, new password, new role).
    Principal(i64),
    /// Everything (a replica that may have missed notices).
    All,
}

impl Invalidation {
    /// The wire form of a notice between replicas: `t:<uuid>`, `p:<id>` or `*`.
    pub fn encode(self) -> String {
        match self {
            Invalidation::Token(id) => format!("t:{id}"),
            Invalidation::Principal(id) => format!("p:{id}"),
            Invalidation::All => "*".to_owned(),
        }
    }

    /// Parse a notice; anything unreadable means "everything", the safe reading.
    pub fn decode(s: &str) -> Invalidation {
        if let Some(id) = s.strip_prefix("t:").and_then(|id| Uuid::parse_str(id).ok()) {
            Invalidation::Token(id)
        } else if let Some(id) = s.strip_prefix("p:").and_then(|id| id.parse().ok()) {
            Invalidation::Principal(id)
        } else {
            Invalidation::All
        }
    }
}

#[derive(Debug)]
struct Entry {
    lookup: TokenLookup,
    /// How long this entry may live: the staleness bound or the token's remaining life.
    ttl: Duration,
}

struct EntryExpiry;

impl Expiry<TokenHash, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(&self, _key: &TokenHash, value: &Arc<Entry>, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The cache. See the module doc.
pub struct TokenCache {
    entries: Option<Cache<TokenHash, Arc<Entry>>>,
    max_staleness: Duration,
    generation: AtomicU64,
    /// False while this replica cannot hear invalidations from the others.
    listening: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.entries.as_ref().map(|c| c.policy().max_capacity()))
            .field("max_staleness", &self.max_staleness)
            .finish_non_exhaustive()
    }
}

/// A lookup's ticket to be cached: the generation seen before the database read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl TokenCache {
    /// A cache of up to `capacity` lookups (0: no cache), each trusted for `max_staleness`.
    pub fn new(capacity: u64, max_staleness: Duration) -> Self {
        let entries = (capacity > 0 && !max_staleness.is_zero()).then(|| {
            Cache::builder().max_capacity(capacity).expire_after(EntryExpiry).support_invalidation_closures().build()
        });
        TokenCache {
            entries,
            max_staleness,
            generation: AtomicU64::new(0),
            listening: AtomicBool::new(true),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn live(&self) -> Option<&Cache<TokenHash, Arc<Entry>>> {
        self.entries.as_ref().filter(|_| self.listening.load(Ordering::SeqCst))
    }

    /// A cached lookup for `digest`, if any.
    pub(crate) fn get(&self, digest: &TokenHash) -> Option<TokenLookup> {
        let found = self.live()?.get(digest).map(|e| e.lookup.clone());
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Take a ticket before reading the database for a lookup that may be cached.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::SeqCst))
    }

    /// Cache a lookup that passed every check, for at most `remaining` (the token's life).
    pub(crate) fn put(&self, ticket: Ticket, digest: TokenHash, lookup: TokenLookup, remaining: Option<Duration>) {
        let Some(entries) = self.live() else { return };
        let ttl = remaining.map_or(self.max_staleness, |r| r.min(self.max_staleness));
        if ttl.is_zero() {
            return;
        }
        entries.insert(digest, Arc::new(Entry { lookup, ttl }));
        // why after the insert: an invalidation that began after our ticket either bumped the
        // generation before this load (we undo our insert) or invalidates after it (and so
        // removes it). Either way a revoked token does not stay cached.
        if self.generation.load(Ordering::SeqCst) != ticket.0 {
            entries.invalidate(&digest);
        }
    }

    /// Drop the cached lookup of one digest (the token presented to a logout).
    pub(crate) fn forget(&self, digest: &TokenHash) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(entries) = &self.entries {
            entries.invalidate(digest);
        }
    }

    /// Drop what `what` names.
    pub fn invalidate(&self, what: Invalidation) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let Some(entries) = &self.entries else { return };
        let registered = match what {
            Invalidation::All => {
                entries.invalidate_all();
                Ok(())
            }
            Invalidation::Token(id) => entries.invalidate_entries_if(move |_, e| e.lookup.token.id == id).map(|_| ()),
            Invalidation::Principal(pid) => {
                entries.invalidate_entries_if(move |_, e| e.lookup.owner.id == pid).map(|_| ())
            }
        };
        if let Err(e) = registered {
            // why everything: a predicate that could not be registered must not leave a
            // revoked token cached.
            tracing::error!(error = %e, "cache invalidation predicate refused; flushing the token cache");
            entries.invalidate_all();
        }
    }

    /// Whether this replica hears the others. Off: the cache is flushed and bypassed.
    pub fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::SeqCst);
        self.invalidate(Invalidation::All);
    }

    /// `(hits, misses, entries)` so far, for the metrics.
    pub fn stats(&self) -> (u64, u64, u64) {
        let entries = self.entries.as_ref().map_or(0, Cache::entry_count);
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed), entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_garbage_means_everything() {
        let id = Uuid::new_v4();
        for inv in [Invalidation::Token(id), Invalidation::Principal(42), Invalidation::All] {
            assert_eq!(Invalidation::decode(&inv.encode()), inv);
        }
        for garbage in ["", "t:", "t:nope", "p:x", "x:1", "p:1.5"] {
            assert_eq!(Invalidation::decode(garbage), Invalidation::All, "{garbage:?}");
        }
    }
}
