//! TOTP MFA over HTTP: enrolment, the `mfa_required` → `mfa_token` → MFA grant flow,
//! direct `otp`, replay and race protection, recovery codes, `require_mfa` clients and the
//! second-factor policy hook. Codes are computed with totp-rs from the enrolment secret.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{PASSWORD, TestApp, TestClient, jwt_part, spawn_app, spawn_app_with_services};
use latchkey::model::policy::{LoginContext, PolicyFuture, SecondFactorPolicy};
use latchkey::model::{ClientId, GrantType, Scope};
use latchkey::oauth::client::{self, NewClient};
use serde_json::{Value, json};
use totp_rs::{Secret, Totp};

const MFA_GRANT: &str = "urn:latchkey:params:oauth:grant-type:mfa-otp";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The user's authenticator app.
struct Authenticator(Totp);

impl Authenticator {
    fn from_base32(secret: &str) -> Authenticator {
        let secret = Secret::try_from_base32(secret).expect("the secret is base32");
        Authenticator(totp_rs::Builder::new().with_secret(secret).build().expect("an RFC 6238 secret"))
    }

    fn code_at(&self, time: u64) -> String {
        self.0.generate(time).to_string()
    }

    /// The code the app shows now (the confirm step).
    fn current(&self) -> String {
        self.code_at(now())
    }

    /// The next step's code: still inside the server's one step of skew, and later than
    /// anything accepted so far in these tests.
    fn next(&self) -> String {
        self.code_at(now() + 30)
    }

    /// Six digits that match no step the server could accept around now.
    fn wrong(&self) -> String {
        let t = now();
        let near: Vec<String> = (0..5).map(|i| self.code_at(t + i * 30 - 60)).collect();
        (0..).map(|n| format!("{n:06}")).find(|c| !near.contains(c)).unwrap()
    }
}

struct Enrolled {
    app_secret: String,
    authenticator: Authenticator,
    recovery_codes: Vec<String>,
    confirm_code: String,
    /// A password-only token from before enrolment, for the account endpoints.
    access_token: String,
}

