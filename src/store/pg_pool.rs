//! PostgreSQL's connections for statements and transactions: a deadpool pool of
//! sqlx connections that checks a connection only when it has reason to.
//!
//! sqlx's own pool makes a round trip (a `Sync` and its `ReadyForQuery`) each
//! time it hands a connection out, and again each time one comes back, so a
//! one-statement read cost three round trips and a write transaction two more
//! than its statements. Here a connection comes back as it is when its last use
//! ran to its end, and is checked when it is next handed out only if it did
//! not (a request dropped mid-statement, a transaction left open: `ROLLBACK`
//! reads what is left of the exchange and ends the transaction) or if it has
//! been idle for [`CHECK_AFTER_IDLE`] (the server or the network may have
//! dropped it meanwhile). A connection whose check fails is replaced.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Arguments, Connection, Describe, Either, Execute, Executor, PgConnection, Postgres};

use super::query::Args;

/// A connection idle for longer than this is checked with a round trip before
/// it is handed out, so that one the server or the network dropped while the
/// service was quiet is replaced instead of failing a request's statement.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// How long opening or checking one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One pooled connection and what the pool knows of its state.
pub(crate) struct PgConn {
    raw: PgConnection,
    /// Its last use ran to its end (the server waits for the next statement).
    settled: bool,
    /// A transaction was begun on it and has not ended.
    in_transaction: bool,
    /// When it last settled.
    since: Instant,
}

impl PgConn {
    fn settle(&mut self) {
        self.settled = true;
        self.since = Instant::now();
    }

    /// Runs `work` on the connection, which is settled again only if the work
    /// ran to its end.
    async fn exchange<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        self.settled = false;
        let out = work(&mut self.raw).await?;
        self.settle();
        Ok(out)
    }

    /// Ends its transaction with `sql` (`COMMIT` or `ROLLBACK`). On an error the
    /// transaction is over or the connection is lost; either way it stays marked
    /// as in a transaction, so its next use rolls back or replaces it.
    async fn end_transaction(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        self.exchange(async |c| c.execute(sql).await.map(drop)).await?;
        self.in_transaction = false;
        Ok(())
    }
}

pub(crate) struct Manager {
    options: PgConnectOptions,
}

impl managed::Manager for Manager {
    type Type = PgConn;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PgConn, sqlx::Error> {
        let raw = PgConnection::connect_with(&self.options).await?;
        Ok(PgConn { raw, settled: true, in_transaction: false, since: Instant::now() })
    }

    async fn recycle(&self, c: &mut PgConn, _: &Metrics) -> RecycleResult<sqlx::Error> {
        if c.in_transaction {
            c.end_transaction("ROLLBACK").await.map_err(RecycleError::Backend)?;
        } else if !c.settled || c.since.elapsed() >= CHECK_AFTER_IDLE {
            c.raw.ping().await.map_err(RecycleError::Backend)?;
            c.settle();
        }
        Ok(())
    }
}

type Object = managed::Object<Manager>;

/// The pool: cheap to clone, one per database.
#[derive(Clone)]
pub struct PgConns(managed::Pool<Manager>);

impl fmt::Debug for PgConns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConns").field("status", &self.0.status()).finish()
    }
}

