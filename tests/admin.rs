//! The admin API over HTTP: RBAC on every route, each route's success and failure paths,
//! and what admin actions do to live tokens.

mod common;

use common::{PASSWORD, TestApp, TestClient, spawn_app};
use latchkey::model::GrantType;
use reqwest::Method;
use serde_json::{Value, json};
use totp_rs::Secret;

/// An app with an admin, an ordinary user, and the web client; tokens for both users.
struct Fixture {
    app: TestApp,
    web: TestClient,
    admin_id: String,
    admin_token: String,
    user_id: String,
    user_token: String,
}

async fn fixture() -> Fixture {
    let app = spawn_app().await;
    let web = app.web_client().await;
    let admin = app.create_user("root", &["admin", "user"]).await;
    let user = app.create_user("alice", &[]).await;
    let admin_token = app.login(&web, "root").await["access_token"].as_str().unwrap().to_owned();
    let user_token = app.login(&web, "alice").await["access_token"].as_str().unwrap().to_owned();
    Fixture { app, web, admin_id: admin.id, admin_token, user_id: user.id, user_token }
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await.unwrap()
}

impl Fixture {
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let resp = call(&self.app, method, path, Some(&self.admin_token), body.as_ref()).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    async fn audit(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.admin(Method::GET, &format!("/admin/audit?{query}"), None).await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    }
}

fn errors(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_admin_route_refuses_non_admins_and_anonymous_callers() {
    let f = fixture().await;
    let app = &f.app;
    let target = app.create_user("target", &[]).await;
    app.create_client("victim", false, &[GrantType::ClientCredentials], "api", &[]).await;
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/admin/users", None),
        (
            Method::POST,
            "/admin/users",
            Some(json!({"username": "mallory", "email": "m@example.com", "password": PASSWORD})),
        ),
        (Method::GET, "/admin/users/{id}", None),
        (Method::PATCH, "/admin/users/{id}", Some(json!({"roles": ["admin"]}))),
        (Method::DELETE, "/admin/users/{id}", None),
        (Method::POST, "/admin/users/{id}/disable", None),
        (Method::POST, "/admin/users/{id}/enable", None),
        (Method::POST, "/admin/users/{id}/unlock", None),
        (Method::POST, "/admin/users/{id}/revoke-sessions", None),
        (Method::POST, "/admin/users/{id}/password", Some(json!({"password": "a long and new passphrase"}))),
        (Method::POST, "/admin/users/{id}/mfa/reset", None),
        (Method::GET, "/admin/clients", None),
        (Method::POST, "/admin/clients", Some(json!({"name": "evil"}))),
        (Method::GET, "/admin/clients/{id}", None),
        (Method::PATCH, "/admin/clients/{id}", Some(json!({"name": "owned"}))),
        (Method::DELETE, "/admin/clients/{id}", None),
        (Method::POST, "/admin/clients/{id}/rotate-secret", None),
        (Method::GET, "/admin/keys", None),
        (Method::POST, "/admin/keys/rotate", None),
        (Method::GET, "/admin/audit", None),
    ];

    // The table must be the whole admin surface: compare with the published document.
    let spec: Value = app.get_json("/openapi.json").await;
    let mut documented: Vec<String> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.starts_with("/admin"))
        .flat_map(|(path, ops)| {
            ops.as_object().unwrap().keys().map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let mut tested: Vec<String> = routes.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    documented.sort();
    tested.sort();
    assert_eq!(documented, tested);

    for (method, template, body) in &routes {
        let id = if template.starts_with("/admin/clients/") { "victim" } else { target.id.as_str() };
        let path = template.replace("{id}", id);
        let resp = call(app, method.clone(), &path, Some(&f.user_token), body.as_ref()).await;
        assert_eq!(resp.status(), 403, "{method} {path} as a user");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains(r#"error="insufficient_scope""#), "{method} {path}: {challenge}");
        let body_json: Value = resp.json().await.unwrap();
        assert_eq!(body_json["error"], "insufficient_scope");

        let resp = call(app, method.clone(), &path, None, body.as_ref()).await;
        assert_eq!(resp.status(), 401, "{method} {path} without a token");
        assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));

        let resp = call(app, method.clone(), &path, Some("not.a.token"), body.as_ref()).await;
        assert_eq!(resp.status(), 401, "{method} {path} with a bad token");
    }

    // Each refusal of a signed-in user is on record.
    let denied = f.audit(&format!("event=admin_access_denied&user_id={}&limit=200", f.user_id)).await;
    assert_eq!(denied.len(), routes.len());

    // Nothing was changed by all that.
    let (status, body) = f.admin(Method::GET, &format!("/admin/users/{}", target.id), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("active")));
    assert_eq!(f.admin(Method::GET, "/admin/clients/victim", None).await.0, 200);
}

