//! Security schemes (documented in the OpenAPI file), and the extractors handlers take
//! instead of repeating the plumbing: the request's meta data, the signed-in account user,
//! the admin.

use std::net::IpAddr;

use ipnet::IpNet;
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::auth::{Basic, Bearer};
use poem_openapi::{OAuthScopes, SecurityScheme};

use crate::admin::{self, Actor};
use crate::model::RequestMeta;
use crate::oauth::client::PresentedClient;
use crate::oauth::tokens::{self, AccessClaims, BearerError};
use crate::services::Services;

/// `client_secret_basic`: client id and secret, each form-encoded, in HTTP Basic.
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
pub struct ClientSecretBasic(Basic);

/// Client authentication: Basic, or `client_id` (+ `client_secret`) in the form.
#[derive(SecurityScheme)]
pub enum ClientAuth {
    ClientSecretBasic(ClientSecretBasic),
    #[oai(fallback)]
    InForm,
}

/// A user access token as `Authorization: Bearer …`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerToken(Bearer);

/// Scopes the docs' Authorize dialog offers (a client may allow others).
#[derive(OAuthScopes)]
#[allow(dead_code)] // only read by the OpenAPI document
pub enum DocsScopes {
    /// OpenID Connect: an ID token, and access to userinfo.
    #[oai(rename = "openid")]
    Openid,
    /// `preferred_username` in the ID token and userinfo.
    #[oai(rename = "profile")]
    Profile,
    /// `email` and `email_verified` in the ID token and userinfo.
    #[oai(rename = "email")]
    Email,
    /// The self-service account API (`/account/…`).
    #[oai(rename = "account")]
    Account,
    /// The admin API (`/admin/…`); granted only to users with role `admin`.
    #[oai(rename = "admin")]
    Admin,
}

/// The docs' Authorize button for scripts: logs in with the password grant.
#[derive(SecurityScheme)]
#[oai(ty = "oauth2", flows(password(token_url = "/oauth/token", scopes = "DocsScopes")))]
pub struct PasswordFlow(Bearer);

/// The docs' Authorize button for people: signs in on latchkey's own pages with the
/// authorization code flow and PKCE, as the public client `docs`.
#[derive(SecurityScheme)]
#[oai(
    ty = "oauth2",
    flows(authorization_code(
        authorization_url = "/oauth/authorize",
        token_url = "/oauth/token",
        scopes = "DocsScopes"
    ))
)]
pub struct CodeFlow(Bearer);

/// Any way of presenting a user's access token.
#[derive(SecurityScheme)]
pub enum UserToken {
    BearerToken(BearerToken),
    CodeFlow(CodeFlow),
    PasswordFlow(PasswordFlow),
}

/// The signed-in user of an `/account/…` route: a user token with scope `account`, and
/// the session (refresh family) it belongs to.
pub struct AccountCaller {
    pub user_id: String,
    pub session_id: String,
    pub claims: AccessClaims,
}

impl UserToken {
    pub fn token(&self) -> &str {
        match self {
            UserToken::BearerToken(b) => &b.0.token,
            UserToken::CodeFlow(b) => &b.0.token,
            UserToken::PasswordFlow(b) => &b.0.token,
        }
    }

    /// Admits the token to the account API.
    pub async fn account(&self, svc: &Services) -> Result<AccountCaller, BearerError> {
        let claims = tokens::authenticate_bearer(svc, self.token(), tokens::ACCOUNT_SCOPE).await?;
        let session_id = claims.sid.clone().ok_or(BearerError::INACTIVE)?;
        Ok(AccountCaller { user_id: claims.sub.clone(), session_id, claims })
    }

    /// Admits the token to the admin API: scope `admin`, and role `admin` right now.
    pub async fn admin(&self, svc: &Services, meta: RequestMeta) -> Result<Actor, BearerError> {
        admin::authorize(svc, self.token(), meta).await
    }
}

/// Who is asking (client IP behind `--trusted-proxies`, user agent), as a handler argument.
pub struct Meta(pub RequestMeta);

impl<'a> FromRequest<'a> for Meta {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Meta> {
        let trusted = req.data::<Services>().map(|svc| svc.settings().trusted_proxies.as_slice());
        Ok(Meta(request_meta(req, trusted.unwrap_or_default())))
    }
}

/// Combines Basic credentials with the form's `client_id`/`client_secret`. Using two
/// methods at once is refused (RFC 6749 §2.3).
pub fn presented_client(
    auth: &ClientAuth,
    form_id: Option<String>,
    form_secret: Option<String>,
) -> Result<PresentedClient, &'static str> {
    match auth {
        ClientAuth::ClientSecretBasic(ClientSecretBasic(basic)) => {
            if form_secret.is_some() {
                return Err("use one client authentication method, not two");
            }
            let presented = PresentedClient::from_basic(&basic.username, &basic.password);
            if form_id.is_some() && form_id != presented.id {
                return Err("client_id differs from the authenticated client");
            }
            Ok(presented)
        }
        ClientAuth::InForm => Ok(PresentedClient { id: form_id, secret: form_secret }),
    }
}

/// The client's address: the socket peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(req: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded.into_iter().rev().find(|ip| !is_trusted(ip)).or(Some(peer))
}

fn request_meta(req: &Request, trusted: &[IpNet]) -> RequestMeta {
    RequestMeta {
        ip: client_ip(req, trusted).map(|ip| ip.to_string()),
        user_agent: req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    }
}
