//! Browser sign-in: the authorization endpoint (RFC 6749 §4.1, PKCE per RFC 7636, OIDC
//! Core §3.1) and the steps of the hosted pages (password, second factor, consent), and
//! RP-initiated logout. Nothing here knows HTTP: the pages layer hands in the cookie value
//! and the form fields, and renders the `Step` it gets back.
//!
//! State lives on the server: a browser session row behind the cookie (with the CSRF
//! token every form carries) and one row per authorization request in progress, bound to
//! that browser session. A sign-in replaces the browser session by a new one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::OAuthError;
use super::grants::mfa_otp::{self, SecondFactor};
use super::grants::scope_for_user;
use crate::account;
use crate::crypto::secrets;
use crate::limits::{self, Limit, LimitError, Limited};
use crate::model::{Client, ClientId, GrantType, Password, RequestMeta, Scope, User, UserStatus};
use crate::services::Services;
use crate::store::authorize::{AuthorizationCode, AuthorizeRequest, BrowserSession};
use crate::store::{
    self,
    audit::{AuditEvent, AuditKind},
    join_words, split_words,
};

/// How long a code may wait for redemption.
pub const CODE_TTL_SECS: i64 = 60;
/// How long a user may take over the pages of one authorization request.
pub const REQUEST_TTL_SECS: i64 = 30 * 60;
/// A browser session before anyone signs in (it only carries the CSRF token).
pub const ANONYMOUS_SESSION_SECS: i64 = 60 * 60;
/// A signed-in browser session: single sign-on for this long, then the password again.
pub const SIGNED_IN_SESSION_SECS: i64 = 12 * 60 * 60;
/// Longest `state`, `nonce` and `login_hint` kept.
const MAX_PARAM_LEN: usize = 1024;

/// An authorization request's parameters as sent, by query or form.
#[derive(Debug, Default, Clone)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub id_token_hint: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

impl AuthorizeParams {
    /// From name/value pairs. Unknown names are ignored (RFC 6749 §3.1); a repeated one is
    /// refused, since which of the two counts would be a guess.
    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Result<AuthorizeParams, String> {
        let mut p = AuthorizeParams::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "response_type" => &mut p.response_type,
                "client_id" => &mut p.client_id,
                "redirect_uri" => &mut p.redirect_uri,
                "scope" => &mut p.scope,
                "state" => &mut p.state,
                "nonce" => &mut p.nonce,
                "code_challenge" => &mut p.code_challenge,
                "code_challenge_method" => &mut p.code_challenge_method,
                "prompt" => &mut p.prompt,
                "max_age" => &mut p.max_age,
                "login_hint" => &mut p.login_hint,
                "id_token_hint" => &mut p.id_token_hint,
                "request" => &mut p.request,
                "request_uri" => &mut p.request_uri,
                _ => continue,
            };
            if slot.is_some() {
                return Err(format!("the parameter {name} was sent more than once"));
            }
            // An empty parameter counts as absent (RFC 6749 §3.1).
            *slot = Some(value).filter(|v| !v.is_empty());
        }
        Ok(p)
    }
}

/// What the hosted pages show.
#[derive(Debug)]
pub enum Page {
    Login {
        username: Option<String>,
        error: Option<String>,
        limited: Option<Limited>,
    },
    SecondFactor {
        error: Option<String>,
        limited: Option<Limited>,
    },
    /// The scopes the client asks for, described for people.
    Consent {
        scopes: Vec<String>,
    },
}

/// What the form on a page needs to come back.
#[derive(Debug)]
pub struct FormContext {
    pub tx: String,
    pub csrf: String,
    pub client_name: String,
}

/// Why a request ends on latchkey's own error page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request itself is bad and there is nowhere safe to send the browser.
    BadRequest,
    /// A form post that did not come from our own page in this browser.
    Forbidden,
    Server,
}

#[derive(Debug)]
pub enum Step {
    /// Send the browser to this URL (the client's redirect URI with a code or an error).
    Redirect(String),
    Show(Page, FormContext),
    Error(Failure, String),
}

/// A step, and the new cookie value when the browser session was created or replaced.
#[derive(Debug)]
pub struct Outcome {
    pub step: Step,
    pub set_cookie: Option<String>,
}

fn error_page(failure: Failure, message: &str) -> Step {
    Step::Error(failure, message.to_owned())
}

/// Store and other server failures end on the error page; the cause goes to the log.
fn server_failure(err: OAuthError) -> Outcome {
    tracing::error!(error = %err, "browser sign-in failed");
    Outcome {
        step: error_page(Failure::Server, "Something went wrong on our side. Please try again."),
        set_cookie: None,
    }
}

