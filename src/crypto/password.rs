//! Argon2id password hashing, always off the async executor and bounded in parallel.

use std::sync::Arc;

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
    /// Verified against when the user does not exist, so both paths cost the same.
    dummy_hash: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).expect("constant argon2 params are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl PasswordHasher {
    pub fn new() -> PasswordHasher {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let dummy = argon2()
            .hash_password(b"latchkey dummy password for unknown users")
            .expect("hashing a constant succeeds")
            .to_string();
        PasswordHasher { permits: Arc::new(Semaphore::new(cores)), dummy_hash: dummy.into() }
    }

    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let password = password.clone();
        self.run(move || {
            argon2().hash_password(password.expose().as_bytes()).map(|h| h.to_string()).map_err(|_| HashError)
        })
        .await?
    }

    /// Checks `password` against `hash`, or against a dummy hash when there is no user, so
    /// an attacker cannot tell "no such user" from "wrong password" by timing.
    pub async fn verify(&self, password: &Password, hash: Option<&str>) -> Result<bool, HashError> {
        let password = password.clone();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let matched = self
            .run(move || argon2().verify_password(password.expose().as_bytes(), hash.as_str()).is_ok())
            .await?;
        Ok(real && matched)
    }

    /// Hashes that could start right now; 0 means callers are queueing (for `/metrics`).
    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }

    /// True when `hash` was made with other parameters than today's: re-hash on next login.
    pub fn needs_rehash(hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else { return true };
        let current = format!("m={MEMORY_KIB},t={ITERATIONS},p={LANES}");
        parsed.algorithm.as_str() != "argon2id" || parsed.params.to_string() != current
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError)?;
        tokio::task::spawn_blocking(work).await.map_err(|_| HashError)
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let hasher = PasswordHasher::new();
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
}
