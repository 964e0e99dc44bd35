//! Short-lived copies of rows that nearly every request reads and that change rarely:
//! clients (every token request authenticates one), the role-to-scope table (every login
//! and refresh), and the live-or-not state of access tokens (every introspection).
//!
//! A copy is answered for at most `CACHE_TTL`. A change made through this process drops
//! the copies it touches at once; on PostgreSQL, other serving replicas hear of it and drop
//! theirs within milliseconds (`changes`). Otherwise (SQLite, the CLI, a notification
//! missed) a change made elsewhere is seen within `CACHE_TTL`. Whoever writes a table
//! behind one of these caches must tell `Db` after the write (`Db::tokens_changed`,
//! `Db::client_changed`).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a copy is answered from memory.
pub const CACHE_TTL: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct Cache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
    /// Moves on every local change, after its write: a read that started before the change
    /// must not put the old row back after the change dropped it.
    generation: AtomicU64,
    /// Beyond this many entries they are dropped all at once: this only bounds memory.
    max: usize,
    /// How long a copy is answered, in milliseconds.
    ttl_ms: AtomicU64,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub fn new(max: usize) -> Cache<K, V> {
        Cache::with_ttl(max, CACHE_TTL)
    }

    /// For copies of what never goes stale, kept only for as long as they are likely
    /// to be asked for again.
    pub fn with_ttl(max: usize, ttl: Duration) -> Cache<K, V> {
        Cache {
            entries: Mutex::default(),
            generation: AtomicU64::new(0),
            max,
            ttl_ms: AtomicU64::new(ttl.as_millis() as u64),
        }
    }

    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(ttl.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let ttl = Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed));
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|(read, _)| read.elapsed() < ttl).map(|(_, v)| v.clone())
    }

    /// Read before the database read whose result goes to `put`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Keeps `value`, read from the database after `generation` was taken, unless a local
    /// change came in between.
    pub fn put(&self, key: K, value: V, generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= self.max {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(key);
    }

    pub fn forget_all(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_older_than_a_change_is_not_kept() {
        let cache = Cache::new(10);
        let before = cache.generation();
        cache.forget("a");
        cache.put("a".to_owned(), 1, before);
        assert_eq!(cache.get("a"), None);
        cache.put("a".to_owned(), 2, cache.generation());
        assert_eq!(cache.get("a"), Some(2));
        cache.forget_all();
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn entries_expire() {
        let cache = Cache::new(10);
        cache.put("a".to_owned(), 1, cache.generation());
        std::thread::sleep(CACHE_TTL);
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn size_is_bounded() {
        let cache = Cache::new(2);
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            cache.put(key.to_owned(), i, cache.generation());
        }
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("c"), Some(2));
    }
}
