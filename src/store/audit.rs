use super::{Db, StoreResult};

/// One audit record. Never carries a secret: ids, names and outcomes only.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub event: &'static str,
    pub outcome: &'static str,
    pub actor_id: Option<String>,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

pub async fn insert(db: &Db, event: &AuditEvent, at: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, event, outcome, actor_id, user_id, client_id, ip, user_agent, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(at)
    .bind(event.event)
    .bind(event.outcome)
    .bind(event.actor_id.as_deref())
    .bind(event.user_id.as_deref())
    .bind(event.client_id.as_deref())
    .bind(event.ip.as_deref())
    .bind(event.user_agent.as_deref())
    .bind(event.detail.as_deref())
    .execute(db.pool())
    .await?;
    Ok(())
}
