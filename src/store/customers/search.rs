//! Customer search: its query, the SQL per backend, and SQLite's answers from
//! the full-text keys alone.

use super::*;

/// What a customer search is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = CustomerOrder, rename_all = "camelCase")]
pub enum OrderBy {
    CreatedOn,
    ModifiedOn,
    FirstName,
    LastName,
    Email,
    CompanyName,
}

impl OrderBy {
    pub const NAMES: [&'static str; 6] = ["createdOn", "modifiedOn", "firstName", "lastName", "email", "companyName"];

    pub fn parse(s: &str) -> Option<OrderBy> {
        Some(match s {
            "createdOn" => OrderBy::CreatedOn,
            "modifiedOn" => OrderBy::ModifiedOn,
            "firstName" => OrderBy::FirstName,
            "lastName" => OrderBy::LastName,
            "email" => OrderBy::Email,
            "companyName" => OrderBy::CompanyName,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            OrderBy::CreatedOn => "created_at",
            OrderBy::ModifiedOn => "modified_at",
            OrderBy::FirstName => "first_name_key",
            OrderBy::LastName => "last_name_key",
            OrderBy::Email => "email_key",
            OrderBy::CompanyName => "company_key",
        }
    }
}

/// One word of `search`: a prefix of a name word, or (from 3 characters) any part
/// of an email or phone number.
#[derive(Debug, Clone)]
pub struct SearchWord {
    /// Folded like the indexed names; may hold several tokens (`o'brien` → `o brien`).
    pub names: Option<String>,
    /// Lowercase, at least 3 characters (trigram indexes match nothing shorter).
    pub contacts: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CustomerSearch {
    pub page: u32,
    pub page_size: u32,
    pub order_by: OrderBy,
    pub asc: bool,
    pub words: Vec<SearchWord>,
    pub customer_ids: Vec<Uuid>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub date_of_birth: Option<String>,
    pub postal_code: Option<String>,
    pub external_reference: Option<String>,
    pub status: Option<CustomerStatus>,
    /// `custom.<name>=value` filters: declared name and canonical value.
    pub custom: Vec<(String, String)>,
}

enum Arg {
    Id(Uuid),
    Text(String),
    Int(i64),
}

impl CustomerSearch {
    /// Whether the matches are few by construction: an exact email (rarely shared),
    /// an external reference (unique) or a list of ids, without words. Such a search
    /// costs about what a get does, so it may run on the caller's thread.
    fn is_narrow(&self) -> bool {
        self.words.is_empty()
            && (self.email.is_some() || self.external_reference.is_some() || !self.customer_ids.is_empty())
    }

    /// Whether an exact filter (ids, custom values, email, names, date of birth,
    /// postal code, external reference) narrows the matches through its own index.
    fn is_selective(&self) -> bool {
        !self.customer_ids.is_empty()
            || !self.custom.is_empty()
            || [
                &self.email,
                &self.first_name,
                &self.last_name,
                &self.date_of_birth,
                &self.postal_code,
                &self.external_reference,
            ]
            .iter()
            .any(|f| f.is_some())
    }

    /// Words alone, in creation order: on SQLite, answered from the full-text
    /// indexes, whose keys are in that order ([`search_by_words`]).
    fn is_words_in_creation_order(&self) -> bool {
        !self.words.is_empty()
            && self.order_by == OrderBy::CreatedOn
            && !self.is_selective()
            && self.created_from.is_none()
            && self.created_to.is_none()
            && self.status.is_none()
    }
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Id(u) => u.to_sql(),
            Arg::Text(s) => s.to_sql(),
            Arg::Int(i) => i.to_sql(),
        }
    }
}

struct Sql {
    from: String,
    conditions: Vec<String>,
    args: Vec<Arg>,
}

impl Sql {
    fn arg(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }
}

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Id(u) => q.bind(*u),
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}

/// SQLite's full-text indexes key a customer by `search_partition << SEQ_BITS | seq`:
/// one merchant's customers are one rowid range, in creation order.
pub(crate) const SEQ_BITS: u32 = 40;
pub(crate) const SEQ_MASK: i64 = (1 << SEQ_BITS) - 1;

pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The page query's last column: the number of all matches.
const TOTAL_COLUMN: usize = 35;

/// The count and page queries of a search, with their arguments (the page query
/// takes two more: limit and offset).
struct SearchSql {
    count: String,
    page: String,
    /// The page's last column ([`TOTAL_COLUMN`]) is the number of all matches.
    counted: bool,
    args: Vec<Arg>,
}