impl PgConns {
    /// A pool of up to `max` connections made with `options`, opened as they
    /// are needed; each request for one waits at most `wait`.
    pub(crate) fn new(options: PgConnectOptions, max: usize, wait: Duration) -> Result<PgConns, sqlx::Error> {
        let pool = managed::Pool::builder(Manager { options })
            .max_size(max.max(1))
            .wait_timeout(Some(wait))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| sqlx::Error::Configuration(Box::new(e)))?;
        Ok(PgConns(pool))
    }

    /// [`PgConns::new`], with one connection opened now, so that a wrong URL or
    /// password is reported at start.
    pub(crate) async fn connect(options: PgConnectOptions, max: usize, wait: Duration) -> Result<PgConns, sqlx::Error> {
        let pool = PgConns::new(options, max, wait)?;
        pool.get().await?.settle();
        Ok(pool)
    }

    /// A connection, checked if it needs it; back to the pool when dropped.
    async fn get(&self) -> Result<Object, sqlx::Error> {
        let mut c = self.0.get().await.map_err(|e| match e {
            managed::PoolError::Backend(e) => e,
            managed::PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            managed::PoolError::Closed => sqlx::Error::PoolClosed,
            other => sqlx::Error::Io(std::io::Error::other(other.to_string())),
        })?;
        c.settled = false;
        Ok(c)
    }

    /// Runs `work` on a connection, which goes back settled if the work ran to
    /// its end.
    async fn on_one<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        self.get().await?.exchange(work).await
    }

    /// A connection held for a test's session settings and prepared
    /// statements; closed when dropped, so no other use inherits them.
    #[cfg(test)]
    pub(crate) async fn acquire(&self) -> Result<Box<PgConnection>, sqlx::Error> {
        Ok(Box::new(Object::take(self.get().await?).raw))
    }

    /// A transaction; rolled back if dropped before [`PgTx::commit`].
    pub(crate) async fn begin(&self) -> Result<PgTx, sqlx::Error> {
        PgTx::begin_on(self.get().await?).await
    }

    /// A write transaction that begins only when it first needs to
    /// ([`PgWrite`]).
    pub(crate) async fn write(&self) -> Result<PgWrite, sqlx::Error> {
        let mut c = self.get().await?;
        c.settle();
        Ok(PgWrite { state: WriteState::NotBegun(Some(c)), later: Later::default() })
    }

    /// Sets the pool's gauges: connections in use and idle, the most it may
    /// open, and the requests waiting for one.
    pub(crate) fn record_gauges(&self, name: &'static str) {
        let s = self.0.status();
        super::connection_gauges(name, s.size, s.available, s.max_size);
        metrics::gauge!("clientele_db_connections_waiting", "pool" => name).set(s.waiting as f64);
    }

    pub(crate) fn close(&self) {
        self.0.close();
    }
}

/// A transaction on a pooled connection: its statements run on `&mut **tx`.
/// Dropped before it ends, it is rolled back at once, so its locks are not
/// held while the connection waits in the pool.
pub(crate) struct PgTx(Option<Object>);

impl PgTx {
    /// Begins a transaction on `c`.
    async fn begin_on(mut c: Object) -> Result<PgTx, sqlx::Error> {
        c.in_transaction = true;
        c.exchange(async |raw| raw.execute("BEGIN").await.map(drop)).await?;
        Ok(PgTx(Some(c)))
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await
    }

    async fn end(mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        let Some(mut c) = self.0.take() else { return Err(sqlx::Error::PoolClosed) };
        c.end_transaction(sql).await
    }

    fn conn(&self) -> &Object {
        self.0.as_ref().expect("a transaction holds its connection until it ends")
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        let Some(mut c) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { c.end_transaction("ROLLBACK").await });
            }
            // No runtime to roll back on: closing the connection rolls it back.
            Err(_) => drop(Object::take(c)),
        }
    }
}

impl Deref for PgTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn().raw
    }
}

impl DerefMut for PgTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.0.as_mut().expect("a transaction holds its connection until it ends").raw
    }
}

/// The most values PostgreSQL takes for one statement.
const MAX_PARAMS: usize = u16::MAX as usize;
/// The most statements held for one: a bulk write's many inserts are sent in
/// statements that PostgreSQL plans quickly.
const MAX_HELD: usize = 64;
/// Combined statements of at most this many parts (a request's few shapes) are
/// prepared and kept on the connection; larger ones (a bulk write's, of many
/// shapes) are run unprepared, so they do not fill the connection's cache.
const KEEP_PREPARED: usize = 8;

/// A write transaction whose inserts are sent with its next statement or its
/// commit, all in one statement, and which sends `BEGIN` only before a
/// statement whose answer it needs. A write made only of such inserts (a
/// customer and its event) is then one round trip and one statement, which
/// PostgreSQL commits as a whole, instead of `BEGIN`, each insert and `COMMIT`.
/// Dropped before it commits, its held statements are never sent and a begun
/// transaction is rolled back as [`PgTx`]'s is.
pub(crate) struct PgWrite {
    state: WriteState,
    later: Later,
}

