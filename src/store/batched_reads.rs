//! Refresh reads in batches. A refresh first reads its session, with the user and roles, by
//! id, and under load many refreshes read at once. One task takes whatever queued while its
//! previous read ran and reads it all in one statement, on a connection it keeps while
//! batches follow each other: those refreshes share one round trip and one statement's
//! set-up in the database, and need no pool checkout or the ping sqlx sends with every
//! connection given back. On PostgreSQL a refresh's own read had been about a fifth of its cost
//! (benches/README.md). There is no timer: a lone read goes at once.

use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::held::{HOLD_WHILE_IDLE, HeldConnection};
use super::sessions::{self, RefreshRecord};
use super::{StoreError, StoreResult};

/// Reads waiting for their batch: a full queue makes requests wait rather than grow memory.
const QUEUE_CAPACITY: usize = 1024;

/// At most this many sessions per statement.
const MAX_BATCH: usize = 64;

struct Pending {
    session_id: String,
    reply: oneshot::Sender<StoreResult<Option<RefreshRecord>>>,
}

/// The handle to the task that reads refresh states in batches; the task ends with the
/// last handle.
#[derive(Clone, Debug)]
pub(super) struct RefreshReads {
    queue: mpsc::Sender<Pending>,
}

impl RefreshReads {
    pub(super) fn start(pool: AnyPool, sqlite: bool) -> RefreshReads {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(read_batches(pool, sqlite, rx));
        RefreshReads { queue }
    }

    /// `sessions::find_refresh`, read in the next batch.
    pub(super) async fn read(&self, session_id: &str) -> StoreResult<Option<RefreshRecord>> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        let pending = Pending { session_id: session_id.to_owned(), reply };
        self.queue.send(pending).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn read_batches(pool: AnyPool, sqlite: bool, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut held = HeldConnection::new(pool, sqlite);
    loop {
        let received = tokio::select! {
            received = rx.recv_many(&mut batch, MAX_BATCH) => received,
            _ = tokio::time::sleep(HOLD_WHILE_IDLE), if held.is_held() => {
                held.give_back().await;
                continue;
            }
        };
        if received == 0 {
            held.give_back().await;
            return;
        }
        let ids: Vec<&str> = batch.iter().map(|p| p.session_id.as_str()).collect();
        let found = held.run(async |conn| sessions::find_refreshes(conn, sqlite, &ids).await).await;
        match found {
            Ok(found) => answer_each(&mut batch, |id| Ok(found.get(id).cloned())),
            Err(err) => {
                let err = Arc::new(err);
                answer_each(&mut batch, |_| Err(StoreError::Shared(err.clone())));
            }
        }
    }
}

/// Answers every read of the batch; one whose request has gone away needs no answer.
fn answer_each(batch: &mut Vec<Pending>, answer: impl Fn(&str) -> StoreResult<Option<RefreshRecord>>) {
    for pending in batch.drain(..) {
        let _ = pending.reply.send(answer(&pending.session_id));
    }
}
