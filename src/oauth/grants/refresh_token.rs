//! Refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

use crate::crypto::refresh::Named;
use crate::crypto::secrets;
use crate::limits::{self, Counted, Limit};
use crate::model::Client;
use crate::model::RequestMeta;
use crate::model::Scope;
use crate::model::UserStatus;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{self, IssuedTokens};
use crate::oauth::tokens::{self, Standing};
use crate::services::{Services, with_meta};
use crate::store::sessions::{Rotated, Rotation, RotationWrite, Session};
use crate::store::{
    self, StoreError,
    audit::{AuditEvent, AuditKind},
};
use uuid::Uuid;

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
    let presented = tokens::find_refresh_token(svc, token).await?.ok_or_else(invalid)?;
    let record = presented.record;
    let session = record.session;
    // A token is bound to the client it was issued to (RFC 6749 §6).
    if session.client_id != client.id.as_str() {
        return Err(invalid());
    }
    // The token the current one replaced, back again: within the grace window it is a
    // client retrying after a lost response, which gets a new pair in place of the one it
    // never saw (if nobody used that one); otherwise it is reuse, and the family ends.
    let grace = svc.settings().refresh_reuse_grace.as_secs() as i64;
    let retry = match presented.standing {
        Standing::Current => false,
        Standing::Previous
            if grace > 0
                && session.revoked_at.is_none()
                && record.rotated_at.is_some_and(|at| now - at <= grace) =>
        {
            true
        }
        Standing::Previous | Standing::Spent => {
            reuse_detected(svc, &session, meta).await?;
            return Err(invalid());
        }
    };
    if session.revoked_at.is_some() || record.expires_at <= now || session.expires_at <= now {
        return Err(invalid());
    }
    let granted = record.scope.clone();
    // Scope may only narrow, and never beyond what the client may have today.
    let scope = requested.unwrap_or_else(|| granted.clone());
    if !scope.is_subset(&granted) || !scope.is_subset(&client.scopes) {
        return Err(OAuthError::InvalidScope("a refresh may only narrow the scope".into()));
    }
    let user = record.user;
    if user.status != UserStatus::Active {
        return Err(invalid());
    }
    // Roles may have changed since the login: a permission lost is a scope lost.
    let scope = super::scope_for_user(svc, &user, scope, false).await?;
    let session_id = Uuid::parse_str(&session.id)
        .map_err(|_| StoreError::Corrupt(format!("session id {:?} is not a UUID", session.id)))?;
    let next = svc.refresh_tokens().mint(Named { session_id, generation: record.generation + 1 });
    let event = AuditEvent {
        actor_id: Some(user.id.clone()),
        user_id: Some(user.id.clone()),
        client_id: Some(client.id.to_string()),
        detail: Some(format!(
            "grant=refresh_token session={} scope={scope}{}",
            session.id,
            if retry { " retry=1" } else { "" }
        )),
        ..AuditEvent::new(AuditKind::TokenIssued, "success")
    };
    let event = with_meta(event, meta);
    let rotation = RotationWrite {
        session_id: session.id.clone(),
        generation: record.generation,
        new_hash: secrets::sha256_hex(&next),
        scope: scope.clone(),
        expires_at: issue::refresh_expiry(svc, &session, now),
        now,
        event,
    };
    // The refresh limit's step is taken in the rotation's batch. The tokens are signed
    // once it allowed the refresh, while the rotation waits for its commit, and leave only
    // if the rotation moved the session on.
    let counted = limits::Counted::new(svc, Limit::Refresh, &session.user_id);
    let signing = issue::for_session(svc, client, &user, &scope, &session, Some(next));
    match store::sessions::rotate_refresh(svc.db(), rotation, counted.as_ref().map(Counted::step), signing)
        .await?
    {
        Rotated::Committed(Rotation::Rotated, tokens) => tokens,
        Rotated::Committed(Rotation::AlreadyUsed, _) => {
            reuse_detected(svc, &session, meta).await?;
            Err(invalid())
        }
        Rotated::Refused(stepped) => match counted {
            Some(counted) => Err(counted.refused(stepped).into()),
            None => Err(StoreError::Corrupt("a rate-limit step refused that was never taken".into()).into()),
        },
    }
}

/// A spent refresh token came back: either it was stolen or a client raced itself. The
/// server cannot tell which, so the whole family ends (RFC 9700 §4.14.2).
async fn reuse_detected(svc: &Services, session: &Session, meta: &RequestMeta) -> Result<(), OAuthError> {
    let revoked_now = store::sessions::revoke(svc.db(), &session.id, svc.now()).await?;
    tracing::warn!(session = %session.id, "refresh token reuse: session revoked");
    crate::telemetry::metrics::refresh_reuse(&session.client_id);
    svc.audit(
        AuditEvent {
            user_id: Some(session.user_id.clone()),
            client_id: Some(session.client_id.clone()),
            detail: Some(format!("session={}", session.id)),
            ..AuditEvent::new(
                AuditKind::RefreshTokenReuse,
                if revoked_now { "session_revoked" } else { "already_revoked" },
            )
        },
        meta,
    )
    .await?;
    Ok(())
}