fn search_sql(sqlite: bool, merchant: Uuid, q: &CustomerSearch) -> SearchSql {
    let mut sql = Sql { from: "customers".into(), conditions: Vec::new(), args: Vec::new() };
    let m = sql.arg(Arg::Id(merchant));
    sql.conditions.push(format!("customers.merchant_id = {m}"));
    let (mut words, mut checks) = (Vec::new(), Vec::new());
    let tag = if sqlite { String::new() } else { crate::store::search_index::pg_tag(merchant) };
    for (i, w) in q.words.iter().enumerate() {
        if sqlite {
            let shape = WordMatch::of(w.names.as_deref(), w.contacts.as_deref());
            let [e, f, n] = shape.args().map(|v| v.map(|v| sql.arg(Arg::Text(v.to_owned()))).unwrap_or_default());
            let [first, last] = crate::store::search_index::key_range_sql(&m);
            let hits =
                format!("SELECT key & {SEQ_MASK} AS seq FROM ({})", shape.keys_sql(&e, &f, &n, &m, [&first, &last]));
            if i == 0 {
                // The index drives: CROSS JOIN fixes the matches as the outer loop, so
                // the planner never walks the merchant's customers testing each one.
                sql.from = format!("({hits}) AS hits CROSS JOIN customers ON customers.seq = hits.seq");
            } else {
                sql.conditions.push(format!("customers.seq IN ({hits})"));
            }
        } else {
            let (query, check) =
                crate::store::search_index::pg_word(&tag, w.names.as_deref(), w.contacts.as_deref(), &mut |v| {
                    sql.arg(Arg::Text(v))
                });
            words.push(format!("({query})"));
            checks.extend(check);
        }
    }
    if !words.is_empty() {
        // All words in one query: one scan of the terms index for the merchant.
        let q = sql.arg(Arg::Text(words.join(" & ")));
        sql.conditions.push(format!("customers.search_terms @@ {q}::tsquery"));
        sql.conditions.append(&mut checks);
    }
    if !q.customer_ids.is_empty() {
        let list: Vec<String> = q.customer_ids.iter().map(|id| sql.arg(Arg::Id(*id))).collect();
        sql.conditions.push(format!("customers.id IN ({})", list.join(", ")));
    }
    if let Some(t) = q.created_from {
        let a = sql.arg(Arg::Int(t));
        sql.conditions.push(format!("created_at >= {a}"));
    }
    if let Some(t) = q.created_to {
        let a = sql.arg(Arg::Int(t));
        sql.conditions.push(format!("created_at <= {a}"));
    }
    let exact = [
        ("email_key", q.email.as_ref()),
        ("first_name_key", q.first_name.as_ref()),
        ("last_name_key", q.last_name.as_ref()),
        ("date_of_birth", q.date_of_birth.as_ref()),
        ("postal_key", q.postal_code.as_ref()),
        ("external_reference", q.external_reference.as_ref()),
    ];
    for (col, val) in exact {
        if let Some(v) = val {
            let a = sql.arg(Arg::Text(v.clone()));
            sql.conditions.push(format!("{col} = {a}"));
        }
    }
    for (name, value) in &q.custom {
        let (n, v) = (sql.arg(Arg::Text(name.clone())), sql.arg(Arg::Text(value.clone())));
        sql.conditions.push(format!(
            "customers.id IN (SELECT customer_id FROM customer_custom_values WHERE merchant_id = {m} AND name = {n} AND value_key = {v})"
        ));
    }
    if let Some(s) = q.status {
        let a = sql.arg(Arg::Text(s.as_str().to_owned()));
        sql.conditions.push(format!("status = {a}"));
    }
    let filter = format!("FROM {} WHERE {}", sql.from, sql.conditions.join(" AND "));
    let count_sql = format!("SELECT COUNT(*) {filter}");
    let dir = if q.asc { "ASC" } else { "DESC" };
    let limit = sql.arg(Arg::Int(i64::from(q.page_size)));
    let offset = sql.arg(Arg::Int(i64::from(q.page - 1) * i64::from(q.page_size)));
    // With a selective filter, SQLite must drive from that filter's index; without
    // statistics it would rather walk the merchant's rows in sort order to skip a
    // sort. A unary `+` makes the sort key unusable from an index, so it cannot.
    let plus = if sqlite && q.is_selective() && q.words.is_empty() { "+" } else { "" };
    // Words: the page must read and sort every match anyway, so it counts them in
    // the same pass; so do narrow filters, whose matches are few. Otherwise the page
    // reads an index in order and stops early, and the count is a separate index scan.
    // On SQLite a narrow filter's page alone usually tells the total (fewer rows than
    // a page: all of them; see `run_search`), and the window function would copy
    // the matches into a temporary B-tree: a fifth of an email lookup's instructions.
    let counted = !q.words.is_empty() || (q.is_narrow() && !sqlite);
    // On SQLite, creation order breaks ties by insertion order (`seq`), as the
    // full-text keys do; elsewhere, and for the other orders, by id.
    let tie = if sqlite && q.order_by == OrderBy::CreatedOn { "customers.seq" } else { "customers.id" };
    let cols = SELECT_COLUMNS.replace("merchant_id, id,", "customers.merchant_id, customers.id,");
    // PostgreSQL: the page's custom values come with its rows, in one round trip.
    let custom = if sqlite { String::new() } else { format!(", {PG_CUSTOM_JSON}") };
    let page_sql = if !sqlite && !q.words.is_empty() {
        // Words on PostgreSQL: the terms index drives (the matches are a
        // materialized set, so the planner cannot walk the merchant's rows in sort
        // order instead, its estimate for a common word), every match is read once
        // for its id and sort key, counted and ranked there, and only the page's
        // rows are read whole.
        format!(
            "WITH matches AS MATERIALIZED (SELECT customers.id AS id, {col} AS sort_key {filter}), \
             page AS (SELECT id, sort_key FROM matches ORDER BY sort_key {dir}, id {dir} LIMIT {limit} OFFSET {offset}) \
             SELECT {cols}, (SELECT COUNT(*) FROM matches) AS total_matches{custom} FROM page \
             JOIN customers ON customers.merchant_id = {m} AND customers.id = page.id \
             ORDER BY page.sort_key {dir}, page.id {dir}",
            col = q.order_by.column(),
        )
    } else {
        format!(
            "SELECT {cols}{total}{custom} {filter} ORDER BY {plus}{col} {dir}, {plus}{tie} {dir} LIMIT {limit} OFFSET {offset}",
            col = q.order_by.column(),
            total = if counted { ", COUNT(*) OVER () AS total_matches" } else { "" },
        )
    };
    SearchSql { count: count_sql, page: page_sql, counted, args: sql.args }
}

