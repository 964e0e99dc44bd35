//! Browser sign-in: the authorization code flow with PKCE through the hosted pages, driven
//! like a browser (reqwest with a cookie store, redirects not followed) and redeemed with
//! the `oauth2` crate's authorization-code client.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{PASSWORD, TestApp, jwt_part, spawn_app, spawn_app_with};
use latchkey::model::{ClientId, GrantType, Password, RequestMeta, Scope};
use latchkey::oauth::client::{self, NewClient};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1/callback";

/// The token response with the OIDC member the basic client would drop.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenField {
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type Tokens = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    Tokens,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Registers a public authorization-code client (the single-page / native app case).
async fn register(app: &TestApp, id: &str, scopes: &str, first_party: bool) {
    let new = NewClient {
        name: format!("App {id}"),
        id: Some(ClientId::parse(id).unwrap()),
        public: true,
        grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: Scope::parse(scopes).unwrap(),
        audiences: vec![],
        require_mfa: false,
        redirect_uris: vec![REDIRECT.into(), "https://app.example/cb".into()],
        post_logout_redirect_uris: vec!["https://app.example/bye".into()],
        first_party,
    };
    client::register(&app.svc, new).await.unwrap();
}

fn oauth_client(app: &TestApp, id: &str, redirect: &str) -> OAuthClient {
    oauth2::Client::new(oauth2::ClientId::new(id.into()))
        .set_auth_uri(AuthUrl::new(app.url("/oauth/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap())
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// An authorization request in progress: what the app keeps between redirect and callback.
struct Started {
    verifier: PkceCodeVerifier,
    state: String,
    nonce: String,
    response: reqwest::Response,
}

async fn start(browser: &reqwest::Client, oc: &OAuthClient, scope: &str, extra: &[(&str, &str)]) -> Started {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let nonce = CsrfToken::new_random().secret().clone();
    let mut req = oc
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scope.split(' ').map(|s| oauth2::Scope::new(s.into())))
        .set_pkce_challenge(challenge)
        .add_extra_param("nonce", nonce.clone());
    for (k, v) in extra {
        req = req.add_extra_param(*k, *v);
    }
    let (url, state) = req.url();
    let response = browser.get(url).send().await.unwrap();
    Started { verifier, state: state.secret().clone(), nonce, response }
}

/// The value of the hidden (or any) input `name` in a page.
fn input(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\"")).unwrap_or_else(|| panic!("no input {name} in {html}"));
    let rest = &html[at..];
    let value = &rest[rest.find("value=\"").unwrap() + 7..];
    value[..value.find('"').unwrap()].to_owned()
}

async fn page(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 200, "expected a page");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    resp.text().await.unwrap()
}

async fn post(
    browser: &reqwest::Client,
    app: &TestApp,
    path: &str,
    html: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("tx".to_owned(), input(html, "tx")), ("csrf".to_owned(), input(html, "csrf"))];
    form.extend(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    browser.post(app.url(path)).form(&form).send().await.unwrap()
}

async fn sign_in(browser: &reqwest::Client, app: &TestApp, html: &str, username: &str) -> reqwest::Response {
    post(browser, app, "/oauth/authorize/login", html, &[("username", username), ("password", PASSWORD)])
        .await
}

async fn decide(browser: &reqwest::Client, app: &TestApp, html: &str, decision: &str) -> reqwest::Response {
    post(browser, app, "/oauth/authorize/consent", html, &[("decision", decision)]).await
}

/// The query of a redirect's Location (asserting it goes to `prefix`).
fn redirected(resp: &reqwest::Response, prefix: &str) -> HashMap<String, String> {
    assert!(resp.status() == 302 || resp.status() == 303, "expected a redirect, got {}", resp.status());
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(prefix), "{location} should start with {prefix}");
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

