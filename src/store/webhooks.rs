//! Webhook endpoints and their delivery queue (migration 16).
//!
//! An endpoint follows its merchant's event feed with a cursor of its own: a
//! dispatch reads the events after it (in feed order, up to the feed's horizon,
//! so none can commit behind it later), queues a delivery for each event the
//! endpoint enabled, and moves the cursor, in one transaction. Creates pay
//! nothing for webhooks, and no event is missed or queued twice. Deliveries are
//! rows leased to one node at a time, like the notification outbox
//! ([`crate::webhooks`] sends them).

use uuid::Uuid;

use super::dialect::locking;
use super::keys::secret_aad;
use super::query::record;
use super::{Actor, Backend, Db, Scoped, StoreError, Tenant, WriteTx, on_conn};
use crate::crypto::Vault;
use crate::domain::event::EventType;
use crate::domain::webhook::{
    DestinationUrl, EndpointInput, EndpointStatus, EventSelection, MAX_ENDPOINTS, SigningSecret,
};
use std::sync::LazyLock;

/// The field an endpoint's secrets are sealed under.
pub const SECRET_FIELD: &str = "webhook:secret";
pub const PREVIOUS_SECRET_FIELD: &str = "webhook:previous_secret";
/// How long a rotated-out secret keeps signing beside the new one.
pub const PREVIOUS_SECRET_MS: i64 = 24 * 3600 * 1000;
/// How long finished deliveries stay in the delivery log (30 days).
pub const DELIVERY_LOG_MS: i64 = 30 * 24 * 3600 * 1000;
/// Events one dispatch queues at most for one endpoint.
const DISPATCH_BATCH: usize = 500;

/// Leases an endpoint's due deliveries (`$1` merchant, `$2` endpoint, `$3` the
/// lease's end, `$4` now, `$5` how many); see [`Db::lease_webhook_deliveries`].
fn lease_sql(backend: Backend) -> &'static str {
    fn sql(backend: Backend) -> String {
        let due = backend.claimed(
            "SELECT id FROM webhook_deliveries WHERE merchant_id = $1 AND endpoint_id = $2 \
             AND status = 'pending' AND next_attempt_at <= $4 ORDER BY next_attempt_at LIMIT $5",
        );
        format!(
            "UPDATE webhook_deliveries SET next_attempt_at = $3 WHERE merchant_id = $1 AND {due} RETURNING {}",
            LeasedRow::COLUMNS
        )
    }
    static SQLITE: LazyLock<String> = LazyLock::new(|| sql(Backend::Sqlite));
    static POSTGRES: LazyLock<String> = LazyLock::new(|| sql(Backend::Postgres));
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

record! {
    #[derive(Debug, Clone)]
    pub struct EndpointRecord {
        pub id: Uuid,
        pub url: String,
        pub description: Option<String>,
        pub enabled_events: String,
        pub status: String,
        pub failing_since: Option<i64>,
        pub previous_expires_at: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
    }
}

const ENDPOINT_COLUMNS: &str = EndpointRecord::COLUMNS;

record! {
    #[derive(Debug, Clone)]
    pub struct DeliveryRecord {
        pub id: Uuid,
        pub endpoint_id: Uuid,
        pub event_id: Uuid,
        pub event_type: String,
        pub status: String,
        pub attempts: i64,
        pub next_attempt_at: i64,
        pub last_status_code: Option<i64>,
        pub last_latency_ms: Option<i64>,
        pub last_error: Option<String>,
        pub created_at: i64,
        pub delivered_at: Option<i64>,
    }
}

const DELIVERY_COLUMNS: &str = DeliveryRecord::COLUMNS;

record! {
    /// An event as a dispatch reads it.
    struct FeedRow {
        id: Uuid,
        kind: String as "type",
        entity_id: Uuid,
        api_key_id: Option<Uuid>,
        user_id: Option<Uuid>,
        correlation_id: String,
        created_at: i64,
        feed_pos: i64,
    }
}
const FEED_COLUMNS: &str = FeedRow::COLUMNS;

