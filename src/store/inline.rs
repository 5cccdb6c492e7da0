//! Point reads on SQLite that run on the calling thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and hands every
//! statement (and every row) across a channel, two thread switches per query.
//! For a lookup by key that costs far more than the lookup: a `GET` of a customer
//! is three indexed reads of a few microseconds each. The short, bounded reads on
//! the hot paths — one customer with its methods and custom values, and searches
//! narrowed by an exact, indexed filter — run here instead, on a small set of
//! read-only connections with cached prepared statements, synchronously on the
//! request's thread.
//!
//! A read may hold the calling thread for [`INLINE_BUDGET`] at most: every
//! connection carries a progress handler that interrupts a statement past its
//! deadline. A read that needed longer (a word search matching a large share of
//! the merchant's customers, say) runs again on the blocking pool, a few at a
//! time, with the service's query budget ([`InlineReaders::read`]); so no request
//! holds a runtime thread for more than a few milliseconds, and none reads for
//! longer than the budget.
//!
//! These connections only read, and only through [`super::Scoped`], which supplies
//! the merchant to every statement like any other read.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// How long a read may hold the thread that asked for it (a runtime thread).
pub(crate) const INLINE_BUDGET: Duration = Duration::from_millis(5);

/// SQLite calls a connection's progress handler every this many virtual machine
/// instructions (some microseconds): how late past its deadline a statement stops.
pub(crate) const PROGRESS_OPS: i32 = 1000;

/// The instant deadlines are counted from, as nanoseconds in an atomic.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn nanos_since_epoch(at: Instant) -> u64 {
    at.saturating_duration_since(*EPOCH).as_nanos().try_into().unwrap_or(u64::MAX)
}

/// A read-only connection whose statements stop at `deadline` (0: none).
struct Reader {
    conn: Connection,
    deadline: Arc<AtomicU64>,
}

/// Read-only connections, each behind its own lock. A reader holds one only for
/// the length of a synchronous call, so with one per runtime thread and one per
/// read thread, a caller practically never waits.
pub(crate) struct InlineReaders {
    conns: Box<[Mutex<Reader>]>,
    next: AtomicUsize,
    path: PathBuf,
    /// The threads of the reads that may take long ([`InlineReaders::read_blocking`]).
    heavy: std::sync::mpsc::SyncSender<HeavyRead>,
    /// How long one of those may take (`None`: as long as it needs).
    budget: Option<Duration>,
}

/// A read for the read threads, with its reply inside.
type HeavyRead = Box<dyn FnOnce() + Send>;

/// Reads waiting for a read thread; past this, a read is refused (503) rather
/// than queued without end.
const HEAVY_QUEUE: usize = 256;

impl InlineReaders {
    /// `count` connections, and `heavy` threads for the reads that may take long:
    /// threads of their own rather than the runtime's blocking pool, which starts
    /// a thread (with an allocator heap of its own) whenever all of its are busy.
    pub(crate) fn open(
        path: &Path,
        count: usize,
        heavy: usize,
        budget: Option<Duration>,
    ) -> rusqlite::Result<InlineReaders> {
        let conns = (0..count.max(1))
            .map(|_| open_budgeted_reader(path).map(Mutex::new))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let (send, jobs) = std::sync::mpsc::sync_channel::<HeavyRead>(HEAVY_QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..heavy.max(1) {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("db-read-{i}"))
                .spawn(move || {
                    // Ends when the readers are dropped (their sender with them).
                    loop {
                        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            // A read that panics loses its reply (the caller gets an
                            // error), not the thread.
                            Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        }
        Ok(InlineReaders {
            conns: conns.into_boxed_slice(),
            next: AtomicUsize::new(0),
            path: path.to_owned(),
            heavy: send,
            budget,
        })
    }

    /// A read-only connection of the caller's own, for a long read (an export) that
    /// must not hold one of the shared ones.
    pub(crate) fn dedicated(&self) -> rusqlite::Result<Connection> {
        open_reader(&self.path)
    }

    /// Runs `f` on the caller's thread for up to [`INLINE_BUDGET`]; if it needs
    /// longer, runs it again on the blocking pool (at most a few at a time) with
    /// the query budget. A read past that budget fails with an interrupt
    /// ([`is_interrupt`]).
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, sqlx::Error>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> rusqlite::Result<T> + Send + Sync + 'static,
    {
        match self.with_deadline(Some(Instant::now() + INLINE_BUDGET), &f) {
            Err(e) if is_interrupt(&e) => {}
            done => return done.map_err(driver_error),
        }
        metrics::counter!("clientele_reads_moved_to_blocking_pool_total").increment(1);
        self.read_blocking(f).await
    }

    /// Runs `f` on a read thread (one per core) with the query budget: for reads
    /// that may need long from their first instruction. A full-text query does its
    /// heaviest work (merging the lists of a word that prefixes many terms) inside
    /// one step of SQLite's machine, which the progress handler cannot cut short:
    /// at a million customers a one-letter word ran ~20 ms past a 1 ms deadline.
    pub(crate) async fn read_blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T, sqlx::Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, done) = tokio::sync::oneshot::channel();
        let this = self.clone();
        let job: HeavyRead = Box::new(move || {
            // The budget counts from when the read starts, not from when it queued.
            let deadline = this.budget.map(|b| Instant::now() + b);
            let _ = reply.send(this.with_deadline(deadline, f));
        });
        self.heavy.try_send(job).map_err(|_| sqlx::Error::PoolTimedOut)?;
        done.await.map_err(driver_error)?.map_err(driver_error)
    }

    /// Runs `f` on the caller's thread, for up to [`INLINE_BUDGET`].
    #[cfg(test)]
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, sqlx::Error> {
        self.with_deadline(Some(Instant::now() + INLINE_BUDGET), f).map_err(driver_error)
    }

    /// Runs `f` on a free connection (the first one not in use, from a rotating
    /// start; when every one is busy, waits for the one at the start), its
    /// statements interrupted past `deadline`.
    fn with_deadline<T>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // A lock poisoned by a panic is still a good connection: the panic rolled
        // its read transaction back as it unwound.
        let guard = (0..n)
            .find_map(|i| match self.conns[(start + i) % n].try_lock() {
                Ok(g) => Some(g),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            })
            .unwrap_or_else(|| self.conns[start].lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        guard
            .deadline
            .store(deadline.map_or(0, nanos_since_epoch).max(u64::from(deadline.is_some())), Ordering::Relaxed);
        let done = f(&guard.conn);
        guard.deadline.store(0, Ordering::Relaxed);
        done
    }
}

/// Whether a read stopped because it ran past its deadline.
pub(crate) fn is_interrupt(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted)
}