/// The browser session behind the cookie, as the current request sees it.
struct Browser {
    session: BrowserSession,
    set_cookie: Option<String>,
}

impl Browser {
    fn outcome(self, step: Step) -> Outcome {
        Outcome { step, set_cookie: self.set_cookie }
    }

    fn form(&self, tx: &str, client: &Client) -> FormContext {
        FormContext {
            tx: tx.to_owned(),
            csrf: self.session.csrf_token.clone(),
            client_name: client.name.clone(),
        }
    }
}

async fn find_browser(svc: &Services, cookie: Option<&str>) -> Result<Option<Browser>, OAuthError> {
    let Some(value) = cookie.filter(|v| !v.is_empty() && v.len() <= 128) else { return Ok(None) };
    let session =
        store::authorize::find_browser_session(svc.db(), &secrets::sha256_hex(value), svc.now()).await?;
    Ok(session.map(|session| Browser { session, set_cookie: None }))
}

/// The browser's session, or a new anonymous one (with a cookie to set).
async fn open_browser(svc: &Services, cookie: Option<&str>) -> Result<Browser, OAuthError> {
    if let Some(browser) = find_browser(svc, cookie).await? {
        return Ok(browser);
    }
    let (value, session) = new_browser_session(svc, None, None, "", ANONYMOUS_SESSION_SECS);
    store::authorize::insert_browser_session(svc.db(), &session).await?;
    Ok(Browser { session, set_cookie: Some(value) })
}

fn new_browser_session(
    svc: &Services,
    user: Option<&User>,
    auth_time: Option<i64>,
    amr: &str,
    lifetime: i64,
) -> (String, BrowserSession) {
    let value = secrets::random_token();
    let now = svc.now();
    let session = BrowserSession {
        id: secrets::sha256_hex(&value),
        csrf_token: secrets::random_token(),
        user_id: user.map(|u| u.id.clone()),
        security_stamp: user.map(|u| u.security_stamp),
        auth_time,
        amr: amr.to_owned(),
        created_at: now,
        expires_at: now + lifetime,
    };
    (value, session)
}

/// Signs the user in: a new browser session (and cookie) replaces the old one, so an id
/// known before the sign-in is worthless after it.
async fn sign_in(
    svc: &Services,
    browser: &mut Browser,
    user: &User,
    amr: &[String],
    meta: &RequestMeta,
) -> Result<(), OAuthError> {
    let amr = join_words(amr);
    let (value, session) =
        new_browser_session(svc, Some(user), Some(svc.now()), &amr, SIGNED_IN_SESSION_SECS);
    store::authorize::replace_browser_session(svc.db(), &browser.session.id, &session).await?;
    browser.session = session;
    browser.set_cookie = Some(value);
    svc.audit(
        AuditEvent {
            actor_id: Some(user.id.clone()),
            user_id: Some(user.id.clone()),
            detail: Some(format!("amr={amr}")),
            ..AuditEvent::new(AuditKind::BrowserSignIn, "success")
        },
        meta,
    )
    .await?;
    Ok(())
}

/// Where errors and codes go: the validated redirect URI, with `state` and `iss`.
struct Back<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl Back<'_> {
    fn with(&self, params: &[(&str, &str)]) -> String {
        // Registered URIs are validated URLs, and a requested one matched one of them.
        let Ok(mut url) = url::Url::parse(self.redirect_uri) else { return self.redirect_uri.to_owned() };
        {
            let mut query = url.query_pairs_mut();
            query.extend_pairs(params);
            if let Some(state) = self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", self.issuer);
        }
        url.to_string()
    }

    fn error(&self, code: &str, description: &str) -> Step {
        Step::Redirect(self.with(&[("error", code), ("error_description", description)]))
    }
}

/// The request's scope as the user's roles allow it. A scope the user may not have ends the
/// request: `Err` is the `invalid_scope` redirect back to the client.
async fn scope_for_request(
    svc: &Services,
    tx: &AuthorizeRequest,
    user: &User,
    back: &Back<'_>,
) -> Result<Result<Scope, Step>, OAuthError> {
    let scope = Scope::from_words(split_words(&tx.scope));
    match scope_for_user(svc, user, scope, tx.scope_explicit).await {
        Ok(scope) => Ok(Ok(scope)),
        Err(OAuthError::InvalidScope(text)) => {
            store::authorize::delete_request(svc.db(), &tx.id).await?;
            Ok(Err(back.error("invalid_scope", &text)))
        }
        Err(e) => Err(e),
    }
}

