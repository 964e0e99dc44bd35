//! Rate-limit state. Steps and refunds are batched: on SQLite they join the group commit's
//! next transaction (`group_commit`) instead of waiting for the file lock on their own; on
//! PostgreSQL a group commit of their own takes each batch's steps in one statement
//! (`apply_all_postgres`), so concurrent steps on one key no longer queue for its row one
//! statement at a time. A refresh's step goes with its rotation instead, into the durable
//! group commit's batch (`sessions::rotate_refresh`), on both. On neither does a step wait
//! for the disk: a crash may hand back a few units of a budget; nothing else depends on
//! these rows.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::group_commit::Job;
use super::{Db, StoreError, StoreResult, json_param};

/// PostgreSQL: each key's steps of one batch as one step of `n` units, taken at the
/// earliest of their arrivals (so later ones meet the budget a few milliseconds early,
/// never late). A key's first `allowed` units go through, as `Step::after` taken `n` times
/// would let them. A key without a row starts from "now". Rows are taken in key order, so
/// two replicas' batches cannot deadlock. `set_config(…, true)` is `SET LOCAL`, for this
/// statement's transaction alone, so that no setting outlives it on a connection a pooler
/// in transaction mode hands on.
const STEP_ALL_POSTGRES: &str = "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)),
    steps AS (SELECT * FROM json_to_recordset($1::json)
              AS s (key text, n bigint, now_ms bigint, emission_ms bigint, tolerance_ms bigint))
    INSERT INTO rate_limits AS r (key, tat_ms, allowed)
    SELECT key, now_ms + LEAST(n, tolerance_ms / emission_ms + 1) * emission_ms,
           LEAST(n, tolerance_ms / emission_ms + 1)
    FROM steps, relaxed ORDER BY key
    ON CONFLICT (key) DO UPDATE SET (tat_ms, allowed) = (
      SELECT CASE WHEN a = 0 THEN r.tat_ms ELSE from_ms + a * emission_ms END, a
      FROM (SELECT from_ms, emission_ms,
                   CASE WHEN from_ms - now_ms > tolerance_ms THEN 0
                        ELSE LEAST(n, (tolerance_ms - (from_ms - now_ms)) / emission_ms + 1) END AS a
            FROM (SELECT GREATEST(r.tat_ms, s.now_ms) AS from_ms, s.* FROM steps s
                  WHERE s.key = excluded.key) AS g) AS f)
    RETURNING key, tat_ms, allowed";

/// PostgreSQL: each key's refunds of one batch at once.
const REFUND_ALL_POSTGRES: &str = "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true))
    UPDATE rate_limits SET tat_ms = tat_ms - r.ms
    FROM relaxed, json_to_recordset($1::json) AS r (key text, ms bigint) WHERE rate_limits.key = r.key";

/// One GCRA step: with `emission_ms` per request and a burst tolerance of `tolerance_ms`,
/// the request is allowed when the arrival time it would push out stays within the
/// tolerance.
#[derive(Debug, Clone)]
pub struct Step {
    pub key: String,
    pub now_ms: i64,
    pub emission_ms: i64,
    pub tolerance_ms: i64,
}

/// Whether a step was allowed, and the theoretical arrival time it left.
#[derive(Debug, Clone, Copy)]
pub struct Stepped {
    pub allowed: bool,
    pub tat_ms: i64,
}

impl Step {
    /// The step from the arrival time stored under the key, if any.
    fn after(&self, stored_tat_ms: Option<i64>) -> Stepped {
        let from = stored_tat_ms.map_or(self.now_ms, |tat| tat.max(self.now_ms));
        match stored_tat_ms {
            Some(tat_ms) if from - self.now_ms > self.tolerance_ms => Stepped { allowed: false, tat_ms },
            _ => Stepped { allowed: true, tat_ms: from + self.emission_ms },
        }
    }
}

/// A change to rate-limit state that a group-commit batch makes before its writes.
pub(super) enum Change<'a> {
    Step(&'a Step),
    /// Takes one emission interval back off the arrival time (below "now" it simply means
    /// a full budget, as GCRA reads it).
    Refund {
        key: &'a str,
        emission_ms: i64,
    },
}

impl Change<'_> {
    fn key(&self) -> &str {
        match self {
            Change::Step(step) => &step.key,
            Change::Refund { key, .. } => key,
        }
    }
}

/// Takes `step` in the next batch (`apply_all`, `apply_all_postgres`).
pub async fn hit(db: &Db, step: Step) -> StoreResult<Stepped> {
    let (stepped, _committing) = db.limit_commit.submit_stepped(Job::Step(step)).await?;
    Ok(stepped)
}

