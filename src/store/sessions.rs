//! Sessions (refresh-token families), refresh tokens and revoked access tokens.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, AuditEvent};
use super::{Db, StoreResult};
use crate::model::Scope;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: Scope,
    pub amr: String,
    pub auth_time: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A refresh token to store: only its hash.
pub struct NewRefresh<'a> {
    pub hash: &'a str,
    pub scope: &'a Scope,
    pub expires_at: i64,
}

// A macro, not a const, so queries stay `&'static str` (sqlx refuses runtime-built SQL).
macro_rules! session_columns {
    () => {
        "s.id, s.user_id, s.client_id, s.scope, s.amr, s.auth_time, s.ip, s.user_agent, s.created_at, s.last_used_at, s.expires_at, s.revoked_at"
    };
}

/// Creates a session, when the client gets one its first refresh token, and the audit
/// record of the login, atomically; `false` (and nothing stored) when the user's security
/// stamp is no longer `security_stamp`: a password reset or change came between the
/// login's check and now.
pub async fn create(
    db: &Db,
    session: &Session,
    refresh: Option<NewRefresh<'_>>,
    event: &AuditEvent,
    security_stamp: i64,
) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    // A write to the user row, not a read: it holds the row until commit, so a reset
    // either comes first (and this matches no row) or waits and then ends this session.
    let current =
        sqlx::query("UPDATE users SET security_stamp = security_stamp WHERE id = $1 AND security_stamp = $2")
            .bind(&session.user_id)
            .bind(security_stamp)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if current != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO sessions (id, user_id, client_id, scope, amr, auth_time, ip, user_agent, created_at, last_used_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
    )
    .bind(&session.id)
    .bind(&session.user_id)
    .bind(&session.client_id)
    .bind(session.scope.to_string())
    .bind(&session.amr)
    .bind(session.auth_time)
    .bind(session.ip.as_deref())
    .bind(session.user_agent.as_deref())
    .bind(session.created_at)
    .bind(session.expires_at)
    .execute(&mut *tx)
    .await?;
    if let Some(refresh) = refresh {
        insert_refresh(&mut tx, &session.id, &refresh, session.created_at).await?;
    }
    audit::insert(&mut *tx, event, session.created_at).await?;
    tx.commit().await?;
    Ok(true)
}

async fn insert_refresh(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session_id: &str,
    refresh: &NewRefresh<'_>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO refresh_tokens (hash, session_id, scope, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(refresh.hash)
        .bind(session_id)
        .bind(refresh.scope.to_string())
        .bind(now)
        .bind(refresh.expires_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A refresh token as stored, with its session.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub scope: Scope,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub session: Session,
}

pub async fn find_refresh(db: &Db, hash: &str) -> StoreResult<Option<RefreshRecord>> {
    let row = sqlx::query(concat!(
        "SELECT r.scope AS token_scope, r.created_at AS token_created_at, r.expires_at AS token_expires_at, r.used_at, ",
        session_columns!(),
        " FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.hash = $1"
    ))
    .bind(hash)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(RefreshRecord {
            scope: scope_column(&r, "token_scope")?,
            created_at: r.try_get("token_created_at")?,
            expires_at: r.try_get("token_expires_at")?,
            used_at: r.try_get("used_at")?,
            session: session_from_row(&r)?,
        })
    })
    .transpose()
}

pub enum Rotation {
    /// The old token is spent and the new one stored, in one transaction.
    Rotated,
    /// Someone spent it first: a concurrent or replayed use.
    AlreadyUsed,
}

/// Which token a rotation spends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// The presented token itself (a normal refresh).
    Presented,
    /// The successor the presented, already spent token was replaced by, if nobody has
    /// used it yet: a retry after a lost response (`--refresh-reuse-grace`).
    Successor,
}

/// Spends a token and stores the next one, with its audit record, atomically. The
/// conditional UPDATE is the first statement, so on SQLite the transaction takes the write
/// lock at once, and only one of any number of concurrent callers can see its row change.
pub async fn rotate_refresh(
    db: &Db,
    old_hash: &str,
    spend: Spend,
    session_id: &str,
    new: &NewRefresh<'_>,
    now: i64,
    event: &AuditEvent,
) -> StoreResult<Rotation> {
    let mut tx = db.pool().begin().await?;
    let spend_sql = match spend {
        Spend::Presented => "UPDATE refresh_tokens SET used_at = $2 WHERE hash = $1 AND used_at IS NULL",
        Spend::Successor => {
            "UPDATE refresh_tokens SET used_at = $2
             WHERE hash = (SELECT replaced_by FROM refresh_tokens WHERE hash = $1) AND used_at IS NULL"
        }
    };
    let spent = sqlx::query(spend_sql).bind(old_hash).bind(now).execute(&mut *tx).await?.rows_affected();
    if spent != 1 {
        tx.rollback().await?;
        return Ok(Rotation::AlreadyUsed);
    }
    sqlx::query("UPDATE refresh_tokens SET replaced_by = $2 WHERE hash = $1")
        .bind(old_hash)
        .bind(new.hash)
        .execute(&mut *tx)
        .await?;
    insert_refresh(&mut tx, session_id, new, now).await?;
    sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1")
        .bind(session_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    audit::insert(&mut *tx, event, now).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated)
}

