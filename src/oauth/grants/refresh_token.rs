//! Refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

use crate::crypto::secrets;
use crate::limits::{self, Limit};
use crate::model::Client;
use crate::model::RequestMeta;
use crate::model::Scope;
use crate::model::UserStatus;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{self, IssuedTokens};
use crate::services::Services;
use crate::store::sessions::{NewRefresh, Rotation, Session};
use crate::store::{self, audit::AuditEvent};

fn invalid() -> OAuthError {
    OAuthError::invalid_grant("the refresh token is invalid, expired or revoked")
}

pub async fn grant(
    svc: &Services,
    client: &Client,
    token: &str,
    requested: Option<Scope>,
    meta: &RequestMeta,
) -> Result<IssuedTokens, OAuthError> {
    let now = svc.now();
    let hash = secrets::sha256_hex(token);
    let record = store::sessions::find_refresh(svc.db(), &hash).await?.ok_or_else(invalid)?;
    let session = record.session;
    // A token is bound to the client it was issued to (RFC 6749 §6).
    if session.client_id != client.id.as_str() {
        return Err(invalid());
    }
    if record.used_at.is_some() {
        reuse_detected(svc, &session, meta).await?;
        return Err(invalid());
    }
    if session.revoked_at.is_some() || record.expires_at <= now || session.expires_at <= now {
        return Err(invalid());
    }
    let granted = record.scope.clone();
    // Scope may only narrow, and never beyond what the client may have today.
    let scope = requested.unwrap_or_else(|| granted.clone());
    if !scope.is_subset(&granted) || !scope.is_subset(&client.scopes) {
        return Err(OAuthError::InvalidScope("a refresh may only narrow the scope".into()));
    }
    limits::check(svc, Limit::Refresh, &session.user_id).await?;
    let user = store::users::find_by_id(svc.db(), &session.user_id).await?;
    let Some(user) = user.filter(|u| u.status == UserStatus::Active) else {
        return Err(invalid());
    };
    // Roles may have changed since the login: a permission lost is a scope lost.
    let scope = super::scope_for_user(svc, &user, scope, false).await?;
    let next = secrets::random_token();
    let next_hash = secrets::sha256_hex(&next);
    let new_refresh =
        NewRefresh { hash: &next_hash, scope: &scope, expires_at: issue::refresh_expiry(svc, &session, now) };
    match store::sessions::rotate_refresh(svc.db(), &hash, &session.id, &new_refresh, now).await? {
        Rotation::Rotated => {
            let response = issue::for_session(svc, client, &user, &scope, &session, Some(next))?;
            let event = AuditEvent {
                event: "token_issued",
                outcome: "success",
                actor_id: Some(user.id.clone()),
                user_id: Some(user.id.clone()),
                client_id: Some(client.id.to_string()),
                detail: Some(format!("grant=refresh_token session={} scope={scope}", session.id)),
                ..Default::default()
            };
            svc.audit(event, meta).await;
            Ok(response)
        }
        Rotation::AlreadyUsed => {
            reuse_detected(svc, &session, meta).await?;
            Err(invalid())
        }
    }
}

/// A spent refresh token came back: either it was stolen or a client raced itself. The
/// server cannot tell which, so the whole family ends (RFC 9700 §4.14.2).
async fn reuse_detected(svc: &Services, session: &Session, meta: &RequestMeta) -> Result<(), OAuthError> {
    let revoked_now = store::sessions::revoke(svc.db(), &session.id, svc.now()).await?;
    tracing::warn!(session = %session.id, "refresh token reuse: session revoked");
    svc.audit(
        AuditEvent {
            event: "refresh_token_reuse",
            outcome: if revoked_now { "session_revoked" } else { "already_revoked" },
            user_id: Some(session.user_id.clone()),
            client_id: Some(session.client_id.clone()),
            detail: Some(format!("session={}", session.id)),
            ..Default::default()
        },
        meta,
    )
    .await;
    Ok(())
}
