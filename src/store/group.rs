//! Group commit for SQLite: one writer task drains a queue of write jobs into a
//! single transaction and acknowledges each job only after that transaction is
//! durable, so N concurrent writes cost one WAL flush instead of N.
//!
//! Each job runs inside a savepoint of the batch transaction: a job that fails
//! (or drops its [`WriteTx`] without committing) is rolled back to its savepoint
//! and leaves the others untouched. A job that committed its savepoint hears of
//! success only after `COMMIT` returned; if that commit fails, every such job of
//! the batch gets the error and nothing of the batch is on disk. A `200` therefore
//! still means "on disk", exactly as with one transaction per request.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{Actor, TxInner, WriteAborted, WriteTx, now_ms, search_index};

/// At most this many jobs share one transaction.
const MAX_BATCH: usize = 512;
/// A batch stops taking jobs after this much work, bounding the wait of its first job.
const MAX_BATCH_TIME: Duration = Duration::from_millis(8);
/// Jobs waiting for the writer; more callers wait for room (back-pressure).
const QUEUE: usize = 4096;

/// What a finished job does with the batch's outcome: `Ok` when its work is durable
/// (or when it committed nothing), else the reason the batch failed.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
type JobFuture = Pin<Box<dyn Future<Output = Deliver> + Send>>;

struct Job {
    actor: Actor,
    /// A bulk job (an import batch, say) gets a transaction of its own: a savepoint
    /// around thousands of statements costs more than the shared flush saves.
    alone: bool,
    run: Box<dyn FnOnce(WriteTx) -> JobFuture + Send>,
}

/// The sending side of the writer's queue.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    queue: mpsc::Sender<Job>,
}

impl GroupWriter {
    /// Starts the writer task on `pool` (a pool of one connection).
    pub(crate) fn start(pool: SqlitePool) -> GroupWriter {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(pool, rx));
        GroupWriter { queue }
    }

    /// Queues `work` and waits until it is durable (or failed).
    pub(crate) async fn write<T, E, F, Fut>(&self, actor: Actor, alone: bool, work: F) -> Result<T, E>
    where
        F: FnOnce(WriteTx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<WriteAborted> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, E>>();
        let run = Box::new(move |tx: WriteTx| -> JobFuture {
            Box::pin(async move {
                let result = work(tx).await;
                Box::new(move |durable: Result<(), String>| {
                    let out = match durable {
                        Ok(()) => result,
                        Err(why) => Err(E::from(WriteAborted(why))),
                    };
                    let _ = reply.send(out);
                }) as Deliver
            })
        });
        if self.queue.send(Job { actor, alone, run }).await.is_err() {
            return Err(E::from(WriteAborted("the writer has stopped".into())));
        }
        // A job that panicked drops `reply` without sending.
        answer.await.unwrap_or_else(|_| Err(E::from(WriteAborted("the write job failed".into()))))
    }
}

/// The batch connection, lent to one job at a time; it comes back through `back`
/// with whether the job committed, when the job commits or drops its transaction.
pub(crate) struct Lease {
    conn: Option<PoolConnection<Sqlite>>,
    back: Option<oneshot::Sender<Returned>>,
    /// Search index entries the job made, written when its batch commits.
    entries: Vec<search_index::Entry>,
}

/// What a job hands back: the connection, whether it committed, and (if it did)
/// its search index entries.
type Returned = (PoolConnection<Sqlite>, bool, Vec<search_index::Entry>);

impl Lease {
    /// Ends the job's part: `committed` keeps its savepoint, otherwise it is rolled back.
    pub(crate) fn finish(mut self, committed: bool) {
        self.give_back(committed);
    }

    /// Indexes a customer written by this job once the batch commits (see
    /// [`search_index::Entry`]); dropped if the job does not commit.
    pub(crate) fn index_later(&mut self, entry: search_index::Entry) {
        self.entries.push(entry);
    }

    fn give_back(&mut self, committed: bool) {
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) {
            let entries = if committed { std::mem::take(&mut self.entries) } else { Vec::new() };
            let _ = back.send((conn, committed, entries));
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.give_back(false);
    }
}

impl Deref for Lease {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("a lease holds its connection until it ends")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("a lease holds its connection until it ends")
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), String> {
    sqlx::query(sql).execute(conn).await.map(|_| ()).map_err(|e| e.to_string())
}

