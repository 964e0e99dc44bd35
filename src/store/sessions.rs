//! Sessions (refresh-token families) with their refresh tokens' state, and revoked access
//! tokens.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, AuditEvent};
use super::group_commit::{Done, Job};
use super::limits::{Step, Stepped};
use super::users::{self, LoginRecord};
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

/// Generation 0 is a session's refresh token from before generations (in
/// `refresh_tokens`), or none; a session made now starts with this one.
pub const FIRST_GENERATION: i64 = 1;

/// A session's first refresh token: only its hash is stored.
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

/// How the user signed in to a new session, as its transaction checks it on the user row.
pub enum SignIn<'a> {
    /// Earlier (an authorization code, a second factor): the security stamp then read.
    Earlier { security_stamp: i64 },
    /// Right now, with a password: the login is written here (`users::record_login_on`), so
    /// it commits with the session.
    Password(LoginRecord<'a>),
}

/// Creates a session, with its first refresh token when the client gets one, and the
/// audit record of the login, atomically; `false` (and nothing stored) when the user row
/// refuses `sign_in`: a password reset or change came between the login's check and now,
/// or, for a password sign-in, the account is locked.
pub async fn create(
    db: &Db,
    session: &Session,
    refresh: Option<NewRefresh<'_>>,
    event: &AuditEvent,
    sign_in: &SignIn<'_>,
) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    // A write to the user row, not a read: it holds the row until commit, so a reset
    // either comes first (and this matches no row) or waits and then ends this session.
    let current = match sign_in {
        SignIn::Earlier { security_stamp } => {
            sqlx::query(
                "UPDATE users SET security_stamp = security_stamp WHERE id = $1 AND security_stamp = $2",
            )
            .bind(&session.user_id)
            .bind(security_stamp)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        }
        SignIn::Password(login) => users::record_login_on(&mut *tx, login).await?,
    };
    if !current {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO sessions (id, user_id, client_id, scope, amr, auth_time, ip, user_agent, created_at, last_used_at, expires_at,
                               refresh_generation, refresh_hash, refresh_scope, refresh_expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14)",
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
    .bind(if refresh.is_some() { FIRST_GENERATION } else { 0 })
    .bind(refresh.as_ref().map(|r| r.hash))
    .bind(refresh.as_ref().map(|r| r.scope.to_string()))
    .bind(refresh.as_ref().map(|r| r.expires_at))
    .execute(&mut *tx)
    .await?;
    audit::insert_all(&mut *tx, db.sqlite, &[(event, session.created_at)]).await?;
    tx.commit().await?;
    Ok(true)
}

/// A refresh token's session as a refresh reads it: the session, its user with their
/// roles, the session's refresh state, and what the token carries.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub session: Session,
    pub user: User,
    /// The session's current generation.
    pub generation: i64,
    /// Hashes of the session's current token and of the one it replaced.
    pub hash: Option<String>,
    pub previous_hash: Option<String>,
    /// When the current token replaced the previous one.
    pub rotated_at: Option<i64>,
    /// What the token carries: the current token's, or a token from before generations its
    /// own.
    pub scope: Scope,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Set for a token from before generations (`find_legacy_refresh`).
    pub legacy: Option<LegacyRefresh>,
}

/// A refresh token stored in `refresh_tokens`, from before generations.
#[derive(Debug, Clone)]
pub struct LegacyRefresh {
    pub used_at: Option<i64>,
}

/// The SELECT of both refresh reads: a row per role, each session's rows together.
macro_rules! refresh_query {
    ($token:expr, $from:literal, $filter:literal) => {
        concat!(
            "SELECT ",
            $token,
            ", s.refresh_generation, s.refresh_hash, s.refresh_previous_hash, s.refresh_rotated_at, ",
            session_columns!(),
            ", ",
            super::users::prefixed_columns!(),
            ", ur.role FROM ",
            $from,
            " JOIN users u ON u.id = s.user_id LEFT JOIN user_roles ur ON ur.user_id = u.id WHERE ",
            $filter,
            " ORDER BY s.id, ur.role"
        )
    };
}

