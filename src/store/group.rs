//! Group commit for SQLite: one writer thread drains a queue of write jobs into a
//! single transaction and acknowledges each job only after that transaction is
//! durable, so N concurrent writes cost one WAL flush instead of N.
//!
//! Each job runs inside a savepoint of the batch transaction: a job that fails
//! (or drops its [`WriteTx`] without committing) is rolled back to its savepoint
//! and leaves the others untouched. A job that committed its savepoint hears of
//! success only after `COMMIT` returned; if that commit fails, every such job of
//! the batch gets the error and nothing of the batch is on disk. A `200` therefore
//! still means "on disk", exactly as with one transaction per request.
//!
//! The writer owns its connection (rusqlite) and runs every job on its own thread:
//! a job's statements complete synchronously ([`super::query`]), so a job costs no
//! thread switch per statement, and a batch costs two (the queue in, the replies
//! out) however many jobs it holds. The `COMMIT`'s disk flush blocks this thread,
//! never the async runtime.
//!
//! Copying the WAL back into the database (a checkpoint) is mostly left to a
//! thread of its own ([`Checkpointer`]): done by the writer after a commit, as
//! SQLite does by default, it held up the batch that crossed the threshold (a
//! fifth of the writer's time during a large import).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
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
    /// Opens the writer's connection to the database at `path` and starts its
    /// thread, which ends when the last sender is dropped.
    /// The writer keeps `cache_kib` KiB of pages.
    pub(crate) fn start(path: &Path, cache_kib: u32) -> anyhow::Result<GroupWriter> {
        Self::start_checkpointing_at(path, CHECKPOINT_FRAMES, cache_kib)
    }

    /// [`GroupWriter::start`], checkpointing once the WAL holds `frames` frames.
    fn start_checkpointing_at(path: &Path, frames: i32, cache_kib: u32) -> anyhow::Result<GroupWriter> {
        let own = open_writer(path, cache_kib)?;
        // When the WAL starts over, a WAL that grew past twice the checkpoint
        // threshold (while a long read held an old snapshot, say) is truncated back.
        own.pragma_update(None, "journal_size_limit", wal_size_limit(frames))?;
        let conn = Checkpointer::start(path, own, frames)?;
        let (queue, rx) = mpsc::channel(QUEUE);
        // Jobs may await what needs the runtime (a timer, a pooled read): they run
        // inside its context.
        let runtime = tokio::runtime::Handle::try_current().ok();
        std::thread::Builder::new().name("db-writer".into()).spawn(move || {
            let _context = runtime.as_ref().map(|r| r.enter());
            writer(conn, rx, runtime.as_ref());
        })?;
        Ok(GroupWriter { queue })
    }

    /// Writes queued for the writer's thread, not yet taken into a batch.
    pub(crate) fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
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
                        Err(why) => Err(E::from(WriteAborted::unavailable(why))),
                    };
                    let _ = reply.send(out);
                }) as Deliver
            })
        });
        if self.queue.send(Job { actor, alone, run }).await.is_err() {
            return Err(E::from(WriteAborted::unavailable("the writer has stopped")));
        }
        // A job the writer could not begin (the database busy or failing), or one
        // that panicked (logged by the writer), drops `reply` without sending.
        answer.await.unwrap_or_else(|_| Err(E::from(WriteAborted::unavailable("the write could not run"))))
    }
}

/// A connection that may write, used by one thread at a time (no SQLite mutex).
fn open_read_write(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    Connection::open_with_flags(path, flags)
}