fn back_of(svc: &Services, tx: &AuthorizeRequest) -> (String, Option<String>, String) {
    (tx.redirect_uri.clone(), tx.state.clone(), svc.issuer().to_owned())
}

/// `prompt` (OIDC Core §3.1.2.1).
#[derive(Debug, Default, Clone, Copy)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

fn parse_prompt(text: Option<&str>) -> Result<Prompt, &'static str> {
    let mut prompt = Prompt::default();
    let words: Vec<&str> = text.unwrap_or("").split(' ').filter(|w| !w.is_empty()).collect();
    for word in &words {
        match *word {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            // One account per browser session: choosing one is signing in again.
            "select_account" => prompt.login = true,
            _ => return Err("prompt may hold none, login, consent or select_account"),
        }
    }
    if prompt.none && words.len() > 1 {
        return Err("prompt=none cannot be combined with other values");
    }
    Ok(prompt)
}

/// An S256 challenge is the base64url of a SHA-256: 43 characters.
fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) equals the challenge; the verifier is 43 to
/// 128 unreserved characters.
pub fn pkce_verifies(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && secrets::constant_time_eq(&computed, challenge)
}

/// The request after every check that can be answered by redirect.
struct Checked {
    scope: Scope,
    scope_explicit: bool,
    nonce: Option<String>,
    code_challenge: String,
    prompt: Prompt,
    max_age: Option<i64>,
    login_hint: Option<String>,
}

fn check_request(client: &Client, p: &AuthorizeParams) -> Result<Checked, (&'static str, String)> {
    let invalid = |text: &str| ("invalid_request", text.to_owned());
    if p.request.is_some() {
        return Err(("request_not_supported", "request objects are not supported".into()));
    }
    if p.request_uri.is_some() {
        return Err(("request_uri_not_supported", "request_uri is not supported".into()));
    }
    match p.response_type.as_deref() {
        Some("code") => {}
        None => return Err(invalid("missing parameter response_type")),
        Some(_) => return Err(("unsupported_response_type", "only response_type=code is supported".into())),
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(("unauthorized_client", "this client may not use the authorization code grant".into()));
    }
    let code_challenge =
        p.code_challenge.clone().ok_or_else(|| invalid("code_challenge is required (PKCE, S256)"))?;
    // RFC 7636 §4.3: a missing method means plain, which RFC 9700 §2.1.1 retires.
    if p.code_challenge_method.as_deref() != Some("S256") {
        return Err(invalid("code_challenge_method must be S256"));
    }
    if !valid_challenge(&code_challenge) {
        return Err(invalid("code_challenge must be 43 characters of base64url (S256)"));
    }
    let too_long = [&p.state, &p.nonce, &p.login_hint]
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_PARAM_LEN));
    if too_long {
        return Err(invalid("state, nonce and login_hint are limited to 1024 characters"));
    }
    let requested = match p.scope.as_deref() {
        None => None,
        Some(text) => Some(Scope::parse(text).ok_or(("invalid_scope", "the scope is malformed".to_owned()))?),
    };
    let scope = super::client::granted_scope(client, requested.as_ref())
        .map_err(|e| ("invalid_scope", e.to_string()))?;
    let prompt = parse_prompt(p.prompt.as_deref()).map_err(invalid)?;
    let max_age = p
        .max_age
        .as_deref()
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| invalid("max_age must be a number of seconds"))
        })
        .transpose()?;
    Ok(Checked {
        scope,
        scope_explicit: requested.is_some(),
        nonce: p.nonce.clone(),
        code_challenge,
        prompt,
        max_age,
        login_hint: p.login_hint.clone(),
    })
}

/// `GET`/`POST /oauth/authorize`.
pub async fn authorize(
    svc: &Services,
    cookie: Option<&str>,
    params: AuthorizeParams,
    meta: &RequestMeta,
) -> Outcome {
    authorize_inner(svc, cookie, params, meta).await.unwrap_or_else(server_failure)
}

