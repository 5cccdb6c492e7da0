//! Merchants and their API keys. These are operator-level records: the
//! functions here are used by authentication and the CLI, not by API handlers.
//! Their writes go through [`Db::write`] in the merchant's name, like every other.

use uuid::Uuid;

use super::query::record;
use super::{Actor, Db, Scoped, StoreError, Tenant, WriteTx, on_conn};
use crate::domain::event::EventType;

record! {
    #[derive(Debug, Clone)]
    pub struct MerchantRecord {
        pub id: Uuid,
        pub name: String,
        pub created_at: i64,
    }
}

record! {
    /// A key as its merchant's staff see it: never the key, nor its hash.
    #[derive(Debug, Clone)]
    pub struct KeyListing {
        pub id: Uuid,
        pub scopes: String,
        pub created_at: i64,
        pub revoked_at: Option<i64>,
        pub last_used_at: Option<i64>,
    }
}

record! {
    #[derive(Debug, Clone)]
    pub struct KeyRecord {
        pub merchant_id: Uuid,
        pub id: Uuid,
        pub scopes: String,
        pub last_used_at: Option<i64>,
    }
}

impl Db {
    pub async fn create_merchant(&self, name: &str) -> Result<Tenant, StoreError> {
        let tenant = Tenant::trusted(Uuid::now_v7());
        let name = name.to_owned();
        self.write(Actor::system(tenant), move |mut tx| async move {
            let (id, now) = (tenant.id(), tx.now);
            tx.exec("INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)", &[&id, &name, &now]).await?;
            tx.commit().await
        })
        .await?;
        Ok(tenant)
    }

    /// The merchant with this id, when it exists (for the operator's CLI).
    pub async fn find_merchant(&self, id: Uuid) -> Result<Option<Tenant>, sqlx::Error> {
        let row: Option<(Uuid,)> = on_conn!(self.reader(), p => sqlx::query_as("SELECT id FROM merchants WHERE id = $1")
            .bind(id).fetch_optional(p).await)?;
        Ok(row.map(|(id,)| Tenant::trusted(id)))
    }

    /// Every merchant, the oldest first (for the operator's CLI).
    pub async fn merchants(&self) -> Result<Vec<MerchantRecord>, sqlx::Error> {
        on_conn!(self.reader(), p => sqlx::query_as::<_, MerchantRecord>(
            "SELECT id, name, created_at FROM merchants ORDER BY created_at, id").fetch_all(p).await)
    }

    pub async fn count_merchants(&self) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) =
            on_conn!(self.reader(), p => sqlx::query_as("SELECT COUNT(*) FROM merchants").fetch_one(p).await)?;
        Ok(n)
    }

    /// Revokes a key; `false` when no live key has this id.
    pub async fn revoke_api_key(&self, id: Uuid) -> Result<bool, StoreError> {
        let owner: Option<(Uuid,)> = on_conn!(self.reader(), p => sqlx::query_as(
            "SELECT merchant_id FROM api_keys WHERE id = $1").bind(id).fetch_optional(p).await)?;
        let Some((merchant,)) = owner else { return Ok(false) };
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            let done = tx.revoke_api_key(id).await?;
            tx.commit().await?;
            Ok(done)
        })
        .await
    }

    /// Notes that a key was used now (no event: it is bookkeeping, not a change).
    pub async fn touch_api_key(&self, tenant: Tenant, id: Uuid) -> Result<(), StoreError> {
        self.write(Actor::system(tenant), move |mut tx| async move {
            let (merchant, now) = (tx.merchant(), tx.now);
            tx.exec(
                "UPDATE api_keys SET last_used_at = $1 WHERE merchant_id = $2 AND id = $3",
                &[&now, &merchant, &id],
            )
            .await?;
            tx.commit().await
        })
        .await
    }

    /// The live key whose hash this is.
    pub async fn find_api_key(&self, key_hash: &[u8]) -> Result<Option<KeyRecord>, sqlx::Error> {
        on_conn!(self.reader(), p => sqlx::query_as::<_, KeyRecord>(
            "SELECT merchant_id, id, scopes, last_used_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(key_hash).fetch_optional(p).await)
    }
}

impl WriteTx {
    pub async fn insert_api_key(&mut self, id: Uuid, key_hash: &[u8], scopes: &str) -> Result<(), StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        self.exec(
            "INSERT INTO api_keys (merchant_id, id, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&merchant, &id, &key_hash, &scopes, &now],
        )
        .await?;
        self.event(EventType::ApiKeyCreated, id).await?;
        Ok(())
    }

    /// Revokes one of the merchant's keys; `false` when it has no live key of this id.
    pub async fn revoke_api_key(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        let done = self
            .exec(
                "UPDATE api_keys SET revoked_at = $1 WHERE merchant_id = $2 AND id = $3 AND revoked_at IS NULL",
                &[&now, &merchant, &id],
            )
            .await?;
        if done == 1 {
            self.event(EventType::ApiKeyRevoked, id).await?;
        }
        Ok(done == 1)
    }
}

impl Scoped<'_> {
    /// The merchant's keys, the newest first (at most `limit`).
    pub async fn api_keys(&self, limit: i64) -> Result<Vec<KeyListing>, sqlx::Error> {
        on_conn!(self.conn(), p => sqlx::query_as::<_, KeyListing>(
            "SELECT id, scopes, created_at, revoked_at, last_used_at FROM api_keys WHERE merchant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2")
            .bind(self.merchant()).bind(limit).fetch_all(p).await)
    }
}