/// A word search in creation order from SQLite's full-text keys (see [`SEQ_BITS`]):
/// each word's keys are read from the indexes alone (names and contacts merged),
/// the words intersected, and only the page's rows are read. A search matching
/// thousands of customers never visits them to count or sort.
fn search_by_words(
    c: &rusqlite::Connection,
    merchant: Uuid,
    q: &CustomerSearch,
) -> rusqlite::Result<(Vec<CustomerRecord>, i64)> {
    let Some(first_key) = crate::store::search_index::first_key(c, merchant)? else { return Ok((Vec::new(), 0)) };
    let mut keys: Option<Vec<i64>> = None;
    for w in &q.words {
        let word = WordMatch::of(w.names.as_deref(), w.contacts.as_deref()).keys(c, merchant, first_key)?;
        keys = Some(match keys {
            None => word,
            Some(k) => intersect_sorted(&k, &word),
        });
        if keys.as_ref().is_some_and(Vec::is_empty) {
            break;
        }
    }
    let keys = keys.unwrap_or_default();
    let (skip, take) = ((q.page as usize - 1) * q.page_size as usize, q.page_size as usize);
    let page: Vec<i64> = if q.asc {
        keys.iter().skip(skip).take(take).copied().collect()
    } else {
        keys.iter().rev().skip(skip).take(take).copied().collect()
    };
    let mut items = Vec::with_capacity(page.len());
    let mut row = c.prepare_cached(&BY_SEQ_SQL)?;
    let columns = CustomerRecord::sqlite_columns(&row)?;
    for key in page {
        // The merchant is checked again on the row itself.
        let mut rows = row.query((key & SEQ_MASK, merchant))?;
        if let Some(r) = rows.next()? {
            items.push(CustomerRecord::from_sqlite_at(r, &columns)?);
        }
    }
    Ok((items, keys.len() as i64))
}

static BY_SEQ_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SELECT_COLUMNS} FROM customers WHERE seq = ?1 AND merchant_id = ?2"));

/// The keys in both ascending lists, ascending.
fn intersect_sorted(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                (i, j) = (i + 1, j + 1);
            }
        }
    }
    out
}

impl Scoped<'_> {
    /// One page of matches, their custom values and the number of all matches.
    /// On SQLite: a word search on the blocking pool ([`crate::store::inline`]; a word can
    /// prefix a large share of all names), any other search on the caller's thread
    /// unless it needs more than a few milliseconds; in creation order from the
    /// full-text keys alone ([`search_by_words`]), otherwise through
    /// [`search_sql`]'s statements; the page's custom values from the same snapshot.
    pub async fn search_customers(&self, q: &CustomerSearch) -> Result<SearchPage, sqlx::Error> {
        let merchant = self.merchant();
        if let Some(r) = self.inline() {
            let (q, sql) = (q.clone(), search_sql(true, merchant, q));
            let words = !q.words.is_empty();
            let search = move |c: &rusqlite::Connection| {
                with_custom(c, merchant, |tx| match q.is_words_in_creation_order() {
                    true => search_by_words(tx, merchant, &q),
                    false => run_search(tx, &sql, &q),
                })
            };
            return if words { r.read_blocking(search).await } else { r.read(search).await };
        }
        let sql = search_sql(false, merchant, q);
        let filter_args = &sql.args[..sql.args.len() - 2];
        let (count_sql, page_sql) = (&sql.count, &sql.page);
        // A counted page carries the number of all matches, so only a page past the
        // end needs the count on its own; otherwise count first, then read the page.
        let Conn::Postgres(p) = self.conn() else {
            return Err(sqlx::Error::Configuration("a SQLite search reads through the inline readers".into()));
        };
        let (mut items, mut custom, mut total) = (Vec::new(), CustomValues::new(), 0);
        if !sql.counted {
            (total,) = bind_args!(sqlx::query_as(count_sql), filter_args).fetch_one(p).await?;
        }
        if sql.counted || total > 0 {
            for row in bind_args!(sqlx::query(page_sql), &sql.args).fetch_all(p).await? {
                if sql.counted {
                    total = sqlx::Row::try_get(&row, TOTAL_COLUMN)?;
                }
                let record: CustomerRecord = sqlx::FromRow::from_row(&row)?;
                custom.insert(record.id, pg_custom_values(&row, record.id)?);
                items.push(record);
            }
            if sql.counted && items.is_empty() && q.page > 1 {
                (total,) = bind_args!(sqlx::query_as(count_sql), filter_args).fetch_one(p).await?;
            }
        }
        Ok(SearchPage { items, custom, total })
    }
}

