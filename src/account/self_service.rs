//! What users do to their own account: register, verify their address, reset or change
//! their password, list and end their sessions. Callers have authenticated the user
//! where needed (the `user_id`/`session_id` arguments come from a verified access token).

use super::{AccountError, LoginError, NewUser, create_user};
use crate::crypto::secrets;
use crate::limits::{self, Limit};
use crate::mail::{Mail, MailKind};
use crate::model::RequestMeta;
use crate::model::User;
use crate::model::{Email, Password, Username};
use crate::services::Services;
use crate::store;
use crate::store::audit::{AuditEvent, AuditKind};
use crate::store::sessions::{Session, Which};

/// How long the link of a verification mail works.
pub const VERIFY_EMAIL_TTL_SECS: i64 = 24 * 3600;
/// How long a password reset token works.
pub const PASSWORD_RESET_TTL_SECS: i64 = 30 * 60;

pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: String,
}

/// Creates an unverified user (who gets no tokens until the address is verified) and
/// mails a verification token. Every problem with the input is reported at once.
/// Registrations are limited per client IP, counted before anything else.
pub async fn register(svc: &Services, reg: Registration, meta: &RequestMeta) -> Result<User, AccountError> {
    if !svc.settings().registration_open {
        return Err(AccountError::RegistrationClosed);
    }
    limits::check(svc, Limit::Register, &meta.ip_key()).await?;
    let mut reasons = Vec::new();
    let username = Username::parse(&reg.username).map_err(|r| reasons.push(r)).ok();
    let email = Email::parse(&reg.email).map_err(|r| reasons.push(r)).ok();
    let context = [
        username.as_ref().map_or(reg.username.trim(), |u| u.as_str()),
        email.as_ref().map_or(reg.email.trim(), |e| e.as_str()),
    ];
    let password = Password::new_checked(reg.password, &context).map_err(|r| reasons.extend(r)).ok();
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Err(AccountError::Invalid(reasons));
    };
    let new = NewUser { username, email, password, roles: Vec::new(), email_verified: false };
    let user = create_user(svc, new).await?;
    mail_token(svc, user.email.as_str(), MailKind::VerifyEmail).await?;
    svc.audit(user_event(AuditKind::Register, "success", &user.id, None), meta).await?;
    Ok(user)
}

/// Spends a verification token and marks the address verified.
pub async fn verify_email(svc: &Services, token: &str, meta: &RequestMeta) -> Result<(), AccountError> {
    let user_id = store::account_tokens::verify_email(svc.db(), &secrets::sha256_hex(token), svc.now())
        .await?
        .ok_or(AccountError::InvalidToken)?;
    svc.audit(user_event(AuditKind::EmailVerified, "success", &user_id, None), meta).await?;
    Ok(())
}

/// Mails a reset token when the address belongs to a user. Known and unknown addresses
/// take the same path (one token generated, hashed and stored by the same INSERT; only
/// the queueing of the mail differs, which does not wait), so neither the answer nor its
/// timing tells them apart. Requests are limited per client IP and per address; both are
/// decided before the address is looked up, so a refusal says nothing about it either.
pub async fn forgot_password(svc: &Services, email: &str, meta: &RequestMeta) -> Result<(), AccountError> {
    limits::check(svc, Limit::ForgotPerIp, &meta.ip_key()).await?;
    let email = Email::parse(email).map_err(|r| AccountError::Invalid(vec![r]))?;
    // Keyed by a hash: the limits table need not hold the addresses people typed.
    limits::check(svc, Limit::ForgotPerAddress, &secrets::sha256_hex(email.as_str())).await?;
    mail_token(svc, email.as_str(), MailKind::PasswordReset).await?;
    Ok(())
}

/// Sets a new password with a reset token and ends every session of the user. The token
/// came by mail, so the address counts as verified from then on.
pub async fn reset_password(
    svc: &Services,
    token: &str,
    new_password: String,
    meta: &RequestMeta,
) -> Result<(), AccountError> {
    let hash = secrets::sha256_hex(token);
    let now = svc.now();
    let user_id = store::account_tokens::find_live(svc.db(), &hash, MailKind::PasswordReset.as_str(), now)
        .await?
        .ok_or(AccountError::InvalidToken)?;
    let user = store::users::find_by_id(svc.db(), &user_id).await?.ok_or(AccountError::InvalidToken)?;
    let password = Password::new_checked(new_password, &[user.username.as_str(), user.email.as_str()])
        .map_err(AccountError::Invalid)?;
    let password_hash = svc.hasher().hash(&password).await?;
    // Spent only now, atomically with the change: a concurrent reset with the same token
    // loses here.
    store::account_tokens::reset_password(svc.db(), &hash, &user.id, &password_hash, svc.now())
        .await?
        .ok_or(AccountError::InvalidToken)?;
    svc.audit(
        user_event(AuditKind::PasswordReset, "success", &user.id, Some("all sessions ended".into())),
        meta,
    )
    .await?;
    Ok(())
}

