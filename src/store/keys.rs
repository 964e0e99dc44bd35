use sqlx::Row;

use super::{Db, StoreResult};

pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub created_at: i64,
    pub retire_at: Option<i64>,
}

pub async fn list(db: &Db) -> StoreResult<Vec<KeyRow>> {
    let rows =
        sqlx::query("SELECT kid, alg, created_at, retire_at FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(db.pool())
            .await?;
    rows.iter()
        .map(|r| {
            Ok(KeyRow {
                kid: r.try_get("kid")?,
                alg: r.try_get("alg")?,
                created_at: r.try_get("created_at")?,
                retire_at: r.try_get("retire_at")?,
            })
        })
        .collect()
}

/// Records a new signing key; with `retire_others_at`, every key still signing becomes a
/// verify-only key until then. One transaction, so replicas never see two half-states.
pub async fn insert_signing(
    db: &Db,
    kid: &str,
    alg: &str,
    now: i64,
    retire_others_at: Option<i64>,
) -> StoreResult<()> {
    let mut tx = db.pool().begin().await?;
    if let Some(at) = retire_others_at {
        sqlx::query("UPDATE signing_keys SET retire_at = $1 WHERE retire_at IS NULL")
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("INSERT INTO signing_keys (kid, alg, created_at, retire_at) VALUES ($1, $2, $3, NULL)")
        .bind(kid)
        .bind(alg)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
