//! The notification outbox's delivery side ([`crate::notify`]): which messages
//! are due, leasing one to a node, and recording how its attempt ended. Each
//! message is written in a transaction of its own merchant through
//! [`Db::write`], like every other write.

use uuid::Uuid;

use super::query::record;
use super::{Actor, Db, StoreError, Tenant, on_conn};

record! {
    /// A message due for an attempt; recipient and body are sealed.
    pub struct OutboxMessage {
        pub merchant_id: Uuid,
        pub id: Uuid,
        pub channel: String,
        pub recipient: Vec<u8>,
        pub body: Vec<u8>,
        pub attempts: i64,
        pub next_attempt_at: i64,
    }
}

/// How an attempt ended.
pub struct Outcome {
    /// `sent`, `unsent`, `failed` or `pending` (to be retried).
    pub status: &'static str,
    /// Whether the attempt counts toward the message's limit.
    pub counts: bool,
    pub next_attempt_at: i64,
    /// Why it was not delivered, in words without personal data.
    pub error: Option<String>,
    pub sent_at: Option<i64>,
}

impl Db {
    /// Up to `limit` pending messages due by `now`, of every merchant (the
    /// delivery task serves them all), the longest waiting first.
    pub async fn due_messages(&self, now: i64, limit: i64) -> Result<Vec<OutboxMessage>, sqlx::Error> {
        on_conn!(self.reader(), p => sqlx::query_as::<_, OutboxMessage>(
            "SELECT merchant_id, id, channel, recipient, body, attempts, next_attempt_at FROM notification_outbox \
             WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2")
            .bind(now).bind(limit).fetch_all(p).await)
    }

    /// Takes `m` for this node until `until`: false when another node leased it
    /// first (its due time is no longer the one read).
    pub async fn lease_message(&self, m: &OutboxMessage, until: i64) -> Result<bool, StoreError> {
        let (merchant, id, due) = (m.merchant_id, m.id, m.next_attempt_at);
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            let leased = tx
                .exec(
                    "UPDATE notification_outbox SET next_attempt_at = $1 \
                     WHERE merchant_id = $2 AND id = $3 AND status = 'pending' AND next_attempt_at = $4",
                    &[&until, &merchant, &id, &due],
                )
                .await?;
            tx.commit().await?;
            Ok(leased == 1)
        })
        .await
    }

    /// Records how the attempt at `m` ended.
    pub async fn settle_message(&self, m: &OutboxMessage, outcome: Outcome) -> Result<(), StoreError> {
        let (merchant, id) = (m.merchant_id, m.id);
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            let Outcome { status, counts, next_attempt_at, error, sent_at } = outcome;
            tx.exec(
                "UPDATE notification_outbox SET status = $1, attempts = attempts + $2, next_attempt_at = $3, \
                 last_error = $4, sent_at = $5 WHERE merchant_id = $6 AND id = $7",
                &[&status, &i64::from(counts), &next_attempt_at, &error, &sent_at, &merchant, &id],
            )
            .await?;
            tx.commit().await
        })
        .await
    }
}