/// Ends a session: its refresh tokens stop working and its access tokens introspect
/// inactive. Returns whether it was live before.
pub async fn revoke(db: &Db, session_id: &str, now: i64) -> StoreResult<bool> {
    let changed = sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(now)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(changed == 1)
}

pub async fn revoke_access_token(db: &Db, jti: &str, expires_at: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// What the database says about a signed access token, in one round trip.
pub struct AccessTokenState {
    pub jti_revoked: bool,
    /// `None` when the token has no session (client credentials).
    pub session_live: Option<bool>,
    /// `None` when the token has no user; `Some(false)` for a deleted or inactive user.
    pub user_active: Option<bool>,
    /// The client still exists and, for a client's own token, has not changed its secret
    /// since the token was issued.
    pub client_valid: bool,
}

pub async fn access_token_state(
    db: &Db,
    jti: &str,
    sid: Option<&str>,
    user_id: Option<&str>,
    client_id: &str,
    client_token_iat: Option<i64>,
    now: i64,
) -> StoreResult<AccessTokenState> {
    let row = sqlx::query(
        "SELECT
            (SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = $1) AS jti_revoked,
            (SELECT COUNT(*) FROM sessions WHERE id = $2 AND revoked_at IS NULL AND expires_at > $4) AS session_live,
            (SELECT COUNT(*) FROM users WHERE id = $3 AND status = 'active') AS user_active,
            (SELECT COUNT(*) FROM clients WHERE id = $5 AND tokens_valid_after <= $6) AS client_valid",
    )
    .bind(jti)
    .bind(sid.unwrap_or(""))
    .bind(user_id.unwrap_or(""))
    .bind(now)
    .bind(client_id)
    // User tokens end with their session, not with the client's secret.
    .bind(client_token_iat.unwrap_or(i64::MAX))
    .fetch_one(db.pool())
    .await?;
    Ok(AccessTokenState {
        client_valid: row.try_get::<i64, _>("client_valid")? > 0,
        jti_revoked: row.try_get::<i64, _>("jti_revoked")? > 0,
        session_live: sid.map(|_| row.try_get::<i64, _>("session_live")).transpose()?.map(|n| n > 0),
        user_active: user_id.map(|_| row.try_get::<i64, _>("user_active")).transpose()?.map(|n| n > 0),
    })
}

/// Housekeeping: forget revocations of tokens that have expired anyway.
pub async fn prune(db: &Db, now: i64) -> StoreResult<u64> {
    let gone = sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at < $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    let spent =
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1").bind(now).execute(db.pool()).await?;
    Ok(gone.rows_affected() + spent.rows_affected())
}

fn session_from_row(r: &AnyRow) -> StoreResult<Session> {
    Ok(Session {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        client_id: r.try_get("client_id")?,
        scope: scope_column(r, "scope")?,
        amr: r.try_get("amr")?,
        auth_time: r.try_get("auth_time")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// Ends every live session of a user (and so their refresh and access tokens).
/// Returns how many were live.
pub async fn revoke_all_for_user(db: &Db, user_id: &str, now: i64) -> StoreResult<u64> {
    let changed =
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user_id)
            .bind(now)
            .execute(db.pool())
            .await?
            .rows_affected();
    Ok(changed)
}

/// The user's sessions that can still be used: not revoked, within their absolute
/// lifetime, and holding either an unspent refresh token or a recent access token
/// (issued after `access_cutoff`). Most recently used first.
pub async fn list_live_for_user(
    db: &Db,
    user_id: &str,
    now: i64,
    access_cutoff: i64,
) -> StoreResult<Vec<Session>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
           AND (s.last_used_at > $3 OR EXISTS (
                SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id AND r.used_at IS NULL AND r.expires_at > $2))
         ORDER BY s.last_used_at DESC, s.id"
    ))
    .bind(user_id)
    .bind(now)
    .bind(access_cutoff)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(session_from_row).collect()
}

/// Ends one session of `user_id`; `false` when there is no such live session of theirs.
pub async fn revoke_for_user(db: &Db, session_id: &str, user_id: &str, now: i64) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Scopes are stored as their space-separated text, parsed back here once.
pub(super) fn scope_column(row: &AnyRow, column: &str) -> StoreResult<Scope> {
    let text: String = row.try_get(column)?;
    Scope::parse(&text).ok_or_else(|| super::StoreError::Corrupt(format!("scope {text:?}")))
}