fn open_writer(path: &Path, cache_kib: u32) -> rusqlite::Result<Connection> {
    let c = open_read_write(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    let settings: String =
        super::SQLITE_WRITE_PRAGMAS.iter().map(|(name, value)| format!("PRAGMA {name} = {value}; ")).collect();
    c.execute_batch(&settings)?;
    // Negative: a size in KiB rather than pages.
    c.pragma_update(None, "cache_size", -i64::from(cache_kib))?;
    c.set_prepared_statement_cache_capacity(128);
    Ok(c)
}

/// A checkpoint is due once the WAL holds this many frames (~40 MiB).
const CHECKPOINT_FRAMES: i32 = 10_000;

/// The WAL's size once it starts over (bytes): twice the checkpoint threshold's
/// frames of 4 KiB pages (~80 MiB).
fn wal_size_limit(frames: i32) -> i64 {
    i64::from(frames) * 2 * (4096 + 24)
}

/// Runs the WAL checkpoints of the writer's commits on a thread and connection
/// of its own. The writer's connection reports each commit's WAL size to it (a
/// WAL hook, which replaces SQLite's automatic checkpoint on that connection);
/// once the WAL has grown past [`CHECKPOINT_FRAMES`] it copies what it can back
/// into the database (a `PASSIVE` checkpoint: it never waits for, nor blocks, the
/// writer or readers). Past twice that, the writer copies the rest itself so the
/// WAL can start over (see [`wal_committed`]).
struct Checkpointer {
    due: std::sync::mpsc::SyncSender<()>,
    /// The WAL size (frames) that makes a checkpoint due.
    frames: i32,
}

/// The writer's connection with the checkpointer its WAL hook reports to (which
/// must outlive the connection: fields drop in order).
pub(crate) struct WriterConn {
    conn: Connection,
    _checkpointer: Box<Checkpointer>,
}

impl std::ops::Deref for WriterConn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Checkpointer {
    fn start(path: &Path, conn: Connection, frames: i32) -> anyhow::Result<WriterConn> {
        let own = open_read_write(path)?;
        // A checkpoint syncs the WAL before copying and the database after, as durably as the writer commits.
        own.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")?;
        own.pragma_update(None, "journal_size_limit", wal_size_limit(frames))?;
        let (due, wanted) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new().name("db-checkpoint".into()).spawn(move || {
            // Ends with the writer (its sender dropped).
            while wanted.recv().is_ok() {
                if let Err(e) = checkpoint(&own) {
                    tracing::warn!(error = %e, "a WAL checkpoint failed; the next commit asks again");
                }
            }
        })?;
        let checkpointer = Box::new(Checkpointer { due, frames });
        // SAFETY: the hook's context is the boxed checkpointer, which `WriterConn` drops only
        // after the connection; the hook runs on the thread using the connection.
        unsafe {
            let context = &*checkpointer as *const Checkpointer as *mut std::ffi::c_void;
            rusqlite::ffi::sqlite3_wal_hook(conn.handle(), Some(wal_committed), context);
        }
        Ok(WriterConn { conn, _checkpointer: checkpointer })
    }
}

/// One due checkpoint: a `PASSIVE` one, which copies what it can while the
/// writer goes on.
fn checkpoint(c: &Connection) -> rusqlite::Result<()> {
    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0)).map(|_| ())
}

