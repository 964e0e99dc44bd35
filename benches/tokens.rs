//! Token hot paths: signing and verification with RS256, ES256 and EdDSA keys, and
//! introspection of a user's access token (verify + database lookup) over a SQLite file in
//! a temp dir.
//!
//! `cargo bench --bench tokens`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey::account::{self, NewUser};
use latchkey::config::{RawSettings, Settings, SigningAlg};
use latchkey::model::RequestMeta;
use latchkey::model::{Email, Password, Username};
use latchkey::model::{GrantType, Scope};
use latchkey::oauth::client::{self, NewClient, PresentedClient};
use latchkey::oauth::grants::{self, GrantRequest};
use latchkey::oauth::tokens::{self, ACCESS_TOKEN_TYP, AccessClaims};
use latchkey::services::Services;

const PASSWORD: &str = "correct horse battery staple";

fn settings(dir: &std::path::Path, alg: SigningAlg) -> Settings {
    RawSettings {
        signing_alg: alg.to_string(),
        database_url: format!("sqlite://{}?mode=rwc", dir.join("latchkey.db").display()),
        keys_dir: dir.join("keys"),
        mail: format!("dir:{}", dir.join("mail").display()),
        rate_limit_login: "off".into(),
        rate_limit_refresh: "off".into(),
        ..RawSettings::default()
    }
    .parse()
    .unwrap()
}

/// A user's access token obtained through the password grant, so introspection walks the
/// full path: signature, then the jti, session and user checks.
async fn user_access_token(svc: &Services) -> String {
    let new = NewUser {
        username: Username::parse("bench").unwrap(),
        email: Email::parse("bench@example.com").unwrap(),
        password: Password::new_checked(PASSWORD.into(), &[]).unwrap(),
        roles: Vec::new(),
        email_verified: true,
    };
    account::create_user(svc, new).await.unwrap();
    let registered = client::register(
        svc,
        NewClient {
            name: "bench".into(),
            id: None,
            public: false,
            grants: vec![GrantType::Password, GrantType::RefreshToken],
            scopes: Scope::parse("api").unwrap(),
            audiences: vec!["https://api.example.com".into()],
            require_mfa: false,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            first_party: false,
        },
    )
    .await
    .unwrap();
    let presented = PresentedClient { id: Some(registered.client_id), secret: registered.client_secret };
    let request = GrantRequest::Password {
        username: "bench".into(),
        password: Password::candidate(PASSWORD.into()).unwrap(),
        scope: None,
        otp: None,
    };
    grants::exchange(svc, &presented, request, &RequestMeta::default()).await.unwrap().access_token
}

fn bench_tokens(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let svc = rt.block_on(latchkey::app::open(settings(dir.path(), SigningAlg::RS256))).unwrap();
    let token = rt.block_on(user_access_token(&svc));
    let claims: AccessClaims =
        rt.block_on(svc.keys().verify(&token, ACCESS_TOKEN_TYP, svc.issuer())).expect("the token verifies");

    let mut group = c.benchmark_group("tokens");
    group.sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    // The same claims signed and verified by a key ring of each algorithm.
    for alg in SigningAlg::ALL {
        let alg_dir = tempfile::tempdir().unwrap();
        let ring = rt.block_on(latchkey::app::open(settings(alg_dir.path(), alg))).unwrap();
        let keys = ring.keys();
        let signed = rt.block_on(keys.sign(ACCESS_TOKEN_TYP, &claims)).unwrap();
        let name = alg.as_str().to_lowercase();
        group.bench_function(format!("sign_{name}"), |b| {
            b.to_async(&rt).iter(|| async { keys.sign(ACCESS_TOKEN_TYP, &claims).await.unwrap() })
        });
        group.bench_function(format!("verify_{name}"), |b| {
            b.to_async(&rt).iter(|| async {
                keys.verify::<AccessClaims>(&signed, ACCESS_TOKEN_TYP, svc.issuer()).await.unwrap()
            })
        });
    }
    group.bench_function("introspect_access_token", |b| {
        b.to_async(&rt).iter(|| async { tokens::active_access_token(&svc, &token).await.unwrap().unwrap() })
    });
    group.finish();
}

criterion_group!(benches, bench_tokens);
criterion_main!(benches);
