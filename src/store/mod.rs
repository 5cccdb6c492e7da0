//! Persistence on SQLite or PostgreSQL.
//!
//! Queries are written once: SQL uses `$N` placeholders and portable column types
//! (UUID/BLOB ids, BIGINT milliseconds, TEXT). Reads expand each body once per
//! backend with a concrete sqlx pool ([`on_conn!`]); writes go through
//! [`WriteTx`]'s statements ([`query`]), which run on PostgreSQL through sqlx and
//! on SQLite on the group writer's own connection. Only search differs per backend.
//!
//! Tenant isolation lives here: reads go through [`Scoped`] and writes through
//! [`WriteTx`], both of which carry the authenticated merchant and hand it to
//! every query; there is no API that reads or writes a merchant's data without one.

pub mod backup;
pub mod credit;
pub mod custom;
pub mod customers;
mod dialect;
pub mod events;
mod group;
pub mod idempotency;
mod inline;
pub mod keys;
pub mod merchants;
mod migrations;
pub mod outbox;
pub mod payment_methods;
mod pg_pool;
pub mod portal;
pub mod providers;
pub(crate) mod query;
#[cfg(test)]
pub(crate) mod scratch;
mod search_index;
pub mod transactions;
pub mod verification;
pub mod webhooks;

use crate::domain::event::EventType;
use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Context;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use uuid::Uuid;

pub use pg_pool::PgConns;

/// A merchant id that came from an authenticated API key (or the operator's CLI).
/// Every store call takes one; handlers cannot make one up from request data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant(Uuid);

impl Tenant {
    /// Only authentication and the operator's command line mint tenants.
    pub(crate) fn trusted(id: Uuid) -> Tenant {
        Tenant(id)
    }

    pub fn id(&self) -> Uuid {
        self.0
    }
}

/// Who is writing: the tenant plus what the audit trail records.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant: Tenant,
    pub api_key_id: Option<Uuid>,
    /// The portal user making the change (`api_key_id` is then none).
    pub user_id: Option<Uuid>,
    pub correlation_id: String,
    /// The idempotency key this request claimed, completed in the same transaction as the work.
    pub idempotency: Option<idempotency::Claim>,
}

impl Actor {
    /// Work done for a tenant by the service or its operator, not by a key or a user.
    pub fn system(tenant: Tenant) -> Actor {
        Actor { tenant, api_key_id: None, user_id: None, correlation_id: String::new(), idempotency: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
enum Pools {
    /// Many readers, one writer: SQLite admits one writer at a time anyway, and
    /// queueing in the pool avoids `SQLITE_BUSY` on lock upgrades.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        group: group::GroupWriter,
        /// The database file.
        path: std::path::PathBuf,
        /// The same file for short reads on the caller's thread ([`inline`]).
        inline: std::sync::Arc<inline::InlineReaders>,
        /// Held while the database is open: no restore replaces the file meanwhile.
        _serving: std::sync::Arc<backup::ServingLock>,
    },
    Postgres(PgConns),
}

/// PostgreSQL's connections for exports, opened when first needed.
#[derive(Clone)]
struct ExportPool(PgConns);

#[derive(Clone)]
pub struct Db {
    pools: Pools,
    export_pool: Option<ExportPool>,
    /// PostgreSQL: how to connect without the service's statement timeout (the
    /// migrations, which may build an index over millions of rows).
    pg_admin: Option<PgConnectOptions>,
    /// Told after every write this process commits (the webhook task waits on it).
    committed: Arc<tokio::sync::Notify>,
    /// Merchants' custom parameter declarations, read once a second at most.
    declarations: custom::DeclarationCache,
}

/// A pool of one backend, borrowed.
pub enum Conn<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgConns),
}

