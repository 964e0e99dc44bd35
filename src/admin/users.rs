//! Users as an administrator sees them: search, create, change, lock out, delete, reset
//! their second factor.

use crate::store::audit::AuditKind;
use std::collections::HashSet;

use super::{ADMIN_ROLE, Actor, AdminError, Page, decode_cursor, into_page, page_limit, record};
use crate::account::{self, NewUser};
use crate::mfa;
use crate::model::User;
use crate::model::{Email, Password, Role, UserStatus, Username};
use crate::services::Services;
use crate::store::sessions::Which;
use crate::store::{self, users::UserQuery};

#[derive(Debug, Default)]
pub struct UserFilter {
    /// Substring of the username or email, any case.
    pub q: Option<String>,
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Users by username, a page at a time.
pub async fn list(svc: &Services, filter: &UserFilter) -> Result<Page<User>, AdminError> {
    let limit = page_limit(filter.limit)?;
    let status = filter.status.as_deref().map(parse_status).transpose().map_err(AdminError::invalid)?;
    let search = filter.q.as_deref().map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
    if search.as_ref().is_some_and(|q| q.len() > 254) {
        return Err(AdminError::invalid("q must be at most 254 characters"));
    }
    let after = decode_cursor("users", filter.cursor.as_deref())?;
    let query = UserQuery { search: search.as_deref(), status, after: after.as_deref(), limit: limit + 1 };
    let rows = store::users::list(svc.db(), &query).await?;
    Ok(into_page(rows, limit, "users", |u| u.username.as_str()))
}

pub async fn get(svc: &Services, id: &str) -> Result<User, AdminError> {
    store::users::find_by_id(svc.db(), id).await?.ok_or(AdminError::NotFound("user"))
}

/// Whether the user has a confirmed second factor.
pub async fn mfa_enabled(svc: &Services, id: &str) -> Result<bool, AdminError> {
    Ok(mfa::is_enrolled(svc, id).await?)
}

/// The ids of the users of a page from [`list`] who have a confirmed second factor, in one
/// query: the page is a username range, so asking for that range covers it.
pub async fn mfa_enabled_among(svc: &Services, page: &[User]) -> Result<HashSet<String>, AdminError> {
    let (Some(first), Some(last)) = (page.first(), page.last()) else { return Ok(HashSet::new()) };
    let ids =
        store::mfa::confirmed_between_usernames(svc.db(), first.username.as_str(), last.username.as_str())
            .await?;
    Ok(ids.into_iter().collect())
}

/// Removes the user's authenticator and recovery codes, e.g. after a lost phone: they log
/// in with the password alone until they enrol again. Idempotent: resetting a user without
/// a second factor succeeds too (the audit detail says whether one was removed).
pub async fn reset_mfa(svc: &Services, actor: &Actor, id: &str) -> Result<(), AdminError> {
    get(svc, id).await?;
    let removed = mfa::reset(svc, id).await?;
    record(svc, actor, AuditKind::MfaReset, Some(id.to_owned()), None, Some(format!("removed={removed}")))
        .await?;
    Ok(())
}

/// A user by id or, for operators at the command line, by username.
pub async fn find(svc: &Services, id_or_username: &str) -> Result<User, AdminError> {
    if let Some(user) = store::users::find_by_id(svc.db(), id_or_username).await? {
        return Ok(user);
    }
    let Ok(name) = Username::parse(id_or_username) else { return Err(AdminError::NotFound("user")) };
    let found = store::users::find_by_username(svc.db(), &name).await?;
    found.map(|f| f.user).ok_or(AdminError::NotFound("user"))
}

pub struct CreateUser {
    pub username: String,
    pub email: String,
    pub password: String,
    pub roles: Vec<String>,
}

/// Creates a user who can log in at once (email counts as verified). Every invalid field
/// is reported together.
pub async fn create(svc: &Services, actor: &Actor, input: CreateUser) -> Result<User, AdminError> {
    let mut reasons = Vec::new();
    let username = Username::parse(&input.username).map_err(|e| reasons.push(e)).ok();
    let email = Email::parse(&input.email).map_err(|e| reasons.push(e)).ok();
    let roles = parse_roles(&input.roles).map_err(|mut e| reasons.append(&mut e)).ok();
    let context = [input.username.trim().to_lowercase(), input.email.trim().to_lowercase()];
    let password = Password::new_checked(input.password, &[&context[0], &context[1]])
        .map_err(|mut e| reasons.append(&mut e))
        .ok();
    let (Some(username), Some(email), Some(roles), Some(password)) = (username, email, roles, password)
    else {
        return Err(AdminError::Invalid(reasons));
    };
    let new = NewUser { username, email, password, roles, email_verified: true };
    let user = account::create_user(svc, new).await?;
    record(
        svc,
        actor,
        AuditKind::AdminUserCreate,
        Some(user.id.clone()),
        None,
        Some(format!("roles={}", user.roles.join(","))),
    )
    .await?;
    Ok(user)
}

#[derive(Debug, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub roles: Option<Vec<String>>,
    pub status: Option<String>,
}

