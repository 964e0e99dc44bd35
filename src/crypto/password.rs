//! Argon2id password hashing, always off the async executor, bounded in parallel, and
//! with a bounded queue in front: past it a request is turned away at once (`Busy`)
//! instead of waiting behind a flood.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;

use crate::model::Password;

/// OWASP's argon2id recommendation: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

#[derive(Clone)]
pub struct PasswordHasher {
    /// One hash per core at a time: each holds 19 MiB, and more in flight would only
    /// queue on the CPU while growing memory.
    permits: Arc<Semaphore>,
    /// Admitted requests (hashing or waiting) and how many may be admitted at once.
    admitted: Arc<AtomicUsize>,
    capacity: usize,
    /// Requests turned away because the queue was full, for the metrics.
    rejected: Arc<AtomicU64>,
    /// Verified against when the user does not exist, so both paths cost the same.
    dummy_hash: Arc<str>,
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
        let matched = self
            .run(move || argon2().verify_password(password.expose().as_bytes(), hash.as_str()).is_ok())
            .await?;
        Ok(real && matched)
    }

    async fn run<T: Send + 'static>(self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let _permit = self.hasher.permits.acquire().await.map_err(|_| HashError::Failed)?;
        tokio::task::spawn_blocking(work).await.map_err(|_| HashError::Failed)
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
        PasswordHasher {
            permits: Arc::new(Semaphore::new(cores)),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: cores + queue,
            rejected: Arc::new(AtomicU64::new(0)),
            dummy_hash: dummy.into(),
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
        self.permits.available_permits()
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
