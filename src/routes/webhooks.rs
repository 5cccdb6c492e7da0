//! `/pay-api/v1/webhook-endpoints`: where the merchant's events are pushed, and
//! the log of each endpoint's deliveries.

use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Created, Deleted, JsonReply, ReadErrors, WriteErrors, commit_created, timestamp};
use crate::AppState;
use crate::auth::{Authed, CustomersRead, WebhooksWrite};
use crate::domain::Problems;
use crate::domain::webhook::{DestinationUrl, EndpointInput, EndpointStatus, EventSelection, SigningSecret};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, QueryReader, path_uuid};
use crate::http::idempotency::SensitiveReply;
use crate::store::StoreError;
use crate::store::webhooks::{DeliveryRecord, EndpointRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(test_endpoint))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(retry_delivery))
}

/// An endpoint to send events to.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"url": "https://hooks.example.com/clientele", "enabledEvents": ["customer.created", "customer.deleted"], "description": "CRM sync"}))]
pub struct EndpointCreateRequest {
    /// `https://` (or `http://`) URL with a host, no credentials and no fragment.
    /// Its addresses must be public: loopback, private, link-local and metadata
    /// addresses are refused, here and at every connection.
    #[schema(max_length = 2048, format = "uri", example = "https://hooks.example.com/clientele")]
    url: String,
    /// Event types to send, each once, or `["*"]` for every type.
    #[schema(min_items = 1, max_items = 64)]
    enabled_events: Vec<String>,
    #[schema(max_length = 500)]
    description: Option<String>,
}

/// The fields to change; absent ones keep their value.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"enabledEvents": ["*"], "status": "enabled"}))]
pub struct EndpointUpdateRequest {
    #[schema(max_length = 2048, format = "uri")]
    url: Option<String>,
    #[schema(min_items = 1, max_items = 64)]
    enabled_events: Option<Vec<String>>,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// `disabled` stops deliveries (queued ones are marked failed); `enabled`
    /// sends the events from then on.
    status: Option<EndpointStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    pub id: Uuid,
    pub url: String,
    /// Event types sent, or `["*"]`.
    pub enabled_events: Vec<String>,
    pub description: Option<String>,
    pub status: EndpointStatus,
    /// Since when every attempt has failed; five days of that disable the endpoint.
    pub failing_since: Option<String>,
    /// Until when the secret replaced by the last rotation still signs.
    pub previous_secret_expires_on: Option<String>,
    pub created_on: String,
    pub updated_on: String,
}

/// A new endpoint, with its signing secret: shown here once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCreated {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_` + base64 of 32 random bytes; verify `webhook-signature` with it
    /// (Standard Webhooks). Shown once; an `Idempotency-Key` replay answers `null`.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub items: Vec<EndpointView>,
}

/// The endpoint's new signing secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    pub id: Uuid,
    /// Shown once; an `Idempotency-Key` replay answers `null`.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    pub secret: Option<String>,
    /// Until then deliveries carry a signature by the previous secret too.
    pub previous_secret_expires_on: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// Also the `webhook-id` header of every attempt.
    pub event_id: Uuid,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// The last attempt's HTTP status, if it got a reply.
    pub last_status_code: Option<i64>,
    pub last_latency_ms: Option<i64>,
    /// Why the last attempt failed (never the reply's content).
    pub last_error: Option<String>,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_on: Option<String>,
    pub created_on: String,
    pub delivered_on: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    /// Pass as `before` for older deliveries; null at the oldest.
    pub next_cursor: Option<Uuid>,
}