/// A page of a search.
pub struct SearchPage {
    pub items: Vec<CustomerRecord>,
    /// The custom values of the page's customers.
    pub custom: CustomValues,
    /// All matches, not only the page's.
    pub total: i64,
}

/// Runs `search` in a read transaction and adds its page's custom values from the same snapshot.
fn with_custom(
    c: &rusqlite::Connection,
    merchant: Uuid,
    search: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<(Vec<CustomerRecord>, i64)>,
) -> rusqlite::Result<SearchPage> {
    crate::store::inline::read_transaction(c, |tx| {
        let (items, total) = search(tx)?;
        let ids: Vec<Uuid> = items.iter().map(|c| c.id).collect();
        let custom = if ids.is_empty() { CustomValues::new() } else { inline_custom_values(tx, merchant, &ids)? };
        Ok(SearchPage { items, custom, total })
    })
}

/// A search through [`search_sql`]'s statements on SQLite. A counted page
/// carries the number of all matches; otherwise a page short of full (and not
/// past the end) tells it, and the count runs alone only after a full page or for
/// a page past the end.
fn run_search(
    c: &rusqlite::Connection,
    sql: &SearchSql,
    q: &CustomerSearch,
) -> rusqlite::Result<(Vec<CustomerRecord>, i64)> {
    let mut items = Vec::new();
    let mut total = None;
    let mut stmt = c.prepare_cached(&sql.page)?;
    bind_numbered(&mut stmt, &sql.args)?;
    let columns = CustomerRecord::sqlite_columns(&stmt)?;
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        if sql.counted {
            total = Some(row.get::<_, i64>(TOTAL_COLUMN)?);
        }
        items.push(CustomerRecord::from_sqlite_at(row, &columns)?);
    }
    let (page, size) = (q.page as usize, q.page_size as usize);
    if let Some(total) = total {
        return Ok((items, total));
    }
    // A page short of full, and not past the end, holds the last matches.
    if !sql.counted && items.len() < size && (!items.is_empty() || page == 1) {
        let total = ((page - 1) * size + items.len()) as i64;
        return Ok((items, total));
    }
    let mut count = c.prepare_cached(&sql.count)?;
    bind_numbered(&mut count, &sql.args[..sql.args.len() - 2])?;
    let total = count.raw_query().next()?.map_or(Ok(0), |row| row.get(0))?;
    Ok((items, total))
}

#[cfg(test)]
pub(super) mod plan_tests {
    use super::*;

    pub(super) fn base() -> CustomerSearch {
        CustomerSearch {
            page: 1,
            page_size: 20,
            order_by: OrderBy::CreatedOn,
            asc: false,
            words: Vec::new(),
            customer_ids: Vec::new(),
            created_from: None,
            created_to: None,
            email: None,
            first_name: None,
            last_name: None,
            date_of_birth: None,
            postal_code: None,
            external_reference: None,
            status: None,
            custom: Vec::new(),
        }
    }