async fn post_json(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
) -> reqwest::Response {
    app.http.request(method, app.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
}

/// Logs in, enrols TOTP and confirms it with the current code.
async fn enrol(app: &TestApp, client: &TestClient, username: &str) -> Enrolled {
    let access_token = app.login(client, username).await["access_token"].as_str().unwrap().to_owned();
    let resp = post_json(
        app,
        reqwest::Method::POST,
        "/account/mfa/totp",
        &access_token,
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert_eq!(Secret::try_from_base32(&secret).unwrap().as_bytes().len(), 20, "160-bit secret");
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with(&format!("otpauth://totp/127.0.0.1:{username}?")), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")) && uri.contains("issuer=127.0.0.1"), "{uri}");
    let svg = body["qr_svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));

    let authenticator = Authenticator::from_base32(&secret);
    let confirm_code = authenticator.current();
    let resp = post_json(
        app,
        reqwest::Method::POST,
        "/account/mfa/totp/confirm",
        &access_token,
        json!({"code": confirm_code}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let recovery_codes: Vec<String> =
        body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    Enrolled { app_secret: secret, authenticator, recovery_codes, confirm_code, access_token }
}

async fn password_with_otp(
    app: &TestApp,
    client: &TestClient,
    username: &str,
    otp: &str,
) -> reqwest::Response {
    let form = [("grant_type", "password"), ("username", username), ("password", PASSWORD), ("otp", otp)];
    app.post_form("/oauth/token", client, &form).await
}

/// The password grant without `otp`: must answer 403 `mfa_required`; returns the token.
async fn challenge(app: &TestApp, client: &TestClient, username: &str) -> String {
    let resp = app.password_grant(client, username, PASSWORD, None).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "mfa_required");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()));
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn mfa_grant(
    app: &TestApp,
    client: &TestClient,
    mfa_token: &str,
    field: &str,
    value: &str,
) -> reqwest::Response {
    let form = [("grant_type", MFA_GRANT), ("mfa_token", mfa_token), (field, value)];
    app.post_form("/oauth/token", client, &form).await
}

async fn assert_invalid_grant(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    body
}

async fn tokens(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn amr(token: &str) -> Value {
    jwt_part(token, 1)["amr"].clone()
}

#[tokio::test]
async fn the_whole_challenge_flow() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    // Ten distinct recovery codes of at least 50 bits (16 base32 characters = 80 bits).
    assert_eq!(enrolled.recovery_codes.len(), 10);
    let distinct: std::collections::HashSet<_> = enrolled.recovery_codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    for code in &enrolled.recovery_codes {
        assert!(code.chars().filter(|c| c.is_ascii_alphanumeric()).count() * 5 >= 50, "{code}");
    }

    let mfa_token = challenge(&app, &web, "alice").await;
    let body = tokens(mfa_grant(&app, &web, &mfa_token, "otp", &enrolled.authenticator.next()).await).await;
    assert_eq!(amr(body["access_token"].as_str().unwrap()), json!(["pwd", "otp"]));
    assert_eq!(amr(body["id_token"].as_str().unwrap()), json!(["pwd", "otp"]));
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert!(claims["auth_time"].as_i64().unwrap() >= now() as i64 - 5);

    let introspection = app.introspect(&web, body["access_token"].as_str().unwrap()).await;
    assert_eq!(introspection["active"], true);
    assert_eq!(introspection["amr"], json!(["pwd", "otp"]));
    assert_eq!(introspection["auth_time"], claims["auth_time"]);

    // The session remembers how it began: refreshed tokens keep the amr.
    let refreshed = tokens(
        app.post_form(
            "/oauth/token",
            &web,
            &[("grant_type", "refresh_token"), ("refresh_token", body["refresh_token"].as_str().unwrap())],
        )
        .await,
    )
    .await;
    assert_eq!(amr(refreshed["access_token"].as_str().unwrap()), json!(["pwd", "otp"]));

    // An mfa_token is good for one login only.
    assert_invalid_grant(mfa_grant(&app, &web, &mfa_token, "otp", &enrolled.authenticator.next()).await)
        .await;
}

/// The lockout decides before anything that follows a right password: a second factor
/// asked for or checked, a scope refused, a session opened. A locked account's right
/// password therefore answers like a wrong one on every path, and stores nothing.
#[tokio::test]
async fn a_locked_account_shows_nothing_of_a_right_password_on_any_path() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    app.create_user("bob", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;
    for username in ["alice", "bob"] {
        for _ in 0..5 {
            assert_invalid_grant(app.password_grant(&web, username, "wrong password", None).await).await;
        }
    }
    let sessions = || async {
        let count: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM sessions").fetch_one(app.svc.db().pool()).await.unwrap();
        count.0
    };
    let before = sessions().await;

    // alice: the second factor would be asked for, checked, or the scope refused.
    assert_invalid_grant(app.password_grant(&web, "alice", PASSWORD, None).await).await;
    assert_invalid_grant(password_with_otp(&app, &web, "alice", &enrolled.authenticator.next()).await).await;
    assert_invalid_grant(app.password_grant(&web, "alice", PASSWORD, Some("openid admin")).await).await;
    // bob, without a second factor: the session would be opened with the login.
    assert_invalid_grant(app.password_grant(&web, "bob", PASSWORD, None).await).await;
    assert_invalid_grant(app.password_grant(&web, "bob", PASSWORD, Some("openid admin")).await).await;
    assert_eq!(sessions().await, before, "nothing opened");

    // Once the lock ends, the same requests get on, and bob's login clears his failures.
    app.svc.clock().advance(std::time::Duration::from_secs(61));
    let resp = app.password_grant(&web, "alice", PASSWORD, None).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "mfa_required");
    let resp = app.password_grant(&web, "bob", PASSWORD, Some("openid admin")).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_scope");
    app.login(&web, "bob").await;
    let (failures, last_login): (i64, Option<i64>) =
        sqlx::query_as("SELECT failed_attempts, last_login_at FROM users WHERE username = 'bob'")
            .fetch_one(app.svc.db().pool())
            .await
            .unwrap();
    assert_eq!(failures, 0);
    assert!(last_login.is_some_and(|at| (app.svc.now() - 5..=app.svc.now()).contains(&at)), "{last_login:?}");
    assert_eq!(sessions().await, before + 1);
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_never_shown_again() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    let alice = app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    let stored: String = sqlx::query_scalar("SELECT secret FROM totp_credentials WHERE user_id = $1")
        .bind(&alice.id)
        .fetch_one(app.svc.db().pool())
        .await
        .unwrap();
    assert!(!stored.contains(&enrolled.app_secret));
    let raw = Secret::try_from_base32(&enrolled.app_secret).unwrap().as_bytes().to_vec();
    assert!(!stored.as_bytes().windows(raw.len()).any(|w| w == raw.as_slice()));
    for code in &enrolled.recovery_codes {
        let hits: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE hash = $1")
            .bind(code)
            .fetch_one(app.svc.db().pool())
            .await
            .unwrap();
        assert_eq!(hits, 0, "recovery codes are stored hashed");
    }
    // Starting enrolment again while active does not hand the secret out again.
    let resp = post_json(
        &app,
        reqwest::Method::POST,
        "/account/mfa/totp",
        &enrolled.access_token,
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(resp.status(), 409);
    assert!(!resp.text().await.unwrap().contains(&enrolled.app_secret));

    // The key file was created with the server, readable by its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(app.dir.path().join("keys/secret.key")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_malformed_secret_key_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings(0, dir.path()).await;
    settings.secret_key = Some("not-a-key-at-all".into());
    let err = latchkey::app::open(settings).await.err().expect("start-up must fail");
    let text = err.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ");
    assert!(text.contains("--secret-key") && text.contains("LATCHKEY_SECRET_KEY"), "{text}");
    assert!(!text.contains("not-a-key-at-all") && !text.contains('\n'), "{text}");
}

#[tokio::test]
async fn direct_otp_works_once() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    let code = enrolled.authenticator.next();
    let body = tokens(password_with_otp(&app, &web, "alice", &code).await).await;
    assert_eq!(amr(body["access_token"].as_str().unwrap()), json!(["pwd", "otp"]));
    let introspection = app.introspect(&web, body["access_token"].as_str().unwrap()).await;
    assert_eq!(introspection["amr"], json!(["pwd", "otp"]));

    // Replayed within its window: refused exactly like a wrong code.
    let replayed = assert_invalid_grant(password_with_otp(&app, &web, "alice", &code).await).await;
    let wrong =
        assert_invalid_grant(password_with_otp(&app, &web, "alice", &enrolled.authenticator.wrong()).await)
            .await;
    assert_eq!(replayed, wrong);
    // The MFA grant does not take it either.
    let mfa_token = challenge(&app, &web, "alice").await;
    assert_invalid_grant(mfa_grant(&app, &web, &mfa_token, "otp", &code).await).await;
}

#[tokio::test]
async fn the_confirm_code_cannot_log_in() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    assert_invalid_grant(password_with_otp(&app, &web, "alice", &enrolled.confirm_code).await).await;
    let mfa_token = challenge(&app, &web, "alice").await;
    assert_invalid_grant(mfa_grant(&app, &web, &mfa_token, "otp", &enrolled.confirm_code).await).await;
    // The same mfa_token still works with a fresh code: only the code was refused.
    tokens(mfa_grant(&app, &web, &mfa_token, "otp", &enrolled.authenticator.next()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_requests_with_one_code_give_one_success() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    let code = enrolled.authenticator.next();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, url, web, code) = (app.http.clone(), app.url("/oauth/token"), web.clone(), code.clone());
        requests.spawn(async move {
            let form =
                [("grant_type", "password"), ("username", "alice"), ("password", PASSWORD), ("otp", &code)];
            let resp =
                http.post(url).basic_auth(&web.id, web.secret.as_deref()).form(&form).send().await.unwrap();
            resp.status().as_u16()
        });
    }
    let statuses = requests.join_all().await;
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 400).count(), 19, "{statuses:?}");
}

