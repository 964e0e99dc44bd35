//! Signing keys: RSA-2048 private keys as PKCS#8 PEM files (0600) in the keys dir, their
//! state in the database so that replicas sharing both agree on which key signs.
//!
//! Signing uses aws-lc-rs directly with a key pair parsed once per key (constant-time RSA);
//! jsonwebtoken's `encode` re-parses and re-validates the private key on every call, which
//! measured as more than half of each signature. Verification goes through jsonwebtoken on the
//! same backend. The `rsa` crate only generates keys and reads n/e: its private-key
//! operations carry the Marvin timing advisory (RUSTSEC-2023-0071), so they never sign
//! anything here.
//!
//! Each key is pinned to one algorithm (RS256): a token whose header names another
//! algorithm for that `kid` is refused before any signature check, which shuts out
//! `alg: none` and HS256-with-the-public-key confusion.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::crypto::write_private;
use crate::model::Clock;
use crate::store::{self, Db, StoreError};

const ALG: Algorithm = Algorithm::RS256;
const ALG_NAME: &str = "RS256";
const RSA_BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("no signing key is available")]
    NoSigningKey,
    #[error("signing failed: {0}")]
    Sign(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Installs jsonwebtoken's aws-lc-rs provider. Called once at start-up: without an
/// explicit provider jsonwebtoken panics at the first signature.
pub fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Signs new tokens, and is published.
    Signing,
    /// Superseded; still published until every token it signed has expired.
    Verifying,
    /// Gone from the JWKS; nothing it signed is accepted.
    Retired,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    pub created_at: i64,
    pub retire_at: Option<i64>,
}

struct LoadedKey {
    kid: String,
    signing: RsaKeyPair,
    decoding: DecodingKey,
    n: String,
    e: String,
}

impl LoadedKey {
    fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(ALG);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        let json =
            |value: Result<Vec<u8>, serde_json::Error>| value.map_err(|e| KeyError::Sign(e.to_string()));
        let mut token = URL_SAFE_NO_PAD.encode(json(serde_json::to_vec(&header))?);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(json(serde_json::to_vec(claims))?, &mut token);
        let mut signature = vec![0; self.signing.public_modulus_len()];
        // PKCS#1 v1.5 is deterministic: aws-lc-rs ignores the random source.
        self.signing
            .sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), token.as_bytes(), &mut signature)
            .map_err(|_| KeyError::Sign("RSA signing failed".into()))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

#[derive(Default)]
struct KeySet {
    /// Published keys by kid; the signing key is among them.
    keys: HashMap<String, Arc<LoadedKey>>,
    signing: Option<Arc<LoadedKey>>,
    jwks: serde_json::Value,
}

pub struct KeyRing {
    db: Db,
    clock: Clock,
    dir: PathBuf,
    set: RwLock<Arc<KeySet>>,
    last_reload: Mutex<Instant>,
}

/// RFC 7517 public key as served in the JWKS.
#[derive(Debug, Serialize)]
struct Jwk<'a> {
    kty: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
    alg: &'static str,
    kid: &'a str,
    n: &'a str,
    e: &'a str,
}

impl KeyRing {
    /// Loads the published keys, creating the first one when there is none.
    pub async fn open(db: Db, dir: &Path, clock: Clock) -> Result<KeyRing, KeyError> {
        ensure_dir(dir)?;
        let ring = KeyRing {
            db,
            clock,
            dir: dir.to_owned(),
            set: RwLock::new(Arc::new(KeySet::default())),
            last_reload: Mutex::new(Instant::now()),
        };
        if !ring.list().await?.iter().any(|k| k.state == KeyState::Signing) {
            ring.add_signing_key(None).await?;
        }
        ring.reload().await?;
        Ok(ring)
    }