/// The refresh state of session `session_id`, if it was ever given a refresh token of
/// generation 1 or later; read in one statement with the other refreshes' reads waiting
/// meanwhile (`batched_reads`).
pub async fn find_refresh(db: &Db, session_id: &str) -> StoreResult<Option<RefreshRecord>> {
    db.refresh_reads.read(session_id).await
}

/// `find_refresh` of every session in `ids`, in one statement; the sessions that have a
/// refresh state, by id. The ids travel as one JSON parameter, so the text never changes.
pub(super) async fn find_refreshes(
    conn: &mut sqlx::AnyConnection,
    sqlite: bool,
    ids: &[&str],
) -> StoreResult<HashMap<String, RefreshRecord>> {
    macro_rules! current_token {
        () => {
            "s.refresh_scope AS token_scope, COALESCE(s.refresh_rotated_at, s.created_at) AS token_issued_at, s.refresh_expires_at AS token_expires_at"
        };
    }
    const SQLITE: &str = refresh_query!(
        current_token!(),
        "sessions s",
        "s.id IN (SELECT value FROM json_each($1)) AND s.refresh_generation > 0"
    );
    // `= ANY (ARRAY …)` keeps the plan on the primary key, as in `rotate_batch`, and the
    // connection plans without sequential scans (`held::HeldConnection`).
    const POSTGRES: &str = refresh_query!(
        current_token!(),
        "sessions s",
        "s.id = ANY (ARRAY (SELECT json_array_elements_text($1::json))) AND s.refresh_generation > 0"
    );
    let rows = sqlx::query(if sqlite { SQLITE } else { POSTGRES })
        .bind(super::json_param(&ids)?)
        .fetch_all(conn)
        .await?;
    // A session's rows (one per role) come together: the statement orders by session first.
    rows.chunk_by(|a, b| a.try_get::<String, _>("id").ok() == b.try_get::<String, _>("id").ok())
        .map(|rows| {
            let record = refresh_record(&rows[0], rows, None)?;
            Ok((record.session.id.clone(), record))
        })
        .collect()
}

/// The token from before generations whose hash is `hash`, with its session's refresh
/// state.
pub async fn find_legacy_refresh(db: &Db, hash: &str) -> StoreResult<Option<RefreshRecord>> {
    let sql = refresh_query!(
        "r.scope AS token_scope, r.created_at AS token_issued_at, r.expires_at AS token_expires_at, r.used_at",
        "refresh_tokens r JOIN sessions s ON s.id = r.session_id",
        "r.hash = $1"
    );
    let rows = sqlx::query(sql).bind(hash).fetch_all(db.pool()).await?;
    let Some(r) = rows.first() else { return Ok(None) };
    let legacy = LegacyRefresh { used_at: r.try_get("used_at")? };
    refresh_record(r, &rows, Some(legacy)).map(Some)
}

fn refresh_record(r: &AnyRow, rows: &[AnyRow], legacy: Option<LegacyRefresh>) -> StoreResult<RefreshRecord> {
    Ok(RefreshRecord {
        session: session_from_row(r)?,
        user: super::users::from_joined_rows(rows, "u_")?,
        generation: r.try_get("refresh_generation")?,
        hash: r.try_get("refresh_hash")?,
        previous_hash: r.try_get("refresh_previous_hash")?,
        rotated_at: r.try_get("refresh_rotated_at")?,
        scope: scope_column(r, "token_scope")?,
        issued_at: r.try_get("token_issued_at")?,
        expires_at: r.try_get("token_expires_at")?,
        legacy,
    })
}

pub enum Rotation {
    /// The session moved on to the new token, and the audit record was written with it.
    Rotated,
    /// Another rotation moved it on first: a concurrent or replayed use.
    AlreadyUsed,
}

/// A rotation to commit: move the session from `generation` to the next, whose token has
/// hash `new_hash`, touch it, and record the audit event, all or nothing.
pub struct RotationWrite {
    pub session_id: String,
    pub generation: i64,
    pub new_hash: String,
    pub scope: Scope,
    pub expires_at: i64,
    pub now: i64,
    pub event: AuditEvent,
}