/// Expands `$body` once per backend with `$p` bound to the concrete pool.
macro_rules! on_conn {
    ($conn:expr, $p:ident => $body:expr) => {
        match $conn {
            $crate::store::Conn::Sqlite($p) => $body,
            $crate::store::Conn::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_conn;

/// The settings of every SQLite connection that writes: the sqlx pool's (migrations
/// and the writes outside the group writer) and the group writer's own
/// ([`group`]), which adds its own checkpointing. Each sets its page cache itself
/// ([`WRITER_CACHE_KIB`], [`DbOptions::writer_cache_kib`]).
pub(crate) const SQLITE_WRITE_PRAGMAS: [(&str, &str); 5] = [
    ("journal_mode", "WAL"),
    // FULL: a commit is on disk (WAL fsynced) before we answer 200.
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    // Deleted rows (ciphertext included) are overwritten, not left in free pages.
    ("secure_delete", "ON"),
    ("temp_store", "MEMORY"),
];

pub struct DbOptions {
    pub max_connections: u32,
    /// How long one read (SQLite: and one statement of the read pool; PostgreSQL:
    /// one statement) may run before it is interrupted; `None` for no limit (the
    /// operator's command line).
    pub query_timeout: Option<Duration>,
    /// PostgreSQL: connections of the export pool (an export holds one while its
    /// client reads), apart from the pool every other request uses.
    pub exports: u32,
    /// SQLite: the page cache of the connection that writes (KiB). A service keeps
    /// it small; a bulk import holds the index pages its batches touch in it, which
    /// SQLite would otherwise evict, read back and spill to the WAL mid-batch.
    pub writer_cache_kib: u32,
}

/// A service's page cache for a connection that writes (KiB): bounded whatever the
/// database's size.
pub const WRITER_CACHE_KIB: u32 = 16_000;

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions { max_connections: 16, writer_cache_kib: WRITER_CACHE_KIB, query_timeout: None, exports: 2 }
    }
}

/// sqlx's level for a statement slower than a second: debug, not its default
/// warning, which printed the whole statement (a bulk insert's 2,304 placeholders,
/// a migration's rewrite of every row). A slow request is logged by the service
/// with its route and latency; statement budgets end the slowest with an error.
const SLOW_STATEMENT_LOG: log::LevelFilter = log::LevelFilter::Debug;

/// Sets one pool's connection gauges: in use and idle of `size` open, and the
/// most it may open.
fn connection_gauges(name: &'static str, size: usize, idle: usize, max: usize) {
    let idle = idle.min(size);
    metrics::gauge!("clientele_db_connections", "pool" => name, "state" => "in_use").set((size - idle) as f64);
    metrics::gauge!("clientele_db_connections", "pool" => name, "state" => "idle").set(idle as f64);
    metrics::gauge!("clientele_db_connections_max", "pool" => name).set(max as f64);
}

impl Db {
    /// Opens the database named by `url`, creating a SQLite file (and its folder) when missing.
    pub async fn connect(url: &str, opts: &DbOptions) -> anyhow::Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let admin = PgConnectOptions::from_str(url)
                .context("parsing the PostgreSQL URL")?
                .log_slow_statements(SLOW_STATEMENT_LOG, Duration::from_secs(1));
            let mut connect = admin.clone();
            if let Some(t) = opts.query_timeout {
                // Every statement of the service's connections, reads and writes, and any
                // transaction left idle (a stalled export's, say), end in time.
                let ms = t.as_millis().to_string();
                let idle = (t.as_millis().max(1) * 10).to_string();
                connect = connect.options([
                    ("statement_timeout", ms.as_str()),
                    ("idle_in_transaction_session_timeout", idle.as_str()),
                ]);
            }
            let pool = PgConns::connect(connect.clone(), opts.max_connections as usize, Duration::from_secs(5))
                .await
                .context("connecting to PostgreSQL")?;
            let exports = PgConns::new(connect, opts.exports.max(1) as usize, Duration::from_secs(5))?;
            Ok(Db {
                pools: Pools::Postgres(pool),
                export_pool: Some(ExportPool(exports)),
                pg_admin: Some(admin),
                committed: Arc::default(),
                declarations: Default::default(),
            })
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .context("parsing the SQLite URL")?
                .create_if_missing(true)
                .busy_timeout(Duration::from_secs(5))
                .log_slow_statements(SLOW_STATEMENT_LOG, Duration::from_secs(1));
            let connect = SQLITE_WRITE_PRAGMAS
                .iter()
                .fold(options, |o, (name, value)| o.pragma(*name, *value))
                // The group writer keeps `opts.writer_cache_kib` (see `group::open_writer`).
                .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
                // Checkpoint every ~40 MiB of WAL rather than 4: a page written by many
                // commits in between is copied back once.
                .pragma("wal_autocheckpoint", "10000");
            // The inline readers open the database by its file name; a memory
            // database has none they could share.
            if url.contains(":memory:") || url.contains("mode=memory") {
                anyhow::bail!(
                    "an in-memory SQLite database cannot be shared by the service's connections; use sqlite://PATH"
                );
            }
            let path = Path::new(connect.get_filename()).to_owned();
            backup::private_database(&path)?;
            let serving = std::sync::Arc::new(backup::ServingLock::take(&path)?);
            // A local file cannot drop a connection: no ping before each use.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(connect.clone())
                .await
                .context("opening the SQLite database")?;
            // Readers keep 4 MiB of pages each (the OS caches the file too), which
            // bounds the pool's memory whatever the database's size. Point reads run
            // inline ([`inline`]); this pool serves word searches and scans, and more
            // of those at once than the cores could run would only share the cores.
            let mut read = SqlitePoolOptions::new();
            if let Some(budget) = opts.query_timeout {
                // Each use of a pooled reader gets the budget anew: a reader is acquired
                // for one query (or one read transaction) at a time.
                read = read
                    .after_connect(move |c, _| Box::pin(async move { sqlite_budget(c, budget).await }))
                    .before_acquire(move |c, _| Box::pin(async move { sqlite_budget(c, budget).await.map(|()| true) }));
            }
            let read = read
                .max_connections(opts.max_connections.clamp(2, 8))
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(connect.clone().read_only(true).pragma("cache_size", "-4000"))
                .await
                .context("opening the SQLite database for reading")?;
            let group = group::GroupWriter::start(&path, opts.writer_cache_kib)
                .context("opening the SQLite database for the writer")?;
            // One per runtime thread and one per read thread: a holder never awaits,
            // so callers practically never queue for one.
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            let inline = inline::InlineReaders::open(&path, 2 * threads, threads, opts.query_timeout)
                .context("opening the SQLite database for inline reads")?;
            Ok(Db {
                pools: Pools::Sqlite {
                    read,
                    write,
                    group,
                    path,
                    inline: std::sync::Arc::new(inline),
                    _serving: serving,
                },
                export_pool: None,
                pg_admin: None,
                committed: Arc::default(),
                declarations: Default::default(),
            })
        } else {
            anyhow::bail!("unsupported database URL (use sqlite://PATH or postgres://...)")
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations of this backend, and builds what they leave
    /// to the code (SQLite's contacts search index).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pools {
            Pools::Sqlite { write, path, .. } => {
                migrations::of(Backend::Sqlite).run(write).await?;
                search_index::build_if_pending(path, write).await?;
            }
            Pools::Postgres(_) => {
                use sqlx::Connection;
                let Some(admin) = &self.pg_admin else { anyhow::bail!("no PostgreSQL connection to migrate with") };
                let mut c = sqlx::PgConnection::connect_with(admin).await?;
                migrations::of(Backend::Postgres).run(&mut c).await?;
                c.close().await?;
            }
        }
        Ok(())
    }

    pub(crate) fn reader(&self) -> Conn<'_> {
        match &self.pools {
            Pools::Sqlite { read, .. } => Conn::Sqlite(read),
            Pools::Postgres(p) => Conn::Postgres(p),
        }
    }

    /// Sets the gauges a scrape of `/metrics` reads: this node's connections by
    /// pool, and the delivery backlogs (every node's: they live in the database).
    pub async fn record_gauges(&self) {
        fn pool<DB: sqlx::Database>(name: &'static str, p: &sqlx::Pool<DB>) {
            connection_gauges(name, p.size() as usize, p.num_idle(), p.options().get_max_connections() as usize);
        }
        match &self.pools {
            Pools::Sqlite { read, write, group, .. } => {
                pool("read", read);
                pool("write", write);
                metrics::gauge!("clientele_db_writes_waiting").set(group.queued() as f64);
            }
            Pools::Postgres(p) => p.record_gauges("main"),
        }
        if let Some(ExportPool(e)) = &self.export_pool {
            e.record_gauges("export");
        }
        let backlog = |sql: &'static str| async move {
            let n: Result<(i64,), sqlx::Error> = on_conn!(self.reader(), p => sqlx::query_as(sql).fetch_one(p).await);
            n.map(|(n,)| n as f64)
        };
        let pending = "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'";
        if let Ok(n) = backlog(pending).await {
            metrics::gauge!("clientele_webhook_deliveries_pending").set(n);
        }
        if let Ok(n) = backlog("SELECT COUNT(*) FROM notification_outbox WHERE status = 'pending'").await {
            metrics::gauge!("clientele_notifications_pending").set(n);
        }
    }

    /// Readers that run on the caller's thread (SQLite only).
    pub(crate) fn inline(&self) -> Option<&std::sync::Arc<inline::InlineReaders>> {
        match &self.pools {
            Pools::Sqlite { inline, .. } => Some(inline),
            Pools::Postgres(_) => None,
        }
    }

    pub(crate) fn writer(&self) -> Conn<'_> {
        match &self.pools {
            Pools::Sqlite { write, .. } => Conn::Sqlite(write),
            Pools::Postgres(p) => Conn::Postgres(p),
        }
    }

    /// Reads on behalf of one merchant.
    pub fn scoped(&self, tenant: Tenant) -> Scoped<'_> {
        Scoped { db: self, tenant }
    }

    /// Runs one unit of work in a write transaction on behalf of `actor`; events and
    /// the idempotent reply are written in the same transaction. Returns once the
    /// work is durable (or failed).
    ///
    /// The work never runs on the caller's task, so a client that disconnects cannot
    /// cancel it halfway: every transaction begun here ends in a commit or a rollback
    /// on the task that began it (a future dropped mid-`BEGIN` can otherwise leave a
    /// pooled connection inside a transaction nobody owns). On SQLite it runs on the
    /// group-commit writer ([`group`]), which shares one disk flush among concurrent
    /// writes; on PostgreSQL in a task and transaction of its own.
    pub async fn write<T, E, F, Fut>(&self, actor: Actor, work: F) -> Result<T, E>
    where
        F: FnOnce(WriteTx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<sqlx::Error> + From<WriteAborted> + Send + 'static,
    {
        self.write_as(actor, false, work).await
    }

    /// [`Db::write`] for a large unit of work (thousands of rows): on SQLite it gets
    /// a transaction of its own rather than a share of a group commit.
    pub async fn write_bulk<T, E, F, Fut>(&self, actor: Actor, work: F) -> Result<T, E>
    where
        F: FnOnce(WriteTx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<sqlx::Error> + From<WriteAborted> + Send + 'static,
    {
        self.write_as(actor, true, work).await
    }

    async fn write_as<T, E, F, Fut>(&self, actor: Actor, alone: bool, work: F) -> Result<T, E>
    where
        F: FnOnce(WriteTx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<sqlx::Error> + From<WriteAborted> + Send + 'static,
    {
        let result = match &self.pools {
            Pools::Sqlite { group, .. } => group.write(actor, alone, work).await,
            Pools::Postgres(p) => {
                let pool = p.clone();
                let task = tokio::spawn(async move {
                    let inner = TxInner::Postgres(pool.write().await?);
                    work(WriteTx::new(inner, actor, now_ms())).await
                });
                match task.await {
                    Ok(result) => result,
                    Err(e) => Err(E::from(WriteAborted::failed(e.to_string()))),
                }
            }
        };
        if result.is_ok() {
            self.committed.notify_one();
        }
        result
    }

    /// Notified after each write this process commits.
    pub(crate) fn writes_committed(&self) -> Arc<tokio::sync::Notify> {
        self.committed.clone()
    }

    /// After a bulk load of `written` customers. PostgreSQL plans by sampled
    /// statistics, and a table that grew by thousands of rows since they were taken
    /// (autovacuum may be off or not yet round) gets plans made for its old size —
    /// scans where an index walk belongs; its advice after bulk loads is `ANALYZE`,
    /// which samples, so it costs well under a second at millions of rows. SQLite
    /// plans by rules; there a load that wrote a good share of all customers left
    /// the search index in many segments, which every search word reads, so they are
    /// merged ([`search_index::compact`]).
    pub async fn settle_bulk_load(&self, written: u64) -> Result<(), sqlx::Error> {
        match &self.pools {
            Pools::Postgres(p) => {
                sqlx::query("ANALYZE customers, customer_custom_values, events").execute(p).await?;
            }
            Pools::Sqlite { write, .. } => {
                let (all,): (i64,) = sqlx::query_as("SELECT count(*) FROM customers").fetch_one(write).await?;
                // Merging rewrites the whole index, so a small load into a large
                // database leaves it to the automatic merges.
                if written.saturating_mul(4) >= all.max(0) as u64 {
                    search_index::compact(write).await?;
                }
            }
        }
        Ok(())
    }

    /// Readiness: the database answers, and holds this build's schema (every
    /// migration it embeds applied): a database recreated empty under a running
    /// service is not ready, though it answers.
    pub async fn ping(&self) -> Result<(), NotReady> {
        let expected = migrations::of(self.backend()).iter().count();
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let applied: Result<(i64,), sqlx::Error> = on_conn!(self.reader(), p => sqlx::query_as(sql).fetch_one(p).await);
        match applied {
            Ok((n,)) if n as usize >= expected => Ok(()),
            Ok((n,)) => Err(NotReady::Schema { applied: n, expected }),
            // No migrations table at all: an empty database.
            Err(sqlx::Error::Database(d)) if d.message().contains("_sqlx_migrations") => {
                Err(NotReady::Schema { applied: 0, expected })
            }
            Err(e) => Err(NotReady::Unreachable(e)),
        }
    }

    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { read, write, .. } => {
                read.close().await;
                write.close().await;
            }
            Pools::Postgres(p) => {
                p.close();
                if let Some(ExportPool(e)) = &self.export_pool {
                    e.close();
                }
            }
        }
    }

    /// PostgreSQL: the pool exports read through.
    pub(crate) fn export_pool(&self) -> Option<&PgConns> {
        self.export_pool.as_ref().map(|ExportPool(p)| p)
    }
}

