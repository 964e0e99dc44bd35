//! Sessions (refresh-token families), refresh tokens and revoked access tokens.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, AuditEvent};
use super::group_commit::{Done, Job};
use super::{Db, StoreError, StoreResult};
use crate::model::{Scope, User};

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
        let row = (refresh.hash, session.id.as_str(), refresh.scope, session.created_at, refresh.expires_at);
        insert_refresh_tokens(&mut tx, &[row]).await?;
    }
    audit::insert_all(&mut *tx, db.sqlite, &[(event, session.created_at)]).await?;
    tx.commit().await?;
    Ok(true)
}

/// A refresh token row: hash, session, scope, created_at, expires_at.
type RefreshRow<'a> = (&'a str, &'a str, &'a Scope, i64, i64);

/// Stores refresh tokens (only their hashes) in one statement.
async fn insert_refresh_tokens(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[RefreshRow<'_>],
) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO refresh_tokens (hash, session_id, scope, created_at, expires_at) VALUES {}",
        super::placeholders(rows.len(), 5, 0)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(rows.len() == 1);
    for &(hash, session_id, scope, created_at, expires_at) in rows {
        query = query.bind(hash).bind(session_id).bind(scope.to_string()).bind(created_at).bind(expires_at);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// A refresh token as stored, with its session and the session's user.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub scope: Scope,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub session: Session,
    pub user: User,
}

/// The refresh token with hash `hash`, its session and its user with their roles: all a
/// refresh reads, in one round trip (a row per role).
pub async fn find_refresh(db: &Db, hash: &str) -> StoreResult<Option<RefreshRecord>> {
    let rows = sqlx::query(concat!(
        "SELECT r.scope AS token_scope, r.created_at AS token_created_at, r.expires_at AS token_expires_at, r.used_at, ",
        session_columns!(),
        ", ",
        super::users::prefixed_columns!(),
        ", ur.role FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id",
        " LEFT JOIN user_roles ur ON ur.user_id = u.id WHERE r.hash = $1 ORDER BY ur.role"
    ))
    .bind(hash)
    .fetch_all(db.pool())
    .await?;
    let Some(r) = rows.first() else { return Ok(None) };
    Ok(Some(RefreshRecord {
        scope: scope_column(r, "token_scope")?,
        created_at: r.try_get("token_created_at")?,
        expires_at: r.try_get("token_expires_at")?,
        used_at: r.try_get("used_at")?,
        session: session_from_row(r)?,
        user: super::users::from_joined_rows(&rows, "u_")?,
    }))
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

/// A rotation to commit: spend the old token, store the next one (only its hash), touch
/// the session, and record the audit event, all or nothing.
pub struct RotationWrite {
    pub old_hash: String,
    pub spend: Spend,
    pub session_id: String,
    pub new_hash: String,
    pub scope: Scope,
    pub expires_at: i64,
    pub now: i64,
    pub event: AuditEvent,
}

/// Commits `rotation` together with the other writes waiting meanwhile (`group_commit`),
/// and returns once it has committed.
pub async fn rotate_refresh(db: &Db, rotation: RotationWrite) -> StoreResult<Rotation> {
    match db.group_commit.submit(Job::Rotate(rotation)).await? {
        Done::Rotated(rotation) => Ok(rotation),
        Done::Recorded => Err(super::StoreError::Corrupt("a rotation came back as an audit record".into())),
    }
}

/// Spends the tokens of a batch's rotations inside its transaction; one outcome per
/// rotation, in order. The conditional UPDATE decides: of any number of spenders of one
/// token, in this batch or another, only one sees its row change (here the first in queue
/// order), and a rotation that finds its token spent writes nothing. The presented tokens
/// are spent in one statement; retries after a lost response (`Spend::Successor`, rare)
/// one by one after them.
pub(super) async fn spend(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rotations: &[&RotationWrite],
) -> StoreResult<Vec<Rotation>> {
    let presented: Vec<&RotationWrite> =
        rotations.iter().copied().filter(|r| r.spend == Spend::Presented).collect();
    let mut spent: Vec<String> =
        if presented.is_empty() { Vec::new() } else { spend_presented(tx, &presented).await? };
    let mut outcomes = Vec::with_capacity(rotations.len());
    for rotation in rotations {
        let won = match rotation.spend {
            Spend::Presented => match spent.iter().position(|hash| *hash == rotation.old_hash) {
                Some(at) => {
                    spent.swap_remove(at);
                    true
                }
                None => false,
            },
            Spend::Successor => spend_successor(tx, rotation).await?,
        };
        outcomes.push(if won { Rotation::Rotated } else { Rotation::AlreadyUsed });
    }
    Ok(outcomes)
}

/// The hashes, among `presented`, this statement spent; each points at its rotation's
/// successor (for a token presented twice, the first rotation's).
async fn spend_presented(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    presented: &[&RotationWrite],
) -> StoreResult<Vec<String>> {
    let pairs: Vec<String> =
        (0..presented.len()).map(|i| format!("WHEN ${} THEN ${}", 2 * i + 2, 2 * i + 3)).collect();
    let hashes: Vec<String> = (0..presented.len()).map(|i| format!("${}", 2 * i + 2)).collect();
    let sql = format!(
        "UPDATE refresh_tokens SET used_at = $1, replaced_by = CASE hash {} END
         WHERE hash IN ({}) AND used_at IS NULL RETURNING hash",
        pairs.join(" "),
        hashes.join(", ")
    );
    // One time for the batch, which spans milliseconds.
    let now = presented.iter().map(|r| r.now).max().unwrap_or_default();
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(presented.len() == 1).bind(now);
    for rotation in presented {
        query = query.bind(&rotation.old_hash).bind(&rotation.new_hash);
    }
    let rows = query.fetch_all(&mut **tx).await?;
    Ok(rows.iter().map(|row| row.try_get("hash")).collect::<Result<_, _>>()?)
}

async fn spend_successor(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rotation: &RotationWrite,
) -> StoreResult<bool> {
    let spent = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $2
         WHERE hash = (SELECT replaced_by FROM refresh_tokens WHERE hash = $1) AND used_at IS NULL",
    )
    .bind(&rotation.old_hash)
    .bind(rotation.now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if spent == 1 {
        sqlx::query("UPDATE refresh_tokens SET replaced_by = $2 WHERE hash = $1")
            .bind(&rotation.old_hash)
            .bind(&rotation.new_hash)
            .execute(&mut **tx)
            .await?;
    }
    Ok(spent == 1)
}

/// What `spend`, `store_successors` and the audit INSERT do for a batch whose rotations all
/// spend the presented token, in one call to the database instead of six, with the same
/// outcome: of two spenders of one token the first in queue order wins, and only winners
/// store a successor, touch their session and leave their audit record (a record with no
/// successor is always written). The rows travel as two JSON parameters, so the text never
/// changes, and it is prepared once per connection. Returns the successors of the winners.
///
/// PostgreSQL: one statement of data-modifying CTEs, atomic without BEGIN and COMMIT. The
/// tokens are found through `= ANY (ARRAY …)`, which keeps the plan on the primary key (a
/// join with the function's rows made it scan the table). SQLite, which has no
/// data-modifying CTEs: the same steps as five statements between its own BEGIN and COMMIT,
/// sent together. On an error that transaction may still be open: the caller must then
/// close the connection (which rolls it back), not give it back to the pool.
pub(super) async fn rotate_batch(
    conn: &mut sqlx::AnyConnection,
    sqlite: bool,
    rotations: &[&RotationWrite],
    records: &[(&AuditEvent, i64, Option<&str>)],
) -> StoreResult<Vec<String>> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        old: &'a str,
        new: &'a str,
        session_id: &'a str,
        scope: String,
        created_at: i64,
        expires_at: i64,
    }
    let rows: Vec<Row> = rotations
        .iter()
        .map(|r| Row {
            old: &r.old_hash,
            new: &r.new_hash,
            session_id: &r.session_id,
            scope: r.scope.to_string(),
            created_at: r.now,
            expires_at: r.expires_at,
        })
        .collect();
    // One time for the batch, which spans milliseconds.
    let now = rotations.iter().map(|r| r.now).max().unwrap_or_default();
    // Prepared: planning it took PostgreSQL longer than running it. The group commit's
    // connection plans without sequential scans (`group_commit::take_writer`), so the
    // generic plan keeps to the primary key even when fixed while the table was small.
    let found = sqlx::query(if sqlite { ROTATE_BATCH_SQLITE } else { ROTATE_BATCH_POSTGRES })
        .bind(now)
        .bind(super::json_param(&rows)?)
        .bind(audit::records_json(records)?)
        .fetch_all(conn)
        .await?;
    Ok(found.iter().map(|row| row.try_get("replaced_by")).collect::<Result<_, _>>()?)
}

