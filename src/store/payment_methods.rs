//! Payment methods (cards and bank accounts) and the customer's defaults.
//!
//! Secrets are sealed before they reach SQL and only opened by `reveal` and key
//! rotation; ordinary reads never select them.

use crate::domain::event::EventType;
use std::sync::LazyLock;

use uuid::Uuid;

use super::dialect::locking;
use super::keys::secret_aad;
use super::query::{record, sqlite_rows};
use super::{Scoped, StoreError, WriteTx, on_conn};
use crate::crypto::Vault;
use crate::domain::bank::{AchInput, BankDetailsChange};
use crate::domain::card::CardInput;

/// `card` or `ach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = PaymentMethodType, rename_all = "lowercase")]
pub enum MethodKind {
    Card,
    Ach,
}

impl MethodKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Card => "card",
            MethodKind::Ach => "ach",
        }
    }

    pub fn parse(s: &str) -> Option<MethodKind> {
        match s {
            "card" => Some(MethodKind::Card),
            "ach" => Some(MethodKind::Ach),
            _ => None,
        }
    }

    /// The customer column holding this kind's default.
    fn default_column(self) -> &'static str {
        match self {
            MethodKind::Card => "default_payment_method_id",
            MethodKind::Ach => "default_ach_payment_method_id",
        }
    }
}

record! {
    /// A payment method as stored, without its secrets. Read by column name: from a
    /// row, or from a row PostgreSQL turned into a JSON object (a customer's methods
    /// inside its own read, see `customers::PG_PARTS_SQL`).
    #[derive(Debug, Clone, serde::Deserialize)]
    pub struct MethodRecord {
        pub merchant_id: Uuid,
        pub id: Uuid,
        pub customer_id: Uuid,
        #[serde(rename = "type")]
        pub kind: String as "type",
        pub name: Option<String>,
        pub status: String,
        pub version: i64,
        pub fingerprint: Option<String>,
        pub brand: Option<String>,
        pub bin: Option<String>,
        pub last4: Option<String>,
        pub pan_length: Option<i64>,
        pub exp_month: Option<i64>,
        pub exp_year: Option<i64>,
        pub routing_number: Option<String>,
        pub account_last4: Option<String>,
        pub tax_id_last4: Option<String>,
        pub account_type: Option<i64>,
        pub account_holder_type: Option<i64>,
        pub created_at: i64,
        pub modified_at: i64,
        pub is_default: bool,
    }
}

impl MethodRecord {
    pub fn kind(&self) -> MethodKind {
        MethodKind::parse(&self.kind).unwrap_or(MethodKind::Card)
    }
}

const COLUMNS: &str = "pm.merchant_id, pm.id, pm.customer_id, pm.type, pm.name, pm.status, pm.version, pm.fingerprint, \
    pm.brand, pm.bin, pm.last4, pm.pan_length, pm.exp_month, pm.exp_year, pm.routing_number, pm.account_last4, \
    pm.tax_id_last4, pm.account_type, pm.account_holder_type, pm.created_at, pm.modified_at, \
    COALESCE(c.default_payment_method_id = pm.id OR c.default_ach_payment_method_id = pm.id, FALSE) AS is_default";

const FROM: &str = "payment_methods pm JOIN customers c ON c.merchant_id = pm.merchant_id AND c.id = pm.customer_id";

/// The clear secrets of one method, for `reveal`.
pub struct Revealed {
    pub record: MethodRecord,
    pub secret: Option<zeroize::Zeroizing<String>>,
    pub tax_id: Option<zeroize::Zeroizing<String>>,
}

/// What an update may change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct MethodUpdate {
    /// `Some(None)` clears the name.
    pub name: Option<Option<String>>,
    pub expiry: Option<(i64, i64)>,
    pub account_type: Option<i64>,
    pub account_holder_type: Option<i64>,
    /// A bank account's new routing number, account number or tax id.
    pub bank: BankDetailsChange,
    /// A new status (`true` active), applied after the rest.
    pub active: Option<bool>,
}

