//! Group commit: small, frequent writes (stand-alone audit records, refresh-token
//! rotations, rate-limit steps) go through one task. Whatever queued while its previous
//! commit ran becomes one transaction: one commit, so one fsync on SQLite, for many
//! requests. Each request is answered only after the commit that holds its write, so every
//! acknowledged write is durable (`synchronous=FULL` semantics kept), and a failed commit
//! fails every request in it. Rate-limit steps need not be durable (`limits`): a step is
//! answered as soon as it is taken, before its batch's COMMIT (`commit`). A rotation may
//! carry its request's step, so that a refresh waits for one batch, not two; a refused
//! step leaves its rotation unwritten. Other steps go, on PostgreSQL, through a second task,
//! in batches of their own that do not wait for the disk.
//!
//! There is no timer: a lone request is written at once, and batches form only when
//! requests arrive faster than commits finish. On SQLite a batch of audit records alone
//! first waits one turn of the scheduler (`gather_more`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, AnyPool, Executor};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::audit::{self, AuditEvent};
use super::held::{HOLD_WHILE_IDLE, HeldConnection};
use super::limits::{self, Change, Step, Stepped};
use super::sessions::{self, Rotation, RotationWrite};
use super::{StoreError, StoreResult};

/// One write waiting for a commit.
pub(super) enum Job {
    Audit {
        event: AuditEvent,
        at: i64,
    },
    /// Written only if its rate-limit step, taken first in the same batch, is allowed.
    Rotate(RotationWrite, Option<Step>),
    /// `limits`: on PostgreSQL in batches of their own, which do not wait for the disk.
    Step(Step),
    Refund {
        key: String,
        emission_ms: i64,
    },
}

impl Job {
    /// The rate-limit change the batch makes before its writes.
    fn change(&self) -> Option<Change<'_>> {
        match self {
            Job::Step(step) | Job::Rotate(_, Some(step)) => Some(Change::Step(step)),
            Job::Refund { key, emission_ms } => Some(Change::Refund { key, emission_ms: *emission_ms }),
            Job::Rotate(_, None) | Job::Audit { .. } => None,
        }
    }
}

/// What a job did once committed.
pub(super) enum Done {
    Recorded,
    Rotated(Rotation),
    /// Its step was refused, so it wrote nothing.
    Refused,
}

/// Jobs waiting for a commit: a full queue makes requests wait (back-pressure) rather
/// than grow memory.
const QUEUE_CAPACITY: usize = 1024;

/// At most this many jobs per commit, so one transaction stays short.
const MAX_BATCH: usize = 256;

struct Pending {
    job: Job,
    /// Taken once answered (a job may be done once its step is taken).
    reply: Option<oneshot::Sender<StoreResult<Done>>>,
    /// Told the outcome of the job's rate-limit step as soon as it is taken.
    stepped: Option<oneshot::Sender<Stepped>>,
}

/// Totals since start-up, for `/metrics`: writes per commit is `writes / commits`, the
/// time a request waits for its commit about `busy / commits`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupCommitTotals {
    pub commits: u64,
    pub writes: u64,
    pub busy: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
    busy_micros: AtomicU64,
}

fn stopped() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

/// The commit of a job whose step has been answered (`submit_stepped`).
pub(super) struct Committing(oneshot::Receiver<StoreResult<Done>>);

impl Committing {
    pub(super) async fn wait(self) -> StoreResult<Done> {
        self.0.await.map_err(|_| stopped())?
    }
}

/// The handle to the task that commits jobs in batches.
#[derive(Clone, Debug)]
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    /// Asks the task to give its connection back now (`let_go`).
    release: mpsc::Sender<oneshot::Sender<()>>,
    counters: Arc<Counters>,
    /// Taken by `stop`.
    running: Arc<Mutex<Option<Running>>>,
}

