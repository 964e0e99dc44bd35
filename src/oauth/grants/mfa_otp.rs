//! The second factor inside the token endpoint (latchkey's extension grant
//! `urn:latchkey:params:oauth:grant-type:mfa-otp`). A password grant whose user needs a
//! second factor ends in `mfa_required` with an `mfa_token`: a random challenge, stored as
//! a hash, bound to the user, the client and the scope, good for five minutes and five
//! attempts. This grant redeems it with a TOTP code or a recovery code.

use crate::limits::{self, Limit};
use std::fmt;

use crate::crypto::secrets;
use crate::mfa;
use crate::model::Client;
use crate::model::RequestMeta;
use crate::model::Scope;
use crate::model::User;
use crate::model::UserStatus;
use crate::model::policy::LoginContext;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{self, IssuedTokens, UserAuth};
use crate::services::Services;
use crate::store::mfa::Challenge;
use crate::store::{
    self, StoreError,
    audit::{AuditEvent, AuditKind},
};

/// How long an `mfa_token` lives.
pub const CHALLENGE_TTL_SECS: i64 = 5 * 60;
/// Codes that may be tried against one `mfa_token`.
pub const MAX_ATTEMPTS: i64 = 5;

/// What the user shows as the second factor.
pub enum SecondFactor {
    Otp(String),
    RecoveryCode(String),
}

impl fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecondFactor::Otp(_) => "Otp(<redacted>)",
            SecondFactor::RecoveryCode(_) => "RecoveryCode(<redacted>)",
        })
    }
}

fn dead_token() -> OAuthError {
    OAuthError::invalid_grant("the mfa_token is invalid, expired or used up")
}

fn wrong_code() -> OAuthError {
    // Wrong, replayed and spent codes all read alike: the caller learns only "no".
    OAuthError::invalid_grant("the one-time code is invalid")
}

/// What the deployment's policy asks of a login whose password was right.
pub(crate) struct SecondFactorDue {
    /// The user has a confirmed authenticator.
    enrolled: bool,
    /// The policy asks for the second factor.
    pub required: bool,
}

/// Asks the deployment's policy whether this login needs a second factor.
pub(crate) async fn second_factor_due(
    svc: &Services,
    client: &Client,
    user: &User,
    enrolled: bool,
    scope: &Scope,
    meta: &RequestMeta,
) -> SecondFactorDue {
    let login = LoginContext { user, client, scope, enrolled, meta };
    let required = svc.second_factor_policy().second_factor_required(login).await;
    SecondFactorDue { enrolled, required }
}

/// Called once the password is right and the login written: acts on what `due` says,
/// with the code sent along (`otp`, never empty), and returns the authentication methods
/// to record, or the error that asks for the second factor.
pub(crate) async fn after_password(
    svc: &Services,
    client: &Client,
    user: &User,
    due: SecondFactorDue,
    scope: &Scope,
    otp: Option<&str>,
    meta: &RequestMeta,
) -> Result<Vec<String>, OAuthError> {
    if due.required && !due.enrolled {
        audit_failure(svc, client, &user.id, "second factor required but none enrolled", meta).await?;
        return Err(OAuthError::MfaEnrollmentRequired);
    }
    match otp {
        Some(code) => {
            let factor = SecondFactor::Otp(code.to_owned());
            check(svc, client, &user.id, &factor, meta).await?;
            Ok(amr(&factor))
        }
        None if due.required => Err(challenge(svc, client, user, scope).await?),
        None => Ok(vec!["pwd".into()]),
    }
}

/// A new `mfa_token` for this user, client and scope, as the `mfa_required` error.
async fn challenge(
    svc: &Services,
    client: &Client,
    user: &User,
    scope: &Scope,
) -> Result<OAuthError, OAuthError> {
    let token = secrets::random_token();
    let now = svc.now();
    let challenge = Challenge {
        hash: secrets::sha256_hex(&token),
        user_id: user.id.clone(),
        client_id: client.id.to_string(),
        scope: scope.clone(),
        created_at: now,
        expires_at: now + CHALLENGE_TTL_SECS,
    };
    store::mfa::insert_challenge(svc.db(), &challenge).await?;
    Ok(OAuthError::MfaRequired { mfa_token: token })
}

