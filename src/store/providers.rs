//! Payment providers linked to customers. Links are added and removed, never edited.

use crate::domain::event::EventType;
use uuid::Uuid;

use super::keys::secret_aad;
use super::query::record;
use super::{Scoped, StoreError, WriteTx, on_conn};
use crate::crypto::Vault;
use crate::domain::custom::obfuscate;
use crate::domain::provider::{Credential, ProviderInput};

record! {
    #[derive(Debug, Clone)]
    pub struct ProviderRecord {
        pub id: Uuid,
        pub customer_id: Uuid,
        pub provider_config_id: String,
        pub provider: String,
        pub pp_customer_id: Option<String>,
        pub pp_type: Option<String>,
        pub pp_login_id: Option<String>,
        pub pp_commercial_name: Option<String>,
        pub pp_currencies: Option<String>,
        pub api_key_hint: Option<String>,
        pub pp_key_hint: Option<String>,
        pub pp_hmac_hint: Option<String>,
        pub has_payment_provider: bool,
        pub created_at: i64,
    }
}

const COLUMNS: &str = ProviderRecord::COLUMNS;

/// The fields the three credentials are sealed under.
pub const CREDENTIAL_FIELDS: [(&str, &str); 3] =
    [("api_key_secret", "provider:apiKey"), ("pp_key_secret", "provider:key"), ("pp_hmac_secret", "provider:hmacKey")];

impl WriteTx {
    pub async fn link_provider(
        &mut self,
        vault: &Vault,
        customer: Uuid,
        id: Uuid,
        p: &ProviderInput,
    ) -> Result<(), StoreError> {
        self.lock_active_customer(customer).await?;
        let version = self.active_key_version(vault).await?;
        let (merchant, now) = (self.merchant(), self.now);
        self.within_limit(
            "SELECT COUNT(*) FROM customer_providers WHERE merchant_id = $1 AND customer_id = $2",
            &[&merchant, &customer],
            super::limits::PROVIDER_LINKS_PER_CUSTOMER,
            "too_many_provider_links",
            "A customer has at most 50 provider links; unlink one first.",
        )
        .await?;
        let seal = |cred: Option<&Credential>, field: &str| -> Result<(Option<Vec<u8>>, Option<String>), StoreError> {
            match cred {
                None => Ok((None, None)),
                Some(c) => {
                    let sealed = vault.seal(version, &secret_aad(merchant, id, field), c.expose().as_bytes())?;
                    Ok((Some(sealed), Some(obfuscate(c.expose()))))
                }
            }
        };
        let pp = p.payment_provider.as_ref();
        let (api, api_hint) = seal(p.api_key.as_ref(), CREDENTIAL_FIELDS[0].1)?;
        let (key, key_hint) = seal(pp.and_then(|x| x.key.as_ref()), CREDENTIAL_FIELDS[1].1)?;
        let (hmac, hmac_hint) = seal(pp.and_then(|x| x.hmac_key.as_ref()), CREDENTIAL_FIELDS[2].1)?;
        let currencies = pp.filter(|x| !x.currencies.is_empty()).map(|x| x.currencies.join(","));
        self.exec("INSERT INTO customer_providers (merchant_id, id, customer_id, provider_config_id, provider, pp_customer_id, pp_type, \
             pp_login_id, pp_commercial_name, pp_currencies, api_key_secret, api_key_hint, pp_key_secret, pp_key_hint, \
             pp_hmac_secret, pp_hmac_hint, key_version, has_payment_provider, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)", &[&merchant, &id, &customer, &p.provider_config_id.as_str(), &p.provider.as_str(), &pp.and_then(|x| x.customer_id.as_deref()), &pp.and_then(|x| x.provider_type.as_deref()), &pp.and_then(|x| x.login_id.as_deref()), &pp.and_then(|x| x.commercial_name.as_deref()), &currencies, &api, &api_hint, &key, &key_hint, &hmac, &hmac_hint, &i64::from(version), &pp.is_some(), &now]).await?;
        self.event(EventType::ProviderLinked, id).await?;
        Ok(())
    }

    pub async fn unlink_provider(&mut self, customer: Uuid, id: Uuid) -> Result<(), StoreError> {
        let merchant = self.merchant();
        let n = self
            .exec(
                "DELETE FROM customer_providers WHERE merchant_id = $1 AND customer_id = $2 AND id = $3",
                &[&merchant, &customer, &id],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("Provider link"));
        }
        self.secrets_removed();
        self.event(EventType::ProviderUnlinked, id).await?;
        Ok(())
    }
}

impl Scoped<'_> {
    pub async fn providers_of(
        &self,
        customer: Uuid,
        page: u32,
        page_size: u32,
    ) -> Result<(Vec<ProviderRecord>, i64), sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM customer_providers WHERE merchant_id = $1 AND customer_id = $2 ORDER BY created_at, id LIMIT {} OFFSET {}",
            page_size,
            u64::from(page - 1) * u64::from(page_size)
        );
        on_conn!(self.conn(), p => {
            let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM customer_providers WHERE merchant_id = $1 AND customer_id = $2")
                .bind(self.merchant()).bind(customer).fetch_one(p).await?;
            let items = sqlx::query_as::<_, ProviderRecord>(&sql).bind(self.merchant()).bind(customer).fetch_all(p).await?;
            Ok((items, total))
        })
    }

    pub async fn get_provider(&self, customer: Uuid, id: Uuid) -> Result<Option<ProviderRecord>, sqlx::Error> {
        let sql =
            format!("SELECT {COLUMNS} FROM customer_providers WHERE merchant_id = $1 AND customer_id = $2 AND id = $3");
        on_conn!(self.conn(), p => sqlx::query_as::<_, ProviderRecord>(&sql).bind(self.merchant()).bind(customer).bind(id).fetch_optional(p).await)
    }
}
