//! Persistence. One SQL code path for SQLite and PostgreSQL through sqlx's `Any` driver;
//! where the two databases truly differ (connection pragmas) the difference stays here.

pub mod account_tokens;
pub mod audit;
pub mod authorize;
mod batched_reads;
pub mod cache;
mod changes;
pub mod clients;
mod group_commit;
mod held;
pub mod keys;
pub mod limits;
pub mod mfa;
pub mod sessions;
pub mod users;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};

use crate::model::Client;
use cache::Cache;
pub use group_commit::GroupCommitTotals;

/// Anything that went wrong talking to the database. Callers map `Unavailable` to 503 and
/// the rest to a generic 500; the detail is logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot serve now but may soon: unreachable, pool exhausted, disk full,
    /// read-only, locked. Worth a retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// SQLite's file is at its `max_page_count`.
    #[error("the database file is full: {0} pages left under max_page_count")]
    Full(i64),
    #[error("database error: {0}")]
    Sqlx(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// A read or write done once for several requests failed; each of them gets this.
    #[error("a read or write shared by several requests failed")]
    Shared(#[source] Arc<StoreError>),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) { StoreError::Unavailable(err) } else { StoreError::Sqlx(err) }
    }
}

/// Whether an error says "the database cannot take this now" rather than "this request is wrong".
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.code() {
            // PostgreSQL SQLSTATE: connection exception (08), insufficient resources (53),
            // operator intervention such as shutdown (57P), read-only transaction (25006),
            // and a transaction chosen to end a deadlock or a serialization conflict (40P01,
            // 40001): nothing wrong with the request, which may simply be sent again.
            Some(code) if code.len() == 5 => {
                code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || matches!(code.as_ref(), "25006" | "40001" | "40P01")
            }
            // SQLite result codes, extended codes carry the primary one in the low byte:
            // BUSY 5, LOCKED 6, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
            Some(code) => code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14)),
            None => false,
        },
        _ => false,
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Full(_) => true,
            StoreError::Shared(err) => err.is_unavailable(),
            _ => false,
        }
    }

    /// A UNIQUE constraint said no (duplicate username, email, client id …).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Sqlx(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// SQLite `max_page_count` for every connection; 0: SQLite's own. Only fault tests set it.
    page_limit: Arc<AtomicU64>,
    sqlite: bool,
    caches: Arc<Caches>,
    group_commit: group_commit::GroupCommit,
    /// Where rate-limit changes commit (`limits`): on SQLite the group commit itself, the
    /// one writer; on PostgreSQL one of their own, whose batches hold nothing else and so
    /// need not wait for the disk.
    limit_commit: group_commit::GroupCommit,
    refresh_reads: batched_reads::RefreshReads,
    /// PostgreSQL: where to listen for other replicas' changes (`changes`).
    url: Option<Arc<str>>,
    /// The listener, once `follow_other_replicas` started it.
    listener: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// The in-memory copies of hot rows (`cache`), shared by every clone of the handle.
#[derive(Debug)]
struct Caches {
    clients: Cache<String, Client>,
    role_scopes: Cache<(), Arc<Vec<(String, String)>>>,
    /// By `jti`: whether a signed access token's session, user and client are still good.
    token_states: Cache<String, sessions::AccessTokenState>,
}

impl Caches {
    fn new() -> Caches {
        // Client ids and role tables are few; tokens are many, and each entry is small.
        Caches { clients: Cache::new(10_000), role_scopes: Cache::new(1), token_states: Cache::new(100_000) }
    }
}

/// How long a request waits for a connection before it is told to come back later. Longer
/// only makes clients and probes time out instead of hearing 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// A pooled connection idle at least this long is pinged before use.
const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

/// Readiness must answer within a probe's usual 1 s timeout.
const READY_TIMEOUT: Duration = Duration::from_millis(900);

