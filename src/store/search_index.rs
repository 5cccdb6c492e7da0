//! SQLite's full-text index of customers for `search` words: one FTS5 table,
//! `customer_search_fts`, with two columns.
//!
//! - `names`: the folded name words; a word matches a prefix of one of them.
//! - `contacts`: "any part of an email or phone". A word that is a substring of a
//!   contact lies inside one run of ASCII letters and digits of it (`smith` in
//!   `john.smith.12@example.com`) or spans several. So the column holds every
//!   suffix of 3 characters or more of every such run (`smith`, `mith`, `ith`, …;
//!   a search word reaches contacts from 3 characters), and a word that is one
//!   run matches exactly the customers with a term it is a prefix of.
//!
//! So the usual word (`smith`: a name prefix or a contact part) is one prefix
//! query over both columns, which yields the union in one pass. It replaced two
//! indexes (name prefixes, and contact trigrams whose three-way phrase
//! intersections cost ×8 a prefix query at a million customers: 0.87 against
//! 0.11 ms for a last name, from Python on the benchmark's data), and the two
//! queries per word whose results were merged.
//!
//! A word with other characters (`smith.1`, `@mail.com`) needs every one of its
//! runs to be a prefix of a contacts term, which narrows the candidates; each
//! candidate's row is then checked for the whole word. A word reaches contacts
//! only with a run of 3 characters or more (`routes::customers::parse_search`):
//! without one, no index could narrow it, and every row would be checked.
//!
//! The terms are computed here, so the customer writes keep the index themselves,
//! in their transaction (a trigger cannot compute them); deletes stay with a
//! trigger. Keys are `search_partition << SEQ_BITS | seq`: one merchant's customers
//! are one key range, in creation order.

use std::sync::LazyLock;

use uuid::Uuid;

use super::customers::{SEQ_BITS, SEQ_MASK};

/// The `contacts` column's terms for one customer's `search_contacts`: the
/// suffixes of 3 characters or more (a contacts query is a prefix of at least 3,
/// see [`WordMatch::of`], so a shorter term could never match; a third of all
/// suffixes, left out of every write).
pub fn contact_terms(contacts: &str) -> String {
    let lower = contacts.to_ascii_lowercase();
    let mut out = String::with_capacity(4 * lower.len());
    for term in contact_suffixes(&lower) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(term);
    }
    out
}

/// The suffixes of 3 characters or more of each run of `lower` (runs are ASCII,
/// so every byte starts a suffix).
fn contact_suffixes(lower: &str) -> impl Iterator<Item = &str> {
    runs(lower).flat_map(|run| (0..run.len().saturating_sub(MIN_CONTACT_TERM - 1)).map(move |i| &run[i..]))
}

/// The start of every PostgreSQL search term of a merchant's customers: the last
/// 6 hex digits of its id (random bits in a UUID of version 4 or 7). Its terms
/// are then a range of their own in the one GIN index, so a word's prefix query
/// reads that merchant's matches only, whatever the other merchants hold; the
/// merchant's id as a column of the same index instead made every search read
/// the merchant's whole posting list (400 pages at 1,000,000 customers: 5.8 of a
/// search's 13 ms). Two merchants sharing a tag cost each other time, never
/// results: the rows are still filtered by merchant.
pub(crate) fn pg_tag(merchant: Uuid) -> String {
    let hex = merchant.simple().to_string();
    hex[hex.len() - PG_TAG_LEN..].to_owned()
}
const PG_TAG_LEN: usize = 6;

/// PostgreSQL's search terms for one customer (the lexemes of its
/// `search_terms` tsvector, space-separated): the merchant's [`pg_tag`], then
/// `n` + each folded name word, or `c` + each of [`contact_terms`]. The same terms
/// as SQLite's two columns, told apart by their kind letter in one index.
pub fn lexemes(merchant: Uuid, names: &str, contacts: &str) -> String {
    let lower = contacts.to_ascii_lowercase();
    let tag = pg_tag(merchant);
    let mut out = String::with_capacity(2 * names.len() + 12 * lower.len());
    let names = names.split(' ').filter(|w| !w.is_empty()).map(|w| ('n', w));
    for (kind, term) in names.chain(contact_suffixes(&lower).map(|t| ('c', t))) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&tag);
        out.push(kind);
        out.push_str(term);
    }
    out
}

