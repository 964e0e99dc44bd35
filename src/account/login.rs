//! Every password check: the login (password grant, and the browser sign-in) and the
//! account endpoints that ask for the current password. One path, so the lockout, the
//! rate limits and the admission queue of the hasher apply to all of them alike.

use crate::account::lockout;
use crate::crypto::password::{HashError, PasswordHasher};
use crate::limits::{self, Limit, LimitError, Limited};
use crate::model::{ClientId, Password, RequestMeta, User, UserStatus, Username};
use crate::services::Services;
use crate::store::{
    self, StoreError,
    audit::{AuditEvent, AuditKind},
    users::LoginRecord,
};

/// A user whose password was right and who may log in, the login written.
#[derive(Debug)]
pub struct VerifiedUser {
    pub user: User,
    /// Whether the user has a confirmed authenticator, as read with the password hash.
    pub mfa_enrolled: bool,
}

/// A right password of an active, verified user whose login is not written yet: the
/// lockout has still to decide. `record` writes it; a session opened straight from the
/// password writes it in its own transaction instead (`record_through`), which saves a
/// commit. Nothing else turns it into a `VerifiedUser`.
#[must_use = "a checked password is no login until it is recorded"]
#[derive(Debug)]
pub struct CheckedLogin {
    user: User,
    mfa_enrolled: bool,
    rehash: Option<String>,
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

/// A login with username and password at `client`: `check_login`, then `record`.
pub async fn verify_login(
    svc: &Services,
    client: &ClientId,
    username: &str,
    password: &Password,
    meta: &RequestMeta,
) -> Result<VerifiedUser, LoginError> {
    check_login(svc, client, username, password, meta).await?.record(svc, client, meta).await
}

/// The checks of a login with username and password at `client`: the per-IP limits, the
/// user lookup, the password check, the account's state, the re-hash of an old-parameter
/// hash. Failures are audited.
///
/// The hash comes first, then ONE atomic statement decides with the outcome: a wrong
/// password counts only while the account is open, a right one opens only an account
/// that is not locked (`CheckedLogin::record`, or the session's transaction). The
/// database takes these decisions one at a time, in the order they come, so no guess of
/// a parallel burst (from any number of IPs) decided after the lock-setting failure gets
/// in, and parallel logins with the right password never lock each other out. Every
/// failure answer waits for exactly one committed write (the count, or else the audit
/// record), so a known user's wrong password answers like an unknown user's; the
/// remaining records follow after the answer.
pub async fn check_login(
    svc: &Services,
    client: &ClientId,
    username: &str,
    password: &Password,
    meta: &RequestMeta,
) -> Result<CheckedLogin, LoginError> {
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
    let verified = admission.verify(password, found.as_ref().map(|f| f.password_hash.as_str())).await?;
    let failure = LoginFailure { svc, client, meta };
    let found = match found {
        Some(found) if verified => found,
        other => {
            let user = other.map(|f| f.user);
            let counted = match &user {
                Some(user) => lockout::count_failure(svc, user, meta).await?,
                None => false,
            };
            return Err(failure.record(user.map(|u| u.id), !counted).await);
        }
    };
    let user = found.user;
    let refused = if user.status != UserStatus::Active {
        LoginError::Inactive
    } else if !user.email_verified {
        LoginError::Unverified
    } else {
        let rehash = if PasswordHasher::needs_rehash(&found.password_hash) {
            Some(svc.hasher().hash(password).await?)
        } else {
            None
        };
        return Ok(CheckedLogin { user, mfa_enrolled: found.mfa_enrolled, rehash });
    };
    // A right password must not count towards a lock, even where it cannot log in (a user
    // who tries before verifying the address would find the account locked).
    if !store::users::clear_failures(svc.db(), &user.id, svc.now()).await? {
        // Locked: the right password answers exactly like a wrong one.
        return Err(failure.record(Some(user.id), true).await);
    }
    limits::refund(svc, Limit::Login, &ip).await?;
    Err(refused)
}

impl CheckedLogin {
    pub fn user(&self) -> &User {
        &self.user
    }

    pub fn mfa_enrolled(&self) -> bool {
        self.mfa_enrolled
    }

    /// Writes the login on its own.
    pub async fn record(
        self,
        svc: &Services,
        client: &ClientId,
        meta: &RequestMeta,
    ) -> Result<VerifiedUser, LoginError> {
        let write = async |login: LoginRecord<'_>| {
            Ok::<_, LoginError>(store::users::record_login(svc.db(), &login).await?.then_some(()))
        };
        Ok(self.record_through(svc, client, meta, write).await?.0)
    }

    /// Writes the login through `write`, which stores it atomically with what the login
    /// opens (and returns that), or `None` when the record was refused: the account is
    /// locked, or its password changed meanwhile, and the login fails like a wrong
    /// password.
    pub async fn record_through<T, E: From<LoginError>>(
        self,
        svc: &Services,
        client: &ClientId,
        meta: &RequestMeta,
        write: impl AsyncFnOnce(LoginRecord<'_>) -> Result<Option<T>, E>,
    ) -> Result<(VerifiedUser, T), E> {
        let record = LoginRecord {
            user_id: &self.user.id,
            security_stamp: self.user.security_stamp,
            at: svc.now(),
            rehash: self.rehash.as_deref(),
        };
        let Some(opened) = write(record).await? else {
            return Err(LoginFailure { svc, client, meta }.record(Some(self.user.id), true).await.into());
        };
        // Only failures spend the per-IP guessing budget.
        limits::refund(svc, Limit::Login, &meta.ip_key()).await.map_err(LoginError::from)?;
        Ok((VerifiedUser { user: self.user, mfa_enrolled: self.mfa_enrolled }, opened))
    }
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
    let verified = admission.verify(password, hash.as_deref()).await?;
    let Some(user) = user else { return Err(LoginError::InvalidCredentials) };
    let open = if verified {
        store::users::clear_failures(svc.db(), &user.id, svc.now()).await?
    } else {
        lockout::count_failure(svc, &user, meta).await?;
        false
    };
    if open { Ok(()) } else { Err(LoginError::InvalidCredentials) }
}

/// Where a failed login is recorded.
struct LoginFailure<'a> {
    svc: &'a Services,
    client: &'a ClientId,
    meta: &'a RequestMeta,
}

impl LoginFailure<'_> {
    /// Audits the failure: before the answer when nothing else was written for it
    /// (`now`; a record that cannot be written then fails the request), after it
    /// otherwise. Returns the error to answer with.
    async fn record(&self, user_id: Option<String>, now: bool) -> LoginError {
        crate::telemetry::metrics::login_failed(self.client.as_str());
        let event = AuditEvent {
            user_id,
            client_id: Some(self.client.to_string()),
            detail: Some("invalid username or password".into()),
            ..AuditEvent::new(AuditKind::Login, "failure")
        };
        if now {
            if let Err(err) = self.svc.audit(event, self.meta).await {
                return LoginError::Store(err);
            }
        } else {
            let (svc, meta) = (self.svc.clone(), self.meta.clone());
            tokio::spawn(async move {
                // The answer (a failure) has gone; all that is left is to say so loudly.
                if let Err(err) = svc.audit(event, &meta).await {
                    tracing::error!(error = %err, "could not write the audit record of a failed login");
                }
            });
        }
        LoginError::InvalidCredentials
    }
}