#[tokio::test]
async fn the_admin_role_is_checked_in_the_database_not_the_token() {
    let f = fixture().await;
    let second = f.app.create_user("deputy", &["admin"]).await;
    let token = f.app.login(&f.web, "deputy").await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(f.app.get_bearer("/admin/users", &token).await.status(), 200);
    let (status, body) = f
        .admin(Method::PATCH, &format!("/admin/users/{}", second.id), Some(json!({"roles": ["user"]})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"], json!(["user"]));
    // The token still says "admin"; the database no longer does.
    assert_eq!(common::jwt_part(&token, 1)["roles"], json!(["admin"]));
    assert_eq!(f.app.get_bearer("/admin/users", &token).await.status(), 403);
}

#[tokio::test]
async fn admins_create_read_update_and_delete_users() {
    let f = fixture().await;
    let new = json!({"username": "Bob", "email": "Bob@Example.com", "password": PASSWORD, "roles": ["user"]});
    let (status, bob) = f.admin(Method::POST, "/admin/users", Some(new.clone())).await;
    assert_eq!(status, 201, "{bob}");
    assert_eq!((bob["username"].as_str(), bob["email"].as_str()), (Some("bob"), Some("bob@example.com")));
    assert_eq!(bob["email_verified"], true);
    assert!(bob.get("password_hash").is_none() && bob.get("password").is_none());
    let id = bob["id"].as_str().unwrap().to_owned();
    // Created by an admin: can log in at once.
    f.app.login(&f.web, "bob").await;

    let (status, body) = f.admin(Method::POST, "/admin/users", Some(new.clone())).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    let other_name = json!({"username": "bobby", "email": "bob@example.com", "password": PASSWORD});
    assert_eq!(f.admin(Method::POST, "/admin/users", Some(other_name)).await.0, 409);
    let bad = json!({"username": "x", "email": "nope", "password": "short", "roles": ["Not A Role"]});
    let (status, body) = f.admin(Method::POST, "/admin/users", Some(bad)).await;
    assert_eq!(status, 400);
    assert_eq!(errors(&body).len(), 4, "every reason at once: {body}");
    let unknown_role =
        json!({"username": "carol", "email": "carol@example.com", "password": PASSWORD, "roles": ["wizard"]});
    assert_eq!(f.admin(Method::POST, "/admin/users", Some(unknown_role)).await.0, 400);
    let extra_field =
        json!({"username": "dave", "email": "dave@example.com", "password": PASSWORD, "admin": true});
    assert_eq!(f.admin(Method::POST, "/admin/users", Some(extra_field)).await.0, 400);

    let (status, got) = f.admin(Method::GET, &format!("/admin/users/{id}"), None).await;
    assert_eq!((status, &got["id"]), (200, &bob["id"]));
    assert_eq!(f.admin(Method::GET, "/admin/users/no-such-id", None).await.0, 404);

    let patch = json!({"email": "robert@example.com", "roles": ["admin", "user"]});
    let (status, body) = f.admin(Method::PATCH, &format!("/admin/users/{id}"), Some(patch)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "robert@example.com");
    assert_eq!(body["roles"], json!(["admin", "user"]));
    let path = format!("/admin/users/{id}");
    let taken = json!({"email": "alice@example.com"});
    assert_eq!(f.admin(Method::PATCH, &path, Some(taken)).await.0, 409);
    let (status, body) = f.admin(Method::PATCH, &path, Some(json!({"email": "x", "status": "asleep"}))).await;
    assert_eq!((status, errors(&body).len()), (400, 2), "{body}");
    assert_eq!(f.admin(Method::PATCH, &path, Some(json!({"roles": ["wizard"]}))).await.0, 400);
    assert_eq!(f.admin(Method::PATCH, &path, Some(json!({}))).await.0, 400);
    assert_eq!(f.admin(Method::PATCH, "/admin/users/nobody", Some(json!({"status": "active"}))).await.0, 404);
    // Nothing of the refused patches was applied.
    let (_, body) = f.admin(Method::GET, &path, None).await;
    assert_eq!(body["email"], "robert@example.com");

    // Admins cannot lock themselves out.
    let me = format!("/admin/users/{}", f.admin_id);
    assert_eq!(f.admin(Method::PATCH, &me, Some(json!({"roles": ["user"]}))).await.0, 400);
    assert_eq!(f.admin(Method::POST, &format!("{me}/disable"), None).await.0, 400);
    assert_eq!(f.admin(Method::DELETE, &me, None).await.0, 400);

    let (status, _) = f.admin(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_eq!(f.admin(Method::GET, &path, None).await.0, 404);
    assert_eq!(f.admin(Method::DELETE, &path, None).await.0, 404);
    assert_eq!(f.app.password_grant(&f.web, "bob", PASSWORD, None).await.status(), 400);
}

#[tokio::test]
async fn disabling_a_user_kills_their_tokens_and_refuses_new_grants() {
    let f = fixture().await;
    let tokens = f.app.login(&f.web, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(f.app.introspect(&f.web, access).await["active"], true);

    let (status, body) = f.admin(Method::POST, &format!("/admin/users/{}/disable", f.user_id), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("disabled")));
    assert_eq!(f.app.introspect(&f.web, access).await, json!({"active": false}));
    assert_eq!(f.app.introspect(&f.web, refresh).await, json!({"active": false}));
    assert_eq!(f.app.get_bearer("/oauth/userinfo", &f.user_token).await.status(), 401);
    let resp = f.app.password_grant(&f.web, "alice", PASSWORD, None).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let resp = f
        .app
        .post_form("/oauth/token", &f.web, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(resp.status(), 400);

    let events = f.audit(&format!("event=admin_user_disable&user_id={}", f.user_id)).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor_id"], f.admin_id.as_str());

    let (status, body) = f.admin(Method::POST, &format!("/admin/users/{}/enable", f.user_id), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("active")));
    f.app.login(&f.web, "alice").await;
    // The old tokens stay dead: their sessions ended with the disable.
    assert_eq!(f.app.introspect(&f.web, access).await["active"], false);

    for action in ["disable", "enable", "unlock", "revoke-sessions"] {
        assert_eq!(
            f.admin(Method::POST, &format!("/admin/users/nobody/{action}"), None).await.0,
            404,
            "{action}"
        );
    }
}

#[tokio::test]
async fn unlock_and_revoke_sessions() {
    let f = fixture().await;
    let path = format!("/admin/users/{}", f.user_id);
    let (status, body) = f.admin(Method::PATCH, &path, Some(json!({"status": "locked"}))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("locked")));
    assert_eq!(f.app.introspect(&f.web, &f.user_token).await["active"], false);
    assert_eq!(f.app.password_grant(&f.web, "alice", PASSWORD, None).await.status(), 400);
    let (status, body) = f.admin(Method::POST, &format!("{path}/unlock"), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("active")));

    let one = f.app.login(&f.web, "alice").await;
    let two = f.app.login(&f.web, "alice").await;
    let (status, body) = f.admin(Method::POST, &format!("{path}/revoke-sessions"), None).await;
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(2)));
    for tokens in [&one, &two] {
        assert_eq!(f.app.introspect(&f.web, tokens["access_token"].as_str().unwrap()).await["active"], false);
        assert_eq!(
            f.app.introspect(&f.web, tokens["refresh_token"].as_str().unwrap()).await["active"],
            false
        );
    }
    let (_, body) = f.admin(Method::POST, &format!("{path}/revoke-sessions"), None).await;
    assert_eq!(body["revoked"], 0);
    // Unlocking a disabled user does not enable them.
    f.admin(Method::POST, &format!("{path}/disable"), None).await;
    let (_, body) = f.admin(Method::POST, &format!("{path}/unlock"), None).await;
    assert_eq!(body["status"], "disabled");
}