/// Reads of one merchant's data.
pub struct Scoped<'a> {
    pub(crate) db: &'a Db,
    pub(crate) tenant: Tenant,
}

impl Scoped<'_> {
    pub(crate) fn merchant(&self) -> Uuid {
        self.tenant.id()
    }

    pub(crate) fn conn(&self) -> Conn<'_> {
        self.db.reader()
    }

    /// Readers that run on the caller's thread (SQLite only).
    pub(crate) fn inline(&self) -> Option<&std::sync::Arc<inline::InlineReaders>> {
        self.db.inline()
    }
}

pub(crate) enum TxInner {
    /// A savepoint in the group writer's batch transaction.
    Sqlite(group::Lease),
    Postgres(pg_pool::PgWrite),
}

/// One write transaction on behalf of an [`Actor`].
pub struct WriteTx {
    pub(crate) inner: TxInner,
    pub(crate) actor: Actor,
    /// The transaction's clock: every row it writes carries the same instant.
    pub now: i64,
    /// What the refusal of a statement held for later means ([`WriteTx::later`]).
    refusals: Vec<fn(sqlx::Error) -> StoreError>,
}

impl WriteTx {
    pub(crate) fn new(inner: TxInner, actor: Actor, now: i64) -> WriteTx {
        WriteTx { inner, actor, now, refusals: Vec::new() }
    }

