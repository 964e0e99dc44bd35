//! Replicas on one PostgreSQL tell each other what their caches must drop (`cache`).
//!
//! A write that ends tokens or changes a client is announced on the `latchkey_cache`
//! channel (`pg_notify`) after it commits; every serving replica listens there and drops the
//! same copies, so a revocation or a client change made on one replica reaches the others in
//! milliseconds instead of `CACHE_TTL`. The TTL stays as the floor for what a notification
//! cannot promise: one sent while a listener was reconnecting is lost (so a listener that
//! (re)connects drops every copy), and a pooler in transaction mode passes no LISTEN at all.
//! SQLite has no second replica to tell; the CLI's changes there are seen within the TTL.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

use super::Caches;

const CHANNEL: &str = "latchkey_cache";

/// How long a listener that lost its connection waits before it tries again, doubling
/// after each failed try up to `RECONNECT_AT_MOST` (a database that stays away, or a pooler
/// that refuses LISTEN, is not retried and logged every second).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
const RECONNECT_AT_MOST: Duration = Duration::from_secs(60);

/// What copies a change makes stale, as announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    /// Any token's live-or-not state (a session ended, a user disabled …).
    Tokens,
    /// One access token's state, by `jti`: that token revoked, no other touched.
    AccessToken(String),
    /// One client's row.
    Client(String),
}

impl Change {
    fn payload(&self) -> String {
        match self {
            Change::Tokens => "tokens".into(),
            Change::AccessToken(jti) => format!("token:{jti}"),
            Change::Client(id) => format!("client:{id}"),
        }
    }

    /// `None`: a payload this version does not know (a newer replica's?): drop everything.
    fn parse(payload: &str) -> Option<Change> {
        match payload.split_once(':') {
            None if payload == "tokens" => Some(Change::Tokens),
            Some(("token", jti)) => Some(Change::AccessToken(jti.to_owned())),
            Some(("client", id)) => Some(Change::Client(id.to_owned())),
            _ => None,
        }
    }
}

impl Caches {
    pub(super) fn drop_stale(&self, change: &Change) {
        match change {
            Change::Tokens => self.token_states.forget_all(),
            Change::AccessToken(jti) => self.token_states.forget(jti.as_str()),
            Change::Client(id) => self.clients.forget(id.as_str()),
        }
    }

    fn drop_all(&self) {
        self.clients.forget_all();
        self.role_scopes.forget_all();
        self.token_states.forget_all();
    }
}

/// Tells the other replicas; the change itself is committed already. On failure they see it
/// within the TTL, so the write still succeeded: this only logs.
pub(super) async fn announce(pool: &sqlx::AnyPool, change: &Change) {
    let sent =
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(change.payload()).execute(pool).await;
    if let Err(err) = sent {
        tracing::warn!(error = %err, "could not tell other replicas of a change; they see it within the cache time");
    }
}

/// Listens for other replicas' changes until aborted. Returns once the first attempt to
/// listen is over, so a server that answers requests hears every change made after that
/// (when the attempt failed, it keeps trying in the background).
pub(super) async fn follow(url: Arc<str>, caches: Arc<Caches>) -> JoinHandle<()> {
    let first = listen(&url).await;
    tokio::spawn(async move {
        let mut listener = first;
        let mut wait = RECONNECT_AFTER;
        loop {
            match listener.take() {
                Some(mut active) => {
                    wait = RECONNECT_AFTER;
                    hear(&mut active, &caches).await;
                }
                None => wait = (wait * 2).min(RECONNECT_AT_MOST),
            }
            tokio::time::sleep(wait).await;
            listener = listen(&url).await;
            // What was announced while nobody listened is gone.
            caches.drop_all();
        }
    })
}

async fn listen(url: &str) -> Option<PgListener> {
    let attempt = async {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match attempt.await {
        Ok(listener) => Some(listener),
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for other replicas' changes; they are seen within the cache time");
            None
        }
    }
}

/// Applies notifications until the connection fails in a way the listener does not mend.
async fn hear(listener: &mut PgListener, caches: &Caches) {
    loop {
        match listener.try_recv().await {
            Ok(Some(note)) => match Change::parse(note.payload()) {
                Some(change) => caches.drop_stale(&change),
                None => caches.drop_all(),
            },
            // Reconnected on its own: what was announced meanwhile is gone.
            Ok(None) => caches.drop_all(),
            Err(err) => {
                tracing::warn!(error = %err, "lost the connection that hears other replicas' changes");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back() {
        for change in [
            Change::Tokens,
            Change::AccessToken("0193e4a0-7c1f-7000-8000-000000000000".into()),
            Change::Client("web-app".into()),
            Change::Client("a:b".into()),
        ] {
            assert_eq!(Change::parse(&change.payload()), Some(change));
        }
        assert_eq!(Change::parse("roles"), None);
        assert_eq!(Change::parse("tokens:x"), None);
    }
}
