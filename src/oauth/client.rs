//! Registered clients and their authentication (RFC 6749 §2.3).

use serde::Serialize;

use super::error::OAuthError;
use crate::crypto::secrets;
use crate::model::{Client, ClientId, GrantType, Scope};
use crate::services::Services;
use crate::store;

/// The scope a request ends up with: the requested one if the client may have all of
/// it, otherwise `invalid_scope`; without a request, everything the client may have.
pub fn granted_scope(client: &Client, requested: Option<&Scope>) -> Result<Scope, OAuthError> {
    match requested {
        None => Ok(client.scopes.clone()),
        Some(scope) if scope.is_subset(&client.scopes) => Ok(scope.clone()),
        Some(_) => Err(OAuthError::InvalidScope("the requested scope is not allowed for this client".into())),
    }
}

/// What the client presented; the HTTP layer fills it from Basic auth or the form.
#[derive(Debug, Default)]
pub struct PresentedClient {
    pub id: Option<String>,
    pub secret: Option<String>,
}

impl PresentedClient {
    /// The user and password of HTTP Basic as `client_secret_basic` sends them: each
    /// application/x-www-form-urlencoded first (RFC 6749 §2.3.1).
    pub fn from_basic(username: &str, password: &str) -> PresentedClient {
        PresentedClient { id: Some(form_decode(username)), secret: Some(form_decode(password)) }
    }
}

fn form_decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// A new client as the CLI or the admin API describe it.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub id: Option<ClientId>,
    pub public: bool,
    pub grants: Vec<GrantType>,
    pub scopes: Scope,
    pub audiences: Vec<String>,
    pub require_mfa: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub first_party: bool,
}

/// A client as shown once after registration: the only time the secret is visible.
#[derive(Debug, Serialize)]
pub struct RegisteredClient {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub name: String,
    pub public: bool,
    pub grants: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub require_mfa: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub first_party: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("a client with this id already exists")]
    Duplicate,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

pub async fn register(svc: &Services, new: NewClient) -> Result<RegisteredClient, RegisterError> {
    check_rules(&new.name, new.public, &new.grants)?;
    check_redirect_uris(&new.grants, &new.redirect_uris, &new.post_logout_redirect_uris)?;
    if new.id.as_ref().is_some_and(ClientId::looks_like_user_id) {
        return Err(RegisterError::Invalid("a client id must not be shaped like a user id (a UUID)".into()));
    }
    let id = new.id.unwrap_or_else(|| {
        ClientId::parse(&uuid::Uuid::new_v4().simple().to_string()).expect("hex is URL-safe")
    });
    let secret = (!new.public).then(new_secret);
    let client = Client {
        id,
        name: new.name.trim().to_owned(),
        secret_hash: secret.as_ref().map(|(_, hash)| hash.clone()),
        grants: new.grants,
        scopes: new.scopes,
        audiences: new.audiences,
        require_mfa: new.require_mfa,
        redirect_uris: new.redirect_uris,
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        first_party: new.first_party,
        created_at: svc.now(),
    };
    store::clients::insert(svc.db(), &client).await.map_err(|e| {
        if e.is_unique_violation() { RegisterError::Duplicate } else { RegisterError::Store(e) }
    })?;
    Ok(RegisteredClient::new(&client, secret.map(|(secret, _)| secret)))
}

/// Rules every stored client keeps, at registration and at every change.
pub fn check_rules(name: &str, public: bool, grants: &[GrantType]) -> Result<(), RegisterError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(RegisterError::Invalid("name must be 1 to 200 characters".into()));
    }
    if public && grants.contains(&GrantType::ClientCredentials) {
        return Err(RegisterError::Invalid("a public client cannot use client_credentials".into()));
    }
    Ok(())
}

/// A client with the authorization_code grant needs somewhere to send the code; every URI
/// must be one a browser can be sent to safely (RFC 8252 §7, RFC 9700 §4.1).
pub fn check_redirect_uris(
    grants: &[GrantType],
    redirect_uris: &[String],
    post_logout_redirect_uris: &[String],
) -> Result<(), RegisterError> {
    if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(RegisterError::Invalid(
            "the authorization_code grant needs at least one redirect URI".into(),
        ));
    }
    let bad: Vec<String> = redirect_uris
        .iter()
        .chain(post_logout_redirect_uris)
        .filter(|uri| !redirect_uri_allowed(uri))
        .map(|uri| {
            format!(
                "{uri:?} is not a redirect URI: use https, http on a loopback address or localhost, \
                 or an app's own reverse-domain scheme (com.example.app:/cb); no fragment"
            )
        })
        .collect();
    if bad.is_empty() { Ok(()) } else { Err(RegisterError::Invalid(bad.join("; "))) }
}

fn redirect_uri_allowed(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else { return false };
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let scheme_ok = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => loopback,
        // RFC 8252 §7.1: a private-use scheme is a reverse domain name.
        other => other.contains('.'),
    };
    scheme_ok && url.fragment().is_none() && uri.len() <= 2000 && !uri.chars().any(char::is_whitespace)
}

/// A fresh client secret and the hash to store; only the hash is ever kept.
pub fn new_secret() -> (String, String) {
    let secret = secrets::random_token();
    let hash = secrets::sha256_hex(&secret);
    (secret, hash)
}

impl RegisteredClient {
    /// The public view of `client`, with `secret` when it was just generated.
    pub fn new(client: &Client, secret: Option<String>) -> RegisteredClient {
        RegisteredClient {
            client_id: client.id.to_string(),
            client_secret: secret,
            name: client.name.clone(),
            public: client.is_public(),
            grants: client.grants.iter().map(|g| g.as_str().to_owned()).collect(),
            scopes: client.scopes.iter().map(str::to_owned).collect(),
            audiences: client.audiences.clone(),
            require_mfa: client.require_mfa,
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            first_party: client.first_party,
        }
    }
}

/// Authenticates the calling client. Every failure is the same `invalid_client`, and a
/// secret is compared in constant time whether or not the client exists.
pub async fn authenticate(svc: &Services, presented: &PresentedClient) -> Result<Client, OAuthError> {
    let client = authenticate_quietly(svc, presented).await?;
    crate::telemetry::note_client(client.id.as_str());
    Ok(client)
}

async fn authenticate_quietly(svc: &Services, presented: &PresentedClient) -> Result<Client, OAuthError> {
    let id = presented.id.as_deref().and_then(ClientId::parse).ok_or(OAuthError::InvalidClient)?;
    let client = store::clients::find(svc.db(), &id).await?;
    let presented_hash = presented.secret.as_deref().map(secrets::sha256_hex);
    match (client, presented_hash) {
        (Some(client), None) if client.is_public() => Ok(client),
        (Some(client), Some(hash)) => match &client.secret_hash {
            Some(stored) if secrets::constant_time_eq(stored, &hash) => Ok(client),
            _ => Err(OAuthError::InvalidClient),
        },
        (None, Some(hash)) => {
            // Spend the same comparison so an unknown id is not faster than a wrong secret.
            let _ = secrets::constant_time_eq(&hash, &secrets::sha256_hex(""));
            Err(OAuthError::InvalidClient)
        }
        _ => Err(OAuthError::InvalidClient),
    }
}