const ROTATE_BATCH_POSTGRES: &str = "WITH batch AS (
        SELECT * FROM ROWS FROM (json_to_recordset($2::json) AS (old text, new text, session_id text,
            scope text, created_at bigint, expires_at bigint))
            WITH ORDINALITY AS b (old, new, session_id, scope, created_at, expires_at, ord)
    ), firsts AS (
        SELECT DISTINCT ON (old) old, new FROM batch ORDER BY old, ord
    ), spent AS (
        UPDATE refresh_tokens r SET used_at = $1, replaced_by = f.new FROM firsts f
        WHERE r.hash = ANY (ARRAY (SELECT old FROM firsts)) AND r.hash = f.old AND r.used_at IS NULL
        RETURNING r.replaced_by
    ), stored AS (
        INSERT INTO refresh_tokens (hash, session_id, scope, created_at, expires_at)
        SELECT new, session_id, scope, created_at, expires_at FROM batch
        WHERE new IN (SELECT replaced_by FROM spent)
        RETURNING session_id
    ), touched AS (
        UPDATE sessions SET last_used_at = $1 WHERE id IN (SELECT session_id FROM stored)
    ), audited AS (
        INSERT INTO audit_events (id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail)
        SELECT id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail
        FROM json_to_recordset($3::json) AS a (id text, at bigint, event text, outcome text, actor_id text,
            user_id text, client_id text, ip text, user_agent text, detail text, successor text)
        WHERE successor IS NULL OR successor IN (SELECT replaced_by FROM spent)
    )
    SELECT replaced_by FROM spent";

