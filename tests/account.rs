//! Self-service account endpoints over HTTP, reading mailed tokens from the `dir:` transport.

mod common;

use std::time::Duration;

use common::{PASSWORD, TestApp, TestClient, spawn_app};
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a brand new long passphrase";

async fn post_json(app: &TestApp, path: &str, bearer: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = app.http.post(app.url(path)).json(&body);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

/// Every mail the `dir:` transport has written so far.
fn mails(app: &TestApp) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(app.dir.path().join("mail")) else { return Vec::new() };
    let mut paths: Vec<_> =
        entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    paths.sort();
    paths.iter().map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()).collect()
}

/// Mail goes out from a background task: wait (briefly) for the one we expect.
async fn wait_for_mail(app: &TestApp, to: &str, kind: &str) -> Value {
    for _ in 0..100 {
        if let Some(mail) = mails(app).into_iter().rev().find(|m| m["to"] == to && m["kind"] == kind) {
            return mail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind} mail to {to} arrived; mails: {:?}", mails(app));
}

fn token_of(mail: &Value) -> String {
    mail["token"].as_str().unwrap().to_owned()
}

async fn register(app: &TestApp, username: &str, email: &str, password: &str) -> reqwest::Response {
    post_json(
        app,
        "/account/register",
        None,
        json!({"username": username, "email": email, "password": password}),
    )
    .await
}

async fn refresh(app: &TestApp, client: &TestClient, refresh_token: &str) -> reqwest::Response {
    app.post_form(
        "/oauth/token",
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)],
    )
    .await
}

async fn error_of(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

/// `(event, outcome)` of every audit record about `user_id`, oldest first.
async fn audit_trail(app: &TestApp, user_id: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT event, outcome FROM audit_events WHERE user_id = $1 ORDER BY id")
        .bind(user_id)
        .fetch_all(app.svc.db().pool())
        .await
        .unwrap()
}

fn has_event(trail: &[(String, String)], event: &str, outcome: &str) -> bool {
    trail.iter().any(|(e, o)| e == event && o == outcome)
}

fn str_of<'a>(token: &'a Value, field: &str) -> &'a str {
    token[field].as_str().unwrap_or_else(|| panic!("no {field} in {token}"))
}

#[tokio::test]
async fn registered_users_log_in_only_after_verifying_their_email() {
    let app = spawn_app().await;
    let client = app.web_client().await;

    let resp = register(&app, "Alice", "Alice@Example.com", PASSWORD).await;
    assert_eq!(resp.status(), 201);
    let user: Value = resp.json().await.unwrap();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["roles"], json!(["user"]));
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let refused = app.password_grant(&client, "alice", PASSWORD, None).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(error_of(refused).await["error"], "invalid_grant");

    let mail = wait_for_mail(&app, "alice@example.com", "verify_email").await;
    let token = token_of(&mail);
    assert!(mail["subject"].as_str().unwrap().to_lowercase().contains("verify"));
    assert!(mail["body"].as_str().unwrap().contains(&token));

    let garbage = post_json(&app, "/account/email/verify", None, json!({"token": "not-a-real-token"})).await;
    assert_eq!(garbage.status(), 400);
    assert_eq!(error_of(garbage).await["error"], "invalid_request");

    let verified = post_json(&app, "/account/email/verify", None, json!({"token": token})).await;
    assert_eq!(verified.status(), 204);
    app.login(&client, "alice").await;

    let again = post_json(&app, "/account/email/verify", None, json!({"token": token})).await;
    assert_eq!(again.status(), 400, "verification tokens are single-use");

    let me = app.get_bearer("/account/me", str_of(&app.login(&client, "alice").await, "access_token")).await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["email_verified"], true);

    let trail = audit_trail(&app, str_of(&user, "id")).await;
    assert!(
        has_event(&trail, "register", "success") && has_event(&trail, "email_verified", "success"),
        "{trail:?}"
    );
}

