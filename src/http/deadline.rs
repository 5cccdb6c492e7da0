//! Every request's deadline (`CLIENTELE_REQUEST_TIMEOUT_MS`): reading its body,
//! waiting for the database and doing the work all count. A streamed reply's
//! deadline ends with its headers; its body is bounded by the connection's I/O
//! timeout instead ([`super::server`]).
//!
//! The deadline is shorter than an `Idempotency-Key`'s claim, so a client's retry
//! can never take over the claim of a request still running; and a write queued
//! before the deadline passed either commits under its claim or not at all
//! (`store::idempotency::check_held`).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub async fn layer(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            metrics::counter!("clientele_requests_timed_out_total").increment(1);
            ApiError::request_timeout(limit).into_response()
        }
    }
}