async fn redeem(oc: &OAuthClient, code: &str, verifier: PkceCodeVerifier) -> Result<Tokens, String> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    oc.exchange_code(AuthorizationCode::new(code.into()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .map_err(|e| match e {
            oauth2::RequestTokenError::ServerResponse(r) => r.error().to_string(),
            other => other.to_string(),
        })
}

fn id_claims(tokens: &Tokens) -> Value {
    jwt_part(tokens.extra_fields().id_token.as_deref().expect("an id_token"), 1)
}

/// Signs in on a fresh authorization request and allows what is asked; returns the tokens.
async fn full_flow(
    app: &TestApp,
    b: &reqwest::Client,
    oc: &OAuthClient,
    scope: &str,
    username: &str,
) -> Tokens {
    let s = start(b, oc, scope, &[]).await;
    let resp = sign_in(b, app, &page(s.response).await, username).await;
    let resp = if resp.status() == 200 { decide(b, app, &page(resp).await, "allow").await } else { resp };
    let q = redirected(&resp, REDIRECT);
    assert_eq!(q["state"], s.state);
    redeem(oc, &q["code"], s.verifier).await.expect("the code redeems")
}

async fn spawn_with_alice(client_scopes: &str, first_party: bool) -> TestApp {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    register(&app, "spa", client_scopes, first_party).await;
    app
}

#[tokio::test]
async fn whole_flow_with_consent_then_remembered_and_new_scope_asks_again() {
    let app = spawn_with_alice("openid profile email api", false).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let b = browser();

    let s = start(&b, &oc, "openid profile", &[]).await;
    let headers = s.response.headers().clone();
    assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(headers["cache-control"], "no-store");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("latchkey_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let before = cookie.split(';').next().unwrap().to_owned();
    let login = page(s.response).await;
    assert!(
        login.contains("name=\"username\"")
            && login.contains("name=\"password\"")
            && login.contains("App spa")
    );
    assert!(login.contains("type=\"hidden\" name=\"csrf\""));

    // A wrong password: the login page again with the error, and no session yet.
    let wrong = [("username", "alice"), ("password", "not the password")];
    let again = page(post(&b, &app, "/oauth/authorize/login", &login, &wrong).await).await;
    assert!(again.contains("Invalid username or password"), "{again}");

    let resp = sign_in(&b, &app, &again, "alice").await;
    let after = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert_ne!(before, after, "a sign-in gives the browser a new session id");
    let consent = page(resp).await;
    assert!(consent.contains("See your username") && consent.contains("name=\"decision\" value=\"allow\""));
    let resp = decide(&b, &app, &consent, "allow").await;
    let q = redirected(&resp, REDIRECT);
    assert_eq!(q["state"], s.state);
    assert_eq!(q["iss"], app.base);
    let tokens = redeem(&oc, &q["code"], s.verifier).await.unwrap();
    let id = id_claims(&tokens);
    assert_eq!(id["nonce"], s.nonce.as_str());
    assert_eq!((id["aud"].as_str(), id["azp"].as_str()), (Some("spa"), Some("spa")));
    assert_eq!(id["amr"], json!(["pwd"]));
    assert!(id["auth_time"].as_i64().unwrap() > 0 && id["sid"].is_string());
    assert_eq!(id["preferred_username"], "alice");
    let access = tokens.access_token().secret();
    let info: Value = app.get_bearer("/oauth/userinfo", access).await.json().await.unwrap();
    assert_eq!(info["preferred_username"], "alice");
    assert!(info.get("email").is_none(), "no email without the email scope");
    assert_eq!(app.get_bearer("/account/consents", access).await.status(), 403, "needs scope account");
    // The refresh token works as for any login.
    let refresh = tokens.refresh_token().unwrap().secret().clone();
    let client = common::TestClient { id: "spa".into(), secret: None };
    let resp = app
        .post_form("/oauth/token", &client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .await;
    assert_eq!(resp.status(), 200);

    // Same browser, same scopes: no password and no consent page, straight back with a code.
    let s = start(&b, &oc, "openid profile", &[]).await;
    let q = redirected(&s.response, REDIRECT);
    assert!(redeem(&oc, &q["code"], s.verifier).await.is_ok());
    // A new scope asks again.
    let s = start(&b, &oc, "openid profile email", &[]).await;
    assert!(page(s.response).await.contains("See your email address"));
    // prompt=consent asks even when remembered.
    let s = start(&b, &oc, "openid profile", &[("prompt", "consent")]).await;
    assert!(page(s.response).await.contains("name=\"decision\""));
}

#[tokio::test]
async fn consent_denied_is_access_denied_by_redirect() {
    let app = spawn_with_alice("openid profile", false).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let b = browser();
    let s = start(&b, &oc, "openid", &[]).await;
    let consent = page(sign_in(&b, &app, &page(s.response).await, "alice").await).await;
    let q = redirected(&decide(&b, &app, &consent, "deny").await, REDIRECT);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], s.state);
    assert_eq!(q["iss"], app.base);
    assert!(!q.contains_key("code"));
    // Nothing was remembered: the next request asks again (no password: the session lives).
    let s = start(&b, &oc, "openid", &[]).await;
    assert!(page(s.response).await.contains("name=\"decision\""));
}

/// Enrols and confirms TOTP for the user; returns the secret's authenticator and codes.
async fn enrol_totp(app: &TestApp, user_id: &str) -> (totp_rs::Totp, Vec<String>) {
    let meta = RequestMeta::default();
    let password = Password::candidate(PASSWORD.into()).unwrap();
    let enrolment = latchkey::mfa::enrol(&app.svc, user_id, &password, &meta).await.unwrap();
    let secret = totp_rs::Secret::try_from_base32(&enrolment.secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(secret).build().unwrap();
    let code = totp.generate(app.svc.now() as u64).to_string();
    let recovery = latchkey::mfa::confirm(&app.svc, user_id, &code, &meta).await.unwrap();
    (totp, recovery)
}

#[tokio::test]
async fn totp_step_with_replay_refused_and_recovery_code() {
    let app = spawn_app().await;
    let alice = app.create_user("alice", &[]).await;
    register(&app, "spa", "openid", true).await;
    let (totp, recovery) = enrol_totp(&app, &alice.id).await;
    let oc = oauth_client(&app, "spa", REDIRECT);

    let b = browser();
    let s = start(&b, &oc, "openid", &[]).await;
    let second = page(sign_in(&b, &app, &page(s.response).await, "alice").await).await;
    assert!(second.contains("name=\"otp\"") && second.contains("name=\"recovery_code\""));
    // The confirm step used the current step's code: replaying it fails.
    let now = app.svc.now() as u64;
    let replay = totp.generate(now).to_string();
    let again =
        page(post(&b, &app, "/oauth/authorize/second-factor", &second, &[("otp", &replay)]).await).await;
    assert!(again.contains("That code is not valid"), "{again}");
    let next = totp.generate(now + 30).to_string();
    let resp = post(&b, &app, "/oauth/authorize/second-factor", &again, &[("otp", &next)]).await;
    let q = redirected(&resp, REDIRECT);
    let tokens = redeem(&oc, &q["code"], s.verifier).await.unwrap();
    assert_eq!(id_claims(&tokens)["amr"], json!(["pwd", "otp"]));

    // Another browser, a recovery code: `mfa`, and the code is spent.
    let b = browser();
    let s = start(&b, &oc, "openid", &[]).await;
    let second = page(sign_in(&b, &app, &page(s.response).await, "alice").await).await;
    let resp =
        post(&b, &app, "/oauth/authorize/second-factor", &second, &[("recovery_code", &recovery[0])]).await;
    let q = redirected(&resp, REDIRECT);
    let tokens = redeem(&oc, &q["code"], s.verifier).await.unwrap();
    assert_eq!(id_claims(&tokens)["amr"], json!(["pwd", "mfa"]));

    // Five wrong codes end the challenge: back to the password.
    let b = browser();
    let s = start(&b, &oc, "openid", &[]).await;
    let mut html = page(sign_in(&b, &app, &page(s.response).await, "alice").await).await;
    for _ in 0..5 {
        html = page(
            post(&b, &app, "/oauth/authorize/second-factor", &html, &[("recovery_code", &recovery[0])]).await,
        )
        .await;
    }
    assert!(html.contains("name=\"password\""), "after five wrong codes the password is asked again");
}

#[tokio::test]
async fn single_sign_on_across_two_clients_and_first_party_skips_consent() {
    let app = spawn_with_alice("openid profile", true).await;
    register(&app, "other", "openid profile", false).await;
    let b = browser();
    let spa = oauth_client(&app, "spa", REDIRECT);
    let tokens = full_flow(&app, &b, &spa, "openid", "alice").await;
    let first_auth_time = id_claims(&tokens)["auth_time"].clone();

    // The second app: no password (SSO), but its own consent page (not first-party).
    let other = oauth_client(&app, "other", REDIRECT);
    let s = start(&b, &other, "openid", &[]).await;
    let consent = page(s.response).await;
    assert!(consent.contains("App other") && consent.contains("name=\"decision\""));
    assert!(!consent.contains("name=\"password\""));
    let q = redirected(&decide(&b, &app, &consent, "allow").await, REDIRECT);
    let tokens = redeem(&other, &q["code"], s.verifier).await.unwrap();
    assert_eq!(id_claims(&tokens)["auth_time"], first_auth_time, "the same sign-in");

    // prompt=login asks for the password again, even with a live session.
    let s = start(&b, &spa, "openid", &[("prompt", "login")]).await;
    assert!(page(s.response).await.contains("name=\"password\""));
    // max_age: within it the session stands; once elapsed the password is asked again.
    let s = start(&b, &spa, "openid", &[("max_age", "300")]).await;
    redirected(&s.response, REDIRECT);
    app.svc.clock().advance(Duration::from_secs(301));
    let s = start(&b, &spa, "openid", &[("max_age", "300")]).await;
    assert!(page(s.response).await.contains("name=\"password\""));
}

#[tokio::test]
async fn a_password_change_or_disabled_account_ends_single_sign_on() {
    let app = spawn_app().await;
    let user_id = app.create_user("alice", &[]).await.id;
    register(&app, "spa", "openid", true).await;
    let spa = oauth_client(&app, "spa", REDIRECT);

    // Signed in, then the password is changed (say, reset after a theft of the password):
    // the old browser session no longer signs anyone in.
    let b = browser();
    full_flow(&app, &b, &spa, "openid", "alice").await;
    let s = start(&b, &spa, "openid", &[]).await;
    redirected(&s.response, REDIRECT);
    latchkey::admin::users::set_password(
        &app.svc,
        &latchkey::admin::Actor::cli(),
        &user_id,
        format!("{PASSWORD} 2"),
    )
    .await
    .unwrap();
    let s = start(&b, &spa, "openid", &[]).await;
    assert!(page(s.response).await.contains("name=\"password\""), "SSO survived a password change");

    // Signed in again (with the new password), then the account is disabled.
    let b = browser();
    let s = start(&b, &spa, "openid", &[]).await;
    let html = page(s.response).await;
    let resp = post(
        &b,
        &app,
        "/oauth/authorize/login",
        &html,
        &[("username", "alice"), ("password", &format!("{PASSWORD} 2"))],
    )
    .await;
    redirected(&resp, REDIRECT);
    latchkey::admin::users::set_status(
        &app.svc,
        &latchkey::admin::Actor::cli(),
        &user_id,
        latchkey::model::UserStatus::Disabled,
    )
    .await
    .unwrap();
    let s = start(&b, &spa, "openid", &[("prompt", "none")]).await;
    assert_eq!(redirected(&s.response, REDIRECT)["error"], "login_required");
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let app = spawn_with_alice("openid", false).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let b = browser();
    let s = start(&b, &oc, "openid", &[("prompt", "none")]).await;
    let q = redirected(&s.response, REDIRECT);
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], s.state);
    assert_eq!(q["iss"], app.base);

    // Signed in but never consented: consent_required.
    let s = start(&b, &oc, "openid", &[]).await;
    let consent = page(sign_in(&b, &app, &page(s.response).await, "alice").await).await;
    let s = start(&b, &oc, "openid", &[("prompt", "none")]).await;
    assert_eq!(redirected(&s.response, REDIRECT)["error"], "consent_required");
    // Once allowed, prompt=none answers with a code.
    redirected(&decide(&b, &app, &consent, "allow").await, REDIRECT);
    let s = start(&b, &oc, "openid", &[("prompt", "none")]).await;
    let q = redirected(&s.response, REDIRECT);
    let alice_id_token =
        redeem(&oc, &q["code"], s.verifier).await.unwrap().extra_fields().id_token.clone().unwrap();

    // id_token_hint: alice's own ID token lets the session stand; another user's does not.
    let s = start(&b, &oc, "openid", &[("prompt", "none"), ("id_token_hint", &alice_id_token)]).await;
    assert!(redirected(&s.response, REDIRECT).contains_key("code"));
    app.create_user("bob", &[]).await;
    let bob_id_token =
        full_flow(&app, &browser(), &oc, "openid", "bob").await.extra_fields().id_token.clone().unwrap();
    let s = start(&b, &oc, "openid", &[("prompt", "none"), ("id_token_hint", &bob_id_token)]).await;
    assert_eq!(redirected(&s.response, REDIRECT)["error"], "login_required");
    // Silent renewal sends the last ID token, long expired by then: it still names alice.
    app.svc.clock().advance(Duration::from_secs(3600));
    let s = start(&b, &oc, "openid", &[("prompt", "none"), ("id_token_hint", &alice_id_token)]).await;
    assert!(redirected(&s.response, REDIRECT).contains_key("code"));
}

