//! Attacks on the password grant and the self-service endpoints: brute force, mass
//! registration and reset mails, replicas, spoofed client IPs, lockout races,
//! injection strings.

mod common;

use std::time::Duration;

use common::{PASSWORD, TestApp, spawn_app_with};
use latchkey::config::RateLimit;
use serde_json::Value;

fn per(count: u32, secs: u64) -> RateLimit {
    RateLimit::PerPeriod { count, period: Duration::from_secs(secs) }
}

async fn attempt(
    app: &TestApp,
    client: &common::TestClient,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut req = app.http.post(app.url("/oauth/token")).basic_auth(&client.id, client.secret.as_ref());
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.form(&[("grant_type", "password"), ("username", "alice"), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// The failure count once `expected` attempts have been counted (or a few seconds have
/// passed).
async fn settled_failures(app: &TestApp, expected: i64) -> i64 {
    let mut failures = 0;
    for _ in 0..100 {
        failures = sqlx::query_scalar("SELECT failed_attempts FROM users WHERE username = 'alice'")
            .fetch_one(app.svc.db().pool())
            .await
            .unwrap();
        if failures >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    failures
}

#[tokio::test]
async fn sixth_login_attempt_from_one_ip_is_429() {
    let app = spawn_app_with(|s| s.rate_limit_login = per(5, 900)).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    for i in 0..5 {
        let resp = attempt(&app, &client, "wrong password", None).await;
        assert_eq!(resp.status(), 400, "attempt {i}");
    }
    let resp = attempt(&app, &client, PASSWORD, None).await;
    assert_eq!(resp.status(), 429, "even the right password waits");
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(resp.headers()["ratelimit-limit"], "5");
    assert_eq!(resp.headers()["ratelimit-remaining"], "0");
    assert_eq!(resp.headers()["ratelimit-policy"], "5;w=900");
    assert_eq!(resp.headers()["ratelimit-reset"].to_str().unwrap(), retry.to_string());
    assert!((1..=180).contains(&retry), "one slot frees every 15m/5 = 180 s: {retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
}

#[tokio::test]
async fn two_replicas_share_one_budget() {
    let a = spawn_app_with(|s| s.rate_limit_login = per(5, 900)).await;
    let (db, keys) = (a.database_url.clone(), a.dir.path().join("keys"));
    let b = spawn_app_with(move |s| {
        s.rate_limit_login = per(5, 900);
        s.database_url = db;
        s.keys_dir = keys;
    })
    .await;
    a.create_user("alice", &[]).await;
    let client = a.web_client().await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let replica = if i % 2 == 0 { &a } else { &b };
        statuses.push(attempt(replica, &client, "wrong password", None).await.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429], "5 in all across both replicas, not 10");
}

/// On PostgreSQL rate-limit steps commit without waiting for the disk, by a setting that
/// lasts for their own statement. Every connection must come out of a burst of them as
/// durable as it went in, on SQLite (where the steps join the group commit) too.
#[tokio::test]
async fn rate_limit_steps_leave_the_pool_durable() {
    let app = spawn_app_with(|s| s.rate_limit_login = per(5, 900)).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let burst =
        (0..12).map(|i| attempt(&app, &client, if i % 2 == 0 { "wrong password" } else { PASSWORD }, None));
    futures::future::join_all(burst).await;

    let pool = app.svc.db().pool();
    let settled = async {
        while pool.num_idle() < pool.size() as usize {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), settled).await.expect("the connections come back");
    let sqlite = app.database_url.starts_with("sqlite:");
    let mut held = Vec::new();
    for _ in 0..pool.size() {
        held.push(pool.acquire().await.unwrap());
    }
    assert!(held.len() > 1, "the burst used several connections");
    for conn in &mut held {
        if sqlite {
            let level: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut **conn).await.unwrap();
            assert_eq!(level, 2, "synchronous = FULL");
        } else {
            let setting: String =
                sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&mut **conn).await.unwrap();
            assert_eq!(setting, "on");
        }
    }
}

#[tokio::test]
async fn forged_forwarded_for_from_untrusted_peers_is_ignored() {
    let app = spawn_app_with(|s| s.rate_limit_login = per(5, 900)).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let spoofed = format!("203.0.113.{i}");
        statuses.push(attempt(&app, &client, "wrong password", Some(&spoofed)).await.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "a new X-Forwarded-For per request buys nothing: {statuses:?}");
}

#[tokio::test]
async fn trusted_proxies_forward_the_client_ip() {
    let app = spawn_app_with(|s| {
        s.rate_limit_login = per(5, 900);
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    // Each client behind the proxy has its own budget; the right-most untrusted entry counts.
    for i in 0..6 {
        let chain = format!("198.51.100.7, 203.0.113.{i}");
        assert_eq!(attempt(&app, &client, "wrong password", Some(&chain)).await.status(), 400, "client {i}");
    }
    for _ in 0..5 {
        attempt(&app, &client, "wrong password", Some("192.0.2.1")).await;
    }
    assert_eq!(settled_failures(&app, 5).await, 5, "attempts while locked are not counted");
    assert_eq!(attempt(&app, &client, "wrong password", Some("192.0.2.1")).await.status(), 429);
    // Eleven wrong passwords in all: the account itself is locked now, whatever the IP.
    assert_eq!(attempt(&app, &client, PASSWORD, Some("192.0.2.99")).await.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_lock_the_account_without_lost_updates() {
    let app = spawn_app_with(|_| {}).await;
    let user = app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let attempts = (0..12).map(|_| attempt(&app, &client, "wrong password", None));
    let statuses: Vec<u16> =
        futures::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|&s| s == 400), "{statuses:?}");
    // Exactly the five before the lock count (no lost updates); the rest met the lock.
    assert_eq!(settled_failures(&app, 5).await, 5);

    // Locked: the right password gets the wrong-password answer.
    let wrong: Value = attempt(&app, &client, "wrong password", None).await.json().await.unwrap();
    let resp = attempt(&app, &client, PASSWORD, None).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap(), wrong, "a lock looks like a wrong password");
    let lockouts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE event = 'lockout'")
        .fetch_one(app.svc.db().pool())
        .await
        .unwrap();
    assert!(lockouts >= 1, "lockouts are audited");

    // When the lock runs out, the right password works and clears the counter.
    sqlx::query("UPDATE users SET locked_until = 1 WHERE id = $1")
        .bind(&user.id)
        .execute(app.svc.db().pool())
        .await
        .unwrap();
    assert_eq!(attempt(&app, &client, PASSWORD, None).await.status(), 200);
    let failures: i64 = sqlx::query_scalar("SELECT failed_attempts FROM users WHERE id = $1")
        .bind(&user.id)
        .fetch_one(app.svc.db().pool())
        .await
        .unwrap();
    assert_eq!(failures, 0);
}

#[tokio::test]
async fn refresh_is_limited_per_user() {
    let app = spawn_app_with(|s| s.rate_limit_refresh = per(2, 3600)).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let mut refresh = app.login(&client, "alice").await["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let resp = app
            .post_form(
                "/oauth/token",
                &client,
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await;
        assert_eq!(resp.status(), 200);
        refresh = resp.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
    }
    let resp = app
        .post_form("/oauth/token", &client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    // The limited request did not spend the token.
    sqlx::query("DELETE FROM rate_limits").execute(app.svc.db().pool()).await.unwrap();
    let resp = app
        .post_form("/oauth/token", &client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .await;
    assert_eq!(resp.status(), 200);
}

/// A refresh's step is taken in its rotation's batch: of a parallel burst on one user's
/// budget, exactly the budget rotates, and a refused refresh writes nothing (no rotation,
/// no audit record), so its token still works once the budget allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_refresh_burst_rotates_exactly_its_budget() {
    let app = spawn_app_with(|s| s.rate_limit_refresh = per(3, 3600)).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(app.login(&client, "alice").await["refresh_token"].as_str().unwrap().to_owned());
    }
    let (app, client) = (&app, &client);
    let refresh = |token: &str| {
        let token = token.to_owned();
        async move {
            let form = [("grant_type", "refresh_token"), ("refresh_token", token.as_str())];
            app.post_form("/oauth/token", client, &form).await
        }
    };
    let burst = futures::future::join_all(tokens.iter().map(|t| refresh(t))).await;
    let mut refused = Vec::new();
    for (token, resp) in tokens.iter().zip(burst) {
        if resp.status() != 200 {
            assert_limited(resp, 3, 3600).await;
            refused.push(token);
        }
    }
    assert_eq!(refused.len(), 5, "a budget of 3 rotates 3 of a burst of 8");
    let rotations: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE event = 'token_issued' AND detail LIKE 'grant=refresh_token%'",
    )
    .fetch_one(app.svc.db().pool())
    .await
    .unwrap();
    assert_eq!(rotations, 3);
    for token in refused {
        sqlx::query("DELETE FROM rate_limits").execute(app.svc.db().pool()).await.unwrap();
        assert_eq!(refresh(token).await.status(), 200, "a refused refresh spent its token");
    }
}

#[tokio::test]
async fn injection_strings_are_data() {
    let app = spawn_app_with(|_| {}).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let payloads = [
        "' OR '1'='1",
        "alice' --",
        "alice'; DROP TABLE users; --",
        "\" OR 1=1 --",
        "alice\0",
        "%27%20OR%201%3D1",
        "${jndi:ldap://x}",
        "alice\u{202e}",
    ];
    for p in payloads {
        for form in [
            vec![("grant_type", "password"), ("username", p), ("password", PASSWORD)],
            vec![("grant_type", "password"), ("username", "alice"), ("password", p)],
            vec![("grant_type", "refresh_token"), ("refresh_token", p)],
            vec![("grant_type", "password"), ("username", "alice"), ("password", PASSWORD), ("scope", p)],
        ] {
            let resp = app.post_form("/oauth/token", &client, &form).await;
            assert!(resp.status().is_client_error(), "{p:?}: {}", resp.status());
            let text = resp.text().await.unwrap();
            assert!(!text.to_lowercase().contains("sql") && !text.contains("syntax"), "{text}");
        }
        let resp = app.post_form("/oauth/introspect", &client, &[("token", p)]).await;
        assert_eq!(resp.json::<Value>().await.unwrap(), serde_json::json!({"active": false}));
        let bad_client = common::TestClient { id: p.to_owned(), secret: Some(p.to_owned()) };
        let resp = app.post_form("/oauth/token", &bad_client, &[("grant_type", "client_credentials")]).await;
        assert_eq!(resp.status(), 401, "{p:?}");
    }
    let users: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(app.svc.db().pool()).await.unwrap();
    assert_eq!(users, 1, "the table is intact");
    // The wrong passwords above locked alice; once the lock ends she logs in as before.
    sqlx::query("UPDATE users SET locked_until = NULL").execute(app.svc.db().pool()).await.unwrap();
    assert_eq!(app.login(&client, "alice").await["token_type"], "Bearer");
}

/// Unknown users cost the same argon2 work as wrong passwords: the medians of many
/// alternating tries stay within a tight ratio (without the dummy hash it is ~0.05).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_timing_does_not_reveal_unknown_users() {
    let app = spawn_app_with(|_| {}).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let time = |username: &'static str| {
        let (app, client) = (&app, &client);
        async move {
            // Let the previous attempt's after-answer bookkeeping finish first, so each
            // measurement sees only its own request.
            tokio::time::sleep(Duration::from_millis(150)).await;
            sqlx::query("UPDATE users SET failed_attempts = 0, locked_until = NULL")
                .execute(app.svc.db().pool())
                .await
                .unwrap();
            let started = std::time::Instant::now();
            let resp = app.password_grant(client, username, "wrong password", None).await;
            assert_eq!(resp.status(), 400);
            started.elapsed().as_secs_f64()
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..21 {
        if round % 2 == 0 {
            unknown.push(time("nobody").await);
            known.push(time("alice").await);
        } else {
            known.push(time("alice").await);
            unknown.push(time("nobody").await);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median(&mut unknown) / median(&mut known);
    assert!((0.6..1.7).contains(&ratio), "unknown/known median ratio {ratio:.2}");
}

async fn post_json(app: &TestApp, path: &str, body: serde_json::Value) -> reqwest::Response {
    app.http.post(app.url(path)).json(&body).send().await.unwrap()
}

/// A 429 with `Retry-After` within one emission interval and the `RateLimit-*` headers.
async fn assert_limited(resp: reqwest::Response, count: u32, window: u64) {
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=window / u64::from(count)).contains(&retry), "retry after {retry} s");
    assert_eq!(resp.headers()["ratelimit-limit"], count.to_string().as_str());
    assert_eq!(resp.headers()["ratelimit-remaining"], "0");
    assert_eq!(resp.headers()["ratelimit-reset"].to_str().unwrap(), retry.to_string());
    assert_eq!(resp.headers()["ratelimit-policy"], format!("{count};w={window}").as_str());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
}

#[tokio::test]
async fn fourth_registration_from_one_ip_within_the_hour_is_429() {
    let app = spawn_app_with(|s| s.rate_limit_register = per(3, 3600)).await;
    let register = |name: &str| serde_json::json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD});
    for name in ["ann", "ben", "cat"] {
        let resp = post_json(&app, "/account/register", register(name)).await;
        assert_eq!(resp.status(), 201, "{name}");
    }
    assert_limited(post_json(&app, "/account/register", register("dan")).await, 3, 3600).await;
    let created: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username = 'dan'")
        .fetch_one(app.svc.db().pool())
        .await
        .unwrap();
    assert_eq!(created, 0, "a limited registration creates nothing");
}

/// Three registrations per hour per client IP, which a trusted proxy on 127.0.0.1 names.
async fn spawn_app_registering_3_per_hour() -> TestApp {
    spawn_app_with(|s| {
        s.rate_limit_register = per(3, 3600);
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
}

/// A registration of `name` from `ip`, through the trusted proxy.
fn registration(app: &TestApp, name: &str, ip: &str) -> reqwest::RequestBuilder {
    let body =
        serde_json::json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD});
    app.http.post(app.url("/account/register")).header("x-forwarded-for", ip).json(&body)
}

/// Steps taken together (on SQLite, in one transaction of the group commit) each see the
/// one before them, and each answer reaches its own request: a spent budget and a fresh one
/// in one parallel burst keep apart, and a burst on a fresh budget gets exactly its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_steps_on_several_budgets_keep_apart() {
    let app = spawn_app_registering_3_per_hour().await;
    let register = |name: String, ip: &'static str| {
        let req = registration(&app, &name, ip);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for i in 0..3 {
        assert_eq!(register(format!("spent{i}"), "192.0.2.1").await, 201);
    }
    let burst = (0..12).map(|i| match i % 3 {
        0 => register(format!("fresh{i}"), "192.0.2.2"),
        _ => register(format!("again{i}"), "192.0.2.1"),
    });
    let statuses = futures::future::join_all(burst).await;
    for (i, status) in statuses.iter().enumerate() {
        let expected = if i % 3 == 0 { [201, 201, 201, 429] } else { [429; 4] };
        assert!(expected.contains(status), "request {i}: {status}");
    }
    let fresh = statuses.iter().step_by(3).filter(|&&s| s == 201).count();
    assert_eq!(fresh, 3, "the fresh budget gives exactly 3 of its 4 requests: {statuses:?}");
}