/// A PostgreSQL `tsquery` for one search word, with the row checks the index
/// cannot make (SQL conditions on `customers`, one per alternative that needs
/// one; `arg` turns a value into a placeholder). Alternatives: the names form
/// (each of its words a prefix, in a row: `o brien`), and the contacts
/// fragment (each run of 3 characters or more a prefix of a contacts term; the
/// row checked for the whole fragment unless it is one run). `tag` is the
/// merchant's [`pg_tag`].
pub(crate) fn pg_word(
    tag: &str,
    names: Option<&str>,
    contacts: Option<&str>,
    arg: &mut dyn FnMut(String) -> String,
) -> (String, Option<String>) {
    let mut alternatives: Vec<(String, Option<String>)> = Vec::new();
    if let Some(n) = names {
        let words: Vec<&str> = n.split(' ').filter(|w| !w.is_empty()).collect();
        let query = words.iter().map(|w| pg_prefix(tag, 'n', w)).collect::<Vec<_>>().join(" & ");
        let check = (words.len() > 1).then(|| {
            let (a, b) = (arg(format!("{n}%")), arg(format!("% {n}%")));
            format!("(customers.search_names LIKE {a} OR customers.search_names LIKE {b})")
        });
        if !query.is_empty() {
            alternatives.push((query, check));
        }
    }
    if let Some(c) = contacts {
        let fragment = c.to_lowercase();
        let parts: Vec<&str> = runs(&fragment).collect();
        let long: Vec<String> =
            parts.iter().filter(|r| r.len() >= MIN_CONTACT_TERM).map(|r| pg_prefix(tag, 'c', r)).collect();
        let one_run = parts.len() == 1 && parts[0].len() == fragment.len();
        if !long.is_empty() {
            let check = (!one_run).then(|| {
                let a = arg(format!("%{}%", super::customers::like_escape(&fragment)));
                format!("customers.search_contacts LIKE {a}")
            });
            alternatives.push((long.join(" & "), check));
        }
    }
    if alternatives.is_empty() {
        // No term can match (a name of punctuation alone is refused earlier).
        return ("'n'".to_owned(), Some("FALSE".to_owned()));
    }
    let query = alternatives.iter().map(|(q, _)| format!("({q})")).collect::<Vec<_>>().join(" | ");
    if alternatives.iter().all(|(_, c)| c.is_none()) {
        return (query, None);
    }
    // A candidate passes through one of its alternatives: the index matched it,
    // and its check (if any) holds.
    let any: Vec<String> = alternatives
        .iter()
        .map(|(q, c)| {
            let m = arg(q.clone());
            match c {
                Some(c) => format!("(customers.search_terms @@ {m}::tsquery AND {c})"),
                None => format!("customers.search_terms @@ {m}::tsquery"),
            }
        })
        .collect();
    (query, Some(format!("({})", any.join(" OR "))))
}

/// `'<tag><kind><term>':*` in `tsquery` syntax.
fn pg_prefix(tag: &str, kind: char, term: &str) -> String {
    format!("'{tag}{kind}{}':*", term.replace('\\', "\\\\").replace('\'', "''"))
}

/// The shortest contacts fragment a search matches (shorter words match names only).
const MIN_CONTACT_TERM: usize = 3;

/// The maximal runs of ASCII letters and digits of `s`.
fn runs(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|r| !r.is_empty())
}

/// How the index answers one `search` word: its folded name form (`names`) and,
/// from 3 characters, its contacts fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WordMatch {
    /// One match expression, exact: a name prefix, a contacts run, or both.
    Exact(String),
    /// A contacts fragment that is not one run: `runs` (all those of 3 characters
    /// or more; there is at least one) narrow the candidates, each row is checked
    /// for `fragment`; `names` (an expression, if the word has a name form) adds
    /// its matches.
    Checked { names: Option<String>, runs: String, fragment: String },
}

