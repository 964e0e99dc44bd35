//! The handle every domain function takes: settings, database, keys, password hasher, mailer.

use std::sync::Arc;

use crate::config::Settings;
use crate::crypto::password::PasswordHasher;
use crate::crypto::refresh::RefreshTokens;
use crate::crypto::sealed::SecretBox;
use crate::keys::KeyRing;
use crate::mail::{MailError, Mailer};
use crate::model::policy::{DefaultPolicy, SecondFactorPolicy};
use crate::model::{Clock, RequestMeta};
use crate::store::audit::AuditEvent;
use crate::store::{self, Db, StoreError};

/// What the server's secret key is used for.
pub struct Secrets {
    pub sealing: SecretBox,
    pub refresh_tokens: RefreshTokens,
}

#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
    second_factor: Arc<dyn SecondFactorPolicy>,
}

struct Inner {
    settings: Settings,
    db: Db,
    keys: KeyRing,
    hasher: PasswordHasher,
    secrets: Secrets,
    mailer: Mailer,
    clock: Clock,
}

impl Services {
    /// Starts the mail delivery task, so it must run inside the tokio runtime.
    pub fn new(
        settings: Settings,
        db: Db,
        keys: KeyRing,
        secrets: Secrets,
        clock: Clock,
    ) -> Result<Services, MailError> {
        let mailer = Mailer::new(&settings)?;
        let hasher = PasswordHasher::new(settings.hash_queue);
        Ok(Services {
            inner: Arc::new(Inner { settings, db, keys, hasher, secrets, mailer, clock }),
            second_factor: Arc::new(DefaultPolicy),
        })
    }

    /// Replaces the built-in "enrolled, or the client requires it" rule for when a login
    /// needs a second factor.
    pub fn with_second_factor_policy(mut self, policy: impl SecondFactorPolicy) -> Services {
        self.second_factor = Arc::new(policy);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn issuer(&self) -> &str {
        self.inner.settings.issuer_str()
    }

    /// Unix seconds by the injected clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
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

    /// Seals TOTP secrets at rest.
    pub fn secret_box(&self) -> &SecretBox {
        &self.inner.secrets.sealing
    }

    /// Makes and reads refresh tokens.
    pub fn refresh_tokens(&self) -> &RefreshTokens {
        &self.inner.secrets.refresh_tokens
    }

    pub fn second_factor_policy(&self) -> &dyn SecondFactorPolicy {
        self.second_factor.as_ref()
    }

    pub fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }

    /// Writes an audit record (committed with those of concurrent requests). A request whose
    /// record cannot be written fails too: an action is either audited or answered as failed.
    pub async fn audit(&self, event: AuditEvent, meta: &RequestMeta) -> Result<(), StoreError> {
        store::audit::record(self.db(), with_meta(event, meta), self.now()).await
    }
}

/// The record with the request's client address and user agent.
pub fn with_meta(event: AuditEvent, meta: &RequestMeta) -> AuditEvent {
    AuditEvent { ip: meta.ip.clone(), user_agent: meta.user_agent.clone(), ..event }
}