#[tokio::test]
async fn five_wrong_codes_kill_the_mfa_token() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    let mfa_token = challenge(&app, &web, "alice").await;
    let wrong = enrolled.authenticator.wrong();
    for _ in 0..5 {
        assert_invalid_grant(mfa_grant(&app, &web, &mfa_token, "otp", &wrong).await).await;
    }
    let good = enrolled.authenticator.next();
    assert_invalid_grant(mfa_grant(&app, &web, &mfa_token, "otp", &good).await).await;
    // The good code was not spent on the dead token: a new challenge takes it.
    let fresh = challenge(&app, &web, "alice").await;
    tokens(mfa_grant(&app, &web, &fresh, "otp", &good).await).await;
}

#[tokio::test]
async fn four_wrong_codes_leave_the_fifth_attempt() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    let mfa_token = challenge(&app, &web, "alice").await;
    for _ in 0..4 {
        assert_invalid_grant(mfa_grant(&app, &web, &mfa_token, "otp", &enrolled.authenticator.wrong()).await)
            .await;
    }
    tokens(mfa_grant(&app, &web, &mfa_token, "otp", &enrolled.authenticator.next()).await).await;
}

#[tokio::test]
async fn an_expired_mfa_token_fails() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    let mfa_token = challenge(&app, &web, "alice").await;
    let (created, expires): (i64, i64) = sqlx::query_as("SELECT created_at, expires_at FROM mfa_challenges")
        .fetch_one(app.svc.db().pool())
        .await
        .unwrap();
    assert_eq!(expires - created, 300, "an mfa_token lives five minutes");
    // Five minutes pass.
    sqlx::query("UPDATE mfa_challenges SET expires_at = $1")
        .bind(now() as i64 - 1)
        .execute(app.svc.db().pool())
        .await
        .unwrap();

    let good = enrolled.authenticator.next();
    assert_invalid_grant(mfa_grant(&app, &web, &mfa_token, "otp", &good).await).await;
    let fresh = challenge(&app, &web, "alice").await;
    tokens(mfa_grant(&app, &web, &fresh, "otp", &good).await).await;
}