/// The signal to finish and the task to wait for.
#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl GroupCommit {
    /// One task: on SQLite one transaction writes at a time anyway, and on PostgreSQL
    /// several writers side by side made smaller batches and fewer commits per second
    /// (measured in benches/README.md).
    pub(super) fn start(pool: AnyPool, sqlite: bool) -> GroupCommit {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (release, releases) = mpsc::channel(1);
        let (stop, stopped) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(commit_batches(pool, sqlite, rx, releases, stopped, counters.clone()));
        GroupCommit { queue, release, counters, running: Arc::new(Mutex::new(Some(Running { stop, task }))) }
    }

    pub(super) fn totals(&self) -> GroupCommitTotals {
        GroupCommitTotals {
            commits: self.counters.commits.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
            busy: Duration::from_micros(self.counters.busy_micros.load(Ordering::Relaxed)),
        }
    }

    /// Queues `job` and returns once the transaction holding it has committed.
    pub(super) async fn submit(&self, job: Job) -> StoreResult<Done> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Pending { job, reply: Some(reply), stepped: None }).await.map_err(|_| stopped())?;
        Committing(answer).wait().await
    }

    /// Queues `job`, which carries a rate-limit step, and returns as soon as the step is
    /// taken: its outcome, and the commit still to wait for.
    pub(super) async fn submit_stepped(&self, job: Job) -> StoreResult<(Stepped, Committing)> {
        let (reply, answer) = oneshot::channel();
        let (stepped, step) = oneshot::channel();
        self.queue
            .send(Pending { job, reply: Some(reply), stepped: Some(stepped) })
            .await
            .map_err(|_| stopped())?;
        match step.await {
            Ok(stepped) => Ok((stepped, Committing(answer))),
            // The batch failed before it took the step.
            Err(_) => Err(Committing(answer).wait().await.err().unwrap_or_else(stopped)),
        }
    }

    /// Returns once the task's connection is closed, for whoever must reach every
    /// connection in the pool. Its next batch takes one again.
    pub(super) async fn let_go(&self) {
        let (done, gone) = oneshot::channel();
        if self.release.send(done).await.is_ok() {
            let _ = gone.await;
        }
    }

    /// Refuses new jobs, commits those already queued, and returns when they are committed
    /// (or have failed).
    pub(super) async fn stop(&self) {
        let taken = self.running.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(Running { stop, task }) = taken {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

/// Takes whatever queued while the previous commit ran and commits it. The task itself
/// goes on after a failed batch. Jobs whose request has gone away are written all the same:
/// the action they record may have happened.
async fn commit_batches(
    pool: AnyPool,
    sqlite: bool,
    mut rx: mpsc::Receiver<Pending>,
    mut releases: mpsc::Receiver<oneshot::Sender<()>>,
    mut stop: oneshot::Receiver<()>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    let mut held = HeldConnection::new(pool, sqlite);
    loop {
        let received = tokio::select! {
            received = rx.recv_many(&mut batch, MAX_BATCH) => received,
            _ = &mut stop, if !stopping => {
                stopping = true;
                rx.close();
                continue;
            }
            _ = tokio::time::sleep(HOLD_WHILE_IDLE), if held.is_held() => {
                held.give_back().await;
                continue;
            }
            Some(done) = releases.recv() => {
                held.close().await;
                let _ = done.send(());
                continue;
            }
        };
        if received == 0 {
            held.give_back().await;
            return;
        }
        if sqlite && batch.iter().all(|p| matches!(p.job, Job::Audit { .. })) {
            gather_more(&mut rx, &mut batch).await;
        }
        let started = Instant::now();
        let committed = held.run(async |conn| commit(conn, sqlite, &mut batch).await).await;
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        counters.busy_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match committed {
            Ok(done) => {
                for (pending, done) in batch.drain(..).zip(done) {
                    if let Some(reply) = pending.reply {
                        let _ = reply.send(Ok(done));
                    }
                }
            }
            Err(err) => {
                let err = Arc::new(err);
                let mut unheard = 0;
                for reply in batch.drain(..).filter_map(|p| p.reply) {
                    unheard += usize::from(reply.send(Err(StoreError::Shared(err.clone()))).is_err());
                }
                // Those waiting log the error with their request; nobody else will hear of these.
                if unheard > 0 {
                    tracing::error!(error = %err, writes = unheard, "writes of finished requests lost");
                }
            }
        }
    }
}

/// Lets every task that is ready run once, then takes what they queued. A SQLite commit is
/// quick but costs this machine's own cores (the hand-off to SQLite's thread, the WAL pages,
/// the fsync), the cores that sign tokens, so under load a commit every few records wastes
/// them: measured with client_credentials at 32 connections, 2.5 records per commit became
/// 18 and tokens/s rose 5–9 %. Only for audit records, which are written once their
/// request's work is done: a rotation is queued while its token is still being signed, and
/// waiting there cost refresh 2–3 %. PostgreSQL's commits take long enough for batches of
/// about 12 to form by themselves; the wait cost it 4 %.
async fn gather_more(rx: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>) {
    tokio::task::yield_now().await;
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(pending) => batch.push(pending),
            Err(_) => break,
        }
    }
}