    async fn plan(p: &sqlx::SqlitePool, sql: &str, args: &[Arg]) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let rows: Vec<(i64, i64, i64, String)> = bind_args!(sqlx::query_as(&explain), args).fetch_all(p).await.unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join(" | ")
    }

    /// Every search shape is served from an index that matches its filter; none
    /// walks the merchant's customers (SQLite; PostgreSQL plans by statistics).
    #[tokio::test]
    async fn every_search_shape_uses_its_index() {
        let (_dir, db) = crate::store::scratch::sqlite().await;
        let Conn::Sqlite(pool) = db.reader() else { unreachable!() };
        let word = |n: &str, c: Option<&str>| SearchWord { names: Some(n.into()), contacts: c.map(String::from) };
        let s = |f: &dyn Fn(&mut CustomerSearch)| {
            let mut q = base();
            f(&mut q);
            q
        };
        let cases: Vec<(&str, CustomerSearch, &str)> = vec![
            ("list", base(), "INDEX customers_created (merchant_id=?)"),
            ("email", s(&|q| q.email = Some("a@b.co".into())), "customers_email (merchant_id=? AND email_key=?)"),
            (
                "firstName",
                s(&|q| q.first_name = Some("a".into())),
                "customers_first_name (merchant_id=? AND first_name_key=?)",
            ),
            (
                "lastName",
                s(&|q| q.last_name = Some("a".into())),
                "customers_last_name (merchant_id=? AND last_name_key=?)",
            ),
            (
                "dateOfBirth",
                s(&|q| q.date_of_birth = Some("2000-01-01".into())),
                "customers_dob (merchant_id=? AND date_of_birth=?)",
            ),
            (
                "postalCode",
                s(&|q| q.postal_code = Some("M5J2H7".into())),
                "customers_postal (merchant_id=? AND postal_key=?)",
            ),
            (
                "externalReference",
                s(&|q| q.external_reference = Some("crm-1".into())),
                "customers_external_reference (merchant_id=? AND external_reference=?)",
            ),
            (
                "status",
                s(&|q| q.status = Some(CustomerStatus::Inactive)),
                "customers_status (merchant_id=? AND status=?)",
            ),
            (
                "customerIds",
                s(&|q| q.customer_ids = vec![Uuid::nil(), Uuid::max()]),
                "customers_key (merchant_id=? AND id=?)",
            ),
            ("dates", s(&|q| q.created_from = Some(1)), "customers_created (merchant_id=? AND created_at>?)"),
            ("search", s(&|q| q.words = vec![word("jo", None)]), "customer_search_fts VIRTUAL TABLE"),
            (
                "search two words",
                s(&|q| q.words = vec![word("john", Some("john")), word("smi", Some("smi"))]),
                "customer_search_fts VIRTUAL TABLE",
            ),
            (
                "search and email, by name",
                s(&|q| {
                    q.words = vec![word("jo", None)];
                    q.email = Some("a@b.co".into());
                    q.order_by = OrderBy::FirstName;
                }),
                "customer_search_fts VIRTUAL TABLE",
            ),
            (
                "email ordered by first name",
                s(&|q| {
                    q.email = Some("a@b.co".into());
                    q.order_by = OrderBy::FirstName;
                    q.asc = true;
                }),
                "customers_email (merchant_id=? AND email_key=?)",
            ),
        ];
        for (name, q, want) in cases {
            let sql = search_sql(true, Uuid::now_v7(), &q);
            let n = sql.args.len() - 2; // the page query adds limit and offset
            let page = plan(pool, &sql.page, &sql.args).await;
            let count = plan(pool, &sql.count, &sql.args[..n]).await;
            for (which, p) in [("page", &page), ("count", &count)] {
                assert!(!p.contains("SCAN customers"), "{name} ({which}) scans customers: {p}");
                // Counting everything may read any index that starts with the merchant.
                let want = if name == "list" && which == "count" { "(merchant_id=?)" } else { want };
                assert!(p.contains(want), "{name} ({which}) should use {want}: {p}");
            }
        }
        let unfiltered = plan(
            pool,
            &search_sql(true, Uuid::now_v7(), &base()).page,
            &[Arg::Id(Uuid::nil()), Arg::Int(20), Arg::Int(0)],
        )
        .await;
        assert!(!unfiltered.contains("TEMP B-TREE"), "the default listing is read in index order: {unfiltered}");
    }
}

/// PostgreSQL plans by statistics, so its search shapes are checked at scale:
/// 30,000 customers, analyzed, every word shape answered from the terms index.
#[cfg(test)]
mod pg_plan_tests {
    use super::plan_tests::base;
    use super::*;
    use crate::store::Actor;

