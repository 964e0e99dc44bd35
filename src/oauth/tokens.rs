//! Token models: RFC 9068 access-token claims, ID-token claims, and the checks that make a
//! presented access token "active".

use serde::{Deserialize, Deserializer, Serialize};

use crate::crypto::secrets;
use crate::model::Scope;
use crate::services::Services;
use crate::store::sessions::RefreshRecord;
use crate::store::{self, StoreError};

pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
pub const ID_TOKEN_TYP: &str = "JWT";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// The session (refresh family) the token belongs to; absent for client tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AccessClaims {
    /// A user token (as opposed to a client-credentials token) has a session.
    pub fn user_id(&self) -> Option<&str> {
        self.sid.as_ref().map(|_| self.sub.as_str())
    }
}

#[derive(Debug, Serialize)]
pub struct IdClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub azp: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    pub amr: &'a [String],
    pub sid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Verifies signature, header, issuer and expiry, then asks the database whether the token,
/// its session, its user and its client are still good. `Ok(None)` means "not active".
pub async fn active_access_token(svc: &Services, token: &str) -> Result<Option<AccessClaims>, StoreError> {
    let Some(claims) = svc.keys().verify::<AccessClaims>(token, ACCESS_TOKEN_TYP, svc.issuer()).await else {
        return Ok(None);
    };
    let state = store::sessions::access_token_state(
        svc.db(),
        &claims.jti,
        claims.sid.as_deref(),
        claims.user_id(),
        &claims.client_id,
        claims.user_id().is_none().then_some(claims.iat),
        svc.now(),
    )
    .await?;
    let live = !state.jti_revoked
        && state.client_valid
        && state.session_live.unwrap_or(true)
        && state.user_active.unwrap_or(true);
    Ok(live.then_some(claims))
}

/// A refresh token this server made, and where it stands in its session.
#[derive(Debug, Clone)]
pub struct PresentedRefresh {
    pub record: RefreshRecord,
    pub standing: Standing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The session's current token.
    Current,
    /// The token the current one replaced: a retry after a lost response may use it
    /// within `--refresh-reuse-grace`.
    Previous,
    /// An older token of the session: a second use, which ends the session.
    Spent,
}

/// The refresh token `token` is, if this server made it. A string without the shape of
/// ours costs no database lookup, so a flood of junk at the token, introspection or
/// revocation endpoint stays off the database; one that names a session (`crypto::refresh`)
/// is read by the session's id, one from before generations by its hash. A token with a
/// valid MAC whose hash the session does not hold for its generation is nobody's: it
/// could only come from someone holding the secret key, and is refused without ending
/// the session.
pub async fn find_refresh_token(svc: &Services, token: &str) -> Result<Option<PresentedRefresh>, StoreError> {
    if let Some(named) = svc.refresh_tokens().read(token) {
        let hash = secrets::sha256_hex(token);
        let holds =
            |stored: &Option<String>| stored.as_deref().is_some_and(|s| secrets::constant_time_eq(s, &hash));
        let Some(record) = store::sessions::find_refresh(svc.db(), &named.session_id.to_string()).await?
        else {
            return Ok(None);
        };
        let current = record.generation;
        let standing = match named.generation {
            g if g == current && holds(&record.hash) => Standing::Current,
            g if g == current - 1 && holds(&record.previous_hash) => Standing::Previous,
            g if g < current - 1 => Standing::Spent,
            _ => return Ok(None),
        };
        return Ok(Some(PresentedRefresh { record, standing }));
    }
    if !secrets::is_random_token(token) {
        return Ok(None);
    }
    // From before generations: generation 0 of its session while unspent.
    let Some(record) = store::sessions::find_legacy_refresh(svc.db(), &secrets::sha256_hex(token)).await?
    else {
        return Ok(None);
    };
    let unspent = record.legacy.as_ref().is_some_and(|l| l.used_at.is_none());
    let standing = match record.generation {
        0 if unspent => Standing::Current,
        1 if unspent => Standing::Previous,
        _ => Standing::Spent,
    };
    Ok(Some(PresentedRefresh { record, standing }))
}

/// Scopes that name latchkey's own APIs. Only a token granted one of them carries the
/// issuer in `aud` (see `oauth::issue`), so a token meant for another API is worth nothing
/// here (RFC 9068 §4, RFC 9700 §2.3).
pub const ACCOUNT_SCOPE: &str = "account";
pub const ADMIN_SCOPE: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    /// RFC 6750 `invalid_token`, with the reason for the developer.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// RFC 6750 `insufficient_scope`: the token lacks `scope`.
    #[error("the access token lacks the scope {scope}")]
    InsufficientScope { scope: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BearerError {
    pub const INACTIVE: BearerError =
        BearerError::InvalidToken("the access token is missing, invalid, expired or revoked");
}

/// Authenticates a user's Bearer token for a route that needs `scope`: the token must be
/// active, belong to a user, and hold the scope. For latchkey's own APIs (`account`,
/// `admin`) it must also name this issuer among its audiences.
pub async fn authenticate_bearer(
    svc: &Services,
    token: &str,
    scope: &'static str,
) -> Result<AccessClaims, BearerError> {
    let claims = active_access_token(svc, token).await?.ok_or(BearerError::INACTIVE)?;
    if claims.user_id().is_none() {
        return Err(BearerError::InvalidToken(
            "this access token was issued to a client for itself (client credentials), not for a user",
        ));
    }
    if !claims.scope.contains(scope) {
        return Err(BearerError::InsufficientScope { scope });
    }
    let own_api = scope == ACCOUNT_SCOPE || scope == ADMIN_SCOPE;
    if own_api && !claims.aud.iter().any(|a| a == svc.issuer()) {
        return Err(BearerError::InvalidToken("the access token is not meant for this server"));
    }
    Ok(claims)
}

/// A compact JWS has three dot-separated parts; refresh tokens have none.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}
