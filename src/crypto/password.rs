//! Argon2id password hashing, always off the async executor, bounded in parallel, and
//! with a bounded queue in front: past it a request is turned away at once (`Busy`)
//! instead of waiting behind a flood.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::Output;
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use tokio::sync::oneshot;

use crate::model::Password;

/// OWASP's argon2id recommendation: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

#[derive(Clone)]
pub struct PasswordHasher {
    /// One thread per core, each taking the next queued check the moment it is done with
    /// one: each check holds 19 MiB, and more in flight would only queue on the CPU while
    /// growing memory. On the blocking pool behind a semaphore, each hand-over waited for a
    /// busy async worker twice (to give the permit back, then to start the next check).
    threads: Arc<rayon_core::ThreadPool>,
    /// Checks running now.
    running: Arc<AtomicUsize>,
    /// Admitted requests (hashing or waiting) and how many may be admitted at once.
    admitted: Arc<AtomicUsize>,
    capacity: usize,
    /// Requests turned away because the queue was full, for the metrics.
    rejected: Arc<AtomicU64>,
    /// Verified against when the user does not exist, so both paths cost the same.
    dummy_hash: Arc<str>,
    memory: Arc<Memory>,
}

/// Argon2's working memory, kept between checks. Left to itself argon2 takes 19 MiB fresh
/// from the system for every hash and gives it back after (main.rs keeps large blocks
/// mmap'd, so a login burst does not leave them resident); faulting in and zeroing those
/// pages was a quarter of each login's CPU (`perf`). A check borrows a block from here
/// instead: at most one exists per thread, and all go back to the system once no check has
/// run for a housekeeping round. The blocks hold argon2's intermediate state, which every
/// hash overwrites before it reads it.
#[derive(Default)]
struct Memory {
    free: Mutex<Vec<Vec<Block>>>,
    used: AtomicBool,
}

impl Memory {
    fn verify(&self, password: &[u8], hash: &str) -> bool {
        self.used.store(true, Ordering::Relaxed);
        let taken = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut blocks = taken.unwrap_or_else(|| vec![Block::default(); MEMORY_KIB as usize]);
        let matched = verify_in(&mut blocks, password, hash);
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(blocks);
        matched
    }

    fn release_if_unused(&self) {
        if !self.used.swap(false, Ordering::Relaxed) {
            self.free.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

/// What argon2's `verify_password` does (the hash's own algorithm, version and parameters;
/// a constant-time comparison of the outputs), hashing in `blocks`.
fn verify_in(blocks: &mut [Block], password: &[u8], hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let (Ok(algorithm), Ok(params)) =
        (Algorithm::try_from(parsed.algorithm.as_str()), Params::try_from(&parsed))
    else {
        return false;
    };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else { return false };
    let Some(blocks) = blocks.get_mut(..params.block_count()) else {
        // A hash made with more memory than today's parameters: argon2 allocates it.
        return argon2().verify_password(password, &parsed).is_ok();
    };
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.as_ref().len()) else { return false };
    Argon2::new(algorithm, version.unwrap_or_default(), params)
        .hash_password_into_with_memory(password, salt, &mut *out, blocks)
        .is_ok()
        && Output::new(out).is_ok_and(|computed| computed == *expected)
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed")]
    Failed,
    /// The queue is full: answer 503 with `Retry-After` and let the client come back.
    #[error("too many password checks are waiting; try again shortly")]
    Busy,
}

/// Seconds a client turned away with `Busy` is asked to wait.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).expect("constant argon2 params are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A place in the hasher's queue, held from admission until the work is done (dropping
/// it gives the place back). Taking it first lets a caller know it will be served before
/// it spends anything else on the request (a lockout count, a rate-limit unit).
pub struct Admission {
    hasher: PasswordHasher,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.hasher.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub async fn hash(self, password: &Password) -> Result<String, HashError> {
        let password = password.clone();
        self.run(move || {
            argon2()
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|_| HashError::Failed)
        })
        .await?
    }

    /// Checks `password` against `hash`, or against a dummy hash when there is no user, so
    /// an attacker cannot tell "no such user" from "wrong password" by timing.
    pub async fn verify(self, password: &Password, hash: Option<&str>) -> Result<bool, HashError> {
        let password = password.clone();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.hasher.dummy_hash.to_string(), false),
        };
        let memory = self.hasher.memory.clone();
        let matched = self.run(move || memory.verify(password.expose().as_bytes(), &hash)).await?;
        Ok(real && matched)
    }

    async fn run<T: Send + 'static>(self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let (done, outcome) = oneshot::channel();
        let running = self.hasher.running.clone();
        self.hasher.threads.spawn(move || {
            running.fetch_add(1, Ordering::Relaxed);
            let out = work();
            running.fetch_sub(1, Ordering::Relaxed);
            let _ = done.send(out);
        });
        // A panic drops `done` (the pool's handler logs it).
        outcome.await.map_err(|_| HashError::Failed)
    }
}

