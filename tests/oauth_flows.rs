//! The grants, introspection and revocation, driven by the `oauth2` crate as a real client
//! against the real server.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{PASSWORD, TestApp, TestClient, jwt_part, spawn_app};
use latchkey::model::GrantType;
use oauth2::basic::{BasicClient, BasicTokenType};
use oauth2::{
    AccessToken, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse,
    IntrospectionUrl, RefreshToken, ResourceOwnerPassword, ResourceOwnerUsername, RevocationUrl, Scope,
    StandardRevocableToken, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use serde_json::{Value, json};

type Client = BasicClient<EndpointNotSet, EndpointNotSet, EndpointSet, EndpointSet, EndpointSet>;

fn oauth_client(app: &TestApp, client: &TestClient) -> Client {
    let mut c = BasicClient::new(ClientId::new(client.id.clone()))
        .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap())
        .set_introspection_url(IntrospectionUrl::new(app.url("/oauth/introspect")).unwrap())
        // The crate refuses a non-https revocation URL; `plain_http` below maps it back.
        .set_revocation_url(
            RevocationUrl::new(app.url("/oauth/revoke").replace("http://", "https://")).unwrap(),
        );
    if let Some(secret) = &client.secret {
        c = c.set_client_secret(ClientSecret::new(secret.clone()));
    }
    c
}

/// The oauth2 crate's HTTP hook: sends its request over plain HTTP to the test server.
async fn plain_http(request: HttpRequest) -> Result<HttpResponse, reqwest::Error> {
    let http = reqwest::Client::new();
    let url = request.uri().to_string().replace("https://", "http://");
    let mut req = http.request(request.method().clone(), url).body(request.body().clone());
    for (name, value) in request.headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await?;
    let mut builder = oauth2::http::Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder.body(resp.bytes().await?.to_vec()).unwrap())
}

async fn password_login(
    app: &TestApp,
    client: &TestClient,
    scope: &[&str],
) -> oauth2::basic::BasicTokenResponse {
    let oc = oauth_client(app, client);
    let (username, password) =
        (ResourceOwnerUsername::new("alice".into()), ResourceOwnerPassword::new(PASSWORD.into()));
    let mut req = oc.exchange_password(&username, &password);
    for s in scope {
        req = req.add_scope(Scope::new((*s).into()));
    }
    req.request_async(&plain_http).await.expect("password grant")
}

#[tokio::test]
async fn password_grant_issues_rfc9068_tokens() {
    let app = spawn_app().await;
    let user = app.create_user("alice", &["user"]).await;
    let client = app.web_client().await;

    let token = password_login(&app, &client, &["openid", "profile"]).await;
    assert_eq!(*token.token_type(), BasicTokenType::Bearer);
    assert_eq!(token.expires_in().unwrap().as_secs(), 900);
    assert!(token.refresh_token().is_some());
    let scopes: Vec<String> = token.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    assert_eq!(scopes, ["openid", "profile"]);

    let access = token.access_token().secret();
    let header = jwt_part(access, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);

    let claims = jwt_part(access, 1);
    assert_eq!(claims["iss"], app.base);
    assert_eq!(claims["sub"], user.id);
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["scope"], "openid profile");
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["roles"], json!(["user"]));
    // Not latchkey's own scopes, so not latchkey's audience: the client's id.
    assert_eq!(claims["aud"], json!(["web"]));
    for name in ["exp", "iat", "auth_time"] {
        assert!(claims[name].is_i64(), "{name}");
    }
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    assert!(claims["jti"].is_string());
}

