//! The data-key ring (`encryption_keys`) and key rotation.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::query::record;
use super::{Actor, Db, StoreError, Tenant, WriteTx, now_ms, on_conn};
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
        let mut reencrypted = self.rotate_payment_methods(vault, version).await?;
        reencrypted += self.rotate_custom_values(vault, version).await?;
        reencrypted += self.rotate_provider_credentials(vault, version).await?;
        reencrypted += self.rotate_virtual_cards(vault, version).await?;
        reencrypted += self.rotate_outbox(vault, version).await?;
        reencrypted += self.rotate_webhook_secrets(vault, version).await?;
        Ok(RotationReport { version, reencrypted })
    }

    /// Opens `blob` (loading its key if needed) and seals it again under `version`.
    async fn reseal(&self, vault: &Vault, version: u32, aad: &[u8], blob: &[u8]) -> anyhow::Result<Vec<u8>> {
        if let Some(old) = Vault::version_of(blob) {
            self.ensure_key(vault, old).await?;
        }
        let clear = vault.open(blob, aad)?;
        Ok(vault.seal(version, aad, &clear)?)
    }

    /// Writes a batch of re-sealed rows: one write transaction per merchant (a
    /// batch shares one commit rather than paying one per row), each row's update
    /// guarded by the key version it was read with, so a row a server rewrote
    /// meanwhile is left as that write made it. Returns the rows changed.
    async fn write_resealed(&self, version: u32, rows: Vec<(Uuid, Resealed)>) -> Result<u64, StoreError> {
        let mut by_merchant: BTreeMap<Uuid, Vec<Resealed>> = BTreeMap::new();
        for (merchant, row) in rows {
            by_merchant.entry(merchant).or_default().push(row);
        }
        let mut n = 0;
        for (merchant, rows) in by_merchant {
            n += self
                .write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
                    let mut n = 0;
                    for row in &rows {
                        n += row.write(&mut tx, i64::from(version)).await?;
                    }
                    tx.commit().await?;
                    Ok::<_, StoreError>(n)
                })
                .await?;
        }
        Ok(n)
    }

    async fn rotate_payment_methods(&self, vault: &Vault, version: u32) -> anyhow::Result<u64> {
        let mut n = 0;
        loop {
            let batch: Vec<SecretRow> = on_conn!(self.reader(), p => sqlx::query_as::<_, SecretRow>(
                "SELECT merchant_id, id, key_version, secret, tax_id_secret FROM payment_methods WHERE key_version < $1 LIMIT 500")
                .bind(i64::from(version)).fetch_all(p).await)?;
            if batch.is_empty() {
                return Ok(n);
            }
            let mut resealed = Vec::with_capacity(batch.len());
            for row in batch {
                let mut sealed = Vec::with_capacity(2);
                for (blob, field) in [(&row.secret, "secret"), (&row.tax_id_secret, "tax_id")] {
                    sealed.push(match blob {
                        Some(b) => {
                            Some(self.reseal(vault, version, &secret_aad(row.merchant_id, row.id, field), b).await?)
                        }
                        None => None,
                    });
                }
                let [secret, tax_id]: [Option<Vec<u8>>; 2] = sealed.try_into().expect("two secrets");
                resealed.push((row.merchant_id, Resealed::Method { id: row.id, old: row.key_version, secret, tax_id }));
            }
            n += self.write_resealed(version, resealed).await?;
        }
    }

    async fn rotate_custom_values(&self, vault: &Vault, version: u32) -> anyhow::Result<u64> {
        let mut n = 0;
        loop {
            let batch: Vec<(Uuid, Uuid, String, i64, Vec<u8>)> = on_conn!(self.reader(), p => sqlx::query_as(
                "SELECT merchant_id, customer_id, name, key_version, secret FROM customer_custom_values \
                 WHERE secret IS NOT NULL AND key_version < $1 LIMIT 500")
                .bind(i64::from(version)).fetch_all(p).await)?;
            if batch.is_empty() {
                return Ok(n);
            }
            let mut resealed = Vec::with_capacity(batch.len());
            for (merchant, customer, name, old, blob) in batch {
                let aad = super::custom::custom_aad(merchant, customer, &name);
                let secret = self.reseal(vault, version, &aad, &blob).await?;
                resealed.push((merchant, Resealed::Custom { customer, name, old, secret }));
            }
            n += self.write_resealed(version, resealed).await?;
        }
    }

    async fn rotate_outbox(&self, vault: &Vault, version: u32) -> anyhow::Result<u64> {
        let mut n = 0;
        loop {
            let batch: Vec<OutboxSecrets> = on_conn!(self.reader(), p => sqlx::query_as(
                "SELECT merchant_id, id, key_version, recipient, body FROM notification_outbox WHERE key_version < $1 LIMIT 500")
                .bind(i64::from(version)).fetch_all(p).await)?;
            if batch.is_empty() {
                return Ok(n);
            }
            let mut resealed = Vec::with_capacity(batch.len());
            for (merchant, id, old, recipient, body) in batch {
                let recipient =
                    self.reseal(vault, version, &secret_aad(merchant, id, "outbox:recipient"), &recipient).await?;
                let body = self.reseal(vault, version, &secret_aad(merchant, id, "outbox:body"), &body).await?;
                resealed.push((merchant, Resealed::Outbox { id, old, recipient, body }));
            }
            n += self.write_resealed(version, resealed).await?;
        }
    }

    async fn rotate_webhook_secrets(&self, vault: &Vault, version: u32) -> anyhow::Result<u64> {
        use super::webhooks::{PREVIOUS_SECRET_FIELD, SECRET_FIELD};
        let mut n = 0;
        loop {
            let batch: Vec<WebhookSecrets> = on_conn!(self.reader(), p => sqlx::query_as(
                "SELECT merchant_id, id, key_version, secret, previous_secret FROM webhook_endpoints WHERE key_version < $1 LIMIT 500")
                .bind(i64::from(version)).fetch_all(p).await)?;
            if batch.is_empty() {
                return Ok(n);
            }
            let mut resealed = Vec::with_capacity(batch.len());
            for (merchant, id, old, secret, previous) in batch {
                let secret = self.reseal(vault, version, &secret_aad(merchant, id, SECRET_FIELD), &secret).await?;
                let previous = match previous {
                    Some(b) => {
                        Some(self.reseal(vault, version, &secret_aad(merchant, id, PREVIOUS_SECRET_FIELD), &b).await?)
                    }
                    None => None,
                };
                resealed.push((merchant, Resealed::Webhook { id, old, secret, previous }));
            }
            n += self.write_resealed(version, resealed).await?;
        }
    }

    async fn rotate_virtual_cards(&self, vault: &Vault, version: u32) -> anyhow::Result<u64> {
        let mut n = 0;
        loop {
            let batch: Vec<(Uuid, String, i64, Vec<u8>)> = on_conn!(self.reader(), p => sqlx::query_as(
                "SELECT merchant_id, account_number, key_version, vcc_secret FROM credit_accounts WHERE key_version < $1 LIMIT 500")
                .bind(i64::from(version)).fetch_all(p).await)?;
            if batch.is_empty() {
                return Ok(n);
            }
            let mut resealed = Vec::with_capacity(batch.len());
            for (merchant, number, old, blob) in batch {
                let secret = self.reseal(vault, version, &super::credit::vcc_aad(merchant, &number), &blob).await?;
                resealed.push((merchant, Resealed::VirtualCard { number, old, secret }));
            }
            n += self.write_resealed(version, resealed).await?;
        }
    }

    async fn rotate_provider_credentials(&self, vault: &Vault, version: u32) -> anyhow::Result<u64> {
        use super::providers::CREDENTIAL_FIELDS;
        let mut n = 0;
        loop {
            let batch: Vec<ProviderSecrets> = on_conn!(self.reader(), p => sqlx::query_as(
                "SELECT merchant_id, id, key_version, api_key_secret, pp_key_secret, pp_hmac_secret FROM customer_providers \
                 WHERE key_version < $1 LIMIT 500")
                .bind(i64::from(version)).fetch_all(p).await)?;
            if batch.is_empty() {
                return Ok(n);
            }
            let mut resealed = Vec::with_capacity(batch.len());
            for (merchant, id, old, a, k, h) in batch {
                let mut sealed = Vec::new();
                for (blob, (_, field)) in [a, k, h].into_iter().zip(CREDENTIAL_FIELDS) {
                    sealed.push(match blob {
                        Some(b) => Some(self.reseal(vault, version, &secret_aad(merchant, id, field), &b).await?),
                        None => None,
                    });
                }
                let credentials: [Option<Vec<u8>>; 3] = sealed.try_into().expect("three credentials");
                resealed.push((merchant, Resealed::Provider { id, old, credentials }));
            }
            n += self.write_resealed(version, resealed).await?;
        }
    }
}