#[tokio::test]
async fn an_mfa_token_belongs_to_its_client() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    let other = app.create_client("other", false, &[GrantType::Password], "openid api", &[]).await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    let mfa_token = challenge(&app, &web, "alice").await;
    let good = enrolled.authenticator.next();
    assert_invalid_grant(mfa_grant(&app, &other, &mfa_token, "otp", &good).await).await;
    tokens(mfa_grant(&app, &web, &mfa_token, "otp", &good).await).await;
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    let first = &enrolled.recovery_codes[0];
    let mfa_token = challenge(&app, &web, "alice").await;
    let body = tokens(mfa_grant(&app, &web, &mfa_token, "recovery_code", first).await).await;
    // RFC 8176: a second factor was shown, but not an OTP device.
    assert_eq!(amr(body["access_token"].as_str().unwrap()), json!(["pwd", "mfa"]));
    let introspection = app.introspect(&web, body["access_token"].as_str().unwrap()).await;
    assert_eq!(introspection["amr"], json!(["pwd", "mfa"]));

    let again = challenge(&app, &web, "alice").await;
    assert_invalid_grant(mfa_grant(&app, &web, &again, "recovery_code", first).await).await;
    // Typed back loosely (upper case, no dashes), another code works.
    let second = enrolled.recovery_codes[1].to_uppercase().replace('-', "");
    tokens(mfa_grant(&app, &web, &again, "recovery_code", &second).await).await;

    // Both at once is a malformed request.
    let third = challenge(&app, &web, "alice").await;
    let form = [
        ("grant_type", MFA_GRANT),
        ("mfa_token", third.as_str()),
        ("otp", "123456"),
        ("recovery_code", enrolled.recovery_codes[2].as_str()),
    ];
    let resp = app.post_form("/oauth/token", &web, &form).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
}

