use sqlx::Row;

use super::group_commit::Job;
use super::{Db, StoreResult};

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

/// All of `records` in one statement: atomic without a transaction of its own. The rows
/// travel as one JSON parameter, so the text never changes: prepared once per connection,
/// one round trip on PostgreSQL, and no statement to plan or compile per batch.
pub(super) async fn insert_all<'e>(
    db: impl sqlx::AnyExecutor<'e>,
    sqlite: bool,
    records: &[(&AuditEvent, i64)],
) -> StoreResult<()> {
    let rows: Vec<_> = records.iter().map(|&(event, at)| (event, at, None)).collect();
    sqlx::query(if sqlite { INSERT_ALL_SQLITE } else { INSERT_ALL_POSTGRES })
        .bind(records_json(&rows)?)
        .execute(db)
        .await?;
    Ok(())
}

const INSERT_ALL_POSTGRES: &str =
    "INSERT INTO audit_events (id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail)
     SELECT id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail
     FROM json_to_recordset($1::json) AS a (id text, at bigint, event text, outcome text, actor_id text,
         user_id text, client_id text, ip text, user_agent text, detail text)";

const INSERT_ALL_SQLITE: &str =
    "INSERT INTO audit_events (id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail)
     SELECT a.value ->> '$.id', a.value ->> '$.at', a.value ->> '$.event', a.value ->> '$.outcome',
            a.value ->> '$.actor_id', a.value ->> '$.user_id', a.value ->> '$.client_id', a.value ->> '$.ip',
            a.value ->> '$.user_agent', a.value ->> '$.detail'
     FROM json_each($1) a";

/// `records` as a JSON array of objects named like the table's columns, each with the
/// `successor` it depends on (`sessions::rotate_batch`).
pub(super) fn records_json(records: &[(&AuditEvent, i64, Option<&str>)]) -> StoreResult<String> {
    #[derive(serde::Serialize)]
    struct Record<'a> {
        id: String,
        at: i64,
        event: &'a str,
        outcome: &'a str,
        actor_id: Option<&'a str>,
        user_id: Option<&'a str>,
        client_id: Option<&'a str>,
        ip: Option<&'a str>,
        user_agent: Option<&'a str>,
        detail: Option<&'a str>,
        successor: Option<&'a str>,
    }
    let rows: Vec<Record> = records
        .iter()
        .map(|&(event, at, successor)| Record {
            id: uuid::Uuid::now_v7().to_string(),
            at,
            event: event.event.as_str(),
            outcome: event.outcome,
            actor_id: event.actor_id.as_deref(),
            user_id: event.user_id.as_deref(),
            client_id: event.client_id.as_deref(),
            ip: event.ip.as_deref(),
            user_agent: event.user_agent.as_deref(),
            detail: event.detail.as_deref(),
            successor,
        })
        .collect();
    super::json_param(&rows)
}

/// Writes `event` together with the other stand-alone records waiting meanwhile
/// (`group_commit`), and returns once it has committed: every acknowledged record is durable.
pub async fn record(db: &Db, event: AuditEvent, at: i64) -> StoreResult<()> {
    db.group_commit.submit(Job::Audit { event, at }).await.map(|_| ())
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

/// A value an audit filter compares with.
enum Value<'a> {
    Text(&'a str),
    Time(i64),
}

impl<'a> AuditQuery<'a> {
    /// The conditions given, each with its value.
    fn filters(&self) -> Vec<(&'static str, Value<'a>)> {
        fn text<'a>(condition: &'static str, value: Option<&'a str>) -> Option<(&'static str, Value<'a>)> {
            value.map(|v| (condition, Value::Text(v)))
        }
        let time = |condition, value: Option<i64>| value.map(|v| (condition, Value::Time(v)));
        [
            text("user_id =", self.user_id),
            text("client_id =", self.client_id),
            text("event =", self.event),
            text("outcome =", self.outcome),
            text("id <", self.before_id),
            time("at >=", self.since),
            time("at <=", self.until),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Only the conditions given are in the text, so each set of filters is planned for
    /// itself and a filter by user, client or event walks its index newest first (one
    /// statement with `($1 IS NULL OR user_id = $1)` for all of them could use none).
    fn sql(&self) -> String {
        let mut sql = String::from(
            "SELECT id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail FROM audit_events",
        );
        let filters = self.filters();
        for (n, (condition, _)) in filters.iter().enumerate() {
            sql += &format!("{} {condition} ${}", if n == 0 { " WHERE" } else { " AND" }, n + 1);
        }
        sql + &format!(" ORDER BY id DESC LIMIT ${}", filters.len() + 1)
    }

    /// `sql` (this query's, or a statement around it) with the values bound.
    fn bound(&self, sql: String) -> sqlx::query::Query<'a, sqlx::Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, value) in self.filters() {
            query = match value {
                Value::Text(text) => query.bind(text),
                Value::Time(time) => query.bind(time),
            };
        }
        query.bind(self.limit)
    }
}

pub async fn list(db: &Db, q: &AuditQuery<'_>) -> StoreResult<Vec<AuditRecord>> {
    let rows = q.bound(q.sql()).fetch_all(db.pool()).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for each filter: a walk down the index that holds it, newest first,
    /// with no sort of the matches (the old single statement scanned the whole table).
    #[tokio::test]
    async fn a_filtered_page_walks_its_index_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/audit.db?mode=rwc", dir.path().display())).await.unwrap();
        db.migrate().await.unwrap();
        let queries = [
            ("audit_events_user", AuditQuery { user_id: Some("u"), limit: 50, ..Default::default() }),
            (
                "audit_events_client",
                AuditQuery { client_id: Some("c"), before_id: Some("x"), limit: 50, ..Default::default() },
            ),
            (
                "audit_events_event",
                AuditQuery { event: Some("login"), since: Some(1), limit: 50, ..Default::default() },
            ),
        ];
        for (index, query) in queries {
            let plan: Vec<String> = query
                .bound(format!("EXPLAIN QUERY PLAN {}", query.sql()))
                .fetch_all(db.pool())
                .await
                .unwrap()
                .iter()
                .map(|row| row.get("detail"))
                .collect();
            let plan = plan.join("; ");
            assert!(plan.contains(&format!("USING INDEX {index}")), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