#[tokio::test]
async fn password_policy_errors_list_every_reason() {
    let app = spawn_app().await;

    let resp = register(&app, "alice", "alice@example.com", "alice").await;
    assert_eq!(resp.status(), 400);
    let body = error_of(resp).await;
    assert_eq!(body["error"], "invalid_request");
    let errors: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("at least 8")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("username or email")), "{errors:?}");

    let common = error_of(register(&app, "bob", "bob@example.com", "Password1").await).await;
    assert_eq!(common["errors"], json!(["password is one of the most common passwords"]));

    // A bad username, a bad address and a bad password: all three in one answer.
    let all = error_of(register(&app, "x", "not-an-address", "short").await).await;
    assert_eq!(all["errors"].as_array().unwrap().len(), 3, "{all}");

    let too_long = error_of(register(&app, "carol", "carol@example.com", &"x".repeat(1025)).await).await;
    assert!(
        too_long["errors"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains("at most 1024"))
    );

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(mails(&app).is_empty(), "refused registrations mail nothing");
}

#[tokio::test]
async fn duplicate_username_or_email_is_409() {
    let app = spawn_app().await;
    assert_eq!(register(&app, "alice", "alice@example.com", PASSWORD).await.status(), 201);

    let same_name = register(&app, "ALICE", "other@example.com", PASSWORD).await;
    assert_eq!(same_name.status(), 409);
    assert_eq!(error_of(same_name).await["error"], "conflict");
    let same_email = register(&app, "alice2", "Alice@example.com", PASSWORD).await;
    assert_eq!(same_email.status(), 409);
}

