//! The data-key ring (`encryption_keys`) and key rotation.

use uuid::Uuid;

use super::{Db, StoreError, WriteTx, now_ms, on_conn, on_tx};
use crate::crypto::Vault;

impl Db {
    /// Installs every data key into the vault, creating version 1 on a new database.
    pub async fn load_keys(&self, vault: &Vault) -> anyhow::Result<()> {
        let mut rows = self.wrapped_keys().await?;
        if rows.is_empty() {
            let wrapped = vault.new_wrapped_key(1);
            on_conn!(self.writer(), p => sqlx::query(
                "INSERT INTO encryption_keys (version, wrapped_key, created_at) VALUES (1, $1, $2) ON CONFLICT DO NOTHING")
                .bind(&wrapped).bind(now_ms()).execute(p).await.map(|r| r.rows_affected()))?;
            rows = self.wrapped_keys().await?;
        }
        vault.install(&rows)
    }

    async fn wrapped_keys(&self) -> Result<Vec<(u32, Vec<u8>)>, sqlx::Error> {
        let rows: Vec<(i64, Vec<u8>)> = on_conn!(self.reader(), p => sqlx::query_as(
            "SELECT version, wrapped_key FROM encryption_keys ORDER BY version").fetch_all(p).await)?;
        Ok(rows.into_iter().map(|(v, k)| (v as u32, k)).collect())
    }

    /// Makes sure `version` is installed, reloading the ring once (another node or
    /// `clientele keys rotate` may have added it).
    pub async fn ensure_key(&self, vault: &Vault, version: u32) -> anyhow::Result<()> {
        if !vault.has_version(version) {
            vault.install(&self.wrapped_keys().await?)?;
            anyhow::ensure!(vault.has_version(version), "data key version {version} does not exist");
        }
        Ok(())
    }

    /// Adds a data key version and re-encrypts every stored secret with it. Safe
    /// to run while servers write: they read the active version inside each write
    /// transaction, and rows are re-read until none is left on an older version.
    pub async fn rotate_keys(&self, vault: &Vault) -> anyhow::Result<RotationReport> {
        self.load_keys(vault).await?;
        let (current,): (i64,) = on_conn!(self.writer(), p => sqlx::query_as(
            "SELECT COALESCE(MAX(version), 0) FROM encryption_keys").fetch_one(p).await)?;
        let version = (current + 1) as u32;
        let wrapped = vault.new_wrapped_key(version);
        on_conn!(self.writer(), p => sqlx::query(
            "INSERT INTO encryption_keys (version, wrapped_key, created_at) VALUES ($1, $2, $3)")
            .bind(i64::from(version)).bind(&wrapped).bind(now_ms()).execute(p).await.map(|r| r.rows_affected()))?;
        vault.install(&[(version, wrapped)])?;
        let mut reencrypted = 0u64;
        loop {
            let batch: Vec<SecretRow> = on_conn!(self.writer(), p => sqlx::query_as::<_, SecretRow>(
                "SELECT merchant_id, id, key_version, secret, tax_id_secret FROM payment_methods \
                 WHERE key_version < $1 LIMIT 500")
                .bind(i64::from(version)).fetch_all(p).await)?;
            if batch.is_empty() {
                break;
            }
            for row in batch {
                let seal = |field: &str, blob: &Option<Vec<u8>>| -> anyhow::Result<Option<Vec<u8>>> {
                    let Some(blob) = blob else { return Ok(None) };
                    let aad = secret_aad(row.merchant_id, row.id, field);
                    let clear = vault.open(blob, &aad)?;
                    Ok(Some(vault.seal(version, &aad, &clear)?))
                };
                if let Some(old) =
                    [&row.secret, &row.tax_id_secret].into_iter().flatten().find_map(|b| Vault::version_of(b))
                {
                    self.ensure_key(vault, old).await?;
                }
                let secret = seal("secret", &row.secret)?;
                let tax = seal("tax_id", &row.tax_id_secret)?;
                let done = on_conn!(self.writer(), p => sqlx::query(
                    "UPDATE payment_methods SET secret = $1, tax_id_secret = $2, key_version = $3 \
                     WHERE merchant_id = $4 AND id = $5 AND key_version = $6")
                    .bind(secret).bind(tax).bind(i64::from(version)).bind(row.merchant_id).bind(row.id).bind(row.key_version)
                    .execute(p).await.map(|r| r.rows_affected()))?;
                reencrypted += done;
            }
        }
        Ok(RotationReport { version, reencrypted })
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationReport {
    pub version: u32,
    pub reencrypted: u64,
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    merchant_id: Uuid,
    id: Uuid,
    key_version: i64,
    secret: Option<Vec<u8>>,
    tax_id_secret: Option<Vec<u8>>,
}

/// What a secret is bound to: its merchant, its row and its field.
pub fn secret_aad(merchant: Uuid, id: Uuid, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + field.len());
    aad.extend_from_slice(merchant.as_bytes());
    aad.extend_from_slice(id.as_bytes());
    aad.extend_from_slice(field.as_bytes());
    aad
}

impl WriteTx {
    /// The data key version new secrets are sealed with, read in this transaction
    /// so a rotation that committed before it is always seen; installed in the
    /// vault if this node has not loaded it yet.
    pub async fn active_key_version(&mut self, vault: &Vault) -> Result<u32, StoreError> {
        let (v,): (i64,) = on_tx!(self, c => sqlx::query_as("SELECT COALESCE(MAX(version), 1) FROM encryption_keys").fetch_one(c).await)?;
        let version = v as u32;
        self.ensure_key(vault, version).await?;
        Ok(version)
    }

    /// Installs data key `version` from this transaction's own connection (on
    /// SQLite it holds the only writer, so no other connection may be asked).
    pub async fn ensure_key(&mut self, vault: &Vault, version: u32) -> Result<(), StoreError> {
        if vault.has_version(version) {
            return Ok(());
        }
        let row: Option<(Vec<u8>,)> = on_tx!(self, c => sqlx::query_as("SELECT wrapped_key FROM encryption_keys WHERE version = $1")
            .bind(i64::from(version)).fetch_optional(c).await)?;
        let (wrapped,) = row.ok_or_else(|| StoreError::Crypto(format!("data key version {version} does not exist")))?;
        vault.install(&[(version, wrapped)]).map_err(|e| StoreError::Crypto(e.to_string()))
    }
}