#[tokio::test]
async fn token_response_headers_and_id_token() {
    let app = spawn_app().await;
    let user = app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let resp = app.password_grant(&client, "alice", PASSWORD, Some("openid email")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    let body: Value = resp.json().await.unwrap();
    let id_token = body["id_token"].as_str().expect("openid scope returns an id_token");
    assert_eq!(jwt_part(id_token, 0)["typ"], "JWT");
    let id = jwt_part(id_token, 1);
    assert_eq!(id["aud"], "web");
    assert_eq!(id["sub"], user.id);
    assert_eq!(id["email"], "alice@example.com");

    // Without openid, no ID token.
    let body = app.login(&client, "alice").await;
    assert!(body.get("id_token").is_some(), "default scope includes openid");
    let resp = app.password_grant(&client, "alice", PASSWORD, Some("api")).await;
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("id_token").is_none());

    // An ID token is not an access token (typ differs).
    let resp = app.get_bearer("/oauth/userinfo", id_token).await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let oc = oauth_client(&app, &client);
    let first = password_login(&app, &client, &["openid"]).await;
    let r1 = first.refresh_token().unwrap().clone();

    let second = oc.exchange_refresh_token(&r1).request_async(&plain_http).await.expect("refresh");
    let r2 = second.refresh_token().unwrap().clone();
    assert_ne!(r1.secret(), r2.secret(), "refresh tokens rotate");
    assert_eq!(
        jwt_part(second.access_token().secret(), 1)["auth_time"],
        jwt_part(first.access_token().secret(), 1)["auth_time"]
    );

    // Replaying the spent token fails and ends the whole family.
    let replay = oc.exchange_refresh_token(&r1).request_async(&plain_http).await;
    let err = format!("{:?}", replay.expect_err("reuse must fail"));
    assert!(err.contains("invalid_grant"), "{err}");
    let after = oc.exchange_refresh_token(&r2).request_async(&plain_http).await;
    assert!(after.is_err(), "the successor token died with its family");
    let intro = app.introspect(&client, second.access_token().secret()).await;
    assert_eq!(intro, json!({"active": false}), "access tokens of the family go inactive");

    let events: Vec<String> =
        sqlx::query_scalar("SELECT event FROM audit_events WHERE event = 'refresh_token_reuse'")
            .fetch_all(app.svc.db().pool())
            .await
            .unwrap();
    assert_eq!(events.len(), 1, "reuse is audited");
    let refreshes = app.refreshes_audited().await;
    assert_eq!(refreshes, 1, "the one successful refresh is audited");
}

/// The session a token response belongs to: its access token's `sid`.
fn session_of(tokens: &Value) -> String {
    jwt_part(tokens["access_token"].as_str().unwrap(), 1)["sid"].as_str().unwrap().to_owned()
}

async fn refresh_grant(app: &TestApp, client: &TestClient, token: &str) -> (u16, Value) {
    let resp = app
        .post_form("/oauth/token", client, &[("grant_type", "refresh_token"), ("refresh_token", token)])
        .await;
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn a_refresh_token_from_before_generations_works_once_then_counts_as_reuse() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let login = app.login(&client, "alice").await;
    let sid = session_of(&login);
    // The session as an older latchkey left it: its tokens in `refresh_tokens`, one spent.
    let [spent, legacy] =
        app.make_legacy_session(&sid, &[Some(app.svc.now()), None]).await.try_into().unwrap();
    let pool = app.svc.db().pool();
    let intro = app.introspect(&client, &legacy).await;
    assert_eq!(intro["active"], true, "{intro}");
    assert_eq!(intro["scope"], "openid profile");
    assert_eq!(app.introspect(&client, &spent).await, json!({"active": false}));

    let (status, body) = refresh_grant(&app, &client, &legacy).await;
    assert_eq!(status, 200, "{body}");
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(body["scope"], "openid profile", "the legacy token's scope carries over");
    assert_eq!(app.introspect(&client, &legacy).await, json!({"active": false}), "spent by the rotation");
    let (status, body) = refresh_grant(&app, &client, &next).await;
    assert_eq!(status, 200, "{body}");
    let last = body["refresh_token"].as_str().unwrap().to_owned();

    // The legacy token again: reuse, which ends the session.
    let (status, body) = refresh_grant(&app, &client, &legacy).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(refresh_grant(&app, &client, &last).await.0, 400, "the session ended with the reuse");

    // A token spent before the upgrade is reuse too.
    let other = app.login(&client, "alice").await["refresh_token"].as_str().unwrap().to_owned();
    let sid = session_of(&app.login(&client, "alice").await);
    sqlx::query("UPDATE refresh_tokens SET session_id = $1 WHERE hash = $2")
        .bind(&sid)
        .bind(latchkey::crypto::secrets::sha256_hex(&spent))
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(refresh_grant(&app, &client, &spent).await.0, 400);
    let revoked: Option<i64> = sqlx::query_scalar("SELECT revoked_at FROM sessions WHERE id = $1")
        .bind(&sid)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(revoked.is_some(), "a spent legacy token ends its session");
    assert_eq!(refresh_grant(&app, &client, &other).await.0, 200, "other sessions go on");
}