/// One row's secrets sealed again under the new key version, with the version
/// they were read under (`old`).
enum Resealed {
    Method { id: Uuid, old: i64, secret: Option<Vec<u8>>, tax_id: Option<Vec<u8>> },
    Custom { customer: Uuid, name: String, old: i64, secret: Vec<u8> },
    Outbox { id: Uuid, old: i64, recipient: Vec<u8>, body: Vec<u8> },
    VirtualCard { number: String, old: i64, secret: Vec<u8> },
    Provider { id: Uuid, old: i64, credentials: [Option<Vec<u8>>; 3] },
    Webhook { id: Uuid, old: i64, secret: Vec<u8>, previous: Option<Vec<u8>> },
}

impl Resealed {
    /// Updates the row, unless it is no longer at the version it was read with.
    async fn write(&self, tx: &mut WriteTx, version: i64) -> Result<u64, sqlx::Error> {
        let merchant = tx.merchant();
        match self {
            Resealed::Method { id, old, secret, tax_id } => {
                tx.exec(
                    "UPDATE payment_methods SET secret = $1, tax_id_secret = $2, key_version = $3 \
                     WHERE merchant_id = $4 AND id = $5 AND key_version = $6",
                    &[secret, tax_id, &version, &merchant, id, old],
                )
                .await
            }
            Resealed::Custom { customer, name, old, secret } => {
                tx.exec(
                    "UPDATE customer_custom_values SET secret = $1, key_version = $2 \
                     WHERE merchant_id = $3 AND customer_id = $4 AND name = $5 AND key_version = $6",
                    &[secret, &version, &merchant, customer, name, old],
                )
                .await
            }
            Resealed::Outbox { id, old, recipient, body } => {
                tx.exec(
                    "UPDATE notification_outbox SET recipient = $1, body = $2, key_version = $3 \
                     WHERE merchant_id = $4 AND id = $5 AND key_version = $6",
                    &[recipient, body, &version, &merchant, id, old],
                )
                .await
            }
            Resealed::VirtualCard { number, old, secret } => {
                tx.exec(
                    "UPDATE credit_accounts SET vcc_secret = $1, key_version = $2 \
                     WHERE merchant_id = $3 AND account_number = $4 AND key_version = $5",
                    &[secret, &version, &merchant, number, old],
                )
                .await
            }
            Resealed::Provider { id, old, credentials: [a, k, h] } => {
                tx.exec(
                    "UPDATE customer_providers SET api_key_secret = $1, pp_key_secret = $2, pp_hmac_secret = $3, \
                     key_version = $4 WHERE merchant_id = $5 AND id = $6 AND key_version = $7",
                    &[a, k, h, &version, &merchant, id, old],
                )
                .await
            }
            Resealed::Webhook { id, old, secret, previous } => {
                tx.exec(
                    "UPDATE webhook_endpoints SET secret = $1, previous_secret = $2, key_version = $3 \
                     WHERE merchant_id = $4 AND id = $5 AND key_version = $6",
                    &[secret, previous, &version, &merchant, id, old],
                )
                .await
            }
        }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationReport {
    pub version: u32,
    pub reencrypted: u64,
}

/// merchant, message id, key version, sealed recipient and text.
type OutboxSecrets = (Uuid, Uuid, i64, Vec<u8>, Vec<u8>);

/// merchant, link id, key version, and the three sealed credentials.
type ProviderSecrets = (Uuid, Uuid, i64, Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

/// merchant, endpoint id, key version, sealed secret and the previous one.
type WebhookSecrets = (Uuid, Uuid, i64, Vec<u8>, Option<Vec<u8>>);

record! {
    struct SecretRow {
        merchant_id: Uuid,
        id: Uuid,
        key_version: i64,
        secret: Option<Vec<u8>>,
        tax_id_secret: Option<Vec<u8>>,
    }
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
        let (v,): (i64,) = self.fetch_one("SELECT COALESCE(MAX(version), 1) FROM encryption_keys", &[]).await?;
        let version = v as u32;
        self.ensure_key(vault, version).await?;
        Ok(version)
    }

    /// Opens a sealed secret, installing the data key it names first if needed.
    pub(crate) async fn open_sealed(
        &mut self,
        vault: &Vault,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        if let Some(v) = Vault::version_of(blob) {
            self.ensure_key(vault, v).await?;
        }
        Ok(vault.open(blob, aad)?)
    }

    /// Installs data key `version` from this transaction's own connection (on
    /// SQLite it holds the only writer, so no other connection may be asked).
    pub async fn ensure_key(&mut self, vault: &Vault, version: u32) -> Result<(), StoreError> {
        if vault.has_version(version) {
            return Ok(());
        }
        let row: Option<(Vec<u8>,)> = self
            .fetch_optional("SELECT wrapped_key FROM encryption_keys WHERE version = $1", &[&i64::from(version)])
            .await?;
        let (wrapped,) = row.ok_or_else(|| StoreError::Crypto(format!("data key version {version} does not exist")))?;
        vault.install(&[(version, wrapped)]).map_err(|e| StoreError::Crypto(e.to_string()))
    }
}
