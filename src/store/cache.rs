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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::{StoreError, StoreResult};

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
    /// Database reads under way, one per key, with the answer those who wait for it share
    /// (`get_or_read`).
    reads: Mutex<HashMap<K, Arc<SharedRead<V>>>>,
}

type SharedRead<V> = OnceCell<Result<Option<V>, Arc<StoreError>>>;

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
            reads: Mutex::default(),
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
        self.copy(key).map(|(value, _)| value)
    }

    /// The copy of `key` while it may be answered, and whether it is due for a new read
    /// (past half its time).
    fn copy<Q>(&self, key: &Q) -> Option<(V, bool)>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let ttl = Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed));
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (read, value) = entries.get(key)?;
        let age = read.elapsed();
        (age < ttl).then(|| (value.clone(), age >= ttl / 2))
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

    /// The copy of `key`, or else what `read` finds in the database, kept if it is `Some`.
    /// A copy that every request asks for never expires under them all at once: past half
    /// its time, the first request to ask reads it anew while the others are still answered
    /// from the copy; and requests that miss one key together share one read, not one each.
    /// (The wave of reads each expiry caused cost introspection 1–2 ms of p99 at 32
    /// connections, measured.) A failed read fails those who shared it, but for one who
    /// still had a copy; if the reading request goes away, one of the others reads.
    pub async fn get_or_read<Q, F, Fut>(&self, key: &Q, read: F) -> StoreResult<Option<V>>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<Option<V>>>,
    {
        let copy = match self.copy(key) {
            Some((value, false)) => return Ok(Some(value)),
            Some((value, true)) => Some(value),
            None => None,
        };
        let shared = {
            let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
            match (reads.get(key), &copy) {
                // Somebody is reading it anew already, and the copy still holds.
                (Some(_), Some(value)) => return Ok(Some(value.clone())),
                (Some(under_way), None) => under_way.clone(),
                (None, _) => {
                    if reads.len() >= self.max {
                        reads.clear();
                    }
                    reads.entry(key.to_owned()).or_default().clone()
                }
            }
        };
        let answer = shared
            .get_or_init(|| async {
                let generation = self.generation();
                let found = read().await;
                match &found {
                    Ok(Some(value)) => self.put(key.to_owned(), value.clone(), generation),
                    // Gone (a client deleted): the copy of it answers nobody from now on.
                    Ok(None) => {
                        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
                    }
                    Err(_) => {}
                }
                // Done, so whoever misses from now on reads anew; those already waiting
                // hold `shared` and take this answer.
                let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
                if reads.get(key).is_some_and(|r| Arc::ptr_eq(r, &shared)) {
                    reads.remove(key);
                }
                found.map_err(Arc::new)
            })
            .await;
        match (answer, copy) {
            // The copy still holds where the database could not answer.
            (Err(_), Some(value)) => Ok(Some(value)),
            (answer, _) => answer.clone().map_err(StoreError::Shared),
        }
    }

    pub fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(key);
        // A read under way began before the change: whoever asks from now on reads anew.
        self.reads.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    pub fn forget_all(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
        self.reads.lock().unwrap_or_else(|e| e.into_inner()).clear();
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

    /// 32 requests miss one key at once; the read under way holds them all.
    async fn misses_at_once(
        cache: &Arc<Cache<String, u32>>,
        answer: fn() -> StoreResult<Option<u32>>,
    ) -> (Vec<StoreResult<Option<u32>>>, u64) {
        let reads = Arc::new(AtomicU64::new(0));
        let mut all = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (cache, reads) = (cache.clone(), reads.clone());
            all.spawn(async move {
                let read = || async {
                    reads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    answer()
                };
                cache.get_or_read("a", read).await
            });
        }
        let answers = all.join_all().await;
        (answers, reads.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn misses_at_once_share_one_read() {
        let cache = Arc::new(Cache::new(10));
        let (answers, reads) = misses_at_once(&cache, || Ok(Some(7))).await;
        assert!(answers.iter().all(|a| matches!(a, Ok(Some(7)))));
        assert_eq!(reads, 1);
        assert_eq!(cache.get("a"), Some(7));
    }

    #[tokio::test]
    async fn a_failed_read_fails_those_who_shared_it_and_the_next_miss_reads_again() {
        let cache = Arc::new(Cache::new(10));
        let (answers, reads) = misses_at_once(&cache, || Err(StoreError::Corrupt("broken".into()))).await;
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Err(StoreError::Shared(e)) if matches!(**e, StoreError::Corrupt(_))))
        );
        assert_eq!(reads, 1);
        let (answers, reads) = misses_at_once(&cache, || Ok(Some(8))).await;
        assert!(answers.iter().all(|a| matches!(a, Ok(Some(8)))));
        assert_eq!(reads, 1);
    }

    #[tokio::test]
    async fn when_the_reader_goes_away_another_reads() {
        let cache = Arc::new(Cache::<String, u32>::new(10));
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Some(1))
        };
        let reader = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get_or_read("a", slow).await }
        });
        tokio::task::yield_now().await;
        let waiter = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get_or_read("a", || async { Ok(Some(2)) }).await }
        });
        tokio::task::yield_now().await;
        reader.abort();
        assert!(matches!(waiter.await, Ok(Ok(Some(2)))));
    }

    #[tokio::test]
    async fn a_copy_past_half_its_time_is_read_anew_by_one_request_while_the_others_use_it() {
        let cache = Arc::new(Cache::<String, u32>::new(10));
        cache.put("a".to_owned(), 1, cache.generation());
        tokio::time::sleep(CACHE_TTL / 2).await;
        let reads = Arc::new(AtomicU64::new(0));
        let reader = tokio::spawn({
            let (cache, reads) = (cache.clone(), reads.clone());
            let read = || async move {
                reads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Some(2))
            };
            async move { cache.get_or_read("a", read).await }
        });
        tokio::task::yield_now().await;
        let unread = || async { Err(StoreError::Corrupt("not to be read".into())) };
        assert!(matches!(cache.get_or_read("a", unread).await, Ok(Some(1))));
        assert!(matches!(reader.await, Ok(Ok(Some(2)))));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get("a"), Some(2));
    }

    #[tokio::test]
    async fn an_early_read_that_finds_nothing_drops_the_copy() {
        let cache = Cache::<String, u32>::new(10);
        cache.put("a".to_owned(), 1, cache.generation());
        tokio::time::sleep(CACHE_TTL / 2).await;
        assert!(matches!(cache.get_or_read("a", || async { Ok(None) }).await, Ok(None)));
        assert_eq!(cache.get("a"), None, "the copy of what is gone");
    }

    #[tokio::test]
    async fn a_failed_early_read_answers_the_copy() {
        let cache = Cache::<String, u32>::new(10);
        cache.put("a".to_owned(), 1, cache.generation());
        tokio::time::sleep(CACHE_TTL / 2).await;
        let failing = || async { Err(StoreError::Corrupt("down".into())) };
        assert!(matches!(cache.get_or_read("a", failing).await, Ok(Some(1))));
    }

    #[tokio::test]
    async fn a_read_begun_before_a_change_is_not_shared_after_it() {
        let cache = Arc::new(Cache::<String, u32>::new(10));
        let before = tokio::spawn({
            let cache = cache.clone();
            let read = || async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Some(1))
            };
            async move { cache.get_or_read("a", read).await }
        });
        tokio::task::yield_now().await;
        cache.forget("a");
        assert!(matches!(cache.get_or_read("a", || async { Ok(Some(2)) }).await, Ok(Some(2))));
        assert!(matches!(before.await, Ok(Ok(Some(1)))));
        assert_eq!(cache.get("a"), Some(2));
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