    #[tokio::test]
    async fn every_postgres_word_search_uses_the_terms_index() {
        let Some((db, _dropped)) = crate::store::scratch::postgres().await else { return };
        let tenant = db.create_merchant("Plan").await.unwrap();
        const LAST: [&str; 50] = [
            "Smith", "Jones", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Roberts", "Johnson", "Lewis",
            "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes", "Edwards", "Green", "Hall", "Wood",
            "Harris", "Martin", "Jackson", "Clarke", "Clark", "Turner", "Hill", "Scott", "Cooper", "Morris", "Ward",
            "Moore", "King", "Watson", "Baker", "Harrison", "Morgan", "Patel", "Young", "Allen", "Mitchell", "James",
            "Anderson", "Phillips", "Lee", "Bell", "Parker", "Davis", "O'Brien",
        ];
        let inputs: Vec<CustomerInput> = (0..100_000)
            .map(|i| {
                let last = LAST[i % LAST.len()];
                let body = serde_json::json!({"firstName": format!("First{i}"), "lastName": last,
                    "email": format!("first{i}.{}@example{}.com", last.to_lowercase().replace('\'', ""), i % 97),
                    "companyName": format!("Company {}", i % 1000)});
                crate::domain::customer::CustomerInput::parse_create(&body, &[]).unwrap().customer
            })
            .collect();
        let inputs = std::sync::Arc::new(inputs);
        for start in (0..inputs.len()).step_by(5_000) {
            let inputs = inputs.clone();
            db.write(Actor::system(tenant), move |mut tx| async move {
                let rows: Vec<(Uuid, &CustomerInput)> =
                    inputs[start..start + 5_000].iter().map(|c| (Uuid::now_v7(), c)).collect();
                tx.insert_customer_rows(&rows).await?;
                tx.commit().await
            })
            .await
            .unwrap();
        }
        // Another merchant with customers of the same names: its terms are its own.
        let other = db.create_merchant("Other").await.unwrap();
        db.write(Actor::system(other), move |mut tx| async move {
            let rows: Vec<(Uuid, &CustomerInput)> = inputs[..2_000].iter().map(|c| (Uuid::now_v7(), c)).collect();
            tx.insert_customer_rows(&rows).await?;
            tx.commit().await
        })
        .await
        .unwrap();
        let Conn::Postgres(pool) = db.reader() else { unreachable!() };
        // Before any statistics (an import into a new database), a lookup of many
        // keys still probes their unique index, whatever the planner thinks of the
        // table: planned for its values, and as the generic plan a prepared
        // statement is cached with.
        let mut c = pool.acquire().await.unwrap();
        for (key, index, kind) in
            [("external_reference", "customers_external_reference", "text"), ("id", "customers_pkey", "uuid")]
        {
            let sql = Backend::Postgres.rows_by_keys("id", "customers", key, 500);
            let types = vec![kind; 500].join(", ");
            sqlx::query(&format!("PREPARE lookup (uuid, {types}) AS {sql}")).execute(&mut *c).await.unwrap();
            let values: Vec<String> = (0..500)
                .map(|i| match kind {
                    "uuid" => format!("'{}'", Uuid::now_v7()),
                    _ => format!("'ref-{i}'"),
                })
                .collect();
            let execute = format!("EXPLAIN EXECUTE lookup ('{}', {})", tenant.id(), values.join(", "));
            for mode in ["force_custom_plan", "force_generic_plan"] {
                sqlx::query(&format!("SET plan_cache_mode = {mode}")).execute(&mut *c).await.unwrap();
                let rows: Vec<(String,)> = sqlx::query_as(&execute).fetch_all(&mut *c).await.unwrap();
                let plan = rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join(" | ");
                let probes = plan.contains(&format!("Scan using {index}")) && plan.contains("Nested Loop");
                assert!(probes, "{key}, {mode}: {plan}");
            }
            sqlx::query("DEALLOCATE lookup").execute(&mut *c).await.unwrap();
        }
        drop(c);
        sqlx::query("ANALYZE customers").execute(pool).await.unwrap();
        // The terms the writes computed are those migration 14 gives the rows it finds.
        let migration = include_str!("../../../migrations/postgres/0014_merchant_search_terms.sql");
        let start = migration.find("CREATE FUNCTION").unwrap();
        let function = &migration[start..start + migration[start..].find("$$;").unwrap() + 3];
        let mut c = pool.acquire().await.unwrap();
        sqlx::query(function).execute(&mut *c).await.unwrap();
        let (differ,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM customers \
             WHERE search_terms <> pg_temp.customer_search_terms(merchant_id, search_names, search_contacts)",
        )
        .fetch_one(&mut *c)
        .await
        .unwrap();
        assert_eq!(differ, 0, "the code and the migration compute the same terms");
        drop(c);
        let word =
            |n: Option<&str>, c: Option<&str>| SearchWord { names: n.map(String::from), contacts: c.map(String::from) };
        let s = |words: Vec<SearchWord>| CustomerSearch { words, ..base() };
        let cases = [
            ("a name word", s(vec![word(Some("smith"), Some("smith"))])),
            ("a short prefix", s(vec![word(Some("jo"), None)])),
            ("two words", s(vec![word(Some("smith"), Some("smith")), word(Some("first12"), Some("first12"))])),
            ("a name of two tokens", s(vec![word(Some("o brien"), None)])),
            ("an email fragment", s(vec![word(None, Some("first50.smith"))])),
            ("digits", s(vec![word(Some("123"), Some("123"))])),
        ];
        for (what, q) in &cases {
            let sql = search_sql(false, tenant.id(), q);
            let explain = format!("EXPLAIN {}", sql.page);
            let rows: Vec<(String,)> = bind_args!(sqlx::query_as(&explain), &sql.args).fetch_all(pool).await.unwrap();
            let plan = rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join(" | ");
            assert!(plan.contains("Bitmap Index Scan on customers_search_terms"), "{what}: {plan}");
            assert!(!plan.contains("Seq Scan") && !plan.contains("customers_created"), "{what}: {plan}");
            assert!(!plan.contains("BitmapAnd"), "{what}: the terms alone narrow the rows: {plan}");
            let explain = format!("EXPLAIN {}", sql.count);
            let n = sql.args.len() - 2;
            let rows: Vec<(String,)> =
                bind_args!(sqlx::query_as(&explain), &sql.args[..n]).fetch_all(pool).await.unwrap();
            let plan = rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join(" | ");
            assert!(plan.contains("Bitmap Index Scan on customers_search_terms"), "{what} (count): {plan}");
        }
        // And they find what plain LIKE conditions on the same columns find.
        let like = |w: &SearchWord| {
            let mut alt = Vec::new();
            if let Some(n) = &w.names {
                alt.push(format!("search_names LIKE '{n}%' OR search_names LIKE '% {n}%'"));
            }
            if let Some(c) = &w.contacts {
                alt.push(format!("search_contacts LIKE '%{c}%'"));
            }
            format!("({})", alt.join(" OR "))
        };
        let scoped = db.scoped(tenant);
        for (what, q) in cases {
            let conditions: Vec<String> = q.words.iter().map(like).collect();
            let sql = format!("SELECT COUNT(*) FROM customers WHERE merchant_id = $1 AND {}", conditions.join(" AND "));
            let (want,): (i64,) = sqlx::query_as(&sql).bind(tenant.id()).fetch_one(pool).await.unwrap();
            let got = scoped.search_customers(&q).await.unwrap().total;
            assert_eq!(got, want, "{what}");
            assert!(want > 0 || what == "digits", "{what} finds something");
        }
        db.close().await;
    }
}