/// A leased delivery, with what sending it needs.
#[derive(Debug)]
pub struct DueDelivery {
    pub merchant_id: Uuid,
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub give_up_at: i64,
    pub url: String,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_expires_at: Option<i64>,
}

record! {
    /// Where an endpoint's deliveries go and what signs them.
    struct EndpointTarget {
        url: String,
        secret: Vec<u8>,
        previous_secret: Option<Vec<u8>>,
        previous_expires_at: Option<i64>,
    }
}

record! {
    /// A delivery as its lease returns it.
    struct LeasedRow {
        id: Uuid,
        event_id: Uuid,
        payload: String,
        attempts: i64,
        give_up_at: i64,
    }
}

/// How an attempt ended.
pub struct Attempt {
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// Why it failed, in words without the reply's content; `None` on success.
    pub error: Option<String>,
}

/// The delivery settings that decide what an attempt's outcome leads to.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// When the next attempt is due after `attempts` failed ones (with jitter).
    pub first_retry_ms: i64,
    /// How long after its event a delivery is retried (three days by default).
    pub retry_for_ms: i64,
    /// An endpoint failing continuously this long is disabled.
    pub disable_after_ms: i64,
}

impl RetryPolicy {
    /// Exponential: `first_retry_ms × 2^(attempts-1)`, at most six hours, then
    /// ±20 % jitter so deliveries that failed together do not retry together.
    pub fn backoff_ms(&self, attempts: i64) -> i64 {
        use rand::Rng;
        let base = self.first_retry_ms.max(1).saturating_mul(1 << (attempts - 1).clamp(0, 30)).min(6 * 3600 * 1000);
        let jitter = base / 5;
        base + rand::thread_rng().gen_range(-jitter..=jitter)
    }
}

/// The body a delivery carries: the event as `/events` shows it.
fn payload(merchant: Uuid, e: &FeedRow) -> String {
    serde_json::json!({
        "id": e.id,
        "merchantId": merchant,
        "type": e.kind,
        "entityId": e.entity_id,
        "apiKeyId": e.api_key_id,
        "userId": e.user_id,
        "correlationId": e.correlation_id,
        "createdOn": crate::routes::timestamp(e.created_at),
    })
    .to_string()
}

impl WriteTx {
    /// The last event this transaction wrote about `entity`.
    async fn last_event_of(&mut self, entity: Uuid) -> Result<FeedRow, sqlx::Error> {
        let merchant = self.merchant();
        let sql = format!(
            "SELECT {FEED_COLUMNS} FROM events WHERE merchant_id = $1 AND entity_id = $2 ORDER BY feed_pos DESC, id DESC LIMIT 1"
        );
        self.fetch_one(&sql, &[&merchant, &entity]).await
    }

    /// The feed position of the last event this transaction wrote about `entity`:
    /// where an endpoint created or re-enabled by it starts following the feed.
    async fn position_of_last_event(&mut self, entity: Uuid) -> Result<(i64, Uuid), sqlx::Error> {
        let e = self.last_event_of(entity).await?;
        Ok((e.feed_pos, e.id))
    }

    async fn seal_secret(
        &mut self,
        vault: &Vault,
        id: Uuid,
        field: &str,
        secret: &str,
    ) -> Result<(Vec<u8>, i64), StoreError> {
        let version = self.active_key_version(vault).await?;
        let sealed = vault.seal(version, &secret_aad(self.merchant(), id, field), secret.as_bytes())?;
        Ok((sealed, i64::from(version)))
    }

