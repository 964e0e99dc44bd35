//! Wiring: open the database, apply migrations, load keys, and run the HTTP server until
//! SIGTERM or SIGINT.

use std::time::Duration;

use anyhow::Context;
use poem::Server;
use poem::listener::{Acceptor, TcpAcceptor};

use crate::config::Settings;
use crate::crypto::refresh::RefreshTokens;
use crate::crypto::sealed::{self, SecretBox};
use crate::http::SlowClientGuard;
use crate::keys::KeyRing;
use crate::model::Clock;
use crate::services::{Secrets, Services};
use crate::store::{self, Db};

/// Opens everything the server and the CLI commands need.
pub async fn open(settings: Settings) -> anyhow::Result<Services> {
    // The database first: nothing (no secret key file) is written while it cannot be opened.
    let db = Db::connect(&settings.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", store::describe(&settings.database_url)))?;
    db.migrate().await.context("cannot apply migrations")?;
    // A server that cannot write would say ready and then fail every login: refuse instead.
    db.check_writable().await.context("the database does not take writes (read-only or full?)")?;
    if settings.keys_dir.exists() && !settings.keys_dir.is_dir() {
        anyhow::bail!("--keys-dir {} is not a directory", settings.keys_dir.display());
    }
    let secret_key = sealed::load_secret_key(&settings).context("cannot load the secret key")?;
    let clock = Clock::default();
    let keys = KeyRing::open(db.clone(), &settings.keys_dir, clock.clone(), settings.signing_alg)
        .await
        .context("cannot load signing keys")?;
    let secrets =
        Secrets { sealing: SecretBox::new(&secret_key), refresh_tokens: RefreshTokens::new(&secret_key) };
    Services::new(settings, db, keys, secrets, clock).context("cannot set up mail delivery (--mail)")
}

/// Runs the server on an already-bound listener (tests bind port 0 and pass it here).
pub async fn run(svc: Services, listener: std::net::TcpListener) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let acceptor = TcpAcceptor::from_std(listener)?;
    serve_with(svc, acceptor).await
}

/// `latchkey serve`.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bind = settings.bind;
    let svc = open(settings).await?;
    let acceptor = listen(bind).with_context(|| format!("cannot listen on {bind}"))?;
    serve_with(svc, acceptor).await
}

/// Connections the kernel may hold for the server to accept (it caps this at
/// `net.core.somaxconn`). Past the backlog, a new connection's SYN is dropped and its
/// client waits for the retransmit, 1 s and then 3 s later, before the server even sees it:
/// a burst of 2,000 logins against tokio's default of 1,024 answered its 503s in p50 0.46 s.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpAcceptor> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    TcpAcceptor::from_tokio(socket.listen(LISTEN_BACKLOG)?)
}

async fn serve_with(svc: Services, acceptor: impl Acceptor + 'static) -> anyhow::Result<()> {
    let acceptor = SlowClientGuard::new(acceptor, svc.settings().slow_client_timeout);
    let addr = acceptor.local_addr().first().map(|a| a.to_string()).unwrap_or_default();
    // Before the first answer, so every copy this server hands out hears of later changes.
    svc.db().follow_other_replicas().await;
    tracing::info!(%addr, issuer = svc.issuer(), "latchkey listening");
    let housekeeping = tokio::spawn(housekeeping(svc.clone()));
    let metrics_upkeep = tokio::spawn(metrics_upkeep());
    let app = crate::http::routes(&svc);
    let result = Server::new_with_acceptor(acceptor)
        .idle_timeout(Duration::from_secs(60))
        .run_with_graceful_shutdown(app, shutdown_signal(), Some(Duration::from_secs(10)))
        .await;
    housekeeping.abort();
    metrics_upkeep.abort();
    svc.mailer().drain(Duration::from_secs(10)).await;
    svc.db().close().await;
    tracing::info!("latchkey stopped");
    result.context("server failed")
}

/// How often the latency histograms' samples are folded into their buckets. Until then the
/// recorder keeps every sample (unless `/metrics` is scraped): folded every 30 s, a flood of
/// 44,000 requests/s raised the peak RSS by 8 MB more than folded every 5 s.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

async fn metrics_upkeep() {
    let mut tick = tokio::time::interval(METRICS_UPKEEP);
    loop {
        tick.tick().await;
        crate::telemetry::metrics::upkeep();
    }
}

/// Forgets expired revocations and rate-limit state, and gives the password hasher's memory
/// back after a quiet round. (Signing keys re-read themselves when their copy is due, on use.)
async fn housekeeping(svc: Services) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        svc.hasher().release_idle_memory();
        rounds += 1;
        if rounds % 120 == 1 {
            if let Err(err) = store::limits::prune(svc.db(), svc.clock().now_ms()).await {
                tracing::warn!(error = %err, "pruning rate limits failed");
            }
            let now = svc.now();
            let pruned = match store::sessions::prune(svc.db(), now).await {
                Ok(n) => store::account_tokens::prune(svc.db(), now).await.map(|m| n + m),
                Err(err) => Err(err),
            };
            match pruned {
                Ok(n) if n > 0 => tracing::info!(rows = n, "pruned expired token records"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "pruning failed"),
            }
            if let Err(err) = store::mfa::prune_challenges(svc.db(), svc.now()).await {
                tracing::warn!(error = %err, "pruning MFA challenges failed");
            }
            if let Err(err) = store::authorize::prune(svc.db(), svc.now()).await {
                tracing::warn!(error = %err, "pruning browser sign-in records failed");
            }
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed here, before the
/// server runs, not at the future's first poll: a SIGTERM that came in between would take
/// the default action and kill the process without a graceful shutdown.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let [term, int] = {
        use tokio::signal::unix::{SignalKind, signal};
        [SignalKind::terminate(), SignalKind::interrupt()].map(|kind| signal(kind).ok())
    };
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = received(term) => {},
            _ = received(int) => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}

#[cfg(unix)]
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
