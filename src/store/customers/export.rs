//! The export: every customer of a merchant from one snapshot, in batches.

use super::*;

/// One batch of an export: customers and their non-secret custom values.
pub type ExportBatch = (Vec<CustomerRecord>, std::collections::HashMap<Uuid, Vec<(String, String)>>);

/// An export reads this many customers at a time.
const EXPORT_BATCH: usize = 1000;

static EXPORT_PAGE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SELECT_COLUMNS} FROM customers WHERE merchant_id = $1 AND id > $2 ORDER BY merchant_id, id LIMIT {EXPORT_BATCH}"
    )
});

/// The non-secret custom values of the customers with `$2 < id <= $3`: a range of
/// the table's key, the same range a page of the export covers.
const EXPORT_CUSTOM_SQL: &str = "SELECT customer_id, name, value FROM customer_custom_values \
    WHERE merchant_id = $1 AND customer_id > $2 AND customer_id <= $3 AND value IS NOT NULL";

fn by_customer(rows: Vec<(Uuid, String, String)>) -> HashMap<Uuid, Vec<(String, String)>> {
    let mut custom: HashMap<Uuid, Vec<(String, String)>> = HashMap::new();
    for (c, name, value) in rows {
        custom.entry(c).or_default().push((name, value));
    }
    custom
}

/// The SQLite export: one read transaction on a connection of its own, on a
/// blocking thread, rows decoded straight from SQLite's buffers.
fn export_inline(
    c: &rusqlite::Connection,
    merchant: Uuid,
    send: &tokio::sync::mpsc::Sender<ExportBatch>,
) -> rusqlite::Result<()> {
    let tx = c.unchecked_transaction()?;
    let mut page = tx.prepare(&EXPORT_PAGE_SQL)?;
    let mut custom = tx.prepare(EXPORT_CUSTOM_SQL)?;
    let mut after = Uuid::nil();
    loop {
        let rows: Vec<CustomerRecord> = sqlite_rows(&mut page, (merchant, after))?;
        let Some(last) = rows.last().map(|r| r.id) else { break };
        let values = custom
            .query_map((merchant, after, last), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        after = last;
        let done = rows.len() < EXPORT_BATCH;
        if send.blocking_send((rows, by_customer(values))).is_err() || done {
            break;
        }
    }
    Ok(())
}

impl crate::store::Db {
    /// Streams every customer of the merchant in batches from one read
    /// transaction, so the export is a consistent snapshot while writes go on.
    /// Stops early when `send` reports the receiver is gone.
    pub async fn export_customers(
        &self,
        tenant: crate::store::Tenant,
        send: &tokio::sync::mpsc::Sender<ExportBatch>,
    ) -> Result<(), sqlx::Error> {
        let merchant = tenant.id();
        if let Some(inline) = self.inline() {
            let conn = inline.dedicated().map_err(driver_error)?;
            let send = send.clone();
            return tokio::task::spawn_blocking(move || export_inline(&conn, merchant, &send))
                .await
                .map_err(driver_error)?
                .map_err(driver_error);
        }
        let exports = self.export_pool().map(Conn::Postgres).unwrap_or_else(|| self.reader());
        on_conn!(exports, p => {
            let mut tx = p.begin().await?;
            if matches!(self.reader(), Conn::Postgres(_)) {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
            }
            let mut after = Uuid::nil();
            loop {
                let rows = sqlx::query_as::<_, CustomerRecord>(&EXPORT_PAGE_SQL).bind(merchant).bind(after).fetch_all(&mut *tx).await?;
                let Some(last) = rows.last().map(|r| r.id) else { break };
                let values = sqlx::query_as::<_, (Uuid, String, String)>(EXPORT_CUSTOM_SQL)
                    .bind(merchant).bind(after).bind(last).fetch_all(&mut *tx).await?;
                after = last;
                let done = rows.len() < EXPORT_BATCH;
                if send.send((rows, by_customer(values))).await.is_err() || done {
                    break;
                }
            }
            tx.rollback().await
        })
    }
}
