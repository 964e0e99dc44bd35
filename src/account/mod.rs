//! Users: creation, lookup and password checks. Knows nothing of HTTP.

pub mod consents;
pub mod lockout;
mod login;
pub mod self_service;

pub use login::{CheckedLogin, LoginError, VerifiedUser, check_login, confirm_password, verify_login};

use serde::Serialize;

use crate::crypto::password;
use crate::model::Scope;
use crate::model::{Email, Password, Role, User, UserStatus, Username};
use crate::services::Services;
use crate::store::{self, StoreError};

/// The public view of a user (CLI output, API bodies): no hash, ever.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub status: String,
    pub roles: Vec<String>,
    pub created_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.clone(),
            username: u.username.to_string(),
            email: u.email.to_string(),
            email_verified: u.email_verified,
            status: u.status.as_str().to_owned(),
            roles: u.roles.clone(),
            created_at: u.created_at,
        }
    }
}

pub struct NewUser {
    pub username: Username,
    pub email: Email,
    pub password: Password,
    pub roles: Vec<Role>,
    /// Operators' users can log in at once; self-registered ones verify first.
    pub email_verified: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid input")]
    Invalid(Vec<String>),
    #[error("that {0} is already taken")]
    Duplicate(&'static str),
    #[error("not found")]
    NotFound,
    /// A mailed one-time token that is unknown, expired or already used.
    #[error("the token is invalid, expired or already used")]
    InvalidToken,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("too many requests")]
    TooManyRequests(crate::limits::Limited),
    #[error("self-registration is closed on this server; ask an operator for an account")]
    RegistrationClosed,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] password::HashError),
}

impl From<crate::limits::LimitError> for AccountError {
    fn from(err: crate::limits::LimitError) -> Self {
        match err {
            crate::limits::LimitError::Limited(limited) => AccountError::TooManyRequests(limited),
            crate::limits::LimitError::Store(e) => AccountError::Store(e),
        }
    }
}

pub async fn create_user(svc: &Services, new: NewUser) -> Result<User, AccountError> {
    let mut roles: Vec<String> = new.roles.iter().map(|r| r.as_str().to_owned()).collect();
    if roles.is_empty() {
        roles.push("user".into());
    }
    roles.sort();
    roles.dedup();
    let unknown = store::users::unknown_roles(svc.db(), &new.roles).await?;
    if !unknown.is_empty() {
        return Err(AccountError::Invalid(
            unknown.into_iter().map(|r| format!("unknown role {r:?}")).collect(),
        ));
    }
    let hash = svc.hasher().hash(&new.password).await?;
    let now = svc.now();
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username: new.username,
        email: new.email,
        email_verified: new.email_verified,
        status: UserStatus::Active,
        roles,
        locked_until: None,
        last_login_at: None,
        created_at: now,
        updated_at: now,
        security_stamp: 0,
    };
    store::users::insert(svc.db(), &user, &hash).await.map_err(|e| {
        if !e.is_unique_violation() {
            AccountError::Store(e)
        } else if e.to_string().contains("email") {
            AccountError::Duplicate("email")
        } else {
            AccountError::Duplicate("username")
        }
    })?;
    Ok(user)
}

/// The tokens of `scope` that `roles` do not permit. Permissions are scopes restricted to
/// roles (table role_scopes, e.g. `admin` only for role admin); unlisted scopes are open.
pub async fn forbidden_scopes(
    svc: &Services,
    roles: &[String],
    scope: &Scope,
) -> Result<Vec<String>, StoreError> {
    let restricted = store::users::role_scopes(svc.db()).await?;
    Ok(scope
        .iter()
        .filter(|token| {
            let holders: Vec<&str> =
                restricted.iter().filter(|(_, s)| s == token).map(|(role, _)| role.as_str()).collect();
            !holders.is_empty() && !holders.iter().any(|h| roles.iter().any(|r| r == h))
        })
        .map(str::to_owned)
        .collect())
}
