//! Where SQLite and PostgreSQL need different SQL for the same read or write,
//! the difference is named here, as a method of [`Backend`], and nowhere else.

use super::{Backend, TxInner, WriteTx, placeholders};

/// A statement that reads rows this transaction will change, written for both
/// backends: PostgreSQL locks the rows (`FOR UPDATE`, so a concurrent writer
/// waits); SQLite's single writer already excludes every other writer.
pub(crate) struct Locking(pub [&'static str; 2]);

/// [`Locking`] for `$sql`, with `FOR UPDATE` (or `FOR UPDATE OF $table`) added on PostgreSQL.
macro_rules! locking {
    ($sql:literal) => {
        $crate::store::dialect::Locking([$sql, concat!($sql, " FOR UPDATE")])
    };
    ($sql:literal, of $table:literal) => {
        $crate::store::dialect::Locking([$sql, concat!($sql, " FOR UPDATE OF ", $table)])
    };
}
pub(crate) use locking;

impl Backend {
    /// The form of a [`Locking`] statement for this backend.
    pub(crate) fn locking(self, sql: &Locking) -> &'static str {
        match self {
            Backend::Sqlite => sql.0[0],
            Backend::Postgres => sql.0[1],
        }
    }

    /// How many transactions one bulk import writes at once. SQLite writes one
    /// transaction at a time, so a second would only wait (holding its lines);
    /// PostgreSQL writes them side by side, and an import is bound by the
    /// index maintenance of the backend writing it, so a second uses another core.
    pub(crate) fn bulk_writes_in_flight(self) -> usize {
        match self {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        }
    }

    /// The condition an `UPDATE` that claims the rows `picked` selects (their
    /// `id`s, of one merchant) matches them by. SQLite has one writer, so the
    /// picked rows cannot be claimed by anyone else before the update: `IN`.
    /// PostgreSQL locks them as it picks them, skipping rows another node is
    /// claiming at that moment, and matches them by key through an array it
    /// computes once: planned as `IN (subquery)`, or with the picking conditions
    /// repeated for the update, it may instead walk every row those conditions
    /// match (or run the subquery again for each) whenever the table's statistics
    /// are new, as they are while a queue first fills.
    pub(crate) fn claimed(self, picked: &str) -> String {
        match self {
            Backend::Sqlite => format!("id IN ({picked})"),
            Backend::Postgres => format!("id = ANY (ARRAY({picked} FOR UPDATE SKIP LOCKED))"),
        }
    }

    /// Rows of `table` whose unique `key` (with the merchant, `$1`) is one of `n`
    /// values (`$2`…), with `columns` (of `table`, unqualified).
    ///
    /// PostgreSQL probes the `(merchant_id, key)` index once per value: a join
    /// from the list of values to a lookup of one row each (`LIMIT 1`, true of a
    /// unique key, keeps the planner from flattening it into a join it may hash
    /// against a scan of the merchant). Planned as a plain `IN` list, it
    /// may instead read every row of the merchant through another index that
    /// starts with the merchant id, whenever the statistics still describe the
    /// table as small (an import into a new database, before autovacuum has
    /// analyzed it: a 500-value lookup then took 40 ms instead of 1). SQLite's
    /// planner takes the unique index for an `IN` list of its key.
    pub(crate) fn rows_by_keys(self, columns: &str, table: &str, key: &str, n: usize) -> String {
        match self {
            Backend::Sqlite => {
                format!("SELECT {columns} FROM {table} WHERE merchant_id = $1 AND {key} IN ({})", placeholders(2, n))
            }
            Backend::Postgres => {
                let values: Vec<String> = (2..2 + n).map(|i| format!("(${i})")).collect();
                format!(
                    "SELECT {columns} FROM (VALUES {}) AS wanted (key) CROSS JOIN LATERAL \
                     (SELECT {columns} FROM {table} WHERE merchant_id = $1 AND {key} = wanted.key LIMIT 1) AS found",
                    values.join(", ")
                )
            }
        }
    }

    /// A statement that moves the entries new rows left in the search index's
    /// pending list into the index proper, giving the number of pages it moved;
    /// `None` where there is nothing to move. PostgreSQL's GIN index of search
    /// terms takes a new row's terms into a pending list, which every search
    /// reads whole, and the write that overflows the list moves it in its own
    /// transaction, its request waiting meanwhile (hundreds of milliseconds under
    /// a stream of creates). The service moves it in the background instead, often
    /// enough that writes never find it full; an inserting transaction that
    /// finds a move under way does not wait for it. SQLite's full-text index
    /// merges as it is written.
    pub(crate) fn search_index_upkeep(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("SELECT gin_clean_pending_list('customers_search_terms'::regclass)"),
        }
    }

    /// Rows a single `INSERT` writes at most: on PostgreSQL many (one round trip
    /// instead of one per row, within the 65,535 parameters of its protocol); on
    /// SQLite one per prepared statement, since there is no round trip to save and
    /// a multi-row statement needs a statement journal, which copies every page it
    /// touches.
    pub(crate) fn rows_per_insert(self, many: usize) -> usize {
        match self {
            Backend::Sqlite => 1,
            Backend::Postgres => many,
        }
    }
}

/// The change feed's order (migration 15): events are read by `(feed_pos, id)`.
impl Backend {
    /// What an event row's `feed_pos` is written as. SQLite, one writer at a
    /// time: one more than any before it, taken inside the writing transaction,
    /// so positions follow commit order. PostgreSQL: the column's default, the
    /// writing transaction's id, which [`Backend::feed_horizon`] makes safe.
    pub(crate) fn feed_pos_value(self) -> &'static str {
        match self {
            Backend::Sqlite => "(SELECT COALESCE(MAX(feed_pos), 0) + 1 FROM events)",
            Backend::Postgres => "DEFAULT",
        }
    }

    /// The condition a feed read adds so that nothing can later commit behind
    /// what it returns. SQLite: none, a committed position is never undercut.
    ///
    /// PostgreSQL: only events of transactions older than the oldest one still
    /// running in the read's snapshot, for every transaction that can still
    /// write an event has an id at least that (one that has not yet written gets
    /// a newer id). Transactions of the cluster's other databases, which write
    /// no event here, are left out of "still running" when `pg_stat_activity`
    /// shows them there: a busy neighbour must not hold this feed back. One that
    /// has ended since the snapshot is no longer shown anywhere and so still
    /// counts, which only delays, never skips. (`backend_xid` is 32-bit: compared
    /// with the low half of the 64-bit ids.) With no transaction running, the
    /// horizon is the snapshot's `xmax`, above every committed id.
    pub(crate) fn feed_horizon(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => {
                " AND feed_pos < (SELECT COALESCE(MIN(running::text::bigint), pg_snapshot_xmax(pg_current_snapshot())::text::bigint) \
                 FROM pg_snapshot_xip(pg_current_snapshot()) AS running \
                 WHERE running::text::bigint % 4294967296 NOT IN (SELECT backend_xid::text::bigint FROM pg_stat_activity \
                 WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()))"
            }
        }
    }
}

impl WriteTx {
    pub(crate) fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }
}
