//! Browser sign-in: login sessions behind the cookie, authorization requests in progress,
//! authorization codes and remembered consents.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::sessions::Which;
use super::{Db, StoreResult};

/// A browser's login session; `user_id` is `None` until someone signs in.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    /// SHA-256 hex of the cookie value.
    pub id: String,
    pub csrf_token: String,
    pub user_id: Option<String>,
    /// The user's security stamp at sign-in; the session signs nobody in once it moved.
    pub security_stamp: Option<i64>,
    pub auth_time: Option<i64>,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn insert_browser_session(db: &Db, s: &BrowserSession) -> StoreResult<()> {
    insert_session(db.pool(), s).await
}

async fn insert_session<'e>(db: impl sqlx::AnyExecutor<'e>, s: &BrowserSession) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO browser_sessions (id, csrf_token, user_id, security_stamp, auth_time, amr, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.id)
    .bind(&s.csrf_token)
    .bind(s.user_id.as_deref())
    .bind(s.security_stamp)
    .bind(s.auth_time)
    .bind(&s.amr)
    .bind(s.created_at)
    .bind(s.expires_at)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn find_browser_session(db: &Db, id: &str, now: i64) -> StoreResult<Option<BrowserSession>> {
    let row = sqlx::query(
        "SELECT id, csrf_token, user_id, security_stamp, auth_time, amr, created_at, expires_at
         FROM browser_sessions WHERE id = $1 AND expires_at > $2",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(BrowserSession {
            id: r.try_get("id")?,
            csrf_token: r.try_get("csrf_token")?,
            user_id: r.try_get("user_id")?,
            security_stamp: r.try_get("security_stamp")?,
            auth_time: r.try_get("auth_time")?,
            amr: r.try_get("amr")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// Replaces a browser session by a new one (a new id at every sign-in, so a cookie value
/// planted before the sign-in is worth nothing after it); its requests move along.
pub async fn replace_browser_session(db: &Db, old_id: &str, new: &BrowserSession) -> StoreResult<()> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM browser_sessions WHERE id = $1").bind(old_id).execute(&mut *tx).await?;
    insert_session(&mut *tx, new).await?;
    sqlx::query("UPDATE authorize_requests SET browser_session = $2 WHERE browser_session = $1")
        .bind(old_id)
        .bind(&new.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn delete_browser_session(db: &Db, id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM authorize_requests WHERE browser_session = $1")
        .bind(id)
        .execute(db.pool())
        .await?;
    sqlx::query("DELETE FROM browser_sessions WHERE id = $1").bind(id).execute(db.pool()).await?;
    Ok(())
}

/// An authorization request between the redirect to latchkey and the code.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub id: String,
    pub browser_session: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub scope_explicit: bool,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt_consent: bool,
    /// `login`, `second_factor` or `consent`.
    pub stage: String,
    /// The user who passed the password (second_factor) or is signed in (consent).
    pub user_id: Option<String>,
    pub mfa_challenge: Option<String>,
    pub login_hint: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn insert_request(db: &Db, r: &AuthorizeRequest) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO authorize_requests (id, browser_session, client_id, redirect_uri, scope, scope_explicit, state,
             nonce, code_challenge, prompt_consent, stage, user_id, mfa_challenge, login_hint, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&r.id)
    .bind(&r.browser_session)
    .bind(&r.client_id)
    .bind(&r.redirect_uri)
    .bind(&r.scope)
    .bind(i64::from(r.scope_explicit))
    .bind(r.state.as_deref())
    .bind(r.nonce.as_deref())
    .bind(&r.code_challenge)
    .bind(i64::from(r.prompt_consent))
    .bind(&r.stage)
    .bind(r.user_id.as_deref())
    .bind(r.mfa_challenge.as_deref())
    .bind(r.login_hint.as_deref())
    .bind(r.created_at)
    .bind(r.expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn find_request(db: &Db, id: &str, now: i64) -> StoreResult<Option<AuthorizeRequest>> {
    let row = sqlx::query(
        "SELECT id, browser_session, client_id, redirect_uri, scope, scope_explicit, state, nonce, code_challenge,
                prompt_consent, stage, user_id, mfa_challenge, login_hint, created_at, expires_at
         FROM authorize_requests WHERE id = $1 AND expires_at > $2",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| request_from_row(&r)).transpose()
}

fn request_from_row(r: &AnyRow) -> StoreResult<AuthorizeRequest> {
    Ok(AuthorizeRequest {
        id: r.try_get("id")?,
        browser_session: r.try_get("browser_session")?,
        client_id: r.try_get("client_id")?,
        redirect_uri: r.try_get("redirect_uri")?,
        scope: r.try_get("scope")?,
        scope_explicit: r.try_get::<i64, _>("scope_explicit")? != 0,
        state: r.try_get("state")?,
        nonce: r.try_get("nonce")?,
        code_challenge: r.try_get("code_challenge")?,
        prompt_consent: r.try_get::<i64, _>("prompt_consent")? != 0,
        stage: r.try_get("stage")?,
        user_id: r.try_get("user_id")?,
        mfa_challenge: r.try_get("mfa_challenge")?,
        login_hint: r.try_get("login_hint")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// Moves a request to its next stage.
pub async fn set_stage(
    db: &Db,
    id: &str,
    stage: &str,
    user_id: Option<&str>,
    mfa_challenge: Option<&str>,
) -> StoreResult<()> {
    sqlx::query("UPDATE authorize_requests SET stage = $2, user_id = $3, mfa_challenge = $4 WHERE id = $1")
        .bind(id)
        .bind(stage)
        .bind(user_id)
        .bind(mfa_challenge)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Ends a request; `false` when it was already gone (a double submit).
pub async fn delete_request(db: &Db, id: &str) -> StoreResult<bool> {
    let gone =
        sqlx::query("DELETE FROM authorize_requests WHERE id = $1").bind(id).execute(db.pool()).await?;
    Ok(gone.rows_affected() == 1)
}

/// An authorization code as stored: only its hash, and everything it is bound to.
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub amr: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub session_id: Option<String>,
}

pub async fn insert_code(db: &Db, c: &AuthorizationCode) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO authorization_codes (hash, client_id, user_id, redirect_uri, scope, nonce, code_challenge, amr,
             auth_time, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&c.hash)
    .bind(&c.client_id)
    .bind(&c.user_id)
    .bind(&c.redirect_uri)
    .bind(&c.scope)
    .bind(c.nonce.as_deref())
    .bind(&c.code_challenge)
    .bind(&c.amr)
    .bind(c.auth_time)
    .bind(c.created_at)
    .bind(c.expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn find_code(db: &Db, hash: &str) -> StoreResult<Option<AuthorizationCode>> {
    let row = sqlx::query(
        "SELECT hash, client_id, user_id, redirect_uri, scope, nonce, code_challenge, amr, auth_time, created_at,
                expires_at, used_at, session_id
         FROM authorization_codes WHERE hash = $1",
    )
    .bind(hash)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(AuthorizationCode {
            hash: r.try_get("hash")?,
            client_id: r.try_get("client_id")?,
            user_id: r.try_get("user_id")?,
            redirect_uri: r.try_get("redirect_uri")?,
            scope: r.try_get("scope")?,
            nonce: r.try_get("nonce")?,
            code_challenge: r.try_get("code_challenge")?,
            amr: r.try_get("amr")?,
            auth_time: r.try_get("auth_time")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            used_at: r.try_get("used_at")?,
            session_id: r.try_get("session_id")?,
        })
    })
    .transpose()
}

/// Spends a code; only one of any number of concurrent callers gets `true`.
pub async fn spend_code(db: &Db, hash: &str, now: i64) -> StoreResult<bool> {
    let spent =
        sqlx::query("UPDATE authorization_codes SET used_at = $2 WHERE hash = $1 AND used_at IS NULL")
            .bind(hash)
            .bind(now)
            .execute(db.pool())
            .await?;
    Ok(spent.rows_affected() == 1)
}

pub async fn set_code_session(db: &Db, hash: &str, session_id: &str) -> StoreResult<()> {
    sqlx::query("UPDATE authorization_codes SET session_id = $2 WHERE hash = $1")
        .bind(hash)
        .bind(session_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A remembered consent, with the client's name for the user's list.
#[derive(Debug, Clone)]
pub struct Consent {
    pub client_id: String,
    pub client_name: String,
    pub scope: String,
    pub granted_at: i64,
}

pub async fn find_consent(db: &Db, user_id: &str, client_id: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| r.try_get("scope").map_err(Into::into)).transpose()
}

pub async fn put_consent(db: &Db, user_id: &str, client_id: &str, scope: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(scope)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn list_consents(db: &Db, user_id: &str) -> StoreResult<Vec<Consent>> {
    let rows = sqlx::query(
        "SELECT c.client_id, k.name, c.scope, c.granted_at FROM consents c JOIN clients k ON k.id = c.client_id
         WHERE c.user_id = $1 ORDER BY c.client_id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Consent {
                client_id: r.try_get("client_id")?,
                client_name: r.try_get("name")?,
                scope: r.try_get("scope")?,
                granted_at: r.try_get("granted_at")?,
            })
        })
        .collect()
}

/// Withdraws a consent and ends the user's sessions with that client, in one transaction.
/// `false` when there was no consent.
pub async fn withdraw_consent(db: &Db, user_id: &str, client_id: &str, now: i64) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    let gone = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let ended = super::sessions::end_for_user(&mut *tx, user_id, Which::OfClient(client_id), now).await?;
    tx.commit().await?;
    db.tokens_changed(ended).await;
    Ok(gone == 1)
}

/// Housekeeping: expired browser sessions and requests, and codes a day after they
/// expired (kept that long so a late replay still ends what the code bought).
pub async fn prune(db: &Db, now: i64) -> StoreResult<u64> {
    let mut gone = 0;
    for sql in [
        "DELETE FROM authorize_requests WHERE expires_at < $1",
        "DELETE FROM browser_sessions WHERE expires_at < $1",
    ] {
        gone += sqlx::query(sql).bind(now).execute(db.pool()).await?.rows_affected();
    }
    gone += sqlx::query("DELETE FROM authorization_codes WHERE expires_at < $1")
        .bind(now - 86_400)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(gone)
}