impl From<EndpointRecord> for EndpointView {
    fn from(r: EndpointRecord) -> Self {
        EndpointView {
            id: r.id,
            url: r.url,
            enabled_events: EventSelection::from_column(&r.enabled_events)
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            description: r.description,
            status: EndpointStatus::parse(&r.status).unwrap_or(EndpointStatus::Disabled),
            failing_since: r.failing_since.map(timestamp),
            previous_secret_expires_on: r.previous_expires_at.filter(|t| *t > crate::store::now_ms()).map(timestamp),
            created_on: timestamp(r.created_at),
            updated_on: timestamp(r.updated_at),
        }
    }
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(r: DeliveryRecord) -> Self {
        let status = match r.status.as_str() {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            _ => DeliveryStatus::Failed,
        };
        DeliveryView {
            id: r.id,
            endpoint_id: r.endpoint_id,
            event_id: r.event_id,
            event_type: r.event_type,
            status,
            attempts: r.attempts,
            last_status_code: r.last_status_code,
            last_latency_ms: r.last_latency_ms,
            last_error: r.last_error,
            next_attempt_on: matches!(status, DeliveryStatus::Pending).then(|| timestamp(r.next_attempt_at)),
            created_on: timestamp(r.created_at),
            delivered_on: r.delivered_at.map(timestamp),
        }
    }
}

/// The destination's addresses, checked now (a 400 on `url` when refused).
pub(crate) async fn check_url(state: &AppState, url: &DestinationUrl) -> ApiResult<()> {
    let allow = state.webhooks().allow_private_networks;
    if let Err(refused) = crate::webhooks::check_destination(url.url(), allow).await {
        let mut p = Problems::new();
        p.push("url", format!("'url': {refused}"));
        p.check(())?;
    }
    Ok(())
}

/// A reply carrying a secret: sent once, stored for `Idempotency-Key` replay
/// without it (`replay`), never compressed.
async fn commit_secret_reply<T: Serialize>(
    tx: crate::store::WriteTx,
    reply: &T,
    replay: &T,
) -> Result<Response, StoreError> {
    let stored = JsonReply::new(StatusCode::OK, replay);
    tx.commit_replying(200, &stored.body).await?;
    let mut res = JsonReply::new(StatusCode::OK, reply).into_response();
    res.extensions_mut().insert(SensitiveReply);
    Ok(res)
}

/// Register an endpoint
///
/// Deliveries start with the events that follow this one in the feed. The reply
/// carries the signing secret, once. Needs `webhooks:write`.
#[utoipa::path(
    post, path = "/webhook-endpoints", tag = "webhooks",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first reply for 24 h (without the secret).")),
    request_body = EndpointCreateRequest,
    responses((status = 200, description = "Registered; `secret` shown once", body = EndpointCreated), WriteErrors),
    security(("bearer" = ["webhooks:write"]))
)]
async fn create_endpoint(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let input = EndpointInput::parse_create(&body)?;
    let (Some(url), Some(events)) = (input.url, input.enabled_events) else {
        return Err(ApiError::internal(anyhow::anyhow!("a parsed create lacks its url or events")));
    };
    check_url(&state, &url).await?;
    let description = input.description.flatten();
    let (id, vault, secret) = (Uuid::now_v7(), state.vault(), SigningSecret::generate());
    Ok(state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.create_webhook_endpoint(&vault, id, &url, &events, description.as_deref(), &secret).await?;
            let now = tx.now;
            let view = || EndpointView {
                id,
                url: url.as_str().to_owned(),
                enabled_events: events.names().into_iter().map(str::to_owned).collect(),
                description: description.clone(),
                status: EndpointStatus::Enabled,
                failing_since: None,
                previous_secret_expires_on: None,
                created_on: timestamp(now),
                updated_on: timestamp(now),
            };
            let reply = EndpointCreated { endpoint: view(), secret: Some(secret.expose().to_owned()) };
            commit_secret_reply(tx, &reply, &EndpointCreated { endpoint: view(), secret: None }).await
        })
        .await?)
}

