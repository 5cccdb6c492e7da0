//! Financing plans and credit accounts.

use crate::domain::event::EventType;
use rand::Rng;
use uuid::Uuid;

use super::dialect::locking;
use super::query::record;
use super::{Actor, Db, Scoped, StoreError, Tenant, WriteTx, on_conn};
use crate::crypto::Vault;
use crate::domain::credit::{AccountInput, PlanInput, QuestionText, Term};

/// The IIN virtual card numbers are issued under when a merchant sets none
/// (`clientele merchant configure --vcc-bin`): 990000, outside the card networks.
pub const DEFAULT_VCC_BIN: &str = "990000";

record! {
    #[derive(Debug, Clone)]
    pub struct PlanRecord {
        pub plan_id: i64,
        pub name: String,
        pub offer_category: String,
        pub apr: String,
        pub terms: String,
    }
}

impl PlanRecord {
    pub fn terms(&self) -> Vec<Term> {
        serde_json::from_str::<Vec<(u32, i64)>>(&self.terms)
            .unwrap_or_default()
            .into_iter()
            .map(|(months, admin_fee)| Term { months, admin_fee })
            .collect()
    }
}

record! {
    /// An account with the customer fields the point of sale shows.
    #[derive(Debug, Clone)]
    pub struct AccountRecord {
        pub id: Uuid,
        pub account_number: String,
        pub customer_id: Uuid,
        pub account_type: String,
        pub credit_limit: i64,
        pub outstanding: i64,
        pub interest_rate: String,
        pub risk_rating: String,
        pub preferred_language: Option<String>,
        pub tos_agreement: bool,
        pub payment_protection: bool,
        pub status: String,
        pub status_reason: String,
        pub vcc_last4: String,
        pub created_at: i64,
        /// Failed verifications since the last success or lock.
        pub verify_failures: i64,
        /// Verification refused until then (epoch ms), after too many failures.
        pub verify_locked_until: Option<i64>,
        pub first_name: String,
        pub last_name: String,
        pub email: Option<String>,
        pub mobile_phone: Option<String>,
        pub billing_line1: Option<String>,
        pub billing_line2: Option<String>,
        pub billing_city: Option<String>,
        pub billing_state: Option<String>,
        pub billing_postal_code: Option<String>,
        pub merchant_name: String,
    }
}

const ACCOUNT_COLUMNS: &str = "a.id, a.account_number, a.customer_id, a.account_type, a.credit_limit, a.outstanding, \
    a.interest_rate, a.risk_rating, a.preferred_language, a.tos_agreement, a.payment_protection, a.status, a.status_reason, \
    a.vcc_last4, a.created_at, a.verify_failures, a.verify_locked_until, c.first_name, c.last_name, c.email, c.mobile_phone, c.billing_line1, c.billing_line2, \
    c.billing_city, c.billing_state, c.billing_postal_code, m.name AS merchant_name";

const ACCOUNT_FROM: &str = "credit_accounts a JOIN customers c ON c.merchant_id = a.merchant_id AND c.id = a.customer_id \
    JOIN merchants m ON m.id = a.merchant_id";

/// How an account is looked up.
pub enum AccountKey {
    Number(String),
    VccFingerprint(String),
    Customer(Uuid),
}

/// The AAD of a virtual card number: merchant and account number.
pub fn vcc_aad(merchant: Uuid, account_number: &str) -> Vec<u8> {
    let mut aad = merchant.as_bytes().to_vec();
    aad.extend_from_slice(account_number.as_bytes());
    aad.extend_from_slice(b"vcc");
    aad
}

/// `bin` + random digits + the Luhn check digit: 16 digits.
pub fn issue_vcc(bin: &str) -> String {
    let mut rng = rand::thread_rng();
    let mut s: String = bin.to_owned();
    while s.len() < 15 {
        s.push(char::from(b'0' + rng.gen_range(0..10u8)));
    }
    (0..10).map(|d| format!("{s}{d}")).find(|c| crate::domain::card::luhn_valid(c)).expect("one check digit fits")
}

impl Db {
    /// The merchant's IIN for virtual cards and whether it may override verification.
    pub async fn merchant_settings(&self, tenant: Tenant) -> Result<(String, bool), sqlx::Error> {
        let (bin, allow): (Option<String>, bool) = on_conn!(self.reader(), p => sqlx::query_as(
            "SELECT vcc_bin, allow_merchant_override FROM merchants WHERE id = $1").bind(tenant.id()).fetch_one(p).await)?;
        Ok((bin.unwrap_or_else(|| DEFAULT_VCC_BIN.to_owned()), allow))
    }