/// The batch as one transaction. Its rate-limit changes come first, and each step is
/// answered as soon as it is taken. On SQLite they run in a transaction this opens and
/// closes around the rest; on PostgreSQL `limits::apply_all_postgres` takes them in
/// statements that are their own transactions. Then the writes: audit records alone are
/// one statement, which is atomic, and so is `sessions::rotate_batch` with the batch's
/// rotations and records. On an error a transaction may still be open: `HeldConnection`
/// then closes the connection, which rolls it back.
async fn commit(conn: &mut AnyConnection, sqlite: bool, batch: &mut [Pending]) -> StoreResult<Vec<Done>> {
    let changes: Vec<Change> = batch.iter().filter_map(|p| p.job.change()).collect();
    let opened = sqlite && !changes.is_empty();
    if opened {
        conn.execute("BEGIN IMMEDIATE").await?;
    }
    let stepped = match (changes.is_empty(), sqlite) {
        (true, _) => Vec::new(),
        (false, true) => limits::apply_all(conn, &changes).await?,
        (false, false) => limits::apply_all_postgres(conn, &changes).await?,
    };
    // A step is answered before the COMMIT: whatever its request writes next commits after
    // this transaction (one writer on SQLite; on PostgreSQL the step has committed), so a
    // step is durable by the time its request acknowledges a write. Only a request that
    // writes nothing more may lose its step, to a crash in these moments or a COMMIT that
    // fails; that hands back one unit of a budget, as a relaxed commit does on PostgreSQL.
    // Waiting for the disk here cost refresh with its limit on 4-22 % (benches/README.md).
    let mut refused = vec![false; batch.len()];
    let with_changes = batch.iter_mut().zip(&mut refused).filter(|(p, _)| p.job.change().is_some());
    for ((pending, refused), stepped) in with_changes.zip(stepped) {
        if let Some(stepped) = stepped {
            *refused = !stepped.allowed;
            if let Some(tell) = pending.stepped.take() {
                let _ = tell.send(stepped);
            }
            // Nothing more to tell a step of its own, nor a rotation whose step was refused.
            if (*refused || matches!(pending.job, Job::Step(_)))
                && let Some(reply) = pending.reply.take()
            {
                let _ = reply.send(Ok(if *refused { Done::Refused } else { Done::Recorded }));
            }
        }
    }
    let done = write(conn, sqlite, opened, batch, &refused).await?;
    if opened {
        conn.execute("COMMIT").await?;
    }
    Ok(done)
}

/// The audit records in one statement, or, with rotations, `sessions::rotate_batch`, which
/// writes each rotation's record only if it won. Rotations whose step was `refused` are
/// left out.
async fn write(
    conn: &mut AnyConnection,
    sqlite: bool,
    opened: bool,
    batch: &[Pending],
    refused: &[bool],
) -> StoreResult<Vec<Done>> {
    let written = || batch.iter().zip(refused).filter(|(_, refused)| !**refused).map(|(p, _)| &p.job);
    let rotations: Vec<&RotationWrite> = written()
        .filter_map(|job| match job {
            Job::Rotate(rotation, _) => Some(rotation),
            _ => None,
        })
        .collect();
    // Every record, each rotation's with the successor it is written with.
    let records: Vec<_> = written()
        .filter_map(|job| match job {
            Job::Audit { event, at } => Some((event, *at, None)),
            Job::Rotate(r, _) => Some((&r.event, r.now, Some(r.new_hash.as_str()))),
            Job::Step(_) | Job::Refund { .. } => None,
        })
        .collect();
    let won = if !rotations.is_empty() {
        sessions::rotate_batch(conn, sqlite, opened, &rotations, &records).await?
    } else {
        if !records.is_empty() {
            let records: Vec<_> = records.iter().map(|&(event, at, _)| (event, at)).collect();
            audit::insert_all(&mut *conn, sqlite, &records).await?;
        }
        Vec::new()
    };
    Ok(batch
        .iter()
        .zip(refused)
        .map(|(p, refused)| match &p.job {
            _ if *refused => Done::Refused,
            Job::Rotate(r, _) if won.contains(&r.new_hash) => Done::Rotated(Rotation::Rotated),
            Job::Rotate(..) => Done::Rotated(Rotation::AlreadyUsed),
            // A step was answered before the commit; a refund has nothing to tell.
            Job::Audit { .. } | Job::Step(_) | Job::Refund { .. } => Done::Recorded,
        })
        .collect())
}
