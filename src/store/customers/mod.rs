//! Customers: rows as stored and read whole (here), writes (each with its event,
//! in one transaction), search, and the export's snapshot.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use uuid::Uuid;

use super::custom::{CustomValues, inline_custom_values};
use super::dialect::locking;
use super::inline::{bind_numbered, driver_error};
use super::query::{Param, SqliteRow, record, sqlite_rows};
use super::search_index::{WordMatch, contact_terms};
use super::{Backend, Conn, Scoped, StoreError, WriteTx, on_conn, placeholders};
use crate::crypto::Vault;
use crate::domain::address::{Address, postal_key};
use crate::domain::customer::{CustomerInput, CustomerStatus, NewCustomer};

mod export;
mod search;
mod writes;

pub use export::ExportBatch;
pub use search::{CustomerSearch, OrderBy, SearchPage, SearchWord};
pub(crate) use search::{SEQ_BITS, SEQ_MASK, like_escape};

record! {
    /// A customer as stored.
    #[derive(Debug, Clone)]
    pub struct CustomerRecord {
        pub merchant_id: Uuid,
        pub id: Uuid,
        pub version: i64,
        pub status: String,
        pub first_name: String,
        pub last_name: String,
        pub company_name: Option<String>,
        pub email: Option<String>,
        pub mobile_phone: Option<String>,
        pub sms_enabled: bool,
        pub use_billing_as_shipping: bool,
        pub billing_line1: Option<String>,
        pub billing_line2: Option<String>,
        pub billing_city: Option<String>,
        pub billing_state: Option<String>,
        pub billing_postal_code: Option<String>,
        pub billing_country: Option<String>,
        pub shipping_line1: Option<String>,
        pub shipping_line2: Option<String>,
        pub shipping_city: Option<String>,
        pub shipping_state: Option<String>,
        pub shipping_postal_code: Option<String>,
        pub shipping_country: Option<String>,
        pub date_of_birth: Option<String>,
        pub preferred_language: Option<String>,
        pub external_reference: Option<String>,
        pub default_payment_method_id: Option<Uuid>,
        pub default_ach_payment_method_id: Option<Uuid>,
        pub transactions_count: i64,
        /// Minor units (cents).
        pub transactions_volume: i64,
        pub last_transaction_amount: Option<i64>,
        pub last_transaction_at: Option<i64>,
        pub subscriptions_count: i64,
        pub created_at: i64,
        pub modified_at: i64,
    }
}

const SELECT_COLUMNS: &str = CustomerRecord::COLUMNS;

/// A customer with its payment methods and custom values as JSON (PostgreSQL):
/// `$1` the merchant, `$2` the customer.
static PG_PARTS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SELECT_COLUMNS}, ({methods})::text AS methods_json, {PG_CUSTOM_JSON} \
         FROM customers WHERE merchant_id = $1 AND id = $2",
        methods = super::payment_methods::PG_METHODS_JSON_SQL.as_str(),
    )
});

/// PostgreSQL: a column `custom_json` of a query over `customers`, the row's
/// custom values as a JSON array of `[name, value, hint]` ([`pg_custom_values`]),
/// so a read gets them in its own round trip.
const PG_CUSTOM_JSON: &str = "(SELECT COALESCE(json_agg(json_build_array(v.name, v.value, v.hint)), '[]') \
     FROM customer_custom_values v WHERE v.merchant_id = customers.merchant_id AND v.customer_id = customers.id)::text \
     AS custom_json";

/// The custom values of a row read with [`PG_CUSTOM_JSON`], as responses show them.
fn pg_custom_values(row: &sqlx::postgres::PgRow, id: Uuid) -> Result<BTreeMap<String, serde_json::Value>, sqlx::Error> {
    let json: String = sqlx::Row::try_get(row, "custom_json")?;
    let values: Vec<(String, Option<String>, Option<String>)> =
        serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let rows = values.into_iter().map(|(name, value, hint)| (id, name, value, hint)).collect();
    Ok(super::custom::shown_values(rows).remove(&id).unwrap_or_default())
}

static GET_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SELECT_COLUMNS} FROM customers WHERE merchant_id = $1 AND id = $2"));

fn inline_customer(c: &rusqlite::Connection, merchant: Uuid, id: Uuid) -> rusqlite::Result<Option<CustomerRecord>> {
    use rusqlite::OptionalExtension;
    c.prepare_cached(GET_SQL.as_str())?.query_row((merchant, id), CustomerRecord::from_sqlite).optional()
}

/// A customer with everything its detail view shows.
pub struct CustomerParts {
    pub record: CustomerRecord,
    pub methods: Vec<super::payment_methods::MethodRecord>,
    pub custom: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Scoped<'_> {
    /// The customer, its payment methods and custom values; on SQLite read in one
    /// transaction, so the three agree.
    pub async fn customer_parts(&self, id: Uuid) -> Result<Option<CustomerParts>, sqlx::Error> {
        if let Some(r) = self.inline() {
            let merchant = self.merchant();
            return r
                .read(move |c| {
                    super::inline::read_transaction(c, |tx| {
                        let Some(record) = inline_customer(tx, merchant, id)? else { return Ok(None) };
                        let methods = super::payment_methods::inline_methods_of(tx, merchant, id)?;
                        let custom = inline_custom_values(tx, merchant, &[id])?.remove(&id).unwrap_or_default();
                        Ok(Some(CustomerParts { record, methods, custom }))
                    })
                })
                .await;
        }
        let Conn::Postgres(pool) = self.conn() else {
            let Some(record) = self.get_customer(id).await? else { return Ok(None) };
            return self.parts_of(record).await.map(Some);
        };
        // PostgreSQL: one statement, so one round trip and one snapshot.
        let row = sqlx::query(PG_PARTS_SQL.as_str()).bind(self.merchant()).bind(id).fetch_optional(pool).await?;
        let Some(row) = row else { return Ok(None) };
        let record: CustomerRecord = sqlx::FromRow::from_row(&row)?;
        let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
        let methods_json: String = sqlx::Row::try_get(&row, "methods_json")?;
        let methods = serde_json::from_str(&methods_json).map_err(decode)?;
        let custom = pg_custom_values(&row, id)?;
        Ok(Some(CustomerParts { record, methods, custom }))
    }

    /// The methods and custom values of a customer already read.
    pub async fn parts_of(&self, record: CustomerRecord) -> Result<CustomerParts, sqlx::Error> {
        let methods = self.methods_of(record.id).await?;
        let custom = self.custom_values(&[record.id]).await?.remove(&record.id).unwrap_or_default();
        Ok(CustomerParts { record, methods, custom })
    }

    pub async fn get_customer(&self, id: Uuid) -> Result<Option<CustomerRecord>, sqlx::Error> {
        if let Some(r) = self.inline() {
            let merchant = self.merchant();
            return r.read(move |c| inline_customer(c, merchant, id)).await;
        }
        on_conn!(self.conn(), p => sqlx::query_as::<_, CustomerRecord>(GET_SQL.as_str())
            .bind(self.merchant()).bind(id).fetch_optional(p).await)
    }
}
