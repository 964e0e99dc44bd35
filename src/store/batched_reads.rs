//! Refresh reads in batches. A refresh first reads its session, with the user and roles, by
//! id, and under load many refreshes read at once. One task takes whatever queued while its
//! previous read ran and reads it all in one statement, on a connection it keeps while
//! batches follow each other: those refreshes share one round trip and one statement's
//! set-up in the database, and need no pool checkout or the ping sqlx sends with every
//! connection given back. On PostgreSQL a refresh's own read had been about a fifth of its cost
//! (benches/README.md). There is no timer: a lone read goes at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::group_commit::{give_back, take_held};
use super::sessions::{self, RefreshRecord};
use super::{StoreError, StoreResult};

/// Reads waiting for their batch: a full queue makes requests wait rather than grow memory.
const QUEUE_CAPACITY: usize = 1024;

/// The task gives its connection back to the pool after this long without a read.
const HOLD_WHILE_IDLE: Duration = Duration::from_millis(50);

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
    let mut held: Option<PoolConnection<Any>> = None;
    loop {
        let received = tokio::select! {
            received = rx.recv_many(&mut batch, MAX_BATCH) => received,
            _ = tokio::time::sleep(HOLD_WHILE_IDLE), if held.is_some() => {
                if let Some(conn) = held.take() {
                    give_back(conn, sqlite).await;
                }
                continue;
            }
        };
        if received == 0 {
            if let Some(conn) = held.take() {
                give_back(conn, sqlite).await;
            }
            return;
        }
        match read_on(&mut held, &pool, sqlite, &batch).await {
            Ok(found) => answer_each(&mut batch, |id| Ok(found.get(id).cloned())),
            Err(err) => {
                let err = Arc::new(err);
                answer_each(&mut batch, |_| Err(StoreError::Shared(err.clone())));
            }
        }
    }
}

/// Reads `batch` on the held connection, or a new one, which is held after a success; one
/// that failed may be broken, and is closed.
async fn read_on(
    held: &mut Option<PoolConnection<Any>>,
    pool: &AnyPool,
    sqlite: bool,
    batch: &[Pending],
) -> StoreResult<HashMap<String, RefreshRecord>> {
    let mut conn = match held.take() {
        Some(conn) => conn,
        None => take_held(pool, sqlite).await?,
    };
    let ids: Vec<&str> = batch.iter().map(|p| p.session_id.as_str()).collect();
    let found = sessions::find_refreshes(&mut conn, sqlite, &ids).await;
    if found.is_ok() {
        *held = Some(conn);
    } else {
        let _ = conn.close().await;
    }
    found
}

/// Answers every read of the batch; one whose request has gone away needs no answer.
fn answer_each(batch: &mut Vec<Pending>, answer: impl Fn(&str) -> StoreResult<Option<RefreshRecord>>) {
    for pending in batch.drain(..) {
        let _ = pending.reply.send(answer(&pending.session_id));
    }
}