/// A new method, sealed and ready to insert.
struct NewMethod<'a> {
    kind: MethodKind,
    name: Option<&'a str>,
    fingerprint: Option<String>,
    brand: Option<&'a str>,
    bin: Option<&'a str>,
    last4: Option<&'a str>,
    pan_length: Option<i64>,
    exp_month: Option<i64>,
    exp_year: Option<i64>,
    routing_number: Option<&'a str>,
    account_last4: Option<&'a str>,
    tax_id_last4: Option<&'a str>,
    account_type: Option<i64>,
    account_holder_type: Option<i64>,
    secret: Option<Vec<u8>>,
    tax_id_secret: Option<Vec<u8>>,
    key_version: u32,
    search_text: String,
}

/// A secret opened, wiped on drop.
type Clear = zeroize::Zeroizing<Vec<u8>>;

/// The fingerprint of a bank account: the same account is the same routing
/// number and account number.
fn ach_fingerprint(vault: &Vault, merchant: Uuid, routing: &str, account: &[u8]) -> String {
    let mut key = zeroize::Zeroizing::new(Vec::with_capacity(routing.len() + 1 + account.len()));
    key.extend_from_slice(routing.as_bytes());
    key.push(b':');
    key.extend_from_slice(account);
    vault.fingerprint(merchant, "ach", &key)
}

/// What a bank account's row holds for the method search: its name, routing
/// number and the last 4 digits of its account number.
fn ach_search_text(name: Option<&str>, routing: Option<&str>, account_last4: Option<&str>) -> String {
    format!("{} ach {} {}", name.unwrap_or("").to_lowercase(), routing.unwrap_or(""), account_last4.unwrap_or(""))
}

/// What new business with an inactive customer gets (409).
pub(crate) const CUSTOMER_INACTIVE: StoreError =
    StoreError::Conflict { code: "customer_inactive", message: "The customer is inactive; activate it first." };

impl WriteTx {
    /// The customer, locked for this transaction (so defaults and duplicates are decided once).
    pub(crate) async fn lock_customer(&mut self, customer_id: Uuid) -> Result<(), StoreError> {
        self.locked_customer_status(customer_id).await.map(|_| ())
    }

    /// The customer, locked, when it is active: an inactive customer takes no
    /// new payment methods, provider links, credit accounts or purchases.
    pub(crate) async fn lock_active_customer(&mut self, customer_id: Uuid) -> Result<(), StoreError> {
        match self.locked_customer_status(customer_id).await?.as_str() {
            "active" => Ok(()),
            _ => Err(CUSTOMER_INACTIVE),
        }
    }

    /// Refuses a fingerprint the customer already holds on another method than `id`.
    async fn check_not_held(&mut self, customer_id: Uuid, fingerprint: &str, id: Uuid) -> Result<(), StoreError> {
        let merchant = self.merchant();
        let held: Option<(Uuid,)> = self
            .fetch_optional(
                "SELECT id FROM payment_methods WHERE merchant_id = $1 AND customer_id = $2 AND fingerprint = $3 AND id <> $4",
                &[&merchant, &customer_id, &fingerprint, &id],
            )
            .await?;
        match held {
            Some((existing,)) => Err(StoreError::Duplicate { existing }),
            None => Ok(()),
        }
    }

    /// A method's stored secrets in clear: its number, and a bank account's tax id.
    async fn method_secrets(&mut self, vault: &Vault, id: Uuid) -> Result<(Option<Clear>, Option<Clear>), StoreError> {
        let merchant = self.merchant();
        let (secret, tax): (Option<Vec<u8>>, Option<Vec<u8>>) = self
            .fetch_one(
                "SELECT secret, tax_id_secret FROM payment_methods WHERE merchant_id = $1 AND id = $2",
                &[&merchant, &id],
            )
            .await?;
        let secret = match secret {
            Some(b) => Some(self.open_sealed(vault, &b, &secret_aad(merchant, id, "secret")).await?),
            None => None,
        };
        let tax = match tax {
            Some(b) => Some(self.open_sealed(vault, &b, &secret_aad(merchant, id, "tax_id")).await?),
            None => None,
        };
        Ok((secret, tax))
    }