/// Changes email, roles and/or status. Everything is checked before anything is written.
pub async fn update(svc: &Services, actor: &Actor, id: &str, patch: UserPatch) -> Result<User, AdminError> {
    if patch.email.is_none() && patch.roles.is_none() && patch.status.is_none() {
        return Err(AdminError::invalid("nothing to change: send email, roles or status"));
    }
    let mut reasons = Vec::new();
    let email =
        patch.email.as_deref().map(Email::parse).transpose().map_err(|e| reasons.push(e)).ok().flatten();
    let roles = patch
        .roles
        .as_deref()
        .map(parse_roles)
        .transpose()
        .map_err(|mut e| reasons.append(&mut e))
        .ok()
        .flatten();
    let status =
        patch.status.as_deref().map(parse_status).transpose().map_err(|e| reasons.push(e)).ok().flatten();
    if !reasons.is_empty() {
        return Err(AdminError::Invalid(reasons));
    }
    let user = get(svc, id).await?;
    if let Some(roles) = &roles {
        if actor.is(id) && !roles.iter().any(|r| r.as_str() == ADMIN_ROLE) {
            return Err(AdminError::invalid("you cannot remove your own admin role"));
        }
        let unknown = store::users::unknown_roles(svc.db(), roles).await?;
        if !unknown.is_empty() {
            return Err(AdminError::Invalid(unknown.iter().map(|r| format!("unknown role {r:?}")).collect()));
        }
    }
    if status.is_some_and(|s| s != UserStatus::Active) && actor.is(id) {
        return Err(AdminError::invalid("you cannot disable or lock your own account"));
    }
    let now = svc.now();
    let mut changed = Vec::new();
    if let Some(email) = &email {
        let stored = store::users::set_email(svc.db(), id, email, now).await.map_err(|e| {
            if e.is_unique_violation() { AdminError::Duplicate("email") } else { AdminError::Store(e) }
        })?;
        if !stored {
            return Err(AdminError::NotFound("user"));
        }
        changed.push("email".to_owned());
    }
    if let Some(roles) = &roles {
        store::users::set_roles(svc.db(), id, roles, now).await?;
        changed.push(format!("roles={}", roles.iter().map(Role::as_str).collect::<Vec<_>>().join(",")));
    }
    if let Some(status) = status {
        apply_status(svc, &user, status, now).await?;
        changed.push(format!("status={}", status.as_str()));
    }
    record(svc, actor, AuditKind::AdminUserUpdate, Some(id.to_owned()), None, Some(changed.join(" ")))
        .await?;
    get(svc, id).await
}

