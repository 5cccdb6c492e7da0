//! Recorded purchases and refunds.

use crate::domain::event::EventType;
use uuid::Uuid;

use super::dialect::locking;
use super::query::record;
use super::{StoreError, WriteTx};
use crate::domain::money::MAX_VOLUME;

/// `purchase` or `refund`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = TransactionType, rename_all = "lowercase")]
pub enum TxKind {
    Purchase,
    Refund,
}

impl TxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TxKind::Purchase => "purchase",
            TxKind::Refund => "refund",
        }
    }
}

/// A transaction to record, validated.
#[derive(Debug, Clone)]
pub struct NewTransaction {
    pub external_id: String,
    pub kind: TxKind,
    /// Minor units, > 0.
    pub amount: i64,
    pub currency: String,
    pub occurred_at: i64,
    pub payment_method_id: Option<Uuid>,
    pub credit_account_number: Option<String>,
}

record! {
    struct Existing {
        id: Uuid,
        customer_id: Uuid,
        kind: String as "type",
        amount: i64,
        currency: String,
        occurred_at: i64,
        payment_method_id: Option<Uuid>,
        credit_account_number: Option<String>,
    }
}

/// What recording did.
pub enum Recorded {
    New(Uuid),
    /// The same `externalId` with the same content: the first record's id.
    Replay(Uuid),
}

impl WriteTx {
    /// Records a transaction: the customer's statistics follow, and a purchase
    /// charged to a credit account takes from its available credit, refused
    /// (409) when it would go over; the check and the charge are one statement, so
    /// concurrent purchases cannot overdraw.
    pub async fn record_transaction(&mut self, customer: Uuid, t: &NewTransaction) -> Result<Recorded, StoreError> {
        let customer_status = self.locked_customer_status(customer).await?;
        let (merchant, now) = (self.merchant(), self.now);
        let existing = self
            .fetch_optional::<Existing>(
                "SELECT id, customer_id, type, amount, currency, occurred_at, payment_method_id, credit_account_number \
             FROM transactions WHERE merchant_id = $1 AND external_id = $2",
                &[&merchant, &t.external_id.as_str()],
            )
            .await?;
        if let Some(e) = existing {
            let same = e.customer_id == customer
                && e.kind == t.kind.as_str()
                && e.amount == t.amount
                && e.currency == t.currency
                && e.occurred_at == t.occurred_at
                && e.payment_method_id == t.payment_method_id
                && e.credit_account_number == t.credit_account_number;
            return if same {
                Ok(Recorded::Replay(e.id))
            } else {
                Err(StoreError::Conflict {
                    code: "external_id_reused",
                    message: "A different transaction was already recorded with this externalId.",
                })
            };
        }
        // A purchase is new business: refused to an inactive customer or payment
        // method (a refund settles old business and is always taken).
        let purchase = t.kind == TxKind::Purchase;
        if purchase && customer_status != "active" {
            return Err(super::payment_methods::CUSTOMER_INACTIVE);
        }
        if let Some(pm) = t.payment_method_id {
            let found: Option<(String,)> = self
                .fetch_optional(
                    "SELECT status FROM payment_methods WHERE merchant_id = $1 AND customer_id = $2 AND id = $3",
                    &[&merchant, &customer, &pm],
                )
                .await?;
            match found {
                None => return Err(StoreError::NotFound("Payment method")),
                Some((status,)) if purchase && status != "active" => {
                    return Err(StoreError::Conflict {
                        code: "payment_method_inactive",
                        message: "An inactive payment method cannot be used for a purchase; activate it first.",
                    });
                }
                Some(_) => {}
            }
        }
        if let Some(number) = &t.credit_account_number {
            let sql = self.backend().locking(&locking!(
                "SELECT status, customer_id FROM credit_accounts WHERE merchant_id = $1 AND account_number = $2"
            ));
            let acct: Option<(String, Uuid)> = self.fetch_optional(sql, &[&merchant, &number.as_str()]).await?;
            let (status, owner) = acct.ok_or(StoreError::NotFound("Credit account"))?;
            if owner != customer {
                return Err(StoreError::NotFound("Credit account"));
            }
            if status != "open" {
                return Err(StoreError::Conflict { code: "account_closed", message: "A closed account cannot buy." });
            }
            let changed = match t.kind {
                TxKind::Purchase => self.exec("UPDATE credit_accounts SET outstanding = outstanding + $1 \
                     WHERE merchant_id = $2 AND account_number = $3 AND credit_limit - outstanding >= $1", &[&t.amount, &merchant, &number.as_str()]).await?,
                TxKind::Refund => self.exec("UPDATE credit_accounts SET outstanding = CASE WHEN outstanding > $1 THEN outstanding - $1 ELSE 0 END \
                     WHERE merchant_id = $2 AND account_number = $3", &[&t.amount, &merchant, &number.as_str()]).await?,
            };
            if changed == 0 {
                return Err(StoreError::Conflict {
                    code: "insufficient_credit",
                    message: "The purchase is above the account's available credit.",
                });
            }
        }
        let id = Uuid::now_v7();
        self.exec("INSERT INTO transactions (merchant_id, id, external_id, customer_id, type, amount, currency, occurred_at, \
             payment_method_id, credit_account_number, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", &[&merchant, &id, &t.external_id.as_str(), &customer, &t.kind.as_str(), &t.amount, &t.currency.as_str(), &t.occurred_at, &t.payment_method_id, &t.credit_account_number.as_deref(), &now]).await?;
        // Statistics: refunds count and reduce the volume; the last transaction is the latest by time.
        let signed = if t.kind == TxKind::Refund { -t.amount } else { t.amount };
        // The volume stays within its documented bound (checked in the statement,
        // on the locked row), so it can never overflow into a floating-point value.
        let changed = self.exec("UPDATE customers SET transactions_count = transactions_count + 1, transactions_volume = transactions_volume + $1, \
             last_transaction_amount = CASE WHEN last_transaction_at IS NULL OR last_transaction_at <= $2 THEN $1 ELSE last_transaction_amount END, \
             last_transaction_at = CASE WHEN last_transaction_at IS NULL OR last_transaction_at <= $2 THEN $2 ELSE last_transaction_at END \
             WHERE merchant_id = $3 AND id = $4 AND transactions_volume + $1 BETWEEN $5 AND $6", &[&signed, &t.occurred_at, &merchant, &customer, &-MAX_VOLUME, &MAX_VOLUME]).await?;
        if changed == 0 {
            return Err(StoreError::Conflict {
                code: "transactions_volume_limit",
                message: "This transaction would carry the customer's transaction volume past 9,999,999,999,999.99 either way.",
            });
        }
        self.event(EventType::TransactionRecorded, id).await?;
        Ok(Recorded::New(id))
    }
}
