//! Forged and mangled access tokens: every one must introspect `{"active": false}` and be
//! refused at userinfo. Each forgery starts from a real token re-signed with the server's
//! own key, and the unmodified re-signed token is checked active first, so a broken
//! forging helper cannot make these tests pass vacuously.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestApp, TestClient, jwt_part, spawn_app};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey::model::GrantType;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

struct Fixture {
    app: TestApp,
    rs: TestClient,
    claims: Value,
    kid: String,
    pem: String,
}

async fn fixture() -> Fixture {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    // The app's tokens name the API the resource server introspects for.
    let api = ["https://api.example"];
    let grants = [GrantType::Password, GrantType::RefreshToken];
    let client = app.create_client("web", false, &grants, "openid profile email api", &api).await;
    let rs = app.create_client("api-server", false, &[], "", &api).await;
    let token = app.login(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let kid = jwt_part(&token, 0)["kid"].as_str().unwrap().to_owned();
    let pem = std::fs::read_to_string(app.dir.path().join("keys").join(format!("{kid}.pem"))).unwrap();
    Fixture { claims: jwt_part(&token, 1), app, rs, kid, pem }
}

fn sign(claims: &Value, kid: &str, typ: &str, alg: Algorithm, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

impl Fixture {
    fn resign(&self, claims: &Value) -> String {
        sign(
            claims,
            &self.kid,
            "at+jwt",
            Algorithm::RS256,
            &EncodingKey::from_rsa_pem(self.pem.as_bytes()).unwrap(),
        )
    }

    async fn assert_rejected(&self, token: &str, what: &str) {
        assert_eq!(self.app.introspect(&self.rs, token).await, json!({"active": false}), "{what}");
        let resp = self.app.get_bearer("/oauth/userinfo", token).await;
        assert_eq!(resp.status(), 401, "{what}");
    }

    async fn assert_accepted(&self, token: &str) {
        assert_eq!(self.app.introspect(&self.rs, token).await["active"], true);
        assert_eq!(self.app.get_bearer("/oauth/userinfo", token).await.status(), 200);
    }
}

#[tokio::test]
async fn forged_tokens_are_inactive() {
    let f = fixture().await;
    f.assert_accepted(&f.resign(&f.claims)).await;

    // Tampered payload, original signature.
    let token = f.resign(&f.claims);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = f.claims.clone();
    claims["scope"] = json!("openid admin");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    f.assert_rejected(&parts.join("."), "tampered payload").await;

    // Signature bytes flipped.
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig));
    f.assert_rejected(&flipped, "flipped signature").await;

    // alg: none, empty signature.
    let header = json!({"alg": "none", "typ": "at+jwt", "kid": f.kid});
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(f.claims.to_string())
    );
    f.assert_rejected(&none, "alg none").await;

    // HS256 keyed with the public key as served in the JWKS (algorithm confusion).
    let jwks: Value = f.app.get_json("/.well-known/jwks.json").await;
    let n = jwks["keys"][0]["n"].as_str().unwrap();
    for secret in [n.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(n).unwrap(), f.pem.as_bytes().to_vec()] {
        let hs = sign(&f.claims, &f.kid, "at+jwt", Algorithm::HS256, &EncodingKey::from_secret(&secret));
        f.assert_rejected(&hs, "HS256 with public material").await;
    }

    // A well-formed RS256 token from a key that is not ours, claiming our kid.
    let foreign = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let foreign_pem = foreign.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = EncodingKey::from_rsa_pem(foreign_pem.as_bytes()).unwrap();
    f.assert_rejected(&sign(&f.claims, &f.kid, "at+jwt", Algorithm::RS256, &key), "foreign key").await;
    f.assert_rejected(&sign(&f.claims, "unknown-kid", "at+jwt", Algorithm::RS256, &key), "unknown kid").await;
}

#[tokio::test]
async fn tokens_signed_by_our_key_with_bad_claims_are_inactive() {
    let f = fixture().await;
    let now = f.claims["iat"].as_i64().unwrap();
    let with = |name: &str, value: Value| {
        let mut c = f.claims.clone();
        c[name] = value;
        c
    };
    let without = |name: &str| {
        let mut c = f.claims.clone();
        c.as_object_mut().unwrap().remove(name);
        c
    };
    // A claim twice, a foreign issuer first and ours last: readers that keep the first and
    // readers that keep the last would disagree, so the token is refused. (With a jti of its
    // own: the cases below share the token's, whose state introspection keeps for a moment.)
    let key = EncodingKey::from_rsa_pem(f.pem.as_bytes()).unwrap();
    let by_hand = |claims: &str| {
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": f.kid});
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims));
        let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, Algorithm::RS256).unwrap();
        format!("{signed}.{signature}")
    };
    let claims = with("jti", json!("a-jti-of-its-own")).to_string();
    f.assert_accepted(&by_hand(&claims)).await;
    let twice = format!("{{\"iss\":\"https://evil.example\",{}", &claims[1..]);
    f.assert_rejected(&by_hand(&twice), "iss twice").await;
    let cases = [
        (with("exp", json!(now - 1)), "expired"),
        (with("iss", json!("https://evil.example")), "wrong issuer"),
        (
            {
                let mut c = with("aud", json!(["https://elsewhere.example"]));
                c["client_id"] = json!("elsewhere");
                c
            },
            "wrong audience",
        ),
        (without("exp"), "no exp"),
        (with("exp", json!("4102444800")), "exp not a number"),
        (without("iss"), "no iss"),
        (without("sub"), "no sub"),
        (with("sid", json!("no-such-session")), "unknown session"),
        (with("sub", json!("no-such-user")), "unknown user"),
    ];
    for (claims, what) in cases {
        f.assert_rejected(&f.resign(&claims), what).await;
    }
    // The right key but the wrong token type: an ID token is not an access token.
    let key = EncodingKey::from_rsa_pem(f.pem.as_bytes()).unwrap();
    f.assert_rejected(&sign(&f.claims, &f.kid, "JWT", Algorithm::RS256, &key), "typ JWT").await;
    // Algorithm pinned per key: PS256 with the same RSA key is refused.
    f.assert_rejected(&sign(&f.claims, &f.kid, "at+jwt", Algorithm::PS256, &key), "PS256").await;
}

#[tokio::test]
async fn malformed_bearer_values_are_401_not_500() {
    let f = fixture().await;
    for junk in
        ["", "a", "a.b", "a.b.c", "....", "eyJhbGciOiJub25lIn0.e30.", &"A".repeat(10_000), "\u{1F600}"]
    {
        let resp = f
            .app
            .http
            .get(f.app.url("/oauth/userinfo"))
            .header("authorization", format!("Bearer {junk}"))
            .send()
            .await;
        let Ok(resp) = resp else { continue }; // reqwest refuses some header values itself
        assert_eq!(resp.status(), 401, "{junk:?}");
        assert_eq!(f.app.introspect(&f.rs, junk).await, json!({"active": false}), "{junk:?}");
    }
}
