//! Every password check: the login (password grant, and the browser sign-in) and the
//! account endpoints that ask for the current password. One path, so the lockout, the
//! rate limits and the admission queue of the hasher apply to all of them alike.

use crate::account::lockout;
use crate::crypto::password::{Admission, HashError, PasswordHasher};
use crate::limits::{self, Limit, LimitError, Limited};
use crate::model::{ClientId, Password, RequestMeta, User, UserStatus, Username};
use crate::services::Services;
use crate::store::{self, StoreError, audit::AuditEvent};

/// A user whose password was right and who may log in.
#[derive(Debug)]
pub struct VerifiedUser {
    pub user: User,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user, wrong password or a locked account: one answer for all three.
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("the account is not active")]
    Inactive,
    #[error("the email address has not been verified yet")]
    Unverified,
    #[error("too many requests")]
    TooManyRequests(Limited),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `HashError::Busy` when the hasher's queue is full (503, not a failed attempt).
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<LimitError> for LoginError {
    fn from(err: LimitError) -> Self {
        match err {
            LimitError::Limited(limited) => LoginError::TooManyRequests(limited),
            LimitError::Store(e) => LoginError::Store(e),
        }
    }
}

/// A login with username and password at `client`: the per-IP limits, the user lookup,
/// the password check under the lockout, the re-hash of an old-parameter hash. Failures
/// are audited.
pub async fn verify_login(
    svc: &Services,
    client: &ClientId,
    username: &str,
    password: &Password,
    meta: &RequestMeta,
) -> Result<VerifiedUser, LoginError> {
    // First a place in the hasher's queue: a request turned away with 503 has then spent
    // no rate-limit unit and no lockout attempt.
    let admission = svc.hasher().admit()?;
    let ip = meta.ip_key();
    limits::check(svc, Limit::LoginAttempts, &ip).await?;
    limits::check(svc, Limit::Login, &ip).await?;
    // A malformed username is just an unknown user: same error, same argon2 work.
    let found = match Username::parse(username) {
        Ok(name) => store::users::find_by_username(svc.db(), &name).await?,
        Err(_) => None,
    };
    let password_hash = found.as_ref().map(|f| f.password_hash.clone());
    let user = found.map(|f| f.user);
    if !check(svc, admission, user.as_ref(), password, password_hash.as_deref(), meta).await? {
        audit_failure(svc, client, user.map(|u| u.id), meta);
        return Err(LoginError::InvalidCredentials);
    }
    let (user, password_hash) = user.zip(password_hash).expect("a right password has a user");
    // Only failures spend the per-IP guessing budget.
    limits::refund(svc, Limit::Login, &ip).await?;
    let refused = if user.status != UserStatus::Active {
        Some(LoginError::Inactive)
    } else if !user.email_verified {
        Some(LoginError::Unverified)
    } else {
        None
    };
    if let Some(err) = refused {
        // The password was right: it must not count towards a lock (a user who tries
        // before verifying the address would find the account locked afterwards).
        store::users::clear_failures(svc.db(), &user.id).await?;
        return Err(err);
    }
    let rehash = if PasswordHasher::needs_rehash(&password_hash) {
        Some(svc.hasher().hash(password).await?)
    } else {
        None
    };
    store::users::record_login(svc.db(), &user.id, svc.now(), rehash.as_deref()).await?;
    Ok(VerifiedUser { user })
}

/// Confirms a signed-in user's current password (account endpoints): limited per user,
/// and counted into the same lockout as logins, so a stolen access token is no
/// password oracle. `InvalidCredentials` for a wrong password or a locked account.
pub async fn confirm_password(
    svc: &Services,
    user_id: &str,
    password: &Password,
    meta: &RequestMeta,
) -> Result<(), LoginError> {
    let admission = svc.hasher().admit()?;
    limits::check(svc, Limit::PasswordPerUser, user_id).await?;
    let user = store::users::find_by_id(svc.db(), user_id).await?;
    let hash = store::users::password_hash(svc.db(), user_id).await?;
    if !check(svc, admission, user.as_ref(), password, hash.as_deref(), meta).await? {
        return Err(LoginError::InvalidCredentials);
    }
    store::users::clear_failures(svc.db(), user_id).await?;
    Ok(())
}

/// The password check under the lockout. The attempt is counted while argon2 runs, not
/// after: the one atomic count decides whether the account was open for this attempt,
/// so no guess of a parallel burst slips past a lock an earlier one set; and its write
/// hides inside the hash time, so a known user answers no slower than an unknown one.
async fn check(
    svc: &Services,
    admission: Admission,
    user: Option<&User>,
    password: &Password,
    hash: Option<&str>,
    meta: &RequestMeta,
) -> Result<bool, LoginError> {
    let counted = async {
        match user {
            Some(user) => lockout::count_attempt(svc, user, meta).await,
            None => Ok(false),
        }
    };
    let (verified, open) = tokio::join!(admission.verify(password, hash), counted);
    Ok(verified? && open?)
}

/// The audit record of a failed login is written after the answer has gone: it is a
/// write for known and unknown users alike, but any wait on it would still show in the
/// answer's timing.
fn audit_failure(svc: &Services, client: &ClientId, user_id: Option<String>, meta: &RequestMeta) {
    let (svc, meta, client_id) = (svc.clone(), meta.clone(), client.to_string());
    tokio::spawn(async move {
        let event = AuditEvent {
            event: "login",
            outcome: "failure",
            user_id,
            client_id: Some(client_id),
            detail: Some("invalid username or password".into()),
            ..Default::default()
        };
        svc.audit(event, &meta).await;
    });
}
