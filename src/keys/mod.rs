//! Signing keys: private keys as PKCS#8 PEM files (0600) in the keys dir, their state in the
//! database so that replicas sharing both agree on which key signs.
//!
//! Rotation publishes before it signs. A new key is in the JWKS at once and signs only from
//! its stored `signs_from`, [`PUBLISH_AHEAD`] later: by then every replica has re-read the
//! key table (each does when its copy is [`RELOAD_INTERVAL`] old) and every JWKS cached
//! without the key ([`JWKS_MAX_AGE`]) has expired. The keys it supersedes stay published until
//! the last token they signed has expired. Replicas pick the signing key from the stored
//! instants and the clock, never from when they happened to notice a rotation, so none signs
//! with a key that another does not publish.
//!
//! Signing and verification go through aws-lc-rs with keys parsed once per key: RS256
//! (jsonwebtoken's `encode` re-parses an RSA key on every call, more than half of each
//! signature; its `decode` rebuilds the public key from n and e on every call, and
//! introspection ran 10–20 % faster without that), ES256 on P-256 (fixed-size r‖s, as JWS
//! wants) and EdDSA on Ed25519. jsonwebtoken reads the header, and in the tests checks
//! independently what we sign. The `rsa` crate only generates RSA keys and reads n/e:
//! its private-key operations carry the Marvin timing advisory (RUSTSEC-2023-0071), so they
//! never sign anything here.
//!
//! Each key is pinned to its algorithm: a token whose header names another algorithm for that
//! `kid` is refused before any signature check, which shuts out `alg: none` and
//! HS256-with-the-public-key confusion.
//!
//! Resource servers introspect the same token on every call they serve, and the signature
//! check was the largest single cost of an introspection (RSA 15–20 % of the server's CPU,
//! ECDSA more). So the ring remembers which tokens it has checked, by the SHA-256 of the whole
//! token (header, claims and signature: any change to any of them is a new token) and the
//! key that checked it. A remembered token still needs that very key among today's, with the
//! algorithm its header names, and passes every claim check again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding, SecretDocument};
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::config::SigningAlg;
use crate::crypto::write_private;
use crate::model::Clock;
use crate::store::cache::Cache;
use crate::store::{self, Db, StoreError};

/// How long a JWKS may be cached (its `Cache-Control: max-age`).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// A replica re-reads the key table when its copy is this old by its clock.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(30);
/// From its publication to its first signature, a new key waits for every replica to list it
/// and then for every JWKS cached before that to expire.
pub const PUBLISH_AHEAD: Duration = Duration::from_secs(RELOAD_INTERVAL.as_secs() + JWKS_MAX_AGE.as_secs());
/// Tokens naming unknown kids make the ring look again at most this often. Rarely useful:
/// keys are published everywhere long before they sign, so such tokens are mostly forged.
pub const UNKNOWN_KID_RELOAD_GAP: Duration = Duration::from_secs(5);
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not signing yet: waits for `signs_from`.
    Pending,
    /// Signs new tokens, and is published.
    Signing,
    /// Superseded; still published until every token it signed has expired (`retire_at`).
    Verifying,
    /// Gone from the JWKS; nothing it signed is accepted.
    Retired,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    /// Unix seconds: published in the JWKS from here on.
    pub created_at: i64,
    /// Unix seconds: may sign from here on.
    pub signs_from: i64,
    /// Unix seconds: leaves the JWKS here; none while no newer key supersedes it.
    pub retire_at: Option<i64>,
}

fn jwt_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

fn retired(retire_at: Option<i64>, now: i64) -> bool {
    retire_at.is_some_and(|at| at <= now)
}

/// Which of the keys (oldest generation first, as `(signs_from, retire_at)`) signs at `now`:
/// the newest whose time has come and that has not retired. The one rule for every replica.
fn signer_index<I>(keys: I, now: i64) -> Option<usize>
where
    I: DoubleEndedIterator<Item = (i64, Option<i64>)> + ExactSizeIterator,
{
    keys.enumerate().rev().find(|(_, (from, retire))| *from <= now && !retired(*retire, now)).map(|(i, _)| i)
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |_| KeyError::Sign("the signature could not be made".into());
        // PKCS#1 v1.5 and Ed25519 are deterministic; aws-lc draws ECDSA nonces itself.
        let rng = SystemRandom::new();
        match self {
            Signer::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature).map_err(failed)?;
                Ok(signature)
            }
            Signer::Ec(pair) => Ok(pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec()),
            Signer::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// The public half, as the JWK members of its key type.