#[tokio::test]
async fn the_user_list_searches_filters_and_pages() {
    let f = fixture().await;
    for name in ["user_a", "user_b", "user_c", "user_d", "user_e"] {
        f.app.create_user(name, &[]).await;
    }
    f.admin(Method::POST, &format!("/admin/users/{}/disable", f.user_id), None).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/admin/users?limit=2".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = f.admin(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|u| u["username"].as_str().unwrap().to_owned()));
        assert!(items.iter().all(|u| u.get("password_hash").is_none()));
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["alice", "root", "user_a", "user_b", "user_c", "user_d", "user_e"]);
    assert_eq!(pages, 4);

    let names = |body: &Value| -> Vec<String> {
        body["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().to_owned()).collect()
    };
    let (_, body) = f.admin(Method::GET, "/admin/users?q=USER_", None).await;
    assert_eq!(names(&body).len(), 5);
    let (_, body) = f.admin(Method::GET, "/admin/users?q=alice%40example", None).await;
    assert_eq!(names(&body), ["alice"]);
    // LIKE wildcards are literal: "_" matches only an underscore.
    let (_, body) = f.admin(Method::GET, "/admin/users?q=r_a", None).await;
    assert_eq!(names(&body), ["user_a"]);
    let (_, body) = f.admin(Method::GET, "/admin/users?status=disabled", None).await;
    assert_eq!(names(&body), ["alice"]);
    let (_, body) = f.admin(Method::GET, "/admin/users", None).await;
    assert_eq!(names(&body).len(), 7);
    assert!(body.get("next_cursor").is_none());

    for bad in ["limit=0", "limit=201", "limit=abc", "status=asleep", "cursor=bogus", "cursor=YXVkaXQ6eA"] {
        let (status, body) = f.admin(Method::GET, &format!("/admin/users?{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn admins_manage_clients() {
    let f = fixture().await;
    let new = json!({"name": "Shop", "client_id": "shop", "grants": ["client_credentials"], "scopes": ["api"], "audiences": ["https://api.example.com"]});
    let resp = call(&f.app, Method::POST, "/admin/clients", Some(&f.admin_token), Some(&new)).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["client_id"], "shop");
    assert!(body["client_secret"].as_str().is_some_and(|s| s.len() >= 32));
    assert!(body.get("secret_hash").is_none());

    let (status, body) =
        f.admin(Method::POST, "/admin/clients", Some(json!({"name": "Random", "public": true}))).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("client_secret").is_none());
    assert_eq!(body["grants"], json!(["password", "refresh_token"]));

    assert_eq!(f.admin(Method::POST, "/admin/clients", Some(new)).await.0, 409);
    let bad = json!({"name": "", "client_id": "has space", "grants": ["implicit"], "scopes": ["a\"b"], "audiences": ["two words"]});
    let (status, body) = f.admin(Method::POST, "/admin/clients", Some(bad)).await;
    assert_eq!(status, 400);
    assert!(errors(&body).len() >= 4, "{body}");
    let public_cc = json!({"name": "x", "public": true, "grants": ["client_credentials"]});
    assert_eq!(f.admin(Method::POST, "/admin/clients", Some(public_cc)).await.0, 400);

    let (status, list) = f.admin(Method::GET, "/admin/clients", None).await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|c| c.get("client_secret").is_none() && c.get("secret_hash").is_none()));

    let (status, body) = f.admin(Method::GET, "/admin/clients/shop", None).await;
    assert_eq!((status, body.get("client_secret")), (200, None));
    assert_eq!(f.admin(Method::GET, "/admin/clients/nope", None).await.0, 404);
    assert_eq!(f.admin(Method::GET, "/admin/clients/bad%20id", None).await.0, 404);

    let patch = json!({"name": "Shop 2", "scopes": ["api", "orders"], "require_mfa": true});
    let (status, body) = f.admin(Method::PATCH, "/admin/clients/shop", Some(patch)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["name"].as_str(), body["require_mfa"].as_bool()), (Some("Shop 2"), Some(true)));
    assert_eq!(body["scopes"], json!(["api", "orders"]));
    assert_eq!(f.admin(Method::PATCH, "/admin/clients/shop", Some(json!({"grants": ["nope"]}))).await.0, 400);
    assert_eq!(f.admin(Method::PATCH, "/admin/clients/shop", Some(json!({}))).await.0, 400);
    assert_eq!(f.admin(Method::PATCH, "/admin/clients/nope", Some(json!({"name": "x"}))).await.0, 404);
    // The rules of registration hold for changes: no client_credentials for a public client.
    f.app.create_client("spa", true, &[GrantType::Password], "openid", &[]).await;
    let cc = json!({"grants": ["password", "client_credentials"]});
    assert_eq!(f.admin(Method::PATCH, "/admin/clients/spa", Some(cc)).await.0, 400);

    // Deleting a client ends its sessions: its users' tokens go inactive.
    let api = ["https://api.example"];
    let mobile = f.app.create_client("mobile", false, &[GrantType::Password], "openid", &api).await;
    let resource = f.app.create_client("resource", false, &[GrantType::ClientCredentials], "", &api).await;
    let tokens = f.app.login(&mobile, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(f.app.introspect(&resource, access).await["active"], true);
    assert_eq!(f.admin(Method::DELETE, "/admin/clients/mobile", None).await.0, 204);
    assert_eq!(f.app.introspect(&resource, access).await, json!({"active": false}));
    assert_eq!(f.admin(Method::GET, "/admin/clients/mobile", None).await.0, 404);
    assert_eq!(f.admin(Method::DELETE, "/admin/clients/mobile", None).await.0, 404);

    let events = f.audit("client_id=shop").await;
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["admin_client_update", "admin_client_create"]);
}