    pub(crate) async fn locked_customer_status(&mut self, customer_id: Uuid) -> Result<String, StoreError> {
        let merchant = self.merchant();
        let sql = self.backend().locking(&locking!("SELECT status FROM customers WHERE merchant_id = $1 AND id = $2"));
        let row: Option<(String,)> = self.fetch_optional(sql, &[&merchant, &customer_id]).await?;
        row.map(|(s,)| s).ok_or(StoreError::NotFound("Customer"))
    }

    pub async fn add_card(
        &mut self,
        vault: &Vault,
        customer_id: Uuid,
        id: Uuid,
        card: &CardInput,
    ) -> Result<(), StoreError> {
        self.lock_active_customer(customer_id).await?;
        let version = self.active_key_version(vault).await?;
        let merchant = self.merchant();
        let pan = card.pan.expose();
        let aad = secret_aad(merchant, id, "secret");
        let sealed = vault.seal(version, &aad, pan.as_bytes())?;
        let brand = card.pan.brand().as_str();
        let m = NewMethod {
            kind: MethodKind::Card,
            name: card.name.as_deref(),
            fingerprint: Some(vault.fingerprint(merchant, "card", pan.as_bytes())),
            brand: Some(brand),
            bin: Some(card.pan.bin()),
            last4: Some(card.pan.last4()),
            pan_length: Some(pan.len() as i64),
            exp_month: Some(i64::from(card.expiry.month)),
            exp_year: Some(i64::from(card.expiry.year)),
            routing_number: None,
            account_last4: None,
            tax_id_last4: None,
            account_type: None,
            account_holder_type: None,
            secret: Some(sealed),
            tax_id_secret: None,
            key_version: version,
            search_text: format!("{} {brand} {}", card.name.as_deref().unwrap_or("").to_lowercase(), card.pan.last4()),
        };
        self.insert_method(customer_id, id, m).await
    }

    pub async fn add_ach(
        &mut self,
        vault: &Vault,
        customer_id: Uuid,
        id: Uuid,
        ach: &AchInput,
    ) -> Result<(), StoreError> {
        self.lock_active_customer(customer_id).await?;
        let version = self.active_key_version(vault).await?;
        let merchant = self.merchant();
        let seal = |field: &str, clear: &str| vault.seal(version, &secret_aad(merchant, id, field), clear.as_bytes());
        let secret = ach.account_number.as_ref().map(|a| seal("secret", a.expose())).transpose()?;
        let tax_id_secret = ach.tax_id.as_ref().map(|t| seal("tax_id", t.expose())).transpose()?;
        let routing = ach.routing_number.as_str();
        let fingerprint =
            ach.account_number.as_ref().map(|a| ach_fingerprint(vault, merchant, routing, a.expose().as_bytes()));
        let account_last4 = ach.account_number.as_ref().map(|a| a.last4());
        let m = NewMethod {
            kind: MethodKind::Ach,
            name: Some(&ach.name),
            fingerprint,
            brand: None,
            bin: None,
            last4: None,
            pan_length: None,
            exp_month: None,
            exp_year: None,
            routing_number: Some(ach.routing_number.as_str()),
            account_last4,
            tax_id_last4: ach.tax_id.as_ref().map(|t| t.last4()),
            account_type: Some(ach.account_type),
            account_holder_type: Some(ach.account_holder_type),
            secret,
            tax_id_secret,
            key_version: version,
            search_text: ach_search_text(Some(&ach.name), Some(routing), account_last4),
        };
        self.insert_method(customer_id, id, m).await
    }