enum PublicKey {
    Rsa { n: String, e: String },
    Ec { x: String, y: String },
    Okp { x: String },
}

impl PublicKey {
    /// RFC 7638 thumbprint: a `kid` every replica derives alike. The required members of the
    /// key type in lexicographic order, without whitespace (§3.2; RFC 8037 §2 for OKP).
    fn thumbprint(&self) -> String {
        let canonical = match self {
            PublicKey::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            PublicKey::Ec { x, y } => format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            PublicKey::Okp { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The key as served in the JWKS (RFC 7517, RFC 7518 §6, RFC 8037 §2).
    fn jwk(&self, kid: &str, alg: SigningAlg) -> serde_json::Value {
        let mut jwk = match self {
            PublicKey::Rsa { n, e } => serde_json::json!({ "kty": "RSA", "n": n, "e": e }),
            PublicKey::Ec { x, y } => serde_json::json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y }),
            PublicKey::Okp { x } => serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x }),
        };
        jwk["use"] = "sig".into();
        jwk["alg"] = alg.as_str().into();
        jwk["kid"] = kid.into();
        jwk
    }
}

struct LoadedKey {
    kid: String,
    alg: SigningAlg,
    signer: Signer,
    /// The public half, parsed once: it checks the signatures of the tokens this key made.
    verifier: ParsedPublicKey,
    jwk: serde_json::Value,
}

impl LoadedKey {
    /// Parses a PKCS#8 private key of `alg`; its `kid` is the thumbprint of its public half.
    fn parse(alg: SigningAlg, der: &[u8]) -> Result<LoadedKey, String> {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let parsed = |verification, public: &[u8]| {
            ParsedPublicKey::new(verification, public).map_err(|e| format!("unusable public key: {e}"))
        };
        let (signer, public, verifier) = match alg {
            SigningAlg::RS256 => {
                let private = rsa::RsaPrivateKey::from_pkcs8_der(der)
                    .map_err(|e| format!("not a PKCS#8 RSA key: {e}"))?;
                let public =
                    PublicKey::Rsa { n: b64(&private.n().to_bytes_be()), e: b64(&private.e().to_bytes_be()) };
                let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| e.to_string())?;
                // PKCS#1 RSAPublicKey DER.
                let verifier = parsed(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref())?;
                (Signer::Rsa(pair), public, verifier)
            }
            SigningAlg::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| format!("not a PKCS#8 P-256 key: {e}"))?;
                // An uncompressed point: 0x04, then x and y of 32 bytes each.
                let point = pair.public_key().as_ref();
                let public = PublicKey::Ec { x: b64(&point[1..33]), y: b64(&point[33..65]) };
                let verifier = parsed(&ECDSA_P256_SHA256_FIXED, point)?;
                (Signer::Ec(pair), public, verifier)
            }
            SigningAlg::EdDSA => {
                let pair =
                    Ed25519KeyPair::from_pkcs8(der).map_err(|e| format!("not a PKCS#8 Ed25519 key: {e}"))?;
                let public = PublicKey::Okp { x: b64(pair.public_key().as_ref()) };
                let verifier = parsed(&ED25519, pair.public_key().as_ref())?;
                (Signer::Ed(pair), public, verifier)
            }
        };
        let kid = public.thumbprint();
        Ok(LoadedKey { jwk: public.jwk(&kid, alg), verifier, kid, alg, signer })
    }

    /// A compact JWS (RFC 7515 §7.1) as `jsonwebtoken::encode` would make it.
    fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(jwt_alg(self.alg));
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        let json =
            |value: Result<Vec<u8>, serde_json::Error>| value.map_err(|e| KeyError::Sign(e.to_string()));
        let mut token = URL_SAFE_NO_PAD.encode(json(serde_json::to_vec(&header))?);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(json(serde_json::to_vec(claims))?, &mut token);
        let signature = self.signer.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