#[tokio::test]
async fn rotating_a_secret_invalidates_the_old_one() {
    let f = fixture().await;
    let new =
        json!({"name": "Batch", "client_id": "batch", "grants": ["client_credentials"], "scopes": ["api"]});
    let (_, created) = f.admin(Method::POST, "/admin/clients", Some(new)).await;
    let old = TestClient { id: "batch".into(), secret: created["client_secret"].as_str().map(str::to_owned) };
    let cc = [("grant_type", "client_credentials")];
    assert_eq!(f.app.post_form("/oauth/token", &old, &cc).await.status(), 200);

    let resp =
        call(&f.app, Method::POST, "/admin/clients/batch/rotate-secret", Some(&f.admin_token), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let rotated: Value = resp.json().await.unwrap();
    let new = TestClient { id: "batch".into(), secret: rotated["client_secret"].as_str().map(str::to_owned) };
    assert_ne!(new.secret, old.secret);
    let refused = f.app.post_form("/oauth/token", &old, &cc).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "invalid_client");
    assert_eq!(f.app.post_form("/oauth/token", &new, &cc).await.status(), 200);

    f.app.create_client("spa", true, &[GrantType::Password], "openid", &[]).await;
    assert_eq!(f.admin(Method::POST, "/admin/clients/spa/rotate-secret", None).await.0, 400);
    assert_eq!(f.admin(Method::POST, "/admin/clients/nope/rotate-secret", None).await.0, 404);
    assert_eq!(f.audit("event=admin_client_rotate_secret").await.len(), 1);
}