    pub async fn create_webhook_endpoint(
        &mut self,
        vault: &Vault,
        id: Uuid,
        url: &DestinationUrl,
        events: &EventSelection,
        description: Option<&str>,
        secret: &SigningSecret,
    ) -> Result<(), StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        self.within_limit(
            "SELECT COUNT(*) FROM webhook_endpoints WHERE merchant_id = $1",
            &[&merchant],
            MAX_ENDPOINTS,
            "too_many_webhook_endpoints",
            "A merchant has at most 16 webhook endpoints; delete one first.",
        )
        .await?;
        self.event(EventType::WebhookEndpointCreated, id).await?;
        let (pos, cursor) = self.position_of_last_event(id).await?;
        let (sealed, version) = self.seal_secret(vault, id, SECRET_FIELD, secret.expose()).await?;
        self.exec(
            "INSERT INTO webhook_endpoints (merchant_id, id, url, description, enabled_events, status, secret, key_version, \
             cursor_pos, cursor_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'enabled', $6, $7, $8, $9, $10, $10)",
            &[&merchant, &id, &url.as_str(), &description, &events.to_column(), &sealed, &version, &pos, &cursor, &now],
        )
        .await?;
        Ok(())
    }

    async fn lock_endpoint(&mut self, id: Uuid) -> Result<EndpointRecord, StoreError> {
        const SQL: super::dialect::Locking = locking!(
            "SELECT id, url, description, enabled_events, status, failing_since, previous_expires_at, created_at, \
             updated_at FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2"
        );
        let merchant = self.merchant();
        let sql = self.backend().locking(&SQL);
        self.fetch_optional(sql, &[&merchant, &id]).await?.ok_or(StoreError::NotFound("Webhook endpoint"))
    }

    /// Applies the fields `input` sends. Re-enabled, an endpoint follows the feed
    /// from this change on (what happened while it was disabled is not sent).
    pub async fn update_webhook_endpoint(&mut self, id: Uuid, input: &EndpointInput) -> Result<(), StoreError> {
        let current = self.lock_endpoint(id).await?;
        let (merchant, now) = (self.merchant(), self.now);
        let url = input.url.as_ref().map_or(current.url.as_str(), |u| u.as_str());
        let events = input.enabled_events.as_ref().map_or(current.enabled_events.clone(), EventSelection::to_column);
        let description = match &input.description {
            Some(d) => d.as_deref(),
            None => current.description.as_deref(),
        };
        let was = EndpointStatus::parse(&current.status).unwrap_or(EndpointStatus::Disabled);
        let status = input.status.unwrap_or(was);
        self.exec(
            "UPDATE webhook_endpoints SET url = $3, enabled_events = $4, description = $5, status = $6, updated_at = $7 \
             WHERE merchant_id = $1 AND id = $2",
            &[&merchant, &id, &url, &events, &description, &status.as_str(), &now],
        )
        .await?;
        self.event(EventType::WebhookEndpointUpdated, id).await?;
        match (was, status) {
            (EndpointStatus::Disabled, EndpointStatus::Enabled) => {
                let (pos, cursor) = self.position_of_last_event(id).await?;
                self.exec(
                    "UPDATE webhook_endpoints SET cursor_pos = $3, cursor_id = $4, failing_since = NULL \
                     WHERE merchant_id = $1 AND id = $2",
                    &[&merchant, &id, &pos, &cursor],
                )
                .await?;
            }
            (EndpointStatus::Enabled, EndpointStatus::Disabled) => {
                self.stop_deliveries(id, "endpoint disabled").await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Marks an endpoint's queued deliveries failed (they can be retried one by
    /// one once it is enabled again).
    async fn stop_deliveries(&mut self, id: Uuid, why: &str) -> Result<(), sqlx::Error> {
        let merchant = self.merchant();
        self.exec(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = $3 \
             WHERE merchant_id = $1 AND endpoint_id = $2 AND status = 'pending'",
            &[&merchant, &id, &why],
        )
        .await?;
        Ok(())
    }

    /// Deletes an endpoint with its queued deliveries (its delivery log goes
    /// with the retention purge).
    pub async fn delete_webhook_endpoint(&mut self, id: Uuid) -> Result<(), StoreError> {
        let merchant = self.merchant();
        let n =
            self.exec("DELETE FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2", &[&merchant, &id]).await?;
        if n == 0 {
            return Err(StoreError::NotFound("Webhook endpoint"));
        }
        self.exec(
            "DELETE FROM webhook_deliveries WHERE merchant_id = $1 AND endpoint_id = $2 AND status = 'pending'",
            &[&merchant, &id],
        )
        .await?;
        self.secrets_removed();
        self.event(EventType::WebhookEndpointDeleted, id).await?;
        Ok(())
    }

    /// Seals `secret` as the endpoint's signing secret; the one it replaces keeps
    /// signing beside it for [`PREVIOUS_SECRET_MS`]. Returns when that ends.
    pub async fn rotate_webhook_secret(
        &mut self,
        vault: &Vault,
        id: Uuid,
        secret: &SigningSecret,
    ) -> Result<i64, StoreError> {
        self.lock_endpoint(id).await?;
        let (merchant, now) = (self.merchant(), self.now);
        let (current,): (Vec<u8>,) = self
            .fetch_one("SELECT secret FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2", &[&merchant, &id])
            .await?;
        let old = self.open_sealed(vault, &current, &secret_aad(merchant, id, SECRET_FIELD)).await?;
        let old = String::from_utf8(old.to_vec()).map_err(|_| StoreError::Crypto("secret is not UTF-8".into()))?;
        let (previous, _) = self.seal_secret(vault, id, PREVIOUS_SECRET_FIELD, &old).await?;
        let (sealed, version) = self.seal_secret(vault, id, SECRET_FIELD, secret.expose()).await?;
        let until = now + PREVIOUS_SECRET_MS;
        self.exec(
            "UPDATE webhook_endpoints SET secret = $3, previous_secret = $4, previous_expires_at = $5, key_version = $6, \
             updated_at = $7 WHERE merchant_id = $1 AND id = $2",
            &[&merchant, &id, &sealed, &previous, &until, &version, &now],
        )
        .await?;
        self.event(EventType::WebhookEndpointSecretRotated, id).await?;
        Ok(until)
    }

    /// Records a test event about the endpoint and queues its delivery (to that
    /// endpoint only); returns the delivery's id.
    pub async fn test_webhook_endpoint(&mut self, id: Uuid, retry: &RetryPolicy) -> Result<Uuid, StoreError> {
        let ep = self.lock_endpoint(id).await?;
        if ep.status != EndpointStatus::Enabled.as_str() {
            return Err(StoreError::Conflict {
                code: "webhook_endpoint_disabled",
                message: "The endpoint is disabled; enable it to send it a test event.",
            });
        }
        self.event(EventType::WebhookEndpointTested, id).await?;
        let event = self.last_event_of(id).await?;
        let ids = self.queue_deliveries(id, &[&event], retry).await?;
        Ok(ids[0])
    }

    /// Queues `events` for endpoint `endpoint`, each unless it already is: on
    /// PostgreSQL a hundred rows per statement (one round trip each).
    async fn queue_deliveries(
        &mut self,
        endpoint: Uuid,
        events: &[&FeedRow],
        retry: &RetryPolicy,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        const INSERT: &str = "INSERT INTO webhook_deliveries (merchant_id, id, endpoint_id, event_id, event_type, payload, \
            status, next_attempt_at, give_up_at, created_at) VALUES ";
        let (merchant, now) = (self.merchant(), self.now);
        let give_up = now + retry.retry_for_ms;
        let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
        let payloads: Vec<String> = events.iter().map(|e| payload(merchant, e)).collect();
        let per = self.backend().rows_per_insert(100);
        for start in (0..events.len()).step_by(per) {
            let end = (start + per).min(events.len());
            let mut sql = String::from(INSERT);
            let mut args: Vec<&dyn super::query::Param<'_>> = vec![&merchant, &endpoint, &now, &give_up];
            for i in start..end {
                let n = args.len();
                if i > start {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "($1, ${}, $2, ${}, ${}, ${}, 'pending', $3, $4, $3)",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4
                ));
                args.extend([&ids[i] as &dyn super::query::Param<'_>, &events[i].id, &events[i].kind, &payloads[i]]);
            }
            sql.push_str(" ON CONFLICT DO NOTHING");
            self.exec(&sql, &args).await?;
        }
        Ok(ids)
    }

    /// Queues one more attempt at a delivery, now (whatever its state): it gets
    /// at least one attempt, and its usual retries if it is still within them.
    pub async fn retry_webhook_delivery(&mut self, endpoint: Uuid, id: Uuid) -> Result<(), StoreError> {
        let ep = self.lock_endpoint(endpoint).await?;
        if ep.status != EndpointStatus::Enabled.as_str() {
            return Err(StoreError::Conflict {
                code: "webhook_endpoint_disabled",
                message: "The endpoint is disabled; enable it to retry its deliveries.",
            });
        }
        let (merchant, now) = (self.merchant(), self.now);
        let n = self
            .exec(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $4, \
                 give_up_at = CASE WHEN give_up_at < $4 THEN $4 ELSE give_up_at END \
                 WHERE merchant_id = $1 AND endpoint_id = $2 AND id = $3",
                &[&merchant, &endpoint, &id, &now],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("Delivery"));
        }
        Ok(())
    }
}

impl Scoped<'_> {
    /// The merchant's endpoints (at most [`MAX_ENDPOINTS`]), oldest first.
    pub async fn webhook_endpoints(&self) -> Result<Vec<EndpointRecord>, sqlx::Error> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = $1 ORDER BY id");
        on_conn!(self.conn(), p => sqlx::query_as::<_, EndpointRecord>(&sql).bind(self.merchant()).fetch_all(p).await)
    }

    pub async fn webhook_endpoint(&self, id: Uuid) -> Result<Option<EndpointRecord>, sqlx::Error> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2");
        on_conn!(self.conn(), p => sqlx::query_as::<_, EndpointRecord>(&sql).bind(self.merchant()).bind(id).fetch_optional(p).await)
    }

    /// An endpoint's deliveries, newest first, before the cursor `before`.
    pub async fn webhook_deliveries(
        &self,
        endpoint: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, sqlx::Error> {
        let cursor = if before.is_some() { " AND id < $3" } else { "" };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE merchant_id = $1 AND endpoint_id = $2{cursor} \
             ORDER BY id DESC LIMIT {limit}"
        );
        on_conn!(self.conn(), p => {
            let mut q = sqlx::query_as::<_, DeliveryRecord>(&sql).bind(self.merchant()).bind(endpoint);
            if let Some(b) = before { q = q.bind(b); }
            q.fetch_all(p).await
        })
    }

    pub async fn webhook_delivery(&self, endpoint: Uuid, id: Uuid) -> Result<Option<DeliveryRecord>, sqlx::Error> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE merchant_id = $1 AND endpoint_id = $2 AND id = $3"
        );
        on_conn!(self.conn(), p => sqlx::query_as::<_, DeliveryRecord>(&sql).bind(self.merchant()).bind(endpoint).bind(id).fetch_optional(p).await)
    }
}

