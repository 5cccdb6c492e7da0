//! `Idempotency-Key` records, kept in the database so every API node agrees.
//!
//! A request first *claims* its key (a row in state `in_progress`); the work and
//! the stored reply then commit in one transaction ([`super::WriteTx::commit_replying`]),
//! so a reply is recorded exactly when the work is. A claim whose request died
//! before committing is taken over once it is older than any request can run.

use uuid::Uuid;

use super::{Actor, Db, StoreError, Tenant, WriteTx, now_ms, on_conn};

/// Replies are replayed for 24 hours.
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// A claim older than this belongs to a request that cannot still be running
/// (requests time out well before), so its work never committed.
pub const ABANDONED_MS: i64 = 60 * 1000;

#[derive(Debug, Clone)]
pub struct Claim {
    pub merchant_id: Uuid,
    pub key: String,
    pub claimed_at: i64,
}

#[derive(Debug)]
pub enum ClaimOutcome {
    Claimed(Claim),
    Replay {
        status: u16,
        body: Vec<u8>,
    },
    /// Same key, different request.
    Reused,
    InProgress,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    request_hash: Vec<u8>,
    state: String,
    response_status: Option<i32>,
    response_body: Option<Vec<u8>>,
    created_at: i64,
}
super::query::sqlite_row_by_name!(KeyRow { request_hash, state, response_status, response_body, created_at });

impl Db {
    /// Claims `key` for a request whose body hashes to `hash`, or says why not.
    pub async fn claim_idempotency(&self, tenant: Tenant, key: &str, hash: &[u8]) -> Result<ClaimOutcome, StoreError> {
        let (key, hash) = (key.to_owned(), hash.to_vec());
        self.write(Actor::system(tenant), move |mut tx| async move {
            let outcome = claim_in(&mut tx, key, &hash).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    /// Stores the reply of a request that wrote nothing (a validation error, say).
    pub async fn complete_idempotency(&self, claim: &Claim, status: u16, body: &[u8]) -> Result<(), StoreError> {
        let (claim, body) = (claim.clone(), body.to_vec());
        let tenant = Tenant::trusted(claim.merchant_id);
        self.write(Actor::system(tenant), move |mut tx| async move {
            complete_in(&mut tx, &claim, status, &body).await?;
            Ok(tx.commit().await?)
        })
        .await
    }

    /// Gives the key back after a failure, so the client's retry runs again.
    pub async fn release_idempotency(&self, claim: &Claim) -> Result<(), StoreError> {
        let claim = claim.clone();
        let tenant = Tenant::trusted(claim.merchant_id);
        self.write(Actor::system(tenant), move |mut tx| async move {
            tx.exec("DELETE FROM idempotency_keys WHERE merchant_id = $1 AND key = $2 AND state = 'in_progress' AND created_at = $3", &[&claim.merchant_id, &claim.key, &claim.claimed_at]).await?;
            Ok(tx.commit().await?)
        })
        .await
    }

    /// Deletes records past retention; returns how many.
    pub async fn purge_idempotency(&self) -> Result<u64, sqlx::Error> {
        let cutoff = now_ms() - RETENTION_MS;
        let done = on_conn!(self.writer(), p => sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(cutoff).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }
}

async fn claim_in(tx: &mut WriteTx, key: String, hash: &[u8]) -> Result<ClaimOutcome, sqlx::Error> {
    let merchant = tx.merchant();
    let now = tx.now;
    // A few rounds at most: each lost race means another request moved the row on.
    for _ in 0..4 {
        let inserted = tx
            .exec(
                "INSERT INTO idempotency_keys (merchant_id, key, request_hash, state, created_at) \
             VALUES ($1, $2, $3, 'in_progress', $4) ON CONFLICT DO NOTHING",
                &[&merchant, &key, &hash, &now],
            )
            .await?;
        if inserted == 1 {
            return Ok(ClaimOutcome::Claimed(Claim { merchant_id: merchant, key, claimed_at: now }));
        }
        let row = tx
            .fetch_optional::<KeyRow>(
                "SELECT request_hash, state, response_status, response_body, created_at \
             FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
                &[&merchant, &key],
            )
            .await?;
        let Some(row) = row else { continue };
        if row.created_at < now - RETENTION_MS {
            tx.exec(
                "DELETE FROM idempotency_keys WHERE merchant_id = $1 AND key = $2 AND created_at = $3",
                &[&merchant, &key, &row.created_at],
            )
            .await?;
            continue;
        }
        if row.request_hash != hash {
            return Ok(ClaimOutcome::Reused);
        }
        if row.state == "completed" {
            let status = row.response_status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200);
            return Ok(ClaimOutcome::Replay { status, body: row.response_body.unwrap_or_default() });
        }
        if row.created_at < now - ABANDONED_MS {
            let taken = tx
                .exec(
                    "UPDATE idempotency_keys SET created_at = $1 \
                 WHERE merchant_id = $2 AND key = $3 AND state = 'in_progress' AND created_at = $4",
                    &[&now, &merchant, &key, &row.created_at],
                )
                .await?;
            if taken == 1 {
                return Ok(ClaimOutcome::Claimed(Claim { merchant_id: merchant, key, claimed_at: now }));
            }
            continue;
        }
        return Ok(ClaimOutcome::InProgress);
    }
    Ok(ClaimOutcome::InProgress)
}

pub(super) async fn complete_in(tx: &mut WriteTx, claim: &Claim, status: u16, body: &[u8]) -> Result<(), sqlx::Error> {
    tx.exec(
        "UPDATE idempotency_keys SET state = 'completed', response_status = $1, response_body = $2 \
         WHERE merchant_id = $3 AND key = $4 AND created_at = $5 AND state = 'in_progress'",
        &[&i32::from(status), &body, &claim.merchant_id, &claim.key, &claim.claimed_at],
    )
    .await?;
    Ok(())
}
