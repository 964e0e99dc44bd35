//! Signing keys: publish-before-sign rotation (also across two replicas on one database),
//! ES256 and EdDSA keys, the algorithm pinned per key, and reloads on unknown kids.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestApp, TestClient, jwt_part, spawn_app, spawn_app_with, spawn_replica};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use latchkey::admin::{self, Actor};
use latchkey::config::SigningAlg;
use latchkey::keys::{
    JWKS_MAX_AGE, KeyInfo, KeyState, PUBLISH_AHEAD, RELOAD_INTERVAL, UNKNOWN_KID_RELOAD_GAP,
};
use latchkey::model::GrantType;
use serde_json::{Value, json};

const TTL: i64 = 900; // the default --access-token-ttl

async fn jwks(app: &TestApp) -> Value {
    let resp = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    let max_age = format!("max-age={}", JWKS_MAX_AGE.as_secs());
    assert!(resp.headers()["cache-control"].to_str().unwrap().contains(&max_age));
    resp.json().await.unwrap()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks = jwks(app).await;
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

fn kid(token: &str) -> String {
    jwt_part(token, 0)["kid"].as_str().unwrap().to_owned()
}

async fn rotate(app: &TestApp, alg: Option<SigningAlg>) -> KeyInfo {
    admin::rotate_key(&app.svc, &Actor::cli(), alg).await.unwrap()
}

async fn state_of(app: &TestApp, kid: &str) -> KeyState {
    app.svc.keys().list().await.unwrap().into_iter().find(|k| k.kid == kid).unwrap().state
}

/// Moves the clock so that it reads `at` (Unix seconds).
fn advance_to(app: &TestApp, at: i64) {
    let now = app.svc.now();
    assert!(at >= now, "the clock only moves forward");
    app.svc.clock().advance(Duration::from_secs((at - now) as u64));
}

#[tokio::test]
async fn rotation_publishes_at_once_signs_after_max_age_and_retires_after_the_last_token() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let first = app.login(&client, "alice").await;
    let old_kid = kid(first["access_token"].as_str().unwrap());
    assert_eq!(kid(first["id_token"].as_str().unwrap()), old_kid);

    let new = rotate(&app, None).await;
    assert_eq!((new.state, new.alg), (KeyState::Pending, SigningAlg::RS256));
    assert!(new.signs_from >= new.created_at + PUBLISH_AHEAD.as_secs() as i64, "{new:?}");
    let mut kids = jwks_kids(&app).await;
    kids.sort();
    let mut both = vec![old_kid.clone(), new.kid.clone()];
    both.sort();
    assert_eq!(kids, both, "both keys are published at once");
    let tokens = app.login(&client, "alice").await;
    assert_eq!(kid(tokens["access_token"].as_str().unwrap()), old_kid, "the old key still signs");
    assert_eq!(kid(tokens["id_token"].as_str().unwrap()), old_kid);
    assert_eq!(state_of(&app, &old_kid).await, KeyState::Signing);

    // The last token the old key signs, a moment before the new key takes over.
    advance_to(&app, new.signs_from - 2);
    let last_old = app.login(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid(&last_old), old_kid);

    advance_to(&app, new.signs_from);
    let fresh = app.login(&client, "alice").await;
    assert_eq!(kid(fresh["access_token"].as_str().unwrap()), new.kid, "the new key signs after max-age");
    assert_eq!(kid(fresh["id_token"].as_str().unwrap()), new.kid);
    let old = app.svc.keys().list().await.unwrap().into_iter().find(|k| k.kid == old_kid).unwrap();
    assert_eq!(old.state, KeyState::Verifying);
    assert_eq!(old.retire_at, Some(new.signs_from + TTL), "published until its last token expires");
    assert_eq!(state_of(&app, &new.kid).await, KeyState::Signing);

    // Shortly before that token expires, the old key is still published and its token valid.
    let last_exp = jwt_part(&last_old, 1)["exp"].as_i64().unwrap();
    assert!(last_exp <= new.signs_from + TTL);
    advance_to(&app, last_exp - 5);
    assert!(jwks_kids(&app).await.contains(&old_kid));
    assert_eq!(app.introspect(&client, &last_old).await["active"], true);

    // Then the old key is retired: gone from the JWKS, nothing it signed accepted.
    advance_to(&app, new.signs_from + TTL);
    assert_eq!(jwks_kids(&app).await, std::slice::from_ref(&new.kid));
    assert_eq!(state_of(&app, &old_kid).await, KeyState::Retired);
    assert_eq!(app.introspect(&client, &last_old).await, json!({"active": false}));
    let keys = admin_keys(&app).await;
    assert!(keys.iter().all(|k| k["signs_from"].is_i64()), "{keys:?}");
}

