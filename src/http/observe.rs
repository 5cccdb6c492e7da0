//! One log line and two metrics per request, and its deadline
//! ([`super::deadline`]; one layer for both, as every layer costs every
//! request). The route template is logged, never the raw path or query string,
//! which can carry emails and phone numbers. A streamed reply (an export, an
//! import's results) is measured to its last byte, not to its headers.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::correlation;

pub async fn layer(State(deadline): State<Duration>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let res = super::deadline::within(deadline, next.run(req)).await;
    let finish = Finish {
        start,
        method,
        route,
        status: res.status().as_u16(),
        correlation_id: correlation::current(),
        reference_id: correlation::reference(),
    };
    if http_body::Body::size_hint(res.body()).exact().is_some() {
        // Whole already: measured now (`finish` is dropped here).
        return res;
    }
    res.map(|body| Body::new(super::Holding { body, held: finish }))
}

/// A request's measure, taken when dropped: at once for a whole reply, when its
/// body ends (or its client leaves) for a streamed one.
struct Finish {
    start: Instant,
    method: Method,
    route: String,
    status: u16,
    correlation_id: String,
    reference_id: Option<String>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let labels = [
            ("method", self.method.to_string()),
            ("route", std::mem::take(&mut self.route)),
            ("status", self.status.to_string()),
        ];
        tracing::info!(
            target: "clientele::request",
            method = %self.method,
            route = %labels[1].1,
            status = self.status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            correlation_id = %self.correlation_id,
            reference_id = self.reference_id.as_deref(),
            "request"
        );
        metrics::counter!("http_requests_total", &labels).increment(1);
        metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    }
}
