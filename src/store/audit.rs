use std::sync::{Arc, Mutex};

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Db, StoreError, StoreResult};

/// What an audit record is about. The stored names are part of the admin API
/// (`GET /admin/audit?event=`): never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    AdminAccessDenied,
    AdminClientCreate,
    AdminClientDelete,
    AdminClientRotateSecret,
    AdminClientUpdate,
    AdminKeyRotate,
    AdminUserCreate,
    AdminUserDelete,
    AdminUserDisable,
    AdminUserEnable,
    AdminUserRevokeSessions,
    AdminUserSetPassword,
    AdminUserUnlock,
    AdminUserUpdate,
    AuthorizationCodeReuse,
    BrowserSignIn,
    BrowserSignOut,
    Consent,
    EmailVerified,
    Lockout,
    Login,
    Logout,
    MfaDisabled,
    MfaEnabled,
    MfaEnrolmentStarted,
    MfaReset,
    PasswordChange,
    PasswordReset,
    RecoveryCodeUsed,
    RefreshTokenReuse,
    Register,
    SessionRevoked,
    TokenIssued,
    TokenRevoked,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::AdminAccessDenied => "admin_access_denied",
            AuditKind::AdminClientCreate => "admin_client_create",
            AuditKind::AdminClientDelete => "admin_client_delete",
            AuditKind::AdminClientRotateSecret => "admin_client_rotate_secret",
            AuditKind::AdminClientUpdate => "admin_client_update",
            AuditKind::AdminKeyRotate => "admin_key_rotate",
            AuditKind::AdminUserCreate => "admin_user_create",
            AuditKind::AdminUserDelete => "admin_user_delete",
            AuditKind::AdminUserDisable => "admin_user_disable",
            AuditKind::AdminUserEnable => "admin_user_enable",
            AuditKind::AdminUserRevokeSessions => "admin_user_revoke_sessions",
            AuditKind::AdminUserSetPassword => "admin_user_set_password",
            AuditKind::AdminUserUnlock => "admin_user_unlock",
            AuditKind::AdminUserUpdate => "admin_user_update",
            AuditKind::AuthorizationCodeReuse => "authorization_code_reuse",
            AuditKind::BrowserSignIn => "browser_sign_in",
            AuditKind::BrowserSignOut => "browser_sign_out",
            AuditKind::Consent => "consent",
            AuditKind::EmailVerified => "email_verified",
            AuditKind::Lockout => "lockout",
            AuditKind::Login => "login",
            AuditKind::Logout => "logout",
            AuditKind::MfaDisabled => "mfa_disabled",
            AuditKind::MfaEnabled => "mfa_enabled",
            AuditKind::MfaEnrolmentStarted => "mfa_enrolment_started",
            AuditKind::MfaReset => "mfa_reset",
            AuditKind::PasswordChange => "password_change",
            AuditKind::PasswordReset => "password_reset",
            AuditKind::RecoveryCodeUsed => "recovery_code_used",
            AuditKind::RefreshTokenReuse => "refresh_token_reuse",
            AuditKind::Register => "register",
            AuditKind::SessionRevoked => "session_revoked",
            AuditKind::TokenIssued => "token_issued",
            AuditKind::TokenRevoked => "token_revoked",
        }
    }
}

/// One audit record. Never carries a secret: ids, names and outcomes only.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub event: AuditKind,
    pub outcome: &'static str,
    pub actor_id: Option<String>,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(event: AuditKind, outcome: &'static str) -> AuditEvent {
        AuditEvent {
            event,
            outcome,
            actor_id: None,
            user_id: None,
            client_id: None,
            ip: None,
            user_agent: None,
            detail: None,
        }
    }
}

pub async fn insert<'e>(db: impl sqlx::AnyExecutor<'e>, event: &AuditEvent, at: i64) -> StoreResult<()> {
    insert_all(db, &[(event, at)]).await
}

/// One statement for all of `records`: atomic without a transaction of its own, and one
/// round trip. Only the one-row statement is kept prepared: a batch's text changes with its
/// size, and each size would take a place in the connection's statement cache.
async fn insert_all<'e>(db: impl sqlx::AnyExecutor<'e>, records: &[(&AuditEvent, i64)]) -> StoreResult<()> {
    const COLUMNS: usize = 10;
    let rows = records.len();
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=COLUMNS).map(|col| format!("${}", row * COLUMNS + col)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO audit_events (id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail)
         VALUES {}",
        values.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(rows == 1);
    for &(event, at) in records {
        query = query
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(at)
            .bind(event.event.as_str())
            .bind(event.outcome)
            .bind(event.actor_id.as_deref())
            .bind(event.user_id.as_deref())
            .bind(event.client_id.as_deref())
            .bind(event.ip.as_deref())
            .bind(event.user_agent.as_deref())
            .bind(event.detail.as_deref());
    }
    query.execute(db).await?;
    Ok(())
}