/// The delivery side, across merchants (the background task serves them all).
impl Db {
    /// Enabled endpoints with events after their cursor, up to the feed's horizon.
    pub async fn webhook_endpoints_behind(&self, limit: i64) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
        let sql = format!(
            "SELECT e.merchant_id, e.id FROM webhook_endpoints e WHERE e.status = 'enabled' AND EXISTS \
             (SELECT 1 FROM events WHERE events.merchant_id = e.merchant_id \
              AND (events.feed_pos, events.id) > (e.cursor_pos, e.cursor_id){}) LIMIT $1",
            self.backend().feed_horizon()
        );
        on_conn!(self.reader(), p => sqlx::query_as(&sql).bind(limit).fetch_all(p).await)
    }

    /// Queues the endpoint's next events (up to [`DISPATCH_BATCH`]) and moves its
    /// cursor past them; returns how many events it passed. Two nodes dispatching
    /// the same endpoint at once: the cursor moves only from where this one read
    /// it, so the later one changes nothing.
    pub async fn dispatch_webhook_events(
        &self,
        merchant: Uuid,
        endpoint: Uuid,
        retry: RetryPolicy,
    ) -> Result<usize, StoreError> {
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            let row: Option<(String, String, i64, Uuid)> = tx
                .fetch_optional(
                    "SELECT enabled_events, status, cursor_pos, cursor_id FROM webhook_endpoints \
                     WHERE merchant_id = $1 AND id = $2",
                    &[&merchant, &endpoint],
                )
                .await?;
            let Some((selection, status, pos, cursor)) = row else { return Ok(0) };
            if status != EndpointStatus::Enabled.as_str() {
                return Ok(0);
            }
            let selection = EventSelection::from_column(&selection);
            let sql = format!(
                "SELECT {FEED_COLUMNS} FROM events \
                 WHERE merchant_id = $1 AND (feed_pos, id) > ($2, $3){} ORDER BY feed_pos, id LIMIT {DISPATCH_BATCH}",
                tx.backend().feed_horizon()
            );
            let events: Vec<FeedRow> = tx.fetch_all(&sql, &[&merchant, &pos, &cursor]).await?;
            let Some(last) = events.last() else { return Ok(0) };
            let (last_pos, last_id) = (last.feed_pos, last.id);
            let moved = tx
                .exec(
                    "UPDATE webhook_endpoints SET cursor_pos = $3, cursor_id = $4 \
                     WHERE merchant_id = $1 AND id = $2 AND cursor_pos = $5 AND cursor_id = $6",
                    &[&merchant, &endpoint, &last_pos, &last_id, &pos, &cursor],
                )
                .await?;
            if moved == 0 {
                return Ok(0);
            }
            let tested = EventType::WebhookEndpointTested.as_str();
            // A test event goes to the endpoint tested, and only there.
            let wanted: Vec<&FeedRow> = events
                .iter()
                .filter(|e| if e.kind == tested { e.entity_id == endpoint } else { selection.includes(&e.kind) })
                .collect();
            tx.queue_deliveries(endpoint, &wanted, &retry).await?;
            tx.commit().await?;
            Ok(events.len())
        })
        .await
    }

    /// Enabled endpoints with a delivery due by `now` (one index probe each).
    pub async fn webhook_endpoints_due(&self, now: i64) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
        let sql = "SELECT e.merchant_id, e.id FROM webhook_endpoints e WHERE e.status = 'enabled' AND EXISTS \
                   (SELECT 1 FROM webhook_deliveries d WHERE d.merchant_id = e.merchant_id AND d.endpoint_id = e.id \
                    AND d.status = 'pending' AND d.next_attempt_at <= $1)";
        on_conn!(self.reader(), p => sqlx::query_as(sql).bind(now).fetch_all(p).await)
    }

    /// Leases up to `limit` of an enabled endpoint's deliveries due by `now`
    /// (the longest waiting first) to this node until `until`, in one statement,
    /// and returns them with what sending them needs. A row another node is
    /// leasing is left to it ([`Backend::claimed`]).
    pub async fn lease_webhook_deliveries(
        &self,
        merchant: Uuid,
        endpoint: Uuid,
        now: i64,
        limit: i64,
        until: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            let target: Option<EndpointTarget> = tx
                .fetch_optional(
                    "SELECT url, secret, previous_secret, previous_expires_at FROM webhook_endpoints \
                     WHERE merchant_id = $1 AND id = $2 AND status = 'enabled'",
                    &[&merchant, &endpoint],
                )
                .await?;
            let Some(target) = target else { return Ok(Vec::new()) };
            let leased: Vec<LeasedRow> =
                tx.fetch_all(lease_sql(tx.backend()), &[&merchant, &endpoint, &until, &now, &limit]).await?;
            tx.commit().await?;
            Ok(leased
                .into_iter()
                .map(|r| DueDelivery {
                    merchant_id: merchant,
                    id: r.id,
                    endpoint_id: endpoint,
                    event_id: r.event_id,
                    payload: r.payload,
                    attempts: r.attempts,
                    give_up_at: r.give_up_at,
                    url: target.url.clone(),
                    secret: target.secret.clone(),
                    previous_secret: target.previous_secret.clone(),
                    previous_expires_at: target.previous_expires_at,
                })
                .collect())
        })
        .await
    }

    /// Records how the merchant's attempts ended, in one transaction, and what
    /// they say of their endpoints: a success clears an endpoint's failing
    /// streak; failures start it, and an endpoint failing for
    /// [`RetryPolicy::disable_after_ms`] is disabled (an event says so).
    pub async fn settle_webhook_deliveries(
        &self,
        merchant: Uuid,
        attempts: Vec<(DueDelivery, Attempt)>,
        retry: RetryPolicy,
    ) -> Result<(), StoreError> {
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            let now = tx.now;
            // Per endpoint: whether any attempt got through.
            let mut endpoints: Vec<(Uuid, bool)> = Vec::new();
            // Each delivery's outcome is held to go with the others (one statement per
            // 64 on PostgreSQL); a delivery finished twice in one batch (its lease ran
            // out mid-attempt) is updated again after them, since held statements run
            // on one snapshot and must not write one row twice.
            let mut settled = std::collections::HashSet::with_capacity(attempts.len());
            for (d, attempt) in &attempts {
                let tries = d.attempts + 1;
                let (status, next, delivered) = match &attempt.error {
                    None => ("delivered", now, Some(now)),
                    Some(_) => {
                        let next = now + retry.backoff_ms(tries);
                        if next > d.give_up_at { ("failed", now, None) } else { ("pending", next, None) }
                    }
                };
                let sql = "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, next_attempt_at = $4, \
                     last_status_code = $5, last_latency_ms = $6, last_error = $7, delivered_at = COALESCE($8, delivered_at) \
                     WHERE merchant_id = $1 AND id = $2";
                let args: [&dyn crate::store::query::Param<'_>; 8] = [
                    &merchant,
                    &d.id,
                    &status,
                    &next,
                    &attempt.status_code,
                    &attempt.latency_ms,
                    &attempt.error,
                    &delivered,
                ];
                if settled.insert(d.id) {
                    tx.later(sql, &args, StoreError::Db).await?;
                } else {
                    tx.exec(sql, &args).await?;
                }
                match endpoints.iter_mut().find(|(id, _)| *id == d.endpoint_id) {
                    Some((_, ok)) => *ok |= attempt.error.is_none(),
                    None => endpoints.push((d.endpoint_id, attempt.error.is_none())),
                }
            }
            for (endpoint, ok) in endpoints {
                if ok {
                    tx.exec(
                        "UPDATE webhook_endpoints SET failing_since = NULL \
                         WHERE merchant_id = $1 AND id = $2 AND failing_since IS NOT NULL",
                        &[&merchant, &endpoint],
                    )
                    .await?;
                    continue;
                }
                tx.exec(
                    "UPDATE webhook_endpoints SET failing_since = $3 \
                     WHERE merchant_id = $1 AND id = $2 AND failing_since IS NULL",
                    &[&merchant, &endpoint, &now],
                )
                .await?;
                let cutoff = now - retry.disable_after_ms;
                let disabled = tx
                    .exec(
                        "UPDATE webhook_endpoints SET status = 'disabled', updated_at = $3 \
                         WHERE merchant_id = $1 AND id = $2 AND status = 'enabled' AND failing_since <= $4",
                        &[&merchant, &endpoint, &now, &cutoff],
                    )
                    .await?;
                if disabled == 1 {
                    tx.stop_deliveries(endpoint, "endpoint disabled after failing continuously").await?;
                    tx.event(EventType::WebhookEndpointDisabled, endpoint).await?;
                }
            }
            tx.commit().await
        })
        .await
    }

    /// Removes finished deliveries older than `before` (at most `limit`): the
    /// delivery log's retention. Returns how many.
    pub async fn purge_webhook_deliveries(&self, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
        let sql = "DELETE FROM webhook_deliveries WHERE (merchant_id, id) IN (SELECT merchant_id, id FROM webhook_deliveries \
                   WHERE status <> 'pending' AND created_at < $1 LIMIT $2)";
        on_conn!(self.writer(), p => sqlx::query(sql).bind(before).bind(limit).execute(p).await.map(|r| r.rows_affected()))
    }
}