#[tokio::test]
async fn code_is_single_use_and_reuse_revokes_what_it_bought() {
    let app = spawn_with_alice("openid", true).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let b = browser();
    let s = start(&b, &oc, "openid", &[]).await;
    let q = redirected(&sign_in(&b, &app, &page(s.response).await, "alice").await, REDIRECT);
    let verifier = s.verifier.secret().clone();
    let tokens = redeem(&oc, &q["code"], s.verifier).await.unwrap();
    assert_eq!(app.get_bearer("/oauth/userinfo", tokens.access_token().secret()).await.status(), 200);
    let again = redeem(&oc, &q["code"], PkceCodeVerifier::new(verifier)).await;
    assert_eq!(again.unwrap_err(), "invalid_grant");
    let client = common::TestClient { id: "spa".into(), secret: None };
    let refresh = tokens.refresh_token().unwrap().secret();
    let resp = app
        .post_form("/oauth/token", &client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(resp.status(), 400, "the refresh token from the reused code is revoked");
    let resp = app.get_bearer("/oauth/userinfo", tokens.access_token().secret()).await;
    assert_eq!(resp.status(), 401, "its access token is revoked too");

    // A code older than 60 s is dead.
    let s = start(&b, &oc, "openid", &[]).await;
    let q = redirected(&s.response, REDIRECT);
    app.svc.clock().advance(Duration::from_secs(61));
    assert_eq!(redeem(&oc, &q["code"], s.verifier).await.unwrap_err(), "invalid_grant");
}

#[tokio::test]
async fn pkce_and_redirect_uri_are_enforced() {
    let app = spawn_with_alice("openid", true).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let b = browser();
    // Signed in once, so later requests come straight back with a code.
    let s = start(&b, &oc, "openid", &[]).await;
    redirected(&sign_in(&b, &app, &page(s.response).await, "alice").await, REDIRECT);

    // Wrong verifier.
    let s = start(&b, &oc, "openid", &[]).await;
    let q = redirected(&s.response, REDIRECT);
    let wrong = PkceCodeVerifier::new("x".repeat(43));
    assert_eq!(redeem(&oc, &q["code"], wrong).await.unwrap_err(), "invalid_grant");
    // Wrong redirect_uri at the token endpoint (another registered one).
    let s = start(&b, &oc, "openid", &[]).await;
    let q = redirected(&s.response, REDIRECT);
    let elsewhere = oauth_client(&app, "spa", "https://app.example/cb");
    assert_eq!(redeem(&elsewhere, &q["code"], s.verifier).await.unwrap_err(), "invalid_grant");
    // A loopback redirect URI matches on any port (RFC 8252 §7.3).
    let native = oauth_client(&app, "spa", "http://127.0.0.1:53123/callback");
    let s = start(&b, &native, "openid", &[]).await;
    let q = redirected(&s.response, "http://127.0.0.1:53123/callback?");
    assert!(redeem(&native, &q["code"], s.verifier).await.is_ok());

    // Built by hand: plain and missing PKCE are refused by redirect.
    let base = format!(
        "{}/oauth/authorize?response_type=code&client_id=spa&redirect_uri={}&state=st",
        app.base, REDIRECT
    );
    let plain = format!("{base}&code_challenge={}&code_challenge_method=plain", "a".repeat(43));
    let resp = b.get(&plain).send().await.unwrap();
    let q = redirected(&resp, REDIRECT);
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("invalid_request", "st"));
    let resp = b.get(&base).send().await.unwrap();
    assert_eq!(redirected(&resp, REDIRECT)["error"], "invalid_request");
    let resp = b.get(format!("{base}&code_challenge={}", "a".repeat(43))).send().await.unwrap();
    assert_eq!(redirected(&resp, REDIRECT)["error"], "invalid_request", "no method means plain");
    let resp = b.get(format!("{base}&request=eyJ")).send().await.unwrap();
    assert_eq!(redirected(&resp, REDIRECT)["error"], "request_not_supported");
    let resp = b.get(format!("{base}&request_uri=urn:x")).send().await.unwrap();
    assert_eq!(redirected(&resp, REDIRECT)["error"], "request_uri_not_supported");
}