    /// Operator settings of a merchant (`clientele merchant configure`).
    pub async fn configure_merchant(
        &self,
        tenant: Tenant,
        vcc_bin: Option<&str>,
        allow_override: Option<bool>,
    ) -> Result<(), StoreError> {
        let vcc_bin = vcc_bin.map(str::to_owned);
        self.write(Actor::system(tenant), move |mut tx| async move {
            let merchant = tx.merchant();
            tx.exec(
                "UPDATE merchants SET vcc_bin = COALESCE($1, vcc_bin), \
                 allow_merchant_override = COALESCE($2, allow_merchant_override) WHERE id = $3",
                &[&vcc_bin, &allow_override, &merchant],
            )
            .await?;
            tx.commit().await
        })
        .await
    }
}

impl WriteTx {
    pub async fn put_plan(&mut self, plan_id: i64, plan: &PlanInput) -> Result<PlanRecord, StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        let terms = serde_json::to_string(&plan.terms.iter().map(|t| (t.months, t.admin_fee)).collect::<Vec<_>>())
            .unwrap_or_default();
        let existing: Option<(Uuid,)> = self
            .fetch_optional(
                "SELECT id FROM financing_plans WHERE merchant_id = $1 AND plan_id = $2",
                &[&merchant, &plan_id],
            )
            .await?;
        let id = match existing {
            Some((id,)) => {
                self.exec("UPDATE financing_plans SET name = $1, offer_category = $2, apr = $3, terms = $4, modified_at = $5 WHERE merchant_id = $6 AND plan_id = $7", &[&plan.name.as_str(), &plan.offer_category.as_str(), &plan.apr.to_string(), &terms, &now, &merchant, &plan_id]).await?;
                id
            }
            None => {
                self.within_limit(
                    "SELECT COUNT(*) FROM financing_plans WHERE merchant_id = $1",
                    &[&merchant],
                    super::limits::FINANCING_PLANS_PER_MERCHANT,
                    "too_many_financing_plans",
                    "A merchant has at most 100 financing plans; delete one first.",
                )
                .await?;
                let id = Uuid::now_v7();
                self.exec("INSERT INTO financing_plans (merchant_id, plan_id, id, name, offer_category, apr, terms, created_at, modified_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)", &[&merchant, &plan_id, &id, &plan.name.as_str(), &plan.offer_category.as_str(), &plan.apr.to_string(), &terms, &now]).await?;
                id
            }
        };
        self.event(EventType::FinancingPlanUpdated, id).await?;
        Ok(PlanRecord {
            plan_id,
            name: plan.name.clone(),
            offer_category: plan.offer_category.clone(),
            apr: plan.apr.to_string(),
            terms,
        })
    }

    pub async fn delete_plan(&mut self, plan_id: i64) -> Result<(), StoreError> {
        let merchant = self.merchant();
        let row: Option<(Uuid,)> = self
            .fetch_optional(
                "DELETE FROM financing_plans WHERE merchant_id = $1 AND plan_id = $2 RETURNING id",
                &[&merchant, &plan_id],
            )
            .await?;
        let (id,) = row.ok_or(StoreError::NotFound("Financing plan"))?;
        self.event(EventType::FinancingPlanDeleted, id).await?;
        Ok(())
    }

    /// Opens an account with a fresh account number and virtual card; returns both
    /// (the card's full number: the opening reply shows it once).
    /// `answer_hashes` are the hashes of `a`'s security answers, in order, made
    /// before the write ([`Vault::hash_answer`] is slow, and this runs on the writer).
    pub async fn open_account(
        &mut self,
        vault: &Vault,
        customer: Uuid,
        a: &AccountInput,
        answer_hashes: &[String],
        bin: &str,
    ) -> Result<(String, zeroize::Zeroizing<String>), StoreError> {
        debug_assert_eq!(a.questions.len(), answer_hashes.len());
        self.lock_active_customer(customer).await?;
        let version = self.active_key_version(vault).await?;
        let (merchant, now) = (self.merchant(), self.now);
        self.within_limit(
            "SELECT COUNT(*) FROM credit_accounts WHERE merchant_id = $1 AND customer_id = $2",
            &[&merchant, &customer],
            super::limits::CREDIT_ACCOUNTS_PER_CUSTOMER,
            "too_many_credit_accounts",
            "A customer has at most 20 credit accounts, closed ones included.",
        )
        .await?;
        // Random numbers; a collision (vanishingly rare) just draws again.
        let mut number = String::new();
        for _ in 0..10 {
            let candidate = format!("{}", rand::thread_rng().gen_range(100_000_000_000u64..1_000_000_000_000));
            let taken: Option<(i32,)> = self
                .fetch_optional(
                    "SELECT 1 FROM credit_accounts WHERE merchant_id = $1 AND account_number = $2",
                    &[&merchant, &candidate.as_str()],
                )
                .await?;
            if taken.is_none() {
                number = candidate;
                break;
            }
        }
        let mut vcc = String::new();
        let mut fingerprint = String::new();
        for _ in 0..10 {
            let candidate = issue_vcc(bin);
            let fp = vault.fingerprint(merchant, "vcc", candidate.as_bytes());
            let taken: Option<(i32,)> = self
                .fetch_optional(
                    "SELECT 1 FROM credit_accounts WHERE merchant_id = $1 AND vcc_fingerprint = $2",
                    &[&merchant, &fp.as_str()],
                )
                .await?;
            if taken.is_none() {
                (vcc, fingerprint) = (candidate, fp);
                break;
            }
        }
        if number.is_empty() || vcc.is_empty() {
            return Err(StoreError::Conflict {
                code: "numbers_exhausted",
                message: "No free account or card number was found; try again.",
            });
        }
        let sealed = vault.seal(version, &vcc_aad(merchant, &number), vcc.as_bytes())?;
        let last4 = vcc[vcc.len() - 4..].to_owned();
        let id = Uuid::now_v7();
        self.exec("INSERT INTO credit_accounts (merchant_id, account_number, id, customer_id, account_type, credit_limit, interest_rate, \
             risk_rating, preferred_language, tos_agreement, payment_protection, status, status_reason, vcc_secret, vcc_last4, \
             vcc_fingerprint, key_version, version, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', 'NNOR', $12, $13, $14, $15, 1, $16)", &[&merchant, &number.as_str(), &id, &customer, &a.account_type.as_str(), &a.credit_limit, &a.interest_rate.to_string(), &a.risk_rating.as_str(), &a.preferred_language.as_deref(), &a.tos_agreement, &a.payment_protection, &sealed, &last4.as_str(), &fingerprint.as_str(), &i64::from(version), &now]).await?;
        for ((qid, text, _), hash) in a.questions.iter().zip(answer_hashes) {
            let texts =
                (!text.translations.is_empty()).then(|| serde_json::to_string(&text.translations).unwrap_or_default());
            self.exec("INSERT INTO credit_security_questions (merchant_id, account_number, question_id, text, answer_hash, texts) VALUES ($1, $2, $3, $4, $5, $6)", &[&merchant, &number.as_str(), qid, &text.text.as_str(), &hash.as_str(), &texts.as_deref()]).await?;
        }
        self.event(EventType::CreditAccountOpened, id).await?;
        Ok((number, zeroize::Zeroizing::new(vcc)))
    }

    /// Opens an account's virtual card number and records that it was revealed.
    pub async fn reveal_vcc(&mut self, vault: &Vault, number: &str) -> Result<zeroize::Zeroizing<String>, StoreError> {
        let merchant = self.merchant();
        let row: Option<(Uuid, Vec<u8>)> = self
            .fetch_optional(
                "SELECT id, vcc_secret FROM credit_accounts WHERE merchant_id = $1 AND account_number = $2",
                &[&merchant, &number],
            )
            .await?;
        let (id, sealed) = row.ok_or(StoreError::NotFound("Credit account"))?;
        let clear = self.open_sealed(vault, &sealed, &vcc_aad(merchant, number)).await?;
        self.event(EventType::CreditAccountVccRevealed, id).await?;
        Ok(zeroize::Zeroizing::new(String::from_utf8_lossy(&clear).into_owned()))
    }

    /// Closes an account for good.
    pub async fn close_account(&mut self, number: &str) -> Result<(), StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        let sql = self.backend().locking(&locking!(
            "SELECT id, status FROM credit_accounts WHERE merchant_id = $1 AND account_number = $2"
        ));
        let row: Option<(Uuid, String)> = self.fetch_optional(sql, &[&merchant, &number]).await?;
        let (id, status) = row.ok_or(StoreError::NotFound("Credit account"))?;
        if status == "closed" {
            return Err(StoreError::Conflict { code: "account_closed", message: "The account is already closed." });
        }
        self.exec("UPDATE credit_accounts SET status = 'closed', status_reason = 'CLSD', closed_at = $1, version = version + 1 WHERE merchant_id = $2 AND account_number = $3", &[&now, &merchant, &number]).await?;
        self.event(EventType::CreditAccountClosed, id).await?;
        Ok(())
    }
}