pub async fn refund(db: &Db, key: &str, emission_ms: i64) -> StoreResult<()> {
    db.limit_commit.submit(Job::Refund { key: key.to_owned(), emission_ms }).await?;
    Ok(())
}

/// SQLite: the rate-limit changes of one group-commit batch, in queue order, inside its
/// transaction, which no other writer can enter: the state is read once, stepped here, and
/// written once, however many steps the batch holds. As statements of their own, each step
/// was a hand-off to SQLite's thread and back while the commit waited. Returns each
/// step's outcome (`None` for a refund).
pub(super) async fn apply_all(
    conn: &mut AnyConnection,
    changes: &[Change<'_>],
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
                if let Some(tat_ms) = tats.get_mut(*key) {
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

/// PostgreSQL: the rate-limit changes of one batch, its refunds first, then its steps, each
/// kind in one statement that is its own transaction. As statements of their own, steps on
/// one key queued for its row lock one round trip at a time. Returns each step's outcome
/// (`None` for a refund).
pub(super) async fn apply_all_postgres(
    conn: &mut AnyConnection,
    changes: &[Change<'_>],
) -> StoreResult<Vec<Option<Stepped>>> {
    #[derive(serde::Serialize)]
    struct Units<'a> {
        key: &'a str,
        n: i64,
        now_ms: i64,
        emission_ms: i64,
        tolerance_ms: i64,
    }
    #[derive(serde::Serialize)]
    struct Refund<'a> {
        key: &'a str,
        ms: i64,
    }
    // Keys carry their budget (`crate::limits`), so one key's steps share emission and tolerance.
    let mut units: Vec<Units> = Vec::new();
    let mut refunds: Vec<Refund> = Vec::new();
    for change in changes {
        match change {
            Change::Step(step) => match units.iter_mut().find(|u| u.key == step.key) {
                Some(u) => {
                    u.n += 1;
                    u.now_ms = u.now_ms.min(step.now_ms);
                }
                None => units.push(Units {
                    key: &step.key,
                    n: 1,
                    now_ms: step.now_ms,
                    emission_ms: step.emission_ms,
                    tolerance_ms: step.tolerance_ms,
                }),
            },
            Change::Refund { key, emission_ms } => match refunds.iter_mut().find(|r| r.key == *key) {
                Some(r) => r.ms += emission_ms,
                None => refunds.push(Refund { key, ms: *emission_ms }),
            },
        }
    }
    if !refunds.is_empty() {
        sqlx::query(REFUND_ALL_POSTGRES).bind(json_param(&refunds)?).execute(&mut *conn).await?;
    }
    // Per key: the arrival time after the batch's steps, and how many of them went through.
    let mut after: HashMap<String, (i64, i64)> = HashMap::new();
    if !units.is_empty() {
        for row in sqlx::query(STEP_ALL_POSTGRES).bind(json_param(&units)?).fetch_all(conn).await? {
            after.insert(row.try_get("key")?, (row.try_get("tat_ms")?, row.try_get("allowed")?));
        }
    }
    let mut taken: HashMap<&str, i64> = HashMap::new();
    changes
        .iter()
        .map(|change| match change {
            Change::Step(step) => {
                let &(tat_ms, allowed) = after
                    .get(&step.key)
                    .ok_or_else(|| StoreError::Corrupt("a rate-limit step without its row".into()))?;
                let nth = taken.entry(&step.key).or_default();
                *nth += 1;
                // The units that went through came first, each one emission interval on.
                Ok(Some(if *nth <= allowed {
                    Stepped { allowed: true, tat_ms: tat_ms - (allowed - *nth) * step.emission_ms }
                } else {
                    Stepped { allowed: false, tat_ms }
                }))
            }
            Change::Refund { .. } => Ok(None),
        })
        .collect()
}

/// Rows whose arrival time has passed carry no state any more. PostgreSQL passes over the
/// rows a batch holds: taking them in table order while a batch takes them in key order
/// could deadlock.
pub async fn prune(db: &Db, now_ms: i64) -> StoreResult<u64> {
    const PRUNE_SQLITE: &str = "DELETE FROM rate_limits WHERE tat_ms < $1";
    const PRUNE_POSTGRES: &str = "DELETE FROM rate_limits WHERE key IN
        (SELECT key FROM rate_limits WHERE tat_ms < $1 FOR UPDATE SKIP LOCKED)";
    Ok(sqlx::query(if db.sqlite { PRUNE_SQLITE } else { PRUNE_POSTGRES })
        .bind(now_ms)
        .execute(db.pool())
        .await?
        .rows_affected())
}
