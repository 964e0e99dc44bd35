//! Account lockout: after repeated wrong passwords an account is locked for a while, the
//! lock doubling with each further failure up to a cap. A temporary lock (not a permanent
//! one) keeps lockout from becoming a lever to shut a victim out for good; the login
//! answer is the same as for a wrong password, so it also tells an attacker nothing.

use crate::model::RequestMeta;
use crate::model::User;
use crate::services::Services;
use crate::store::{
    self, StoreError,
    audit::{AuditEvent, AuditKind},
};

/// Failures before the first lock.
pub const THRESHOLD: i64 = 5;
const FIRST_LOCK_SECS: i64 = 60;
const MAX_LOCK_SECS: i64 = 15 * 60;

/// How long the `failures`-th consecutive failure locks the account, if at all.
pub fn lock_secs(failures: i64) -> Option<i64> {
    (failures >= THRESHOLD).then(|| {
        let doublings = (failures - THRESHOLD).min(10) as u32;
        (FIRST_LOCK_SECS << doublings).min(MAX_LOCK_SECS)
    })
}

pub fn is_locked(user: &User, now: i64) -> bool {
    user.locked_until.is_some_and(|until| until > now)
}

/// Records a wrong password for `user`; audits the moment a lock starts.
pub async fn record_failure(svc: &Services, user: &User, meta: &RequestMeta) -> Result<(), StoreError> {
    let now = svc.now();
    let failures =
        store::users::record_failed_login(svc.db(), &user.id, |n| lock_secs(n).map(|s| now + s)).await?;
    if let Some(secs) = lock_secs(failures) {
        svc.audit(
            AuditEvent {
                user_id: Some(user.id.clone()),
                detail: Some(format!("failures={failures} seconds={secs}")),
                ..AuditEvent::new(AuditKind::Lockout, "locked")
            },
            meta,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_and_cap() {
        assert_eq!(lock_secs(4), None);
        assert_eq!(lock_secs(5), Some(60));
        assert_eq!(lock_secs(6), Some(120));
        assert_eq!(lock_secs(8), Some(480));
        assert_eq!(lock_secs(9), Some(900));
        assert_eq!(lock_secs(500), Some(900));
    }
}