async fn require_mfa_client(app: &TestApp) -> TestClient {
    let new = NewClient {
        name: "strict".into(),
        id: Some(ClientId::parse("strict").unwrap()),
        public: false,
        grants: vec![GrantType::Password],
        scopes: Scope::parse("openid api").unwrap(),
        audiences: Vec::new(),
        require_mfa: true,
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        first_party: false,
    };
    client::register(&app.svc, new).await.unwrap().into()
}

#[tokio::test]
async fn a_require_mfa_client_refuses_users_without_totp() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    let strict = require_mfa_client(&app).await;
    app.create_user("bob", &[]).await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;

    let resp = app.password_grant(&strict, "bob", PASSWORD, None).await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "mfa_enrollment_required");
    // The answer says how to get out of it: enrolling needs a token from another client.
    assert!(body["error_description"].as_str().unwrap().contains("/account/mfa/totp"), "{body}");
    assert!(body.get("mfa_token").is_none());
    // A wrong password is still just a wrong password.
    assert_invalid_grant(app.password_grant(&strict, "bob", "wrong password!", None).await).await;

    let mfa_token = challenge(&app, &strict, "alice").await;
    let body =
        tokens(mfa_grant(&app, &strict, &mfa_token, "otp", &enrolled.authenticator.next()).await).await;
    assert_eq!(amr(body["access_token"].as_str().unwrap()), json!(["pwd", "otp"]));
}