struct Published {
    key: Arc<LoadedKey>,
    signs_from: i64,
    retire_at: Option<i64>,
}

/// One replica's copy of the key table: the published keys, oldest generation first.
struct KeySet {
    keys: Vec<Published>,
    jwks: serde_json::Value,
    /// Look again when the clock reaches this: the copy is RELOAD_INTERVAL old, or a key retires.
    fresh_until: i64,
    /// Sign nothing from here on with this copy: a key superseded after it was read may
    /// retire elsewhere no sooner than PUBLISH_AHEAD after the read (a guard for a table
    /// that cannot be read).
    sign_until: i64,
}

impl KeySet {
    fn empty() -> KeySet {
        KeySet {
            keys: Vec::new(),
            jwks: serde_json::json!({ "keys": [] }),
            fresh_until: i64::MIN,
            sign_until: i64::MIN,
        }
    }

    fn get(&self, kid: &str) -> Option<&Arc<LoadedKey>> {
        self.keys.iter().map(|p| &p.key).find(|k| k.kid == kid)
    }

    fn signer(&self, now: i64) -> Option<&Arc<LoadedKey>> {
        if now >= self.sign_until {
            return None;
        }
        let index = signer_index(self.keys.iter().map(|p| (p.signs_from, p.retire_at)), now)?;
        Some(&self.keys[index].key)
    }
}

pub struct KeyRing {
    db: Db,
    clock: Clock,
    dir: PathBuf,
    set: RwLock<Arc<KeySet>>,
    /// One reload at a time: a burst of tokens with unknown kids waits for the one in flight.
    reload_lock: tokio::sync::Mutex<()>,
    reloads: AtomicU64,
    last_reload_ms: AtomicI64,
    /// Tokens whose signature checked out, by SHA-256 of the token, with the key that checked
    /// it: held weakly, so that a retired key (private half included) leaves memory at once,
    /// and its address cannot be taken by another key while an entry names it.
    verified: Cache<[u8; 32], Weak<LoadedKey>>,
}

/// At most this many checked tokens are remembered (about 100 bytes each), each for at
/// most `VERIFIED_TTL`.
const VERIFIED_MAX: usize = 10_000;
const VERIFIED_TTL: Duration = Duration::from_secs(300);

impl KeyRing {
    /// Loads the published keys; on an empty table, makes the first key (of `first_alg`),
    /// which signs at once: no JWKS can have been cached without it.
    pub async fn open(db: Db, dir: &Path, clock: Clock, first_alg: SigningAlg) -> Result<KeyRing, KeyError> {
        ensure_dir(dir)?;
        let ring = KeyRing {
            db,
            clock,
            dir: dir.to_owned(),
            set: RwLock::new(Arc::new(KeySet::empty())),
            reload_lock: tokio::sync::Mutex::new(()),
            reloads: AtomicU64::new(0),
            last_reload_ms: AtomicI64::new(i64::MIN / 2),
            verified: Cache::with_ttl(VERIFIED_MAX, VERIFIED_TTL),
        };
        if store::keys::list(&ring.db).await?.is_empty() {
            let kid = ring.generate(first_alg).await?;
            if !store::keys::insert_first(&ring.db, &kid, first_alg.as_str(), ring.clock.now()).await? {
                // Another replica made the first key meanwhile; ours was never published.
                let _ = std::fs::remove_file(key_path(&ring.dir, &kid));
            }
        }
        ring.reload().await?;
        Ok(ring)
    }

    /// Adds a key of `alg`: published at once, signing [`PUBLISH_AHEAD`] later. The keys it
    /// supersedes stay published until the tokens they sign before then, which live at most
    /// `max_token_ttl`, have expired.
    pub async fn rotate(&self, alg: SigningAlg, max_token_ttl: Duration) -> Result<KeyInfo, KeyError> {
        let kid = self.generate(alg).await?;
        // A lost race means another rotation committed in between: take the next generation.
        loop {
            let now = self.clock.now();
            let signs_from = now + PUBLISH_AHEAD.as_secs() as i64;
            let retire_others_at = signs_from + max_token_ttl.as_secs() as i64;
            if store::keys::insert_next(&self.db, &kid, alg.as_str(), now, signs_from, retire_others_at)
                .await?
            {
                break;
            }
        }
        self.reload().await?;
        let info = self.list().await?.into_iter().find(|k| k.kid == kid);
        info.ok_or(KeyError::NoSigningKey)
    }