    pub(crate) fn merchant(&self) -> Uuid {
        self.actor.tenant.id()
    }

    /// Records an audit event (ids only, never personal data) in this transaction.
    pub async fn event(&mut self, kind: EventType, entity_id: Uuid) -> Result<(), sqlx::Error> {
        self.events(kind, &[entity_id]).await
    }

    /// Records one event of `kind` per entity: on SQLite one prepared single-row
    /// statement per event (no statement journal), on PostgreSQL a few hundred
    /// rows per statement, held to go with the transaction's next statement or
    /// its commit ([`WriteTx::later`]).
    pub async fn events(&mut self, kind: EventType, entity_ids: &[Uuid]) -> Result<(), sqlx::Error> {
        let kind = kind.as_str();
        // `feed_pos` (migration 15): the feed's order, written as the dialect says.
        const INSERT: &str = "INSERT INTO events (merchant_id, id, type, entity_id, api_key_id, correlation_id, created_at, user_id, feed_pos) VALUES ";
        let pos = self.backend().feed_pos_value();
        let merchant = self.merchant();
        let (key, user, now) = (self.actor.api_key_id, self.actor.user_id, self.now);
        let corr = self.actor.correlation_id.as_str();
        match &mut self.inner {
            TxInner::Sqlite(lease) => {
                static ONE: LazyLock<String> = LazyLock::new(|| {
                    format!("{INSERT}($1, $2, $3, $4, $5, $6, $7, $8, {})", Backend::Sqlite.feed_pos_value())
                });
                for id in entity_ids {
                    query::sqlite_exec(
                        lease.conn(),
                        &ONE,
                        &[&merchant, &Uuid::now_v7(), &kind, id, &key, &corr, &now, &user],
                    )?;
                }
            }
            TxInner::Postgres(t) => {
                for chunk in entity_ids.chunks(200) {
                    let rows: Vec<String> = (0..chunk.len())
                        .map(|i| format!("($1, ${}, $2, ${}, $3, $4, $5, $6, {pos})", 7 + 2 * i, 8 + 2 * i))
                        .collect();
                    let sql = format!("{INSERT}{}", rows.join(", "));
                    let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
                    let mut args: Vec<&dyn query::Param<'_>> = Vec::with_capacity(6 + 2 * chunk.len());
                    args.extend([&merchant as &dyn query::Param<'_>, &kind, &key, &corr, &now, &user]);
                    for (id, entity) in ids.iter().zip(chunk) {
                        args.extend([id as &dyn query::Param<'_>, entity]);
                    }
                    t.later(&sql, &args).await?;
                }
            }
        }
        Ok(())
    }

    /// Says this transaction deletes secret data (card or account ciphertexts,
    /// fingerprints, sealed keys): on SQLite the WAL, which keeps the pages as
    /// they were, is emptied within about a second of the commit.
    pub(crate) fn secrets_removed(&mut self) {
        if let TxInner::Sqlite(lease) = &mut self.inner {
            lease.secrets_removed();
        }
    }

    /// Refuses to add one more to a collection a client can grow (`count_sql`
    /// counts it, given `args`) once it holds `max`: every list the service reads
    /// whole (a customer's payment methods, a merchant's declarations) stays
    /// bounded. The count walks an index of the collection's parent.
    pub(crate) async fn within_limit<'a>(
        &mut self,
        count_sql: &'a str,
        args: &'a query::Args<'a>,
        max: i64,
        code: &'static str,
        message: &'static str,
    ) -> Result<(), StoreError> {
        let (n,): (i64,) = self.fetch_one(count_sql, args).await?;
        if n >= max {
            return Err(StoreError::Conflict { code, message });
        }
        Ok(())
    }

    /// Runs one statement of this transaction; the changed row count.
    pub(crate) async fn exec<'a>(&mut self, sql: &'a str, args: &'a query::Args<'a>) -> Result<u64, sqlx::Error> {
        match &mut self.inner {
            TxInner::Sqlite(lease) => query::sqlite_exec(lease.conn(), sql, args),
            TxInner::Postgres(t) => {
                query::pg_query(sql, args).execute(t.conn().await?).await.map(|r| r.rows_affected())
            }
        }
    }

    /// Runs an insert, or an update, whose answer the transaction does not need
    /// (it reads nothing of it, not even a row count). On PostgreSQL it is held
    /// and sent with the transaction's next statement, or with its commit, in one
    /// statement with the others held ([`pg_pool::PgWrite`]): its refusal is then
    /// that statement's, or the commit's, where `refused` says what it means.
    /// Held statements run on one snapshot, so none may write a row another held
    /// statement writes (an update of a row inserted or updated since the last
    /// statement that was not held goes through [`WriteTx::exec`]).
    pub(crate) async fn later<'a>(
        &mut self,
        sql: &'a str,
        args: &'a query::Args<'a>,
        refused: fn(sqlx::Error) -> StoreError,
    ) -> Result<(), StoreError> {
        match &mut self.inner {
            TxInner::Sqlite(lease) => query::sqlite_exec(lease.conn(), sql, args).map(drop).map_err(refused),
            TxInner::Postgres(t) => {
                if !self.refusals.contains(&refused) {
                    self.refusals.push(refused);
                }
                t.later(sql, args).await?;
                Ok(())
            }
        }
    }

    /// The first row of a query of this transaction, if any.
    pub(crate) async fn fetch_optional<'a, R: query::Row>(
        &mut self,
        sql: &'a str,
        args: &'a query::Args<'a>,
    ) -> Result<Option<R>, sqlx::Error> {
        match &mut self.inner {
            TxInner::Sqlite(lease) => Ok(query::sqlite_fetch(lease.conn(), sql, args, 1)?.pop()),
            TxInner::Postgres(t) => match query::pg_query(sql, args).fetch_optional(t.conn().await?).await? {
                Some(r) => R::from_row(&r).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Every row of a query of this transaction.
    pub(crate) async fn fetch_all<'a, R: query::Row>(
        &mut self,
        sql: &'a str,
        args: &'a query::Args<'a>,
    ) -> Result<Vec<R>, sqlx::Error> {
        match &mut self.inner {
            TxInner::Sqlite(lease) => query::sqlite_fetch(lease.conn(), sql, args, usize::MAX),
            TxInner::Postgres(t) => {
                let rows = query::pg_query(sql, args).fetch_all(t.conn().await?).await?;
                rows.iter().map(R::from_row).collect()
            }
        }
    }

    /// The first row of a query of this transaction; `RowNotFound` without one.
    pub(crate) async fn fetch_one<'a, R: query::Row>(
        &mut self,
        sql: &'a str,
        args: &'a query::Args<'a>,
    ) -> Result<R, sqlx::Error> {
        self.fetch_optional(sql, args).await?.ok_or(sqlx::Error::RowNotFound)
    }

    /// Commits; when the request claimed an idempotency key, its reply is stored in
    /// the same transaction, so the work and its replay record cannot part.
    pub async fn commit_replying(mut self, status: u16, body: &[u8]) -> Result<(), StoreError> {
        if let Some(claim) = self.actor.idempotency.take() {
            idempotency::complete_in(&mut self, &claim, status, body).await?;
        }
        self.commit().await
    }

    /// Commits (on SQLite: keeps this work in the batch, which is acknowledged once
    /// durable). Work done under an `Idempotency-Key` commits only while its request
    /// still holds the key's claim ([`idempotency::check_held`]).
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if let Some(claim) = self.actor.idempotency.take() {
            idempotency::check_held(&mut self, &claim).await?;
        }
        match self.inner {
            TxInner::Sqlite(lease) => {
                lease.finish(true);
                Ok(())
            }
            TxInner::Postgres(t) => match t.commit().await {
                Ok(()) => Ok(()),
                // What a held statement's refusal means, as its writer said.
                Err(e) => Err(self.refusals.iter().fold(StoreError::Db(e), |meant, refused| match meant {
                    StoreError::Db(e) => refused(e),
                    meant => meant,
                })),
            },
        }
    }
}

