//! The handle every domain function takes: settings, database, keys, password hasher, mailer.

use std::sync::Arc;

use crate::account::password::PasswordHasher;
use crate::config::Settings;
use crate::keys::KeyRing;
use crate::mail::{MailError, Mailer};
use crate::store::audit::AuditEvent;
use crate::store::{self, Db};

#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    db: Db,
    keys: KeyRing,
    hasher: PasswordHasher,
    mailer: Mailer,
}

impl Services {
    /// Starts the mail delivery task, so it must run inside the tokio runtime.
    pub fn new(settings: Settings, db: Db, keys: KeyRing) -> Result<Services, MailError> {
        let mailer = Mailer::new(&settings)?;
        Ok(Services { inner: Arc::new(Inner { settings, db, keys, hasher: PasswordHasher::new(), mailer }) })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn issuer(&self) -> &str {
        self.inner.settings.issuer_str()
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    pub fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }

    /// Writes an audit record. A failure is logged loudly but does not undo the action
    /// that was already committed.
    pub async fn audit(&self, event: AuditEvent, meta: &RequestMeta) {
        let event = AuditEvent { ip: meta.ip.clone(), user_agent: meta.user_agent.clone(), ..event };
        if let Err(err) = store::audit::insert(self.db(), &event, store::now()).await {
            tracing::error!(error = %err, event = event.event, "could not write audit event");
        }
    }
}

/// Who is asking, as far as the domain needs to know: for audit and session records.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}
