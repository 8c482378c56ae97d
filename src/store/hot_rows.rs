//! Writers of one hot row, queued in this process before they reach the database.
//!
//! A crowd logging in at once (one user, one address) writes the same few rows: the
//! address's and the account's throttle counters, and the principal's row that
//! `insert_token` locks for the token limit (and `bump` and a rehash write too). Under READ COMMITTED the database queues them on
//! the row lock anyway, each waiter holding a pooled connection while it waits. Under
//! SERIALIZABLE (and on distributed engines) they do not queue at all: every transaction
//! that waited fails with 40001 once the first commits, and `retry.rs` runs it again. With 16
//! writers of one row in one process, a writer could lose a dozen rounds in a row and be
//! answered 503 (seen in CI: `throttle::many_correct_logins_through_two_replicas_all_succeed`
//! on the serializable run). Queued here first, the writers of one process reach the
//! database one at a time, so the only contention left is between replicas (at most one
//! writer of a row each), and a waiter holds no connection.
//!
//! Rows are mapped onto a fixed set of locks by a hash of their key, so the set never grows;
//! two rows sharing a lock only queue a little more. A write that needs several rows takes
//! their locks in index order, so two writes cannot wait for each other.

use std::hash::{BuildHasher, Hash, RandomState};

use tokio::sync::{Mutex, MutexGuard};

/// why 64: far more than the rows written at one moment by one process's crowds (a login
/// writes three), so unrelated logins rarely share a lock, and small enough to be nothing.
const LOCKS: usize = 64;

/// The locks, one per slice of the row keys.
#[derive(Debug)]
pub(super) struct HotRows {
    locks: Vec<Mutex<()>>,
    hasher: RandomState,
}

/// The locks of one write's rows, held until dropped.
#[derive(Debug)]
#[must_use = "the rows are queued for only as long as this is held"]
pub(super) struct Held<'a> {
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl Default for HotRows {
    fn default() -> Self {
        HotRows { locks: (0..LOCKS).map(|_| Mutex::new(())).collect(), hasher: RandomState::new() }
    }
}

impl HotRows {
    /// Wait for the locks of the rows `keys` names (each key a table's name and the row's
    /// key, so rows of two tables never collide by design), in index order. Tokio's mutex
    /// admits waiters in the order they asked, so a crowd is served first come, first served.
    pub(super) async fn lock<K: Hash>(&self, keys: impl IntoIterator<Item = K>) -> Held<'_> {
        let mut indexes: Vec<usize> = keys.into_iter().map(|k| self.index(&k)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut guards = Vec::with_capacity(indexes.len());
        for i in indexes {
            guards.push(self.locks[i].lock().await);
        }
        Held { _guards: guards }
    }

    fn index(&self, key: &impl Hash) -> usize {
        // why a modulo of a u64: LOCKS is small, and the hash is uniform.
        usize::try_from(self.hasher.hash_one(key) % LOCKS as u64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Writers of one row never overlap; writers of rows of their own do.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_of_one_row_queue_and_others_do_not() {
        let rows = Arc::new(HotRows::default());
        let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let (rows, inside, most) = (Arc::clone(&rows), Arc::clone(&inside), Arc::clone(&most));
                tokio::spawn(async move {
                    // Half write the address's row and the account's; half the account's alone,
                    // named in the other order: the order of the locks is theirs, not the caller's.
                    let keys: Vec<(&str, &str)> = if i % 2 == 0 {
                        vec![("throttle", "ip 192.0.2.1"), ("throttle", "account alice")]
                    } else {
                        vec![("throttle", "account alice"), ("throttle", "ip 192.0.2.1")]
                    };
                    let _held = rows.lock(keys).await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "two writers of one row were inside at once");

        // Rows of their own: find two keys on different locks; both are held at once.
        let a = ("principals", 1_i64);
        let b = (1_i64..).map(|id| ("principals", id)).find(|k| rows.index(k) != rows.index(&a)).unwrap();
        let _a = rows.lock([a]).await;
        let both = tokio::time::timeout(Duration::from_secs(5), rows.lock([b])).await;
        assert!(both.is_ok(), "a row of its own waited for another row's writer");
    }
}