/// The admin API's view of the keys, as JSON.
async fn admin_keys(app: &TestApp) -> Vec<Value> {
    let keys = admin::list_keys(&app.svc).await.unwrap();
    keys.into_iter().map(|k| serde_json::to_value(k).unwrap()).collect()
}

#[tokio::test]
async fn access_tokens_expire_by_the_service_clock() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let token = app.login(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let exp = jwt_part(&token, 1)["exp"].as_i64().unwrap();
    advance_to(&app, exp - 2);
    assert_eq!(app.introspect(&client, &token).await["active"], true);
    assert_eq!(app.get_bearer("/oauth/userinfo", &token).await.status(), 200);
    advance_to(&app, exp);
    assert_eq!(app.introspect(&client, &token).await, json!({"active": false}));
    assert_eq!(app.get_bearer("/oauth/userinfo", &token).await.status(), 401);
}

/// What resource servers may hold: every JWKS either replica served, by service time.
struct Caches(Vec<(i64, String, Vec<String>)>);

impl Caches {
    async fn fetch(&mut self, replicas: &[(&str, &TestApp)]) {
        for (name, app) in replicas {
            self.0.push((app.svc.now(), (*name).to_owned(), jwks_kids(app).await));
        }
    }

    /// A token signed at `at` must verify against every JWKS a cache may still hold then.
    fn assert_listed(&self, token: &str, at: i64, signer: &str) {
        let kid = kid(token);
        for (served, by, kids) in &self.0 {
            if *served > at - JWKS_MAX_AGE.as_secs() as i64 {
                assert!(
                    kids.contains(&kid),
                    "{signer} signed with {kid} at {at}, unknown to {by}'s JWKS of {served}"
                );
            }
        }
    }
}

#[tokio::test]
async fn two_replicas_never_sign_with_a_key_the_other_does_not_publish() {
    let a = spawn_app().await;
    let b = spawn_replica(&a).await;
    a.create_user("alice", &[]).await;
    let client = a.web_client().await;
    let replicas = [("a", &a), ("b", &b)];
    let advance = |by: i64| {
        for (_, app) in &replicas {
            app.svc.clock().advance(Duration::from_secs(by as u64));
        }
    };
    let mut caches = Caches(Vec::new());
    // Signs a token on each replica and checks it against every JWKS served before or since.
    async fn sign_everywhere(
        replicas: &[(&str, &TestApp)],
        client: &TestClient,
        caches: &mut Caches,
    ) -> Vec<String> {
        caches.fetch(replicas).await;
        let mut kids = Vec::new();
        for (name, app) in replicas {
            let token = app.login(client, "alice").await["access_token"].as_str().unwrap().to_owned();
            caches.assert_listed(&token, app.svc.now(), name);
            kids.push(kid(&token));
        }
        caches.fetch(replicas).await;
        kids
    }

    let k1 = sign_everywhere(&replicas, &client, &mut caches).await[0].clone();
    let k2 = rotate(&a, None).await;
    // b has not looked at the table since the rotation: its JWKS lacks k2 for now.
    assert!(!jwks_kids(&b).await.contains(&k2.kid));
    assert_eq!(sign_everywhere(&replicas, &client, &mut caches).await, [k1.clone(), k1.clone()]);

    advance(RELOAD_INTERVAL.as_secs() as i64);
    assert!(jwks_kids(&b).await.contains(&k2.kid), "b publishes k2 within the reload interval");
    assert_eq!(sign_everywhere(&replicas, &client, &mut caches).await, [k1.clone(), k1.clone()]);

    // A rotation on b, to ES256, just after a has read the table: a learns of it only at its
    // next read, and k2 still takes over on time.
    advance(k2.signs_from - a.svc.now() - 10);
    jwks_kids(&a).await;
    let k3 = rotate(&b, Some(SigningAlg::ES256)).await;
    assert!(!jwks_kids(&a).await.contains(&k3.kid));
    assert_eq!(sign_everywhere(&replicas, &client, &mut caches).await, [k1.clone(), k1.clone()]);
    advance(10);
    assert_eq!(sign_everywhere(&replicas, &client, &mut caches).await, [k2.kid.clone(), k2.kid.clone()]);

    advance(k3.signs_from - a.svc.now());
    assert_eq!(sign_everywhere(&replicas, &client, &mut caches).await, [k3.kid.clone(), k3.kid.clone()]);
    assert_eq!(
        jwt_part(a.login(&client, "alice").await["access_token"].as_str().unwrap(), 0)["alg"],
        "ES256"
    );

    // k1 and then k2 retire on both replicas once their last tokens have expired.
    advance(TTL);
    for (_, app) in &replicas {
        assert_eq!(jwks_kids(app).await, std::slice::from_ref(&k3.kid));
    }
    assert_eq!(sign_everywhere(&replicas, &client, &mut caches).await, [k3.kid.clone(), k3.kid.clone()]);
}

