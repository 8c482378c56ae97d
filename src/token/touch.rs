//! Deferred writes from the token-check path.
//!
//! Policy: a token check never writes to the database. It may *schedule* a touch (last-used
//! time, at most once a minute per token; a sliding expiry), which one background task flushes
//! in a batch every `tokens.touch_flush_interval` and once more at shutdown. The queue keeps
//! one entry per token (later values win) and is bounded, so a flood of distinct tokens costs
//! bounded memory; past the bound, touches are dropped, which only delays a last-used time.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::store::TokenTouch;

/// why 100k: ~6 MB of entries, far beyond the distinct tokens seen in one flush interval.
const CAPACITY: usize = 100_000;

/// Pending touches, one per token, and the last-used times recently scheduled.
#[derive(Debug, Default)]
pub(crate) struct TouchQueue {
    pending: Mutex<HashMap<Uuid, TokenTouch>>,
    /// why: a cached lookup carries the last-used time it was read with; without this, every
    /// flush would look "a minute overdue" for a token checked from the cache.
    recent: Mutex<HashMap<Uuid, time::OffsetDateTime>>,
}

impl TouchQueue {
    /// Merge a touch into the queue: the later of each time wins.
    pub(crate) fn push(&self, touch: TokenTouch) {
        if let Some(at) = touch.last_used_at {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() < CAPACITY || recent.contains_key(&touch.id) {
                let slot = recent.entry(touch.id).or_insert(at);
                *slot = (*slot).max(at);
            }
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let len = pending.len();
        match pending.get_mut(&touch.id) {
            Some(existing) => {
                existing.last_used_at = existing.last_used_at.max(touch.last_used_at);
                existing.expires_at = existing.expires_at.max(touch.expires_at);
            }
            None if len < CAPACITY => {
                pending.insert(touch.id, touch);
            }
            None => tracing::debug!("touch queue full; dropping a last-used update"),
        }
    }

    /// The sliding expiry waiting to be written for a token, if any.
    pub(crate) fn pending_expiry(&self, id: Uuid) -> Option<time::OffsetDateTime> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.get(&id).and_then(|t| t.expires_at)
    }

    /// The last-used time most recently scheduled for a token, if still recent.
    pub(crate) fn recent_use(&self, id: Uuid) -> Option<time::OffsetDateTime> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).get(&id).copied()
    }

    /// Take everything pending, and forget last-used times older than `older_than`.
    pub(crate) fn drain(&self, older_than: time::OffsetDateTime) -> Vec<TokenTouch> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, at| *at >= older_than);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.drain().map(|(_, t)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn merges_per_token_keeping_the_latest_times() {
        let q = TouchQueue::default();
        let id = Uuid::new_v4();
        let t1 = datetime!(2030-01-01 00:00 UTC);
        let t2 = datetime!(2030-01-01 00:05 UTC);
        q.push(TokenTouch { id, last_used_at: Some(t2), expires_at: None });
        q.push(TokenTouch { id, last_used_at: Some(t1), expires_at: Some(t1) });
        let drained = q.drain(t1);
        assert_eq!(drained, vec![TokenTouch { id, last_used_at: Some(t2), expires_at: Some(t1) }]);
        assert!(q.drain(t1).is_empty());
        // The last use is remembered past the flush, until it is older than asked.
        assert_eq!(q.recent_use(id), Some(t2));
        q.drain(t2 + time::Duration::seconds(1));
        assert_eq!(q.recent_use(id), None);
    }
}
