//! What the user allowed which client through the consent page, and taking it back.

use super::AccountError;
use crate::model::RequestMeta;
use crate::services::Services;
use crate::store::{
    self,
    audit::{AuditEvent, AuditKind},
    authorize::Consent,
};

pub async fn list(svc: &Services, user_id: &str) -> Result<Vec<Consent>, AccountError> {
    Ok(store::authorize::list_consents(svc.db(), user_id).await?)
}

/// Withdraws the consent and ends the user's sessions with that client: what it was
/// allowed to do stops now, not when its tokens expire. "Not found" when there was none.
pub async fn withdraw(
    svc: &Services,
    user_id: &str,
    client_id: &str,
    meta: &RequestMeta,
) -> Result<(), AccountError> {
    if !store::authorize::withdraw_consent(svc.db(), user_id, client_id, svc.now()).await? {
        return Err(AccountError::NotFound);
    }
    let event = AuditEvent {
        actor_id: Some(user_id.to_owned()),
        user_id: Some(user_id.to_owned()),
        client_id: Some(client_id.to_owned()),
        ..AuditEvent::new(AuditKind::Consent, "withdrawn")
    };
    svc.audit(event, meta).await?;
    Ok(())
}
