//! The abuse levers of issue 9: lockout that cannot be held for ever, one lockout and
//! per-user limit for every password check, the hasher's admission queue, per-IP limits
//! (IPv6 /64, failures only, settings that take effect at once), and the smaller fixes.
//! Time moves with the injected clock, never with sleeps.

mod common;

use std::time::Duration;

use common::{PASSWORD, TestApp, TestClient, spawn_app_with};
use latchkey::config::RateLimit;
use latchkey::model::GrantType;
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a brand new long passphrase";

fn per(count: u32, secs: u64) -> RateLimit {
    RateLimit::PerPeriod { count, period: Duration::from_secs(secs) }
}

/// A client whose tokens may use the account endpoints.
async fn account_client(app: &TestApp) -> TestClient {
    app.create_client("app", false, &[GrantType::Password, GrantType::RefreshToken], "openid account", &[])
        .await
}

async fn login_status(app: &TestApp, client: &TestClient, password: &str, ip: Option<&str>) -> u16 {
    let mut req = app.http.post(app.url("/oauth/token")).basic_auth(&client.id, client.secret.as_ref());
    if let Some(ip) = ip {
        req = req.header("x-forwarded-for", ip);
    }
    req.form(&[("grant_type", "password"), ("username", "alice"), ("password", password)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// (failed_attempts, locked_until) of alice.
async fn lock_state(app: &TestApp) -> (i64, Option<i64>) {
    sqlx::query_as("SELECT failed_attempts, locked_until FROM users WHERE username = 'alice'")
        .fetch_one(app.svc.db().pool())
        .await
        .unwrap()
}

/// The lock state once `failures` attempts have been counted, or after a few seconds
/// (counting is part of the answer now; this keeps the tests honest against code that
/// counts after answering).
async fn settled_lock_state(app: &TestApp, failures: i64) -> (i64, Option<i64>) {
    for _ in 0..100 {
        let state = lock_state(app).await;
        if state.0 >= failures {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lock_state(app).await
}

async fn post_json(app: &TestApp, path: &str, bearer: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = app.http.post(app.url(path)).json(&body);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

/// The token of the newest mail of `kind` in the `dir:` transport (mail goes out from a
/// background task, so wait for it briefly).
async fn mailed_token(app: &TestApp, kind: &str, seen: usize) -> String {
    for _ in 0..100 {
        let mut tokens = Vec::new();
        if let Ok(entries) = std::fs::read_dir(app.dir.path().join("mail")) {
            let mut paths: Vec<_> = entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            paths.sort();
            for path in paths {
                let mail: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
                if mail["kind"] == kind {
                    tokens.push(mail["token"].as_str().unwrap().to_owned());
                }
            }
        }
        if tokens.len() > seen {
            return tokens.pop().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no new {kind} mail");
}

#[tokio::test]
async fn guesses_during_a_lock_neither_count_nor_extend_it() {
    let app = spawn_app_with(|_| {}).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let clock = app.svc.clock();
    for _ in 0..5 {
        assert_eq!(login_status(&app, &client, "wrong password", None).await, 400);
    }
    let (failures, until) = settled_lock_state(&app, 5).await;
    let started = app.svc.now();
    assert_eq!(failures, 5);
    assert!(until.is_some_and(|u| (started + 59..=started + 60).contains(&u)), "a 60 s lock: {until:?}");

    // Half-way through, more guesses (and the right password) change nothing.
    clock.advance(Duration::from_secs(30));
    for _ in 0..10 {
        assert_eq!(login_status(&app, &client, "wrong password", None).await, 400);
    }
    assert_eq!(login_status(&app, &client, PASSWORD, None).await, 400, "locked: even the right password");
    assert_eq!(lock_state(&app).await, (failures, until), "neither counted nor extended");

    // The lock ends when it said it would; the counter starts again from there.
    clock.advance(Duration::from_secs(31));
    assert_eq!(login_status(&app, &client, "wrong password", None).await, 400);
    assert_eq!(lock_state(&app).await, (1, None), "the counter restarts when a lock ends");
    for _ in 0..4 {
        login_status(&app, &client, "wrong password", None).await;
    }
    let (_, second) = lock_state(&app).await;
    let now = app.svc.now();
    assert!(
        second.is_some_and(|u| (now + 119..=now + 120).contains(&u)),
        "the next lock doubles: {second:?}"
    );
    clock.advance(Duration::from_secs(121));
    assert_eq!(login_status(&app, &client, PASSWORD, None).await, 200);
    assert_eq!(lock_state(&app).await, (0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_burst_from_many_ips_cannot_slip_past_the_lock() {
    let app = spawn_app_with(|s| s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let ips: Vec<String> = (0..24).map(|i| format!("198.51.100.{i}")).collect();
    let burst = ips.iter().map(|ip| login_status(&app, &client, "wrong password", Some(ip)));
    let statuses = futures::future::join_all(burst).await;
    assert!(statuses.iter().all(|&s| s == 400), "{statuses:?}");
    let (failures, until) = lock_state(&app).await;
    assert_eq!(failures, 5, "only the attempts before the lock were admitted and counted");
    assert!(until.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_logins_with_the_right_password_do_not_lock_each_other_out() {
    let app = spawn_app_with(|_| {}).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let logins = (0..16).map(|_| login_status(&app, &client, PASSWORD, None));
    let statuses = futures::future::join_all(logins).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(lock_state(&app).await, (0, None));
}

#[tokio::test]
async fn a_password_reset_clears_the_lock() {
    let app = spawn_app_with(|_| {}).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    for _ in 0..5 {
        login_status(&app, &client, "wrong password", None).await;
    }
    assert!(settled_lock_state(&app, 5).await.1.is_some());
    let resp = post_json(&app, "/account/password/forgot", None, json!({"email": "alice@example.com"})).await;
    assert_eq!(resp.status(), 202);
    let token = mailed_token(&app, "password_reset", 0).await;
    let body = json!({"token": token, "new_password": NEW_PASSWORD});
    assert_eq!(post_json(&app, "/account/password/reset", None, body).await.status(), 204);
    assert_eq!(login_status(&app, &client, NEW_PASSWORD, None).await, 200, "the owner is back in at once");
}

#[tokio::test]
async fn wrong_current_passwords_at_the_account_endpoints_share_the_lockout_and_a_limit() {
    // The per-user limit follows the login switch, which tests otherwise turn off.
    let app = spawn_app_with(|s| s.rate_limit_login = per(1000, 900)).await;
    app.create_user("alice", &[]).await;
    let client = account_client(&app).await;
    let token = app.login(&client, "alice").await["access_token"].as_str().unwrap().to_owned();

    // TOTP enrolment and removal count wrong passwords too.
    let resp =
        post_json(&app, "/account/mfa/totp", Some(&token), json!({"password": "wrong password"})).await;
    assert_eq!(resp.status(), 403);
    let resp = app
        .http
        .delete(app.url("/account/mfa/totp"))
        .bearer_auth(&token)
        .json(&json!({"password": "wrong password", "code": "123456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(lock_state(&app).await.0, 2);

    let mut statuses = Vec::new();
    for _ in 0..20 {
        let body = json!({"current_password": "wrong password", "new_password": NEW_PASSWORD});
        let resp = post_json(&app, "/account/password", Some(&token), body).await;
        if resp.status() == 429 {
            assert!(resp.headers().contains_key("retry-after"));
        }
        statuses.push(resp.status().as_u16());
    }
    assert!(statuses.iter().all(|&s| s == 403 || s == 429), "{statuses:?}");
    assert!(statuses.contains(&429), "the per-user limit answers 429: {statuses:?}");
    assert!(lock_state(&app).await.1.is_some(), "and the account is locked");
    // The same lock stops the password grant, right password or not.
    assert_eq!(login_status(&app, &client, PASSWORD, None).await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_past_the_queue_gets_503_with_retry_after_at_once() {
    let app = spawn_app_with(|s| s.hash_queue = 1).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let flood = (0..48).map(|i| {
        let password = if i % 2 == 0 { PASSWORD } else { "wrong password" };
        app.password_grant(&client, "alice", password, None)
    });
    let responses = futures::future::join_all(flood).await;
    let mut unavailable = 0;
    for resp in responses {
        let status = resp.status().as_u16();
        assert!(matches!(status, 200 | 400 | 503), "{status}");
        if status == 503 {
            unavailable += 1;
            assert_eq!(resp.headers()["retry-after"], "1");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "temporarily_unavailable");
        }
    }
    assert!(unavailable > 0, "a full queue turns logins away");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let line = format!("latchkey_password_checks_rejected_total {unavailable}");
    assert!(metrics.contains(&line), "{metrics}");
    // Turned-away attempts neither counted against the account nor lost anything.
    assert_eq!(app.password_grant(&client, "alice", PASSWORD, None).await.status(), 200);
}

#[tokio::test]
async fn registrations_from_one_ipv6_64_share_one_budget() {
    let app = spawn_app_with(|s| {
        s.rate_limit_register = per(3, 3600);
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let register = |i: usize, ip: String| {
        let body = json!({"username": format!("user{i}"), "email": format!("user{i}@example.com"), "password": PASSWORD});
        let req = app.http.post(app.url("/account/register")).header("x-forwarded-for", ip).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(register(i, format!("2001:db8:1:2::{:x}", i + 1)).await);
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429, 429], "six addresses of one /64 are one client");
    assert_eq!(register(7, "2001:db8:1:3::1".into()).await, 201, "the next /64 is another client");
}

#[tokio::test]
async fn successful_logins_do_not_spend_the_failed_login_budget() {
    let app = spawn_app_with(|s| s.rate_limit_login = per(5, 900)).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    for i in 0..6 {
        assert_eq!(login_status(&app, &client, PASSWORD, None).await, 200, "login {i}");
    }
    for i in 0..4 {
        assert_eq!(login_status(&app, &client, "wrong password", None).await, 400, "failure {i}");
    }
    // The lockout's fifth failure would lock alice; a success in between keeps her open.
    assert_eq!(login_status(&app, &client, PASSWORD, None).await, 200);
    assert_eq!(login_status(&app, &client, "wrong password", None).await, 400);
    assert_eq!(login_status(&app, &client, "wrong password", None).await, 429, "the sixth failure");
}

#[tokio::test]
async fn a_raised_limit_admits_at_once_after_a_restart() {
    let a = spawn_app_with(|s| s.rate_limit_login = per(5, 900)).await;
    a.create_user("alice", &[]).await;
    let client = a.web_client().await;
    for _ in 0..5 {
        login_status(&a, &client, "wrong password", None).await;
    }
    assert_eq!(login_status(&a, &client, "wrong password", None).await, 429);
    let (db, keys) = (a.database_url.clone(), a.dir.path().join("keys"));
    let b = spawn_app_with(move |s| {
        s.rate_limit_login = per(100, 900);
        s.database_url = db;
        s.keys_dir = keys;
    })
    .await;
    // Alice is locked by now, so the answer is the wrong-password one, not 429.
    assert_eq!(login_status(&b, &client, "wrong password", None).await, 400);
}

#[tokio::test]
async fn a_password_or_email_change_voids_outstanding_reset_tokens() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.create_user("alice", &[]).await;
    let client = account_client(&app).await;
    let forgot = json!({"email": "alice@example.com"});
    assert_eq!(post_json(&app, "/account/password/forgot", None, forgot.clone()).await.status(), 202);
    let before_change = mailed_token(&app, "password_reset", 0).await;

    let token = app.login(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    assert_eq!(post_json(&app, "/account/password", Some(&token), change).await.status(), 204);
    let reset = json!({"token": before_change, "new_password": "yet another long passphrase"});
    assert_eq!(post_json(&app, "/account/password/reset", None, reset).await.status(), 400);

    assert_eq!(post_json(&app, "/account/password/forgot", None, forgot).await.status(), 202);
    let before_email_change = mailed_token(&app, "password_reset", 1).await;
    let email = latchkey::model::Email::parse("alice@elsewhere.example").unwrap();
    assert!(latchkey::store::users::set_email(app.svc.db(), &alice.id, &email, app.svc.now()).await.unwrap());
    let reset = json!({"token": before_email_change, "new_password": "yet another long passphrase"});
    assert_eq!(post_json(&app, "/account/password/reset", None, reset).await.status(), 400);
}

#[tokio::test]
async fn client_ids_cannot_take_the_shape_of_a_user_id() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.create_user("alice", &[]).await;
    let new = latchkey::oauth::client::NewClient {
        name: "impostor".into(),
        id: Some(latchkey::model::ClientId::parse(&alice.id).unwrap()),
        public: false,
        grants: vec![GrantType::ClientCredentials],
        scopes: latchkey::model::Scope::parse("api").unwrap(),
        audiences: Vec::new(),
        require_mfa: false,
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        first_party: false,
    };
    let err = latchkey::oauth::client::register(&app.svc, new).await.unwrap_err();
    assert!(matches!(err, latchkey::oauth::client::RegisterError::Invalid(_)), "{err:?}");
    // Other ids, also the generated 32-hex-digit ones, stay fine.
    app.create_client("0b6f3c1e8d0c4f559a412f7d8c4b9e10", false, &[GrantType::ClientCredentials], "api", &[])
        .await;
}

#[tokio::test]
async fn right_passwords_before_verifying_the_address_do_not_lock_the_account() {
    let app = spawn_app_with(|_| {}).await;
    let client = app.web_client().await;
    let body = json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD});
    assert_eq!(post_json(&app, "/account/register", None, body).await.status(), 201);
    for _ in 0..6 {
        assert_eq!(login_status(&app, &client, PASSWORD, None).await, 400, "not verified yet");
    }
    let token = mailed_token(&app, "verify_email", 0).await;
    assert_eq!(post_json(&app, "/account/email/verify", None, json!({"token": token})).await.status(), 204);
    assert_eq!(login_status(&app, &client, PASSWORD, None).await, 200);
}