/// `disable` and `enable`. Disabling ends every session at once; the user's live access
/// tokens introspect inactive because introspection checks the user's status.
pub async fn set_status(
    svc: &Services,
    actor: &Actor,
    id: &str,
    status: UserStatus,
) -> Result<User, AdminError> {
    if status != UserStatus::Active && actor.is(id) {
        return Err(AdminError::invalid("you cannot disable your own account"));
    }
    let user = get(svc, id).await?;
    apply_status(svc, &user, status, svc.now()).await?;
    let event =
        if status == UserStatus::Active { AuditKind::AdminUserEnable } else { AuditKind::AdminUserDisable };
    record(svc, actor, event, Some(id.to_owned()), None, None).await?;
    get(svc, id).await
}

async fn apply_status(svc: &Services, user: &User, status: UserStatus, now: i64) -> Result<(), AdminError> {
    if !store::users::set_status(svc.db(), &user.id, status, now).await? {
        return Err(AdminError::NotFound("user"));
    }
    if status != UserStatus::Active {
        store::sessions::revoke_for_user(svc.db(), &user.id, Which::All, now).await?;
    }
    Ok(())
}

/// Sets a user's password without mail (recovery by an operator) and ends every session of
/// the user. The password policy applies as at registration.
pub async fn set_password(
    svc: &Services,
    actor: &Actor,
    id: &str,
    password: String,
) -> Result<User, AdminError> {
    let user = get(svc, id).await?;
    let password = Password::new_checked(password, &[user.username.as_str(), user.email.as_str()])
        .map_err(AdminError::Invalid)?;
    let hash = svc.hasher().hash(&password).await?;
    // No session is kept: none of them is the operator's.
    store::users::change_password(svc.db(), &user.id, &hash, "", svc.now()).await?;
    record(svc, actor, AuditKind::AdminUserSetPassword, Some(user.id.clone()), None, None).await?;
    Ok(user)
}

/// Ends a lockout: failed attempts reset, a locked user is active again.
pub async fn unlock(svc: &Services, actor: &Actor, id: &str) -> Result<User, AdminError> {
    if !store::users::unlock(svc.db(), id, svc.now()).await? {
        return Err(AdminError::NotFound("user"));
    }
    record(svc, actor, AuditKind::AdminUserUnlock, Some(id.to_owned()), None, None).await?;
    get(svc, id).await
}

/// Ends every session of the user; returns how many were live.
pub async fn revoke_sessions(svc: &Services, actor: &Actor, id: &str) -> Result<u64, AdminError> {
    get(svc, id).await?;
    let revoked = store::sessions::revoke_for_user(svc.db(), id, Which::All, svc.now()).await?;
    record(
        svc,
        actor,
        AuditKind::AdminUserRevokeSessions,
        Some(id.to_owned()),
        None,
        Some(format!("revoked={revoked}")),
    )
    .await?;
    Ok(revoked)
}

pub async fn set_roles(
    svc: &Services,
    actor: &Actor,
    id: &str,
    roles: Vec<String>,
) -> Result<User, AdminError> {
    update(svc, actor, id, UserPatch { roles: Some(roles), ..Default::default() }).await
}

/// Deletes the user with their sessions; audit records keep the id.
pub async fn delete(svc: &Services, actor: &Actor, id: &str) -> Result<(), AdminError> {
    if actor.is(id) {
        return Err(AdminError::invalid("you cannot delete your own account"));
    }
    if !store::users::delete(svc.db(), id).await? {
        return Err(AdminError::NotFound("user"));
    }
    record(svc, actor, AuditKind::AdminUserDelete, Some(id.to_owned()), None, None).await?;
    Ok(())
}

fn parse_status(text: &str) -> Result<UserStatus, String> {
    UserStatus::parse(text).ok_or_else(|| format!("status must be active, disabled or locked, not {text:?}"))
}

fn parse_roles(names: &[String]) -> Result<Vec<Role>, Vec<String>> {
    let mut roles = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match Role::parse(name) {
            Ok(role) => roles.push(role),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    roles.sort();
    roles.dedup();
    Ok(roles)
}