impl PasswordHasher {
    /// `queue`: how many requests may wait for a core beyond the one hash per core that
    /// runs; each waits at most about `queue / cores` hash times (~40 ms each).
    pub fn new(queue: usize) -> PasswordHasher {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let dummy = argon2()
            .hash_password(b"latchkey dummy password for unknown users")
            .expect("hashing a constant succeeds")
            .to_string();
        let threads = rayon_core::ThreadPoolBuilder::new()
            .num_threads(cores)
            .thread_name(|i| format!("argon2-{i}"))
            .panic_handler(|_| tracing::error!("a password check panicked"))
            .build()
            .expect("the argon2 threads start");
        PasswordHasher {
            threads: Arc::new(threads),
            running: Arc::default(),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: cores + queue,
            rejected: Arc::new(AtomicU64::new(0)),
            dummy_hash: dummy.into(),
            memory: Arc::default(),
        }
    }

    /// A place in the queue, or `Busy` at once when it is full.
    pub fn admit(&self) -> Result<Admission, HashError> {
        let capacity = self.capacity;
        let taken = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < capacity).then_some(n + 1));
        match taken {
            Ok(_) => Ok(Admission { hasher: self.clone() }),
            Err(_) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(HashError::Busy)
            }
        }
    }

    /// Hashes that could start right now; 0 means callers are queueing (for `/metrics`).
    pub fn available_permits(&self) -> usize {
        self.threads.current_num_threads().saturating_sub(self.running.load(Ordering::Relaxed))
    }

    /// Gives argon2's kept memory back to the system unless a check ran since the last call
    /// (housekeeping calls it every round).
    pub fn release_idle_memory(&self) {
        self.memory.release_if_unused();
    }

    /// Requests turned away with `Busy` since start-up.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        self.admit()?.hash(password).await
    }

    /// `Admission::verify` for a caller with nothing to do between admission and hashing.
    pub async fn verify(&self, password: &Password, hash: Option<&str>) -> Result<bool, HashError> {
        self.admit()?.verify(password, hash).await
    }

    /// True when `hash` was made with other parameters than today's: re-hash on next login.
    pub fn needs_rehash(hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else { return true };
        let current = format!("m={MEMORY_KIB},t={ITERATIONS},p={LANES}");
        parsed.algorithm.as_str() != "argon2id" || parsed.params.to_string() != current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let hasher = PasswordHasher::new(4);
        let pw = Password::candidate("correct horse".into()).unwrap();
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!hash.contains("correct horse"));
        assert!(hasher.verify(&pw, Some(&hash)).await.unwrap());
        let wrong = Password::candidate("wrong horse".into()).unwrap();
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap());
        assert!(!hasher.verify(&pw, None).await.unwrap());
        assert!(!PasswordHasher::needs_rehash(&hash));
        assert!(PasswordHasher::needs_rehash(
            "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
        ));
    }
    /// The borrowed memory gives argon2's own answers: for today's hashes, for one made
    /// with other parameters (a prefix of the block), after other hashes left it dirty, and
    /// for strings that are no hash at all.
    #[test]
    fn checks_in_kept_memory_agree_with_argon2() {
        let memory = Memory::default();
        let today = argon2().hash_password(b"correct horse").unwrap().to_string();
        let older = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(4096, 3, 1, None).unwrap())
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        for _ in 0..2 {
            for hash in [&today, &older] {
                assert!(memory.verify(b"correct horse", hash), "{hash}");
                assert!(!memory.verify(b"correct horsf", hash), "{hash}");
                assert!(argon2().verify_password(b"correct horse", hash.as_str()).is_ok());
            }
        }
        let last = if today.ends_with('A') { "B" } else { "A" };
        let tampered = format!("{}{last}", &today[..today.len() - 1]);
        for junk in ["", "plain text", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ", tampered.as_str()] {
            assert!(!memory.verify(b"correct horse", junk), "{junk}");
        }
    }

    #[test]
    fn kept_memory_goes_back_after_a_quiet_round() {
        let memory = Memory::default();
        let hash = argon2().hash_password(b"pw").unwrap().to_string();
        assert!(memory.verify(b"pw", &hash));
        memory.release_if_unused();
        assert_eq!(memory.free.lock().unwrap().len(), 1, "used in this round: kept");
        memory.release_if_unused();
        assert!(memory.free.lock().unwrap().is_empty(), "a round without checks: released");
    }

    #[tokio::test]
    async fn a_full_queue_turns_requests_away_at_once() {
        let hasher = PasswordHasher::new(0);
        let held: Vec<Admission> = (0..hasher.capacity).map(|_| hasher.admit().unwrap()).collect();
        assert!(matches!(hasher.admit(), Err(HashError::Busy)));
        assert_eq!(hasher.rejected(), 1);
        drop(held);
        assert!(hasher.admit().is_ok(), "places come back when the work is done");
    }
}
