//! Rate-limit state, committed without waiting for the disk (`Commits::Relaxed`): a power cut
//! may hand back a few units of a budget; nothing else depends on these rows.

use sqlx::Row;

use super::{Db, StoreResult};

/// The GCRA step's upsert, the row to insert given as `$rows`. The SET expressions all read
/// the old row, on PostgreSQL and SQLite alike.
macro_rules! gcra_step {
    ($rows:literal) => {
        concat!(
            "INSERT INTO rate_limits (key, tat_ms, allowed) ",
            $rows,
            " ON CONFLICT (key) DO UPDATE SET
               allowed = CASE WHEN (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) - $2 > $4
                              THEN 0 ELSE 1 END,
               tat_ms  = CASE WHEN (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) - $2 > $4
                              THEN rate_limits.tat_ms
                              ELSE (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) + $3 END
             RETURNING tat_ms, allowed"
        )
    };
}

/// SQLite: the pool's connections commit without waiting for the disk (`Db::limits_pool`).
const GCRA_STEP_SQLITE: &str = gcra_step!("VALUES ($1, $2 + $3, 1)");

/// PostgreSQL: `set_config(…, true)` is `SET LOCAL`, for this statement's transaction alone,
/// so that no setting outlives it on a connection a pooler in transaction mode hands on.
/// Set on the connection instead, it would take the durability of every later write on it.
const GCRA_STEP_POSTGRES: &str = concat!(
    "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)) ",
    gcra_step!("SELECT $1, $2 + $3, 1 FROM relaxed")
);

/// One GCRA step as a single atomic upsert: with `emission_ms` per request and a burst
/// tolerance of `tolerance_ms`, the request is allowed when the arrival time it would
/// push out stays within the tolerance. Returns (allowed, theoretical arrival time).
pub async fn hit(
    db: &Db,
    key: &str,
    now_ms: i64,
    emission_ms: i64,
    tolerance_ms: i64,
) -> StoreResult<(bool, i64)> {
    let row = sqlx::query(if db.sqlite { GCRA_STEP_SQLITE } else { GCRA_STEP_POSTGRES })
        .bind(key)
        .bind(now_ms)
        .bind(emission_ms)
        .bind(tolerance_ms)
        .fetch_one(db.limits_pool())
        .await?;
    Ok((row.try_get::<i64, _>("allowed")? == 1, row.try_get("tat_ms")?))
}

/// Takes one emission interval back off the arrival time (below "now" it simply means a
/// full budget, as GCRA reads it).
pub async fn refund(db: &Db, key: &str, emission_ms: i64) -> StoreResult<()> {
    sqlx::query("UPDATE rate_limits SET tat_ms = tat_ms - $2 WHERE key = $1")
        .bind(key)
        .bind(emission_ms)
        .execute(db.limits_pool())
        .await?;
    Ok(())
}

/// Rows whose arrival time has passed carry no state any more.
pub async fn prune(db: &Db, now_ms: i64) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM rate_limits WHERE tat_ms < $1")
        .bind(now_ms)
        .execute(db.limits_pool())
        .await?
        .rows_affected())
}