/// The MFA grant: redeem an `mfa_token` with a code.
pub async fn grant(
    svc: &Services,
    client: &Client,
    mfa_token: &str,
    factor: SecondFactor,
    meta: &RequestMeta,
) -> Result<IssuedTokens, OAuthError> {
    let (user, scope, amr) = redeem(svc, client, &secrets::sha256_hex(mfa_token), factor, meta).await?;
    let auth = UserAuth { amr, auth_time: svc.now(), nonce: None };
    issue::start_session(svc, client, &user, scope, auth, meta).await
}

/// Redeems the challenge whose token hashes to `hash` with a code: the user, the scope
/// settled at the password step, and the `amr` to record. The hosted second-factor page
/// keeps only the hash, so it comes in here too.
pub(crate) async fn redeem(
    svc: &Services,
    client: &Client,
    hash: &str,
    factor: SecondFactor,
    meta: &RequestMeta,
) -> Result<(User, Scope, Vec<String>), OAuthError> {
    let now = svc.now();
    let challenge =
        store::mfa::find_live_challenge(svc.db(), hash, now, MAX_ATTEMPTS).await?.ok_or_else(dead_token)?;
    // Bound to the client that started the login (like a refresh token, RFC 6749 §6).
    if challenge.client_id != client.id.as_str() {
        return Err(dead_token());
    }
    if !store::mfa::take_attempt(svc.db(), hash, now, MAX_ATTEMPTS).await? {
        return Err(dead_token());
    }
    let user = store::users::find_by_id(svc.db(), &challenge.user_id).await?;
    let Some(user) = user.filter(|u| u.status == UserStatus::Active) else {
        return Err(dead_token());
    };
    check(svc, client, &user.id, &factor, meta).await?;
    if !store::mfa::spend_challenge(svc.db(), hash, svc.now()).await? {
        return Err(dead_token());
    }
    // The scope was settled at the password step; the client may since have lost some.
    let scope = challenge.scope;
    if !scope.is_subset(&client.scopes) {
        return Err(OAuthError::InvalidScope("the client may no longer have this scope".into()));
    }
    Ok((user, scope, amr(&factor)))
}

/// Whether the challenge behind `hash` can still take a code (the hosted page sends the
/// user back to the password when it cannot).
pub(crate) async fn challenge_alive(svc: &Services, hash: &str) -> Result<bool, OAuthError> {
    Ok(store::mfa::find_live_challenge(svc.db(), hash, svc.now(), MAX_ATTEMPTS).await?.is_some())
}

/// RFC 8176: a TOTP code is `otp`. A recovery code is a one-time look-up secret with no
/// RFC 8176 value of its own, so it is recorded as `mfa` (a second factor was shown)
/// rather than claiming an OTP device.
fn amr(factor: &SecondFactor) -> Vec<String> {
    let second = match factor {
        SecondFactor::Otp(_) => "otp",
        SecondFactor::RecoveryCode(_) => "mfa",
    };
    vec!["pwd".into(), second.into()]
}

/// Checks the second factor; a failure is audited and answered `invalid_grant`.
async fn check(
    svc: &Services,
    client: &Client,
    user_id: &str,
    factor: &SecondFactor,
    meta: &RequestMeta,
) -> Result<(), OAuthError> {
    // Every mfa_token allows a few guesses; this caps guesses per user across all of them.
    limits::check(svc, Limit::MfaPerUser, user_id).await?;
    let good = match factor {
        SecondFactor::Otp(code) => mfa::verify_totp(svc, user_id, code).await?,
        SecondFactor::RecoveryCode(code) => mfa::use_recovery_code(svc, user_id, code).await?,
    };
    if !good {
        crate::telemetry::metrics::mfa_failed(client.id.as_str());
        audit_failure(svc, client, user_id, "invalid second factor", meta).await?;
        return Err(wrong_code());
    }
    if let SecondFactor::RecoveryCode(_) = factor {
        svc.audit(
            AuditEvent {
                actor_id: Some(user_id.to_owned()),
                user_id: Some(user_id.to_owned()),
                client_id: Some(client.id.to_string()),
                ..AuditEvent::new(AuditKind::RecoveryCodeUsed, "success")
            },
            meta,
        )
        .await?;
    }
    Ok(())
}

async fn audit_failure(
    svc: &Services,
    client: &Client,
    user_id: &str,
    detail: &str,
    meta: &RequestMeta,
) -> Result<(), StoreError> {
    svc.audit(
        AuditEvent {
            user_id: Some(user_id.to_owned()),
            client_id: Some(client.id.to_string()),
            detail: Some(detail.to_owned()),
            ..AuditEvent::new(AuditKind::Login, "failure")
        },
        meta,
    )
    .await
}