    /// Every key, oldest first, with its state now.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let now = self.clock.now();
        let rows = store::keys::list(&self.db).await?;
        let signer = signer_index(rows.iter().map(|r| (r.signs_from, r.retire_at)), now);
        rows.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let state = match () {
                    _ if Some(i) == signer => KeyState::Signing,
                    _ if retired(r.retire_at, now) => KeyState::Retired,
                    _ if r.signs_from > now => KeyState::Pending,
                    _ => KeyState::Verifying,
                };
                Ok(KeyInfo {
                    alg: parse_alg(&r.alg)?,
                    kid: r.kid,
                    state,
                    created_at: r.created_at,
                    signs_from: r.signs_from,
                    retire_at: r.retire_at,
                })
            })
            .collect()
    }

    /// Re-reads the key table and key files now: picks up rotations made by the CLI or
    /// another replica.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let _one = self.reload_lock.lock().await;
        self.reload_locked().await
    }

    /// How many times the table was read (tests count the reloads a burst causes).
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// The JWKS document: every published key, public parts only.
    pub async fn jwks(&self) -> serde_json::Value {
        self.current().await.jwks.clone()
    }

    /// The algorithms of the published keys, for discovery.
    pub async fn published_algs(&self) -> Vec<SigningAlg> {
        let mut algs: Vec<SigningAlg> = self.current().await.keys.iter().map(|p| p.key.alg).collect();
        algs.sort();
        algs.dedup();
        algs
    }

    /// Signs `claims` with the key that signs now, `typ` in the header.
    pub async fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        let set = self.current().await;
        set.signer(self.clock.now()).ok_or(KeyError::NoSigningKey)?.sign(typ, claims)
    }

    /// Verifies a JWT of one of our published keys: the `kid` must be known, the header's
    /// `alg` must be that key's algorithm, `typ` must match, the signature must be that key's,
    /// `iss` must hold, `sub` must be there and the clock must be before `exp` (no leeway: we
    /// are the clock that set it). `None` for anything else.
    pub async fn verify<T: DeserializeOwned>(&self, token: &str, typ: &str, issuer: &str) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !header.typ.as_deref().is_some_and(|t| typ_matches(t, typ)) {
            return None;
        }
        let kid = header.kid?;
        let key = match self.current().await.get(&kid) {
            Some(k) => k.clone(),
            None => {
                // Perhaps another replica just rotated: look again.
                self.reload_for_unknown_kid().await;
                self.snapshot().get(&kid)?.clone()
            }
        };
        if jwt_alg(key.alg) != header.alg {
            return None;
        }
        // RFC 7515 §5.2: the signature covers `header.payload` as sent.
        let (signed, signature) = token.rsplit_once('.')?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if !self
            .verified
            .get(&digest)
            .is_some_and(|checked| std::ptr::eq(checked.as_ptr(), Arc::as_ptr(&key)))
        {
            let generation = self.verified.generation();
            key.verifier.verify_sig(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).ok()?).ok()?;
            self.verified.put(digest, Arc::downgrade(&key), generation);
        }
        let (_, payload) = signed.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        // The claims every token must carry, read without copying (the caller's type is read
        // after them); a duplicate of any of them makes the token unreadable.
        #[derive(serde::Deserialize)]
        struct Registered<'a> {
            #[serde(borrow)]
            iss: std::borrow::Cow<'a, str>,
            #[serde(borrow, rename = "sub")]
            _sub: std::borrow::Cow<'a, str>,
            exp: f64,
        }
        let registered: Registered = serde_json::from_slice(&payload).ok()?;
        // Audiences are checked by the caller, per use. RFC 7519 §4.1.4: accepted only before
        // its expiry, by the service clock.
        if registered.iss != issuer || registered.exp <= self.clock.now() as f64 {
            return None;
        }
        serde_json::from_slice(&payload).ok()
    }

    /// The copy of the key table, re-read first when it is due (by the service clock, so a
    /// test that moves the clock sees what a replica would after that much time).
    async fn current(&self) -> Arc<KeySet> {
        if self.due() {
            let _one = self.reload_lock.lock().await;
            if self.due()
                && let Err(err) = self.reload_locked().await
            {
                tracing::warn!(error = %err, "reloading signing keys failed");
            }
        }
        self.snapshot()
    }

    /// The copy is due for a re-read, and none was tried within the gap (which also spaces
    /// the retries while the database is out).
    fn due(&self) -> bool {
        self.clock.now() >= self.snapshot().fresh_until && !self.recently_reloaded()
    }

    async fn reload_for_unknown_kid(&self) {
        let seen = self.reloads();
        let _one = self.reload_lock.lock().await;
        // A reload that ran while we waited has looked already, and a flood of made-up kids
        // gets at most one table read per gap.
        if self.reloads() != seen || self.recently_reloaded() {
            return;
        }
        if let Err(err) = self.reload_locked().await {
            tracing::warn!(error = %err, "reloading signing keys failed");
        }
    }

    fn recently_reloaded(&self) -> bool {
        let gap = UNKNOWN_KID_RELOAD_GAP.as_millis() as i64;
        self.clock.now_ms() - self.last_reload_ms.load(Ordering::Relaxed) < gap
    }

    /// Reads the table; the caller holds `reload_lock`.
    async fn reload_locked(&self) -> Result<(), KeyError> {
        let now_ms = self.clock.now_ms();
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.last_reload_ms.store(now_ms, Ordering::Relaxed);
        let now = now_ms.div_euclid(1000);
        let rows = store::keys::list(&self.db).await?;
        let current = self.snapshot();
        let mut keys = Vec::new();
        for row in rows.into_iter().filter(|r| !retired(r.retire_at, now)) {
            let alg = parse_alg(&row.alg)?;
            let key = match current.get(&row.kid) {
                Some(k) if k.alg == alg => k.clone(),
                _ => Arc::new(load_key(&self.dir, &row.kid, alg)?),
            };
            keys.push(Published { key, signs_from: row.signs_from, retire_at: row.retire_at });
        }
        let next_retirement = keys.iter().filter_map(|p| p.retire_at).min().unwrap_or(i64::MAX);
        let jwks = serde_json::json!({ "keys": keys.iter().map(|p| &p.key.jwk).collect::<Vec<_>>() });
        *self.set.write().expect("key set lock") = Arc::new(KeySet {
            keys,
            jwks,
            fresh_until: (now + RELOAD_INTERVAL.as_secs() as i64).min(next_retirement),
            sign_until: now + PUBLISH_AHEAD.as_secs() as i64,
        });
        Ok(())
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.set.read().expect("key set lock").clone()
    }

    async fn generate(&self, alg: SigningAlg) -> Result<String, KeyError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || generate_key_file(&dir, alg))
            .await
            .map_err(|e| KeyError::File { path: self.dir.clone(), reason: e.to_string() })?
    }
}

