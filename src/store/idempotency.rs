//! `Idempotency-Key` records, kept in the database so every API node agrees.
//!
//! A request first *claims* its key (a row in state `in_progress`); the work and
//! the stored reply then commit in one transaction ([`super::WriteTx::commit_replying`]),
//! so a reply is recorded exactly when the work is. A claim whose request died
//! before committing is taken over once it is older than any request can run
//! ([`ABANDONED_MS`], longer than the request deadline); and whatever a request
//! commits, it commits only while it still holds its claim, checked in the same
//! transaction: a request that outlived its claim is rolled back, so one key never
//! runs twice.
//!
//! What is stored of a key and its request are keyed digests
//! ([`crate::crypto::Vault::digest`]), and the reply is stored with the scope the
//! route required, which a replay checks first.

use std::sync::{Arc, OnceLock};

use uuid::Uuid;

use super::query::record;
use super::{Actor, Db, StoreError, Tenant, WriteTx, now_ms, on_conn};

/// Replies are replayed for 24 hours.
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// Expired records one purge transaction removes at most.
const PURGE_BATCH: i64 = 1000;
/// A claim older than this belongs to a request that cannot still be running
/// (every request's deadline is shorter, see `config::MAX_REQUEST_TIMEOUT_MS`), so
/// its work never committed.
pub const ABANDONED_MS: i64 = 60 * 1000;

#[derive(Debug, Clone)]
pub struct Claim {
    pub merchant_id: Uuid,
    pub key: String,
    pub claimed_at: i64,
    /// The scope the route required, set by the handler's scope check when it
    /// passes; a reply is stored only with one.
    pub scope: Arc<OnceLock<&'static str>>,
}

impl Claim {
    fn new(merchant_id: Uuid, key: String, claimed_at: i64) -> Claim {
        Claim { merchant_id, key, claimed_at, scope: Arc::default() }
    }
}

#[derive(Debug)]
pub enum ClaimOutcome {
    Claimed(Claim),
    Replay {
        status: u16,
        body: Vec<u8>,
        /// The scope the request needed; a replay needs it too.
        scope: Option<String>,
    },
    /// Same key, different request.
    Reused,
    InProgress,
}

record! {
    struct KeyRow {
        request_hash: Vec<u8>,
        state: String,
        response_status: Option<i32>,
        response_body: Option<Vec<u8>>,
        required_scope: Option<String>,
        created_at: i64,
    }
}

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
            tx.commit().await
        })
        .await
    }

    /// Gives the key back after a failure, so the client's retry runs again.
    pub async fn release_idempotency(&self, claim: &Claim) -> Result<(), StoreError> {
        let claim = claim.clone();
        let tenant = Tenant::trusted(claim.merchant_id);
        self.write(Actor::system(tenant), move |mut tx| async move {
            tx.exec("DELETE FROM idempotency_keys WHERE merchant_id = $1 AND key = $2 AND state = 'in_progress' AND created_at = $3", &[&claim.merchant_id, &claim.key, &claim.claimed_at]).await?;
            tx.commit().await
        })
        .await
    }

    /// Deletes records past retention; returns how many. Each merchant's go in
    /// write transactions of [`PURGE_BATCH`] rows, so no purge holds the writer
    /// long whatever has piled up.
    pub async fn purge_idempotency(&self) -> Result<u64, StoreError> {
        let cutoff = now_ms() - RETENTION_MS;
        let merchants: Vec<(Uuid,)> = on_conn!(self.reader(), p => sqlx::query_as(
            "SELECT DISTINCT merchant_id FROM idempotency_keys WHERE created_at < $1").bind(cutoff).fetch_all(p).await)?;
        let mut removed = 0;
        for (merchant,) in merchants {
            loop {
                let done = self
                    .write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
                        let n = tx
                            .exec(
                                "DELETE FROM idempotency_keys WHERE merchant_id = $1 AND key IN \
                                 (SELECT key FROM idempotency_keys WHERE merchant_id = $1 AND created_at < $2 LIMIT $3)",
                                &[&merchant, &cutoff, &PURGE_BATCH],
                            )
                            .await?;
                        tx.commit().await?;
                        Ok::<_, StoreError>(n)
                    })
                    .await?;
                removed += done;
                if done < PURGE_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(removed)
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
            return Ok(ClaimOutcome::Claimed(Claim::new(merchant, key, now)));
        }
        let row = tx
            .fetch_optional::<KeyRow>(
                "SELECT request_hash, state, response_status, response_body, required_scope, created_at \
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
            let body = row.response_body.unwrap_or_default();
            return Ok(ClaimOutcome::Replay { status, body, scope: row.required_scope });
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
                return Ok(ClaimOutcome::Claimed(Claim::new(merchant, key, now)));
            }
            continue;
        }
        return Ok(ClaimOutcome::InProgress);
    }
    Ok(ClaimOutcome::InProgress)
}

/// Stores the reply of the claim's request, which must still hold the claim.
pub(super) async fn complete_in(tx: &mut WriteTx, claim: &Claim, status: u16, body: &[u8]) -> Result<(), StoreError> {
    let scope = claim.scope.get().copied();
    let done = tx
        .exec(
            "UPDATE idempotency_keys SET state = 'completed', response_status = $1, response_body = $2, required_scope = $3 \
         WHERE merchant_id = $4 AND key = $5 AND created_at = $6 AND state = 'in_progress'",
            &[&i32::from(status), &body, &scope, &claim.merchant_id, &claim.key, &claim.claimed_at],
        )
        .await?;
    if done == 0 {
        return Err(claim_lost());
    }
    Ok(())
}

/// Fails unless the claim's request still holds it. On PostgreSQL the row stays
/// locked to the end of the transaction, so a retry cannot take the claim over
/// between this check and the commit.
pub(super) async fn check_held(tx: &mut WriteTx, claim: &Claim) -> Result<(), StoreError> {
    let held = tx
        .exec(
            "UPDATE idempotency_keys SET created_at = created_at \
         WHERE merchant_id = $1 AND key = $2 AND created_at = $3 AND state = 'in_progress'",
            &[&claim.merchant_id, &claim.key, &claim.claimed_at],
        )
        .await?;
    if held == 0 {
        return Err(claim_lost());
    }
    Ok(())
}

fn claim_lost() -> StoreError {
    StoreError::Conflict {
        code: "idempotency_key_in_progress",
        message: "This request outlived its Idempotency-Key claim, which a retry has taken over; nothing of it was kept.",
    }
}
