//! Outgoing mail. Requests only queue a message; a background task delivers it through the
//! transport chosen by `--mail`, retrying failures, so a slow or dead mail server never
//! holds up a request. A message that still fails after the last retry is logged at error
//! level (without its token).

mod dir;
mod smtp;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Queued and not yet delivered or given up on.
    pending: Arc<AtomicUsize>,
}

impl Mailer {
    /// Builds the transport named by the settings and starts its delivery task; must be
    /// called inside the tokio runtime.
    pub fn new(settings: &Settings) -> Result<Mailer, MailError> {
        Ok(match &settings.mail {
            MailTransport::Log => Mailer::start(LogTransport),
            MailTransport::Dir(path) => Mailer::start(dir::DirTransport::new(path.clone())),
            MailTransport::Smtp(url) => Mailer::start(smtp::SmtpTransport::new(url, &settings.issuer)?),
        })
    }

    fn start<T: Transport>(transport: T) -> Mailer {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let pending = Arc::new(AtomicUsize::new(0));
        spawn_worker(transport, rx, pending.clone());
        Mailer { queue, pending }
    }

    /// Queues `mail` for delivery and returns at once.
    pub fn send(&self, mail: Mail) {
        let (to, kind) = (mail.to.clone(), mail.kind.as_str());
        self.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(err) = self.queue.try_send(mail) {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            let reason = match err {
                mpsc::error::TrySendError::Full(_) => "the mail queue is full",
                mpsc::error::TrySendError::Closed(_) => "the mail worker has stopped",
            };
            tracing::error!(%to, kind, reason, "mail dropped");
        }
    }

    /// At shutdown: waits up to `grace` for queued mail to go out, and logs at error level
    /// how many messages are lost if some have not.
    pub async fn drain(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.pending.load(Ordering::SeqCst);
        if left > 0 {
            tracing::error!(undelivered = left, "shutting down with mail still undelivered");
        }
    }
}

fn spawn_worker<T: Transport>(transport: T, mut rx: mpsc::Receiver<Mail>, pending: Arc<AtomicUsize>) {
    let transport = Arc::new(transport);
    let permits = Arc::new(Semaphore::new(PARALLEL_SENDS));
    tokio::spawn(async move {
        while let Some(mail) = rx.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let transport = transport.clone();
            let pending = pending.clone();
            tokio::spawn(async move {
                deliver(transport.as_ref(), &mail, &RETRY_DELAYS).await;
                pending.fetch_sub(1, Ordering::SeqCst);
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

    /// Counts deliveries, slowly.
    struct Slow(Arc<AtomicUsize>);

    impl Transport for Slow {
        async fn send(&self, _mail: &Mail) -> Result<(), MailError> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn sending_does_not_wait_and_drain_does() {
        let delivered = Arc::new(AtomicUsize::new(0));
        let mailer = Mailer::start(Slow(delivered.clone()));
        let started = std::time::Instant::now();
        mailer.send(mail());
        mailer.send(mail());
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(delivered.load(Ordering::SeqCst), 0);
        mailer.drain(Duration::from_secs(5)).await;
        assert_eq!(delivered.load(Ordering::SeqCst), 2);
        assert_eq!(mailer.pending.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn debug_hides_the_token() {
        let shown = format!("{:?}", mail());
        assert!(!shown.contains("secret"), "{shown}");
    }
}