    async fn insert_method(&mut self, customer_id: Uuid, id: Uuid, m: NewMethod<'_>) -> Result<(), StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        self.within_limit(
            "SELECT COUNT(*) FROM payment_methods WHERE merchant_id = $1 AND customer_id = $2",
            &[&merchant, &customer_id],
            super::limits::PAYMENT_METHODS_PER_CUSTOMER,
            "too_many_payment_methods",
            "A customer holds at most 100 payment methods; delete one first.",
        )
        .await?;
        if let Some(fp) = &m.fingerprint {
            self.check_not_held(customer_id, fp, id).await?;
        }
        // Both callers lock the customer's row first: no other write adds its method meanwhile.
        self.later("INSERT INTO payment_methods (merchant_id, id, customer_id, type, name, status, version, fingerprint, brand, bin, \
             last4, pan_length, exp_month, exp_year, routing_number, account_last4, tax_id_last4, account_type, \
             account_holder_type, secret, tax_id_secret, key_version, search_text, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, 'active', 1, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $22)", &[&merchant, &id, &customer_id, &m.kind.as_str(), &m.name, &m.fingerprint.as_deref(), &m.brand, &m.bin, &m.last4, &m.pan_length, &m.exp_month, &m.exp_year, &m.routing_number, &m.account_last4, &m.tax_id_last4, &m.account_type, &m.account_holder_type, &m.secret, &m.tax_id_secret, &i64::from(m.key_version), &m.search_text, &now], StoreError::Db).await?;
        self.event(EventType::PaymentMethodCreated, id).await?;
        // A customer's first active method of a kind becomes its default.
        let col = m.kind.default_column();
        let set = self
            .exec(
                &format!(
                    "UPDATE customers SET {col} = $1, version = version + 1, modified_at = $2 \
             WHERE merchant_id = $3 AND id = $4 AND {col} IS NULL"
                ),
                &[&id, &now, &merchant, &customer_id],
            )
            .await?;
        if set == 1 {
            self.event(EventType::PaymentMethodDefaultChanged, id).await?;
        }
        Ok(())
    }

    pub async fn get_method(&mut self, customer_id: Uuid, id: Uuid) -> Result<MethodRecord, StoreError> {
        let merchant = self.merchant();
        let sql =
            format!("SELECT {COLUMNS} FROM {FROM} WHERE pm.merchant_id = $1 AND pm.customer_id = $2 AND pm.id = $3");
        let row = self.fetch_optional::<MethodRecord>(&sql, &[&merchant, &customer_id, &id]).await?;
        row.ok_or(StoreError::NotFound("Payment method"))
    }

    async fn checked_method(
        &mut self,
        customer_id: Uuid,
        id: Uuid,
        if_match: Option<i64>,
    ) -> Result<MethodRecord, StoreError> {
        self.lock_customer(customer_id).await?;
        let rec = self.get_method(customer_id, id).await?;
        match if_match {
            Some(v) if v != rec.version => Err(StoreError::VersionMismatch { current: rec.version }),
            _ => Ok(rec),
        }
    }

    pub async fn update_method(
        &mut self,
        vault: &Vault,
        customer_id: Uuid,
        id: Uuid,
        u: &MethodUpdate,
        if_match: Option<i64>,
    ) -> Result<MethodRecord, StoreError> {
        let rec = self.checked_method(customer_id, id, if_match).await?;
        let (merchant, now) = (self.merchant(), self.now);
        let name = match &u.name {
            Some(n) => n.clone(),
            None => rec.name.clone(),
        };
        let (month, year) = u.expiry.map_or((rec.exp_month, rec.exp_year), |(m, y)| (Some(m), Some(y)));
        let account_type = u.account_type.or(rec.account_type);
        let holder_type = u.account_holder_type.or(rec.account_holder_type);
        if !u.bank.is_empty() {
            self.change_bank_details(vault, &rec, &u.bank).await?;
        }
        let routing = u.bank.routing_number.as_ref().map(|r| r.as_str()).or(rec.routing_number.as_deref());
        let account_last4 = u.bank.account_number.as_ref().map(|a| a.last4()).or(rec.account_last4.as_deref());
        let search_text = match rec.kind() {
            MethodKind::Card => format!(
                "{} {} {}",
                name.as_deref().unwrap_or("").to_lowercase(),
                rec.brand.as_deref().unwrap_or(""),
                rec.last4.as_deref().unwrap_or("")
            ),
            MethodKind::Ach => ach_search_text(name.as_deref(), routing, account_last4),
        };
        self.exec("UPDATE payment_methods SET name = $1, exp_month = $2, exp_year = $3, account_type = $4, account_holder_type = $5, \
             search_text = $6, version = version + 1, modified_at = $7 WHERE merchant_id = $8 AND id = $9", &[&name, &month, &year, &account_type, &holder_type, &search_text, &now, &merchant, &id]).await?;
        self.event(EventType::PaymentMethodUpdated, id).await?;
        self.get_method(customer_id, id).await
    }

    /// Writes a bank account's new details: every secret of the row sealed again
    /// under the active key (so the row keeps one key version), the fingerprint
    /// computed again, and the same account held twice by the customer refused.
    async fn change_bank_details(
        &mut self,
        vault: &Vault,
        rec: &MethodRecord,
        change: &BankDetailsChange,
    ) -> Result<(), StoreError> {
        let (merchant, id) = (self.merchant(), rec.id);
        let (stored_account, stored_tax) = self.method_secrets(vault, id).await?;
        let account: Option<&[u8]> = match &change.account_number {
            Some(a) => Some(a.expose().as_bytes()),
            None => stored_account.as_deref().map(|v| v.as_slice()),
        };
        let tax_id: Option<&[u8]> = match &change.tax_id {
            Some(t) => t.as_ref().map(|t| t.expose().as_bytes()),
            None => stored_tax.as_deref().map(|v| v.as_slice()),
        };
        let routing = match &change.routing_number {
            Some(r) => r.as_str(),
            None => rec.routing_number.as_deref().unwrap_or(""),
        };
        let version = self.active_key_version(vault).await?;
        let seal = |field: &str, clear: &[u8]| vault.seal(version, &secret_aad(merchant, id, field), clear);
        let sealed = account.map(|a| seal("secret", a)).transpose()?;
        let sealed_tax = tax_id.map(|t| seal("tax_id", t)).transpose()?;
        let fingerprint = account.map(|a| ach_fingerprint(vault, merchant, routing, a));
        if let Some(fp) = &fingerprint {
            self.check_not_held(rec.customer_id, fp, id).await?;
        }
        let last4 = |v: &[u8]| String::from_utf8_lossy(&v[v.len().saturating_sub(4)..]).into_owned();
        let (account_last4, tax_last4) = (account.map(last4), tax_id.map(last4));
        self.exec(
            "UPDATE payment_methods SET routing_number = $1, account_last4 = $2, tax_id_last4 = $3, secret = $4, \
             tax_id_secret = $5, key_version = $6, fingerprint = $7 WHERE merchant_id = $8 AND id = $9",
            &[
                &routing,
                &account_last4,
                &tax_last4,
                &sealed,
                &sealed_tax,
                &i64::from(version),
                &fingerprint,
                &merchant,
                &id,
            ],
        )
        .await?;
        // The old ciphertexts are overwritten: they leave the log like deleted ones.
        self.secrets_removed();
        Ok(())
    }

    /// Points the customer's default of this method's kind at it; an inactive method cannot be default.
    pub async fn make_default(&mut self, customer_id: Uuid, id: Uuid) -> Result<MethodRecord, StoreError> {
        let rec = self.checked_method(customer_id, id, None).await?;
        if rec.status != "active" {
            return Err(StoreError::Conflict {
                code: "payment_method_inactive",
                message: "An inactive payment method cannot be the default; activate it first.",
            });
        }
        if !rec.is_default {
            let (merchant, now) = (self.merchant(), self.now);
            let col = rec.kind().default_column();
            self.exec(&format!(
                "UPDATE customers SET {col} = $1, version = version + 1, modified_at = $2 WHERE merchant_id = $3 AND id = $4"), &[&id, &now, &merchant, &customer_id]).await?;
            self.event(EventType::PaymentMethodDefaultChanged, id).await?;
        }
        self.get_method(customer_id, id).await
    }

    async fn clear_default(&mut self, customer_id: Uuid, rec: &MethodRecord) -> Result<(), StoreError> {
        if !rec.is_default {
            return Ok(());
        }
        let (merchant, now) = (self.merchant(), self.now);
        let col = rec.kind().default_column();
        self.exec(&format!(
            "UPDATE customers SET {col} = NULL, version = version + 1, modified_at = $1 WHERE merchant_id = $2 AND id = $3 AND {col} = $4"), &[&now, &merchant, &customer_id, &rec.id]).await?;
        self.event(EventType::PaymentMethodDefaultChanged, rec.id).await?;
        Ok(())
    }

    /// Activates or deactivates; deactivating the default clears the default.
    pub async fn set_method_status(
        &mut self,
        customer_id: Uuid,
        id: Uuid,
        active: bool,
        if_match: Option<i64>,
    ) -> Result<MethodRecord, StoreError> {
        let rec = self.checked_method(customer_id, id, if_match).await?;
        let status = if active { "active" } else { "inactive" };
        if rec.status != status {
            if !active {
                self.clear_default(customer_id, &rec).await?;
            }
            let (merchant, now) = (self.merchant(), self.now);
            self.exec("UPDATE payment_methods SET status = $1, version = version + 1, modified_at = $2 WHERE merchant_id = $3 AND id = $4", &[&status, &now, &merchant, &id]).await?;
            self.event(EventType::PaymentMethodUpdated, id).await?;
        }
        self.get_method(customer_id, id).await
    }

    /// Deletes the method and its ciphertext, clearing the default it held.
    pub async fn delete_method(
        &mut self,
        customer_id: Uuid,
        id: Uuid,
        if_match: Option<i64>,
    ) -> Result<(), StoreError> {
        let rec = self.checked_method(customer_id, id, if_match).await?;
        self.clear_default(customer_id, &rec).await?;
        let merchant = self.merchant();
        self.exec("DELETE FROM payment_methods WHERE merchant_id = $1 AND id = $2", &[&merchant, &id]).await?;
        self.secrets_removed();
        self.event(EventType::PaymentMethodDeleted, id).await?;
        Ok(())
    }

    /// Opens the method's secrets and records that they were revealed.
    pub async fn reveal_method(&mut self, vault: &Vault, customer_id: Uuid, id: Uuid) -> Result<Revealed, StoreError> {
        let record = self.get_method(customer_id, id).await?;
        let (secret, tax) = self.method_secrets(vault, id).await?;
        let text =
            |clear: zeroize::Zeroizing<Vec<u8>>| zeroize::Zeroizing::new(String::from_utf8_lossy(&clear).into_owned());
        let (secret, tax_id) = (secret.map(text), tax.map(text));
        self.event(EventType::PaymentMethodRevealed, id).await?;
        Ok(Revealed { record, secret, tax_id })
    }
}