async fn authorize_inner(
    svc: &Services,
    cookie: Option<&str>,
    params: AuthorizeParams,
    meta: &RequestMeta,
) -> Result<Outcome, OAuthError> {
    let bare = |step| Ok(Outcome { step, set_cookie: None });
    // Without a known client and one of its redirect URIs there is nowhere safe to send
    // an error: the browser stays here (no open redirector, RFC 6749 §4.1.2.1).
    let client = match params.client_id.as_deref().and_then(ClientId::parse) {
        Some(id) => store::clients::find(svc.db(), &id).await?,
        None => None,
    };
    let Some(client) = client else {
        return bare(error_page(
            Failure::BadRequest,
            "The application that sent you here is not known to this server.",
        ));
    };
    let Some(redirect_uri) = params.redirect_uri.as_deref().filter(|r| client.redirect_uri_registered(r))
    else {
        return bare(error_page(
            Failure::BadRequest,
            "The application sent you here with a return address it has not registered, so you were not sent back.",
        ));
    };
    let state = params.state.as_deref().filter(|s| s.len() <= MAX_PARAM_LEN);
    let back = Back { redirect_uri, state, issuer: svc.issuer() };
    let checked = match check_request(&client, &params) {
        Ok(checked) => checked,
        Err((code, description)) => return bare(back.error(code, &description)),
    };
    match limits::check(svc, Limit::Authorize, &meta.ip_key()).await {
        Err(LimitError::Limited(limited)) => {
            let description = format!(
                "too many sign-in requests from this network; try again in {} s",
                limited.retry_after_secs
            );
            return bare(back.error("temporarily_unavailable", &description));
        }
        other => other?,
    }
    let mut browser = open_browser(svc, cookie).await?;
    let user = signed_in_user(svc, &browser, &checked, params.id_token_hint.as_deref()).await?;
    let now = svc.now();
    let mut tx = AuthorizeRequest {
        id: secrets::random_token(),
        browser_session: browser.session.id.clone(),
        client_id: client.id.to_string(),
        redirect_uri: redirect_uri.to_owned(),
        scope: checked.scope.to_string(),
        scope_explicit: checked.scope_explicit,
        state: state.map(str::to_owned),
        nonce: checked.nonce,
        code_challenge: checked.code_challenge,
        prompt_consent: checked.prompt.consent,
        stage: "login".into(),
        user_id: None,
        mfa_challenge: None,
        login_hint: checked.login_hint,
        created_at: now,
        expires_at: now + REQUEST_TTL_SECS,
    };
    match user {
        None if checked.prompt.none => {
            Ok(browser.outcome(back.error("login_required", "the user is not signed in")))
        }
        None => {
            store::authorize::insert_request(svc.db(), &tx).await?;
            let page = Page::Login { username: tx.login_hint.clone(), error: None, limited: None };
            let form = browser.form(&tx.id, &client);
            Ok(browser.outcome(Step::Show(page, form)))
        }
        Some(user) => {
            let scope = match scope_for_user(svc, &user, checked.scope, tx.scope_explicit).await {
                Ok(scope) => scope,
                Err(OAuthError::InvalidScope(text)) => {
                    return Ok(browser.outcome(back.error("invalid_scope", &text)));
                }
                Err(e) => return Err(e),
            };
            tx.scope = scope.to_string();
            if checked.prompt.none {
                if needs_consent(svc, &client, &user, &scope, false).await? {
                    return Ok(
                        browser.outcome(back.error("consent_required", "the user has not consented yet"))
                    );
                }
                let step = issue_code(svc, &tx, &browser.session).await?;
                return Ok(browser.outcome(step));
            }
            store::authorize::insert_request(svc.db(), &tx).await?;
            let step = proceed(svc, &mut browser, &tx, &client, &user, &scope).await?;
            Ok(browser.outcome(step))
        }
    }
}

/// The signed-in user of this browser, when the request lets the session stand: not
/// `prompt=login`, within `max_age`, the user `id_token_hint` names, still active, and no
/// password change or reset since the sign-in.
async fn signed_in_user(
    svc: &Services,
    browser: &Browser,
    checked: &Checked,
    id_token_hint: Option<&str>,
) -> Result<Option<User>, OAuthError> {
    let (Some(user_id), Some(auth_time)) = (&browser.session.user_id, browser.session.auth_time) else {
        return Ok(None);
    };
    if checked.prompt.login || checked.max_age.is_some_and(|max| svc.now() - auth_time > max) {
        return Ok(None);
    }
    if id_token_hint.is_some_and(|hint| read_hint(hint).is_none_or(|h| &h.sub != user_id)) {
        return Ok(None);
    }
    let user = store::users::find_by_id(svc.db(), user_id).await?;
    Ok(user.filter(|u| {
        u.status == UserStatus::Active && browser.session.security_stamp == Some(u.security_stamp)
    }))
}

