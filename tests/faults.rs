//! Faults: a full disk, a read-only database, a database outage, a lost refresh response,
//! an audit record that cannot be written, and a form that is not UTF-8.

mod common;

use std::time::{Duration, Instant};

use common::*;
use latchkey::config::RateLimit;
use latchkey::model::GrantType;
use serde_json::{Value, json};
use sqlx::Connection;

fn postgres_url() -> Option<String> {
    std::env::var("LATCHKEY_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

async fn register(app: &TestApp, username: &str) -> reqwest::Response {
    app.http
        .post(app.url("/account/register"))
        .json(
            &json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
        )
        .send()
        .await
        .unwrap()
}

async fn client_credentials(app: &TestApp, client: &TestClient) -> reqwest::Response {
    app.post_form("/oauth/token", client, &[("grant_type", "client_credentials")]).await
}

async fn machine_client(app: &TestApp) -> TestClient {
    app.create_client("machine", false, &[GrantType::ClientCredentials], "api", &[]).await
}

async fn readyz(app: &TestApp) -> (u16, Duration) {
    let started = Instant::now();
    let status = app.http.get(app.url("/readyz")).send().await.unwrap().status().as_u16();
    (status, started.elapsed())
}

/// A 503 that says "come back": `Retry-After` and `temporarily_unavailable`.
async fn assert_unavailable(resp: reqwest::Response) {
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some(), "503 without Retry-After");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
}

/// Retries `probe` until it gives 200/201, for at most `within`; the time it took.
async fn time_to_recover<F, Fut>(within: Duration, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let started = Instant::now();
    loop {
        let status = probe().await;
        if status == 200 || status == 201 {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "not recovered after {within:?}: last status {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_disk_loses_no_acknowledged_write_and_recovers_without_restart() {
    if postgres_url().is_some() {
        eprintln!("skipped: the full disk is played with SQLite's max_page_count");
        return;
    }
    let app = spawn_app().await;
    let machine = machine_client(&app).await;
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let name = format!("early{i}");
        assert_eq!(register(&app, &name).await.status(), 201);
        acknowledged.push(name);
    }
    assert_eq!(readyz(&app).await.0, 200);

    // The disk is full: not one more page.
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(app.svc.db().pool()).await.unwrap();
    app.svc.db().set_sqlite_page_limit(pages as u64).await.unwrap();
    let mut refused = 0;
    for i in 0..40 {
        let name = format!("full{i}");
        let resp = register(&app, &name).await;
        match resp.status().as_u16() {
            201 => acknowledged.push(name),
            503 => {
                refused += 1;
                assert_unavailable(resp).await;
            }
            other => panic!("registration on a full disk: {other} {}", resp.text().await.unwrap()),
        }
        let status = client_credentials(&app, &machine).await.status().as_u16();
        assert!(status == 200 || status == 503, "client_credentials on a full disk: {status}");
    }
    assert!(refused > 0, "the disk never filled up");
    // Audit records go through the group commit's own connection, which is full too: they
    // fill what room is left in their pages, then fail.
    let mut cc_refused = false;
    for _ in 0..1000 {
        let status = client_credentials(&app, &machine).await.status().as_u16();
        assert!(status == 200 || status == 503, "client_credentials on a full disk: {status}");
        cc_refused = status == 503;
        if cc_refused {
            break;
        }
    }
    assert!(cc_refused, "client_credentials kept writing audit records on a full disk");
    assert_eq!(readyz(&app).await.0, 503, "not ready while writes fail");

    // Space returns. Requests that fail for their own reasons (a taken username, a wrong
    // verification token: transactions rolled back on purpose) must leave nothing behind.
    app.svc.db().set_sqlite_page_limit(1_000_000).await.unwrap();
    assert_eq!(register(&app, &acknowledged[0]).await.status(), 409);
    for _ in 0..16 {
        let resp = app
            .http
            .post(app.url("/account/email/verify"))
            .json(&json!({"token": "no-such-token"}))
            .send()
            .await;
        assert_eq!(resp.unwrap().status(), 400);
    }
    let mut n = 0;
    let took = time_to_recover(Duration::from_secs(2), || {
        n += 1;
        let name = format!("back{n}");
        let app = &app;
        async move { register(app, &name).await.status().as_u16() }
    })
    .await;
    acknowledged.push(format!("back{n}"));
    eprintln!("writes work again {took:?} after space returned");
    // Readiness follows by itself (its probe has a 900 ms budget, which a loaded CI machine
    // can overrun once): ready again within a few seconds, without a restart.
    time_to_recover(Duration::from_secs(5), || async { readyz(&app).await.0 }).await;
    for i in 0..5 {
        let name = format!("after{i}");
        assert_eq!(register(&app, &name).await.status(), 201);
        acknowledged.push(name);
    }
    assert_eq!(client_credentials(&app, &machine).await.status(), 200);

    // "Restart": every connection of the server closes; what was acknowledged is on disk.
    app.svc.db().close().await;
    let mut conn = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT username FROM users").fetch_all(&mut conn).await.unwrap();
    let lost: Vec<&String> = acknowledged.iter().filter(|name| !stored.contains(name)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged registrations lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}

#[test]
fn a_read_only_database_stops_start_up_with_one_clear_line() {
    if postgres_url().is_some() {
        eprintln!("skipped: a read-only SQLite file");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latchkey.db");
    let latchkey = |mode: &str, command: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .current_dir(dir.path())
            .env_clear()
            .env("LATCHKEY_DATABASE_URL", format!("sqlite://{}?mode={mode}", db.display()))
            .env("LATCHKEY_KEYS_DIR", dir.path().join("keys"))
            .env("LATCHKEY_BIND", "127.0.0.1:0")
            .arg(command)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // A database that has served before: schema and signing key in place.
    let seeded = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .current_dir(dir.path())
        .env_clear()
        .env("LATCHKEY_DATABASE_URL", format!("sqlite://{}?mode=rwc", db.display()))
        .env("LATCHKEY_KEYS_DIR", dir.path().join("keys"))
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));
    // Tests run as root, where file modes do not stop writes; a read-only open does.
    let mut server = latchkey("ro", "serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            server.kill().unwrap();
            panic!("the server started on a read-only database");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = server.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One line says why (an info line about a new TOTP key may come first).
    let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with("latchkey:")).collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains("does not take writes"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_at_once_and_recovers_without_restart() {
    let Some(admin_url) = postgres_url() else {
        eprintln!("skipped: needs LATCHKEY_TEST_DATABASE_URL (PostgreSQL behind a proxy)");
        return;
    };
    let url = url::Url::parse(&admin_url).unwrap();
    let target = tokio::net::lookup_host((url.host_str().unwrap(), url.port().unwrap_or(5432)))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = TcpProxy::start(target).await;
    let app = spawn_app_with(|s| s.database_url = proxy.route(&s.database_url)).await;
    let machine = machine_client(&app).await;
    assert_eq!(client_credentials(&app, &machine).await.status(), 200);

    proxy.stop().await;
    let started = Instant::now();
    let resp = client_credentials(&app, &machine).await;
    let took = started.elapsed();
    assert_unavailable(resp).await;
    assert!(took < Duration::from_secs(2), "OAuth endpoint took {took:?} to say 503");
    let started = Instant::now();
    assert_unavailable(register(&app, "during").await).await;
    assert!(started.elapsed() < Duration::from_secs(2), "register took {:?}", started.elapsed());
    let (status, took) = readyz(&app).await;
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(1), "/readyz took {took:?}");

    proxy.resume().await;
    let took = time_to_recover(Duration::from_secs(3), || {
        let (app, machine) = (&app, &machine);
        async move { client_credentials(app, machine).await.status().as_u16() }
    })
    .await;
    eprintln!("first 200 {took:?} after the database returned");
    assert!(took < Duration::from_millis(1500), "recovery took {took:?}");
    assert_eq!(readyz(&app).await.0, 200);
    assert_eq!(register(&app, "after").await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_commit_gives_its_connection_back_with_the_settings_it_took_it_with() {
    if postgres_url().is_none() {
        eprintln!("skipped: the group commit changes a setting of its connection on PostgreSQL only");
        return;
    }
    let app = spawn_app().await;
    let machine = machine_client(&app).await;
    for _ in 0..5 {
        assert_eq!(client_credentials(&app, &machine).await.status(), 200);
    }
    // Idle long enough for the task to give its connection back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pool = app.svc.db().pool();
    let mut conns = Vec::new();
    for _ in 0..pool.size() {
        conns.push(pool.acquire().await.unwrap());
    }
    for conn in &mut conns {
        let seqscan: String = sqlx::query_scalar("SHOW enable_seqscan").fetch_one(&mut **conn).await.unwrap();
        assert_eq!(seqscan, "on", "a pooled connection kept the group commit's planner setting");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_the_database_closed_while_idle_are_replaced_unseen() {
    if postgres_url().is_none() {
        eprintln!("skipped: needs LATCHKEY_TEST_DATABASE_URL (PostgreSQL ends the connections)");
        return;
    }
    let app = spawn_app().await;
    let machine = machine_client(&app).await;
    assert_eq!(client_credentials(&app, &machine).await.status(), 200);
    // As a database restart or a proxy's idle timeout would: every connection of the pool ends.
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // Idle longer than the server trusts an unused connection without a ping.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..5 {
        assert_eq!(client_credentials(&app, &machine).await.status(), 200);
    }
}

async fn refresh(app: &TestApp, client: &TestClient, token: &str) -> (u16, Value) {
    let resp = app
        .post_form("/oauth/token", client, &[("grant_type", "refresh_token"), ("refresh_token", token)])
        .await;
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Takes the audit table away (every audit write fails) or puts it back.
async fn set_audit_table_away(app: &TestApp, away: bool) {
    let sql = if away {
        "ALTER TABLE audit_events RENAME TO audit_events_away"
    } else {
        "ALTER TABLE audit_events_away RENAME TO audit_events"
    };
    sqlx::query(sql).execute(app.svc.db().pool()).await.unwrap();
}

async fn audit_count(app: &TestApp, event: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE event = $1")
        .bind(event)
        .fetch_one(app.svc.db().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn within_the_reuse_grace_the_client_may_retry_a_rotation_and_keeps_its_session() {
    let app = spawn_app_with(|s| s.refresh_reuse_grace = Duration::from_secs(30)).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let r1 = app.login(&client, "alice").await["refresh_token"].as_str().unwrap().to_owned();

    // The answer to this rotation is lost on the way...
    let (status, _lost) = refresh(&app, &client, &r1).await;
    assert_eq!(status, 200);
    // ...so the client retries with the token it still has, and gets a working pair.
    app.svc.clock().advance(Duration::from_secs(20));
    let (status, retried) = refresh(&app, &client, &r1).await;
    assert_eq!(status, 200, "{retried}");
    let r3 = retried["refresh_token"].as_str().unwrap().to_owned();
    let access = retried["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.introspect(&client, &access).await["active"], true);
    assert_eq!(audit_count(&app, "refresh_token_reuse").await, 0);
    let (status, next) = refresh(&app, &client, &r3).await;
    assert_eq!(status, 200, "the family survives: {next}");
    let r4 = next["refresh_token"].as_str().unwrap().to_owned();

    // Outside the window, the same thing is reuse: the family ends, and it is audited.
    app.svc.clock().advance(Duration::from_secs(31));
    let (status, body) = refresh(&app, &client, &r3).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(refresh(&app, &client, &r4).await.0, 400, "the family ended");
    assert_eq!(audit_count(&app, "refresh_token_reuse").await, 1);
}

#[tokio::test]
async fn within_the_reuse_grace_a_token_from_before_generations_may_be_retried_once() {
    let app = spawn_app_with(|s| s.refresh_reuse_grace = Duration::from_secs(30)).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let login = app.login(&client, "alice").await;
    let sid = jwt_part(login["access_token"].as_str().unwrap(), 1)["sid"].as_str().unwrap().to_owned();
    let [legacy] = app.make_legacy_session(&sid, &[None]).await.try_into().unwrap();

    // The first rotation's answer is lost; the retry with the old token works.
    let (status, lost) = refresh(&app, &client, &legacy).await;
    assert_eq!(status, 200, "{lost}");
    app.svc.clock().advance(Duration::from_secs(20));
    let (status, retried) = refresh(&app, &client, &legacy).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(audit_count(&app, "refresh_token_reuse").await, 0);
    // The pair it never saw died with the retry; the retried pair goes on.
    let r3 = retried["refresh_token"].as_str().unwrap().to_owned();
    let lost = lost["refresh_token"].as_str().unwrap();
    assert_eq!(app.introspect(&client, lost).await["active"], false);
    let (status, next) = refresh(&app, &client, &r3).await;
    assert_eq!(status, 200, "{next}");
    // Two rotations on, the old token is reuse even within the window.
    assert_eq!(refresh(&app, &client, &legacy).await.0, 400);
    assert_eq!(audit_count(&app, "refresh_token_reuse").await, 1);
}

#[tokio::test]
async fn within_the_reuse_grace_a_spent_token_whose_successor_was_used_is_still_reuse() {
    let app = spawn_app_with(|s| s.refresh_reuse_grace = Duration::from_secs(30)).await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let r1 = app.login(&client, "alice").await["refresh_token"].as_str().unwrap().to_owned();
    let (_, second) = refresh(&app, &client, &r1).await;
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    let (status, third) = refresh(&app, &client, &r2).await;
    assert_eq!(status, 200);
    let r3 = third["refresh_token"].as_str().unwrap().to_owned();

    // r2 was delivered and used: r1 coming back is not a lost response but a copy.
    assert_eq!(refresh(&app, &client, &r1).await.0, 400);
    assert_eq!(refresh(&app, &client, &r3).await.0, 400, "the family ended");
    assert_eq!(audit_count(&app, "refresh_token_reuse").await, 1);
}

#[tokio::test]
async fn a_request_whose_audit_record_cannot_be_written_fails() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let web = app.web_client().await;
    let machine = machine_client(&app).await;
    assert_eq!(client_credentials(&app, &machine).await.status(), 200);

    set_audit_table_away(&app, true).await;
    let status = client_credentials(&app, &machine).await.status();
    assert!(status.is_server_error(), "client_credentials answered {status} without its audit record");
    let status = app.password_grant(&web, "alice", PASSWORD, None).await.status();
    assert!(status.is_server_error(), "login answered {status} without its audit record");
    let sessions: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions").fetch_one(app.svc.db().pool()).await.unwrap();
    assert_eq!(sessions, 0, "the login's session went with its audit record");

    set_audit_table_away(&app, false).await;
    assert_eq!(client_credentials(&app, &machine).await.status(), 200);
    assert_eq!(audit_count(&app, "token_issued").await, 2);
}

/// `n` client_credentials requests at once, each with its own User-Agent (which the audit
/// record keeps); the status of each.
async fn concurrent_client_credentials(app: &TestApp, client: &TestClient, n: usize) -> Vec<u16> {
    let requests = (0..n).map(|i| async move {
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&client.id, client.secret.as_deref())
            .header("user-agent", format!("request-{i}"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    futures::future::join_all(requests).await
}

async fn token_issued_user_agents(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT user_agent FROM audit_events WHERE event = 'token_issued' ORDER BY user_agent")
        .fetch_all(app.svc.db().pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_that_share_audit_commits_each_have_their_record() {
    let app = spawn_app().await;
    let machine = machine_client(&app).await;
    let statuses = concurrent_client_credentials(&app, &machine, 64).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let mut expected: Vec<String> = (0..64).map(|i| format!("request-{i}")).collect();
    expected.sort();
    assert_eq!(token_issued_user_agents(&app).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_audit_batch_fails_every_request_in_it_and_the_next_batch_is_written() {
    let app = spawn_app().await;
    let machine = machine_client(&app).await;
    set_audit_table_away(&app, true).await;
    let statuses = concurrent_client_credentials(&app, &machine, 64).await;
    assert!(statuses.iter().all(|s| *s == 500), "answered without an audit record: {statuses:?}");

    set_audit_table_away(&app, false).await;
    assert!(token_issued_user_agents(&app).await.is_empty());
    let statuses = concurrent_client_credentials(&app, &machine, 8).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(token_issued_user_agents(&app).await.len(), 8);
}

#[tokio::test]
async fn a_token_form_that_is_not_utf8_is_invalid_request() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let web = app.web_client().await;
    for body in [
        &b"grant_type=password&username=alice&password=%FF%FE"[..],
        b"grant_type=password&username=alice&password=\xff",
    ] {
        let resp = app
            .http
            .post(app.url("/oauth/token"))
            .basic_auth(&web.id, web.secret.as_deref())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{body}");
    }
    // Refused before any password check: no failed login was recorded.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(audit_count(&app, "login").await, 0);
}

/// One refresh token per session, for `n` sessions of one user.
async fn sessions(app: &TestApp, client: &TestClient, n: usize) -> Vec<String> {
    app.create_user("alice", &[]).await;
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        tokens.push(app.login(client, "alice").await["refresh_token"].as_str().unwrap().to_owned());
    }
    tokens
}

async fn concurrent_refreshes(app: &TestApp, client: &TestClient, tokens: &[String]) -> Vec<(u16, Value)> {
    futures::future::join_all(tokens.iter().map(|token| refresh(app, client, token))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_that_share_commits_each_stand_alone() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    let tokens = sessions(&app, &web, 24).await;
    // Every token twice at once: one of each pair rotates, the other is reuse and ends
    // that session, whatever batches the two land in.
    let doubled: Vec<String> = tokens.iter().chain(&tokens).cloned().collect();
    let answers = concurrent_refreshes(&app, &web, &doubled).await;
    for (i, token) in tokens.iter().enumerate() {
        let pair = [answers[i].0, answers[i + tokens.len()].0];
        assert!(pair.contains(&200) && pair.contains(&400), "{token}: {pair:?}");
    }
    assert_eq!(audit_count(&app, "refresh_token_reuse").await, 24);
    let successors: Vec<String> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body["refresh_token"].as_str().unwrap().to_owned())
        .collect();
    let after = concurrent_refreshes(&app, &web, &successors).await;
    assert!(after.iter().all(|(status, _)| *status == 400), "the reuse ended every session");

    // Sessions refreshed once each at the same time all rotate, and each successor works.
    let app = spawn_app().await;
    let web = app.web_client().await;
    let tokens = sessions(&app, &web, 24).await;
    let answers = concurrent_refreshes(&app, &web, &tokens).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    let successors: Vec<String> =
        answers.iter().map(|(_, body)| body["refresh_token"].as_str().unwrap().to_owned()).collect();
    let after = concurrent_refreshes(&app, &web, &successors).await;
    assert!(after.iter().all(|(status, _)| *status == 200), "{after:?}");
    let issued = app.refreshes_audited().await;
    assert_eq!(issued, 48, "one record per rotation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_read_in_one_batch_each_get_their_own_session_and_user() {
    let app = spawn_app().await;
    let web = app.web_client().await;
    // Users with different roles, so a user's roles given to another would show.
    let role_sets: [&[&str]; 3] = [&["admin", "user"], &["user"], &["admin"]];
    let mut logins = Vec::new();
    for i in 0..18 {
        let username = format!("user{i}");
        app.create_user(&username, role_sets[i % 3]).await;
        logins.push(app.login(&web, &username).await);
    }
    let tokens: Vec<String> =
        logins.iter().map(|l| l["refresh_token"].as_str().unwrap().to_owned()).collect();
    let answers = concurrent_refreshes(&app, &web, &tokens).await;
    for (login, (status, body)) in logins.iter().zip(&answers) {
        assert_eq!(*status, 200, "{body}");
        let before = common::jwt_part(login["access_token"].as_str().unwrap(), 1);
        let after = common::jwt_part(body["access_token"].as_str().unwrap(), 1);
        for claim in ["sub", "sid", "roles", "scope"] {
            assert_eq!(after[claim], before[claim], "{claim} of {}", before["sub"]);
        }
    }
}

/// With the refresh limit on, the batch takes the refreshes' steps before their rotations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rotation_batch_spends_no_token() {
    let limited = RateLimit::PerPeriod { count: 1000, period: Duration::from_secs(3600) };
    for limit in [RateLimit::Off, limited] {
        let app = spawn_app_with(|s| s.rate_limit_refresh = limit).await;
        let web = app.web_client().await;
        let tokens = sessions(&app, &web, 16).await;
        // The batch's last statement fails: everything before it in the batch must go too.
        set_audit_table_away(&app, true).await;
        let answers = concurrent_refreshes(&app, &web, &tokens).await;
        assert!(answers.iter().all(|(status, _)| *status == 500), "{limit:?}: {answers:?}");
        set_audit_table_away(&app, false).await;
        let answers = concurrent_refreshes(&app, &web, &tokens).await;
        assert!(answers.iter().all(|(status, _)| *status == 200), "{limit:?}, the same tokens: {answers:?}");
    }
}