fn parse_alg(text: &str) -> Result<SigningAlg, KeyError> {
    SigningAlg::parse(text).map_err(|r| KeyError::Store(StoreError::Corrupt(format!("signing key alg: {r}"))))
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

/// A new private key of `alg` as PKCS#8; returns its kid.
fn generate_key_file(dir: &Path, alg: SigningAlg) -> Result<String, KeyError> {
    let bad = |reason: String| KeyError::File { path: dir.to_owned(), reason };
    let failed = |_| bad(format!("{alg} key generation failed"));
    let rng = SystemRandom::new();
    let der = match alg {
        SigningAlg::RS256 => rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
            .map_err(|e| bad(e.to_string()))?
            .to_pkcs8_der()
            .map_err(|e| bad(e.to_string()))?,
        SigningAlg::ES256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(failed)?;
            SecretDocument::try_from(doc.as_ref()).map_err(|e| bad(e.to_string()))?
        }
        // v1, the form `openssl genpkey` writes and every PKCS#8 reader knows.
        SigningAlg::EdDSA => {
            let doc = Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(failed)?;
            SecretDocument::try_from(doc.as_ref()).map_err(|e| bad(e.to_string()))?
        }
    };
    let kid = LoadedKey::parse(alg, der.as_bytes()).map_err(bad)?.kid;
    let pem = der.to_pem("PRIVATE KEY", LineEnding::LF).map_err(|e| bad(e.to_string()))?;
    let path = key_path(dir, &kid);
    write_private(&path, pem.as_bytes()).map_err(|e| KeyError::File { path, reason: e.to_string() })?;
    Ok(kid)
}