#[tokio::test]
async fn signing_keys_list_and_rotate() {
    let f = fixture().await;
    let (status, keys) = f.admin(Method::GET, "/admin/keys", None).await;
    assert_eq!(status, 200);
    let keys = keys.as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["state"], "signing");
    let old_kid = keys[0]["kid"].as_str().unwrap().to_owned();

    let (status, body) = f.admin(Method::POST, "/admin/keys/rotate?alg=HS256", None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, key) = f.admin(Method::POST, "/admin/keys/rotate?alg=EdDSA", None).await;
    assert_eq!((status, key["state"].as_str(), key["alg"].as_str()), (200, Some("pending"), Some("EdDSA")));
    assert_ne!(key["kid"].as_str().unwrap(), old_kid);
    assert!(key["signs_from"].as_i64().unwrap() > key["created_at"].as_i64().unwrap());
    let (_, keys) = f.admin(Method::GET, "/admin/keys", None).await;
    let states: Vec<(&str, &str)> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&(old_kid.as_str(), "signing")), "{states:?}");
    // The new key signs once every cached JWKS has it (tests/keys.rs follows it through).
    let fresh = f.app.login(&f.web, "alice").await;
    assert_eq!(common::jwt_part(fresh["access_token"].as_str().unwrap(), 0)["kid"], old_kid.as_str());
    assert!(keys.as_array().unwrap().iter().all(|k| k.get("d").is_none() && k.get("pem").is_none()));
    assert_eq!(f.audit("event=admin_key_rotate").await.len(), 1);
}