/// Filters of the payment-method list.
#[derive(Debug, Clone)]
pub struct MethodQuery {
    pub page: u32,
    pub page_size: u32,
    pub order_by: &'static str,
    pub asc: bool,
    pub kind: Option<MethodKind>,
    pub words: Vec<String>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
}

/// A customer's methods, in creation order, as one JSON array (PostgreSQL):
/// `$1` the merchant, `$2` the customer.
pub(super) static PG_METHODS_JSON_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT COALESCE(json_agg(m ORDER BY m.created_at, m.id), '[]') FROM (SELECT {COLUMNS} FROM {FROM} \
         WHERE pm.merchant_id = $1 AND pm.customer_id = $2) AS m"
    )
});

static METHODS_OF_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE pm.merchant_id = $1 AND pm.customer_id = $2 ORDER BY pm.created_at, pm.id"
    )
});

pub(super) fn inline_methods_of(
    c: &rusqlite::Connection,
    merchant: Uuid,
    customer_id: Uuid,
) -> rusqlite::Result<Vec<MethodRecord>> {
    sqlite_rows(&mut *c.prepare_cached(&METHODS_OF_SQL)?, (merchant, customer_id))
}

impl Scoped<'_> {
    /// Every method of a customer, oldest first (for the customer view).
    pub async fn methods_of(&self, customer_id: Uuid) -> Result<Vec<MethodRecord>, sqlx::Error> {
        if let Some(r) = self.inline() {
            let merchant = self.merchant();
            return r.read(move |c| inline_methods_of(c, merchant, customer_id)).await;
        }
        on_conn!(self.conn(), p => sqlx::query_as::<_, MethodRecord>(&METHODS_OF_SQL).bind(self.merchant()).bind(customer_id).fetch_all(p).await)
    }

    pub async fn get_method(&self, customer_id: Uuid, id: Uuid) -> Result<Option<MethodRecord>, sqlx::Error> {
        let sql =
            format!("SELECT {COLUMNS} FROM {FROM} WHERE pm.merchant_id = $1 AND pm.customer_id = $2 AND pm.id = $3");
        on_conn!(self.conn(), p => sqlx::query_as::<_, MethodRecord>(&sql).bind(self.merchant()).bind(customer_id).bind(id).fetch_optional(p).await)
    }

    /// One page of a customer's methods and the number of all matches.
    pub async fn list_methods(
        &self,
        customer_id: Uuid,
        q: &MethodQuery,
    ) -> Result<(Vec<MethodRecord>, i64), sqlx::Error> {
        let mut conditions = vec!["pm.merchant_id = $1".to_owned(), "pm.customer_id = $2".to_owned()];
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        let mut n = 2;
        if let Some(k) = q.kind {
            n += 1;
            conditions.push(format!("pm.type = ${n}"));
            texts.push(k.as_str().to_owned());
        }
        for w in &q.words {
            n += 1;
            conditions.push(format!("pm.search_text LIKE ${n} ESCAPE '\\'"));
            texts.push(format!("%{}%", super::customers::like_escape(&w.to_lowercase())));
        }
        for (bound, op) in [(q.created_from, ">="), (q.created_to, "<=")] {
            if let Some(t) = bound {
                n += 1;
                conditions.push(format!("pm.created_at {op} ${n}"));
                ints.push(t);
            }
        }
        let filter = format!("FROM {FROM} WHERE {}", conditions.join(" AND "));
        let dir = if q.asc { "ASC" } else { "DESC" };
        let page_sql = format!(
            "SELECT {COLUMNS} {filter} ORDER BY pm.{} {dir}, pm.id {dir} LIMIT {} OFFSET {}",
            q.order_by,
            q.page_size,
            u64::from(q.page - 1) * u64::from(q.page_size)
        );
        let count_sql = format!("SELECT COUNT(*) {filter}");
        on_conn!(self.conn(), p => {
            let mut count = sqlx::query_as::<_, (i64,)>(&count_sql).bind(self.merchant()).bind(customer_id);
            let mut page = sqlx::query_as::<_, MethodRecord>(&page_sql).bind(self.merchant()).bind(customer_id);
            for t in &texts { count = count.bind(t.as_str()); page = page.bind(t.as_str()); }
            for i in &ints { count = count.bind(*i); page = page.bind(*i); }
            let (total,) = count.fetch_one(p).await?;
            let items = if total > 0 { page.fetch_all(p).await? } else { Vec::new() };
            Ok((items, total))
        })
    }
}