fn load_key(dir: &Path, kid: &str, alg: SigningAlg) -> Result<LoadedKey, KeyError> {
    let path = key_path(dir, kid);
    let bad = |reason: String| KeyError::File { path: path.clone(), reason };
    let pem = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let (_, der) = SecretDocument::from_pem(&pem).map_err(|e| bad(format!("not a PEM file: {e}")))?;
    let key = LoadedKey::parse(alg, der.as_bytes()).map_err(bad)?;
    if key.kid != kid {
        return Err(bad("the key does not match its kid".into()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Claims {
        iss: String,
        sub: String,
        exp: i64,
    }

    /// For each algorithm: a token signed with the cached aws-lc-rs key pair is a JWT that
    /// jsonwebtoken accepts with the key taken from our JWK, with the header verification
    /// relies on; the key file reloads to the same kid; a flipped signature byte is refused.
    #[test]
    fn signed_tokens_verify_with_jsonwebtoken() {
        let dir = tempfile::tempdir().unwrap();
        for alg in SigningAlg::ALL {
            let kid = generate_key_file(dir.path(), alg).unwrap();
            let key = load_key(dir.path(), &kid, alg).unwrap();
            assert_eq!(key.jwk["kid"], kid.as_str());
            let claims = Claims {
                iss: "https://issuer.example".into(),
                sub: "user-1".into(),
                exp: Clock::default().now() + 60,
            };
            let token = key.sign("at+jwt", &claims).unwrap();

            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, jwt_alg(alg));
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
            let decoding = DecodingKey::from_jwk(&jwk).unwrap();
            let mut validation = Validation::new(jwt_alg(alg));
            validation.set_issuer(&["https://issuer.example"]);
            let decoded = jsonwebtoken::decode::<Claims>(&token, &decoding, &validation).unwrap();
            assert_eq!(decoded.claims, claims, "{alg}");

            let (message, signature) = token.rsplit_once('.').unwrap();
            let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
            bytes[0] ^= 1;
            let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(bytes));
            assert!(jsonwebtoken::decode::<Claims>(&forged, &decoding, &validation).is_err(), "{alg}");
            // Loaded as another algorithm, the file is refused.
            let other = SigningAlg::ALL.into_iter().find(|a| *a != alg).unwrap();
            assert!(load_key(dir.path(), &kid, other).is_err(), "{alg} as {other}");
        }
    }

    /// RFC 7638 §3.1's example key has this thumbprint; RFC 8037 §A.3 gives the OKP one.
    #[test]
    fn thumbprints_match_the_rfc_examples() {
        let rsa = PublicKey::Rsa {
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into(),
            e: "AQAB".into(),
        };
        assert_eq!(rsa.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        let okp = PublicKey::Okp { x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into() };
        assert_eq!(okp.thumbprint(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn the_newest_key_whose_time_has_come_signs() {
        // K1 superseded by K2 (signing from 100), K2 by K3 (signing from 200).
        let keys = [(0, Some(1000)), (100, Some(1100)), (200, None)];
        let at = |now| signer_index(keys.iter().copied(), now);
        assert_eq!(at(50), Some(0));
        assert_eq!(at(100), Some(1));
        assert_eq!(at(199), Some(1));
        assert_eq!(at(200), Some(2));
        assert_eq!(signer_index([(0, Some(10))].into_iter(), 10), None, "retired keys never sign");
    }
}