/// PostgreSQL plans by statistics, and a queue fills a new table before any are
/// gathered: the lease must pick its rows once and update them by key whatever
/// the planner believes, as a statement planned for its values and as the
/// generic plan a prepared statement is cached with.
#[cfg(test)]
mod pg_plan_tests {
    use super::*;

    #[tokio::test]
    async fn a_lease_reads_its_rows_once_before_any_statistics() {
        let Some((db, _dropped)) = crate::store::scratch::postgres().await else { return };
        let merchant = db.create_merchant("Plan").await.unwrap().id();
        let super::super::Conn::Postgres(pool) = db.writer() else { unreachable!() };
        let endpoint = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO webhook_endpoints (merchant_id, id, url, enabled_events, status, secret, key_version, \
             cursor_pos, cursor_id, created_at, updated_at) VALUES ($1, $2, 'https://example.com/', '*', 'enabled', \
             '\\x00', 1, 0, $2, 0, 0)",
        )
        .bind(merchant)
        .bind(endpoint)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO webhook_deliveries (merchant_id, id, endpoint_id, event_id, event_type, payload, status, \
             next_attempt_at, give_up_at, created_at) \
             SELECT $1, gen_random_uuid(), $2, gen_random_uuid(), 'customer.created', '{}', 'pending', i, i + 1000000, i \
             FROM generate_series(1, 20000) AS i",
        )
        .bind(merchant)
        .bind(endpoint)
        .execute(pool)
        .await
        .unwrap();
        let mut c = pool.acquire().await.unwrap();
        let sql = format!("PREPARE lease (uuid, uuid, bigint, bigint, bigint) AS {}", lease_sql(Backend::Postgres));
        sqlx::query(&sql).execute(&mut *c).await.unwrap();
        for mode in ["force_custom_plan", "force_generic_plan"] {
            sqlx::query(&format!("SET plan_cache_mode = {mode}")).execute(&mut *c).await.unwrap();
            let explain = format!("EXPLAIN EXECUTE lease ('{merchant}', '{endpoint}', 99999999, 30000, 64)");
            let rows: Vec<(String,)> = sqlx::query_as(&explain).fetch_all(&mut *c).await.unwrap();
            let plan = rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join(" | ");
            let by_key = plan.split(" | ").filter(|l| !l.contains("InitPlan")).any(|l| {
                l.contains("Index Scan on webhook_deliveries_pkey")
                    || l.contains("Index Scan using webhook_deliveries_pkey")
            });
            assert!(by_key && !plan.contains("Semi Join") && !plan.contains("SubPlan"), "{mode}: {plan}");
        }
        drop(c);
        let leased = db.lease_webhook_deliveries(merchant, endpoint, 30000, 64, 99999999).await.unwrap();
        assert_eq!(leased.len(), 64);
        let again = db.lease_webhook_deliveries(merchant, endpoint, 30000, 64, 99999999).await.unwrap();
        assert!(again.iter().all(|d| leased.iter().all(|l| l.id != d.id)), "a leased delivery is not leased again");

        // The batch's outcomes, more than one statement holds, one delivery among
        // them finished twice (delivered, then failed): every outcome counts.
        let twice = DueDelivery {
            payload: leased[0].payload.clone(),
            url: leased[0].url.clone(),
            secret: leased[0].secret.clone(),
            previous_secret: None,
            ..leased[0]
        };
        let delivered = || Attempt { status_code: Some(200), latency_ms: 3, error: None };
        let mut outcomes: Vec<(DueDelivery, Attempt)> =
            leased.into_iter().chain(again).map(|d| (d, delivered())).collect();
        outcomes.insert(1, (twice, Attempt { status_code: Some(500), latency_ms: 4, error: Some("500".into()) }));
        let first = outcomes[0].0.id;
        let retry = RetryPolicy { first_retry_ms: 1000, retry_for_ms: 1_000_000_000, disable_after_ms: 1_000_000_000 };
        db.settle_webhook_deliveries(merchant, outcomes, retry).await.unwrap();
        let counts: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT status, attempts, count(*) FROM webhook_deliveries WHERE attempts > 0 GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        // (Past its give-up time, the failed attempt is the last.)
        assert_eq!(counts, [("delivered".to_owned(), 1, 127), ("failed".to_owned(), 2, 1)]);
        let (id,): (Uuid,) =
            sqlx::query_as("SELECT id FROM webhook_deliveries WHERE attempts = 2").fetch_one(pool).await.unwrap();
        assert_eq!(id, first);
    }
}