/// The first spender of a token in queue order is the row with the least `key` of its
/// group (SQLite takes a bare column from the row that `MIN` picked); a winner is a
/// rotation whose old token now names its successor.
const ROTATE_BATCH_SQLITE: &str = "BEGIN IMMEDIATE;
    UPDATE refresh_tokens SET used_at = $1, replaced_by = f.new
    FROM (SELECT b.value ->> '$.old' AS old, b.value ->> '$.new' AS new, MIN(b.key)
          FROM json_each($2) b GROUP BY b.value ->> '$.old') AS f
    WHERE refresh_tokens.hash = f.old AND refresh_tokens.used_at IS NULL;
    INSERT INTO refresh_tokens (hash, session_id, scope, created_at, expires_at)
    SELECT b.value ->> '$.new', b.value ->> '$.session_id', b.value ->> '$.scope',
           b.value ->> '$.created_at', b.value ->> '$.expires_at'
    FROM json_each($2) b
    WHERE EXISTS (SELECT 1 FROM refresh_tokens r
                  WHERE r.hash = b.value ->> '$.old' AND r.replaced_by = b.value ->> '$.new');
    UPDATE sessions SET last_used_at = $1
    WHERE id IN (SELECT r.session_id FROM json_each($2) b JOIN refresh_tokens r ON r.hash = b.value ->> '$.new');
    INSERT INTO audit_events (id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail)
    SELECT a.value ->> '$.id', a.value ->> '$.at', a.value ->> '$.event', a.value ->> '$.outcome',
           a.value ->> '$.actor_id', a.value ->> '$.user_id', a.value ->> '$.client_id', a.value ->> '$.ip',
           a.value ->> '$.user_agent', a.value ->> '$.detail'
    FROM json_each($3) a
    WHERE a.value ->> '$.successor' IS NULL
       OR EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.hash = a.value ->> '$.successor');
    SELECT r.hash AS replaced_by FROM json_each($2) b JOIN refresh_tokens r ON r.hash = b.value ->> '$.new';
    COMMIT";