/// How a rotation with a rate-limit step ended.
pub enum Rotated<T> {
    /// The step was refused: nothing was written, and `meanwhile` never ran.
    Refused(Stepped),
    Committed(Rotation, T),
}

/// Commits `rotation` together with the other writes waiting meanwhile (`group_commit`),
/// having first taken its request's rate-limit `step` in the same batch, so that the
/// request waits for one batch, not two; a refused step leaves the rotation unwritten.
/// `meanwhile` (the signing of the new tokens) runs once the step is allowed, while the
/// commit waits for the disk.
pub async fn rotate_refresh<T>(
    db: &Db,
    rotation: RotationWrite,
    step: Option<Step>,
    meanwhile: impl Future<Output = T>,
) -> StoreResult<Rotated<T>> {
    let counted = step.is_some();
    let job = Job::Rotate(rotation, step);
    let (done, value) = if counted {
        let (stepped, committing) = db.group_commit.submit_stepped(job).await?;
        if !stepped.allowed {
            return Ok(Rotated::Refused(stepped));
        }
        tokio::join!(committing.wait(), meanwhile)
    } else {
        tokio::join!(db.group_commit.submit(job), meanwhile)
    };
    match done? {
        Done::Rotated(rotation) => Ok(Rotated::Committed(rotation, value)),
        _ => Err(super::StoreError::Corrupt("a rotation came back as another write".into())),
    }
}

/// Commits a batch's rotations and audit records in one call to the database. A rotation
/// is a conditional UPDATE of its session row (`WHERE refresh_generation = $expected`):
/// of any number of rotations from one generation, in this batch or another, only one
/// sees the row change (in a batch, the first in queue order), and one that finds the
/// session moved on writes nothing, not even its audit record (a record with no
/// successor is always written). The rows travel as two JSON parameters, so the text
/// never changes, and it is prepared once per connection. Returns the new hashes of the
/// winners.
///
/// PostgreSQL: one statement of data-modifying CTEs, atomic without BEGIN and COMMIT. The
/// sessions are found through `= ANY (ARRAY …)`, which keeps the plan on the primary key
/// (a join with the function's rows made it scan the table). SQLite, which has no
/// data-modifying CTEs: the same steps as statements sent together, between their own
/// BEGIN and COMMIT unless the caller has `opened` a transaction already (one call to
/// SQLite's thread instead of three: 1.77 against 2.27 ms per commit, benches/README.md).
/// On an error that transaction may still be open: the caller must then close the
/// connection (which rolls it back), not give it back to the pool.
pub(super) async fn rotate_batch(
    conn: &mut sqlx::AnyConnection,
    sqlite: bool,
    opened: bool,
    rotations: &[&RotationWrite],
    records: &[(&AuditEvent, i64, Option<&str>)],
) -> StoreResult<Vec<String>> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        session_id: &'a str,
        generation: i64,
        new: &'a str,
        scope: String,
        expires_at: i64,
    }
    let rows: Vec<Row> = rotations
        .iter()
        .map(|r| Row {
            session_id: &r.session_id,
            generation: r.generation,
            new: &r.new_hash,
            scope: r.scope.to_string(),
            expires_at: r.expires_at,
        })
        .collect();
    // One time for the batch, which spans milliseconds.
    let now = rotations.iter().map(|r| r.now).max().unwrap_or_default();
    // Prepared: planning it took PostgreSQL longer than running it. The group commit's
    // connection plans without sequential scans (`held::HeldConnection`), so the
    // generic plan keeps to the primary key even when fixed while the table was small.
    let text = match (sqlite, opened) {
        (false, _) => ROTATE_BATCH_POSTGRES,
        (true, false) => ROTATE_BATCH_SQLITE,
        (true, true) => ROTATE_BATCH_SQLITE_OPENED,
    };
    let found = sqlx::query(text)
        .bind(now)
        .bind(super::json_param(&rows)?)
        .bind(audit::records_json(records)?)
        .fetch_all(conn)
        .await?;
    Ok(found.iter().map(|row| row.try_get("replaced_by")).collect::<Result<_, _>>()?)
}