impl Scoped<'_> {
    pub async fn plans(&self) -> Result<Vec<PlanRecord>, sqlx::Error> {
        on_conn!(self.conn(), p => sqlx::query_as::<_, PlanRecord>(
            "SELECT plan_id, name, offer_category, apr, terms FROM financing_plans WHERE merchant_id = $1 ORDER BY plan_id")
            .bind(self.merchant()).fetch_all(p).await)
    }

    pub async fn plan(&self, plan_id: i64) -> Result<Option<PlanRecord>, sqlx::Error> {
        on_conn!(self.conn(), p => sqlx::query_as::<_, PlanRecord>(
            "SELECT plan_id, name, offer_category, apr, terms FROM financing_plans WHERE merchant_id = $1 AND plan_id = $2")
            .bind(self.merchant()).bind(plan_id).fetch_optional(p).await)
    }

    /// Accounts of customers with this name and date of birth (and postal code).
    pub async fn search_accounts(
        &self,
        first: &str,
        last: &str,
        dob: &str,
        postal: Option<&str>,
    ) -> Result<Vec<AccountRecord>, sqlx::Error> {
        let mut sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM {ACCOUNT_FROM} WHERE a.merchant_id = $1 AND c.last_name_key = $2 AND c.first_name_key = $3 AND c.date_of_birth = $4"
        );
        if postal.is_some() {
            sql.push_str(" AND c.postal_key = $5");
        }
        sql.push_str(" ORDER BY a.created_at, a.account_number");
        on_conn!(self.conn(), p => {
            let mut q = sqlx::query_as::<_, AccountRecord>(&sql).bind(self.merchant()).bind(last).bind(first).bind(dob);
            if let Some(pc) = postal { q = q.bind(pc); }
            q.fetch_all(p).await
        })
    }

    /// One account (the newest open one for a customer).
    pub async fn account(&self, key: &AccountKey) -> Result<Option<AccountRecord>, sqlx::Error> {
        let (cond, order) = match key {
            AccountKey::Number(_) => ("a.account_number = $2", ""),
            AccountKey::VccFingerprint(_) => ("a.vcc_fingerprint = $2", ""),
            AccountKey::Customer(_) => {
                ("a.customer_id = $2", " ORDER BY a.status = 'open' DESC, a.created_at DESC LIMIT 1")
            }
        };
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM {ACCOUNT_FROM} WHERE a.merchant_id = $1 AND {cond}{order}");
        on_conn!(self.conn(), p => {
            let q = sqlx::query_as::<_, AccountRecord>(&sql).bind(self.merchant());
            let q = match key {
                AccountKey::Number(n) => q.bind(n.as_str()),
                AccountKey::VccFingerprint(f) => q.bind(f.as_str()),
                AccountKey::Customer(c) => q.bind(*c),
            };
            q.fetch_optional(p).await
        })
    }

    /// A customer's accounts, the newest first.
    pub async fn accounts_of(&self, customer: Uuid) -> Result<Vec<AccountRecord>, sqlx::Error> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM {ACCOUNT_FROM} WHERE a.merchant_id = $1 AND a.customer_id = $2 ORDER BY a.created_at DESC LIMIT 50"
        );
        on_conn!(self.conn(), p => sqlx::query_as::<_, AccountRecord>(&sql).bind(self.merchant()).bind(customer).fetch_all(p).await)
    }

    /// The security questions of an account (ids and texts, never answers).
    pub async fn security_questions(&self, number: &str) -> Result<Vec<(i64, QuestionText)>, sqlx::Error> {
        let rows: Vec<(i64, String, Option<String>)> = on_conn!(self.conn(), p => sqlx::query_as(
            "SELECT question_id, text, texts FROM credit_security_questions WHERE merchant_id = $1 AND account_number = $2 ORDER BY question_id")
            .bind(self.merchant()).bind(number).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|(id, text, texts)| {
                let translations = texts.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
                (id, QuestionText { text, translations })
            })
            .collect())
    }
}
