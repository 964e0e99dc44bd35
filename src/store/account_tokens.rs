//! One-time account tokens (email verification, password reset), stored as hashes.

use sqlx::Row;

use super::sessions::Which;
use super::{Db, StoreResult};

/// Stores a token for the user with `email`: one row in one statement whether or not such
/// a user exists (with no user when there is none), so both cases do the same work.
/// Returns the user's id when there was one.
pub async fn insert_for_email(
    db: &Db,
    hash: &str,
    email: &str,
    kind: &str,
    now: i64,
    expires_at: i64,
) -> StoreResult<Option<String>> {
    let row = sqlx::query(
        "INSERT INTO account_tokens (hash, user_id, kind, created_at, expires_at)
         VALUES ($1, (SELECT id FROM users WHERE email = $2), $3, $4, $5)
         RETURNING user_id",
    )
    .bind(hash)
    .bind(email)
    .bind(kind)
    .bind(now)
    .bind(expires_at)
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get("user_id")?)
}

/// The user a live (unused, unexpired) token of `kind` belongs to, without spending it.
pub async fn find_live(db: &Db, hash: &str, kind: &str, now: i64) -> StoreResult<Option<String>> {
    let row = sqlx::query(
        "SELECT user_id FROM account_tokens
         WHERE hash = $1 AND kind = $2 AND user_id IS NOT NULL AND used_at IS NULL AND expires_at > $3",
    )
    .bind(hash)
    .bind(kind)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|r| r.try_get("user_id")).transpose()?)
}

/// Marks an email verification token used and the user's address verified, atomically.
/// Returns the user's id, or `None` when the token was not live.
pub async fn verify_email(db: &Db, hash: &str, now: i64) -> StoreResult<Option<String>> {
    let mut tx = db.pool().begin().await?;
    let Some(user_id) = spend(&mut tx, hash, "verify_email", now).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    sqlx::query("UPDATE users SET email_verified = 1, updated_at = $2 WHERE id = $1")
        .bind(&user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(user_id))
}

/// Spends a password reset token: sets the new hash, marks the address verified (the
/// mailed token proves it), spends the user's other reset tokens, voids pending
/// `mfa_token`s and ends every session of the user, atomically. `None` when the token was not live
/// (or not `user_id`'s).
pub async fn reset_password(
    db: &Db,
    hash: &str,
    user_id: &str,
    password_hash: &str,
    now: i64,
) -> StoreResult<Option<()>> {
    let mut tx = db.pool().begin().await?;
    if spend(&mut tx, hash, "password_reset", now).await?.as_deref() != Some(user_id) {
        tx.rollback().await?;
        return Ok(None);
    }
    // The reset also ends any lock (the mailed token proves the owner) and moves the
    // security stamp on, so a login that proved the old password cannot open a session.
    sqlx::query(
        "UPDATE users SET password_hash = $2, email_verified = 1, failed_attempts = 0, locked_until = NULL,
                last_lock_secs = 0, security_stamp = security_stamp + 1, updated_at = $3
         WHERE id = $1",
    )
    .bind(user_id)
    .bind(password_hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    super::users::void_reset_tokens(&mut tx, user_id, now).await?;
    sqlx::query("DELETE FROM mfa_challenges WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
    let ended = super::sessions::end_for_user(&mut *tx, user_id, Which::All, now).await?;
    tx.commit().await?;
    db.tokens_changed(ended).await;
    Ok(Some(()))
}

/// The conditional UPDATE comes first, so of any number of concurrent spenders exactly
/// one sees its row change.
async fn spend(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    hash: &str,
    kind: &str,
    now: i64,
) -> StoreResult<Option<String>> {
    let row = sqlx::query(
        "UPDATE account_tokens SET used_at = $3
         WHERE hash = $1 AND kind = $2 AND user_id IS NOT NULL AND used_at IS NULL AND expires_at > $3
         RETURNING user_id",
    )
    .bind(hash)
    .bind(kind)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.try_get("user_id")).transpose()?)
}

/// Housekeeping: spent or expired tokens are of no further use.
pub async fn prune(db: &Db, now: i64) -> StoreResult<u64> {
    let gone = sqlx::query("DELETE FROM account_tokens WHERE expires_at < $1 OR used_at IS NOT NULL")
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(gone.rows_affected())
}
