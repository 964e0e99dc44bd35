//! Rate-limit state, written through connections whose commits do not wait for the disk
//! (`Commits::Relaxed`): a power cut may hand back a few units of a budget; nothing else
//! depends on these rows.

use sqlx::Row;

use super::{Db, StoreResult};

/// One GCRA step as a single atomic upsert: with `emission_ms` per request and a burst
/// tolerance of `tolerance_ms`, the request is allowed when the arrival time it would
/// push out stays within the tolerance. Returns (allowed, theoretical arrival time).
/// The SET expressions all read the old row, on PostgreSQL and SQLite alike.
pub async fn hit(
    db: &Db,
    key: &str,
    now_ms: i64,
    emission_ms: i64,
    tolerance_ms: i64,
) -> StoreResult<(bool, i64)> {
    let row = sqlx::query(
        "INSERT INTO rate_limits (key, tat_ms, allowed) VALUES ($1, $2 + $3, 1)
         ON CONFLICT (key) DO UPDATE SET
           allowed = CASE WHEN (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) - $2 > $4
                          THEN 0 ELSE 1 END,
           tat_ms  = CASE WHEN (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) - $2 > $4
                          THEN rate_limits.tat_ms
                          ELSE (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) + $3 END
         RETURNING tat_ms, allowed",
    )
    .bind(key)
    .bind(now_ms)
    .bind(emission_ms)
    .bind(tolerance_ms)
    .fetch_one(db.relaxed_pool())
    .await?;
    Ok((row.try_get::<i64, _>("allowed")? == 1, row.try_get("tat_ms")?))
}

/// Takes one emission interval back off the arrival time (below "now" it simply means a
/// full budget, as GCRA reads it).
pub async fn refund(db: &Db, key: &str, emission_ms: i64) -> StoreResult<()> {
    sqlx::query("UPDATE rate_limits SET tat_ms = tat_ms - $2 WHERE key = $1")
        .bind(key)
        .bind(emission_ms)
        .execute(db.relaxed_pool())
        .await?;
    Ok(())
}

/// Rows whose arrival time has passed carry no state any more.
pub async fn prune(db: &Db, now_ms: i64) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM rate_limits WHERE tat_ms < $1")
        .bind(now_ms)
        .execute(db.relaxed_pool())
        .await?
        .rows_affected())
}