/// Interrupts the statements of a pooled SQLite connection once `budget` has
/// passed from now (its progress handler, which SQLite calls every few thousand
/// instructions).
async fn sqlite_budget(c: &mut sqlx::SqliteConnection, budget: Duration) -> Result<(), sqlx::Error> {
    let deadline = std::time::Instant::now() + budget;
    c.lock_handle().await?.set_progress_handler(inline::PROGRESS_OPS, move || std::time::Instant::now() < deadline);
    Ok(())
}

/// Whether a read was stopped for running past its time budget: SQLite's
/// interrupt (inline readers and the pooled ones) or PostgreSQL's
/// `statement_timeout` (`query_canceled`).
pub fn is_query_timeout(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("57014") | Some("9")),
        sqlx::Error::AnyDriverError(inner) => inner.downcast_ref::<rusqlite::Error>().is_some_and(inline::is_interrupt),
        _ => false,
    }
}

/// Whether an error says the database cannot serve now (unreachable, gone,
/// shutting down, out of room, locked, or without our schema) rather than that
/// this request was wrong: the client gets 503 and may retry. Each dialect's codes
/// are named here: PostgreSQL's SQLSTATE classes, SQLite's primary result codes.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    // SQLite: BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB.
    const SQLITE: [i32; 9] = [5, 6, 7, 8, 10, 11, 13, 14, 26];
    let sqlite_code = |code: i32, message: &str| SQLITE.contains(&(code & 0xff)) || message.contains("no such table");
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            match code.parse::<i32>() {
                Ok(n) => sqlite_code(n, d.message()),
                // PostgreSQL: connection exceptions (08), insufficient resources (53),
                // operator intervention (57P0x, not 57014: a statement timeout),
                // system errors (58), no such database (3D000), no such table (42P01).
                Err(_) => {
                    ["08", "53", "57P", "58"].iter().any(|class| code.starts_with(class))
                        || code == "3D000"
                        || code == "42P01"
                }
            }
        }
        sqlx::Error::AnyDriverError(inner) => match inner.downcast_ref::<rusqlite::Error>() {
            Some(rusqlite::Error::SqliteFailure(f, message)) => {
                sqlite_code(f.extended_code, message.as_deref().unwrap_or_default())
            }
            _ => false,
        },
        _ => false,
    }
}