impl WordMatch {
    /// `contacts`, when given, holds a run of 3 characters or more.
    pub(crate) fn of(names: Option<&str>, contacts: Option<&str>) -> WordMatch {
        let names_expr = names.map(|n| format!("names : {}", prefix_expression(n)));
        let Some(contacts) = contacts else {
            return WordMatch::Exact(names_expr.unwrap_or_else(|| "names : \"\"".into()));
        };
        let fragment = contacts.to_lowercase();
        let parts: Vec<&str> = runs(&fragment).collect();
        match parts.as_slice() {
            // The usual word: both columns at once.
            [one] if one.len() == fragment.len() && names == Some(*one) => WordMatch::Exact(prefix_expression(one)),
            [one] if one.len() == fragment.len() => {
                let run = format!("contacts : {}", prefix_expression(one));
                WordMatch::Exact(names_expr.map_or(run.clone(), |n| format!("{n} OR {run}")))
            }
            // Only runs of 3 characters or more narrow the candidates: a shorter one is a
            // prefix of a large share of all terms, slower to merge than rows to check.
            many => {
                let long: Vec<String> = many
                    .iter()
                    .filter(|r| r.len() >= MIN_CONTACT_TERM)
                    .map(|r| format!("contacts : {}", prefix_expression(r)))
                    .collect();
                debug_assert!(!long.is_empty(), "a contacts fragment without a run of 3: {fragment}");
                WordMatch::Checked { names: names_expr, runs: long.join(" AND "), fragment }
            }
        }
    }

    /// `SELECT key …`: the matching customers' keys. `e`, `f` and `n` are the
    /// placeholders of [`WordMatch::args`]' three values, `merchant` the merchant's,
    /// and `[first, last]` the merchant's range of keys (see [`key_range_sql`]).
    pub(crate) fn keys_sql(&self, e: &str, f: &str, n: &str, merchant: &str, [first, last]: [&str; 2]) -> String {
        let range = |key: &str| format!("{key} BETWEEN {first} AND {last}");
        let matches =
            |expr: &str| format!("SELECT rowid AS key FROM customer_search_fts({expr}) WHERE {}", range("rowid"));
        let (checked, names) = match self {
            WordMatch::Exact(_) => return matches(e),
            // The index drives (CROSS JOIN); the row is read to check the fragment.
            WordMatch::Checked { names, .. } => (
                format!(
                    "SELECT f.rowid AS key FROM customer_search_fts({e}) AS f \
                     CROSS JOIN customers AS c ON c.seq = f.rowid & {SEQ_MASK} \
                     WHERE {} AND c.merchant_id = {merchant} AND instr(c.search_contacts, {f}) > 0",
                    range("f.rowid")
                ),
                names,
            ),
        };
        match names {
            Some(_) => format!("{checked} UNION {}", matches(n)),
            None => checked,
        }
    }

    /// The values of the shape's query: the match expression, the contacts
    /// fragment rows are checked for, and the names expression of a checked word.
    pub(crate) fn args(&self) -> [Option<&str>; 3] {
        match self {
            WordMatch::Exact(e) => [Some(e), None, None],
            WordMatch::Checked { names, runs, fragment } => [Some(runs), Some(fragment), names.as_deref()],
        }
    }