enum WriteState {
    /// Nothing sent yet (`None` only while beginning).
    NotBegun(Option<Object>),
    Begun(PgTx),
}

/// Statements held for later, numbered as one: their text (each with its
/// placeholders renumbered after the ones before) and their values.
#[derive(Default)]
struct Later {
    statements: Vec<String>,
    args: PgArguments,
    /// A statement's values could not be encoded: the transaction cannot
    /// commit without it.
    broken: bool,
}

impl Later {
    /// Sends them all on `c`, if any, as one statement: every one but the last
    /// as a data-modifying `WITH` item, which PostgreSQL runs to completion
    /// whether or not the rest of the statement reads it.
    async fn send(&mut self, c: &mut PgConnection) -> Result<(), sqlx::Error> {
        use std::fmt::Write;
        if self.broken {
            return Err(sqlx::Error::Protocol("a held statement's values could not be encoded".into()));
        }
        let Some((last, rest)) = self.statements.split_last() else { return Ok(()) };
        let mut sql = String::with_capacity(self.statements.iter().map(|s| s.len() + 16).sum());
        for (i, s) in rest.iter().enumerate() {
            let _ = write!(sql, "{} w{i} AS ({s})", if i == 0 { "WITH" } else { "," });
        }
        if !rest.is_empty() {
            sql.push(' ');
        }
        sql.push_str(last);
        let keep = self.statements.len() <= KEEP_PREPARED;
        self.statements.clear();
        sqlx::query_with(&sql, std::mem::take(&mut self.args)).persistent(keep).execute(c).await?;
        Ok(())
    }
}

/// `sql` with each placeholder `$N` (outside quoted text) written `$(N + by)`.
fn renumbered(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quoted = false;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        match c {
            '\'' => quoted = !quoted,
            '$' if !quoted => {
                let mut n = 0_usize;
                let mut digits = false;
                while let Some(&(_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                    n = n * 10 + d.to_digit(10).unwrap_or(0) as usize;
                    digits = true;
                    chars.next();
                }
                if digits {
                    out.push_str(&(n + by).to_string());
                }
            }
            _ => {}
        }
    }
    out
}

impl PgWrite {
    /// Holds an insert or update whose only answer is success to be sent with
    /// the next statement, its values (`args`, in `$N` order) encoded now. Its
    /// failure is then that statement's, or the commit's. The held statements
    /// run as one, on one snapshot: none may write a row another of them writes.
    pub(crate) async fn later<'a>(&mut self, sql: &str, args: &'a Args<'a>) -> Result<(), sqlx::Error> {
        debug_assert!(!sql.trim_start().to_ascii_uppercase().starts_with("WITH"), "a held statement has no WITH");
        if self.later.args.len() + args.len() > MAX_PARAMS || self.later.statements.len() >= MAX_HELD {
            self.conn().await?;
        }
        let by = self.later.args.len();
        self.later.statements.push(if by == 0 { sql.to_owned() } else { renumbered(sql, by) });
        let bound = args.iter().try_for_each(|a| a.add_pg(&mut self.later.args));
        self.later.broken |= bound.is_err();
        bound
    }

    /// The transaction's connection, for a statement whose answer is needed:
    /// `BEGIN` is sent if it has not been, then the held statements.
    pub(crate) async fn conn(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if let WriteState::NotBegun(c) = &mut self.state {
            let Some(c) = c.take() else { return Err(sqlx::Error::PoolClosed) };
            self.state = WriteState::Begun(PgTx::begin_on(c).await?);
        }
        let WriteState::Begun(tx) = &mut self.state else { return Err(sqlx::Error::PoolClosed) };
        self.later.send(tx).await?;
        Ok(&mut **tx)
    }

    /// Commits: a transaction never begun sends its held statements as one
    /// statement of their own (or nothing at all).
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let later = &mut self.later;
        match std::mem::replace(&mut self.state, WriteState::NotBegun(None)) {
            WriteState::NotBegun(Some(mut c)) => c.exchange(async |raw| later.send(raw).await).await,
            WriteState::NotBegun(None) => Err(sqlx::Error::PoolClosed),
            WriteState::Begun(mut tx) => {
                later.send(&mut tx).await?;
                tx.commit().await
            }
        }
    }
}

