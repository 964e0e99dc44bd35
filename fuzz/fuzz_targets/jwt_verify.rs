//! The JWT verification entry, `KeyRing::verify`, as every Bearer-protected endpoint and
//! introspection call it, over a real key ring (temporary SQLite database and keys dir).
//! The first byte picks how the rest is used, so the fuzzer also gets past the header
//! checks: as the whole token; as payload and signature behind a valid header naming our
//! key; as the header itself; or as claims that our key really signed.
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::keys::KeyRing;
use latchkey::oauth::tokens::{ACCESS_TOKEN_TYP, AccessClaims};
use latchkey::store::Db;
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "http://127.0.0.1:8080";

struct Ring {
    rt: tokio::runtime::Runtime,
    keys: KeyRing,
    kid: String,
    _dir: tempfile::TempDir,
}

static RING: LazyLock<Ring> = LazyLock::new(|| {
    latchkey::keys::install_crypto_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("fuzz.db").display());
    let keys = rt.block_on(async {
        let db = Db::connect(&url).await.expect("database");
        db.migrate().await.expect("migrations");
        KeyRing::open(db, &dir.path().join("keys")).await.expect("key ring")
    });
    let kid = keys.jwks()["keys"][0]["kid"].as_str().expect("kid").to_owned();
    Ring { rt, keys, kid, _dir: dir }
});

fuzz_target!(|data: &[u8]| {
    let ring = &*RING;
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let token = match mode % 4 {
        0 => text.into_owned(),
        1 => {
            let header = format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{}"}}"#, ring.kid);
            format!("{}.{text}", b64(header.as_bytes()))
        }
        2 => format!("{}.{}.{}", b64(rest), b64(br#"{"sub":"u"}"#), b64(b"sig")),
        _ => {
            let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
            ring.keys.sign(ACCESS_TOKEN_TYP, &claims).expect("signing")
        }
    };
    let verified = ring.rt.block_on(ring.keys.verify::<AccessClaims>(&token, ACCESS_TOKEN_TYP, ISSUER));
    if mode % 4 != 3 {
        // Only our key's signature makes a token valid.
        assert!(verified.is_none(), "accepted a token latchkey did not sign: {token}");
    }
});