/// How many of each collection a client can grow one parent may hold (see
/// [`WriteTx::within_limit`]).
pub mod limits {
    pub const PAYMENT_METHODS_PER_CUSTOMER: i64 = 100;
    pub const PROVIDER_LINKS_PER_CUSTOMER: i64 = 50;
    pub const CREDIT_ACCOUNTS_PER_CUSTOMER: i64 = 20;
    pub const CUSTOM_PARAMETERS_PER_MERCHANT: i64 = 200;
    pub const FINANCING_PLANS_PER_MERCHANT: i64 = 100;
}

/// `$from, $from+1, …`: `n` numbered placeholders for an `IN (…)` list.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Process-wide SQLite settings, before the library's first use: no memory
/// statistics, which SQLite otherwise keeps under a global mutex taken twice per
/// allocation (on every connection's thread). Later calls change nothing.
pub fn configure_sqlite() {
    // SAFETY: `sqlite3_config` is called before `sqlite3_initialize` (else it
    // refuses with SQLITE_MISUSE and changes nothing), with the one int argument
    // SQLITE_CONFIG_MEMSTATUS takes.
    unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int);
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whether an error is a unique-constraint violation (a conflict, not a failure).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Why the database cannot serve the service.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("the database is unreachable: {0}")]
    Unreachable(sqlx::Error),
    #[error("the database does not hold this service's schema ({applied} of {expected} migrations applied)")]
    Schema { applied: i64, expected: usize },
}

