//! Resource owner password credentials (RFC 6749 §4.3).

use super::mfa_otp;
use crate::account::lockout;
use crate::crypto::password::PasswordHasher;
use crate::limits::{self, Limit};
use crate::model::Client;
use crate::model::RequestMeta;
use crate::model::Scope;
use crate::model::User;
use crate::model::{Password, UserStatus, Username};
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{self, IssuedTokens, UserAuth};
use crate::services::Services;
use crate::store::{
    self,
    audit::{AuditEvent, AuditKind},
};

pub async fn grant(
    svc: &Services,
    client: &Client,
    username: &str,
    password: &Password,
    requested: Option<&Scope>,
    otp: Option<&str>,
    meta: &RequestMeta,
) -> Result<IssuedTokens, OAuthError> {
    let scope = crate::oauth::client::granted_scope(client, requested)?;
    let user = verify_login(svc, client, username, password, meta).await?;
    let scope = super::scope_for_user(svc, &user, scope, requested.is_some()).await?;
    let amr = mfa_otp::after_password(svc, client, &user, &scope, otp, meta).await?;
    let auth = UserAuth { amr, auth_time: svc.now(), nonce: None };
    issue::start_session(svc, client, &user, scope, auth, meta).await
}

/// The password step of every login, the token endpoint's and the hosted login page's
/// alike: the login rate limit, lockout, timing parity between known and unknown users,
/// the failure audit, and the re-hash. Returns the active, verified user.
pub(crate) async fn verify_login(
    svc: &Services,
    client: &Client,
    username: &str,
    password: &Password,
    meta: &RequestMeta,
) -> Result<User, OAuthError> {
    limits::check(svc, Limit::Login, meta.ip_key()).await?;
    // A malformed username is just an unknown user: same error, same argon2 work.
    let found = match Username::parse(username) {
        Ok(name) => store::users::find_by_username(svc.db(), &name).await?,
        Err(_) => None,
    };
    let verified = svc.hasher().verify(password, found.as_ref().map(|f| f.password_hash.as_str())).await?;
    let now = svc.now();
    // A locked account answers exactly like a wrong password, even to the right one.
    let found = match found {
        Some(f) if verified && !lockout::is_locked(&f.user, now) => f,
        other => {
            let wrong_password_for = other.filter(|_| !verified).map(|f| f.user);
            record_failure(svc, client, wrong_password_for, meta);
            return Err(OAuthError::invalid_grant("invalid username or password"));
        }
    };
    let user = found.user;
    if user.status != UserStatus::Active {
        return Err(OAuthError::invalid_grant("the account is not active"));
    }
    if !user.email_verified {
        return Err(OAuthError::invalid_grant("the email address has not been verified yet"));
    }
    let rehash = if PasswordHasher::needs_rehash(&found.password_hash) {
        Some(svc.hasher().hash(password).await?)
    } else {
        None
    };
    // Recorded once the password is right, even when a second factor is still due: the
    // plain password (needed for a re-hash) is only at hand here.
    store::users::record_login(svc.db(), &user.id, now, rehash.as_deref()).await?;
    Ok(user)
}

/// Failure bookkeeping (the lockout counter, the audit record) runs after the answer has
/// gone: its extra writes would otherwise make a wrong password for a real user measurably
/// slower than an unknown user, which tells an attacker which usernames exist.
fn record_failure(svc: &Services, client: &Client, user: Option<User>, meta: &RequestMeta) {
    crate::telemetry::metrics::login_failed(client.id.as_str());
    let (svc, meta, client_id) = (svc.clone(), meta.clone(), client.id.to_string());
    tokio::spawn(async move {
        if let Some(user) = &user
            && let Err(err) = lockout::record_failure(&svc, user, &meta).await
        {
            tracing::error!(error = %err, "could not count a failed login");
        }
        let event = AuditEvent {
            user_id: user.map(|u| u.id),
            client_id: Some(client_id),
            detail: Some("invalid username or password".into()),
            ..AuditEvent::new(AuditKind::Login, "failure")
        };
        // The answer (a failure) has gone; all that is left is to say so loudly.
        if let Err(err) = svc.audit(event, &meta).await {
            tracing::error!(error = %err, "could not write the audit record of a failed login");
        }
    });
}