    /// The keys in ascending order on SQLite's inline readers (`?1`–`?3` the
    /// values of [`WordMatch::args`], `?4` the merchant, `?5`–`?6` its range of
    /// keys from `first_key`, see [`first_key`]). Bound as values, the range costs
    /// two comparisons per match; as subqueries in the statement, SQLite's VM also
    /// stepped through their once-only guards for every match.
    pub(crate) fn keys(&self, c: &rusqlite::Connection, merchant: Uuid, first_key: i64) -> rusqlite::Result<Vec<i64>> {
        // One statement per shape, built once: this runs for every word of a search.
        static SQL: LazyLock<[String; 3]> = LazyLock::new(|| {
            let n = || Some(String::new());
            [
                WordMatch::Exact(String::new()),
                WordMatch::Checked { names: None, runs: String::new(), fragment: String::new() },
                WordMatch::Checked { names: n(), runs: String::new(), fragment: String::new() },
            ]
            .map(|shape| format!("{} ORDER BY key", shape.keys_sql("?1", "?2", "?3", "?4", ["?5", "?6"])))
        });
        let shape = match self {
            WordMatch::Exact(_) => 0,
            WordMatch::Checked { names, .. } => 1 + usize::from(names.is_some()),
        };
        let mut stmt = c.prepare_cached(&SQL[shape])?;
        for (i, v) in self.args().into_iter().enumerate() {
            if let Some(v) = v {
                stmt.raw_bind_parameter(i + 1, v)?;
            }
        }
        stmt.raw_bind_parameter(4, merchant)?;
        stmt.raw_bind_parameter(5, first_key)?;
        stmt.raw_bind_parameter(6, first_key | SEQ_MASK)?;
        let mut keys = Vec::new();
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            keys.push(row.get::<_, i64>(0)?);
        }
        Ok(keys)
    }
}

/// `(SELECT …)`: the first key of the merchant whose id is `merchant` (an SQL
/// expression), its `search_partition << SEQ_BITS`.
fn first_key_sql(merchant: &str) -> String {
    format!("(SELECT search_partition << {SEQ_BITS} FROM merchants WHERE id = {merchant})")
}

/// The merchant's first key; `None` for a merchant that does not exist.
pub(crate) fn first_key(c: &rusqlite::Connection, merchant: Uuid) -> rusqlite::Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    static SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {}", first_key_sql("?1")));
    c.prepare_cached(&SQL)?.query_row([merchant], |r| r.get(0)).optional()
}

/// `[first, last]`: SQL expressions of the merchant's range of keys, for a
/// statement that has the merchant's id as `merchant`.
pub(crate) fn key_range_sql(merchant: &str) -> [String; 2] {
    let first = first_key_sql(merchant);
    let last = format!("{first} | {SEQ_MASK}");
    [first, last]
}

/// `"text"*`: any term (or run of terms) `text` is a prefix of.
fn prefix_expression(text: &str) -> String {
    format!("\"{}\"*", text.replace('"', "\"\""))
}

/// One customer's index entry, written when its transaction commits
/// ([`write_entries`]): FTS5 writes its pending terms to disk as a new segment at
/// every savepoint (and every statement that opens a statement journal, such as a
/// multi-row `INSERT`), so entries written inside each group-commit job's
/// savepoint cost a segment (and later merges) per job — a quarter of a create's
/// work. Written after the batch's last job, outside any savepoint, one row per
/// statement, they cost one segment per batch. The entry names the customer by
/// id and is written from its row, so a customer deleted later in the same batch
/// gets none.
pub(crate) struct Entry {
    pub(crate) merchant: Uuid,
    pub(crate) id: Uuid,
    /// The folded name words.
    pub(crate) names: String,
    /// [`contact_terms`] of the contacts.
    pub(crate) contacts: String,
    /// The customer may have an entry already (an update): replace it.
    pub(crate) replace: bool,
}

