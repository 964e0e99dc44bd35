//! Encryption at rest for TOTP secrets: ChaCha20-Poly1305 under the server's secret key,
//! `--secret-key` or else `secret.key` in the keys dir (created, 0600, on first start).
//! Without the key a database dump does not reveal anyone's authenticator seed.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

use crate::config::{SettingError, Settings, parse_secret_key};

const NONCE_LEN: usize = 12;
const KEY_FILE: &str = "secret.key";

#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error("key file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The stored value is not ciphertext this key made for this owner.
#[derive(Debug, thiserror::Error)]
#[error("a sealed secret cannot be opened (wrong secret key or corrupt data)")]
pub struct Unsealable;

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> SecretBox {
        SecretBox { cipher: ChaCha20Poly1305::new(&Key::from(*key)) }
    }

    /// `owner` is bound in as associated data, so a ciphertext copied onto another user's
    /// row does not open there.
    pub fn seal(&self, plaintext: &[u8], owner: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: owner.as_bytes() })
            .expect("ChaCha20-Poly1305 encrypts any input shorter than 256 GiB");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        STANDARD.encode(sealed)
    }

    pub fn open(&self, sealed: &str, owner: &str) -> Result<Vec<u8>, Unsealable> {
        let bytes = STANDARD.decode(sealed).map_err(|_| Unsealable)?;
        let (nonce, ciphertext) = bytes.split_at_checked(NONCE_LEN).ok_or(Unsealable)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Unsealable)?;
        self.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: owner.as_bytes() })
            .map_err(|_| Unsealable)
    }
}

/// The server's secret key: from the settings, or from the key file, which is created
/// when missing. It seals TOTP secrets and keys the refresh tokens' MAC (`refresh`).
pub fn load_secret_key(settings: &Settings) -> Result<[u8; 32], SecretKeyError> {
    match settings.secret_key_bytes()? {
        Some(key) => Ok(key),
        None => load_or_create_key_file(&settings.keys_dir),
    }
}

fn load_or_create_key_file(dir: &Path) -> Result<[u8; 32], SecretKeyError> {
    let path = dir.join(KEY_FILE);
    let bad = |reason: String| SecretKeyError::File { path: path.clone(), reason };
    std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    match super::write_private(&path, format!("{}\n", STANDARD.encode(key)).as_bytes()) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a new secret key (TOTP secrets, refresh tokens)");
            Ok(key)
        }
        // Already there (an earlier start, or a replica sharing the dir that won the race).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
            parse_secret_key(&text).map_err(bad)
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_for_the_same_owner_only() {
        let sealed_box = SecretBox::new(&[7u8; 32]);
        let sealed = sealed_box.seal(b"seed", "alice");
        assert_ne!(sealed, sealed_box.seal(b"seed", "alice"), "a fresh nonce every time");
        assert_eq!(sealed_box.open(&sealed, "alice").unwrap(), b"seed");
        assert!(sealed_box.open(&sealed, "bob").is_err());
        assert!(SecretBox::new(&[8u8; 32]).open(&sealed, "alice").is_err());
        assert!(sealed_box.open("not base64!", "alice").is_err());
        assert!(sealed_box.open("AAAA", "alice").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_key_file(dir.path()).unwrap();
        assert_eq!(load_or_create_key_file(dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        let err = load_or_create_key_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("secret.key") && err.contains("32 bytes"), "{err}");
    }
}