const ROTATE_BATCH_POSTGRES: &str = "WITH batch AS (
        SELECT * FROM ROWS FROM (json_to_recordset($2::json) AS (session_id text, generation bigint, new text,
            scope text, expires_at bigint))
            WITH ORDINALITY AS b (session_id, generation, new, scope, expires_at, ord)
    ), firsts AS (
        SELECT DISTINCT ON (session_id, generation) * FROM batch ORDER BY session_id, generation, ord
    ), rotated AS (
        UPDATE sessions s SET refresh_generation = f.generation + 1, refresh_previous_hash = s.refresh_hash,
            refresh_hash = f.new, refresh_scope = f.scope, refresh_expires_at = f.expires_at,
            refresh_rotated_at = $1, last_used_at = $1
        FROM firsts f
        WHERE s.id = ANY (ARRAY (SELECT session_id FROM firsts)) AND s.id = f.session_id
          AND s.refresh_generation = f.generation
        RETURNING f.new
    ), audited AS (
        INSERT INTO audit_events (id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail)
        SELECT id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail
        FROM json_to_recordset($3::json) AS a (id text, at bigint, event text, outcome text, actor_id text,
            user_id text, client_id text, ip text, user_agent text, detail text, successor text)
        WHERE successor IS NULL OR successor IN (SELECT new FROM rotated)
    )
    SELECT new AS replaced_by FROM rotated";

/// The first rotation of a generation in queue order is the row with the least `key` of
/// its group (SQLite takes a bare column from the row that `MIN` picked); a winner is a
/// rotation whose new hash is now its session's.
macro_rules! rotate_batch_sqlite {
    () => {
        "UPDATE sessions SET refresh_generation = f.generation + 1, refresh_previous_hash = refresh_hash,
        refresh_hash = f.new, refresh_scope = f.scope, refresh_expires_at = f.expires_at,
        refresh_rotated_at = $1, last_used_at = $1
    FROM (SELECT b.value ->> '$.session_id' AS session_id, b.value ->> '$.generation' AS generation,
                 b.value ->> '$.new' AS new, b.value ->> '$.scope' AS scope,
                 b.value ->> '$.expires_at' AS expires_at, MIN(b.key)
          FROM json_each($2) b GROUP BY 1, 2) AS f
    WHERE sessions.id = f.session_id AND sessions.refresh_generation = f.generation;
    INSERT INTO audit_events (id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail)
    SELECT a.value ->> '$.id', a.value ->> '$.at', a.value ->> '$.event', a.value ->> '$.outcome',
           a.value ->> '$.actor_id', a.value ->> '$.user_id', a.value ->> '$.client_id', a.value ->> '$.ip',
           a.value ->> '$.user_agent', a.value ->> '$.detail'
    FROM json_each($3) a
    WHERE a.value ->> '$.successor' IS NULL
       OR EXISTS (SELECT 1 FROM json_each($2) b JOIN sessions s ON s.id = b.value ->> '$.session_id'
                  WHERE b.value ->> '$.new' = a.value ->> '$.successor' AND s.refresh_hash = b.value ->> '$.new');
    SELECT b.value ->> '$.new' AS replaced_by
    FROM json_each($2) b JOIN sessions s ON s.id = b.value ->> '$.session_id' AND s.refresh_hash = b.value ->> '$.new'"
    };
}

const ROTATE_BATCH_SQLITE: &str = concat!("BEGIN IMMEDIATE; ", rotate_batch_sqlite!(), "; COMMIT");
const ROTATE_BATCH_SQLITE_OPENED: &str = rotate_batch_sqlite!();

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

/// Housekeeping: forget revocations of tokens that have expired anyway, and refresh
/// tokens from before generations once expired.
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
           AND (s.last_used_at > $3 OR s.refresh_expires_at > $2 OR (s.refresh_generation = 0 AND EXISTS (
                SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id AND r.used_at IS NULL AND r.expires_at > $2)))
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
