//! TOTP credentials, recovery codes and MFA challenges. The checks that must hold under
//! concurrency (a code accepted once, a challenge spent once, at most N attempts) are each
//! one conditional UPDATE, so the database decides the race.

use sqlx::Row;

use super::{Db, StoreResult};
use crate::model::Scope;

/// A user's authenticator as stored: the secret still sealed.
#[derive(Debug, Clone)]
pub struct TotpCredential {
    pub sealed_secret: String,
    pub confirmed: bool,
    pub confirmed_at: Option<i64>,
}

pub async fn find_credential(db: &Db, user_id: &str) -> StoreResult<Option<TotpCredential>> {
    let row = sqlx::query("SELECT secret, confirmed, confirmed_at FROM totp_credentials WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| {
        Ok(TotpCredential {
            sealed_secret: r.try_get("secret")?,
            confirmed: r.try_get::<i64, _>("confirmed")? != 0,
            confirmed_at: r.try_get("confirmed_at")?,
        })
    })
    .transpose()
}

/// The users with a confirmed authenticator whose usernames lie in `first..=last`: one
/// query for a page of the admin user list (which is ordered by username), instead of one
/// per user.
pub async fn confirmed_between_usernames(db: &Db, first: &str, last: &str) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT t.user_id FROM totp_credentials t JOIN users u ON u.id = t.user_id
         WHERE t.confirmed = 1 AND u.username >= $1 AND u.username <= $2",
    )
    .bind(first)
    .bind(last)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| Ok(r.try_get("user_id")?)).collect()
}

/// Stores a pending (unconfirmed) secret, replacing an earlier pending one. `false` when
/// the user already has a confirmed authenticator, which is left alone.
pub async fn put_pending(db: &Db, user_id: &str, sealed_secret: &str, now: i64) -> StoreResult<bool> {
    let changed = sqlx::query(
        "INSERT INTO totp_credentials (user_id, secret, confirmed, created_at) VALUES ($1, $2, 0, $3)
         ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at,
                last_step = NULL
         WHERE totp_credentials.confirmed = 0",
    )
    .bind(user_id)
    .bind(sealed_secret)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Activates the pending authenticator whose secret is `sealed_secret`, records the step
/// of the confirming code as used, and replaces the recovery codes, in one transaction.
/// `false` when there is no such pending authenticator (confirmed meanwhile, or replaced
/// by a newer enrolment).
pub async fn confirm(
    db: &Db,
    user_id: &str,
    sealed_secret: &str,
    step: i64,
    recovery_hashes: &[String],
    now: i64,
) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    let changed = sqlx::query(
        "UPDATE totp_credentials SET confirmed = 1, confirmed_at = $3, last_step = $4
         WHERE user_id = $1 AND secret = $2 AND confirmed = 0",
    )
    .bind(user_id)
    .bind(sealed_secret)
    .bind(now)
    .bind(step)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
    for hash in recovery_hashes {
        sqlx::query("INSERT INTO recovery_codes (user_id, hash, created_at) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Accepts a code of time step `step` for a confirmed authenticator, once: only a step
/// later than every step accepted before moves the mark, so of any number of concurrent
/// requests with the same code exactly one sees its row change.
pub async fn accept_step(db: &Db, user_id: &str, step: i64) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE totp_credentials SET last_step = $1
         WHERE user_id = $2 AND confirmed = 1 AND (last_step IS NULL OR last_step < $1)",
    )
    .bind(step)
    .bind(user_id)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Removes the authenticator and the recovery codes. `false` when there was none.
pub async fn delete(db: &Db, user_id: &str) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    let gone = sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(gone == 1)
}

/// Spends an unused recovery code. `false` when it is unknown or already spent.
pub async fn spend_recovery_code(db: &Db, user_id: &str, hash: &str, now: i64) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(hash)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(changed == 1)
}

pub async fn recovery_codes_left(db: &Db, user_id: &str) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("n")?)
}

/// An `mfa_token` as stored: only its hash.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub hash: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: Scope,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn insert_challenge(db: &Db, c: &Challenge) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO mfa_challenges (hash, user_id, client_id, scope, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&c.hash)
    .bind(&c.user_id)
    .bind(&c.client_id)
    .bind(c.scope.to_string())
    .bind(c.created_at)
    .bind(c.expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A challenge that can still be answered: unspent, unexpired, attempts left.
pub async fn find_live_challenge(
    db: &Db,
    hash: &str,
    now: i64,
    max_attempts: i64,
) -> StoreResult<Option<Challenge>> {
    let row = sqlx::query(
        "SELECT hash, user_id, client_id, scope, created_at, expires_at FROM mfa_challenges
         WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3",
    )
    .bind(hash)
    .bind(now)
    .bind(max_attempts)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(Challenge {
            hash: r.try_get("hash")?,
            user_id: r.try_get("user_id")?,
            client_id: r.try_get("client_id")?,
            scope: super::sessions::scope_column(&r, "scope")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// Takes one attempt before a code is checked, so parallel guesses cannot exceed the
/// limit. `false` when the challenge is spent, expired or out of attempts.
pub async fn take_attempt(db: &Db, hash: &str, now: i64, max_attempts: i64) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE mfa_challenges SET attempts = attempts + 1
         WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3",
    )
    .bind(hash)
    .bind(now)
    .bind(max_attempts)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Spends the challenge after a correct code. `false` when another request spent it first.
pub async fn spend_challenge(db: &Db, hash: &str, now: i64) -> StoreResult<bool> {
    let changed = sqlx::query("UPDATE mfa_challenges SET used_at = $2 WHERE hash = $1 AND used_at IS NULL")
        .bind(hash)
        .bind(now)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(changed == 1)
}

/// Housekeeping: challenges are worthless once expired.
pub async fn prune_challenges(db: &Db, now: i64) -> StoreResult<u64> {
    let gone =
        sqlx::query("DELETE FROM mfa_challenges WHERE expires_at < $1").bind(now).execute(db.pool()).await?;
    Ok(gone.rows_affected())
}
