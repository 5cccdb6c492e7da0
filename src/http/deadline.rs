//! Every request's deadline (`CLIENTELE_REQUEST_TIMEOUT_MS`): reading its body,
//! waiting for the database and doing the work all count. A streamed reply's
//! deadline ends with its headers; its body is bounded by the connection's I/O
//! timeout instead ([`super::server`]).
//!
//! The deadline is shorter than an `Idempotency-Key`'s claim, so a client's retry
//! can never take over the claim of a request still running; and a write queued
//! before the deadline passed either commits under its claim or not at all
//! (`store::idempotency::check_held`).

use std::future::Future;
use std::time::Duration;

use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Runs a request's handling for at most `limit`; past it, 503 `request_timeout`.
/// (Applied by [`super::observe::layer`], so the timed-out request is logged.)
pub async fn within(limit: Duration, handling: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, handling).await {
        Ok(res) => res,
        Err(_) => {
            metrics::counter!("clientele_requests_timed_out_total").increment(1);
            ApiError::request_timeout(limit).into_response()
        }
    }
}
