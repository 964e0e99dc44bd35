//! Account lockout: the fifth wrong password in a row locks the account for a while,
//! each lock twice as long as the one before, up to a cap. While locked, attempts are
//! refused without counting or extending the lock, and the counter starts again when the
//! lock ends, so nobody can hold an account shut for longer than one lock at a time by
//! guessing on. A temporary lock keeps lockout from becoming a lever to shut a victim out
//! for good; the login answer is the same as for a wrong password, so it also tells an
//! attacker nothing.

use crate::model::RequestMeta;
use crate::model::User;
use crate::services::Services;
use crate::store::users::{Counted, LockPolicy};
use crate::store::{
    self, StoreError,
    audit::{AuditEvent, AuditKind},
};

/// Wrong passwords in a row before the first lock.
pub const THRESHOLD: i64 = 5;
const FIRST_LOCK_SECS: i64 = 60;
const MAX_LOCK_SECS: i64 = 15 * 60;

const POLICY: LockPolicy =
    LockPolicy { threshold: THRESHOLD, first_secs: FIRST_LOCK_SECS, max_secs: MAX_LOCK_SECS };

/// Counts a wrong password for `user` in one atomic step
/// (`store::users::count_password_attempt`). `false`: the account is locked, and the
/// attempt neither counted nor moved the lock. The moment a lock starts is audited after
/// the answer (a write only that attempt makes would otherwise show in its timing).
pub async fn count_failure(svc: &Services, user: &User, meta: &RequestMeta) -> Result<bool, StoreError> {
    let now = svc.now();
    let Some(counted) = store::users::count_password_attempt(svc.db(), &user.id, now, POLICY).await? else {
        return Ok(false);
    };
    if let Counted { failures, locked_until: Some(until) } = counted {
        crate::telemetry::metrics::lockout();
        let event = AuditEvent {
            user_id: Some(user.id.clone()),
            detail: Some(format!("failures={failures} seconds={}", until - now)),
            ..AuditEvent::new(AuditKind::Lockout, "locked")
        };
        let (svc, meta) = (svc.clone(), meta.clone());
        tokio::spawn(async move {
            // The answer (a failure) has gone; all that is left is to say so loudly.
            if let Err(err) = svc.audit(event, &meta).await {
                tracing::error!(error = %err, "could not write the audit record of a lockout");
            }
        });
    }
    Ok(true)
}