/// List endpoints
#[utoipa::path(
    get, path = "/webhook-endpoints", tag = "webhooks",
    responses((status = 200, description = "Every endpoint of the merchant (at most 16), oldest first", body = EndpointList), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn list_endpoints(State(state): State<AppState>, auth: Authed<CustomersRead>) -> ApiResult<JsonReply> {
    let items = state.db().scoped(auth.tenant()).webhook_endpoints().await?;
    Ok(JsonReply::new(StatusCode::OK, &EndpointList { items: items.into_iter().map(EndpointView::from).collect() }))
}

async fn read_endpoint(state: &AppState, tenant: crate::store::Tenant, id: Uuid) -> ApiResult<EndpointView> {
    let rec = state.db().scoped(tenant).webhook_endpoint(id).await?;
    rec.map(EndpointView::from).ok_or_else(|| ApiError::not_found("Webhook endpoint"))
}

/// Get an endpoint
#[utoipa::path(
    get, path = "/webhook-endpoints/{endpointId}", tag = "webhooks",
    params(("endpointId" = Uuid, Path)),
    responses((status = 200, description = "The endpoint (never its secret)", body = EndpointView), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn get_endpoint(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let view = read_endpoint(&state, auth.tenant(), path_uuid(&params, "endpointId")?).await?;
    Ok(JsonReply::new(StatusCode::OK, &view))
}

/// Change an endpoint
///
/// Only the fields sent change. Disabling one marks its queued deliveries
/// failed; enabling one sends the events that follow (none from while it was
/// disabled).
#[utoipa::path(
    put, path = "/webhook-endpoints/{endpointId}", tag = "webhooks",
    params(("endpointId" = Uuid, Path)),
    request_body = EndpointUpdateRequest,
    responses((status = 200, description = "The endpoint as changed", body = EndpointView), WriteErrors),
    security(("bearer" = ["webhooks:write"]))
)]
async fn update_endpoint(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    params: RawPathParams,
    JsonBody(body): JsonBody,
) -> ApiResult<JsonReply> {
    let id = path_uuid(&params, "endpointId")?;
    let input = EndpointInput::parse_update(&body)?;
    if let Some(url) = &input.url {
        check_url(&state, url).await?;
    }
    let tenant = auth.tenant();
    state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.update_webhook_endpoint(id, &input).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
        .await?;
    let view = read_endpoint(&state, tenant, id).await?;
    Ok(JsonReply::new(StatusCode::OK, &view))
}

/// Delete an endpoint
///
/// Its queued deliveries are dropped and its sealed secrets deleted.
#[utoipa::path(
    delete, path = "/webhook-endpoints/{endpointId}", tag = "webhooks",
    params(("endpointId" = Uuid, Path)),
    responses((status = 200, description = "Deleted", body = Deleted), WriteErrors),
    security(("bearer" = ["webhooks:write"]))
)]
async fn delete_endpoint(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let id = path_uuid(&params, "endpointId")?;
    state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.delete_webhook_endpoint(id).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(JsonReply::new(StatusCode::OK, &Deleted { id, deleted: true }))
}

/// Rotate an endpoint's secret
///
/// A new secret signs every delivery from now on; the previous one keeps signing
/// beside it (a second `v1,` signature) for 24 hours, so receivers can switch
/// without losing a delivery. The new secret is shown once.
#[utoipa::path(
    post, path = "/webhook-endpoints/{endpointId}/rotate-secret", tag = "webhooks",
    params(("endpointId" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first reply for 24 h (without the secret).")),
    responses((status = 200, description = "The new secret", body = RotatedSecret), WriteErrors),
    security(("bearer" = ["webhooks:write"]))
)]
async fn rotate_secret(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    params: RawPathParams,
) -> ApiResult<Response> {
    let id = path_uuid(&params, "endpointId")?;
    let (vault, secret) = (state.vault(), SigningSecret::generate());
    Ok(state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let until = tx.rotate_webhook_secret(&vault, id, &secret).await?;
            let (shown, kept) = (Some(secret.expose().to_owned()), None);
            let reply = |secret| RotatedSecret { id, secret, previous_secret_expires_on: timestamp(until) };
            commit_secret_reply(tx, &reply(shown), &reply(kept)).await
        })
        .await?)
}

