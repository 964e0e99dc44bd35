//! The one place tokens are minted. Every grant ends here, with a subject, a client and a
//! scope; this decides audiences, lifetimes, refresh tokens and ID tokens.

use serde::Serialize;

use super::error::OAuthError;
use super::tokens::{ACCESS_TOKEN_TYP, ACCOUNT_SCOPE, ADMIN_SCOPE, AccessClaims, ID_TOKEN_TYP, IdClaims};
use crate::account::CheckedLogin;
use crate::crypto::refresh::Named;
use crate::crypto::secrets;
use crate::model::RequestMeta;
use crate::model::User;
use crate::model::{Client, GrantType, Scope};
use crate::services::{Services, with_meta};
use crate::store::audit::{AuditEvent, AuditKind};
use crate::store::sessions::{FIRST_GENERATION, NewRefresh, Session, SignIn};
use crate::store::users::LoginRecord;
use crate::store::{self, join_words};

/// A session may be refreshed for at most this many refresh-token lifetimes in all,
/// however active it stays (the absolute lifetime; the setting is the idle one).
pub const ABSOLUTE_LIFETIME_FACTOR: i64 = 4;

/// RFC 6749 §5.1 success body.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedTokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// How the user proved who they are (RFC 8176 `amr` values) and when.
#[derive(Debug, Clone)]
pub struct UserAuth {
    pub amr: Vec<String>,
    pub auth_time: i64,
    /// The authorization request's `nonce`, echoed in the first ID token (OIDC Core §2).
    pub nonce: Option<String>,
}

/// A fresh login: records the session (and its first refresh token) before any token
/// leaves, so everything handed out can be revoked.
pub async fn start_session(
    svc: &Services,
    client: &Client,
    user: &User,
    scope: Scope,
    auth: UserAuth,
    meta: &RequestMeta,
) -> Result<IssuedTokens, OAuthError> {
    Ok(open_session(svc, client, user, scope, auth, meta).await?.0)
}

/// `start_session`, also returning the new session's id (a redeemed authorization code
/// remembers it, to end the session if the code comes back).
pub async fn open_session(
    svc: &Services,
    client: &Client,
    user: &User,
    scope: Scope,
    auth: UserAuth,
    meta: &RequestMeta,
) -> Result<(IssuedTokens, String), OAuthError> {
    let opening = Opening::new(svc, client, user, scope, auth, meta);
    if !opening.store(svc, &SignIn::Earlier { security_stamp: user.security_stamp }).await? {
        return Err(OAuthError::invalid_grant("the password changed during sign-in; sign in again"));
    }
    opening.into_tokens(svc, client, user).await
}

/// `start_session` straight from a password check: the login is written in the session's
/// transaction, one commit for both.
pub async fn start_session_at_login(
    svc: &Services,
    client: &Client,
    login: CheckedLogin,
    scope: Scope,
    auth: UserAuth,
    meta: &RequestMeta,
) -> Result<IssuedTokens, OAuthError> {
    let opening = Opening::new(svc, client, login.user(), scope, auth, meta);
    let write = async |record: LoginRecord<'_>| {
        Ok::<_, OAuthError>(opening.store(svc, &SignIn::Password(record)).await?.then_some(()))
    };
    let (verified, ()) = login.record_through(svc, &client.id, meta, write).await?;
    Ok(opening.into_tokens(svc, client, &verified.user).await?.0)
}

/// A session about to be stored: with its first refresh token when the client gets one,
/// and the audit record of the login.
struct Opening {
    session: Session,
    refresh: Option<String>,
    refresh_hash: Option<String>,
    refresh_expires_at: i64,
    nonce: Option<String>,
    event: AuditEvent,
}

impl Opening {
    fn new(
        svc: &Services,
        client: &Client,
        user: &User,
        scope: Scope,
        auth: UserAuth,
        meta: &RequestMeta,
    ) -> Self {
        let now = svc.now();
        let refresh_ttl = svc.settings().refresh_token_ttl.as_secs() as i64;
        let session_id = uuid::Uuid::new_v4();
        let session = Session {
            id: session_id.to_string(),
            user_id: user.id.clone(),
            client_id: client.id.to_string(),
            scope,
            amr: join_words(&auth.amr),
            auth_time: auth.auth_time,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.as_deref().map(|ua| ua.chars().take(512).collect()),
            created_at: now,
            last_used_at: now,
            expires_at: now + refresh_ttl * ABSOLUTE_LIFETIME_FACTOR,
            revoked_at: None,
        };
        let refresh = client
            .allows(GrantType::RefreshToken)
            .then(|| svc.refresh_tokens().mint(Named { session_id, generation: FIRST_GENERATION }));
        let event = AuditEvent {
            actor_id: Some(user.id.clone()),
            user_id: Some(user.id.clone()),
            client_id: Some(client.id.to_string()),
            detail: Some(format!("amr={} session={}", session.amr, session.id)),
            ..AuditEvent::new(AuditKind::Login, "success")
        };
        Opening {
            refresh_hash: refresh.as_deref().map(secrets::sha256_hex),
            refresh_expires_at: refresh_expiry(svc, &session, now),
            refresh,
            session,
            nonce: auth.nonce,
            event: with_meta(event, meta),
        }
    }