/// Changes the password after checking the current one; ends every other session of the
/// user, keeping `current_session`.
pub async fn change_password(
    svc: &Services,
    user_id: &str,
    current_session: &str,
    current_password: String,
    new_password: String,
    meta: &RequestMeta,
) -> Result<(), AccountError> {
    let confirmed = match Password::candidate(current_password) {
        Ok(current) => match super::confirm_password(svc, user_id, &current, meta).await {
            Ok(()) => true,
            Err(LoginError::InvalidCredentials | LoginError::Inactive | LoginError::Unverified) => false,
            Err(LoginError::TooManyRequests(limited)) => return Err(AccountError::TooManyRequests(limited)),
            Err(LoginError::Store(e)) => return Err(e.into()),
            Err(LoginError::Hash(e)) => return Err(e.into()),
        },
        // Empty or oversized: wrong without hashing anything.
        Err(_) => false,
    };
    if !confirmed {
        svc.audit(
            user_event(AuditKind::PasswordChange, "failure", user_id, Some("wrong current password".into())),
            meta,
        )
        .await?;
        return Err(AccountError::WrongPassword);
    }
    let user = store::users::find_by_id(svc.db(), user_id).await?.ok_or(AccountError::NotFound)?;
    let password = Password::new_checked(new_password, &[user.username.as_str(), user.email.as_str()])
        .map_err(AccountError::Invalid)?;
    let password_hash = svc.hasher().hash(&password).await?;
    store::users::change_password(svc.db(), user_id, &password_hash, current_session, svc.now()).await?;
    svc.audit(
        user_event(AuditKind::PasswordChange, "success", user_id, Some("other sessions ended".into())),
        meta,
    )
    .await?;
    Ok(())
}

pub async fn me(svc: &Services, user_id: &str) -> Result<User, AccountError> {
    store::users::find_by_id(svc.db(), user_id).await?.ok_or(AccountError::NotFound)
}

/// The user's sessions that still work, most recently used first.
pub async fn sessions(svc: &Services, user_id: &str) -> Result<Vec<Session>, AccountError> {
    let now = svc.now();
    let access_cutoff = now - svc.settings().access_token_ttl.as_secs() as i64;
    Ok(store::sessions::list_live_for_user(svc.db(), user_id, now, access_cutoff).await?)
}

/// Ends one of the user's sessions; someone else's session is "not found".
pub async fn end_session(
    svc: &Services,
    user_id: &str,
    session_id: &str,
    meta: &RequestMeta,
) -> Result<(), AccountError> {
    if store::sessions::revoke_for_user(svc.db(), user_id, Which::Only(session_id), svc.now()).await? == 0 {
        return Err(AccountError::NotFound);
    }
    svc.audit(
        user_event(AuditKind::SessionRevoked, "success", user_id, Some(format!("session={session_id}"))),
        meta,
    )
    .await?;
    Ok(())
}

/// Ends the session the presented access token belongs to, and that token itself.
pub async fn logout(
    svc: &Services,
    user_id: &str,
    session_id: &str,
    access_jti: &str,
    access_exp: i64,
    meta: &RequestMeta,
) -> Result<(), AccountError> {
    store::sessions::revoke(svc.db(), session_id, svc.now()).await?;
    store::sessions::revoke_access_token(svc.db(), access_jti, access_exp).await?;
    svc.audit(user_event(AuditKind::Logout, "success", user_id, Some(format!("session={session_id}"))), meta)
        .await?;
    Ok(())
}

/// Stores a fresh one-time token for the owner of `email` and queues the mail carrying it;
/// nothing is mailed when no user has that address.
async fn mail_token(svc: &Services, email: &str, kind: MailKind) -> Result<(), AccountError> {
    let token = secrets::random_token();
    let ttl = match kind {
        MailKind::VerifyEmail => VERIFY_EMAIL_TTL_SECS,
        MailKind::PasswordReset => PASSWORD_RESET_TTL_SECS,
    };
    let now = svc.now();
    let owner = store::account_tokens::insert_for_email(
        svc.db(),
        &secrets::sha256_hex(&token),
        email,
        kind.as_str(),
        now,
        now + ttl,
    )
    .await?;
    if owner.is_some() {
        svc.mailer().send(compose(svc.issuer(), email, kind, token));
    }
    Ok(())
}

fn compose(issuer: &str, to: &str, kind: MailKind, token: String) -> Mail {
    let (subject, body) = match kind {
        MailKind::VerifyEmail => (
            "Verify your email address",
            format!(
                "Someone, hopefully you, created an account at {issuer} with this address.\n\n\
                 To verify it, send this token to {issuer}/account/email/verify within 24 hours:\n\n\
                 {token}\n\nIf it was not you, ignore this mail.\n"
            ),
        ),
        MailKind::PasswordReset => (
            "Reset your password",
            format!(
                "Someone, hopefully you, asked to reset the password of your account at {issuer}.\n\n\
                 To choose a new password, send this token with it to {issuer}/account/password/reset \
                 within 30 minutes:\n\n{token}\n\nAll your sessions will end. If it was not you, ignore \
                 this mail: your password stays as it is.\n"
            ),
        ),
    };
    Mail { to: to.to_owned(), subject: subject.to_owned(), body, kind, token }
}

fn user_event(event: AuditKind, outcome: &'static str, user_id: &str, detail: Option<String>) -> AuditEvent {
    AuditEvent {
        actor_id: Some(user_id.to_owned()),
        user_id: Some(user_id.to_owned()),
        detail,
        ..AuditEvent::new(event, outcome)
    }
}