/// Fewer free pages than this under SQLite's page limit and writes soon fail: not ready.
const MIN_SPARE_PAGES: i64 = 16;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Db {
    /// Call after any write that can make access tokens inactive (revocations, sessions
    /// ended, users disabled or deleted, client secrets rotated, clients deleted), with the
    /// rows it changed.
    async fn tokens_changed(&self, rows: u64) {
        self.changed(changes::Change::Tokens, rows).await;
    }

    /// Call after a write that revoked one access token, with the rows it changed: the
    /// copies of other tokens stay.
    async fn access_token_changed(&self, jti: &str, rows: u64) {
        self.changed(changes::Change::AccessToken(jti.to_owned()), rows).await;
    }

    /// Call after any write to a client's row, with the rows it changed.
    async fn client_changed(&self, id: &str, rows: u64) {
        self.changed(changes::Change::Client(id.to_owned()), rows).await;
    }

    /// A write that changed no row leaves every copy right: dropping them anyway would let
    /// any client empty every replica's caches by revoking a revoked token again.
    async fn changed(&self, change: changes::Change, rows: u64) {
        if rows == 0 {
            return;
        }
        self.caches.drop_stale(&change);
        if !self.sqlite {
            changes::announce(&self.pool, &change).await;
        }
    }

    /// PostgreSQL: from now on, other replicas' changes drop this one's cached copies at
    /// once. A server calls it before it answers requests; one-shot commands need not.
    pub async fn follow_other_replicas(&self) {
        if let Some(url) = &self.url {
            let task = changes::follow(url.clone(), self.caches.clone()).await;
            if let Some(old) = self.listener.lock().unwrap_or_else(|e| e.into_inner()).replace(task) {
                old.abort();
            }
        }
    }

    /// Tests: how long cached copies are answered (`cache::CACHE_TTL` otherwise). Stretched,
    /// a change made on another replica can only arrive by notification.
    #[doc(hidden)]
    pub fn keep_copies_for(&self, ttl: Duration) {
        self.caches.clients.set_ttl(ttl);
        self.caches.role_scopes.set_ttl(ttl);
        self.caches.token_states.set_ttl(ttl);
    }

    pub async fn connect(url: &str) -> StoreResult<Db> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.parse()?;
        let sqlite = url.starts_with("sqlite:");
        let page_limit = Arc::new(AtomicU64::new(0));
        let pool = pool_options(sqlite, page_limit.clone())
            .max_connections(if sqlite { 8 } else { 16 })
            .connect_with(options)
            .await?;
        let group_commit = group_commit::GroupCommit::start(pool.clone(), sqlite);
        let limit_commit = if sqlite {
            group_commit.clone()
        } else {
            group_commit::GroupCommit::start(pool.clone(), sqlite)
        };
        let refresh_reads = batched_reads::RefreshReads::start(pool.clone(), sqlite);
        Ok(Db {
            pool,
            page_limit,
            sqlite,
            caches: Arc::new(Caches::new()),
            group_commit,
            limit_commit,
            refresh_reads,
            url: (!sqlite).then(|| url.into()),
            listener: Arc::default(),
        })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Both group commits' totals, where there are two (PostgreSQL).
    pub fn group_commit_totals(&self) -> GroupCommitTotals {
        let totals = self.group_commit.totals();
        if self.sqlite {
            return totals;
        }
        let limits = self.limit_commit.totals();
        GroupCommitTotals {
            commits: totals.commits + limits.commits,
            writes: totals.writes + limits.writes,
            busy: totals.busy + limits.busy,
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether the database takes a write now: a row that needs a fresh page is written and
    /// deleted in one committed transaction, so a full disk or a read-only file says no. On
    /// SQLite, a file at its `max_page_count` with almost no free pages left says no too:
    /// the probe may still fit where real writes no longer do.
    pub async fn check_writable(&self) -> StoreResult<()> {
        if self.sqlite {
            let spare: i64 = sqlx::query_scalar(
                "SELECT m.max_page_count - p.page_count + f.freelist_count
                 FROM pragma_max_page_count() m, pragma_page_count() p, pragma_freelist_count() f",
            )
            .fetch_one(&self.pool)
            .await?;
            if spare < MIN_SPARE_PAGES {
                return Err(StoreError::Full(spare));
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO readiness_probe (id, pad) VALUES ($1, $2)")
            .bind(&id)
            .bind("-".repeat(4096))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM readiness_probe WHERE id = $1").bind(&id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Readiness: the database answers and takes writes, within `READY_TIMEOUT`.
    pub async fn ready(&self) -> StoreResult<()> {
        match tokio::time::timeout(READY_TIMEOUT, self.check_writable()).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }

    /// Fault tests: caps the SQLite file at `pages` pages on every connection, open now or
    /// later, which fails writes as a full disk does; a large number gives the space back.
    /// Call it while the server is idle: it takes every open connection for a moment.
    #[doc(hidden)]
    pub async fn set_sqlite_page_limit(&self, pages: u64) -> StoreResult<()> {
        self.page_limit.store(pages, Ordering::Relaxed);
        self.group_commit.let_go().await;
        self.limit_commit.let_go().await;
        let pool = &self.pool;
        // A connection on its way back to the pool counts in its size but cannot be
        // taken yet: asked for, the pool would open a new one instead, and miss it.
        let settled = async {
            while pool.num_idle() < pool.size() as usize {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(ACQUIRE_TIMEOUT, settled)
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolTimedOut))?;
        let mut held = Vec::new();
        for _ in 0..pool.size() {
            held.push(pool.acquire().await?);
        }
        for conn in &mut held {
            conn.execute(max_page_count(pages)).await?;
        }
        Ok(())
    }

    /// Queued group-commit writes (audit records, rotations) are committed first.
    pub async fn close(&self) {
        if let Some(listener) = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take() {
            listener.abort();
        }
        self.group_commit.stop().await;
        self.limit_commit.stop().await;
        self.pool.close().await;
    }
}

/// The pool's waits, pings, per-connection set-up, and what is done with a connection
/// given back.
fn pool_options(sqlite: bool, page_limit: Arc<AtomicU64>) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // sqlx pings every connection it hands out (a round trip on PostgreSQL, a hop to
        // the worker thread on SQLite) and again every one given back. The ping on the way
        // back finds a connection that broke in use; one that sat idle a while may have
        // been dropped by the server or a proxy meanwhile, so only that one is tried first.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_PING_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _meta| {
            let pages = page_limit.load(Ordering::Relaxed);
            Box::pin(async move {
                if sqlite {
                    // WAL lets readers run beside the writer; synchronous=FULL makes every
                    // acknowledged commit survive a power cut, not only a process crash.
                    // Temporary structures stay in memory: on disk, every rotation batch
                    // opened, wrote and deleted a file. Ours are small (sorts per user
                    // or under a LIMIT).
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA temp_store = MEMORY",
                    ] {
                        conn.execute(pragma).await?;
                    }
                    if pages > 0 {
                        conn.execute(max_page_count(pages)).await?;
                    }
                }
                Ok(())
            })
        })
        // SQLite may roll a transaction back on its own (SQLITE_FULL, SQLITE_IOERR …);
        // sqlx-sqlite 0.9 then keeps counting it as open, and every later "transaction"
        // on that connection nests inside one that never commits, holding the write lock
        // (docs/upstream/sqlx-sqlite-failed-commit.md). A connection whose transaction
        // state is in doubt when it comes back is closed, not reused. On SQLite the ping
        // waits for the queued rollback of a dropped transaction to finish; a connection
        // that says it is in no transaction has none queued, and skips that round trip.
        .after_release(move |conn, _meta| {
            Box::pin(async move {
                if sqlite && conn.is_in_transaction() {
                    conn.ping().await?;
                }
                let clean = !conn.is_in_transaction();
                if !clean {
                    tracing::warn!("closing a database connection left inside a transaction");
                }
                Ok(clean)
            })
        })
}

/// The database a URL names, for messages: the SQLite file, or the PostgreSQL host, port and
/// database — never the password.
pub fn describe(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.scheme().starts_with("postgres") => format!(
            "{}:{}{} (PostgreSQL)",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        _ => {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            format!("{} (SQLite)", path.split('?').next().unwrap_or(path))
        }
    }
}

fn max_page_count(pages: u64) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {pages}"))
}

/// Rows as one JSON parameter, for PostgreSQL's `json_to_recordset`: the statement text
/// stays the same whatever the row count.
fn json_param<T: serde::Serialize>(rows: &T) -> StoreResult<String> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(format!("rows as JSON: {e}")))
}

/// Lists are stored as space-separated words (grants, scopes, audiences, amr).
pub fn join_words<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    items.into_iter().map(|s| s.as_ref().to_owned()).collect::<Vec<_>>().join(" ")
}

pub fn split_words(text: &str) -> Vec<String> {
    text.split_ascii_whitespace().map(str::to_owned).collect()
}
