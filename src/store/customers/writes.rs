//! Customer writes: create, update, status, delete, and the bulk lookups of an
//! import; each row write computes its search terms.

use super::*;
use crate::domain::event::EventType;

/// The columns a create or update writes from the request, in bind order.
const INPUT_COLUMNS: [&str; 29] = [
    "first_name",
    "last_name",
    "company_name",
    "email",
    "mobile_phone",
    "sms_enabled",
    "use_billing_as_shipping",
    "billing_line1",
    "billing_line2",
    "billing_city",
    "billing_state",
    "billing_postal_code",
    "billing_country",
    "shipping_line1",
    "shipping_line2",
    "shipping_city",
    "shipping_state",
    "shipping_postal_code",
    "shipping_country",
    "date_of_birth",
    "preferred_language",
    "external_reference",
    "email_key",
    "first_name_key",
    "last_name_key",
    "company_key",
    "postal_key",
    "search_names",
    "search_contacts",
];

/// `$1..$6` are merchant, id, version, status, created, modified.
/// Parameters of one inserted row: the six above, then [`INPUT_COLUMNS`].
const INSERT_PARAMS: usize = 6 + INPUT_COLUMNS.len();
/// Rows per statement of a bulk insert where the backend takes many
/// ([`Backend::rows_per_insert`]): 2,240 parameters, one round trip instead of 64.
const INSERT_ROWS: usize = 64;

/// PostgreSQL's search terms (see `search_index::lexemes`): one more value after
/// [`INPUT_COLUMNS`] in its customer writes, made a `tsvector` by this expression
/// of its placeholder. SQLite keeps its terms in its full-text index instead.
const PG_TERMS_COLUMN: &str = "search_terms";
fn pg_terms_value(placeholder: &str) -> String {
    format!("array_to_tsvector(string_to_array({placeholder}, ' '))")
}

/// `INSERT … VALUES (…), (…)` of `rows` rows; on PostgreSQL with the search terms.
fn insert_sql(rows: usize, pg: bool) -> String {
    let cols = INPUT_COLUMNS.join(", ");
    let per_row = INSERT_PARAMS + usize::from(pg);
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let first = 1 + r * per_row;
            match pg {
                false => format!("({})", placeholders(first, INSERT_PARAMS)),
                true => format!(
                    "({}, {})",
                    placeholders(first, INSERT_PARAMS),
                    pg_terms_value(&format!("${}", first + INSERT_PARAMS))
                ),
            }
        })
        .collect();
    let extra = if pg { format!(", {PG_TERMS_COLUMN}") } else { String::new() };
    format!(
        "INSERT INTO customers (merchant_id, id, version, status, created_at, modified_at, {cols}{extra}) VALUES {}",
        values.join(", ")
    )
}

/// One row (SQLite), and one and [`INSERT_ROWS`] rows (PostgreSQL).
static INSERT_SQL: LazyLock<[String; 2]> = LazyLock::new(|| [insert_sql(1, false), insert_sql(INSERT_ROWS, false)]);
static PG_INSERT_SQL: LazyLock<[String; 2]> = LazyLock::new(|| [insert_sql(1, true), insert_sql(INSERT_ROWS, true)]);

/// The statement for a chunk of `rows` rows: one of the `cached` (1 and
/// [`INSERT_ROWS`] rows), or built for the last, shorter chunk.
fn chunk_sql(cached: &[String; 2], rows: usize, build: impl FnOnce(usize) -> String) -> Cow<'_, str> {
    match rows {
        1 => Cow::Borrowed(&cached[0]),
        INSERT_ROWS => Cow::Borrowed(&cached[1]),
        n => Cow::Owned(build(n)),
    }
}

