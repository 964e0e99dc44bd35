//! The audit log, newest first, filtered by user, client, event type, outcome and time.

use super::{AdminError, Page, decode_cursor, into_page, page_limit};
use crate::services::Services;
use crate::store::{self, audit::AuditQuery, audit::AuditRecord};

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub event: Option<String>,
    pub outcome: Option<Outcome>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, inclusive.
    pub until: Option<i64>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// How an audited action ended. Some events record their own outcome instead (`lockout`:
/// `locked`; `refresh_token_reuse`: `session_revoked`); find those by `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
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
        outcome: filter.outcome.map(Outcome::as_str),
        since: filter.since,
        until: filter.until,
        before_id: before.as_deref(),
        limit: limit + 1,
    };
    let rows = store::audit::list(svc.db(), &query).await?;
    Ok(into_page(rows, limit, "audit", |r| &r.id))
}