#[tokio::test]
async fn account_endpoints_check_password_and_code() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    let alice = app.create_user("alice", &[]).await;
    let token = app.login(&web, "alice").await["access_token"].as_str().unwrap().to_owned();
    let post = reqwest::Method::POST;
    let delete = reqwest::Method::DELETE;

    let resp = app
        .http
        .post(app.url("/account/mfa/totp"))
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let resp =
        post_json(&app, post.clone(), "/account/mfa/totp", &token, json!({"password": "not it at all"}))
            .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "wrong_password");
    let resp =
        post_json(&app, post.clone(), "/account/mfa/totp/confirm", &token, json!({"code": "123456"})).await;
    assert_eq!(resp.status(), 404, "nothing pending to confirm");

    // Enrol twice: the second secret replaces the first, which no longer confirms.
    let first: Value =
        post_json(&app, post.clone(), "/account/mfa/totp", &token, json!({"password": PASSWORD}))
            .await
            .json()
            .await
            .unwrap();
    let second: Value =
        post_json(&app, post.clone(), "/account/mfa/totp", &token, json!({"password": PASSWORD}))
            .await
            .json()
            .await
            .unwrap();
    assert_ne!(first["secret"], second["secret"]);
    let stale = Authenticator::from_base32(first["secret"].as_str().unwrap());
    let app_now = Authenticator::from_base32(second["secret"].as_str().unwrap());
    if stale.current() != app_now.current() {
        let resp = post_json(
            &app,
            post.clone(),
            "/account/mfa/totp/confirm",
            &token,
            json!({"code": stale.current()}),
        )
        .await;
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_code");
    }
    // Not active yet: the password alone still logs in.
    tokens(app.password_grant(&web, "alice", PASSWORD, None).await).await;

    let resp = post_json(
        &app,
        post.clone(),
        "/account/mfa/totp/confirm",
        &token,
        json!({"code": app_now.current()}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp =
        post_json(&app, post.clone(), "/account/mfa/totp/confirm", &token, json!({"code": app_now.next()}))
            .await;
    assert_eq!(resp.status(), 409, "already active");

    let code = app_now.next();
    let resp = post_json(
        &app,
        delete.clone(),
        "/account/mfa/totp",
        &token,
        json!({"password": "nope nope", "code": code}),
    )
    .await;
    assert_eq!(resp.status(), 403);
    let resp = post_json(
        &app,
        delete.clone(),
        "/account/mfa/totp",
        &token,
        json!({"password": PASSWORD, "code": app_now.wrong()}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let resp = post_json(
        &app,
        delete.clone(),
        "/account/mfa/totp",
        &token,
        json!({"password": PASSWORD, "code": code}),
    )
    .await;
    assert_eq!(resp.status(), 204);

    // Off again: the password alone logs in, amr pwd only.
    let body = tokens(app.password_grant(&web, "alice", PASSWORD, None).await).await;
    assert_eq!(amr(body["access_token"].as_str().unwrap()), json!(["pwd"]));
    let status = latchkey::mfa::status(&app.svc, &alice.id).await.unwrap();
    assert!(!status.totp_enabled && status.recovery_codes_left == 0);

    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event FROM audit_events WHERE user_id = $1 AND event LIKE 'mfa_%' ORDER BY id",
    )
    .bind(&alice.id)
    .fetch_all(app.svc.db().pool())
    .await
    .unwrap();
    assert_eq!(events, ["mfa_enrolment_started", "mfa_enrolment_started", "mfa_enabled", "mfa_disabled"]);
}

#[tokio::test]
async fn reset_removes_the_second_factor() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    let alice = app.create_user("alice", &[]).await;
    enrol(&app, &web, "alice").await;
    let status = latchkey::mfa::status(&app.svc, &alice.id).await.unwrap();
    assert!(status.totp_enabled && status.confirmed_at.is_some());
    assert_eq!(status.recovery_codes_left, 10);

    assert!(latchkey::mfa::reset(&app.svc, &alice.id).await.unwrap());
    assert!(!latchkey::mfa::reset(&app.svc, &alice.id).await.unwrap());
    tokens(app.password_grant(&web, "alice", PASSWORD, None).await).await;
}

/// A deployment's rule: the `payments` scope always needs a second factor; other logins
/// need none, enrolled or not.
struct AdminScopeNeedsMfa;

impl SecondFactorPolicy for AdminScopeNeedsMfa {
    fn second_factor_required<'a>(&'a self, login: LoginContext<'a>) -> PolicyFuture<'a> {
        Box::pin(async move { login.scope.contains("payments") })
    }
}

#[tokio::test]
async fn a_deployment_policy_decides_when_mfa_is_needed() {
    let app = spawn_app_with_services(|svc| svc.with_second_factor_policy(AdminScopeNeedsMfa)).await;
    let plain = app.web_client().await;
    let web = app.create_client("console", false, &[GrantType::Password], "api payments", &[]).await;
    app.create_user("alice", &[]).await;
    app.create_user("bob", &[]).await;
    let enrolled = enrol(&app, &plain, "alice").await;

    // Not required for `api`: the password alone will do, even for an enrolled user.
    let body = tokens(app.password_grant(&web, "alice", PASSWORD, Some("api")).await).await;
    assert_eq!(amr(body["access_token"].as_str().unwrap()), json!(["pwd"]));
    // Required for `payments`.
    let resp = app.password_grant(&web, "alice", PASSWORD, Some("payments")).await;
    assert_eq!(resp.status(), 403);
    let mfa_token = resp.json::<Value>().await.unwrap()["mfa_token"].as_str().unwrap().to_owned();
    let body = tokens(mfa_grant(&app, &web, &mfa_token, "otp", &enrolled.authenticator.next()).await).await;
    assert_eq!(body["scope"], "payments");
    assert_eq!(amr(body["access_token"].as_str().unwrap()), json!(["pwd", "otp"]));
    let resp = app.password_grant(&web, "bob", PASSWORD, Some("payments")).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "mfa_enrollment_required");
}

