//! Rate-limit state. SQLite writes one transaction at a time, so there a step joins the
//! group commit's next transaction (`group_commit`) instead of waiting for the file lock on
//! its own. PostgreSQL takes a step as a statement of its own. On neither does a step wait
//! for the disk: a crash may hand back a few units of a budget; nothing else depends on
//! these rows.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::group_commit::{Done, Job};
use super::{Db, StoreError, StoreResult, json_param};

/// The GCRA step as one atomic upsert, for PostgreSQL; the SET expressions all read the
/// old row. `set_config(…, true)` is `SET LOCAL`, for this statement's transaction alone, so
/// that no setting outlives it on a connection a pooler in transaction mode hands on. Set
/// on the connection instead, it would take the durability of every later write on it.
const GCRA_STEP_POSTGRES: &str = "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true))
    INSERT INTO rate_limits (key, tat_ms, allowed) SELECT $1, $2 + $3, 1 FROM relaxed
    ON CONFLICT (key) DO UPDATE SET
      allowed = CASE WHEN (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) - $2 > $4
                     THEN 0 ELSE 1 END,
      tat_ms  = CASE WHEN (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) - $2 > $4
                     THEN rate_limits.tat_ms
                     ELSE (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) + $3 END
    RETURNING tat_ms, allowed";

/// One GCRA step: with `emission_ms` per request and a burst tolerance of `tolerance_ms`,
/// the request is allowed when the arrival time it would push out stays within the
/// tolerance.
pub(super) struct Step {
    pub key: String,
    pub now_ms: i64,
    pub emission_ms: i64,
    pub tolerance_ms: i64,
}

/// Whether a step was allowed, and the theoretical arrival time it left.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stepped {
    pub allowed: bool,
    pub tat_ms: i64,
}

impl Step {
    /// The step of `GCRA_STEP_POSTGRES`, from the arrival time stored under the key, if any.
    fn after(&self, stored_tat_ms: Option<i64>) -> Stepped {
        let from = stored_tat_ms.map_or(self.now_ms, |tat| tat.max(self.now_ms));
        match stored_tat_ms {
            Some(tat_ms) if from - self.now_ms > self.tolerance_ms => Stepped { allowed: false, tat_ms },
            _ => Stepped { allowed: true, tat_ms: from + self.emission_ms },
        }
    }
}

/// A change to rate-limit state that joins the group commit (SQLite).
pub(super) enum Change {
    Step(Step),
    /// Takes one emission interval back off the arrival time (below "now" it simply means
    /// a full budget, as GCRA reads it).
    Refund {
        key: String,
        emission_ms: i64,
    },
}

impl Change {
    fn key(&self) -> &str {
        match self {
            Change::Step(step) => &step.key,
            Change::Refund { key, .. } => key,
        }
    }
}

/// Takes one step: on SQLite in the group commit's next transaction (`apply_all`), on
/// PostgreSQL as one atomic upsert. Returns (allowed, theoretical arrival time).
pub async fn hit(
    db: &Db,
    key: &str,
    now_ms: i64,
    emission_ms: i64,
    tolerance_ms: i64,
) -> StoreResult<(bool, i64)> {
    let step = Step { key: key.to_owned(), now_ms, emission_ms, tolerance_ms };
    let Stepped { allowed, tat_ms } = if db.sqlite {
        match db.group_commit.submit(Job::RateLimit(Change::Step(step))).await? {
            Done::Stepped(stepped) => stepped,
            _ => return Err(StoreError::Corrupt("a rate-limit step came back as another write".into())),
        }
    } else {
        let row = sqlx::query(GCRA_STEP_POSTGRES)
            .bind(&step.key)
            .bind(step.now_ms)
            .bind(step.emission_ms)
            .bind(step.tolerance_ms)
            .fetch_one(db.pool())
            .await?;
        Stepped { allowed: row.try_get::<i64, _>("allowed")? == 1, tat_ms: row.try_get("tat_ms")? }
    };
    Ok((allowed, tat_ms))
}

pub async fn refund(db: &Db, key: &str, emission_ms: i64) -> StoreResult<()> {
    if db.sqlite {
        db.group_commit.submit(Job::RateLimit(Change::Refund { key: key.to_owned(), emission_ms })).await?;
    } else {
        sqlx::query("UPDATE rate_limits SET tat_ms = tat_ms - $2 WHERE key = $1")
            .bind(key)
            .bind(emission_ms)
            .execute(db.pool())
            .await?;
    }
    Ok(())
}

/// SQLite: the rate-limit changes of one group-commit batch, in queue order, inside its
/// transaction, which no other writer can enter: the state is read once, stepped here, and
/// written once, however many steps the batch holds. As statements of their own, each step
/// was a hand-off to SQLite's thread and back while the commit waited. Returns each
/// step's outcome (`None` for a refund).
pub(super) async fn apply_all(
    conn: &mut AnyConnection,
    changes: &[&Change],
) -> StoreResult<Vec<Option<Stepped>>> {
    let keys: Vec<&str> = changes.iter().map(|c| c.key()).collect();
    let mut tats: HashMap<String, i64> =
        sqlx::query("SELECT key, tat_ms FROM rate_limits WHERE key IN (SELECT value FROM json_each($1))")
            .bind(json_param(&keys)?)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("key")?, row.try_get("tat_ms")?)))
            .collect::<Result<_, sqlx::Error>>()?;
    let outcomes = changes
        .iter()
        .map(|change| match change {
            Change::Step(step) => {
                let stepped = step.after(tats.get(&step.key).copied());
                tats.insert(step.key.clone(), stepped.tat_ms);
                Some(stepped)
            }
            // A refund without a row has nothing to give back.
            Change::Refund { key, emission_ms } => {
                if let Some(tat_ms) = tats.get_mut(key) {
                    *tat_ms -= emission_ms;
                }
                None
            }
        })
        .collect();
    sqlx::query(
        "INSERT INTO rate_limits (key, tat_ms, allowed)
         SELECT j.key, j.value, 1 FROM json_each($1) j WHERE true
         ON CONFLICT (key) DO UPDATE SET tat_ms = excluded.tat_ms",
    )
    .bind(json_param(&tats)?)
    .execute(conn)
    .await?;
    Ok(outcomes)
}

/// Rows whose arrival time has passed carry no state any more.
pub async fn prune(db: &Db, now_ms: i64) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM rate_limits WHERE tat_ms < $1")
        .bind(now_ms)
        .execute(db.pool())
        .await?
        .rows_affected())
}
