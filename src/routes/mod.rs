//! One file per resource: request parsing into domain types, one store call,
//! a view out. Every route is registered through `utoipa_axum::routes!`, so the
//! OpenAPI document lists exactly what the router serves.

pub mod bulk;
pub mod credit;
pub mod custom_parameters;
pub mod customers;
pub mod docs;
pub mod events;
pub mod health;
pub mod identity;
pub mod payment_methods;
pub mod providers;
pub mod transactions;
pub mod webhooks;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::error::ErrorBody;

/// RFC 3339 UTC with milliseconds, from epoch milliseconds.
pub fn timestamp(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A JSON reply serialized once, so the bytes stored for idempotent replay are the bytes sent.
pub struct JsonReply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl JsonReply {
    pub fn new<T: Serialize>(status: StatusCode, value: &T) -> JsonReply {
        JsonReply { status, body: serde_json::to_vec(value).expect("views always serialize") }
    }
}

impl IntoResponse for JsonReply {
    fn into_response(self) -> Response {
        (self.status, [(CONTENT_TYPE, HeaderValue::from_static("application/json"))], self.body).into_response()
    }
}

/// Commits a create and answers `{"id": ...}`, storing that exact reply for
/// `Idempotency-Key` replay in the same transaction.
pub async fn commit_created(tx: crate::store::WriteTx, id: uuid::Uuid) -> Result<JsonReply, crate::store::StoreError> {
    commit_reply(tx, &Created { id }).await
}

/// Commits and answers 200 with `value`, storing that exact reply for replay in
/// the same transaction.
pub async fn commit_reply<T: Serialize>(
    tx: crate::store::WriteTx,
    value: &T,
) -> Result<JsonReply, crate::store::StoreError> {
    let reply = JsonReply::new(StatusCode::OK, value);
    tx.commit_replying(200, &reply.body).await?;
    Ok(reply)
}

/// `{"id": ...}`, the reply to every create.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: uuid::Uuid,
}

/// `{"id": ..., "deleted": true}`, the reply to every delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: uuid::Uuid,
    pub deleted: bool,
}

/// Errors any authenticated read can answer.
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum ReadErrors {
    /// Malformed parameters; `errors` names each one.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing, unknown or revoked API key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The API key lacks the scope this route needs.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such object for this merchant.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Too many requests from this key or address (`rate_limited`,
    /// `too_many_failed_authentications`); retry after `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// Unexpected failure; only the correlation id is shown.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// Shutting down, the database unreachable, or past the request's deadline or
    /// the query's time budget (`request_timeout`, `query_timeout`); retry after
    /// `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Errors any authenticated write can answer.
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum WriteErrors {
    /// Malformed JSON, wrong types, unknown fields or failed validation; `errors` lists every problem by JSON path.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing, unknown or revoked API key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The API key lacks the scope this route needs.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such object for this merchant.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A duplicate, or an `Idempotency-Key` reused with another body (`idempotency_key_reused`) or still in flight (`idempotency_key_in_progress`).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// `If-Match` does not match the current version.
    #[response(status = 412)]
    PreconditionFailed(ErrorBody),
    /// The body is larger than 1 MiB.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// The body stopped arriving before it was complete (`request_body_timeout`).
    #[response(status = 408)]
    RequestTimeout(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// Too many requests from this key or address (`rate_limited`,
    /// `too_many_failed_authentications`); retry after `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// Unexpected failure; only the correlation id is shown.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// Shutting down, the database unreachable, or past the request's deadline or
    /// the query's time budget (`request_timeout`, `query_timeout`); retry after
    /// `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}
