//! The refresh token's format. A token names its session and its generation (the number
//! of rotations that made it), carries 128 random bits, and is MACed under a key derived
//! from the server's secret key:
//!
//! `base64url(version ‖ session uuid ‖ generation ‖ random ‖ HMAC-SHA256(…)[..16])`
//!
//! The session row keeps the current generation and the hashes of the current and the
//! previous token, so a rotation rewrites one row and stores nothing per token. The MAC
//! is what makes reuse detection safe: only a token this server made can say "an older
//! generation of session S", which ends S; without it anyone who knows a session's id
//! could end it. Using a token still needs its hash to match the session's, so neither
//! the secret key nor a database dump alone yields a working token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;

const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 16 + 8 + 16;
const MAC_LEN: usize = 16;
/// The encoded length: 57 bytes in base64url. The leading version byte makes every token
/// start with `A`, never with a `-` that command-line tools take for an option.
const TOKEN_LEN: usize = 76;

/// What a token this server made says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    pub session_id: Uuid,
    pub generation: i64,
}

#[derive(Clone)]
pub struct RefreshTokens {
    /// HMAC-SHA256 with its key already absorbed: each token clones it.
    keyed: Hmac<Sha256>,
}

impl RefreshTokens {
    /// Derives its own key, so the secret key is never used for two purposes directly.
    pub fn new(secret_key: &[u8; 32]) -> RefreshTokens {
        let mut derive = Hmac::<Sha256>::new_from_slice(secret_key).expect("HMAC takes a key of any length");
        derive.update(b"latchkey refresh-token MAC key v1");
        let key = derive.finalize().into_bytes();
        RefreshTokens { keyed: Hmac::new_from_slice(&key).expect("HMAC takes a key of any length") }
    }

    /// A new token for `generation` of the session.
    pub fn mint(&self, named: Named) -> String {
        let mut token = [0u8; BODY_LEN + MAC_LEN];
        token[0] = VERSION;
        token[1..17].copy_from_slice(named.session_id.as_bytes());
        token[17..25].copy_from_slice(&named.generation.to_be_bytes());
        rand::rngs::OsRng.fill_bytes(&mut token[25..BODY_LEN]);
        let mac = self.mac(&token[..BODY_LEN]).finalize().into_bytes();
        token[BODY_LEN..].copy_from_slice(&mac[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The session and generation `token` names, if this server made it.
    pub fn read(&self, token: &str) -> Option<Named> {
        if token.len() != TOKEN_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let (body, mac) = bytes.split_at_checked(BODY_LEN)?;
        if body[0] != VERSION {
            return None;
        }
        // Constant time (`verify_truncated_left`): a timing oracle would let MACs be guessed.
        self.mac(body).verify_truncated_left(mac).ok()?;
        Some(Named {
            session_id: Uuid::from_slice(&body[1..17]).ok()?,
            generation: i64::from_be_bytes(body[17..25].try_into().ok()?),
        })
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(body);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(generation: i64) -> Named {
        Named { session_id: Uuid::new_v4(), generation }
    }

    #[test]
    fn a_token_names_its_session_and_generation() {
        let tokens = RefreshTokens::new(&[7u8; 32]);
        let name = named(3);
        let (a, b) = (tokens.mint(name), tokens.mint(name));
        assert_ne!(a, b, "128 random bits in each");
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(a.starts_with('A'));
        assert_eq!(tokens.read(&a), Some(name));
        assert_eq!(tokens.read(&b), Some(name));
    }

    #[test]
    fn a_token_made_with_another_key_or_changed_is_nobody_s() {
        let tokens = RefreshTokens::new(&[7u8; 32]);
        let token = tokens.mint(named(1));
        assert_eq!(RefreshTokens::new(&[8u8; 32]).read(&token), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for at in [0, 1, 20, 24, 30, BODY_LEN, BODY_LEN + MAC_LEN - 1] {
            bytes[at] ^= 1;
            assert_eq!(tokens.read(&URL_SAFE_NO_PAD.encode(&bytes)), None, "byte {at} flipped");
            bytes[at] ^= 1;
        }
        assert_eq!(tokens.read(&token[1..]), None);
        assert_eq!(tokens.read(&format!("{}=", &token[1..])), None);
        assert_eq!(tokens.read(""), None);
    }
}
