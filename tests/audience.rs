//! The audience model: a token is worth something only to the APIs it names. latchkey's own
//! APIs (account, admin) are in `aud` only when the scope asks for them; introspection shows a
//! token only to its client or to a resource server it names; a client's deletion or new
//! secret ends its client-credentials tokens.

mod common;

use std::time::Duration;

use common::{TestApp, TestClient, jwt_part, spawn_app};
use latchkey::model::GrantType;
use serde_json::{Value, json};

const API: &str = "https://api.example";

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// A client for a third-party API: its tokens name that API, and it may ask for any scope.
async fn api_app_client(app: &TestApp) -> TestClient {
    app.create_client(
        "api-app",
        false,
        &[GrantType::Password, GrantType::RefreshToken],
        "openid profile api account admin",
        &[API],
    )
    .await
}

async fn token_with_scope(app: &TestApp, client: &TestClient, user: &str, scope: &str) -> String {
    let resp = app.password_grant(client, user, common::PASSWORD, Some(scope)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let body: Value = resp.json().await.unwrap();
    str_of(&body, "access_token").to_owned()
}

fn insufficient_scope(resp: &reqwest::Response, scope: &str) {
    assert_eq!(resp.status(), 403);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    assert!(challenge.contains(&format!(r#"scope="{scope}""#)), "{challenge}");
}

#[tokio::test]
async fn an_admins_token_for_another_api_is_worth_nothing_at_latchkeys_own_apis() {
    let app = spawn_app().await;
    let client = api_app_client(&app).await;
    app.create_user("root", &["admin", "user"]).await;
    let token = token_with_scope(&app, &client, "root", "openid api").await;
    assert_eq!(jwt_part(&token, 1)["aud"], json!([API]), "the issuer is not an audience of this token");

    let list = app.get_bearer("/admin/users", &token).await;
    insufficient_scope(&list, "admin");
    let create = app
        .http
        .post(app.url("/admin/users"))
        .bearer_auth(&token)
        .json(&json!({"username": "mallory", "email": "m@example.com", "password": common::PASSWORD, "roles": ["admin"]}))
        .send()
        .await
        .unwrap();
    insufficient_scope(&create, "admin");
    let me = app.get_bearer("/account/me", &token).await;
    insufficient_scope(&me, "account");
    let totp = app
        .http
        .post(app.url("/account/mfa/totp"))
        .bearer_auth(&token)
        .json(&json!({"password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    insufficient_scope(&totp, "account");

    // The same user, asking for latchkey's own scopes, gets the issuer as an audience.
    let own = token_with_scope(&app, &client, "root", "account admin").await;
    let aud = jwt_part(&own, 1)["aud"].clone();
    assert!(aud.as_array().unwrap().iter().any(|a| a == app.svc.issuer()), "{aud}");
    assert_eq!(app.get_bearer("/admin/users", &own).await.status(), 200);
    assert_eq!(app.get_bearer("/account/me", &own).await.status(), 200);
    // `account` alone opens the account API, not the admin API.
    let account_only = token_with_scope(&app, &client, "root", "account").await;
    insufficient_scope(&app.get_bearer("/admin/users", &account_only).await, "admin");
}

#[tokio::test]
async fn user_tokens_name_the_clients_audiences_or_its_id() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let with_audience = api_app_client(&app).await;
    let plain = app
        .create_client(
            "plain",
            false,
            &[GrantType::Password, GrantType::ClientCredentials],
            "openid api",
            &[],
        )
        .await;
    let t = token_with_scope(&app, &with_audience, "alice", "openid").await;
    assert_eq!(jwt_part(&t, 1)["aud"], json!([API]));
    let t = token_with_scope(&app, &plain, "alice", "openid api").await;
    assert_eq!(jwt_part(&t, 1)["aud"], json!(["plain"]));
    let resp = app.post_form("/oauth/token", &plain, &[("grant_type", "client_credentials")]).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(jwt_part(str_of(&body, "access_token"), 1)["aud"], json!(["plain"]));
    // Only users with role admin are granted `admin`.
    let resp = app.password_grant(&with_audience, "alice", common::PASSWORD, Some("admin")).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_scope");
}

#[tokio::test]
async fn userinfo_needs_openid_and_a_user() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app
        .create_client("svc", false, &[GrantType::Password, GrantType::ClientCredentials], "openid api", &[])
        .await;
    let no_openid = token_with_scope(&app, &client, "alice", "api").await;
    insufficient_scope(&app.get_bearer("/oauth/userinfo", &no_openid).await, "openid");
    let openid = token_with_scope(&app, &client, "alice", "openid").await;
    assert_eq!(app.get_bearer("/oauth/userinfo", &openid).await.status(), 200);

    let resp = app.post_form("/oauth/token", &client, &[("grant_type", "client_credentials")]).await;
    let cc = str_of(&resp.json::<Value>().await.unwrap(), "access_token").to_owned();
    let resp = app.get_bearer("/oauth/userinfo", &cc).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains(r#"error="invalid_token""#));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert!(str_of(&body, "error_description").contains("client"), "{body}");
}

#[tokio::test]
async fn introspection_shows_a_token_only_to_its_client_or_the_apis_it_names() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let web = app.create_client("web", false, &[GrantType::Password], "openid api account", &[]).await;
    let other = app.create_client("other", false, &[GrantType::ClientCredentials], "api", &[]).await;
    let resource = app.create_client("resource", false, &[GrantType::ClientCredentials], "", &[API]).await;
    let issuer_posing = app
        .create_client("issuer-posing", false, &[GrantType::ClientCredentials], "", &[app.svc.issuer()])
        .await;
    let app_for_api = api_app_client(&app).await;

    let own = token_with_scope(&app, &web, "alice", "openid account").await;
    assert_eq!(app.introspect(&web, &own).await["active"], true, "the token's own client sees it");
    assert_eq!(app.introspect(&other, &own).await, json!({"active": false}), "a client without audiences");
    assert_eq!(app.introspect(&resource, &own).await, json!({"active": false}), "not named in aud");
    assert_eq!(
        app.introspect(&issuer_posing, &own).await,
        json!({"active": false}),
        "the issuer's audience never makes a token visible"
    );

    let for_api = token_with_scope(&app, &app_for_api, "alice", "api").await;
    assert_eq!(app.introspect(&resource, &for_api).await["active"], true, "a resource server it names");
    assert_eq!(app.introspect(&other, &for_api).await, json!({"active": false}));
}

#[tokio::test]
async fn deleting_a_client_or_rotating_its_secret_ends_its_client_tokens() {
    let app = spawn_app().await;
    let resource = app.create_client("resource", false, &[GrantType::ClientCredentials], "", &[API]).await;
    for action in ["rotate", "delete"] {
        let id = format!("batch-{action}");
        let batch = app.create_client(&id, false, &[GrantType::ClientCredentials], "api", &[API]).await;
        let resp = app.post_form("/oauth/token", &batch, &[("grant_type", "client_credentials")]).await;
        let token = str_of(&resp.json::<Value>().await.unwrap(), "access_token").to_owned();
        assert_eq!(app.introspect(&resource, &token).await["active"], true);
        // A token minted in the same second as the change survives it: step past that second.
        app.svc.clock().advance(Duration::from_secs(1));
        let admin_path = match action {
            "rotate" => {
                latchkey::admin::clients::rotate_secret(&app.svc, &latchkey::admin::Actor::cli(), &id)
                    .await
                    .map(|_| ())
            }
            _ => latchkey::admin::clients::delete(&app.svc, &latchkey::admin::Actor::cli(), &id).await,
        };
        admin_path.unwrap();
        assert_eq!(app.introspect(&resource, &token).await, json!({"active": false}), "after {action}");
    }
}
