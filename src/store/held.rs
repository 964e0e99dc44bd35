//! The connection a batching task (`group_commit`, `batched_reads`) keeps while its batches
//! follow each other, rather than a pool checkout and return per batch.
//! On SQLite a connection's page cache survives only its own commits, so a different pooled
//! connection per batch read the pages it was about to write again.

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};

use super::StoreResult;

/// A task gives its connection back to the pool after this long without a batch.
pub(super) const HOLD_WHILE_IDLE: Duration = Duration::from_millis(50);

pub(super) struct HeldConnection {
    pool: AnyPool,
    sqlite: bool,
    conn: Option<PoolConnection<Any>>,
}

impl HeldConnection {
    pub(super) fn new(pool: AnyPool, sqlite: bool) -> HeldConnection {
        HeldConnection { pool, sqlite, conn: None }
    }

    pub(super) fn is_held(&self) -> bool {
        self.conn.is_some()
    }

    /// Runs `work` on the held connection, or a new one, which is held after a success.
    /// One that failed may be broken, or (SQLite's batches run their own BEGIN … COMMIT)
    /// hold a transaction stopped half-way: it is closed, which rolls that back.
    pub(super) async fn run<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => take(&self.pool, self.sqlite).await?,
        };
        let result = work(&mut *conn).await;
        if result.is_ok() {
            self.conn = Some(conn);
        } else {
            let _ = conn.close().await;
        }
        result
    }

    /// Back to the pool as other requests expect it, or closed if it cannot be.
    pub(super) async fn give_back(&mut self) {
        // Dropped, a connection goes back to the pool.
        if let Some(mut conn) = self.conn.take()
            && !self.sqlite
            && conn.execute("RESET enable_seqscan").await.is_err()
        {
            let _ = conn.close().await;
        }
    }

    /// Closed rather than given back, for whoever must reach every connection of the pool:
    /// on its way back it would miss them.
    pub(super) async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// On PostgreSQL the held connection's statements are prepared once and soon run on a
/// generic plan, fixed with the table sizes of that moment: on a young database the
/// planner would pick a scan of `sessions` while it holds a few rows, and keep it as the
/// table grows. Every batch finds its rows by primary key, so this connection plans
/// without sequential scans.
async fn take(pool: &AnyPool, sqlite: bool) -> StoreResult<PoolConnection<Any>> {
    let mut conn = pool.acquire().await?;
    if !sqlite {
        conn.execute("SET enable_seqscan = off").await?;
    }
    Ok(conn)
}