#[tokio::test]
async fn forged_refresh_tokens_are_refused_and_end_no_session() {
    use latchkey::crypto::refresh::{Named, RefreshTokens};
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let login = app.login(&client, "alice").await;
    let session_id: uuid::Uuid = session_of(&login).parse().unwrap();
    let first = login["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = refresh_grant(&app, &client, &first).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = refresh_grant(&app, &client, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let current = body["refresh_token"].as_str().unwrap().to_owned();

    // The control: the server's own key naming generation 1 of a session at generation 3 is
    // a real reuse. Checked on a second session, so this one goes on.
    let ours = app.svc.refresh_tokens();
    let other = app.login(&client, "alice").await;
    let other_id: uuid::Uuid = session_of(&other).parse().unwrap();
    let (status, body) = refresh_grant(&app, &client, other["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let (status, _) = refresh_grant(&app, &client, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let (status, _) =
        refresh_grant(&app, &client, &ours.mint(Named { session_id: other_id, generation: 1 })).await;
    assert_eq!(status, 400);
    let revoked: Option<i64> = sqlx::query_scalar("SELECT revoked_at FROM sessions WHERE id = $1")
        .bind(other_id.to_string())
        .fetch_one(app.svc.db().pool())
        .await
        .unwrap();
    assert!(revoked.is_some(), "the control: an older generation under our key ends its session");

    let mut flipped = URL_SAFE_NO_PAD.decode(&current).unwrap();
    *flipped.last_mut().unwrap() ^= 1;
    let forgeries = [
        // Another key naming an older generation: it would end the session if believed.
        RefreshTokens::new(&[9u8; 32]).mint(Named { session_id, generation: 1 }),
        // The MAC changed.
        URL_SAFE_NO_PAD.encode(&flipped),
        // Our key, the current generation, other random bits: only the key's holder could
        // make it, and its hash is not the session's.
        ours.mint(Named { session_id, generation: 3 }),
        // Our key, a generation not reached yet.
        ours.mint(Named { session_id, generation: 9 }),
        // The right shape for a token from before generations, stored nowhere.
        latchkey::crypto::secrets::random_token(),
    ];
    for forged in &forgeries {
        let (status, body) = refresh_grant(&app, &client, forged).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{forged}");
        assert_eq!(app.introspect(&client, forged).await, json!({"active": false}), "{forged}");
    }
    let (status, body) = refresh_grant(&app, &client, &current).await;
    assert_eq!(status, 200, "no forgery ended the session: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_refreshes_give_exactly_one_success() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let refresh = app.login(&client, "alice").await["refresh_token"].as_str().unwrap().to_owned();

    let attempts = (0..20).map(|_| {
        let (app, client, refresh) = (&app, &client, refresh.clone());
        async move {
            app.post_form(
                "/oauth/token",
                client,
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await
            .status()
            .as_u16()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 400).count(), 19, "{statuses:?}");
}

#[tokio::test]
async fn refresh_can_only_narrow_scope_and_is_bound_to_its_client() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let other = app
        .create_client("other", false, &[GrantType::Password, GrantType::RefreshToken], "openid api", &[])
        .await;
    let refresh = app.login(&client, "alice").await["refresh_token"].as_str().unwrap().to_owned();

    let form = |scope: &'static str| {
        vec![("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("scope", scope)]
    };
    let resp = app.post_form("/oauth/token", &other, &form("openid")).await;
    assert_eq!(resp.status(), 400, "another client cannot use it");
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");

    let resp = app.post_form("/oauth/token", &client, &form("openid admin")).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_scope");

    let resp = app.post_form("/oauth/token", &client, &form("openid")).await;
    assert_eq!(resp.status(), 200, "narrowing is fine");
    assert_eq!(resp.json::<Value>().await.unwrap()["scope"], "openid");
}

#[tokio::test]
async fn introspection_with_the_oauth2_crate() {
    let app = spawn_app().await;
    let user = app.create_user("alice", &[]).await;
    // The app's tokens name the API; the API's resource server is registered for it.
    let api = ["https://api.example"];
    let grants = [GrantType::Password, GrantType::RefreshToken];
    let client = app.create_client("web", false, &grants, "openid profile email api", &api).await;
    let rs = app.create_client("api-server", false, &[], "", &api).await;
    let token = password_login(&app, &client, &["openid", "api"]).await;

    let intro = oauth_client(&app, &rs)
        .introspect(token.access_token())
        .request_async(&plain_http)
        .await
        .expect("introspection");
    assert!(intro.active());
    assert_eq!(intro.sub(), Some(user.id.as_str()));
    assert_eq!(intro.client_id().map(|c| c.to_string()), Some("web".to_owned()));
    let scopes: Vec<String> = intro.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    assert_eq!(scopes, ["api", "openid"]);

    // The raw body also carries amr and auth_time.
    let raw = app.introspect(&rs, token.access_token().secret()).await;
    assert_eq!(raw["amr"], json!(["pwd"]));
    assert_eq!(raw["token_type"], "Bearer");
    assert!(raw["auth_time"].is_i64());

    // Refresh tokens introspect for their own client only.
    let refresh = token.refresh_token().unwrap().secret();
    assert_eq!(app.introspect(&client, refresh).await["token_type"], "refresh_token");
    assert_eq!(app.introspect(&rs, refresh).await, json!({"active": false}));

    for junk in ["", "garbage", "a.b.c", &"x".repeat(5000), "'; DROP TABLE users; --"] {
        assert_eq!(app.introspect(&rs, junk).await, json!({"active": false}), "{junk:?}");
    }
}

#[tokio::test]
async fn introspection_requires_client_authentication() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let public = app.create_client("spa", true, &[GrantType::Password], "openid", &[]).await;
    let token = app.login(&client, "alice").await["access_token"].as_str().unwrap().to_owned();

    let resp =
        app.http.post(app.url("/oauth/introspect")).form(&[("token", token.as_str())]).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let resp = app.post_form("/oauth/introspect", &public, &[("token", &token)]).await;
    assert_eq!(resp.status(), 401, "public clients cannot introspect");
    let wrong = TestClient { id: "web".into(), secret: Some("wrong".into()) };
    let resp = app.post_form("/oauth/introspect", &wrong, &[("token", &token)]).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client");
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_the_session() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let oc = oauth_client(&app, &client);
    let token = password_login(&app, &client, &["openid"]).await;
    let refresh = token.refresh_token().unwrap().clone();

    oc.revoke_token(StandardRevocableToken::RefreshToken(refresh.clone()))
        .unwrap()
        .request_async(&plain_http)
        .await
        .expect("revocation");
    assert_eq!(app.introspect(&client, token.access_token().secret()).await, json!({"active": false}));
    assert!(oc.exchange_refresh_token(&refresh).request_async(&plain_http).await.is_err());
    let resp = app.get_bearer("/oauth/userinfo", token.access_token().secret()).await;
    assert_eq!(resp.status(), 401);

    // Unknown tokens: 200 all the same.
    oc.revoke_token(StandardRevocableToken::RefreshToken(RefreshToken::new("nope".into())))
        .unwrap()
        .request_async(&plain_http)
        .await
        .expect("unknown token is a success");
}

#[tokio::test]
async fn revoking_an_access_token_and_other_clients_tokens() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let other = app.create_client("other", false, &[GrantType::Password], "openid", &[]).await;
    let body = app.login(&client, "alice").await;
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();

    // Another client's revocation is a silent no-op.
    for token in [access, refresh] {
        let resp = app.post_form("/oauth/revoke", &other, &[("token", token)]).await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(app.introspect(&client, access).await["active"], true);

    let resp = app
        .post_form("/oauth/revoke", &client, &[("token", access), ("token_type_hint", "access_token")])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.introspect(&client, access).await, json!({"active": false}));
    // The session itself lives on: the refresh token still works.
    let resp = app
        .post_form("/oauth/token", &client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn client_credentials_grant() {
    let app = spawn_app().await;
    let svc_client = app
        .create_client("batch", false, &[GrantType::ClientCredentials], "api", &["https://api.example"])
        .await;
    let oc = oauth_client(&app, &svc_client);
    let token =
        oc.exchange_client_credentials().request_async(&plain_http).await.expect("client credentials");
    assert!(token.refresh_token().is_none());
    let claims = jwt_part(token.access_token().secret(), 1);
    assert_eq!(claims["sub"], "batch");
    assert_eq!(claims["aud"], json!(["https://api.example"]));
    assert!(claims.get("amr").is_none() && claims.get("roles").is_none());

    let rs = app.create_client("api-server", false, &[], "", &["https://api.example"]).await;
    let intro =
        oauth_client(&app, &rs).introspect(token.access_token()).request_async(&plain_http).await.unwrap();
    assert!(intro.active(), "a resource server named in aud may introspect");
    let stranger = app.create_client("stranger", false, &[], "", &["https://other.example"]).await;
    let intro = oauth_client(&app, &stranger)
        .introspect(token.access_token())
        .request_async(&plain_http)
        .await
        .unwrap();
    assert!(!intro.active(), "a client outside aud sees nothing");

    // Client tokens are not user tokens.
    assert_eq!(app.get_bearer("/oauth/userinfo", token.access_token().secret()).await.status(), 401);

    // Public clients cannot use it; clients without the grant get unauthorized_client.
    let public = app.create_client("spa", true, &[GrantType::Password], "openid", &[]).await;
    let resp = app.post_form("/oauth/token", &public, &[("grant_type", "client_credentials")]).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unauthorized_client");
}

#[tokio::test]
async fn public_clients_and_client_secret_post() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let public =
        app.create_client("spa", true, &[GrantType::Password, GrantType::RefreshToken], "openid", &[]).await;
    let body = app.login(&public, "alice").await;
    assert!(body["refresh_token"].is_string());

    let web = app.web_client().await;
    let secret = web.secret.clone().unwrap();
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_id", "web"),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "client_secret_post works");

    // A confidential client without its secret is not a public client.
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_id", "web"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Two authentication methods at once are refused.
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("web", Some(&secret))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc6749() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("grant_type", "urn:ietf:params:oauth:grant-type:device_code")], 400, "unsupported_grant_type"),
        (vec![("grant_type", "password"), ("username", "alice")], 400, "invalid_request"),
        (
            vec![("grant_type", "password"), ("username", "alice"), ("password", "wrong password")],
            400,
            "invalid_grant",
        ),
        (
            vec![("grant_type", "password"), ("username", "nobody"), ("password", "wrong password")],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("scope", "admin"),
            ],
            400,
            "invalid_scope",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("scope", "a\"b"),
            ],
            400,
            "invalid_scope",
        ),
        (vec![("grant_type", "client_credentials")], 400, "unauthorized_client"),
        (vec![("grant_type", "refresh_token"), ("refresh_token", "bogus")], 400, "invalid_grant"),
        (
            vec![
                ("grant_type", "password"),
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ],
            400,
            "invalid_request",
        ),
    ];
    for (form, status, error) in cases {
        let resp = app.post_form("/oauth/token", &client, &form).await;
        assert_eq!(resp.status(), status, "{form:?}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], error, "{form:?}: {body}");
        assert!(body["error_description"].is_string());
    }

    // Unknown user and wrong password are indistinguishable.
    let a: Value = app.password_grant(&client, "alice", "wrong password", None).await.json().await.unwrap();
    let b: Value = app.password_grant(&client, "nobody", "wrong password", None).await.json().await.unwrap();
    assert_eq!(a, b);

    // Not a form: invalid_request, never a 500.
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("web", client.secret.as_ref())
        .json(&json!({"grant_type": "password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn userinfo_returns_claims_for_granted_scopes() {
    let app = spawn_app().await;
    let user = app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let token = password_login(&app, &client, &["openid", "email"]).await;
    let access = token.access_token().secret();
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let resp =
            app.http.request(method, app.url("/oauth/userinfo")).bearer_auth(access).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, json!({"sub": user.id, "email": "alice@example.com", "email_verified": true}));
    }
    let no_openid = password_login(&app, &client, &["api"]).await;
    let resp = app.get_bearer("/oauth/userinfo", no_openid.access_token().secret()).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));

    let resp = app.http.get(app.url("/oauth/userinfo")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let unused = AccessToken::new("x".into());
    let resp = app.get_bearer("/oauth/userinfo", unused.secret()).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_token");
}

#[tokio::test]
async fn refresh_tokens_have_idle_and_absolute_lifetimes() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let refresh = |token: String| {
        let (app, client) = (&app, &client);
        async move {
            app.post_form(
                "/oauth/token",
                client,
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };

    // Idle: this token's own expiry has passed.
    let idle = app.login(&client, "alice").await["refresh_token"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE sessions SET refresh_expires_at = 1 WHERE refresh_hash = $1")
        .bind(latchkey::crypto::secrets::sha256_hex(&idle))
        .execute(app.svc.db().pool())
        .await
        .unwrap();
    let resp = refresh(idle).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // Absolute: the session is over, however fresh the token.
    let fresh = app.login(&client, "alice").await["refresh_token"].as_str().unwrap().to_owned();
    let resp = refresh(fresh).await;
    assert_eq!(resp.status(), 200, "the control works");
    let next = resp.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE sessions SET expires_at = 1 WHERE refresh_hash = $1")
        .bind(latchkey::crypto::secrets::sha256_hex(&next))
        .execute(app.svc.db().pool())
        .await
        .unwrap();
    assert_eq!(refresh(next.clone()).await.status(), 400);

    // Rotation caps each new token at the session's end.
    let row: (i64, i64) =
        sqlx::query_as("SELECT refresh_expires_at, expires_at FROM sessions WHERE refresh_hash = $1")
            .bind(latchkey::crypto::secrets::sha256_hex(&next))
            .fetch_one(app.svc.db().pool())
            .await
            .unwrap();
    assert!(row.0 > row.1, "expired session, token itself still within its idle time: {row:?}");
}

#[tokio::test]
async fn stored_secrets_are_hashes() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.web_client().await;
    let body = app.login(&client, "alice").await;
    let refresh = body["refresh_token"].as_str().unwrap();
    let secret = client.secret.as_deref().unwrap();
    let pool = app.svc.db().pool();
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT refresh_hash FROM sessions").fetch_all(pool).await.unwrap();
    assert_eq!(hashes, [latchkey::crypto::secrets::sha256_hex(refresh)]);
    let stored: Option<String> =
        sqlx::query_scalar("SELECT secret_hash FROM clients WHERE id = 'web'").fetch_one(pool).await.unwrap();
    assert_eq!(stored.as_deref(), Some(latchkey::crypto::secrets::sha256_hex(secret).as_str()));
    let pw: String = sqlx::query_scalar("SELECT password_hash FROM users").fetch_one(pool).await.unwrap();
    assert!(pw.starts_with("$argon2id$") && !pw.contains(PASSWORD));
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT COALESCE(detail, '') FROM audit_events").fetch_all(pool).await.unwrap();
    for detail in audit {
        assert!(
            !detail.contains(refresh) && !detail.contains(secret) && !detail.contains(PASSWORD),
            "{detail}"
        );
    }
}