/// Steps that queue together are taken together (on PostgreSQL one statement takes each
/// key's steps of a batch as one): a burst gives exactly the budget, and every refused
/// request is told when to come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_burst_on_one_budget_gives_exactly_its_count() {
    let app = spawn_app_registering_3_per_hour().await;
    let burst = (0..16).map(|i| registration(&app, &format!("burst{i}"), "192.0.2.3").send());
    let mut created = 0;
    for resp in futures::future::join_all(burst).await {
        let resp = resp.unwrap();
        if resp.status() == 201 {
            created += 1;
        } else {
            assert_limited(resp, 3, 3600).await;
        }
    }
    assert_eq!(created, 3, "a budget of 3 gives 3 of a burst of 16");
}

#[tokio::test]
async fn forgot_password_is_limited_per_address_then_per_ip() {
    // The forgot-password limits (3 per address, 10 per IP, per hour) follow the login switch.
    let app = spawn_app_with(|s| s.rate_limit_login = per(1000, 3600)).await;
    app.create_user("alice", &[]).await;
    let forgot = |email: &str| serde_json::json!({"email": email});
    // A known and an unknown address are limited alike: the 429 tells nothing about either.
    for email in ["alice@example.com", "ghost@example.com"] {
        for i in 0..3 {
            let resp = post_json(&app, "/account/password/forgot", forgot(email)).await;
            assert_eq!(resp.status(), 202, "{email} request {i}");
        }
        let resp = post_json(&app, "/account/password/forgot", forgot(&email.to_uppercase())).await;
        assert_limited(resp, 3, 3600).await;
    }
    // Eight requests from this IP so far: two more go through, then the IP is limited.
    for email in ["carol@example.com", "dave@example.com"] {
        assert_eq!(post_json(&app, "/account/password/forgot", forgot(email)).await.status(), 202);
    }
    assert_limited(post_json(&app, "/account/password/forgot", forgot("erin@example.com")).await, 10, 3600)
        .await;
}