#[cfg(test)]
mod migration_tests {

    use super::*;
    use crate::domain::customer::CustomerInput;
    use crate::store::{Actor, Db, DbOptions, Pools, Tenant};

    /// A migrated database in a folder of its own, and one merchant.
    async fn migrated_with_merchant() -> (tempfile::TempDir, Db, Tenant) {
        let (dir, db) = crate::store::scratch::sqlite().await;
        let a = db.create_merchant("a").await.unwrap();
        (dir, db, a)
    }

    async fn add(db: &Db, tenant: Tenant, first: &str, last: &str) -> Uuid {
        let body =
            serde_json::json!({ "firstName": first, "lastName": last, "email": format!("{first}.{last}@example.com") });
        let input = CustomerInput::parse_create(&body, &[]).unwrap().customer;
        let id = Uuid::now_v7();
        db.write(Actor::system(tenant), move |mut tx| async move {
            tx.insert_customer(id, &input).await?;
            tx.commit().await
        })
        .await
        .unwrap();
        id
    }

    /// A customer as the code before migration 8 wrote it (today's writes also
    /// keep an index that older schemas do not have).
    async fn add_before(db: &Db, tenant: Tenant, first: &str, last: &str) -> Uuid {
        let Pools::Sqlite { write, .. } = &db.pools else { unreachable!() };
        let id = Uuid::now_v7();
        let email = format!("{first}.{last}@example.com").to_lowercase();
        sqlx::query(
            "INSERT INTO customers (merchant_id, id, version, status, first_name, last_name, email, sms_enabled, \
             use_billing_as_shipping, created_at, modified_at, email_key, first_name_key, last_name_key, company_key, \
             postal_key, search_names, search_contacts) \
             VALUES ($1, $2, 1, 'active', $3, $4, $5, false, false, 1, 1, $5, $6, $7, '', '', $8, $5)",
        )
        .bind(tenant.id())
        .bind(id)
        .bind(first)
        .bind(last)
        .bind(&email)
        .bind(first.to_lowercase())
        .bind(last.to_lowercase())
        .bind(format!("{} {}", first.to_lowercase(), last.to_lowercase()))
        .execute(write)
        .await
        .unwrap();
        id
    }

    async fn search(db: &Db, tenant: Tenant, word: &str) -> (Vec<Uuid>, i64) {
        let mut q = plan_tests::base();
        let contacts = Some(word.to_owned()).filter(|w| w.len() >= 3);
        q.words = vec![SearchWord { names: Some(word.into()), contacts }];
        let page = db.scoped(tenant).search_customers(&q).await.unwrap();
        (page.items.into_iter().map(|c| c.id).collect(), page.total)
    }

    fn input(first: &str, last: &str) -> CustomerInput {
        let body = serde_json::json!({ "firstName": first, "lastName": last });
        CustomerInput::parse_create(&body, &[]).unwrap().customer
    }