/// One statement on a connection of the pool, like `&PgPool`: the rows are
/// read whole before the connection goes back (every read the service makes
/// through it is bounded; exports stream from a pool of their own).
impl<'c> Executor<'c> for &'_ PgConns {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        let all = async move { pool.on_one(async |c| c.fetch_many(query).try_collect::<Vec<_>>().await).await };
        stream::once(all)
            .map(|r| match r {
                Ok(rows) => stream::iter(rows.into_iter().map(Ok)).left_stream(),
                Err(e) => stream::once(async { Err(e) }).right_stream(),
            })
            .flatten()
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        Box::pin(async move { pool.on_one(async |c| c.fetch_optional(query).await).await })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        let pool = self.clone();
        Box::pin(async move { pool.on_one(async |c| c.prepare_with(sql, parameters).await).await })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        let pool = self.clone();
        Box::pin(async move { pool.on_one(async |c| c.describe(sql).await).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn scratch() -> Option<(PgConns, super::super::scratch::Dropped)> {
        let (db, dropped) = super::super::scratch::postgres().await?;
        let super::super::Pools::Postgres(pool) = &db.pools else { unreachable!() };
        pool.execute("CREATE TABLE lock_probe (id INT PRIMARY KEY, n INT NOT NULL)").await.unwrap();
        pool.execute("INSERT INTO lock_probe VALUES (1, 0)").await.unwrap();
        // One connection, so every use below gets the one the previous use left.
        let one = PgConns::connect(pool.0.manager().options.clone(), 1, Duration::from_secs(5)).await.unwrap();
        Some((one, dropped))
    }

    #[tokio::test]
    async fn a_transaction_dropped_unfinished_lets_go_of_its_locks_at_once() {
        let Some((pool, _dropped)) = scratch().await else { return };
        let other = PgConns::connect(pool.0.manager().options.clone(), 1, Duration::from_secs(5)).await.unwrap();
        {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SELECT n FROM lock_probe WHERE id = 1 FOR UPDATE").execute(&mut *tx).await.unwrap();
        }
        // Another connection's write of the row does not wait for the pool's next use.
        let write = async {
            let mut tx = other.begin().await?;
            sqlx::query("UPDATE lock_probe SET n = n + 1 WHERE id = 1").execute(&mut *tx).await?;
            tx.commit().await
        };
        tokio::time::timeout(Duration::from_secs(5), write).await.expect("the lock was let go").unwrap();
        let n: i32 = sqlx::query_scalar("SELECT n FROM lock_probe WHERE id = 1").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn a_statement_dropped_mid_way_leaves_the_connection_usable() {
        let Some((pool, _dropped)) = scratch().await else { return };
        for _ in 0..3 {
            let slow = sqlx::query("SELECT pg_sleep(0.3)").execute(&pool);
            assert!(tokio::time::timeout(Duration::from_millis(50), slow).await.is_err());
            let n: i32 =
                sqlx::query_scalar("SELECT n + 41 FROM lock_probe WHERE id = 1").fetch_one(&pool).await.unwrap();
            assert_eq!(n, 41);
        }
        // A transaction dropped after an error: its connection serves the next use.
        {
            let mut tx = pool.begin().await.unwrap();
            assert!(sqlx::query("SELECT 1 / 0").execute(&mut *tx).await.is_err());
        }
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("UPDATE lock_probe SET n = 7 WHERE id = 1").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        let n: i32 = sqlx::query_scalar("SELECT n FROM lock_probe WHERE id = 1").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 7);
        assert_eq!(pool.0.status().size, 1, "the same connection throughout");
    }

    #[test]
    fn placeholders_are_renumbered_outside_quoted_text() {
        assert_eq!(renumbered("VALUES ($1, '$2 it''s', $10, $)", 5), "VALUES ($6, '$2 it''s', $15, $)");
    }

    /// Rows of `held` (created empty), as another connection sees them.
    async fn held_rows(other: &PgConns) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM held").fetch_one(other).await.unwrap()
    }

    async fn hold_two(w: &mut PgWrite, from: i32) {
        let sql = "INSERT INTO held (id, note) VALUES ($1, '$1 as typed'), ($2, $3)";
        w.later(sql, &[&from, &(from + 1), &"bound"]).await.unwrap();
    }

    #[tokio::test]
    async fn held_inserts_are_sent_with_the_commit_in_one_statement() {
        let Some((pool, _dropped)) = scratch().await else { return };
        pool.execute("CREATE TABLE held (id INT PRIMARY KEY, note TEXT NOT NULL)").await.unwrap();
        let other = PgConns::connect(pool.0.manager().options.clone(), 1, Duration::from_secs(5)).await.unwrap();
        let mut w = pool.write().await.unwrap();
        for from in [1, 3, 5] {
            hold_two(&mut w, from).await;
        }
        // Nothing sent yet: no rows, and no transaction open on the server.
        assert_eq!(held_rows(&other).await, 0);
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE '%transaction%'",
        )
        .fetch_one(&other)
        .await
        .unwrap();
        assert_eq!(open, 0, "BEGIN waits for a statement that needs it");
        w.commit().await.unwrap();
        let notes: Vec<String> =
            sqlx::query_scalar("SELECT note FROM held ORDER BY id").fetch_all(&other).await.unwrap();
        assert_eq!(notes, ["$1 as typed", "bound", "$1 as typed", "bound", "$1 as typed", "bound"]);

        // Dropped before its commit: nothing of it is written.
        let mut w = pool.write().await.unwrap();
        hold_two(&mut w, 10).await;
        drop(w);
        // A read in the transaction sees what it holds; dropped, all is rolled back.
        let mut w = pool.write().await.unwrap();
        hold_two(&mut w, 20).await;
        let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM held WHERE id >= 20")
            .fetch_one(w.conn().await.unwrap())
            .await
            .unwrap();
        assert_eq!(mine, 2);
        drop(w);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(held_rows(&other).await, 6);

        // More values than one statement takes: sent in as many as needed.
        let mut w = pool.write().await.unwrap();
        let per = 1_000;
        let sql = format!("INSERT INTO held (id, note) VALUES {}", placeholders_pairs(per));
        for batch in 0..100 {
            let ids: Vec<i32> = (0..per as i32).map(|i| 1_000 + batch * per as i32 + i).collect();
            let args: Vec<&dyn crate::store::query::Param<'_>> =
                ids.iter().flat_map(|id| [id as &dyn crate::store::query::Param<'_>, &"many"]).collect();
            w.later(&sql, &args).await.unwrap();
        }
        // And more statements than one holds.
        for id in 0..150 {
            let sql = "INSERT INTO held (id, note) VALUES ($1, 'one')";
            w.later(sql, &[&(200_000 + id)]).await.unwrap();
        }
        w.commit().await.unwrap();
        assert_eq!(held_rows(&other).await, 6 + 100_150);

        // A held insert refused at the commit: the commit fails, nothing of it
        // stays, and the pool's one connection serves the next write.
        let mut w = pool.write().await.unwrap();
        hold_two(&mut w, 30).await;
        hold_two(&mut w, 31).await;
        let e = w.commit().await.unwrap_err();
        assert!(crate::store::is_unique_violation(&e), "{e}");
        assert_eq!(held_rows(&other).await, 6 + 100_150);
        let mut w = pool.write().await.unwrap();
        hold_two(&mut w, 40).await;
        w.commit().await.unwrap();
        assert_eq!(held_rows(&other).await, 6 + 100_152);
    }

    fn placeholders_pairs(n: usize) -> String {
        (0..n).map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2)).collect::<Vec<_>>().join(", ")
    }
}