/// Writes `event` in one statement with the other stand-alone records waiting meanwhile, and
/// returns once it has committed: one commit (one fsync on SQLite) for many requests, and
/// every acknowledged record is durable.
pub async fn record(db: &Db, event: AuditEvent, at: i64) -> StoreResult<()> {
    let (reply, answer) = oneshot::channel();
    let stopped = || StoreError::Unavailable(sqlx::Error::PoolClosed);
    db.audit.queue.send(Pending { event, at, reply }).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// Records waiting for a commit: a full queue makes requests wait (back-pressure) rather
/// than grow memory.
const QUEUE_CAPACITY: usize = 1024;

/// At most this many records per statement, so one commit stays short; 2,560 parameters,
/// well under SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_BATCH: usize = 256;

struct Pending {
    event: AuditEvent,
    at: i64,
    reply: oneshot::Sender<StoreResult<()>>,
}

/// The handle to the task that writes stand-alone audit records in batches.
#[derive(Clone, Debug)]
pub(super) struct AuditWriter {
    queue: mpsc::Sender<Pending>,
    /// Taken by `stop`.
    running: Arc<Mutex<Option<Running>>>,
}

/// The signal to finish and the task to wait for.
#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl AuditWriter {
    pub(super) fn start(pool: AnyPool) -> AuditWriter {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(write_batches(pool, rx, stopped));
        AuditWriter { queue, running: Arc::new(Mutex::new(Some(Running { stop, task }))) }
    }

    /// Refuses new records, writes those already queued, and returns when they are committed
    /// (or have failed).
    pub(super) async fn stop(&self) {
        let taken = self.running.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(Running { stop, task }) = taken {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

/// Takes whatever queued while the previous commit ran (no timer: a lone request is written
/// at once) and commits it in one statement. A failed batch fails every request in it;
/// the task itself goes on. Records whose request has gone away are written all the same:
/// the action they record may have happened.
async fn write_batches(pool: AnyPool, mut rx: mpsc::Receiver<Pending>, mut stop: oneshot::Receiver<()>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        let received = tokio::select! {
            received = rx.recv_many(&mut batch, MAX_BATCH) => received,
            _ = &mut stop, if !stopping => {
                stopping = true;
                rx.close();
                continue;
            }
        };
        if received == 0 {
            return;
        }
        let records: Vec<(&AuditEvent, i64)> = batch.iter().map(|p| (&p.event, p.at)).collect();
        match insert_all(&pool, &records).await {
            Ok(()) => {
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Ok(()));
                }
            }
            Err(err) => {
                let err = Arc::new(err);
                let mut unheard = 0;
                for pending in batch.drain(..) {
                    unheard += usize::from(pending.reply.send(Err(StoreError::Batch(err.clone()))).is_err());
                }
                // Those waiting log the error with their request; nobody else will hear of these.
                if unheard > 0 {
                    tracing::error!(error = %err, records = unheard, "audit records of finished requests lost");
                }
            }
        }
    }
}

/// A stored audit record.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: String,
    pub at: i64,
    pub event: String,
    pub outcome: String,
    pub actor_id: Option<String>,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

/// Filters and keyset position for the audit list, newest first.
#[derive(Debug, Default)]
pub struct AuditQuery<'a> {
    pub user_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub event: Option<&'a str>,
    pub outcome: Option<&'a str>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, inclusive.
    pub until: Option<i64>,
    /// Ids are UUIDv7, so ordering by id is ordering by time: records before this one.
    pub before_id: Option<&'a str>,
    pub limit: i64,
}

pub async fn list(db: &Db, q: &AuditQuery<'_>) -> StoreResult<Vec<AuditRecord>> {
    let rows = sqlx::query(
        "SELECT id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail
         FROM audit_events
         WHERE ($1 IS NULL OR user_id = $1)
           AND ($2 IS NULL OR client_id = $2)
           AND ($3 IS NULL OR event = $3)
           AND ($4 IS NULL OR at >= $4)
           AND ($5 IS NULL OR at <= $5)
           AND ($6 IS NULL OR id < $6)
           AND ($7 IS NULL OR outcome = $7)
         ORDER BY id DESC LIMIT $8",
    )
    .bind(q.user_id)
    .bind(q.client_id)
    .bind(q.event)
    .bind(q.since)
    .bind(q.until)
    .bind(q.before_id)
    .bind(q.outcome)
    .bind(q.limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditRecord {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                event: r.try_get("event")?,
                outcome: r.try_get("outcome")?,
                actor_id: r.try_get("actor_id")?,
                user_id: r.try_get("user_id")?,
                client_id: r.try_get("client_id")?,
                ip: r.try_get("ip")?,
                user_agent: r.try_get("user_agent")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect()
}