/// Whether the user must be asked: never for a first-party client; otherwise unless a
/// remembered consent covers the scope (and the client did not insist with prompt=consent).
async fn needs_consent(
    svc: &Services,
    client: &Client,
    user: &User,
    scope: &Scope,
    prompt_consent: bool,
) -> Result<bool, OAuthError> {
    if client.first_party {
        return Ok(false);
    }
    if prompt_consent {
        return Ok(true);
    }
    let remembered = store::authorize::find_consent(svc.db(), &user.id, client.id.as_str()).await?;
    Ok(!remembered.is_some_and(|s| scope.is_subset(&Scope::from_words(split_words(&s)))))
}

/// The user is signed in: ask for consent if needed, else issue the code.
async fn proceed(
    svc: &Services,
    browser: &mut Browser,
    tx: &AuthorizeRequest,
    client: &Client,
    user: &User,
    scope: &Scope,
) -> Result<Step, OAuthError> {
    if needs_consent(svc, client, user, scope, tx.prompt_consent).await? {
        store::authorize::set_stage(svc.db(), &tx.id, "consent", Some(&user.id), None).await?;
        let scopes = scope.iter().map(describe_scope).collect();
        return Ok(Step::Show(Page::Consent { scopes }, browser.form(&tx.id, client)));
    }
    if !store::authorize::delete_request(svc.db(), &tx.id).await? {
        return Ok(already_done());
    }
    let tx = AuthorizeRequest { scope: scope.to_string(), ..tx.clone() };
    issue_code(svc, &tx, &browser.session).await
}

fn already_done() -> Step {
    error_page(
        Failure::BadRequest,
        "This sign-in was already completed or has expired. Go back to the application and start again.",
    )
}

/// A new code for the signed-in user, bound to everything the request named.
async fn issue_code(
    svc: &Services,
    tx: &AuthorizeRequest,
    session: &BrowserSession,
) -> Result<Step, OAuthError> {
    let (Some(user_id), Some(auth_time)) = (&session.user_id, session.auth_time) else {
        return Ok(already_done());
    };
    let code = secrets::random_token();
    let now = svc.now();
    let record = AuthorizationCode {
        hash: secrets::sha256_hex(&code),
        client_id: tx.client_id.clone(),
        user_id: user_id.clone(),
        redirect_uri: tx.redirect_uri.clone(),
        scope: tx.scope.clone(),
        nonce: tx.nonce.clone(),
        code_challenge: tx.code_challenge.clone(),
        amr: session.amr.clone(),
        auth_time,
        created_at: now,
        expires_at: now + CODE_TTL_SECS,
        used_at: None,
        session_id: None,
    };
    store::authorize::insert_code(svc.db(), &record).await?;
    let (redirect_uri, state, issuer) = back_of(svc, tx);
    let back = Back { redirect_uri: &redirect_uri, state: state.as_deref(), issuer: &issuer };
    Ok(Step::Redirect(back.with(&[("code", &code)])))
}

/// A scope in words for the consent page.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are on this server".into(),
        "profile" => "See your username".into(),
        "email" => "See your email address and whether it is verified".into(),
        "account" => "Manage your account: sessions, password and second factor".into(),
        "admin" => "Administer this server".into(),
        other => format!("Use the “{other}” permission on your behalf"),
    }
}

/// The fields every hosted form sends back.
pub struct FormBase {
    pub cookie: Option<String>,
    pub tx: String,
    pub csrf: String,
}

/// Checks that a form post comes from our page in this browser, for a request at `stage`.
async fn load(
    svc: &Services,
    base: &FormBase,
    stage: &str,
) -> Result<Result<(Browser, AuthorizeRequest, Client), Step>, OAuthError> {
    let Some(browser) = find_browser(svc, base.cookie.as_deref()).await? else {
        return Ok(Err(error_page(
            Failure::Forbidden,
            "Your browser did not send this site's sign-in cookie back. Allow cookies for this site, go back to the application and start again.",
        )));
    };
    let csrf_ok = secrets::constant_time_eq(&base.csrf, &browser.session.csrf_token);
    let tx = store::authorize::find_request(svc.db(), &base.tx, svc.now()).await?;
    let Some(tx) = tx.filter(|tx| csrf_ok && tx.browser_session == browser.session.id) else {
        return Ok(Err(error_page(
            Failure::Forbidden,
            "This form has expired or was not sent from this browser. Go back to the application and start again.",
        )));
    };
    if tx.stage != stage {
        return Ok(Err(already_done()));
    }
    let client = match ClientId::parse(&tx.client_id) {
        Some(id) => store::clients::find(svc.db(), &id).await?,
        None => None,
    };
    let Some(client) = client else {
        return Ok(Err(error_page(Failure::BadRequest, "The application is no longer registered here.")));
    };
    Ok(Ok((browser, tx, client)))
}

