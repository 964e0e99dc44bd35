//! Token introspection (RFC 7662).

use serde::Serialize;

use super::client::{self, PresentedClient};
use super::error::OAuthError;
use super::tokens::{self, AccessClaims, Standing};
use crate::model::Client;
use crate::services::Services;
use crate::store::{self};

/// What an active token looks like to a resource server (RFC 7662 §2.2).
#[derive(Debug, Serialize)]
pub struct ActiveToken {
    pub active: bool,
    pub scope: String,
    pub client_id: String,
    pub token_type: &'static str,
    pub exp: i64,
    pub iat: i64,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

/// `None` is `{"active": false}`: unknown, expired, revoked, malformed, or not the
/// caller's to see — the answer never says which.
pub async fn introspect(
    svc: &Services,
    presented: &PresentedClient,
    token: &str,
) -> Result<Option<ActiveToken>, OAuthError> {
    let caller = client::authenticate(svc, presented).await?;
    if caller.is_public() {
        // Introspection tells secrets about tokens: only authenticated clients may ask.
        return Err(OAuthError::InvalidClient);
    }
    if tokens::looks_like_jwt(token) {
        let claims = tokens::active_access_token(svc, token).await?;
        return Ok(claims.filter(|c| may_see(&caller, c, svc.issuer())).map(active_access));
    }
    let Some(presented) = tokens::find_refresh_token(svc, token).await? else {
        return Ok(None);
    };
    let now = svc.now();
    let record = &presented.record;
    let session = &record.session;
    let live = presented.standing == Standing::Current
        && record.expires_at > now
        && session.revoked_at.is_none()
        && session.expires_at > now
        && session.client_id == caller.id.as_str();
    Ok(live.then(|| ActiveToken {
        active: true,
        scope: record.scope.to_string(),
        client_id: session.client_id.clone(),
        token_type: "refresh_token",
        exp: record.expires_at,
        iat: record.issued_at,
        sub: session.user_id.clone(),
        aud: None,
        iss: Some(svc.issuer().to_owned()),
        jti: None,
        auth_time: Some(session.auth_time),
        amr: Some(store::split_words(&session.amr)),
        roles: None,
    }))
}

/// RFC 7662 §4: the token's own client, or a resource server the token names — by the
/// caller's id or one of its registered audiences. The issuer's audience never counts: it
/// is latchkey's own, and naming it would show every account token to any client.
fn may_see(caller: &Client, claims: &AccessClaims, issuer: &str) -> bool {
    claims.client_id == caller.id.as_str()
        || claims
            .aud
            .iter()
            .filter(|a| *a != issuer)
            .any(|a| a == caller.id.as_str() || caller.audiences.contains(a))
}

fn active_access(c: AccessClaims) -> ActiveToken {
    ActiveToken {
        active: true,
        scope: c.scope.to_string(),
        client_id: c.client_id,
        token_type: "Bearer",
        exp: c.exp,
        iat: c.iat,
        sub: c.sub,
        aud: Some(c.aud),
        iss: Some(c.iss),
        jti: Some(c.jti),
        auth_time: c.auth_time,
        amr: c.amr,
        roles: c.roles,
    }
}
