//! Point reads on SQLite that run on the calling thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and hands every
//! statement (and every row) across a channel, two thread switches per query.
//! For a lookup by key that costs far more than the lookup: a `GET` of a customer
//! is three indexed reads of a few microseconds each. The short, bounded reads on
//! the hot paths — one customer with its methods and custom values, and searches
//! narrowed by an exact, indexed filter — run here instead, on a small set of
//! read-only connections with cached prepared statements, synchronously on the
//! request's thread. Everything open-ended (word search, long scans) stays on the
//! sqlx pool, which never stalls the runtime.
//!
//! These connections only read, and only through [`super::Scoped`], which supplies
//! the merchant to every statement like any other read.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Read-only connections, each behind its own lock. A reader holds one only for
/// the length of a synchronous call, so with one per runtime thread (and a few
/// spare) a caller practically never waits.
pub(crate) struct InlineReaders {
    conns: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
    path: PathBuf,
}

impl InlineReaders {
    pub(crate) fn open(path: &Path, count: usize) -> rusqlite::Result<InlineReaders> {
        let conns =
            (0..count.max(1)).map(|_| open_reader(path).map(Mutex::new)).collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(InlineReaders { conns: conns.into_boxed_slice(), next: AtomicUsize::new(0), path: path.to_owned() })
    }

    /// A read-only connection of the caller's own, for a long read (an export) that
    /// must not hold one of the shared ones.
    pub(crate) fn dedicated(&self) -> rusqlite::Result<Connection> {
        open_reader(&self.path)
    }

    /// Runs `f` on a free connection (the first one not in use, from a rotating
    /// start; when every one is busy, waits for the one at the start).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, sqlx::Error> {
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
        f(&guard).map_err(driver_error)
    }
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

/// Builds a record from a row whose columns are the struct's fields in order
/// (the SELECT lists are written in field order; the API tests read every field
/// through this path on SQLite and through sqlx on PostgreSQL).
macro_rules! from_inline_row {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $ty {
            pub(crate) fn from_inline_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<$ty> {
                let mut i = 0usize;
                let mut next = || { i += 1; i - 1 };
                Ok($ty { $($field: row.get(next())?),* })
            }
        }

        impl $crate::store::query::SqliteRow for $ty {
            fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<$ty> {
                $ty::from_inline_row(row)
            }
        }
    };
}
pub(crate) use from_inline_row;

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
        let readers = InlineReaders::open(&path, 1).unwrap();
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
        let readers = InlineReaders::open(&path, 1).unwrap();
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
