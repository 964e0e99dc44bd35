use sqlx::Row;

use super::{Db, StoreResult};

pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    /// Published in the JWKS from here on.
    pub created_at: i64,
    /// May sign from here on.
    pub signs_from: i64,
    /// Leaves the JWKS here; `None` until a newer key supersedes it.
    pub retire_at: Option<i64>,
}

/// Every key, oldest generation first.
pub async fn list(db: &Db) -> StoreResult<Vec<KeyRow>> {
    let rows = sqlx::query(
        "SELECT kid, alg, created_at, signs_from, retire_at
         FROM signing_keys ORDER BY generation",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(KeyRow {
                kid: r.try_get("kid")?,
                alg: r.try_get("alg")?,
                created_at: r.try_get("created_at")?,
                signs_from: r.try_get("signs_from")?,
                retire_at: r.try_get("retire_at")?,
            })
        })
        .collect()
}

/// Records the first key, generation 1. `false` when there already is one (another replica
/// made it first): the table decides, so only one first key ever signs.
pub async fn insert_first(db: &Db, kid: &str, alg: &str, now: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO signing_keys (kid, alg, created_at, signs_from, retire_at, generation)
         VALUES ($1, $2, $3, $3, NULL, 1) ON CONFLICT (generation) DO NOTHING",
    )
    .bind(kid)
    .bind(alg)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a key of the next generation that signs from `signs_from`, and schedules every
/// key not yet superseded to retire at `retire_others_at`. One transaction, so replicas never
/// see half of it; `false` when a concurrent rotation took the generation (try again).
pub async fn insert_next(
    db: &Db,
    kid: &str,
    alg: &str,
    now: i64,
    signs_from: i64,
    retire_others_at: i64,
) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    // The insert comes first: on PostgreSQL it waits for a concurrent rotation of the same
    // generation and then yields, so the update below always sees every committed key.
    let done = sqlx::query(
        "INSERT INTO signing_keys (kid, alg, created_at, signs_from, retire_at, generation)
         SELECT $1, $2, $3, $4, NULL, COALESCE(MAX(generation), 0) + 1 FROM signing_keys WHERE TRUE
         ON CONFLICT (generation) DO NOTHING",
    )
    .bind(kid)
    .bind(alg)
    .bind(now)
    .bind(signs_from)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("UPDATE signing_keys SET retire_at = $1 WHERE retire_at IS NULL AND kid <> $2")
        .bind(retire_others_at)
        .bind(kid)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