/// The login form: `username`, `password`.
pub async fn submit_login(
    svc: &Services,
    base: FormBase,
    username: &str,
    password: &str,
    meta: &RequestMeta,
) -> Outcome {
    submit_login_inner(svc, base, username, password, meta).await.unwrap_or_else(server_failure)
}

async fn submit_login_inner(
    svc: &Services,
    base: FormBase,
    username: &str,
    password: &str,
    meta: &RequestMeta,
) -> Result<Outcome, OAuthError> {
    let (mut browser, tx, client) = match load(svc, &base, "login").await? {
        Ok(found) => found,
        Err(step) => return Ok(Outcome { step, set_cookie: None }),
    };
    let again = |browser: &Browser, error: String, limited: Option<Limited>| {
        let page = Page::Login { username: Some(username.to_owned()), error: Some(error), limited };
        Step::Show(page, browser.form(&tx.id, &client))
    };
    let Ok(password) = Password::candidate(password.to_owned()) else {
        let step = again(&browser, "Enter your password.".into(), None);
        return Ok(browser.outcome(step));
    };
    // The token endpoint's password step, limits, lockout and audit included.
    let verified = match account::verify_login(svc, &client.id, username, &password, meta)
        .await
        .map_err(OAuthError::from)
    {
        Ok(verified) => verified,
        Err(OAuthError::InvalidGrant(text)) => {
            let step = again(&browser, sentence(&text), None);
            return Ok(browser.outcome(step));
        }
        Err(OAuthError::TooManyRequests(limited)) => {
            let text = format!("Too many attempts. Try again in {} seconds.", limited.retry_after_secs);
            let step = again(&browser, text, Some(limited));
            return Ok(browser.outcome(step));
        }
        Err(e) => return Err(e),
    };
    let user = &verified.user;
    let (redirect_uri, state, issuer) = back_of(svc, &tx);
    let back = Back { redirect_uri: &redirect_uri, state: state.as_deref(), issuer: &issuer };
    let scope = match scope_for_request(svc, &tx, user, &back).await? {
        Ok(scope) => scope,
        Err(step) => return Ok(browser.outcome(step)),
    };
    let due = mfa_otp::second_factor_due(svc, &client, user, verified.mfa_enrolled, &scope, meta).await;
    match mfa_otp::after_password(svc, &client, user, due, &scope, None, meta).await {
        Ok(amr) => {
            sign_in(svc, &mut browser, user, &amr, meta).await?;
            let step = proceed(svc, &mut browser, &tx, &client, user, &scope).await?;
            Ok(browser.outcome(step))
        }
        Err(OAuthError::MfaRequired { mfa_token }) => {
            let hash = secrets::sha256_hex(&mfa_token);
            store::authorize::set_stage(svc.db(), &tx.id, "second_factor", Some(&user.id), Some(&hash))
                .await?;
            let page = Page::SecondFactor { error: None, limited: None };
            let form = browser.form(&tx.id, &client);
            Ok(browser.outcome(Step::Show(page, form)))
        }
        Err(OAuthError::MfaEnrollmentRequired) => {
            store::authorize::delete_request(svc.db(), &tx.id).await?;
            let text = "this application requires a second factor; enrol a TOTP authenticator first";
            Ok(browser.outcome(back.error("access_denied", text)))
        }
        Err(e) => Err(e),
    }
}

/// "the account is not active" → "The account is not active."
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    format!("{first}{}.", chars.as_str())
}

/// The second-factor form: `otp` or `recovery_code`.
pub async fn submit_second_factor(
    svc: &Services,
    base: FormBase,
    otp: Option<String>,
    recovery_code: Option<String>,
    meta: &RequestMeta,
) -> Outcome {
    submit_second_factor_inner(svc, base, otp, recovery_code, meta).await.unwrap_or_else(server_failure)
}

