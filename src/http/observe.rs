//! One log line and two metrics per request, and its deadline
//! ([`super::deadline`]; one layer for both, as every layer costs every
//! request). The route template is logged, never the raw path or query string,
//! which can carry emails and phone numbers.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::correlation;

pub async fn layer(State(deadline): State<Duration>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let res = super::deadline::within(deadline, next.run(req)).await;
    let elapsed = start.elapsed();
    let status = res.status().as_u16();
    let labels = [("method", method.to_string()), ("route", route.clone()), ("status", status.to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    tracing::info!(
        target: "clientele::request",
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        correlation_id = %correlation::current(),
        reference_id = correlation::reference().as_deref(),
        "request"
    );
    res
}