#[tokio::test]
async fn open_redirect_attempts_land_on_the_error_page() {
    let app = spawn_with_alice("openid", false).await;
    let b = browser();
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    for (client, redirect) in [
        ("spa", "https://evil.example/cb"),
        ("spa", "https://app.example/cb/../../evil"),
        ("spa", "https://app.example/cb?x=1"),
        ("spa", "http://127.0.0.1.evil.example/callback"),
        ("nobody", REDIRECT),
    ] {
        let url = format!(
            "{}/oauth/authorize?response_type=code&client_id={client}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&state=s",
            app.base,
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
        );
        let resp = b.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{client} {redirect}");
        assert!(resp.headers().get("location").is_none());
        assert!(resp.text().await.unwrap().contains("Something is not right"));
    }
}

#[tokio::test]
async fn form_posts_without_the_csrf_token_or_cookie_are_refused() {
    let app = spawn_with_alice("openid", true).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let b = browser();
    let s = start(&b, &oc, "openid", &[]).await;
    let login = page(s.response).await;
    let tx = input(&login, "tx");
    let creds = [("tx", tx.as_str()), ("username", "alice"), ("password", PASSWORD)];
    // No CSRF token.
    let resp = b.post(app.url("/oauth/authorize/login")).form(&creds).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    // A wrong one.
    let mut with_bad = creds.to_vec();
    with_bad.push(("csrf", "forged"));
    let resp = b.post(app.url("/oauth/authorize/login")).form(&with_bad).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    // The right token from another browser (no cookie, or its own cookie).
    let csrf = input(&login, "csrf");
    let mut with_good = creds.to_vec();
    with_good.push(("csrf", &csrf));
    let resp = browser().post(app.url("/oauth/authorize/login")).form(&with_good).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    // And in the right browser it works.
    let resp = b.post(app.url("/oauth/authorize/login")).form(&with_good).send().await.unwrap();
    redirected(&resp, REDIRECT);
}

