//! Token revocation (RFC 7009).

use super::client::{self, PresentedClient};
use super::error::OAuthError;
use super::tokens::{ACCESS_TOKEN_TYP, AccessClaims, find_refresh_token, looks_like_jwt};
use crate::model::{Client, RequestMeta};
use crate::services::Services;
use crate::store::audit::{AuditEvent, AuditKind};
use crate::store::{self, StoreError};

/// Revokes a token the calling client owns. Unknown tokens, and tokens of other clients,
/// are a silent success (RFC 7009 §2.2): the answer reveals nothing about them.
pub async fn revoke(
    svc: &Services,
    presented: &PresentedClient,
    token: &str,
    meta: &RequestMeta,
) -> Result<(), OAuthError> {
    let caller = client::authenticate(svc, presented).await?;
    if looks_like_jwt(token) {
        if let Some(claims) = svc.keys().verify::<AccessClaims>(token, ACCESS_TOKEN_TYP, svc.issuer()).await
            && claims.client_id == caller.id.as_str()
        {
            store::sessions::revoke_access_token(svc.db(), &claims.jti, claims.exp).await?;
            audit_revocation(svc, &caller, claims.user_id(), "access_token", meta).await?;
        }
        return Ok(());
    }
    if let Some(presented) = find_refresh_token(svc, token).await?
        && presented.record.session.client_id == caller.id.as_str()
    {
        let session = &presented.record.session;
        store::sessions::revoke(svc.db(), &session.id, svc.now()).await?;
        audit_revocation(svc, &caller, Some(&session.user_id), "refresh_token", meta).await?;
    }
    Ok(())
}

async fn audit_revocation(
    svc: &Services,
    caller: &Client,
    user_id: Option<&str>,
    kind: &str,
    meta: &RequestMeta,
) -> Result<(), StoreError> {
    svc.audit(
        AuditEvent {
            user_id: user_id.map(str::to_owned),
            client_id: Some(caller.id.to_string()),
            detail: Some(format!("type={kind}")),
            ..AuditEvent::new(AuditKind::TokenRevoked, "success")
        },
        meta,
    )
    .await
}