/// Writes a bulk batch's entries (an import's thousands) with FTS5's automatic
/// merging held off. Merging as it goes, FTS5 rewrites every term about once per
/// level of its index (levels of 4 segments): an eighth of an import's CPU in a
/// profile of 300,000 lines;
/// held off, the segments only merge 16 at a time (its "crisis" merge), and a large
/// load is merged once at its end ([`super::Db::settle_bulk_load`]). The setting is
/// restored before the transaction commits, with the terms already written, so
/// no other write ever sees it off, whatever happens to this one.
pub(crate) fn write_bulk_entries(c: &rusqlite::Connection, entries: &[Entry]) -> rusqlite::Result<()> {
    use rusqlite::OptionalExtension;
    if entries.is_empty() {
        return Ok(());
    }
    let automerge: Option<i64> = c
        .prepare_cached("SELECT v FROM customer_search_fts_config WHERE k = 'automerge'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    let set = "INSERT INTO customer_search_fts (customer_search_fts, rank) VALUES ('automerge', ?1)";
    c.prepare_cached(set)?.execute([0])?;
    write_entries(c, entries)?;
    // The pending terms go to disk now, unmerged, rather than at the commit.
    c.prepare_cached("INSERT INTO customer_search_fts (customer_search_fts) VALUES ('flush')")?.execute([])?;
    c.prepare_cached(set)?.execute([automerge.unwrap_or(DEFAULT_AUTOMERGE)])?;
    Ok(())
}

/// FTS5's own `automerge` when none is set.
const DEFAULT_AUTOMERGE: i64 = 4;

/// Writes `entries` in order, each keyed by its customer's row (see [`Entry`]).
pub(crate) fn write_entries(c: &rusqlite::Connection, entries: &[Entry]) -> rusqlite::Result<()> {
    use rusqlite::OptionalExtension;
    if entries.is_empty() {
        return Ok(());
    }
    let mut seq = c.prepare_cached("SELECT seq FROM customers WHERE merchant_id = ?1 AND id = ?2")?;
    // One row per statement: a statement of several rows would flush the index's
    // pending terms as a new segment each time (see [`Entry`]).
    let mut insert =
        c.prepare_cached("INSERT INTO customer_search_fts (rowid, names, contacts) VALUES (?1, ?2, ?3)")?;
    let mut replace =
        c.prepare_cached("INSERT OR REPLACE INTO customer_search_fts (rowid, names, contacts) VALUES (?1, ?2, ?3)")?;
    let mut merchant: Option<(Uuid, Option<i64>)> = None;
    for e in entries {
        let first = match merchant {
            Some((m, first)) if m == e.merchant => first,
            _ => {
                let first = first_key(c, e.merchant)?;
                merchant = Some((e.merchant, first));
                first
            }
        };
        let Some(first) = first else { continue };
        // A customer deleted after this entry was made (later in its batch) has no row.
        let Some(row) = seq.query_row((e.merchant, e.id), |r| r.get::<_, i64>(0)).optional()? else { continue };
        let statement = if e.replace { &mut replace } else { &mut insert };
        statement.execute((first | row, e.names.as_str(), e.contacts.as_str()))?;
    }
    Ok(())
}

/// Fills the index from the customers' rows when a migration left it to be built
/// (migrations are SQL; the terms are computed here), through [`write_entries`]
/// like every other write, on a connection of its own to the database at `path`,
/// then merges it ([`compact`]). One transaction: a build cut short starts again
/// at the next start.
pub(crate) async fn build_if_pending(path: &std::path::Path, pool: &sqlx::SqlitePool) -> anyhow::Result<()> {
    let path = path.to_owned();
    if tokio::task::spawn_blocking(move || build(&path)).await?? {
        compact(pool).await?;
    }
    Ok(())
}

/// [`build_if_pending`]'s build; whether there was one to do.
fn build(path: &std::path::Path) -> anyhow::Result<bool> {
    use rusqlite::OptionalExtension;
    let mut c = rusqlite::Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    let pending = "SELECT name FROM search_index_builds WHERE name = 'customer_search_fts'";
    if c.query_row(pending, [], |r| r.get::<_, String>(0)).optional()?.is_none() {
        return Ok(false);
    }
    let started = std::time::Instant::now();
    tracing::info!("building the customers' search index (once, after an upgrade)");
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute("INSERT INTO customer_search_fts (customer_search_fts) VALUES ('delete-all')", [])?;
    let (mut after, mut count) = (0_i64, 0_u64);
    let page = "SELECT seq, merchant_id, id, search_names, search_contacts FROM customers \
                WHERE seq > ?1 ORDER BY seq LIMIT 1000";
    loop {
        let rows: Vec<(i64, Uuid, Uuid, String, String)> = tx
            .prepare_cached(page)?
            .query_map([after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        count += rows.len() as u64;
        let entries: Vec<Entry> = rows
            .into_iter()
            .map(|(_, merchant, id, names, contacts)| Entry {
                merchant,
                id,
                names,
                contacts: contact_terms(&contacts),
                replace: false,
            })
            .collect();
        write_entries(&tx, &entries)?;
    }
    tx.execute("DELETE FROM search_index_builds WHERE name = 'customer_search_fts'", [])?;
    tx.commit()?;
    tracing::info!(customers = count, seconds = started.elapsed().as_secs_f64(), "built the customers' search index");
    Ok(true)
}

/// Merges the index's segments into one (FTS5's incremental `merge` with a
/// negative budget: an `optimize` in steps). Each step rewrites about 100 pages in
/// its own statement, so the writer's other transactions run between steps; at a
/// million customers it takes about 3 s in about 500 steps (one of them ~0.4 s),
/// and every search word reads one segment instead of one per level afterwards
/// (×1.5 searches per second measured). It rewrites the whole index, so it is for
/// after bulk loads, not after every write.
pub(crate) async fn compact(pool: &sqlx::SqlitePool) -> Result<(), sqlx::Error> {
    let started = std::time::Instant::now();
    let mut steps = 0_u32;
    loop {
        let mut c = pool.acquire().await?;
        // A step that wrote nothing (one change: the statement's own) found one segment.
        let changes = "SELECT total_changes()";
        let (before,): (i64,) = sqlx::query_as(changes).fetch_one(&mut *c).await?;
        sqlx::query("INSERT INTO customer_search_fts (customer_search_fts, rank) VALUES ('merge', -100)")
            .execute(&mut *c)
            .await?;
        let (after,): (i64,) = sqlx::query_as(changes).fetch_one(&mut *c).await?;
        steps += 1;
        if after - before < 2 {
            break;
        }
    }
    tracing::info!(steps, seconds = started.elapsed().as_secs_f64(), "merged the customers' search index");
    Ok(())
}

impl super::Db {
    /// Moves the search index's pending entries into the index proper where the
    /// backend keeps such a list ([`super::Backend::search_index_upkeep`]); the
    /// pages moved (0 when there was nothing to move, or nothing of the kind).
    pub async fn search_index_upkeep(&self) -> Result<i64, super::StoreError> {
        let Some(sql) = self.backend().search_index_upkeep() else { return Ok(0) };
        Ok(super::on_conn!(self.reader(), p => sqlx::query_scalar(sql).fetch_one(p).await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_every_suffix_of_3_or_more_of_every_run() {
        assert_eq!(contact_terms("jo.smith@x.io +1416"), "smith mith ith 1416 416");
        assert_eq!(contact_terms("Zoë@X.COM"), "com");
        assert_eq!(contact_terms(""), "");
    }

    #[test]
    fn the_usual_word_is_one_prefix_query_over_both_columns() {
        assert_eq!(WordMatch::of(Some("smith"), Some("smith")), WordMatch::Exact("\"smith\"*".into()));
        assert_eq!(WordMatch::of(Some("jo"), None), WordMatch::Exact("names : \"jo\"*".into()));
        assert_eq!(
            WordMatch::of(Some("416 555"), Some("416555")),
            WordMatch::Exact("names : \"416 555\"* OR contacts : \"416555\"*".into())
        );
        assert_eq!(
            WordMatch::of(Some("smith 1"), Some("Smith.1")),
            WordMatch::Checked {
                names: Some("names : \"smith 1\"*".into()),
                runs: "contacts : \"smith\"*".into(),
                fragment: "smith.1".into()
            }
        );
        assert_eq!(
            WordMatch::of(None, Some("john.smith@")),
            WordMatch::Checked {
                names: None,
                runs: "contacts : \"john\"* AND contacts : \"smith\"*".into(),
                fragment: "john.smith@".into()
            }
        );
    }
}