/// Stores the next tokens of the batch's spent rotations and touches their sessions: two
/// statements for the whole batch. No rotation of the batch can spend a token stored here:
/// its client has not seen it yet.
pub(super) async fn store_successors(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rotated: &[&RotationWrite],
) -> StoreResult<()> {
    if rotated.is_empty() {
        return Ok(());
    }
    let insert = format!(
        "INSERT INTO refresh_tokens (hash, session_id, scope, created_at, expires_at) VALUES {}",
        super::placeholders(rotated.len(), 5, 0)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(insert)).persistent(rotated.len() == 1);
    for r in rotated {
        query = query
            .bind(&r.new_hash)
            .bind(&r.session_id)
            .bind(r.scope.to_string())
            .bind(r.now)
            .bind(r.expires_at);
    }
    query.execute(&mut **tx).await?;
    // One time for the batch: it spans a few milliseconds, and the column orders sessions.
    let now = rotated.iter().map(|r| r.now).max().unwrap_or_default();
    let touch = format!(
        "UPDATE sessions SET last_used_at = $1 WHERE id IN ({})",
        super::placeholders(rotated.len(), 1, 1)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(touch)).persistent(rotated.len() == 1).bind(now);
    for r in rotated {
        query = query.bind(&r.session_id);
    }
    query.execute(&mut **tx).await?;
    Ok(())
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
    db.tokens_changed(changed).await;
    Ok(changed == 1)
}

pub async fn revoke_access_token(db: &Db, jti: &str, expires_at: i64) -> StoreResult<()> {
    let added = sqlx::query(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(expires_at)
    .execute(db.pool())
    .await?
    .rows_affected();
    db.access_token_changed(jti, added).await;
    Ok(())
}

/// What the database says about a signed access token, in one round trip.
#[derive(Debug, Clone)]
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

/// Answered from memory for up to `CACHE_TTL` (`cache`): resource servers introspect the
/// same token on every call they serve. Every write that can end a token calls
/// `Db::tokens_changed`, so this process sees its own revocations at once.
pub async fn access_token_state(
    db: &Db,
    jti: &str,
    sid: Option<&str>,
    user_id: Option<&str>,
    client_id: &str,
    client_token_iat: Option<i64>,
    now: i64,
) -> StoreResult<AccessTokenState> {
    let read = || async {
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
        .fetch_optional(db.pool())
        .await?;
        let state = |row: AnyRow| -> StoreResult<AccessTokenState> {
            Ok(AccessTokenState {
                client_valid: row.try_get::<i64, _>("client_valid")? > 0,
                jti_revoked: row.try_get::<i64, _>("jti_revoked")? > 0,
                session_live: sid.map(|_| row.try_get::<i64, _>("session_live")).transpose()?.map(|n| n > 0),
                user_active: user_id
                    .map(|_| row.try_get::<i64, _>("user_active"))
                    .transpose()?
                    .map(|n| n > 0),
            })
        };
        row.map(state).transpose()
    };
    // The statement always answers one row.
    let state = db.caches.token_states.get_or_read(jti, read).await?;
    state.ok_or(StoreError::Sqlx(sqlx::Error::RowNotFound))
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

/// Which live sessions of a user to end.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    All,
    /// This one, if it is theirs.
    Only(&'a str),
    /// All but this one (a password change keeps the session that made it).
    AllBut(&'a str),
    /// Those of this client (consent withdrawn).
    OfClient(&'a str),
}

/// Ends the user's live sessions that `which` names (and so their refresh and access
/// tokens); returns how many were live.
pub async fn revoke_for_user(db: &Db, user_id: &str, which: Which<'_>, now: i64) -> StoreResult<u64> {
    let ended = end_for_user(db.pool(), user_id, which, now).await?;
    db.tokens_changed(ended).await;
    Ok(ended)
}

/// `revoke_for_user` inside a caller's transaction, which tells the caches once committed.
pub(super) async fn end_for_user<'e>(
    conn: impl sqlx::Executor<'e, Database = sqlx::Any>,
    user_id: &str,
    which: Which<'_>,
    now: i64,
) -> StoreResult<u64> {
    let (sql, other) = match which {
        Which::All => ("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL", None),
        Which::Only(id) => (
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND id = $3",
            Some(id),
        ),
        Which::AllBut(id) => (
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND id <> $3",
            Some(id),
        ),
        Which::OfClient(id) => (
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND client_id = $3",
            Some(id),
        ),
    };
    let mut query = sqlx::query(sql).bind(user_id).bind(now);
    if let Some(other) = other {
        query = query.bind(other);
    }
    Ok(query.execute(conn).await?.rows_affected())
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

/// Scopes are stored as their space-separated text, parsed back here once.
pub(super) fn scope_column(row: &AnyRow, column: &str) -> StoreResult<Scope> {
    let text: String = row.try_get(column)?;
    Scope::parse(&text).ok_or_else(|| super::StoreError::Corrupt(format!("scope {text:?}")))
}
