//! Outgoing mail. Requests only queue a message; a background task delivers it through the
//! transport chosen by `--mail`, retrying failures, so a slow or dead mail server never
//! holds up a request. A message that still fails after the last retry is logged at error
//! level (without its token).

mod dir;
mod smtp;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use crate::config::{MailTransport, Settings};

/// What a mail is for; the `kind` of `dir:` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    VerifyEmail,
    PasswordReset,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify_email",
            MailKind::PasswordReset => "password_reset",
        }
    }
}

/// One message. `token` is the raw one-time token the body also carries: only the `dir:`
/// transport (for development and tests) writes it out separately.
#[derive(Clone, Serialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
    pub kind: MailKind,
    pub token: String,
}

/// Debug must not print the token or the body that carries it.
impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail").field("to", &self.to).field("kind", &self.kind).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot set up the smtp transport: {0}")]
    Setup(String),
    #[error("{0}")]
    Send(String),
}

/// A way of delivering one message.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, mail: &Mail) -> impl Future<Output = Result<(), MailError>> + Send;
}

/// Development transport: says that a mail went out, never what it says.
pub struct LogTransport;

impl Transport for LogTransport {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tracing::info!(to = %mail.to, kind = mail.kind.as_str(), "mail sent (log transport; not delivered)");
        Ok(())
    }
}

/// Messages waiting beyond this many are dropped with an error log rather than letting
/// memory grow without bound while the mail server is down.
const QUEUE_CAPACITY: usize = 1024;
/// Deliveries in flight at once.
const PARALLEL_SENDS: usize = 4;
/// Waits before the second, third … attempt.
const RETRY_DELAYS: [Duration; 4] =
    [Duration::from_secs(2), Duration::from_secs(10), Duration::from_secs(60), Duration::from_secs(300)];

/// The handle requests use: queueing never waits.
#[derive(Clone)]
pub struct Mailer {
    queue: mpsc::Sender<Mail>,
}

impl Mailer {
    /// Builds the transport named by the settings and starts its delivery task; must be
    /// called inside the tokio runtime.
    pub fn new(settings: &Settings) -> Result<Mailer, MailError> {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        match &settings.mail {
            MailTransport::Log => spawn_worker(LogTransport, rx),
            MailTransport::Dir(path) => spawn_worker(dir::DirTransport::new(path.clone()), rx),
            MailTransport::Smtp(url) => spawn_worker(smtp::SmtpTransport::new(url, &settings.issuer)?, rx),
        }
        Ok(Mailer { queue })
    }

    /// Queues `mail` for delivery and returns at once.
    pub fn send(&self, mail: Mail) {
        let (to, kind) = (mail.to.clone(), mail.kind.as_str());
        if let Err(err) = self.queue.try_send(mail) {
            let reason = match err {
                mpsc::error::TrySendError::Full(_) => "the mail queue is full",
                mpsc::error::TrySendError::Closed(_) => "the mail worker has stopped",
            };
            tracing::error!(%to, kind, reason, "mail dropped");
        }
    }
}

fn spawn_worker<T: Transport>(transport: T, mut rx: mpsc::Receiver<Mail>) {
    let transport = Arc::new(transport);
    let permits = Arc::new(Semaphore::new(PARALLEL_SENDS));
    tokio::spawn(async move {
        while let Some(mail) = rx.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let transport = transport.clone();
            tokio::spawn(async move {
                deliver(transport.as_ref(), &mail, &RETRY_DELAYS).await;
                drop(permit);
            });
        }
    });
}

async fn deliver<T: Transport>(transport: &T, mail: &Mail, retry_delays: &[Duration]) {
    let kind = mail.kind.as_str();
    let mut delays = retry_delays.iter();
    let mut attempt = 1;
    loop {
        match transport.send(mail).await {
            Ok(()) => return,
            Err(err) => match delays.next() {
                Some(delay) => {
                    tracing::warn!(to = %mail.to, kind, attempt, error = %err, retry_in_secs = delay.as_secs(), "mail delivery failed; will retry");
                    tokio::time::sleep(*delay).await;
                    attempt += 1;
                }
                None => {
                    tracing::error!(to = %mail.to, kind, attempts = attempt, error = %err, "mail delivery failed for good");
                    return;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Fails a set number of times, then succeeds.
    struct Flaky {
        failures_left: AtomicUsize,
        attempts: AtomicUsize,
    }

    impl Transport for Flaky {
        async fn send(&self, _mail: &Mail) -> Result<(), MailError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let left = self.failures_left.load(Ordering::SeqCst);
            if left == 0 {
                return Ok(());
            }
            self.failures_left.store(left - 1, Ordering::SeqCst);
            Err(MailError::Send("server said no".into()))
        }
    }

    fn mail() -> Mail {
        Mail {
            to: "a@example.com".into(),
            subject: "s".into(),
            body: "b secret".into(),
            kind: MailKind::VerifyEmail,
            token: "secret".into(),
        }
    }

    #[tokio::test]
    async fn failed_sends_are_retried_then_given_up() {
        let delays = [Duration::ZERO; 3];
        let flaky = Flaky { failures_left: AtomicUsize::new(2), attempts: AtomicUsize::new(0) };
        deliver(&flaky, &mail(), &delays).await;
        assert_eq!(flaky.attempts.load(Ordering::SeqCst), 3);

        let dead = Flaky { failures_left: AtomicUsize::new(usize::MAX), attempts: AtomicUsize::new(0) };
        deliver(&dead, &mail(), &delays).await;
        assert_eq!(dead.attempts.load(Ordering::SeqCst), delays.len() + 1);
    }

    #[test]
    fn debug_hides_the_token() {
        let shown = format!("{:?}", mail());
        assert!(!shown.contains("secret"), "{shown}");
    }
}