/// Send a test event
///
/// Records a `webhook_endpoint.tested` event about the endpoint and queues its
/// delivery to this endpoint alone, whatever events it enabled. Answers the
/// delivery's id; follow it in the delivery log.
#[utoipa::path(
    post, path = "/webhook-endpoints/{endpointId}/test", tag = "webhooks",
    params(("endpointId" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first reply for 24 h.")),
    responses((status = 200, description = "Queued: the delivery's id", body = Created), WriteErrors),
    security(("bearer" = ["webhooks:write"]))
)]
async fn test_endpoint(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let id = path_uuid(&params, "endpointId")?;
    let retry = state.webhooks().retry;
    Ok(state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let delivery = tx.test_webhook_endpoint(id, &retry).await?;
            commit_created(tx, delivery).await
        })
        .await?)
}

/// List an endpoint's deliveries
///
/// Newest first; kept 30 days after they end.
#[utoipa::path(
    get, path = "/webhook-endpoints/{endpointId}/deliveries", tag = "webhooks",
    params(("endpointId" = Uuid, Path),
        ("before" = Option<Uuid>, Query, description = "Deliveries older than this one (the previous page's `nextCursor`)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20).")),
    responses((status = 200, description = "A page of deliveries", body = DeliveryPage), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn list_deliveries(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    params: RawPathParams,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonReply> {
    let id = path_uuid(&params, "endpointId")?;
    let mut p = Problems::new();
    let mut q = QueryReader::new(raw.as_deref(), &mut p);
    let before = q.one("before", &mut p).and_then(|s| {
        let u = Uuid::parse_str(s).ok();
        if u.is_none() {
            p.push("before", "'before' must be a UUID.");
        }
        u
    });
    let limit = q.int("limit", 1, 100, &mut p).unwrap_or(20) as u32;
    q.finish(&mut p);
    p.check(())?;
    let db = state.db().scoped(auth.tenant());
    db.webhook_endpoint(id).await?.ok_or_else(|| ApiError::not_found("Webhook endpoint"))?;
    let items = db.webhook_deliveries(id, before, limit).await?;
    let next_cursor = (items.len() == limit as usize).then(|| items.last().map(|d| d.id)).flatten();
    Ok(JsonReply::new(
        StatusCode::OK,
        &DeliveryPage { items: items.into_iter().map(DeliveryView::from).collect(), next_cursor },
    ))
}

async fn read_delivery(
    state: &AppState,
    tenant: crate::store::Tenant,
    endpoint: Uuid,
    id: Uuid,
) -> ApiResult<DeliveryView> {
    let rec = state.db().scoped(tenant).webhook_delivery(endpoint, id).await?;
    rec.map(DeliveryView::from).ok_or_else(|| ApiError::not_found("Delivery"))
}

/// Get a delivery
#[utoipa::path(
    get, path = "/webhook-endpoints/{endpointId}/deliveries/{deliveryId}", tag = "webhooks",
    params(("endpointId" = Uuid, Path), ("deliveryId" = Uuid, Path)),
    responses((status = 200, description = "The delivery", body = DeliveryView), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn get_delivery(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let (endpoint, id) = (path_uuid(&params, "endpointId")?, path_uuid(&params, "deliveryId")?);
    Ok(JsonReply::new(StatusCode::OK, &read_delivery(&state, auth.tenant(), endpoint, id).await?))
}

/// Retry a delivery
///
/// Queues an attempt now, whatever the delivery's state (a delivered one is sent
/// again, with the same `webhook-id`). A failed delivery gets that one attempt;
/// one still within its three days keeps its usual retries.
#[utoipa::path(
    post, path = "/webhook-endpoints/{endpointId}/deliveries/{deliveryId}/retry", tag = "webhooks",
    params(("endpointId" = Uuid, Path), ("deliveryId" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first reply for 24 h.")),
    responses((status = 200, description = "Queued", body = DeliveryView), WriteErrors),
    security(("bearer" = ["webhooks:write"]))
)]
async fn retry_delivery(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let (endpoint, id) = (path_uuid(&params, "endpointId")?, path_uuid(&params, "deliveryId")?);
    state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.retry_webhook_delivery(endpoint, id).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(JsonReply::new(StatusCode::OK, &read_delivery(&state, auth.tenant(), endpoint, id).await?))
}