#[tokio::test]
async fn password_reset_sets_the_password_and_ends_every_session() {
    let app = spawn_app().await;
    let client = app.web_client().await;
    let user = app.create_user("alice", &[]).await;
    let first = app.login(&client, "alice").await;
    let second = app.login(&client, "alice").await;

    let resp = post_json(&app, "/account/password/forgot", None, json!({"email": "Alice@example.com"})).await;
    assert_eq!(resp.status(), 202);
    let mail = wait_for_mail(&app, "alice@example.com", "password_reset").await;
    let token = token_of(&mail);
    assert!(mail["body"].as_str().unwrap().contains(&token));

    // A weak password is refused with its reasons, and the token survives the refusal.
    let weak =
        post_json(&app, "/account/password/reset", None, json!({"token": token, "new_password": "alice123"}))
            .await;
    assert_eq!(weak.status(), 400);
    assert!(!error_of(weak).await["errors"].as_array().unwrap().is_empty());

    let garbage = post_json(
        &app,
        "/account/password/reset",
        None,
        json!({"token": "garbage", "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(garbage.status(), 400);

    let done = post_json(
        &app,
        "/account/password/reset",
        None,
        json!({"token": token, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(done.status(), 204);

    for tokens in [&first, &second] {
        let refreshed = refresh(&app, &client, str_of(tokens, "refresh_token")).await;
        assert_eq!(refreshed.status(), 400, "refresh tokens die with the reset");
        assert_eq!(app.introspect(&client, str_of(tokens, "access_token")).await, json!({"active": false}));
    }
    assert_eq!(app.password_grant(&client, "alice", PASSWORD, None).await.status(), 400);
    assert_eq!(app.password_grant(&client, "alice", NEW_PASSWORD, None).await.status(), 200);

    let replay =
        post_json(&app, "/account/password/reset", None, json!({"token": token, "new_password": PASSWORD}))
            .await;
    assert_eq!(replay.status(), 400, "reset tokens are single-use");
    assert!(has_event(&audit_trail(&app, &user.id).await, "password_reset", "success"));
}

#[tokio::test]
async fn a_password_reset_also_verifies_the_address() {
    let app = spawn_app().await;
    let client = app.web_client().await;
    assert_eq!(register(&app, "alice", "alice@example.com", PASSWORD).await.status(), 201);
    assert_eq!(app.password_grant(&client, "alice", PASSWORD, None).await.status(), 400);

    post_json(&app, "/account/password/forgot", None, json!({"email": "alice@example.com"})).await;
    let token = token_of(&wait_for_mail(&app, "alice@example.com", "password_reset").await);
    let done = post_json(
        &app,
        "/account/password/reset",
        None,
        json!({"token": token, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(done.status(), 204);
    assert_eq!(app.password_grant(&client, "alice", NEW_PASSWORD, None).await.status(), 200);
}

#[tokio::test]
async fn an_expired_reset_token_is_refused() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    post_json(&app, "/account/password/forgot", None, json!({"email": "alice@example.com"})).await;
    let token = token_of(&wait_for_mail(&app, "alice@example.com", "password_reset").await);
    sqlx::query("UPDATE account_tokens SET expires_at = 1").execute(app.svc.db().pool()).await.unwrap();

    let resp = post_json(
        &app,
        "/account/password/reset",
        None,
        json!({"token": token, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn forgot_password_for_an_unknown_address_is_202_and_mails_nothing() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;

    let unknown =
        post_json(&app, "/account/password/forgot", None, json!({"email": "nobody@example.com"})).await;
    assert_eq!(unknown.status(), 202);
    // The known address's mail is queued after; once it is there, the other would be too.
    let known =
        post_json(&app, "/account/password/forgot", None, json!({"email": "alice@example.com"})).await;
    assert_eq!(known.status(), 202);
    wait_for_mail(&app, "alice@example.com", "password_reset").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = mails(&app);
    assert_eq!(sent.len(), 1, "{sent:?}");
    // Both requests did the same write: one token row each, the unknown one without a user.
    let rows: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT user_id FROM account_tokens ORDER BY created_at")
            .fetch_all(app.svc.db().pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.iter().filter(|(user,)| user.is_none()).count(), 1);

    let malformed =
        post_json(&app, "/account/password/forgot", None, json!({"email": "not an address"})).await;
    assert_eq!(malformed.status(), 400);
}

#[tokio::test]
async fn change_password_keeps_the_current_session_and_ends_the_others() {
    let app = spawn_app().await;
    let client = app.web_client().await;
    let user = app.create_user("alice", &[]).await;
    let mine = app.login(&client, "alice").await;
    let other = app.login(&client, "alice").await;
    let access = str_of(&mine, "access_token");

    let wrong = post_json(
        &app,
        "/account/password",
        Some(access),
        json!({"current_password": "not my password", "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(wrong.status(), 403);

    let weak = post_json(
        &app,
        "/account/password",
        Some(access),
        json!({"current_password": PASSWORD, "new_password": "qwerty"}),
    )
    .await;
    assert_eq!(weak.status(), 400);
    assert_eq!(error_of(weak).await["errors"].as_array().unwrap().len(), 2);

    let done = post_json(
        &app,
        "/account/password",
        Some(access),
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(done.status(), 204);

    assert_eq!(app.introspect(&client, access).await["active"], true);
    assert_eq!(refresh(&app, &client, str_of(&mine, "refresh_token")).await.status(), 200);
    assert_eq!(app.introspect(&client, str_of(&other, "access_token")).await, json!({"active": false}));
    assert_eq!(refresh(&app, &client, str_of(&other, "refresh_token")).await.status(), 400);
    assert_eq!(app.password_grant(&client, "alice", PASSWORD, None).await.status(), 400);
    assert_eq!(app.password_grant(&client, "alice", NEW_PASSWORD, None).await.status(), 200);

    let trail = audit_trail(&app, &user.id).await;
    assert!(has_event(&trail, "password_change", "failure"), "{trail:?}");
    assert!(has_event(&trail, "password_change", "success"), "{trail:?}");
}

#[tokio::test]
async fn me_returns_the_caller() {
    let app = spawn_app().await;
    let client = app.web_client().await;
    let user = app.create_user("alice", &["admin"]).await;
    let tokens = app.login(&client, "alice").await;

    let resp = app.get_bearer("/account/me", str_of(&tokens, "access_token")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["id"], user.id);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["status"], "active");
    assert_eq!(me["roles"], json!(["admin"]));
    assert!(me["last_login_at"].as_i64().is_some());
}

#[tokio::test]
async fn sessions_are_listed_and_ended_one_by_one() {
    let app = spawn_app().await;
    let client = app.web_client().await;
    app.create_user("alice", &[]).await;
    app.create_user("bob", &[]).await;
    let login_with_agent = |agent: &'static str, user: &'static str| {
        let req = app
            .http
            .post(app.url("/oauth/token"))
            .basic_auth(&client.id, client.secret.as_deref())
            .header("user-agent", agent)
            .form(&[("grant_type", "password"), ("username", user), ("password", PASSWORD)]);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let laptop = login_with_agent("Laptop/1.0", "alice").await;
    let phone = login_with_agent("Phone/2.0", "alice").await;
    let bob = login_with_agent("Bob/1.0", "bob").await;
    let token = str_of(&laptop, "access_token");

    let list = |token: String| {
        let req = app.http.get(app.url("/account/sessions")).bearer_auth(token);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Vec<Value>>().await.unwrap()
        }
    };
    let sessions = list(token.to_owned()).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for s in &sessions {
        assert_eq!(s["client_id"], "web");
        assert_eq!(s["ip"], "127.0.0.1");
        assert!(s["created_at"].as_i64().is_some() && s["last_used_at"].as_i64().is_some());
    }
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "Laptop/1.0");
    let phone_session = sessions.iter().find(|s| s["user_agent"] == "Phone/2.0").unwrap();
    let phone_id = str_of(phone_session, "id");

    let bob_sessions = list(str_of(&bob, "access_token").to_owned()).await;
    let bob_id = str_of(&bob_sessions[0], "id");
    let delete =
        |id: String| app.http.delete(app.url(&format!("/account/sessions/{id}"))).bearer_auth(token).send();
    assert_eq!(delete(bob_id.to_owned()).await.unwrap().status(), 404, "someone else's session");
    assert_eq!(app.introspect(&client, str_of(&bob, "access_token")).await["active"], true);
    assert_eq!(delete("no-such-session".into()).await.unwrap().status(), 404);

    assert_eq!(delete(phone_id.to_owned()).await.unwrap().status(), 204);
    assert_eq!(delete(phone_id.to_owned()).await.unwrap().status(), 404, "already ended");
    assert_eq!(refresh(&app, &client, str_of(&phone, "refresh_token")).await.status(), 400);
    assert_eq!(app.introspect(&client, str_of(&phone, "access_token")).await, json!({"active": false}));

    let left = list(token.to_owned()).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["user_agent"], "Laptop/1.0");
}

#[tokio::test]
async fn logout_ends_the_current_session_and_its_access_token() {
    let app = spawn_app().await;
    let client = app.web_client().await;
    let user = app.create_user("alice", &[]).await;
    let mine = app.login(&client, "alice").await;
    let other = app.login(&client, "alice").await;
    let access = str_of(&mine, "access_token");

    let resp = post_json(&app, "/account/logout", Some(access), json!({})).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(app.introspect(&client, access).await, json!({"active": false}));
    assert_eq!(refresh(&app, &client, str_of(&mine, "refresh_token")).await.status(), 400);
    assert_eq!(app.get_bearer("/account/me", access).await.status(), 401);
    // Other sessions live on.
    assert_eq!(app.introspect(&client, str_of(&other, "access_token")).await["active"], true);

    let jti = common::jwt_part(access, 1)["jti"].as_str().unwrap().to_owned();
    let revoked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = $1")
        .bind(jti)
        .fetch_one(app.svc.db().pool())
        .await
        .unwrap();
    assert_eq!(revoked, 1, "the access token itself is revoked, not only its session");
    assert!(has_event(&audit_trail(&app, &user.id).await, "logout", "success"));
}

#[tokio::test]
async fn missing_or_garbage_bearer_tokens_get_401_with_a_challenge() {
    let app = spawn_app().await;
    let client =
        app.create_client("svc", false, &[latchkey::model::GrantType::ClientCredentials], "api", &[]).await;
    let client_token = {
        let resp = app.post_form("/oauth/token", &client, &[("grant_type", "client_credentials")]).await;
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    };
    let routes = [
        ("GET", "/account/me"),
        ("POST", "/account/password"),
        ("GET", "/account/sessions"),
        ("DELETE", "/account/sessions/some-id"),
        ("POST", "/account/logout"),
    ];
    for (method, path) in routes {
        for bearer in [None, Some("garbage"), Some(client_token.as_str())] {
            let mut req = app.http.request(method.parse().unwrap(), app.url(path));
            if method == "POST" {
                req = req.json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}));
            }
            if let Some(token) = bearer {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{method} {path} with {bearer:?}");
            let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            assert_eq!(error_of(resp).await["error"], "invalid_token");
        }
    }
}

#[tokio::test]
async fn closed_registration_refuses_self_service_sign_up() {
    let app = common::spawn_app_with(|s| s.registration_open = false).await;
    let resp = register(&app, "mallory", "mallory@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(error_of(resp).await["error"], "registration_closed");
    // Operators still create users, who log in at once.
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    app.login(&client, "alice").await;
}
