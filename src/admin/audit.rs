//! The audit log, newest first, filtered by user, client, event type and time.

use super::{AdminError, Page, decode_cursor, into_page, page_limit};
use crate::services::Services;
use crate::store::{self, audit::AuditQuery, audit::AuditRecord};

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub event: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, inclusive.
    pub until: Option<i64>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub async fn list(svc: &Services, filter: &AuditFilter) -> Result<Page<AuditRecord>, AdminError> {
    let limit = page_limit(filter.limit)?;
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since > until
    {
        return Err(AdminError::invalid("since must not be after until"));
    }
    let before = decode_cursor("audit", filter.cursor.as_deref())?;
    let query = AuditQuery {
        user_id: filter.user_id.as_deref(),
        client_id: filter.client_id.as_deref(),
        event: filter.event.as_deref(),
        since: filter.since,
        until: filter.until,
        before_id: before.as_deref(),
        limit: limit + 1,
    };
    let rows = store::audit::list(svc.db(), &query).await?;
    Ok(into_page(rows, limit, "audit", |r| &r.id))
}
