//! Verifying a customer at the point of sale, and the notification outbox.
//!
//! Counters and locks live on the account row, read under the account's lock, so
//! every API node agrees. Failures are committed even though the request fails:
//! the store reports them as outcomes, not errors, and the handler commits.

use crate::domain::event::EventType;
use rand::Rng;
use uuid::Uuid;

use super::dialect::locking;
use super::keys::secret_aad;
use super::query::record;
use super::{Scoped, StoreError, WriteTx, now_ms, on_conn};
use crate::crypto::{AnswerCheck, Vault};

/// Codes live 10 minutes.
pub const CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// Five wrong answers or codes lock verification for 30 minutes; every code sent
/// by SMS or email counts as an attempt too (see [`WriteTx::verify`]).
pub const MAX_FAILURES: i64 = 5;
pub const LOCK_MS: i64 = 30 * 60 * 1000;
/// One code per account and channel (SMS, email) in this long.
pub const SEND_COOLDOWN_MS: i64 = 30 * 1000;

/// What bounds the verifications of one merchant.
#[derive(Debug, Clone, Copy)]
pub struct VerifyPolicy {
    /// Whether the merchant may override verification.
    pub allow_override: bool,
    /// Codes the merchant may send by SMS or email in a minute, all accounts together.
    pub sends_per_minute: u32,
}

/// How a purchase on a credit account is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = VerificationFormat, rename_all = "snake_case")]
pub enum Format {
    Sms,
    Email,
    SecurityQuestion,
    MerchantOverride,
    RegularPurchaseBypass,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "sms" => Format::Sms,
            "email" => Format::Email,
            "security_question" => Format::SecurityQuestion,
            "merchant_override" => Format::MerchantOverride,
            "regular_purchase_bypass" => Format::RegularPurchaseBypass,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Sms => "sms",
            Format::Email => "email",
            Format::SecurityQuestion => "security_question",
            Format::MerchantOverride => "merchant_override",
            Format::RegularPurchaseBypass => "regular_purchase_bypass",
        }
    }
}

#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub format: Format,
    /// The security question's id and the answer given.
    pub question: Option<(i64, String)>,
    pub request_id: Option<String>,
    pub vcc_number: Option<String>,
    /// The answer, checked before the write ([`Scoped::answer_to_check`]).
    pub answer: Option<AnswerVerdict>,
}

/// A security answer checked against its stored hash before the write: argon2
/// takes tens of milliseconds, which the writer would spend holding every other
/// write. The write uses the verdict only if the hash is still the one checked.
#[derive(Debug, Clone)]
pub struct AnswerVerdict {
    pub checked: String,
    pub check: AnswerCheck,
    /// A peppered hash of the answer, to replace an unpeppered `checked`.
    pub rehash: Option<String>,
}

#[derive(Debug)]
pub enum Outcome {
    /// A code went to the outbox for this channel.
    Sent(&'static str),
    /// The code itself, for the cashier.
    Code(u32),
    /// A wrong answer or code, counted; `locked` when it was the fifth.
    Failed { locked: bool },
    /// A code was confirmed.
    Confirmed,
}

record! {
    struct AccountState {
        id: Uuid,
        status: String,
        risk_rating: String,
        credit_limit: i64,
        outstanding: i64,
        verify_failures: i64,
        verify_locked_until: Option<i64>,
        vcc_fingerprint: String,
        email: Option<String>,
        mobile_phone: Option<String>,
        merchant_name: String,
    }
}

fn code_hash(vault: &Vault, merchant: Uuid, number: &str, code: u32) -> String {
    vault.fingerprint(merchant, &format!("verify:{number}"), code.to_string().as_bytes())
}

impl WriteTx {
    async fn verifiable_account(&mut self, number: &str) -> Result<AccountState, StoreError> {
        let merchant = self.merchant();
        let sql = self.backend().locking(&locking!(
            "SELECT a.id, a.status, a.risk_rating, a.credit_limit, a.outstanding, a.verify_failures, a.verify_locked_until, \
             a.vcc_fingerprint, c.email, c.mobile_phone, m.name AS merchant_name \
             FROM credit_accounts a JOIN customers c ON c.merchant_id = a.merchant_id AND c.id = a.customer_id \
             JOIN merchants m ON m.id = a.merchant_id WHERE a.merchant_id = $1 AND a.account_number = $2",
            of "a"
        ));
        let a = self.fetch_optional::<AccountState>(sql, &[&merchant, &number]).await?;
        let a = a.ok_or(StoreError::NotFound("Credit account"))?;
        if a.status != "open" {
            return Err(StoreError::Conflict {
                code: "account_closed",
                message: "A closed account cannot be verified.",
            });
        }
        if let Some(until) = a.verify_locked_until.filter(|u| *u > self.now) {
            return Err(StoreError::Locked { until });
        }
        Ok(a)
    }