    /// Adds a new key and makes it the signing key; the earlier ones stay published for
    /// `max_token_ttl`, long enough for everything they signed to expire.
    pub async fn rotate(&self, max_token_ttl: Duration) -> Result<KeyInfo, KeyError> {
        let kid = self.add_signing_key(Some(max_token_ttl)).await?;
        self.reload().await?;
        let info = self.list().await?.into_iter().find(|k| k.kid == kid);
        info.ok_or(KeyError::NoSigningKey)
    }

    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let now = self.clock.now();
        let rows = store::keys::list(&self.db).await?;
        // The newest key without a retirement date signs (two replicas racing at first
        // start may both create one; the newest wins and both stay published).
        let signing = rows.iter().filter(|r| r.retire_at.is_none()).map(|r| (r.created_at, &r.kid)).max();
        Ok(rows
            .iter()
            .map(|r| KeyInfo {
                kid: r.kid.clone(),
                alg: r.alg.clone(),
                state: match r.retire_at {
                    _ if Some((r.created_at, &r.kid)) == signing => KeyState::Signing,
                    Some(at) if at <= now => KeyState::Retired,
                    _ => KeyState::Verifying,
                },
                created_at: r.created_at,
                retire_at: r.retire_at,
            })
            .collect())
    }

    /// Re-reads key state from the database and key files: picks up rotations made by the
    /// CLI or another replica.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let infos = self.list().await?;
        let current = self.snapshot();
        let mut keys = HashMap::new();
        let mut signing = None;
        for info in infos.iter().filter(|k| k.state != KeyState::Retired) {
            let key = match current.keys.get(&info.kid) {
                Some(k) => k.clone(),
                None => Arc::new(load_key(&self.dir, &info.kid)?),
            };
            if info.state == KeyState::Signing {
                signing = Some(key.clone());
            }
            keys.insert(info.kid.clone(), key);
        }
        let mut published: Vec<&Arc<LoadedKey>> = keys.values().collect();
        published.sort_by(|a, b| a.kid.cmp(&b.kid));
        let jwks = serde_json::json!({
            "keys": published
                .iter()
                .map(|k| Jwk { kty: "RSA", use_: "sig", alg: ALG_NAME, kid: &k.kid, n: &k.n, e: &k.e })
                .collect::<Vec<_>>()
        });
        *self.set.write().expect("key set lock") = Arc::new(KeySet { keys, signing, jwks });
        *self.last_reload.lock().expect("reload lock") = Instant::now();
        Ok(())
    }

    /// The JWKS document: every published key, public parts only.
    pub fn jwks(&self) -> serde_json::Value {
        self.snapshot().jwks.clone()
    }

    /// Signs `claims` with the current signing key, `typ` in the header: a compact JWS
    /// (RFC 7515 §7.1), as `jsonwebtoken::encode` would make it.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        self.snapshot().signing.as_ref().ok_or(KeyError::NoSigningKey)?.sign(typ, claims)
    }

    /// Verifies a JWT of one of our published keys: the `kid` must be known, the header's
    /// `alg` must be that key's algorithm, `typ` must match, and `iss` and `exp` must hold
    /// (no leeway: we are the clock that set them). Returns `None` for anything else.
    pub async fn verify<T: DeserializeOwned>(&self, token: &str, typ: &str, issuer: &str) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !header.typ.as_deref().is_some_and(|t| typ_matches(t, typ)) || header.alg != ALG {
            return None;
        }
        let kid = header.kid?;
        let key = match self.snapshot().keys.get(&kid) {
            Some(k) => k.clone(),
            None => {
                // Perhaps another replica just rotated: look again, at most once a second.
                self.reload_if_stale().await;
                self.snapshot().keys.get(&kid)?.clone()
            }
        };
        let mut validation = Validation::new(ALG);
        validation.leeway = 0;
        validation.validate_aud = false; // audiences are checked by the caller, per use
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<T>(token, &key.decoding, &validation).ok().map(|d| d.claims)
    }

    async fn reload_if_stale(&self) {
        let stale = self.last_reload.lock().expect("reload lock").elapsed() > Duration::from_secs(1);
        if stale && let Err(err) = self.reload().await {
            tracing::warn!(error = %err, "reloading signing keys failed");
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.set.read().expect("key set lock").clone()
    }

    async fn add_signing_key(&self, retire_others_after: Option<Duration>) -> Result<String, KeyError> {
        let dir = self.dir.clone();
        let kid = tokio::task::spawn_blocking(move || generate_key_file(&dir))
            .await
            .map_err(|e| KeyError::File { path: self.dir.clone(), reason: e.to_string() })??;
        let now = self.clock.now();
        let retire_at = retire_others_after.map(|d| now + d.as_secs() as i64);
        store::keys::insert_signing(&self.db, &kid, ALG_NAME, now, retire_at).await?;
        Ok(kid)
    }
}

