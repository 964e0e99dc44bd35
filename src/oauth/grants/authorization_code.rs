//! Authorization code grant (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.5-4.6): a code is
//! good once, for 60 seconds, for the client, redirect URI and verifier it was issued for.

use crate::crypto::secrets;
use crate::model::Client;
use crate::model::RequestMeta;
use crate::model::Scope;
use crate::model::UserStatus;
use crate::oauth::authorize;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{self, IssuedTokens, UserAuth};
use crate::services::Services;
use crate::store::{
    self,
    audit::{AuditEvent, AuditKind},
};

fn invalid() -> OAuthError {
    OAuthError::invalid_grant("the authorization code is invalid, expired or used")
}

pub async fn grant(
    svc: &Services,
    client: &Client,
    code: &str,
    redirect_uri: &str,
    code_verifier: &str,
    meta: &RequestMeta,
) -> Result<IssuedTokens, OAuthError> {
    let hash = secrets::sha256_hex(code);
    let record = store::authorize::find_code(svc.db(), &hash).await?.ok_or_else(invalid)?;
    if record.client_id != client.id.as_str() {
        return Err(invalid());
    }
    if record.used_at.is_some() {
        reuse_detected(svc, &record, meta).await?;
        return Err(invalid());
    }
    if record.expires_at <= svc.now() {
        return Err(invalid());
    }
    // RFC 6749 §4.1.3: the same redirect_uri as in the authorization request, exactly.
    if record.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request"));
    }
    if !authorize::pkce_verifies(code_verifier, &record.code_challenge) {
        return Err(OAuthError::invalid_grant("the code_verifier does not match the code_challenge"));
    }
    if !store::authorize::spend_code(svc.db(), &hash, svc.now()).await? {
        reuse_detected(svc, &record, meta).await?;
        return Err(invalid());
    }
    let user = store::users::find_by_id(svc.db(), &record.user_id).await?;
    let Some(user) = user.filter(|u| u.status == UserStatus::Active) else {
        return Err(invalid());
    };
    // Consented scope, narrowed by what the client and the user's roles allow today.
    let scope = Scope::from_words(store::split_words(&record.scope));
    if !scope.is_subset(&client.scopes) {
        return Err(OAuthError::InvalidScope("the client may no longer have this scope".into()));
    }
    let scope = super::scope_for_user(svc, &user, scope, false).await?;
    let auth =
        UserAuth { amr: store::split_words(&record.amr), auth_time: record.auth_time, nonce: record.nonce };
    let (response, session_id) = issue::open_session(svc, client, &user, scope, auth, meta).await?;
    store::authorize::set_code_session(svc.db(), &hash, &session_id).await?;
    Ok(response)
}

/// A spent code came back: someone else may hold it, so what it bought ends
/// (RFC 6749 §4.1.2, RFC 9700 §4.2.4).
async fn reuse_detected(
    svc: &Services,
    record: &store::authorize::AuthorizationCode,
    meta: &RequestMeta,
) -> Result<(), OAuthError> {
    let revoked = match &record.session_id {
        Some(session) => store::sessions::revoke(svc.db(), session, svc.now()).await?,
        None => false,
    };
    tracing::warn!(client = %record.client_id, "authorization code reuse");
    svc.audit(
        AuditEvent {
            user_id: Some(record.user_id.clone()),
            client_id: Some(record.client_id.clone()),
            detail: record.session_id.as_ref().map(|s| format!("session={s}")),
            ..AuditEvent::new(
                AuditKind::AuthorizationCodeReuse,
                if revoked { "session_revoked" } else { "refused" },
            )
        },
        meta,
    )
    .await?;
    Ok(())
}