#[tokio::test]
async fn discovery_advertises_the_mfa_grant() {
    let app = spawn_app().await;
    let doc: Value = app.get_json("/.well-known/openid-configuration").await;
    assert!(doc["grant_types_supported"].as_array().unwrap().iter().any(|g| g == MFA_GRANT));
}

#[tokio::test]
async fn wrong_codes_are_counted_in_metrics() {
    let app = spawn_app().await;
    // A client id of its own: the metrics recorder is shared by every test in this binary.
    let client = app
        .create_client(
            "mfa-metrics",
            false,
            &[GrantType::Password, GrantType::RefreshToken],
            "openid account",
            &[],
        )
        .await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &client, "alice").await;
    let mfa_token = challenge(&app, &client, "alice").await;
    for _ in 0..2 {
        assert_invalid_grant(
            mfa_grant(&app, &client, &mfa_token, "otp", &enrolled.authenticator.wrong()).await,
        )
        .await;
    }
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"latchkey_mfa_failures_total{client="mfa-metrics"} 2"#), "{metrics}");
}

/// Asks for a reset mail for alice and returns the mailed token.
async fn reset_token(app: &TestApp) -> String {
    let resp = app
        .http
        .post(app.url("/account/password/forgot"))
        .json(&json!({"email": "alice@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    for _ in 0..100 {
        let found = std::fs::read_dir(app.dir.path().join("mail")).ok().and_then(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .map(|p| serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap())
                .find(|m| m["kind"] == "password_reset")
        });
        if let Some(mail) = found {
            return mail["token"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no reset mail");
}

const RESET_PASSWORD: &str = "a brand new long passphrase";

#[tokio::test]
async fn a_password_reset_voids_pending_mfa_tokens() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    let enrolled = enrol(&app, &web, "alice").await;
    let mfa_token = challenge(&app, &web, "alice").await;
    let token = reset_token(&app).await;
    latchkey::account::self_service::reset_password(
        &app.svc,
        &token,
        RESET_PASSWORD.into(),
        &Default::default(),
    )
    .await
    .unwrap();
    // Whoever knew the old password (and stole a code) gets nothing from the old challenge.
    assert_invalid_grant(mfa_grant(&app, &web, &mfa_token, "otp", &enrolled.authenticator.next()).await)
        .await;
}

/// Resets alice's password in the middle of a login: after her old password was
/// verified, before the session is created.
struct ResetDuringLogin {
    svc: latchkey::services::Services,
    token: Arc<Mutex<Option<String>>>,
}

impl SecondFactorPolicy for ResetDuringLogin {
    fn second_factor_required<'a>(&'a self, _login: LoginContext<'a>) -> PolicyFuture<'a> {
        Box::pin(async move {
            let token = self.token.lock().unwrap().take();
            if let Some(token) = token {
                let meta = Default::default();
                latchkey::account::self_service::reset_password(
                    &self.svc,
                    &token,
                    RESET_PASSWORD.into(),
                    &meta,
                )
                .await
                .unwrap();
            }
            false
        })
    }
}

#[tokio::test]
async fn a_login_that_raced_a_password_reset_opens_no_session() {
    let token = Arc::new(Mutex::new(None));
    let pending = token.clone();
    let app = spawn_app_with_services(move |svc| {
        let racing = ResetDuringLogin { svc: svc.clone(), token: pending };
        svc.with_second_factor_policy(racing)
    })
    .await;
    let web = app.web_client().await;
    app.create_user("alice", &[]).await;
    *token.lock().unwrap() = Some(reset_token(&app).await);
    assert_invalid_grant(app.password_grant(&web, "alice", PASSWORD, None).await).await;
    let sessions: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions").fetch_one(app.svc.db().pool()).await.unwrap();
    assert_eq!(sessions, 0, "the old password opened nothing");
    tokens(app.password_grant(&web, "alice", RESET_PASSWORD, None).await).await;
}