fn typ_matches(actual: &str, expected: &str) -> bool {
    // RFC 9068 §4: `at+jwt` may also appear as `application/at+jwt`.
    let actual = actual.strip_prefix("application/").unwrap_or(actual);
    actual.eq_ignore_ascii_case(expected)
}

fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    let err = |reason: String| KeyError::File { path: dir.to_owned(), reason };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Only tighten a directory we own; a shared mount may be read-only.
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

/// RFC 7638 thumbprint of the public key: a `kid` every replica derives alike.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn generate_key_file(dir: &Path) -> Result<String, KeyError> {
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
        .map_err(|e| KeyError::File { path: dir.to_owned(), reason: e.to_string() })?;
    let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
    let kid = thumbprint(&n, &e);
    let pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::File { path: dir.to_owned(), reason: e.to_string() })?;
    let path = key_path(dir, &kid);
    write_private(&path, pem.as_bytes()).map_err(|e| KeyError::File { path, reason: e.to_string() })?;
    Ok(kid)
}

fn load_key(dir: &Path, kid: &str) -> Result<LoadedKey, KeyError> {
    let path = key_path(dir, kid);
    let bad = |reason: String| KeyError::File { path: path.clone(), reason };
    let pem = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let (_, der) =
        rsa::pkcs8::SecretDocument::from_pem(&pem).map_err(|e| bad(format!("not a PEM file: {e}")))?;
    let private = rsa::RsaPrivateKey::from_pkcs8_der(der.as_bytes())
        .map_err(|e| bad(format!("not a PKCS#8 RSA key: {e}")))?;
    let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
    if thumbprint(&n, &e) != kid {
        return Err(bad("the key does not match its kid".into()));
    }
    Ok(LoadedKey {
        kid: kid.to_owned(),
        signing: RsaKeyPair::from_pkcs8(der.as_bytes()).map_err(|e| bad(e.to_string()))?,
        decoding: DecodingKey::from_rsa_raw_components(
            &private.n().to_bytes_be(),
            &private.e().to_bytes_be(),
        ),
        n,
        e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Claims {
        iss: String,
        sub: String,
        exp: i64,
    }

    /// A token signed with the cached aws-lc-rs key pair is a JWT jsonwebtoken accepts,
    /// with the header verification relies on; a flipped signature byte is refused.
    #[test]
    fn signed_tokens_verify_with_jsonwebtoken() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let kid = generate_key_file(dir.path()).unwrap();
        let key = load_key(dir.path(), &kid).unwrap();
        let claims = Claims {
            iss: "https://issuer.example".into(),
            sub: "user-1".into(),
            exp: Clock::default().now() + 60,
        };
        let token = key.sign("at+jwt", &claims).unwrap();

        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
        let mut validation = Validation::new(ALG);
        validation.set_issuer(&["https://issuer.example"]);
        let decoded = jsonwebtoken::decode::<Claims>(&token, &key.decoding, &validation).unwrap();
        assert_eq!(decoded.claims, claims);

        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[0] ^= 1;
        let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert!(jsonwebtoken::decode::<Claims>(&forged, &key.decoding, &validation).is_err());
    }
}