    async fn record_failure(&mut self, number: &str, a: &AccountState) -> Result<Outcome, StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        let failures = a.verify_failures + 1;
        let locked = failures >= MAX_FAILURES;
        let (failures, until) = if locked { (0, Some(now + LOCK_MS)) } else { (failures, None) };
        self.exec("UPDATE credit_accounts SET verify_failures = $1, verify_locked_until = $2 WHERE merchant_id = $3 AND account_number = $4", &[&failures, &until, &merchant, &number]).await?;
        self.event(
            if locked {
                EventType::CreditAccountVerificationLocked
            } else {
                EventType::CreditAccountVerificationFailed
            },
            a.id,
        )
        .await?;
        Ok(Outcome::Failed { locked })
    }

    /// Refuses a code sent to `channel` too soon after the account's last one there,
    /// or past the merchant's sends per minute: each costs the merchant a message,
    /// and each live code is one more an attacker could guess.
    async fn may_send(&mut self, number: &str, format: Format, per_minute: u32) -> Result<(), StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        let last: Option<(Option<i64>,)> = self
            .fetch_optional(
                "SELECT MAX(created_at) FROM credit_verifications WHERE merchant_id = $1 AND account_number = $2 AND format = $3",
                &[&merchant, &number, &format.as_str()],
            )
            .await?;
        if let Some(last) = last.and_then(|(t,)| t).filter(|t| now - t < SEND_COOLDOWN_MS) {
            return Err(StoreError::Throttled {
                code: "verification_throttled",
                message: "A code was sent to this account on this channel less than 30 seconds ago; it stays valid.",
                retry_after_ms: last + SEND_COOLDOWN_MS - now,
            });
        }
        let window = now - 60_000;
        let sent: Option<(i64, Option<i64>)> = self
            .fetch_optional(
                "SELECT COUNT(*), MIN(created_at) FROM credit_verifications \
                 WHERE merchant_id = $1 AND created_at > $2 AND format IN ('sms', 'email')",
                &[&merchant, &window],
            )
            .await?;
        if let Some((n, oldest)) = sent
            && n >= i64::from(per_minute)
        {
            return Err(StoreError::Throttled {
                code: "verification_rate_limited",
                message: "This merchant has sent as many verification codes as it may in a minute (CLIENTELE_VERIFICATION_SENDS_PER_MINUTE).",
                retry_after_ms: oldest.map_or(60_000, |t| t + 60_000 - now),
            });
        }
        Ok(())
    }

    async fn record_success(&mut self, number: &str) -> Result<(), StoreError> {
        let merchant = self.merchant();
        self.exec("UPDATE credit_accounts SET verify_failures = 0, verify_locked_until = NULL WHERE merchant_id = $1 AND account_number = $2", &[&merchant, &number]).await?;
        Ok(())
    }

    /// A fresh 6-digit code, stored as its keyed hash with a 10-minute expiry. It
    /// replaces every code of the account not yet used: one live code at a time.
    async fn new_code(
        &mut self,
        vault: &Vault,
        number: &str,
        format: Format,
        request_id: Option<&str>,
    ) -> Result<u32, StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        let code: u32 = rand::thread_rng().gen_range(100_000..1_000_000);
        self.exec(
            "UPDATE credit_verifications SET used_at = $1 WHERE merchant_id = $2 AND account_number = $3 AND used_at IS NULL",
            &[&now, &merchant, &number],
        )
        .await?;
        self.exec("INSERT INTO credit_verifications (merchant_id, id, account_number, format, request_id, code_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", &[&merchant, &Uuid::now_v7(), &number, &format.as_str(), &request_id, &code_hash(vault, merchant, number, code), &now, &(now + CODE_TTL_MS)]).await?;
        Ok(code)
    }

    /// Puts a message in the outbox, recipient and text sealed.
    pub async fn enqueue(
        &mut self,
        vault: &Vault,
        channel: &str,
        recipient: &str,
        body: &str,
    ) -> Result<(), StoreError> {
        let version = self.active_key_version(vault).await?;
        let (merchant, now, id) = (self.merchant(), self.now, Uuid::now_v7());
        let seal = |field: &str, clear: &str| {
            vault.seal(version, &secret_aad(merchant, id, field), clear.as_bytes()).map_err(StoreError::from)
        };
        let (r, b) = (seal("outbox:recipient", recipient)?, seal("outbox:body", body)?);
        self.exec("INSERT INTO notification_outbox (merchant_id, id, channel, recipient, body, key_version, status, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)", &[&merchant, &id, &channel, &r, &b, &i64::from(version), &now]).await?;
        Ok(())
    }

    /// `POST /credit-accounts/{n}/verify`.
    pub async fn verify(
        &mut self,
        vault: &Vault,
        number: &str,
        req: &VerifyRequest,
        policy: VerifyPolicy,
    ) -> Result<Outcome, StoreError> {
        let a = self.verifiable_account(number).await?;
        let merchant = self.merchant();
        if let Some(vcc) = &req.vcc_number
            && vault.fingerprint(merchant, "vcc", vcc.as_bytes()) != a.vcc_fingerprint
        {
            return Err(StoreError::Conflict {
                code: "vcc_mismatch",
                message: "vccNumber is not this account's card.",
            });
        }
        let request_id = req.request_id.as_deref();
        let outcome = match req.format {
            Format::Sms | Format::Email => {
                let (channel, recipient) = match req.format {
                    Format::Sms => ("sms", a.mobile_phone.clone()),
                    _ => ("email", a.email.clone()),
                };
                let Some(recipient) = recipient else {
                    return Err(StoreError::Conflict {
                        code: "no_contact_on_file",
                        message: "The customer has no phone number or email address on file for this format.",
                    });
                };
                self.may_send(number, req.format, policy.sends_per_minute).await?;
                // A code sent counts as an attempt: sends cannot multiply the codes
                // one may guess beyond the lockout's five attempts.
                let attempts = a.verify_failures + 1;
                if attempts >= MAX_FAILURES {
                    let until = self.now + LOCK_MS;
                    self.exec("UPDATE credit_accounts SET verify_failures = 0, verify_locked_until = $1 WHERE merchant_id = $2 AND account_number = $3", &[&until, &merchant, &number]).await?;
                    self.event(EventType::CreditAccountVerificationLocked, a.id).await?;
                    return Ok(Outcome::Failed { locked: true });
                }
                self.exec(
                    "UPDATE credit_accounts SET verify_failures = $1 WHERE merchant_id = $2 AND account_number = $3",
                    &[&attempts, &merchant, &number],
                )
                .await?;
                let code = self.new_code(vault, number, req.format, request_id).await?;
                let text = format!("Your {} verification code is {code}. It expires in 10 minutes.", a.merchant_name);
                self.enqueue(vault, channel, &recipient, &text).await?;
                Outcome::Sent(channel)
            }
            Format::SecurityQuestion => {
                let qid = req.question.as_ref().map_or(0, |(q, _)| *q);
                let row: Option<(String,)> = self.fetch_optional("SELECT answer_hash FROM credit_security_questions WHERE merchant_id = $1 AND account_number = $2 AND question_id = $3", &[&merchant, &number, &qid]).await?;
                let Some((hash,)) = row else { return Err(StoreError::NotFound("Security question")) };
                let verdict = req.answer.as_ref().filter(|v| v.checked == hash);
                if verdict.is_none_or(|v| v.check == AnswerCheck::Wrong) {
                    return self.record_failure(number, &a).await;
                }
                if let Some(rehash) = verdict.and_then(|v| v.rehash.as_deref()) {
                    self.exec("UPDATE credit_security_questions SET answer_hash = $1 WHERE merchant_id = $2 AND account_number = $3 AND question_id = $4", &[&rehash, &merchant, &number, &qid]).await?;
                }
                self.record_success(number).await?;
                Outcome::Code(self.new_code(vault, number, req.format, request_id).await?)
            }
            Format::MerchantOverride => {
                if !policy.allow_override {
                    return Err(StoreError::Forbidden {
                        code: "merchant_override_not_allowed",
                        message: "This merchant may not override customer verification.",
                    });
                }
                Outcome::Code(self.new_code(vault, number, req.format, request_id).await?)
            }
            Format::RegularPurchaseBypass => {
                // Open (checked above), low risk, credit left, and no failed attempt pending.
                let qualifies = a.risk_rating == "L" && a.credit_limit > a.outstanding && a.verify_failures == 0;
                if !qualifies {
                    return Err(StoreError::Conflict {
                        code: "bypass_not_allowed",
                        message: "Only open, low-risk accounts with credit left and no failed verification may bypass it.",
                    });
                }
                Outcome::Code(self.new_code(vault, number, req.format, request_id).await?)
            }
        };
        self.event(EventType::CreditAccountVerificationRequested, a.id).await?;
        Ok(outcome)
    }

    /// `POST /credit-accounts/{n}/verify/confirm`: a code sent or given, unused and unexpired.
    pub async fn confirm_code(&mut self, vault: &Vault, number: &str, code: u32) -> Result<Outcome, StoreError> {
        let a = self.verifiable_account(number).await?;
        let (merchant, now) = (self.merchant(), self.now);
        let hash = code_hash(vault, merchant, number, code);
        let found: Option<(Uuid,)> = self
            .fetch_optional(
                "SELECT id FROM credit_verifications WHERE merchant_id = $1 AND account_number = $2 AND code_hash = $3 \
             AND used_at IS NULL AND expires_at > $4 ORDER BY created_at DESC LIMIT 1",
                &[&merchant, &number, &hash.as_str(), &now],
            )
            .await?;
        let Some((id,)) = found else { return self.record_failure(number, &a).await };
        self.exec(
            "UPDATE credit_verifications SET used_at = $1 WHERE merchant_id = $2 AND id = $3",
            &[&now, &merchant, &id],
        )
        .await?;
        self.record_success(number).await?;
        self.event(EventType::CreditAccountVerified, a.id).await?;
        Ok(Outcome::Confirmed)
    }
}

impl Scoped<'_> {
    /// The stored hash a security answer is to be checked against, unless the
    /// account is locked (or unknown, or has no such question): then the write
    /// answers without anyone spending an argon2 computation on it.
    pub async fn answer_to_check(&self, number: &str, question: i64) -> Result<Option<String>, sqlx::Error> {
        let row: Option<(String, Option<i64>)> = on_conn!(self.conn(), p => sqlx::query_as(
            "SELECT q.answer_hash, a.verify_locked_until FROM credit_accounts a \
             JOIN credit_security_questions q ON q.merchant_id = a.merchant_id AND q.account_number = a.account_number \
             WHERE a.merchant_id = $1 AND a.account_number = $2 AND q.question_id = $3")
            .bind(self.merchant()).bind(number).bind(question).fetch_optional(p).await)?;
        Ok(row.filter(|(_, locked)| locked.is_none_or(|until| until <= now_ms())).map(|(hash, _)| hash))
    }
}