/// A write that did not complete; nothing it did was committed.
#[derive(Debug, thiserror::Error)]
#[error("write aborted: {reason}")]
pub struct WriteAborted {
    pub reason: String,
    /// The database could not take it (a failed commit, a stopped writer): the
    /// client may retry; otherwise the write itself failed (a panic).
    pub unavailable: bool,
}

impl WriteAborted {
    pub fn unavailable(reason: impl Into<String>) -> WriteAborted {
        WriteAborted { reason: reason.into(), unavailable: true }
    }

    pub fn failed(reason: impl Into<String>) -> WriteAborted {
        WriteAborted { reason: reason.into(), unavailable: false }
    }
}

/// What a write can fail with besides the database itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("version mismatch (current {current})")]
    VersionMismatch { current: i64 },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Aborted(#[from] WriteAborted),
    /// The same card or bank account is already on file for this customer.
    #[error("duplicate of {existing}")]
    Duplicate { existing: Uuid },
    /// Another customer of the merchant has this `externalReference` (`None`: a
    /// writer that raced the lookup only knows the unique index refused it).
    #[error("duplicate external reference")]
    DuplicateReference { existing: Option<Uuid> },
    /// A state that forbids the change (an inactive method made default, ...).
    #[error("{message}")]
    Conflict { code: &'static str, message: &'static str },
    /// Verification is locked until this instant (ms).
    #[error("locked")]
    Locked { until: i64 },
    /// Too soon or too many: try again in `retry_after_ms`.
    #[error("{message}")]
    Throttled { code: &'static str, message: &'static str, retry_after_ms: i64 },
    /// The merchant may not do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: &'static str },
    /// A value the store refuses for what is stored (a masked secret that is not
    /// the customer's, say): a 400 on `path`.
    #[error("{message}")]
    Invalid { path: String, message: String },
    /// A secret could not be sealed or opened (wrong master key, damaged data).
    #[error("vault: {0}")]
    Crypto(String),
}

impl From<crate::crypto::DecryptError> for StoreError {
    fn from(e: crate::crypto::DecryptError) -> Self {
        StoreError::Crypto(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused_with_a_reason() {
        for url in ["sqlite::memory:", "sqlite://:memory:", "sqlite://x.db?mode=memory"] {
            let err = Db::connect(url, &DbOptions::default()).await.err().expect(url).to_string();
            assert!(err.contains("use sqlite://PATH"), "{url}: {err}");
        }
    }
}