/// `$1` merchant, `$2` id, `$3` modified; the request's columns from `$4`
/// (then, on PostgreSQL, the search terms).
fn update_sql(pg: bool) -> String {
    let mut sets: Vec<String> = INPUT_COLUMNS.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 4)).collect();
    if pg {
        sets.push(format!("{PG_TERMS_COLUMN} = {}", pg_terms_value(&format!("${}", INPUT_COLUMNS.len() + 4))));
    }
    format!(
        "UPDATE customers SET {}, version = version + 1, modified_at = $3 WHERE merchant_id = $1 AND id = $2",
        sets.join(", ")
    )
}
static UPDATE_SQL: LazyLock<[String; 2]> = LazyLock::new(|| [update_sql(false), update_sql(true)]);

/// The request's values in [`INPUT_COLUMNS`] order.
struct InputValues<'a> {
    texts: [Option<&'a str>; 5],
    flags: [bool; 2],
    billing: [Option<&'a str>; 6],
    shipping: [Option<&'a str>; 6],
    date_of_birth: Option<String>,
    preferred_language: Option<&'a str>,
    external_reference: Option<&'a str>,
    keys: [String; 7],
}

fn address_values(a: Option<&Address>) -> [Option<&str>; 6] {
    match a {
        None => [None; 6],
        Some(a) => [
            a.line1.as_deref(),
            a.line2.as_deref(),
            a.city.as_deref(),
            a.state.as_deref(),
            a.postal_code.as_deref(),
            a.country.as_deref(),
        ],
    }
}

impl<'a> InputValues<'a> {
    /// The last two of [`INPUT_COLUMNS`].
    fn search_names(&self) -> &str {
        &self.keys[5]
    }

    fn search_contacts(&self) -> &str {
        &self.keys[6]
    }

    /// The customer's search terms on PostgreSQL.
    fn pg_terms(&self, merchant: Uuid) -> String {
        crate::store::search_index::lexemes(merchant, self.search_names(), self.search_contacts())
    }

    /// The customer's search index entry (SQLite).
    fn index_entry(&self, merchant: Uuid, id: Uuid, replace: bool) -> crate::store::search_index::Entry {
        crate::store::search_index::Entry {
            merchant,
            id,
            names: self.search_names().to_owned(),
            contacts: contact_terms(self.search_contacts()),
            replace,
        }
    }

    /// The values in [`INPUT_COLUMNS`] order.
    fn params(&self) -> impl Iterator<Item = &dyn Param<'_>> {
        let text = |t| t as &dyn Param<'_>;
        self.texts
            .iter()
            .map(text)
            .chain(self.flags.iter().map(|f| f as &dyn Param<'_>))
            .chain(self.billing.iter().chain(&self.shipping).map(text))
            .chain([&self.date_of_birth as &dyn Param<'_>, &self.preferred_language, &self.external_reference])
            .chain(self.keys.iter().map(|k| k as &dyn Param<'_>))
    }

    fn of(c: &'a CustomerInput) -> Self {
        InputValues {
            texts: [
                Some(c.first_name.as_str()),
                Some(c.last_name.as_str()),
                c.company_name.as_deref(),
                c.email.as_ref().map(|e| e.as_str()),
                c.mobile_phone.as_ref().map(|p| p.as_str()),
            ],
            flags: [c.sms_enabled, c.use_billing_as_shipping],
            billing: address_values(c.billing.as_ref()),
            shipping: address_values(c.shipping.as_ref()),
            date_of_birth: c.date_of_birth.map(|d| d.format("%Y-%m-%d").to_string()),
            preferred_language: c.preferred_language.as_deref(),
            external_reference: c.external_reference.as_deref(),
            keys: [
                c.email.as_ref().map(|e| e.normalized().to_owned()).unwrap_or_default(),
                c.first_name.to_lowercase(),
                c.last_name.to_lowercase(),
                c.company_name.as_deref().map(str::to_lowercase).unwrap_or_default(),
                c.billing.as_ref().and_then(|b| b.postal_code.as_deref()).map(postal_key).unwrap_or_default(),
                c.search_names(),
                c.search_contacts(),
            ],
        }
    }
}

/// The only unique key a customer write can break is `externalReference`'s: a writer
/// that skipped or raced the lookup gets the same 409 (without the holder's id).
fn reference_taken(e: sqlx::Error) -> StoreError {
    if crate::store::is_unique_violation(&e) { StoreError::DuplicateReference { existing: None } } else { e.into() }
}

impl WriteTx {
    /// A reference is unique per merchant: another customer holding it is a conflict.
    async fn check_reference(&mut self, id: Uuid, input: &CustomerInput) -> Result<(), StoreError> {
        let Some(reference) = input.external_reference.as_deref() else { return Ok(()) };
        let merchant = self.merchant();
        if let crate::store::TxInner::Postgres(t) = &mut self.inner {
            // Transactions claiming one reference queue here until the first commits, so
            // the next one's lookup sees its row (SQLite's single writer queues them anyway).
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2, 0))")
                .bind(merchant)
                .bind(reference)
                .execute(t.conn().await?)
                .await?;
        }
        let other: Option<(Uuid,)> = self
            .fetch_optional(
                "SELECT id FROM customers WHERE merchant_id = $1 AND external_reference = $2 AND id <> $3",
                &[&merchant, &reference, &id],
            )
            .await?;
        match other {
            Some((existing,)) => Err(StoreError::DuplicateReference { existing: Some(existing) }),
            None => Ok(()),
        }
    }

    pub async fn insert_customer(&mut self, id: Uuid, input: &CustomerInput) -> Result<(), StoreError> {
        self.check_reference(id, input).await?;
        self.insert_customer_row(id, input).await?;
        self.event(EventType::CustomerCreated, id).await?;
        Ok(())
    }

    /// Writes what a create body brings besides the row: its custom values (first
    /// clearing the `replacing` names) and its inline cards and bank accounts.
    pub async fn write_parts(
        &mut self,
        vault: &Vault,
        id: Uuid,
        replacing: &[String],
        new: &NewCustomer,
    ) -> Result<(), StoreError> {
        self.write_custom_values(vault, id, replacing, &new.customer.custom).await?;
        for card in &new.cards {
            self.add_card(vault, id, Uuid::now_v7(), card).await?;
        }
        for ach in &new.ach_accounts {
            self.add_ach(vault, id, Uuid::now_v7(), ach).await?;
        }
        Ok(())
    }

    pub(crate) async fn insert_customer_row(&mut self, id: Uuid, input: &CustomerInput) -> Result<(), StoreError> {
        self.write_customer_rows(&[(id, input)], true).await
    }

    /// Inserts the rows alone, in order, for a bulk writer that has already looked
    /// their `externalReference`s up (the unique index still refuses a duplicate)
    /// and records the `customer.created` events together ([`WriteTx::events`]).
    pub(crate) async fn insert_customer_rows(&mut self, rows: &[(Uuid, &CustomerInput)]) -> Result<(), StoreError> {
        self.write_customer_rows(rows, false).await
    }

    /// `later`: the rows' refusal may wait for the commit ([`WriteTx::later`]);
    /// a bulk writer needs it at once, to retry its lines one by one.
    async fn write_customer_rows(&mut self, rows: &[(Uuid, &CustomerInput)], later: bool) -> Result<(), StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        let (version, status) = (1_i64, CustomerStatus::Active.as_str());
        let pg = self.backend() == Backend::Postgres;
        let per_statement = self.backend().rows_per_insert(INSERT_ROWS);
        for chunk in rows.chunks(per_statement) {
            let cached = if pg { &PG_INSERT_SQL } else { &INSERT_SQL };
            let sql = chunk_sql(cached, chunk.len(), |n| insert_sql(n, pg));
            let values: Vec<InputValues> = chunk.iter().map(|(_, input)| InputValues::of(input)).collect();
            let terms: Vec<String> = match pg {
                true => values.iter().map(|v| v.pg_terms(merchant)).collect(),
                false => Vec::new(),
            };
            let mut args: Vec<&dyn Param<'_>> = Vec::with_capacity(chunk.len() * (INSERT_PARAMS + 1));
            for (i, ((id, _), v)) in chunk.iter().zip(&values).enumerate() {
                args.extend([&merchant as &dyn Param<'_>, id, &version, &status, &now, &now]);
                args.extend(v.params());
                args.extend(terms.get(i).map(|t| t as &dyn Param<'_>));
            }
            if later {
                self.later(&sql, &args, reference_taken).await?;
            } else {
                self.exec(&sql, &args).await.map_err(reference_taken)?;
            }
            if let crate::store::TxInner::Sqlite(lease) = &mut self.inner {
                // SQLite's search index holds terms computed here (see `search_index`).
                for ((id, _), v) in chunk.iter().zip(&values) {
                    lease.index_later(v.index_entry(merchant, *id, false));
                }
            }
        }
        Ok(())
    }

    /// The current version of a customer, locked for this transaction's update.
    async fn customer_version(&mut self, id: Uuid) -> Result<i64, StoreError> {
        let merchant = self.merchant();
        let sql = self.backend().locking(&locking!("SELECT version FROM customers WHERE merchant_id = $1 AND id = $2"));
        let row: Option<(i64,)> = self.fetch_optional(sql, &[&merchant, &id]).await?;
        row.map(|(v,)| v).ok_or(StoreError::NotFound("Customer"))
    }

    async fn check_version(&mut self, id: Uuid, if_match: Option<i64>) -> Result<i64, StoreError> {
        let current = self.customer_version(id).await?;
        match if_match {
            Some(expected) if expected != current => Err(StoreError::VersionMismatch { current }),
            _ => Ok(current),
        }
    }

    pub async fn get_customer(&mut self, id: Uuid) -> Result<CustomerRecord, StoreError> {
        let merchant = self.merchant();
        let row = self.fetch_optional::<CustomerRecord>(GET_SQL.as_str(), &[&merchant, &id]).await?;
        row.ok_or(StoreError::NotFound("Customer"))
    }

    pub async fn update_customer(
        &mut self,
        id: Uuid,
        input: &CustomerInput,
        if_match: Option<i64>,
    ) -> Result<CustomerRecord, StoreError> {
        self.check_version(id, if_match).await?;
        self.check_reference(id, input).await?;
        let v = InputValues::of(input);
        let (merchant, now) = (self.merchant(), self.now);
        let pg = self.backend() == Backend::Postgres;
        let terms = if pg { v.pg_terms(merchant) } else { String::new() };
        let mut args: Vec<&dyn Param<'_>> = vec![&merchant, &id, &now];
        args.extend(v.params());
        if pg {
            args.push(&terms);
        }
        self.exec(&UPDATE_SQL[usize::from(pg)], &args).await.map_err(reference_taken)?;
        if let crate::store::TxInner::Sqlite(lease) = &mut self.inner {
            lease.index_later(v.index_entry(merchant, id, true));
        }
        self.event(EventType::CustomerUpdated, id).await?;
        self.get_customer(id).await
    }

    pub async fn set_customer_status(
        &mut self,
        id: Uuid,
        status: CustomerStatus,
        if_match: Option<i64>,
    ) -> Result<CustomerRecord, StoreError> {
        self.check_version(id, if_match).await?;
        let (merchant, now) = (self.merchant(), self.now);
        let changed = self
            .exec(
                "UPDATE customers SET status = $1, version = version + 1, modified_at = $2 \
             WHERE merchant_id = $3 AND id = $4 AND status <> $1",
                &[&status.as_str(), &now, &merchant, &id],
            )
            .await?;
        if changed == 1 {
            self.event(EventType::CustomerStatusChanged, id).await?;
        }
        self.get_customer(id).await
    }

    /// Deletes the customer; its payment data goes with it in this transaction.
    pub async fn delete_customer(&mut self, id: Uuid, if_match: Option<i64>) -> Result<(), StoreError> {
        self.check_version(id, if_match).await?;
        let merchant = self.merchant();
        self.exec("DELETE FROM customers WHERE merchant_id = $1 AND id = $2", &[&merchant, &id]).await?;
        self.secrets_removed();
        self.event(EventType::CustomerDeleted, id).await?;
        Ok(())
    }
}

impl WriteTx {
    /// The customers holding these references, by reference (one query per 500).
    pub async fn customers_by_references(&mut self, refs: &[&str]) -> Result<HashMap<String, Uuid>, StoreError> {
        let merchant = self.merchant();
        let mut held = HashMap::with_capacity(refs.len());
        for chunk in refs.chunks(500) {
            let sql =
                self.backend().rows_by_keys("external_reference, id", "customers", "external_reference", chunk.len());
            let mut args: Vec<&dyn Param<'_>> = vec![&merchant];
            args.extend(chunk.iter().map(|r| r as &dyn Param<'_>));
            let rows: Vec<(String, Uuid)> = self.fetch_all(&sql, &args).await?;
            held.extend(rows);
        }
        Ok(held)
    }

    /// Which of these ids are customers of the merchant (one query per 500).
    pub async fn existing_customers(&mut self, ids: &[Uuid]) -> Result<std::collections::HashSet<Uuid>, StoreError> {
        let merchant = self.merchant();
        let mut found = std::collections::HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = self.backend().rows_by_keys("id", "customers", "id", chunk.len());
            let mut args: Vec<&dyn Param<'_>> = vec![&merchant];
            args.extend(chunk.iter().map(|r| r as &dyn Param<'_>));
            let rows: Vec<(Uuid,)> = self.fetch_all(&sql, &args).await?;
            found.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(found)
    }

    /// The customer holding this `externalReference`.
    pub async fn customer_by_reference(&mut self, reference: &str) -> Result<Option<Uuid>, StoreError> {
        let merchant = self.merchant();
        let row: Option<(Uuid,)> = self
            .fetch_optional(
                "SELECT id FROM customers WHERE merchant_id = $1 AND external_reference = $2",
                &[&merchant, &reference],
            )
            .await?;
        Ok(row.map(|(id,)| id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Actor, Db};

    async fn write_named(db: &Db, tenant: crate::store::Tenant, reference: &str) -> Result<(), StoreError> {
        let body = serde_json::json!({"firstName": "Ada", "lastName": "Byron", "externalReference": reference});
        let input = CustomerInput::parse_create(&body, &[]).unwrap().customer;
        db.write(Actor::system(tenant), move |mut tx| async move {
            // The row alone, as a writer that raced the lookup writes it.
            tx.insert_customer_row(Uuid::now_v7(), &input).await?;
            tx.event(EventType::CustomerCreated, Uuid::now_v7()).await?;
            tx.commit().await
        })
        .await
    }

    /// A create's row goes with its commit on PostgreSQL, so the unique key's
    /// refusal comes at the commit: it still reads as the reference taken, as it
    /// does on SQLite, where the insert itself is refused.
    #[tokio::test]
    async fn a_reference_refused_at_the_commit_is_a_duplicate_reference() {
        let (_dir, sqlite) = crate::store::scratch::sqlite().await;
        let postgres = crate::store::scratch::postgres().await;
        for db in [Some(&sqlite), postgres.as_ref().map(|(db, _)| db)].into_iter().flatten() {
            let tenant = db.create_merchant("References").await.unwrap();
            write_named(db, tenant, "R-1").await.unwrap();
            let refused = write_named(db, tenant, "R-1").await.unwrap_err();
            assert!(matches!(refused, StoreError::DuplicateReference { existing: None }), "{refused:?}");
            write_named(db, tenant, "R-2").await.unwrap();
            let (n,): (i64,) = on_conn!(db.reader(), p => sqlx::query_as("SELECT count(*) FROM customers WHERE merchant_id = $1").bind(tenant.id()).fetch_one(p).await).unwrap();
            assert_eq!(n, 2, "the refused create left nothing");
            let (events,): (i64,) = on_conn!(db.reader(), p => sqlx::query_as("SELECT count(*) FROM events WHERE merchant_id = $1 AND type = 'customer.created'").bind(tenant.id()).fetch_one(p).await).unwrap();
            assert_eq!(events, 2, "nor its event");
        }
    }
}
