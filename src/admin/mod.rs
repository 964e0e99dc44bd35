//! The admin surface as domain functions: users, clients, signing keys and the audit log.
//! The HTTP handlers and the CLI both call these, and every change is audited with its
//! actor. Knows nothing of HTTP.

pub mod audit;
pub mod clients;
pub mod users;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::account::AccountError;
use crate::config::SigningAlg;
use crate::crypto::password::HashError;
use crate::keys::{KeyError, KeyInfo};
use crate::mfa::MfaError;
use crate::model::RequestMeta;
use crate::oauth::client::RegisterError;
use crate::oauth::tokens::{self, BearerError};
use crate::services::Services;
use crate::store::audit::{AuditEvent, AuditKind};
use crate::store::{self, StoreError};

pub const ADMIN_ROLE: &str = "admin";
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// Who performs an admin action: an admin over the API, or an operator at the CLI.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The admin's user id; `None` at the command line.
    pub user_id: Option<String>,
    pub meta: RequestMeta,
    /// `api` or `cli`, recorded in the audit detail.
    pub via: &'static str,
}

impl Actor {
    pub fn cli() -> Actor {
        Actor { user_id: None, meta: RequestMeta::default(), via: "cli" }
    }

    fn is(&self, user_id: &str) -> bool {
        self.user_id.as_deref() == Some(user_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid input")]
    Invalid(Vec<String>),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("that {0} is already taken")]
    Duplicate(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Mfa(#[from] MfaError),
}

impl AdminError {
    fn invalid(reason: impl Into<String>) -> AdminError {
        AdminError::Invalid(vec![reason.into()])
    }
}

impl From<AccountError> for AdminError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Invalid(reasons) => AdminError::Invalid(reasons),
            AccountError::Duplicate(what) => AdminError::Duplicate(what),
            AccountError::NotFound => AdminError::NotFound("user"),
            AccountError::Store(e) => AdminError::Store(e),
            AccountError::Hash(e) => AdminError::Hash(e),
            // Self-service outcomes that admin operations do not produce.
            e @ (AccountError::InvalidToken
            | AccountError::WrongPassword
            | AccountError::RegistrationClosed
            | AccountError::TooManyRequests(_)) => AdminError::invalid(e.to_string()),
        }
    }
}

impl From<RegisterError> for AdminError {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::Duplicate => AdminError::Duplicate("client id"),
            RegisterError::Invalid(reason) => AdminError::invalid(reason),
            RegisterError::Store(e) => AdminError::Store(e),
        }
    }
}

/// Admits a Bearer token to the admin API: it must be an active user token with scope
/// `admin`, and its user must hold role `admin` in the database now — a role removed after
/// the token was issued counts as removed. A signed-in user refused here (a token meant for
/// another API, or a user without the role) is worth an audit record.
pub async fn authorize(svc: &Services, token: &str, meta: RequestMeta) -> Result<Actor, BearerError> {
    let claims = match tokens::authenticate_bearer(svc, token, tokens::ADMIN_SCOPE).await {
        Ok(claims) => claims,
        Err(BearerError::InsufficientScope { scope }) => {
            if let Some(claims) = tokens::active_access_token(svc, token).await? {
                deny(svc, &claims.sub, &claims.client_id, &meta).await?;
            }
            return Err(BearerError::InsufficientScope { scope });
        }
        Err(err) => return Err(err),
    };
    let user = store::users::find_by_id(svc.db(), &claims.sub).await?.ok_or(BearerError::INACTIVE)?;
    if !user.roles.iter().any(|r| r == ADMIN_ROLE) {
        deny(svc, &user.id, &claims.client_id, &meta).await?;
        return Err(BearerError::InsufficientScope { scope: tokens::ADMIN_SCOPE });
    }
    Ok(Actor { user_id: Some(user.id), meta, via: "api" })
}

async fn deny(svc: &Services, user_id: &str, client_id: &str, meta: &RequestMeta) -> Result<(), StoreError> {
    let event = AuditEvent {
        actor_id: Some(user_id.to_owned()),
        user_id: Some(user_id.to_owned()),
        client_id: Some(client_id.to_owned()),
        ..AuditEvent::new(AuditKind::AdminAccessDenied, "failure")
    };
    svc.audit(event, meta).await
}

/// One page of a list and the cursor of the next, if there is more.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A page size within 1..=MAX_LIMIT, DEFAULT_LIMIT when absent.
fn page_limit(limit: Option<i64>) -> Result<i64, AdminError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(AdminError::invalid(format!("limit must be 1 to {MAX_LIMIT}"))),
    }
}

/// Cursors are opaque to callers: the keyset position, tagged with the list it belongs to.
fn encode_cursor(list: &str, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}:{key}"))
}

fn decode_cursor(list: &str, cursor: Option<&str>) -> Result<Option<String>, AdminError> {
    let Some(cursor) = cursor else { return Ok(None) };
    let bad = || AdminError::invalid("cursor is not one this list handed out");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    match text.split_once(':') {
        Some((tag, key)) if tag == list && !key.is_empty() => Ok(Some(key.to_owned())),
        _ => Err(bad()),
    }
}

/// Turns `limit + 1` fetched rows into a page: the extra row only says there is more.
fn into_page<T>(mut rows: Vec<T>, limit: i64, list: &str, key: impl Fn(&T) -> &str) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|last| encode_cursor(list, key(last))) } else { None };
    Page { items: rows, next_cursor }
}

/// Writes the audit record of an admin action.
async fn record(
    svc: &Services,
    actor: &Actor,
    event: AuditKind,
    user_id: Option<String>,
    client_id: Option<String>,
    detail: Option<String>,
) -> Result<(), StoreError> {
    let detail = match detail {
        Some(d) => format!("via={} {d}", actor.via),
        None => format!("via={}", actor.via),
    };
    svc.audit(
        AuditEvent {
            actor_id: actor.user_id.clone(),
            user_id,
            client_id,
            detail: Some(detail),
            ..AuditEvent::new(event, "success")
        },
        &actor.meta,
    )
    .await
}

/// Signing keys and their state.
pub async fn list_keys(svc: &Services) -> Result<Vec<KeyInfo>, AdminError> {
    Ok(svc.keys().list().await?)
}

/// Adds a signing key of `alg` (default `--signing-alg`), published at once and signing once
/// every cached JWKS has it; the old ones stay published until their tokens have expired.
pub async fn rotate_key(
    svc: &Services,
    actor: &Actor,
    alg: Option<SigningAlg>,
) -> Result<KeyInfo, AdminError> {
    let alg = alg.unwrap_or(svc.settings().signing_alg);
    // Access and ID tokens both live `--access-token-ttl`.
    let key = svc.keys().rotate(alg, svc.settings().access_token_ttl).await?;
    let detail = format!("kid={} alg={alg} signs_from={}", key.kid, key.signs_from);
    record(svc, actor, AuditKind::AdminKeyRotate, None, None, Some(detail)).await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_stay_in_their_list() {
        let c = encode_cursor("users", "alice");
        assert_eq!(decode_cursor("users", Some(&c)).unwrap().as_deref(), Some("alice"));
        assert!(decode_cursor("audit", Some(&c)).is_err());
        assert!(decode_cursor("users", Some("not base64!")).is_err());
        assert_eq!(decode_cursor("users", None).unwrap(), None);
    }

    #[test]
    fn limits_default_and_bound() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(page_limit(Some(MAX_LIMIT)).unwrap(), MAX_LIMIT);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(MAX_LIMIT + 1)).is_err());
    }
}