/// A reader whose statements stop once its `deadline` has passed.
fn open_budgeted_reader(path: &Path) -> rusqlite::Result<Reader> {
    let conn = open_reader(path)?;
    let deadline = Arc::new(AtomicU64::new(0));
    let watched = deadline.clone();
    conn.progress_handler(
        PROGRESS_OPS,
        Some(move || {
            let d = watched.load(Ordering::Relaxed);
            d != 0 && nanos_since_epoch(Instant::now()) > d
        }),
    );
    Ok(Reader { conn, deadline })
}

/// Runs `f` in one read transaction, begun and ended by cached statements:
/// rusqlite's `Transaction` parses `BEGIN` and `COMMIT` anew each time, which was
/// about 5 % of a customer read. A failure or a panic inside `f` rolls it back.
pub(crate) fn read_transaction<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    struct Open<'a>(&'a Connection, bool);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            if self.1 {
                let _ = self.0.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
            }
        }
    }
    c.prepare_cached("BEGIN")?.execute([])?;
    let mut open = Open(c, true);
    let out = f(c)?;
    c.prepare_cached("COMMIT")?.execute([])?;
    open.1 = false;
    Ok(out)
}

/// A failure of an inline read, as the sqlx error every store read returns.
pub(crate) fn driver_error(e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::AnyDriverError(Box::new(e))
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(Duration::from_secs(5))?;
    // The same 4 MiB page-cache bound as the pooled readers.
    c.pragma_update(None, "cache_size", -4000)?;
    c.set_prepared_statement_cache_capacity(32);
    Ok(c)
}

/// Binds `args[N-1]` to each `$N` of a statement written for sqlx, by name: SQLite
/// numbers `$N` parameters in order of first appearance, which need not be `N`.
pub(crate) fn bind_numbered<T: rusqlite::ToSql>(st: &mut rusqlite::Statement<'_>, args: &[T]) -> rusqlite::Result<()> {
    for i in 1..=st.parameter_count() {
        let arg = st
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| args.get(n.wrapping_sub(1)))
            .ok_or(rusqlite::Error::InvalidParameterCount(i, args.len()))?;
        st.raw_bind_parameter(i, arg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_that_panicked_serves_the_next_caller() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x);")
            .unwrap();
        let readers = InlineReaders::open(&path, 1, 1, None).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            readers.with(|c| -> rusqlite::Result<()> {
                let tx = c.unchecked_transaction()?;
                tx.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?;
                panic!("mid-read");
            })
        }));
        assert!(panicked.is_err());
        let n: i64 = readers.with(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))).unwrap();
        assert_eq!(n, 0, "the one connection, poisoned, still reads (its transaction was rolled back)");
        // And it can begin a transaction again: none was left open.
        readers.with(|c| c.unchecked_transaction().map(|_| ())).unwrap();
    }

    #[test]
    fn a_read_transaction_ends_whatever_its_work_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);").unwrap();
        let readers = InlineReaders::open(&path, 1, 1, None).unwrap();
        let count = |c: &Connection| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0));
        // One snapshot: a write committed between two reads of one transaction is not seen.
        let (a, b) = readers
            .with(|c| {
                read_transaction(c, |c| {
                    let a = count(c)?;
                    writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
                    Ok((a, count(c)?))
                })
            })
            .unwrap();
        assert_eq!((a, b), (1, 1));
        // A failed read and a panicking one both leave no transaction open.
        let failed =
            readers.with(|c| read_transaction(c, |c| c.query_row("SELECT nope FROM t", [], |r| r.get::<_, i64>(0))));
        assert!(failed.is_err());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            readers.with(|c| read_transaction(c, |_| -> rusqlite::Result<()> { panic!("mid-read") }))
        }));
        assert!(panicked.is_err());
        assert!(readers.with(|c| Ok(c.is_autocommit())).unwrap(), "no transaction left open");
        assert_eq!(readers.with(|c| read_transaction(c, count)).unwrap(), 2, "the next transaction sees the new row");
    }
}
