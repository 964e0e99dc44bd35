//! Random tokens, their hashes, and constant-time comparison.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// 256 random bits as URL-safe base64 (43 characters): client secrets, codes, mail tokens
/// (and refresh tokens before they named their generation: `crypto::refresh`).
/// Never with a leading `-`, which command-line tools (curl, clap, getopt) take for an
/// option: one draw in 64 is drawn again, which leaves the others uniform.
pub fn random_token() -> String {
    loop {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        if !token.starts_with('-') {
            return token;
        }
    }
}

/// Whether `text` has the shape of a `random_token`: anything else cannot be one of ours,
/// and needs no lookup.
pub fn is_random_token(text: &str) -> bool {
    text.len() == 43 && text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// A fast hash is right for these: the inputs carry 256 bits of entropy, so there is
/// nothing to brute-force and argon2 would only slow every request down.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert!(is_random_token(&a));
        assert!(!is_random_token(&a[1..]), "too short");
        assert!(!is_random_token(&format!("{}+", &a[1..])), "not base64url");
        assert!(!is_random_token(&format!("{}é", &a[2..])), "two bytes, one character");
    }

    #[test]
    fn tokens_never_start_with_a_dash() {
        // One in 64 would without the redraw: 2,000 draws all pass by chance once in 10^13.
        for _ in 0..2_000 {
            let token = random_token();
            assert!(!token.starts_with('-'), "{token} reads as an option on a command line");
        }
    }

    #[test]
    fn hashing_and_comparison() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(constant_time_eq("same", "same"));
        assert!(!constant_time_eq("same", "diff"));
        assert!(!constant_time_eq("short", "longer"));
    }
}
