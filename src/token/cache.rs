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
//! - Invalidation by token id or principal goes through two small indexes to the digests
//!   cached for them, never through moka's predicates: each live predicate is evaluated on
//!   every read until a full scan retires it, which under steady logouts would make every
//!   hit walk hundreds of closures.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use uuid::Uuid;

use crate::metrics::CacheStats;
use crate::model::TokenHash;
use crate::model::TokenLookup;

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
    lookup: Arc<TokenLookup>,
    /// How long this entry may live: the staleness bound or the token's remaining life.
    ttl: Duration,
}

struct EntryExpiry;

impl Expiry<TokenHash, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(&self, _key: &TokenHash, value: &Arc<Entry>, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Which digests may be cached for a token id and for a principal. May name digests no
/// longer cached (evicted, expired): invalidating those is harmless.
#[derive(Debug, Default)]
struct Index {
    by_token: HashMap<Uuid, TokenHash>,
    by_principal: HashMap<i64, HashSet<TokenHash>>,
}

/// The cache. See the module doc.
pub struct TokenCache {
    entries: Option<Cache<TokenHash, Arc<Entry>>>,
    index: Mutex<Index>,
    /// The index is reset past this many token ids (twice the capacity): it names digests
    /// that were evicted meanwhile, and must stay bounded.
    index_limit: usize,
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
        let entries = (capacity > 0 && !max_staleness.is_zero())
            .then(|| Cache::builder().max_capacity(capacity).expire_after(EntryExpiry).build());
        TokenCache {
            entries,
            index: Mutex::new(Index::default()),
            index_limit: usize::try_from(capacity.saturating_mul(2)).unwrap_or(usize::MAX),
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
    pub(crate) fn get(&self, digest: &TokenHash) -> Option<Arc<TokenLookup>> {
        let found = self.live()?.get(digest).map(|e| Arc::clone(&e.lookup));
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Take a ticket before reading the database for a lookup that may be cached.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::SeqCst))
    }

    /// Cache a lookup that passed every check, for at most `remaining` (the token's life).
    pub(crate) fn put(&self, ticket: Ticket, digest: TokenHash, lookup: Arc<TokenLookup>, remaining: Option<Duration>) {
        let Some(entries) = self.live() else { return };
        let ttl = remaining.map_or(self.max_staleness, |r| r.min(self.max_staleness));
        if ttl.is_zero() {
            return;
        }
        {
            let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
            if index.by_token.len() >= self.index_limit {
                // why everything: the index can no longer say where every entry is.
                *index = Index::default();
                entries.invalidate_all();
            }
            index.by_token.insert(lookup.token.id, digest);
            index.by_principal.entry(lookup.owner.id).or_default().insert(digest);
        }
        entries.insert(digest, Arc::new(Entry { lookup, ttl }));
        // why the index first and this check after the insert: an invalidation that began after our ticket either bumped the
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
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let digests: Vec<TokenHash> = match what {
            Invalidation::All => {
                *index = Index::default();
                entries.invalidate_all();
                return;
            }
            Invalidation::Token(id) => index.by_token.remove(&id).into_iter().collect(),
            Invalidation::Principal(pid) => index.by_principal.remove(&pid).into_iter().flatten().collect(),
        };
        // why under the lock: a `put` for one of these digests either indexed it before we
        // took the lock (and its entry is removed here) or sees the new generation.
        for digest in &digests {
            entries.invalidate(digest);
        }
    }

    /// Whether this replica hears the others. Off: the cache is flushed and bypassed.
    pub fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::SeqCst);
        self.invalidate(Invalidation::All);
    }

    /// Hits and misses so far, and entries now, for the metrics.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.entries.as_ref().map_or(0, Cache::entry_count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PrincipalKind;
    use crate::model::{Owner, Token, TokenKind};
    use time::OffsetDateTime;

    fn lookup(token: Uuid, owner: i64) -> Arc<TokenLookup> {
        Arc::new(TokenLookup {
            token: Token {
                id: token,
                principal_id: owner,
                issuer: crate::model::Issuer::Dialect(crate::model::DialectId::Knox),
                kind: TokenKind::Session,
                note: None,
                created_at: OffsetDateTime::UNIX_EPOCH,
                expires_at: None,
                last_used_at: None,
                enabled: true,
                version: 0,
                revoked_at: None,
            },
            owner: Owner { id: owner, kind: PrincipalKind::User, name: "u".into(), enabled: true, role: None },
        })
    }

    fn cache() -> TokenCache {
        TokenCache::new(100, Duration::from_secs(60))
    }

    #[test]
    fn invalidation_by_token_principal_and_all() {
        let c = cache();
        let (t1, t2, t3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (d1, d2, d3) = (TokenHash::of("1"), TokenHash::of("2"), TokenHash::of("3"));
        c.put(c.ticket(), d1, lookup(t1, 7), None);
        c.put(c.ticket(), d2, lookup(t2, 7), None);
        c.put(c.ticket(), d3, lookup(t3, 8), None);
        assert!(c.get(&d1).is_some() && c.get(&d2).is_some() && c.get(&d3).is_some());
        c.invalidate(Invalidation::Token(t1));
        assert!(c.get(&d1).is_none() && c.get(&d2).is_some());
        c.invalidate(Invalidation::Principal(7));
        assert!(c.get(&d2).is_none() && c.get(&d3).is_some());
        c.invalidate(Invalidation::All);
        assert!(c.get(&d3).is_none());
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_not_kept() {
        let c = cache();
        let (t, d) = (Uuid::new_v4(), TokenHash::of("x"));
        // The row was read (ticket taken), then revoked and invalidated, then the read tries
        // to cache what it saw: it must not stay.
        let ticket = c.ticket();
        c.invalidate(Invalidation::Token(t));
        c.put(ticket, d, lookup(t, 1), None);
        assert!(c.get(&d).is_none());
        // A fill with a fresh ticket stays; forgetting its digest drops it.
        c.put(c.ticket(), d, lookup(t, 1), None);
        assert!(c.get(&d).is_some());
        c.forget(&d);
        assert!(c.get(&d).is_none());
    }

    #[test]
    fn not_listening_means_no_cache_and_listening_again_starts_empty() {
        let c = cache();
        let (t, d) = (Uuid::new_v4(), TokenHash::of("x"));
        c.put(c.ticket(), d, lookup(t, 1), None);
        c.set_listening(false);
        assert!(c.get(&d).is_none());
        c.put(c.ticket(), d, lookup(t, 1), None);
        c.set_listening(true);
        assert!(c.get(&d).is_none(), "nothing cached while deaf survives");
        // An entry lives no longer than the token: a token with no life left is not cached.
        c.put(c.ticket(), d, lookup(t, 1), Some(Duration::ZERO));
        assert!(c.get(&d).is_none());
    }

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