#[tokio::test]
async fn the_audit_log_filters_and_pages_newest_first() {
    let f = fixture().await;
    let path = format!("/admin/users/{}", f.user_id);
    f.admin(Method::POST, &format!("{path}/disable"), None).await;
    f.admin(Method::POST, &format!("{path}/enable"), None).await;
    f.admin(Method::POST, &format!("{path}/unlock"), None).await;

    let events = f.audit(&format!("user_id={}", f.user_id)).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["admin_user_unlock", "admin_user_enable", "admin_user_disable", "login"]);
    assert!(events[..3].iter().all(|e| e["actor_id"] == f.admin_id.as_str() && e["outcome"] == "success"));
    assert!(events.iter().all(|e| e["user_id"] == f.user_id.as_str()));

    assert_eq!(f.audit("event=login").await.len(), 2);
    assert_eq!(f.audit("client_id=web&event=login").await.len(), 2);
    assert!(f.audit("client_id=other").await.is_empty());
    let now = f.app.svc.now();
    assert!(f.audit(&format!("until={}", now - 3600)).await.is_empty());
    assert_eq!(f.audit(&format!("since={}&user_id={}", now - 3600, f.user_id)).await.len(), 4);
    assert!(f.audit(&format!("since={}", now + 3600)).await.is_empty());

    // Page through one event at a time: the same records, in the same order.
    let mut paged = Vec::new();
    let mut query = format!("user_id={}&limit=1", f.user_id);
    loop {
        let (status, body) = f.admin(Method::GET, &format!("/admin/audit?{query}"), None).await;
        assert_eq!(status, 200);
        paged.extend(body["items"].as_array().unwrap().iter().map(|e| e["id"].clone()));
        match body["next_cursor"].as_str() {
            Some(c) => query = format!("user_id={}&limit=1&cursor={c}", f.user_id),
            None => break,
        }
    }
    assert_eq!(paged, events.iter().map(|e| e["id"].clone()).collect::<Vec<_>>());

    for bad in ["since=10&until=5", "limit=500", "since=yesterday", "cursor=%21%21"] {
        assert_eq!(f.admin(Method::GET, &format!("/admin/audit?{bad}"), None).await.0, 400, "{bad}");
    }
}