async fn submit_second_factor_inner(
    svc: &Services,
    base: FormBase,
    otp: Option<String>,
    recovery_code: Option<String>,
    meta: &RequestMeta,
) -> Result<Outcome, OAuthError> {
    let (mut browser, tx, client) = match load(svc, &base, "second_factor").await? {
        Ok(found) => found,
        Err(step) => return Ok(Outcome { step, set_cookie: None }),
    };
    let again = |browser: &Browser, error: &str, limited: Option<Limited>| {
        let page = Page::SecondFactor { error: Some(error.to_owned()), limited };
        Step::Show(page, browser.form(&tx.id, &client))
    };
    let factor = match (otp.filter(|c| !c.trim().is_empty()), recovery_code.filter(|c| !c.trim().is_empty()))
    {
        (Some(code), _) => SecondFactor::Otp(code),
        (None, Some(code)) => SecondFactor::RecoveryCode(code),
        (None, None) => {
            let step =
                again(&browser, "Enter the code from your authenticator app, or a recovery code.", None);
            return Ok(browser.outcome(step));
        }
    };
    let (Some(hash), Some(pending)) = (tx.mfa_challenge.as_deref(), tx.user_id.as_deref()) else {
        return Ok(browser.outcome(already_done()));
    };
    match mfa_otp::redeem(svc, &client, hash, factor, meta).await {
        Ok((user, scope, amr)) if user.id == pending => {
            sign_in(svc, &mut browser, &user, &amr, meta).await?;
            let step = proceed(svc, &mut browser, &tx, &client, &user, &scope).await?;
            Ok(browser.outcome(step))
        }
        Ok(_) => Ok(browser.outcome(already_done())),
        Err(OAuthError::InvalidGrant(_)) if mfa_otp::challenge_alive(svc, hash).await? => {
            let step =
                again(&browser, "That code is not valid. Codes work once; wait for the next one.", None);
            Ok(browser.outcome(step))
        }
        Err(OAuthError::InvalidGrant(_)) => {
            // Too many wrong codes (or too slow): back to the password.
            store::authorize::set_stage(svc.db(), &tx.id, "login", None, None).await?;
            let error = Some("Too many wrong codes, or the time ran out. Sign in again.".to_owned());
            let page = Page::Login { username: None, error, limited: None };
            let form = browser.form(&tx.id, &client);
            Ok(browser.outcome(Step::Show(page, form)))
        }
        Err(OAuthError::TooManyRequests(limited)) => {
            let text = format!("Too many attempts. Try again in {} seconds.", limited.retry_after_secs);
            let step = again(&browser, &text, Some(limited));
            Ok(browser.outcome(step))
        }
        Err(OAuthError::InvalidScope(text)) => {
            store::authorize::delete_request(svc.db(), &tx.id).await?;
            let (redirect_uri, state, issuer) = back_of(svc, &tx);
            let back = Back { redirect_uri: &redirect_uri, state: state.as_deref(), issuer: &issuer };
            Ok(browser.outcome(back.error("invalid_scope", &text)))
        }
        Err(e) => Err(e),
    }
}

/// The consent form: `decision` = `allow` or `deny`.
pub async fn submit_consent(svc: &Services, base: FormBase, decision: &str, meta: &RequestMeta) -> Outcome {
    submit_consent_inner(svc, base, decision, meta).await.unwrap_or_else(server_failure)
}

async fn submit_consent_inner(
    svc: &Services,
    base: FormBase,
    decision: &str,
    meta: &RequestMeta,
) -> Result<Outcome, OAuthError> {
    let (browser, tx, client) = match load(svc, &base, "consent").await? {
        Ok(found) => found,
        Err(step) => return Ok(Outcome { step, set_cookie: None }),
    };
    // The consent belongs to the user who is signed in now, the one the page was shown to.
    let user_id = browser.session.user_id.clone().filter(|u| tx.user_id.as_ref() == Some(u));
    let user = match &user_id {
        Some(id) => store::users::find_by_id(svc.db(), id).await?.filter(|u| u.status == UserStatus::Active),
        None => None,
    };
    let Some(user) = user else { return Ok(browser.outcome(already_done())) };
    let (redirect_uri, state, issuer) = back_of(svc, &tx);
    let back = Back { redirect_uri: &redirect_uri, state: state.as_deref(), issuer: &issuer };
    let audit = |outcome: &'static str| AuditEvent {
        actor_id: Some(user.id.clone()),
        user_id: Some(user.id.clone()),
        client_id: Some(client.id.to_string()),
        detail: Some(format!("scope={}", tx.scope)),
        ..AuditEvent::new(AuditKind::Consent, outcome)
    };
    match decision {
        "allow" => {
            let scope = match scope_for_request(svc, &tx, &user, &back).await? {
                Ok(scope) => scope,
                Err(step) => return Ok(browser.outcome(step)),
            };
            // Remember the union: allowing a new scope does not forget the old ones.
            let before = store::authorize::find_consent(svc.db(), &user.id, client.id.as_str()).await?;
            let mut all: Vec<String> = scope.iter().map(str::to_owned).collect();
            all.extend(before.as_deref().map(split_words).unwrap_or_default());
            let remembered = Scope::from_words(all);
            store::authorize::put_consent(
                svc.db(),
                &user.id,
                client.id.as_str(),
                &remembered.to_string(),
                svc.now(),
            )
            .await?;
            svc.audit(audit("granted"), meta).await?;
            if !store::authorize::delete_request(svc.db(), &tx.id).await? {
                return Ok(browser.outcome(already_done()));
            }
            let tx = AuthorizeRequest { scope: scope.to_string(), ..tx.clone() };
            let step = issue_code(svc, &tx, &browser.session).await?;
            Ok(browser.outcome(step))
        }
        "deny" => {
            store::authorize::delete_request(svc.db(), &tx.id).await?;
            svc.audit(audit("denied"), meta).await?;
            Ok(browser.outcome(back.error("access_denied", "the user did not allow the request")))
        }
        _ => Ok(browser.outcome(error_page(Failure::BadRequest, "Choose Allow or Deny."))),
    }
}