/// SQLite's WAL hook: called after each commit with the WAL's size in frames.
///
/// The WAL starts over at a commit only when everything in it has been copied
/// and no one is writing, which a writer that never pauses does not leave time
/// for: left to the checkpointer alone, the WAL grew to 300 MB in a minute of
/// creates. So past twice the threshold the writer finishes the copy itself,
/// here, between its commits (the frames the checkpointer has not copied yet:
/// those written since its last pass), and its next commit starts the WAL over.
unsafe extern "C" fn wal_committed(
    context: *mut std::ffi::c_void,
    db: *mut rusqlite::ffi::sqlite3,
    _name: *const std::ffi::c_char,
    frames: std::ffi::c_int,
) -> std::ffi::c_int {
    // SAFETY: `context` is the `Checkpointer` registered with the hook, alive while the connection is.
    let checkpointer = unsafe { &*(context as *const Checkpointer) };
    if frames >= 2 * checkpointer.frames {
        // SAFETY: `db` is the connection that just committed, on its own thread, outside any
        // transaction (SQLite's own automatic checkpoint runs here too). A PASSIVE checkpoint
        // that finds the checkpointer at work gives up at once; the next commit tries again.
        let mode = rusqlite::ffi::SQLITE_CHECKPOINT_PASSIVE;
        unsafe {
            rusqlite::ffi::sqlite3_wal_checkpoint_v2(
                db,
                std::ptr::null(),
                mode,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    } else if frames >= checkpointer.frames {
        // Full: a checkpoint is already due, which covers this commit too.
        let _ = checkpointer.due.try_send(());
    }
    rusqlite::ffi::SQLITE_OK
}

/// The batch connection, lent to one job at a time; it comes back through `back`
/// with whether the job committed, when the job commits or drops its transaction.
pub(crate) struct Lease {
    conn: Option<WriterConn>,
    back: Option<oneshot::Sender<Returned>>,
    effects: Effects,
}

/// What a committed job leaves the writer to do after its batch.
#[derive(Default)]
struct Effects {
    /// Search index entries, written when the batch commits.
    entries: Vec<search_index::Entry>,
    /// It deleted secret data (ciphertexts, fingerprints), whose old pages the
    /// WAL keeps until it is emptied ([`purge_wal`]).
    secrets_removed: bool,
}

/// What a job hands back: the connection, whether it committed, and (if it did)
/// what it leaves to do.
type Returned = (WriterConn, bool, Effects);

impl Lease {
    /// Ends the job's part: `committed` keeps its savepoint, otherwise it is rolled back.
    pub(crate) fn finish(mut self, committed: bool) {
        self.give_back(committed);
    }

    /// Indexes a customer written by this job once the batch commits (see
    /// [`search_index::Entry`]); dropped if the job does not commit.
    pub(crate) fn index_later(&mut self, entry: search_index::Entry) {
        self.effects.entries.push(entry);
    }

    /// Says the job deleted secret data: once its batch commits, the WAL is
    /// emptied soon ([`purge_wal`]).
    pub(crate) fn secrets_removed(&mut self) {
        self.effects.secrets_removed = true;
    }

    /// The batch's connection.
    pub(crate) fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("a lease holds its connection until it ends")
    }

    fn give_back(&mut self, committed: bool) {
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) {
            let effects = if committed { std::mem::take(&mut self.effects) } else { Effects::default() };
            let _ = back.send((conn, committed, effects));
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.give_back(false);
    }
}

/// Runs fixed statements (`BEGIN`, savepoints, `COMMIT`) from the statement cache.
fn exec(conn: &Connection, statements: &[&str]) -> Result<(), String> {
    for sql in statements {
        conn.prepare_cached(sql).and_then(|mut s| s.raw_execute()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The newest customer's creation time: every job's time is at least its
/// predecessor's, even when the system clock steps back, so creation times follow
/// insertion order (`seq`), which the full-text keys' creation order relies on
/// (`customers::SEQ_BITS`). Read at the first job, after the migrations ran.
fn newest_creation(conn: &Connection) -> i64 {
    conn.query_row("SELECT created_at FROM customers ORDER BY seq DESC LIMIT 1", [], |r| r.get(0)).unwrap_or(0)
}

/// At most one [`purge_wal`] in this long: deletes in between share it.
const PURGE_EVERY: Duration = Duration::from_secs(1);

/// Copies every frame of the WAL into the database and truncates the WAL to
/// nothing, so that pages of deleted rows (ciphertexts, fingerprints) no longer
/// exist in it; the database's own copies were overwritten on delete
/// (`secure_delete`). Waits at most 50 ms for a reader still on an older
/// snapshot (a `TRUNCATE` checkpoint holds new writers meanwhile); if one is,
/// it is tried again later. Whether it was done.
fn purge_wal(conn: &Connection) -> bool {
    let _ = conn.busy_timeout(Duration::from_millis(50));
    let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
    let _ = conn.busy_timeout(Duration::from_secs(5));
    matches!(busy, Ok(0))
}

fn writer(mut conn: WriterConn, mut rx: mpsc::Receiver<Job>, runtime: Option<&tokio::runtime::Handle>) {
    let mut clock: Option<i64> = None;
    let mut batch: Vec<(Deliver, bool)> = Vec::with_capacity(MAX_BATCH);
    // A bulk job met while gathering a batch starts the next one.
    let mut carried: Option<Job> = None;
    // Secrets were deleted since the WAL was last emptied.
    let mut purge_due = false;
    let mut purged_at = Instant::now() - PURGE_EVERY;
    loop {
        if purge_due && purged_at.elapsed() >= PURGE_EVERY {
            purged_at = Instant::now();
            purge_due = !purge_wal(&conn);
        }
        let next_job = match (carried.take(), runtime) {
            (Some(job), _) => Some(job),
            // With a purge pending, wait no longer than until its next try.
            (None, Some(rt)) if purge_due => {
                let wait = PURGE_EVERY.saturating_sub(purged_at.elapsed());
                match rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                    Ok(job) => job,
                    Err(_) => continue,
                }
            }
            (None, _) => rx.blocking_recv(),
        };
        let Some(first) = next_job else { return };
        let clock = clock.get_or_insert_with(|| newest_creation(&conn));
        let alone = first.alone;
        // IMMEDIATE takes the write lock up front, so no statement can fail to upgrade it.
        let begin: &[&str] = if alone { &["BEGIN IMMEDIATE"] } else { &["BEGIN IMMEDIATE", "SAVEPOINT job"] };
        if let Err(e) = exec(&conn, begin) {
            tracing::error!(error = %e, "the writer could not begin a transaction");
            let _ = exec(&conn, &["ROLLBACK"]);
            // Its caller hears that the job failed when it is dropped unrun.
            drop(first);
            continue;
        }
        let started = Instant::now();
        let mut job = first;
        let mut entries = Vec::new();
        let mut secrets_removed = false;
        let outcome = loop {
            *clock = (*clock).max(now_ms());
            let Some((c, committed, effects, deliver)) = run_job(conn, job, *clock) else {
                // A job kept the connection beyond its end: a bug this writer cannot
                // recover from, as the connection is gone with it.
                tracing::error!("a write job did not return the connection; the writer stops");
                for (deliver, committed) in batch.drain(..) {
                    deliver(if committed { Err("the write connection was lost".into()) } else { Ok(()) });
                }
                return;
            };
            conn = c;
            batch.push((deliver, committed));
            entries.extend(effects.entries);
            secrets_removed |= effects.secrets_removed;
            let mut next = None;
            if !alone && batch.len() < MAX_BATCH && started.elapsed() < MAX_BATCH_TIME {
                // An empty queue gets one more look after letting other threads run:
                // where the writer shares a core with the runtime, requests parsed
                // meanwhile join this commit instead of waiting for the next one.
                let job = rx.try_recv().ok().or_else(|| {
                    std::thread::yield_now();
                    rx.try_recv().ok()
                });
                match job {
                    Some(j) if j.alone => carried = Some(j),
                    Some(j) => next = Some(j),
                    None => {}
                }
            }
            // End this job's savepoint, then open the next one's or commit the batch.
            let end: &[&str] = match (alone, committed) {
                (true, _) => &[],
                (false, true) => &["RELEASE job"],
                (false, false) => &["ROLLBACK TO job", "RELEASE job"],
            };
            // An error here means SQLite already rolled the transaction back (disk full, I/O
            // error): the savepoint is gone, and so is every job of the batch.
            let ended = exec(&conn, end).and_then(|()| match (&next, alone && !committed) {
                (Some(_), _) => exec(&conn, &["SAVEPOINT job"]),
                (None, true) => exec(&conn, &["ROLLBACK"]),
                // The batch's search index entries go in last, outside every savepoint.
                (None, false) => match alone {
                    true => search_index::write_bulk_entries(&conn, &entries),
                    false => search_index::write_entries(&conn, &entries),
                }
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    let started = std::time::Instant::now();
                    let committed = exec(&conn, &["COMMIT"]);
                    metrics::histogram!("clientele_commit_seconds").record(started.elapsed().as_secs_f64());
                    committed
                }),
            });
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
            if !conn.is_autocommit() {
                let _ = exec(&conn, &["ROLLBACK"]);
            }
        }
        purge_due |= secrets_removed && outcome.is_ok();
        metrics::histogram!("clientele_write_batch_size").record(batch.len() as f64);
        for (deliver, committed) in batch.drain(..) {
            deliver(if committed { outcome.clone() } else { Ok(()) });
        }
    }
}

/// Runs one job, stamped `now`, in the savepoint (or transaction) the writer opened, to its end on this thread.
/// Returns the connection, whether the job committed, its search index entries and its delivery; `None` if the
/// job never gave the connection back.
fn run_job(conn: WriterConn, job: Job, now: i64) -> Option<(WriterConn, bool, Effects, Deliver)> {
    let (back, mut returned) = oneshot::channel();
    let lease = Lease { conn: Some(conn), back: Some(back), effects: Effects::default() };
    let tx = WriteTx::new(TxInner::Sqlite(lease), job.actor, now);
    // A panicking job drops its lease (so its savepoint is rolled back) and its reply.
    let run = job.run;
    let deliver =
        std::panic::catch_unwind(AssertUnwindSafe(|| futures_executor::block_on(run(tx)))).unwrap_or_else(|_| {
            tracing::error!("a write job panicked; its work was rolled back");
            Box::new(|_| ())
        });
    let (conn, committed, effects) = returned.try_recv().ok()?;
    Some((conn, committed, effects, deliver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreError, Tenant};

    /// A WAL database with one table, `t`, and a writer checkpointing at 16 frames.
    fn writer_on_a_new_database() -> (tempfile::TempDir, std::path::PathBuf, GroupWriter) {
        writer_with_cache(crate::store::WRITER_CACHE_KIB)
    }

    fn writer_with_cache(cache_kib: u32) -> (tempfile::TempDir, std::path::PathBuf, GroupWriter) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        Connection::open(&path).unwrap().execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB);").unwrap();
        let writer = GroupWriter::start_checkpointing_at(&path, 16, cache_kib).unwrap();
        (dir, path, writer)
    }

    /// The page cache setting the writer's jobs run with (SQLite's: negative is KiB).
    async fn cache_size(writer: &GroupWriter) -> i64 {
        let actor = Actor::system(Tenant::trusted(uuid::Uuid::now_v7()));
        let job = |mut tx: WriteTx| async move {
            let (size,): (i64,) = tx.fetch_one("PRAGMA cache_size", &[]).await?;
            Ok::<_, StoreError>(size)
        };
        writer.write(actor, false, job).await.unwrap()
    }

    #[tokio::test]
    async fn the_writer_keeps_the_page_cache_it_was_given() {
        // A service's writer keeps 16 MB whatever the database's size; a bulk
        // import's asks for more, which must not fall back to the default.
        assert_eq!(cache_size(&writer_on_a_new_database().2).await, -16_000);
        assert_eq!(cache_size(&writer_with_cache(200_000).2).await, -200_000);
    }

    /// Commits one row of `bytes` random bytes through the writer.
    async fn insert_blob(writer: &GroupWriter, bytes: i64) {
        let actor = Actor::system(Tenant::trusted(uuid::Uuid::now_v7()));
        let job = move |mut tx: WriteTx| async move {
            tx.exec("INSERT INTO t (x) VALUES (randomblob($1))", &[&bytes]).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        };
        writer.write(actor, false, job).await.unwrap();
    }

    #[tokio::test]
    async fn commits_reach_the_database_file_through_the_checkpointer() {
        let (_dir, path, writer) = writer_on_a_new_database();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        for _ in 0..20 {
            insert_blob(&writer, 8000).await;
        }
        // 20 rows of 8 kB are some 60 WAL frames: past 16, the checkpointer copies them
        // into the file. (Left to SQLite, nothing would: its own threshold is 1,000.)
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() < before + 100_000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(size() >= before + 100_000, "the file grew from {before} to {} bytes only", size());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wal_grown_past_its_limit_shrinks_back_when_it_starts_over() {
        let (dir, path, writer) = writer_on_a_new_database();
        let wal = || std::fs::metadata(dir.path().join("w.db-wal")).map(|m| m.len()).unwrap_or(0);
        // A reader holding an old snapshot keeps the WAL from starting over...
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
        for _ in 0..60 {
            insert_blob(&writer, 50_000).await;
        }
        let grown = wal();
        assert!(grown > 2_000_000, "the WAL only grew to {grown} bytes");
        // ...and once it lets go, the WAL goes back to its limit (16 frames: 128 KiB).
        reader.execute_batch("COMMIT").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while wal() > 2 * wal_size_limit(16) as u64 && Instant::now() < deadline {
            insert_blob(&writer, 100).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(wal() <= 2 * wal_size_limit(16) as u64, "the WAL stayed at {} bytes (was {grown})", wal());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleted_secrets_empty_the_wal_once_readers_let_go() {
        let (dir, path, writer) = writer_on_a_new_database();
        let wal = || std::fs::metadata(dir.path().join("w.db-wal")).map(|m| m.len()).unwrap_or(0);
        insert_blob(&writer, 5000).await;
        // A reader on an older snapshot keeps the WAL from being emptied at the delete...
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
        let actor = Actor::system(Tenant::trusted(uuid::Uuid::now_v7()));
        let job = |mut tx: WriteTx| async move {
            tx.exec("DELETE FROM t", &[]).await?;
            tx.secrets_removed();
            tx.commit().await?;
            Ok::<_, StoreError>(())
        };
        writer.write(actor, false, job).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(wal() > 0);
        // ...and once it lets go, the idle writer tries again and empties it.
        reader.execute_batch("COMMIT").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while wal() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(wal(), 0, "the WAL was not emptied");
        insert_blob(&writer, 10).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_while_the_writer_never_pauses() {
        let (dir, _path, writer) = writer_on_a_new_database();
        // 64 writers at once keep the queue full, so batches follow each other without a pause.
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    for _ in 0..40 {
                        insert_blob(&writer, 3000).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // 2,560 rows are some 2,600 frames (10 MB); the WAL is started over past 32
        // frames, so it never holds more than a few batches.
        let wal = std::fs::metadata(dir.path().join("w.db-wal")).unwrap().len();
        assert!(wal < 2_000_000, "the WAL grew to {wal} bytes");
    }
}