#[tokio::test]
async fn the_audit_log_filters_by_outcome() {
    let f = fixture().await;
    let resp = f.app.password_grant(&f.web, "alice", "not her password", None).await;
    assert_eq!(resp.status(), 400);
    // The failed login is audited after the answer has gone.
    let mut failures = Vec::new();
    for _ in 0..50 {
        failures = f.audit("outcome=failure").await;
        if !failures.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["event"], "login");
    assert_eq!(failures[0]["user_id"], f.user_id.as_str());

    let successes = f.audit("outcome=success").await;
    assert!(!successes.is_empty() && successes.iter().all(|e| e["outcome"] == "success"));
    assert_eq!(f.audit("outcome=failure&user_id=nobody").await.len(), 0);
    let all = f.audit("").await;
    assert_eq!(all.len(), successes.len() + failures.len());

    let (status, body) = f.admin(Method::GET, "/admin/audit?outcome=maybe", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn the_admin_scope_is_only_granted_to_admins() {
    let f = fixture().await;
    let console = f
        .app
        .create_client("console", false, &[GrantType::Password, GrantType::RefreshToken], "openid admin", &[])
        .await;
    let resp = f.app.password_grant(&console, "alice", PASSWORD, Some("openid admin")).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_scope");
    // Without an explicit request, the default scope simply leaves it out.
    let resp = f.app.password_grant(&console, "alice", PASSWORD, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["scope"], "openid");

    let resp = f.app.password_grant(&console, "root", PASSWORD, Some("openid admin")).await;
    assert_eq!(resp.status(), 200);
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["scope"], "admin openid");

    // An admin who loses the role loses the scope at the next refresh.
    f.app.create_user("root2", &["admin"]).await;
    let deputy = f.app.password_grant(&console, "root2", PASSWORD, Some("openid admin")).await;
    let deputy: Value = deputy.json().await.unwrap();
    let (status, list) = f.admin(Method::GET, "/admin/users?q=root2", None).await;
    assert_eq!(status, 200);
    let deputy_id = list["items"][0]["id"].as_str().unwrap().to_owned();
    f.admin(Method::PATCH, &format!("/admin/users/{deputy_id}"), Some(json!({"roles": ["user"]}))).await;
    let refresh = deputy["refresh_token"].as_str().unwrap();
    let resp = f
        .app
        .post_form("/oauth/token", &console, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["scope"], "openid");
}

/// Enrols a TOTP authenticator over the account endpoints, as the user's app would.
async fn enrol_totp(app: &TestApp, token: &str) {
    let resp =
        call(app, Method::POST, "/account/mfa/totp", Some(token), Some(&json!({"password": PASSWORD}))).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let secret = Secret::try_from_base32(body["secret"].as_str().unwrap()).unwrap();
    let totp = totp_rs::Builder::new().with_secret(secret).build().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let code = totp.generate(now).to_string();
    let resp =
        call(app, Method::POST, "/account/mfa/totp/confirm", Some(token), Some(&json!({"code": code}))).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn admins_see_and_reset_a_users_second_factor() {
    let f = fixture().await;
    let app = &f.app;
    enrol_totp(app, &f.user_token).await;
    let resp = app.password_grant(&f.web, "alice", PASSWORD, None).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "mfa_required");

    let alice_path = format!("/admin/users/{}", f.user_id);
    let (status, body) = f.admin(Method::GET, &alice_path, None).await;
    assert_eq!((status, &body["mfa_enabled"]), (200, &json!(true)), "{body}");
    let (_, body) = f.admin(Method::GET, &format!("/admin/users/{}", f.admin_id), None).await;
    assert_eq!(body["mfa_enabled"], false);
    // The list shows it too, for users on either side of the page boundary.
    let bob = app.create_user("bob", &[]).await;
    let (_, page) = f.admin(Method::GET, "/admin/users?limit=2", None).await;
    let shown: Vec<(&str, bool)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].as_str().unwrap(), u["mfa_enabled"].as_bool().unwrap()))
        .collect();
    assert_eq!(shown, [("alice", true), ("bob", false)]);
    let next = page["next_cursor"].as_str().unwrap();
    let (_, page) = f.admin(Method::GET, &format!("/admin/users?limit=2&cursor={next}"), None).await;
    assert_eq!(page["items"][0]["username"], "root");
    assert_eq!(page["items"][0]["mfa_enabled"], false);

    let reset = format!("{alice_path}/mfa/reset");
    let (status, body) = f.admin(Method::POST, &reset, None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, body) = f.admin(Method::GET, &alice_path, None).await;
    assert_eq!(body["mfa_enabled"], false);
    let resp = app.password_grant(&f.web, "alice", PASSWORD, None).await;
    assert_eq!(resp.status(), 200, "the password alone logs in again");

    // Idempotent for a user without a second factor; unknown users are 404.
    assert_eq!(f.admin(Method::POST, &format!("/admin/users/{}/mfa/reset", bob.id), None).await.0, 204);
    let (status, body) = f.admin(Method::POST, "/admin/users/nobody/mfa/reset", None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

    let records = f.audit("event=mfa_reset").await;
    let seen: Vec<(&str, &str, bool)> = records
        .iter()
        .map(|r| {
            let detail = r["detail"].as_str().unwrap();
            (r["user_id"].as_str().unwrap(), r["actor_id"].as_str().unwrap(), detail.contains("removed=true"))
        })
        .collect();
    assert_eq!(
        seen,
        [(bob.id.as_str(), f.admin_id.as_str(), false), (f.user_id.as_str(), f.admin_id.as_str(), true)],
        "newest first"
    );
}

#[tokio::test]
async fn admins_set_a_password_without_mail() {
    let f = fixture().await;
    let path = format!("/admin/users/{}/password", f.user_id);
    let (status, body) = f.admin(Method::POST, &path, Some(json!({"password": "alice"}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(!body["errors"].as_array().unwrap().is_empty());
    let (status, body) =
        f.admin(Method::POST, &path, Some(json!({"password": "a long and new passphrase"}))).await;
    assert_eq!(status, 200, "{body}");
    // Every session of the user ended; the new password logs in, the old one does not.
    assert_eq!(f.app.get_bearer("/account/me", &f.user_token).await.status(), 401);
    assert_eq!(f.app.password_grant(&f.web, "alice", PASSWORD, None).await.status(), 400);
    let resp = f.app.password_grant(&f.web, "alice", "a long and new passphrase", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(f.audit("event=admin_user_set_password").await.len(), 1);
}