#[derive(Deserialize)]
struct Hint {
    sub: String,
    aud: String,
}

/// The claims of an `id_token_hint`, read without verifying the token, on purpose: hints are
/// often expired ID tokens (OIDC Core §3.1.2.1, RP-Initiated Logout §2), and a hint can only
/// take something away: at /oauth/authorize a `sub` other than the signed-in user's means
/// "sign in again"; at logout the `aud` names a client, as `client_id` could, and the
/// redirect must still be one that client registered.
fn read_hint(hint: &str) -> Option<Hint> {
    let payload = URL_SAFE_NO_PAD.decode(hint.split('.').nth(1)?).ok()?;
    serde_json::from_slice(&payload).ok()
}

/// What `/oauth/logout` ends with.
#[derive(Debug)]
pub struct LogoutOutcome {
    /// The registered post-logout URI with `state`, or `None` for the signed-out page.
    pub redirect: Option<String>,
}

/// RP-initiated logout (OIDC RP-Initiated Logout 1.0): ends the browser session, then
/// returns to the client only to a URI it registered for that.
pub async fn logout(
    svc: &Services,
    cookie: Option<&str>,
    id_token_hint: Option<&str>,
    client_id: Option<&str>,
    post_logout_redirect_uri: Option<&str>,
    state: Option<&str>,
    meta: &RequestMeta,
) -> Result<LogoutOutcome, OAuthError> {
    if let Some(browser) = find_browser(svc, cookie).await? {
        store::authorize::delete_browser_session(svc.db(), &browser.session.id).await?;
        if let Some(user_id) = browser.session.user_id {
            let event = AuditEvent {
                actor_id: Some(user_id.clone()),
                user_id: Some(user_id),
                ..AuditEvent::new(AuditKind::BrowserSignOut, "success")
            };
            svc.audit(event, meta).await?;
        }
    }
    let Some(uri) = post_logout_redirect_uri else { return Ok(LogoutOutcome { redirect: None }) };
    let hinted = id_token_hint.and_then(read_hint).map(|h| h.aud);
    // The client is named by client_id or by the hint's audience; if both, they agree.
    let named = match (client_id, hinted.as_deref()) {
        (Some(a), Some(b)) if a != b => None,
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    let client = match named.and_then(ClientId::parse) {
        Some(id) => store::clients::find(svc.db(), &id).await?,
        None => None,
    };
    let redirect = client.filter(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri)).and_then(|_| {
        let mut url = url::Url::parse(uri).ok()?;
        if let Some(state) = state {
            url.query_pairs_mut().append_pair("state", state);
        }
        Some(url.to_string())
    });
    Ok(LogoutOutcome { redirect })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_challenge(challenge));
        assert!(pkce_verifies(verifier, challenge));
        assert!(!pkce_verifies(challenge, challenge));
        assert!(!pkce_verifies("short", challenge));
    }

    #[test]
    fn prompt_values() {
        assert!(parse_prompt(Some("none")).unwrap().none);
        assert!(parse_prompt(Some("login consent")).is_ok());
        assert!(parse_prompt(Some("none login")).is_err());
        assert!(parse_prompt(Some("bogus")).is_err());
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let pairs = vec![("state".to_owned(), "a".to_owned()), ("state".to_owned(), "b".to_owned())];
        assert!(AuthorizeParams::from_pairs(pairs).is_err());
        let pairs = vec![("foo".to_owned(), "a".to_owned()), ("foo".to_owned(), "b".to_owned())];
        assert!(AuthorizeParams::from_pairs(pairs).is_ok());
    }
}
