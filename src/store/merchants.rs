//! Merchants and their API keys. These are operator-level records: the
//! functions here are used by authentication and the CLI, not by API handlers.

use uuid::Uuid;

use super::{Db, Tenant, now_ms, on_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRecord {
    pub merchant_id: Uuid,
    pub id: Uuid,
    pub scopes: String,
}

impl Db {
    pub async fn create_merchant(&self, name: &str) -> Result<Tenant, sqlx::Error> {
        let id = Uuid::now_v7();
        on_conn!(self.writer(), p => sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id).bind(name).bind(now_ms()).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(Tenant::trusted(id))
    }

    /// The merchant with this id, when it exists (for the operator's CLI).
    pub async fn find_merchant(&self, id: Uuid) -> Result<Option<Tenant>, sqlx::Error> {
        let row: Option<(Uuid,)> = on_conn!(self.reader(), p => sqlx::query_as("SELECT id FROM merchants WHERE id = $1")
            .bind(id).fetch_optional(p).await)?;
        Ok(row.map(|(id,)| Tenant::trusted(id)))
    }

    pub async fn count_merchants(&self) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) =
            on_conn!(self.reader(), p => sqlx::query_as("SELECT COUNT(*) FROM merchants").fetch_one(p).await)?;
        Ok(n)
    }

    pub async fn insert_api_key(
        &self,
        tenant: Tenant,
        id: Uuid,
        key_hash: &[u8],
        scopes: &str,
    ) -> Result<(), sqlx::Error> {
        on_conn!(self.writer(), p => sqlx::query(
            "INSERT INTO api_keys (merchant_id, id, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(tenant.id()).bind(id).bind(key_hash).bind(scopes).bind(now_ms()).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Revokes a key; `false` when no live key has this id.
    pub async fn revoke_api_key(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        let done = on_conn!(self.writer(), p => sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms()).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// The live key whose hash this is.
    pub async fn find_api_key(&self, key_hash: &[u8]) -> Result<Option<KeyRecord>, sqlx::Error> {
        on_conn!(self.reader(), p => sqlx::query_as::<_, KeyRecord>(
            "SELECT merchant_id, id, scopes FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(key_hash).fetch_optional(p).await)
    }
}