#[tokio::test]
async fn https_issuer_sets_a_host_prefixed_secure_cookie() {
    let app = spawn_app_with(|s| s.issuer = "https://auth.example".parse().unwrap()).await;
    register(&app, "spa", "openid", false).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let s = start(&browser(), &oc, "openid", &[]).await;
    assert_eq!(s.response.status(), 200);
    let cookie = s.response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-latchkey_session="), "{cookie}");
    for part in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.split("; ").any(|p| p == part), "{part} missing in {cookie}");
    }
    assert!(!cookie.contains("Domain="));
}

#[tokio::test]
async fn logout_ends_the_browser_session_and_returns_only_to_registered_uris() {
    let app = spawn_with_alice("openid", true).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let b = browser();
    let tokens = full_flow(&app, &b, &oc, "openid", "alice").await;
    let id_token = tokens.extra_fields().id_token.clone().unwrap();
    // Logout hints are often expired ID tokens; the hint still names the client.
    app.svc.clock().advance(Duration::from_secs(3600));

    let url = format!(
        "{}/oauth/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
        app.base, "https%3A%2F%2Fapp.example%2Fbye"
    );
    let resp = b.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "https://app.example/bye?state=bye");
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let s = start(&b, &oc, "openid", &[("prompt", "none")]).await;
    assert_eq!(redirected(&s.response, REDIRECT)["error"], "login_required");

    // An unregistered URI: the signed-out page, no redirect.
    let resp = b
        .post(app.url("/oauth/logout"))
        .form(&[("client_id", "spa"), ("post_logout_redirect_uri", "https://evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("You are signed out"));
}

#[tokio::test]
async fn consents_are_listed_and_withdrawing_one_ends_the_clients_sessions() {
    let app = spawn_with_alice("openid account", false).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let b = browser();
    let tokens = full_flow(&app, &b, &oc, "openid account", "alice").await;
    let access = tokens.access_token().secret();
    let resp = app.get_bearer("/account/consents", access).await;
    assert_eq!(resp.status(), 200);
    let list: Value = resp.json().await.unwrap();
    assert_eq!(list[0]["client_id"], "spa");
    assert_eq!(list[0]["scopes"], json!(["account", "openid"]));

    let resp = app.http.delete(app.url("/account/consents/spa")).bearer_auth(access).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let client = common::TestClient { id: "spa".into(), secret: None };
    assert_eq!(app.get_bearer("/oauth/userinfo", access).await.status(), 401);
    let refresh = tokens.refresh_token().unwrap().secret();
    let resp = app
        .post_form("/oauth/token", &client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(resp.status(), 400);
    // Asked again next time.
    let s = start(&b, &oc, "openid", &[]).await;
    assert!(page(s.response).await.contains("name=\"decision\""));
}

#[tokio::test]
async fn the_docs_sign_in_with_the_code_flow_and_pkce_as_the_documented_docs_client() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    // The README's `client create` line for the docs, as the CLI builds it.
    let new = NewClient {
        name: "API docs".into(),
        id: Some(ClientId::parse("docs").unwrap()),
        public: true,
        grants: vec![GrantType::AuthorizationCode],
        scopes: Scope::parse("openid profile email account admin").unwrap(),
        audiences: vec![],
        require_mfa: false,
        redirect_uris: vec!["http://127.0.0.1/docs/oauth-receiver.html".into()],
        post_logout_redirect_uris: vec![],
        first_party: true,
    };
    client::register(&app.svc, new).await.unwrap();

    // The page: Swagger UI with the dialog set to the docs client and PKCE.
    let html = app.http.get(app.url("/docs")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("const ui = SwaggerUIBundle("), "the UI is reachable for initOAuth");
    assert!(html.contains(r#"ui.initOAuth({clientId: "docs", usePkceWithAuthorizationCodeGrant: true"#));
    let receiver = app.http.get(app.url("/docs/oauth-receiver.html")).send().await.unwrap();
    assert_eq!(receiver.status(), 200);
    assert!(receiver.text().await.unwrap().contains("swaggerUIRedirectOauth2"));
    let spec = app.get_json("/openapi.json").await;
    let flow = &spec["components"]["securitySchemes"]["CodeFlow"]["flows"]["authorizationCode"];
    assert_eq!(flow["authorizationUrl"], "/oauth/authorize");
    assert_eq!(flow["tokenUrl"], "/oauth/token");

    // What Swagger UI does: the code flow to the receiver page on this server's port,
    // redeemed with the verifier and no secret; the token opens the account API.
    let receiver = app.url("/docs/oauth-receiver.html");
    let docs = oauth_client(&app, "docs", &receiver);
    let b = browser();
    let s = start(&b, &docs, "openid account", &[]).await;
    let q = redirected(&sign_in(&b, &app, &page(s.response).await, "alice").await, &receiver);
    let tokens = redeem(&docs, &q["code"], s.verifier).await.expect("the code redeems");
    let me = app.get_bearer("/account/me", tokens.access_token().secret()).await;
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn authorization_requests_from_one_address_are_limited() {
    // The limit follows the login switch, which the other tests turn off.
    let app = spawn_app_with(|s| {
        s.rate_limit_login =
            latchkey::config::RateLimit::PerPeriod { count: 5, period: Duration::from_secs(900) }
    })
    .await;
    register(&app, "spa", "openid", false).await;
    let spa = oauth_client(&app, "spa", REDIRECT);
    // Browsers without a cookie: each request would store a request and a session. A burst
    // of 300, then one more every 2 s (300 per 10 minutes).
    let mut shown = 0;
    let refused = loop {
        let s = start(&browser(), &spa, "openid", &[]).await;
        if s.response.status() != 200 || shown == 350 {
            break s;
        }
        shown += 1;
    };
    assert!((300..350).contains(&shown), "{shown} pages before the first refusal");
    let q = redirected(&refused.response, REDIRECT);
    assert_eq!(q["error"], "temporarily_unavailable");
    assert_eq!(q["state"], refused.state);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM authorize_requests")
        .fetch_one(app.svc.db().pool())
        .await
        .unwrap();
    assert_eq!(stored, shown, "a refused request stores nothing");
}

#[tokio::test]
async fn discovery_advertises_the_code_flow() {
    let app = spawn_app().await;
    let meta: Value = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["authorization_endpoint"], format!("{}/oauth/authorize", app.base));
    assert_eq!(meta["end_session_endpoint"], format!("{}/oauth/logout", app.base));
    assert_eq!(meta["response_types_supported"], json!(["code"]));
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert!(meta["grant_types_supported"].as_array().unwrap().contains(&json!("authorization_code")));
    assert!(meta["prompt_values_supported"].as_array().unwrap().contains(&json!("none")));
    assert!(meta["claims_supported"].as_array().unwrap().contains(&json!("nonce")));
}

async fn audit_events(app: &TestApp, event: &str) -> Vec<latchkey::store::audit::AuditRecord> {
    let q = latchkey::store::audit::AuditQuery { event: Some(event), limit: 100, ..Default::default() };
    latchkey::store::audit::list(app.svc.db(), &q).await.unwrap()
}

#[tokio::test]
async fn the_login_page_shares_the_password_grants_rate_limit_lockout_and_audit() {
    let per = latchkey::config::RateLimit::PerPeriod { count: 5, period: Duration::from_secs(900) };
    let app = spawn_app_with(|s| s.rate_limit_login = per).await;
    app.create_user("alice", &[]).await;
    register(&app, "spa", "openid", true).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let b = browser();
    let s = start(&b, &oc, "openid", &[]).await;
    let mut html = page(s.response).await;
    let wrong = [("username", "alice"), ("password", "not the password")];
    for _ in 0..5 {
        html = page(post(&b, &app, "/oauth/authorize/login", &html, &wrong).await).await;
    }
    // The sixth attempt from this address is limited, right password or not.
    let resp = sign_in(&b, &app, &html, "alice").await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() > 0);
    assert!(resp.text().await.unwrap().contains("Too many attempts"));
    // Failures are audited like the password grant's, after the answer has gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failures: Vec<_> =
        audit_events(&app, "login").await.into_iter().filter(|e| e.outcome == "failure").collect();
    assert_eq!(failures.len(), 5);
    assert!(failures.iter().all(|e| e.client_id.as_deref() == Some("spa")));
    // Once the budget refills (and the one-minute lock has passed), the password works.
    app.svc.clock().advance(Duration::from_secs(181));
    redirected(&sign_in(&b, &app, &html, "alice").await, REDIRECT);
    assert_eq!(audit_events(&app, "browser_sign_in").await.len(), 1);
}

#[tokio::test]
async fn wrong_passwords_on_the_login_page_lock_the_account() {
    let app = spawn_with_alice("openid", true).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let b = browser();
    let s = start(&b, &oc, "openid", &[]).await;
    let mut html = page(s.response).await;
    let wrong = [("username", "alice"), ("password", "not the password")];
    for _ in 0..5 {
        html = page(post(&b, &app, "/oauth/authorize/login", &html, &wrong).await).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Locked: the right password answers exactly like a wrong one.
    let locked = page(sign_in(&b, &app, &html, "alice").await).await;
    assert!(locked.contains("Invalid username or password"), "{locked}");
    app.svc.clock().advance(Duration::from_secs(61));
    redirected(&sign_in(&b, &app, &locked, "alice").await, REDIRECT);
}

#[tokio::test]
async fn clients_register_redirect_uris_on_the_admin_api_and_bad_ones_are_refused() {
    let app = spawn_app().await;
    app.create_user("root", &["admin"]).await;
    let web = app
        .create_client("docs", false, &[GrantType::Password, GrantType::RefreshToken], "openid admin", &[])
        .await;
    let token = app.login(&web, "root").await["access_token"].as_str().unwrap().to_owned();
    let create =
        |body: Value| app.http.post(app.url("/admin/clients")).bearer_auth(&token).json(&body).send();
    let resp = create(json!({
        "name": "Shop", "client_id": "shop", "public": true,
        "grants": ["authorization_code", "refresh_token"], "scopes": ["openid"],
        "redirect_uris": ["https://shop.example/cb", "http://127.0.0.1/cb"],
        "post_logout_redirect_uris": ["https://shop.example/"], "first_party": true
    }))
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["redirect_uris"], json!(["https://shop.example/cb", "http://127.0.0.1/cb"]));
    assert_eq!(body["first_party"], true);
    for bad in [
        json!({"name": "x", "grants": ["authorization_code"]}),
        json!({"name": "x", "grants": ["authorization_code"], "redirect_uris": ["http://shop.example/cb"]}),
        json!({"name": "x", "grants": ["authorization_code"], "redirect_uris": ["https://shop.example/cb#frag"]}),
        json!({"name": "x", "grants": ["authorization_code"], "redirect_uris": ["javascript:alert(1)"]}),
    ] {
        let resp = create(bad.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
}

/// `latchkey client create` as the README shows it for a native app, then a sign-in with
/// the client it made.
#[tokio::test]
async fn cli_registers_a_native_app_that_can_sign_in() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .current_dir(app.dir.path())
        .env("LATCHKEY_LOG", "warn")
        .env("LATCHKEY_DATABASE_URL", &app.database_url)
        .env("LATCHKEY_KEYS_DIR", app.dir.path().join("keys"))
        .args(["client", "create", "--name", "Desk app", "--id", "desk", "--public"])
        .args(["--grant", "authorization_code", "--grant", "refresh_token", "--scope", "openid"])
        .args(["--redirect-uri", REDIRECT, "com.example.desk:/cb", "--first-party"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(client["redirect_uris"], json!([REDIRECT, "com.example.desk:/cb"]));
    assert_eq!(client["first_party"], true);
    assert!(client.get("client_secret").is_none());
    let oc = oauth_client(&app, "desk", "http://127.0.0.1:40123/callback");
    let b = browser();
    let s = start(&b, &oc, "openid", &[]).await;
    let resp = sign_in(&b, &app, &page(s.response).await, "alice").await;
    let q = redirected(&resp, "http://127.0.0.1:40123/callback?");
    assert!(redeem(&oc, &q["code"], s.verifier).await.is_ok());
}

#[tokio::test]
async fn pages_escape_what_the_request_carries() {
    let app = spawn_with_alice("openid", false).await;
    let oc = oauth_client(&app, "spa", REDIRECT);
    let s = start(&browser(), &oc, "openid", &[("login_hint", "\"><script>alert(1)</script>")]).await;
    let html = page(s.response).await;
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
}