async fn writer(pool: SqlitePool, mut rx: mpsc::Receiver<Job>) {
    // Every job's time is at least its predecessor's, even when the system clock
    // steps back: creation times then follow insertion order (`seq`), which the
    // full-text keys' creation order relies on (`customers::SEQ_BITS`). A restart
    // resumes from the newest customer's time.
    let mut clock: i64 = sqlx::query_scalar("SELECT created_at FROM customers ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let mut batch: Vec<(Deliver, bool)> = Vec::with_capacity(MAX_BATCH);
    // A bulk job met while gathering a batch starts the next one.
    let mut carried: Option<Job> = None;
    'batches: loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "the writer could not get the database connection");
                continue;
            }
        };
        let alone = first.alone;
        // IMMEDIATE takes the write lock up front, so no statement can fail to upgrade it.
        let begin = if alone { "BEGIN IMMEDIATE" } else { "BEGIN IMMEDIATE; SAVEPOINT job" };
        if let Err(e) = exec(&mut conn, begin).await {
            tracing::error!(error = %e, "the writer could not begin a transaction");
            let _ = exec(&mut conn, "ROLLBACK").await;
            continue;
        }
        let started = Instant::now();
        let mut job = first;
        let mut entries = Vec::new();
        let outcome = loop {
            clock = clock.max(now_ms());
            let Some((c, committed, job_entries, deliver)) = run_job(conn, job, clock).await else {
                // The job kept the connection beyond its end (a bug): fail what the batch holds.
                tracing::error!("a write job did not return the connection");
                for (deliver, committed) in batch.drain(..) {
                    deliver(if committed { Err("the write connection was lost".into()) } else { Ok(()) });
                }
                continue 'batches;
            };
            conn = c;
            batch.push((deliver, committed));
            entries.extend(job_entries);
            let mut next = None;
            if !alone && batch.len() < MAX_BATCH && started.elapsed() < MAX_BATCH_TIME {
                match rx.try_recv() {
                    Ok(j) if j.alone => carried = Some(j),
                    Ok(j) => next = Some(j),
                    Err(_) => {}
                }
            }
            // One round trip ends this job's savepoint and opens the next one's (or commits).
            let end = match (alone, committed, next.is_some()) {
                (true, true, _) => "COMMIT",
                (true, false, _) => "ROLLBACK",
                (false, true, true) => "RELEASE job; SAVEPOINT job",
                (false, false, true) => "ROLLBACK TO job; RELEASE job; SAVEPOINT job",
                (false, true, false) => "RELEASE job; COMMIT",
                (false, false, false) => "ROLLBACK TO job; RELEASE job; COMMIT",
            };
            // An error here means SQLite already rolled the transaction back (disk full, I/O
            // error): the savepoint is gone, and so is every job of the batch.
            let ended = match end.strip_suffix("COMMIT") {
                // The batch's search index entries go in last, outside every savepoint.
                Some(before) if !entries.is_empty() => {
                    finish_with_entries(&mut conn, before.trim_end_matches("; "), &entries).await
                }
                _ => exec(&mut conn, end).await,
            };
            if let Err(why) = ended {
                drop(next);
                break Err(why);
            }
            match next {
                Some(j) => job = j,
                None => break Ok(()),
            }
        };
        if let Err(why) = &outcome {
            tracing::error!(error = %why, jobs = batch.len(), "a write batch failed and was rolled back");
            if let Err(e) = exec(&mut conn, "ROLLBACK").await
                && !e.contains("no transaction is active")
            {
                // Still inside a transaction nobody can end: do not hand it to anyone else.
                conn.close_on_drop();
            }
        }
        drop(conn);
        metrics::histogram!("clientele_write_batch_size").record(batch.len() as f64);
        for (deliver, committed) in batch.drain(..) {
            deliver(if committed { outcome.clone() } else { Ok(()) });
        }
    }
}

/// Ends the last job's savepoint with `before` (if any), writes the batch's search
/// index entries, and commits.
async fn finish_with_entries(
    conn: &mut SqliteConnection,
    before: &str,
    entries: &[search_index::Entry],
) -> Result<(), String> {
    if !before.is_empty() {
        exec(conn, before).await?;
    }
    search_index::write_entries(conn, entries).await.map_err(|e| e.to_string())?;
    exec(conn, "COMMIT").await
}

/// Runs one job, stamped `now`, in the savepoint (or transaction) the writer opened. Returns the connection, whether
/// the job committed, its search index entries and its delivery; `None` if the job never gave the connection back.
async fn run_job(
    conn: PoolConnection<Sqlite>,
    job: Job,
    now: i64,
) -> Option<(PoolConnection<Sqlite>, bool, Vec<search_index::Entry>, Deliver)> {
    let (back, returned) = oneshot::channel();
    let lease = Lease { conn: Some(conn), back: Some(back), entries: Vec::new() };
    let tx = WriteTx { inner: TxInner::Sqlite(lease), actor: job.actor, now };
    // A panicking job drops its lease (so its savepoint is rolled back) and its reply.
    let deliver = AssertUnwindSafe((job.run)(tx)).catch_unwind().await.unwrap_or_else(|_| Box::new(|_| ()));
    let (conn, committed, entries) = returned.await.ok()?;
    Some((conn, committed, entries, deliver))
}