#[tokio::test]
async fn a_burst_of_unknown_kids_reloads_the_keys_once() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let token = app.login(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let (_, rest) = token.split_once('.').unwrap();
    let forged = |i: usize| {
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("unknown-{i}")});
        format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
    };
    let burst = || {
        futures::future::join_all((0..50).map(|i| {
            let (app, client, token) = (&app, &client, forged(i));
            async move { app.introspect(client, &token).await }
        }))
    };

    // Past the gap after the start-up read, not yet at the periodic one.
    app.svc.clock().advance(UNKNOWN_KID_RELOAD_GAP + Duration::from_secs(1));
    let before = app.svc.keys().reloads();
    for answer in burst().await {
        assert_eq!(answer, json!({"active": false}));
    }
    assert_eq!(app.svc.keys().reloads(), before + 1, "one reload for the whole burst");
    burst().await;
    assert_eq!(app.svc.keys().reloads(), before + 1, "and none again within the gap");
}

/// RFC 7638 thumbprint of a JWK as a resource server would compute it.
fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str().unwrap() {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        other => panic!("unexpected kty {other}"),
    };
    let fields: Vec<String> = members.iter().map(|m| format!("\"{m}\":{}", jwk[*m])).collect();
    let canonical = format!("{{{}}}", fields.join(","));
    URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(canonical.as_bytes()))
}

#[tokio::test]
async fn es256_and_eddsa_tokens_verify_offline_and_by_introspection() {
    for (alg, jwt_alg, kty, members) in [
        (SigningAlg::ES256, Algorithm::ES256, "EC", &["alg", "crv", "kid", "kty", "use", "x", "y"][..]),
        (SigningAlg::EdDSA, Algorithm::EdDSA, "OKP", &["alg", "crv", "kid", "kty", "use", "x"][..]),
    ] {
        let app = spawn_app_with(|s| s.signing_alg = alg).await;
        app.create_user("alice", &[]).await;
        let client = app.web_client().await;
        let tokens = app.login(&client, "alice").await;
        let access = tokens["access_token"].as_str().unwrap();

        let set = jwks(&app).await;
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let jwk = &keys[0];
        let mut names: Vec<&str> = jwk.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, members, "{alg}: public members only");
        assert_eq!((jwk["kty"].as_str(), jwk["alg"].as_str()), (Some(kty), Some(alg.as_str())));
        assert_eq!(jwk["kid"].as_str().unwrap(), thumbprint(jwk), "{alg}: kid is the RFC 7638 thumbprint");
        assert_eq!(kid(access), jwk["kid"].as_str().unwrap());

        // Offline, as a resource server would: the key from the JWKS, the alg it pins.
        let key = DecodingKey::from_jwk(&serde_json::from_value::<Jwk>(jwk.clone()).unwrap()).unwrap();
        let mut validation = Validation::new(jwt_alg);
        validation.set_issuer(&[&app.base]);
        validation.set_audience(&[client.id.as_str(), app.base.as_str()]);
        let claims = jsonwebtoken::decode::<Value>(access, &key, &validation).unwrap().claims;
        assert_eq!(claims["client_id"], client.id.as_str());
        let mut id_validation = Validation::new(jwt_alg);
        id_validation.set_audience(&[&client.id]);
        jsonwebtoken::decode::<Value>(tokens["id_token"].as_str().unwrap(), &key, &id_validation).unwrap();
        assert_eq!(app.introspect(&client, access).await["active"], true, "{alg}");
        assert_eq!(app.get_bearer("/oauth/userinfo", access).await.status(), 200);

        let discovery: Value = app.get_json("/.well-known/openid-configuration").await;
        assert_eq!(discovery["id_token_signing_alg_values_supported"], json!([alg.as_str()]));

        // The private key: PKCS#8 PEM, owner-only.
        let pem_path = app.dir.path().join("keys").join(format!("{}.pem", jwk["kid"].as_str().unwrap()));
        assert!(std::fs::read_to_string(&pem_path).unwrap().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&pem_path).unwrap().permissions().mode() & 0o777, 0o600);
        }

        // A rotation back to RS256 publishes both kinds; discovery names both algorithms.
        rotate(&app, Some(SigningAlg::RS256)).await;
        let discovery: Value = app.get_json("/.well-known/openid-configuration").await;
        let mut expected = vec!["RS256", alg.as_str()];
        expected.sort_by_key(|a| SigningAlg::parse(a).unwrap());
        assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(expected));
    }
}