    /// Search index entries are written when their batch commits, after its jobs:
    /// in the order they were made, only for jobs that committed, and only for
    /// customers that still exist then.
    #[tokio::test]
    async fn search_entries_follow_what_their_batch_committed() {
        let (_dir, db, a) = migrated_with_merchant().await;
        let (kept, gone, renamed, dropped) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        // One job: a create, a create deleted again, a create renamed twice.
        db.write(Actor::system(a), move |mut tx| async move {
            tx.insert_customer(kept, &input("Kept", "Zweig")).await?;
            tx.insert_customer(gone, &input("Gone", "Zweig")).await?;
            tx.delete_customer(gone, None).await?;
            tx.insert_customer(renamed, &input("Olga", "Zweig")).await?;
            tx.update_customer(renamed, &input("Petra", "Zweig"), None).await?;
            tx.update_customer(renamed, &input("Quinn", "Zweig"), None).await?;
            tx.commit().await
        })
        .await
        .unwrap();
        // A job that wrote a customer, renamed another, and did not commit.
        let failed = db
            .write(Actor::system(a), move |mut tx| async move {
                tx.insert_customer(dropped, &input("Dropped", "Zweig")).await?;
                tx.update_customer(kept, &input("Wrong", "Zweig"), None).await?;
                Err::<(), _>(StoreError::NotFound("on purpose"))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(search(&db, a, "kept").await, (vec![kept], 1), "the rolled-back rename left the entry as it was");
        assert_eq!(search(&db, a, "zweig").await, (vec![renamed, kept], 2));
        assert_eq!(search(&db, a, "quinn").await, (vec![renamed], 1), "the last update's entry");
        for word in ["olga", "petra", "gone", "dropped", "wrong"] {
            assert_eq!(search(&db, a, word).await, (vec![], 0), "{word}");
        }
        // 100 in one job: a statement of 64 entries and one of 36, all of them written.
        let many: Vec<(Uuid, CustomerInput)> =
            (0..100).map(|i| (Uuid::now_v7(), input(&format!("N{i}"), "Yates"))).collect();
        db.write_bulk(Actor::system(a), move |mut tx| async move {
            let rows: Vec<(Uuid, &CustomerInput)> = many.iter().map(|(id, c)| (*id, c)).collect();
            tx.insert_customer_rows(&rows).await?;
            tx.commit().await
        })
        .await
        .unwrap();
        assert_eq!(search(&db, a, "yates").await.1, 100);
        assert_eq!(search(&db, a, "n99").await.1, 1);
        let keys: i64 = {
            let Pools::Sqlite { write, .. } = &db.pools else { unreachable!() };
            sqlx::query_scalar("SELECT count(*) FROM customer_search_fts('names : zweig')")
                .fetch_one(write)
                .await
                .unwrap()
        };
        assert_eq!(keys, 2, "one entry per customer that exists");
    }

    /// A bulk batch holds the search index's automatic merging off only while it
    /// writes its entries: after it, committed or not, the setting is what it was,
    /// and its customers are searchable.
    #[tokio::test]
    async fn a_bulk_batch_leaves_the_search_index_merging_as_it_was() {
        let (_dir, db, a) = migrated_with_merchant().await;
        let Pools::Sqlite { write, .. } = &db.pools else { unreachable!() };
        let automerge = || async {
            sqlx::query_scalar::<_, i64>("SELECT v FROM customer_search_fts_config WHERE k = 'automerge'")
                .fetch_optional(write)
                .await
                .unwrap()
        };
        let bulk = |last: &'static str, commit: bool| {
            let many: Vec<(Uuid, CustomerInput)> =
                (0..50).map(|i| (Uuid::now_v7(), input(&format!("N{i}"), last))).collect();
            db.write_bulk(Actor::system(a), move |mut tx| async move {
                let rows: Vec<(Uuid, &CustomerInput)> = many.iter().map(|(id, c)| (*id, c)).collect();
                tx.insert_customer_rows(&rows).await?;
                match commit {
                    true => tx.commit().await,
                    false => Err(StoreError::NotFound("on purpose")),
                }
            })
        };
        bulk("Abbott", true).await.unwrap();
        assert_eq!(automerge().await, Some(4), "FTS5's own default, now written down");
        assert_eq!(search(&db, a, "abbott").await.1, 50);
        sqlx::query("INSERT INTO customer_search_fts (customer_search_fts, rank) VALUES ('automerge', 8)")
            .execute(write)
            .await
            .unwrap();
        bulk("Barker", true).await.unwrap();
        assert!(bulk("Carver", false).await.is_err());
        assert_eq!(automerge().await, Some(8), "an operator's setting is kept");
        assert_eq!(search(&db, a, "barker").await.1, 50);
        assert_eq!(search(&db, a, "carver").await.1, 0);
    }

    /// A database written before the full-text keys were partitioned by merchant
    /// (and before the contacts index held run suffixes) keeps every customer
    /// searchable, by name and by any part of the email, under its own merchant
    /// only, newest first; and what is written after the upgrade joins them.
    #[tokio::test]
    async fn customers_written_before_the_current_search_indexes_stay_searchable() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
        let Pools::Sqlite { write, .. } = &db.pools else { unreachable!() };
        crate::store::migrations::sqlite_before(8).run(write).await.unwrap();
        let (a, b) = (db.create_merchant("a").await.unwrap(), db.create_merchant("b").await.unwrap());
        let lovelace = add_before(&db, a, "Ada", "Lovelace").await;
        let byron = add_before(&db, a, "Ada", "Byron").await;
        let other = add_before(&db, b, "Ada", "Lovelace").await;

        db.migrate().await.unwrap();
        assert_eq!(search(&db, a, "ada").await, (vec![byron, lovelace], 2));
        assert_eq!(search(&db, a, "lovel").await, (vec![lovelace], 1));
        assert_eq!(search(&db, a, "velace").await, (vec![lovelace], 1));
        assert_eq!(search(&db, a, "a.byron@").await, (vec![byron], 1));
        assert_eq!(search(&db, b, "ada").await, (vec![other], 1));
        let king = add(&db, a, "Ada", "King").await;
        assert_eq!(search(&db, a, "ada").await, (vec![king, byron, lovelace], 3));
        assert_eq!(search(&db, b, "king").await, (vec![], 0));
    }
}