    /// Stores it all in one transaction; `false` (nothing stored) when the user row
    /// refuses `sign_in`.
    async fn store(&self, svc: &Services, sign_in: &SignIn<'_>) -> Result<bool, OAuthError> {
        let refresh = self.refresh_hash.as_deref().map(|hash| NewRefresh {
            hash,
            scope: &self.session.scope,
            expires_at: self.refresh_expires_at,
        });
        Ok(store::sessions::create(svc.db(), &self.session, refresh, &self.event, sign_in).await?)
    }

    /// The tokens of the stored session, and its id.
    async fn into_tokens(
        self,
        svc: &Services,
        client: &Client,
        user: &User,
    ) -> Result<(IssuedTokens, String), OAuthError> {
        let session = &self.session;
        let response =
            mint(svc, client, user, &session.scope, session, self.refresh, self.nonce.as_deref()).await?;
        Ok((response, self.session.id))
    }
}

/// When a refresh token minted now for `session` stops working.
pub fn refresh_expiry(svc: &Services, session: &Session, now: i64) -> i64 {
    (now + svc.settings().refresh_token_ttl.as_secs() as i64).min(session.expires_at)
}

/// Tokens for a user within an existing session (login or refresh).
pub async fn for_session(
    svc: &Services,
    client: &Client,
    user: &User,
    scope: &Scope,
    session: &Session,
    refresh_token: Option<String>,
) -> Result<IssuedTokens, OAuthError> {
    mint(svc, client, user, scope, session, refresh_token, None).await
}

async fn mint(
    svc: &Services,
    client: &Client,
    user: &User,
    scope: &Scope,
    session: &Session,
    refresh_token: Option<String>,
    nonce: Option<&str>,
) -> Result<IssuedTokens, OAuthError> {
    let amr = store::split_words(&session.amr);
    let claims = AccessClaims {
        auth_time: Some(session.auth_time),
        amr: Some(amr.clone()),
        roles: Some(user.roles.clone()),
        sid: Some(session.id.clone()),
        ..access_claims(svc, client, &user.id, scope)
    };
    let id_token = if scope.contains("openid") {
        let id = IdClaims {
            iss: svc.issuer(),
            sub: &user.id,
            aud: client.id.as_str(),
            azp: client.id.as_str(),
            exp: claims.exp,
            iat: claims.iat,
            auth_time: session.auth_time,
            nonce,
            amr: &amr,
            sid: &session.id,
            preferred_username: scope.contains("profile").then(|| user.username.as_str()),
            email: scope.contains("email").then(|| user.email.as_str()),
            email_verified: scope.contains("email").then_some(user.email_verified),
        };
        Some(svc.keys().sign(ID_TOKEN_TYP, &id).await?)
    } else {
        None
    };
    token_response(svc, claims, refresh_token, id_token).await
}

/// Tokens for a client acting on its own behalf: no user, no session, no refresh token.
/// Audited before the token leaves: an issue that cannot be recorded does not happen.
pub async fn for_client(
    svc: &Services,
    client: &Client,
    scope: &Scope,
    meta: &RequestMeta,
) -> Result<IssuedTokens, OAuthError> {
    let claims = access_claims(svc, client, client.id.as_str(), scope);
    let tokens = token_response(svc, claims, None, None).await?;
    let event = AuditEvent {
        client_id: Some(client.id.to_string()),
        detail: Some(format!("grant=client_credentials scope={scope}")),
        ..AuditEvent::new(AuditKind::TokenIssued, "success")
    };
    svc.audit(event, meta).await?;
    Ok(tokens)
}

/// The claims every access token carries (RFC 9068 §2.2); user tokens add theirs.
fn access_claims(svc: &Services, client: &Client, sub: &str, scope: &Scope) -> AccessClaims {
    let now = svc.now();
    AccessClaims {
        iss: svc.issuer().to_owned(),
        sub: sub.to_owned(),
        aud: audiences(svc, client, scope),
        exp: now + svc.settings().access_token_ttl.as_secs() as i64,
        iat: now,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client.id.to_string(),
        scope: scope.clone(),
        auth_time: None,
        amr: None,
        roles: None,
        sid: None,
    }
}

/// The audience model: a token is for the APIs its client was registered for (or the
/// client itself), and for latchkey's own APIs only when its scope asks for them. A token
/// handed to a resource server therefore cannot be replayed against `/account` or `/admin`.
fn audiences(svc: &Services, client: &Client, scope: &Scope) -> Vec<String> {
    let mut aud = client.token_audiences();
    let own_api = scope.contains(ACCOUNT_SCOPE) || scope.contains(ADMIN_SCOPE);
    if own_api && !aud.iter().any(|a| a == svc.issuer()) {
        aud.push(svc.issuer().to_owned());
    }
    aud
}

async fn token_response(
    svc: &Services,
    claims: AccessClaims,
    refresh_token: Option<String>,
    id_token: Option<String>,
) -> Result<IssuedTokens, OAuthError> {
    Ok(IssuedTokens {
        access_token: svc.keys().sign(ACCESS_TOKEN_TYP, &claims).await?,
        token_type: "Bearer",
        expires_in: (claims.exp - claims.iat) as u64,
        scope: claims.scope.to_string(),
        refresh_token,
        id_token,
    })
}