fn sign(claims: &Value, kid: &str, alg: Algorithm, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// The algorithm is pinned per key: an EC or OKP kid presented with any other algorithm,
/// signed with any key material a forger may have, is refused.
#[tokio::test]
async fn es256_and_eddsa_keys_accept_only_their_own_algorithm() {
    let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let rsa_pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&rsa, rsa::pkcs8::LineEnding::LF).unwrap();
    let foreign_rsa = EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap();
    for alg in [SigningAlg::ES256, SigningAlg::EdDSA] {
        let app = spawn_app_with(|s| s.signing_alg = alg).await;
        app.create_user("alice", &[]).await;
        // The app's tokens name the API the resource server introspects for.
        let api = ["https://api.example"];
        let grants = [GrantType::Password, GrantType::RefreshToken];
        let client = app.create_client("web", false, &grants, "openid profile email api", &api).await;
        let rs = app.create_client("api-server", false, &[], "", &api).await;
        let token = app.login(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
        let (kid, claims) = (kid(&token), jwt_part(&token, 1));
        let pem = std::fs::read(app.dir.path().join("keys").join(format!("{kid}.pem"))).unwrap();
        let jwk = jwks(&app).await["keys"][0].clone();
        let (own_alg, own_key) = match alg {
            SigningAlg::ES256 => (Algorithm::ES256, EncodingKey::from_ec_pem(&pem).unwrap()),
            _ => (Algorithm::EdDSA, EncodingKey::from_ed_pem(&pem).unwrap()),
        };
        let rejected = |token: String, what: String| {
            let (app, rs) = (&app, &rs);
            async move {
                assert_eq!(app.introspect(rs, &token).await, json!({"active": false}), "{what}");
                assert_eq!(app.get_bearer("/oauth/userinfo", &token).await.status(), 401, "{what}");
            }
        };

        // Re-signed with our own key and algorithm it is accepted: the forgeries below differ
        // only in what they claim.
        let genuine = sign(&claims, &kid, own_alg, &own_key);
        assert_eq!(app.introspect(&rs, &genuine).await["active"], true, "{alg}");

        rejected(sign(&claims, &kid, Algorithm::RS256, &foreign_rsa), format!("{alg} kid, RS256")).await;
        let x = jwk["x"].as_str().unwrap();
        for secret in [x.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(x).unwrap(), pem.clone()] {
            let forged = sign(&claims, &kid, Algorithm::HS256, &EncodingKey::from_secret(&secret));
            rejected(forged, format!("{alg} kid, HS256 with public material")).await;
        }
        let none = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(none.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        rejected(unsigned, format!("{alg} kid, alg none")).await;
        // The other curve algorithm's name on our signature, and ES384 on an ES256 signature.
        let (header, rest) = genuine.split_once('.').unwrap();
        for other in ["EdDSA", "ES256", "ES384"].into_iter().filter(|a| *a != alg.as_str()) {
            let mut h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
            h["alg"] = json!(other);
            rejected(
                format!("{}.{rest}", URL_SAFE_NO_PAD.encode(h.to_string())),
                format!("{alg} kid, {other}"),
            )
            .await;
        }
        // A well-formed token of our algorithm from a key that is not ours, claiming our kid.
        let foreign = match alg {
            SigningAlg::ES256 => {
                let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &aws_lc_rs::rand::SystemRandom::new(),
                )
                .unwrap();
                EncodingKey::from_ec_der(doc.as_ref())
            }
            _ => {
                let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(
                    &aws_lc_rs::rand::SystemRandom::new(),
                )
                .unwrap();
                EncodingKey::from_ed_der(doc.as_ref())
            }
        };
        rejected(sign(&claims, &kid, own_alg, &foreign), format!("{alg} kid, foreign key")).await;
    }
}

/// Two replicas rotating at the same moment both land, one generation after the other: the
/// earlier new key is superseded by the later one, and exactly one key is left without a
/// retirement date.
#[tokio::test]
async fn simultaneous_rotations_on_two_replicas_take_turns() {
    let a = spawn_app().await;
    let b = spawn_replica(&a).await;
    let (x, y) = tokio::join!(rotate(&a, Some(SigningAlg::EdDSA)), rotate(&b, Some(SigningAlg::EdDSA)));
    assert_ne!(x.kid, y.kid);
    let keys = a.svc.keys().list().await.unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(keys.iter().filter(|k| k.retire_at.is_none()).count(), 1, "{keys:?}");
    let (older, newer) = (&keys[1], &keys[2]);
    assert!([&x.kid, &y.kid].contains(&&older.kid) && [&x.kid, &y.kid].contains(&&newer.kid));
    assert_eq!(older.retire_at, Some(newer.signs_from + TTL), "{keys:?}");
    assert_eq!(keys[0].state, KeyState::Signing);
}
