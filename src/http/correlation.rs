//! `X-Correlation-Id`: echoed when the client sends a sane one, generated
//! otherwise, and visible to everything the request runs (logs, error bodies,
//! events) through a task-local. Seed 004's `x-reference-id` is recorded and
//! echoed beside it, and stands in for the correlation id when none is sent.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: &str = "x-correlation-id";
/// The point-of-sale API's request reference (seed 004).
pub const REFERENCE_HEADER: &str = "x-reference-id";

/// A request's ids.
struct Ids {
    correlation: String,
    /// `x-reference-id`, when the client sent a sane one.
    reference: Option<String>,
}

tokio::task_local! {
    static IDS: Ids;
}

/// The current request's correlation id (empty outside a request).
pub fn current() -> String {
    IDS.try_with(|ids| ids.correlation.clone()).unwrap_or_default()
}

/// The current request's `x-reference-id`, if it sent one.
pub fn reference() -> Option<String> {
    IDS.try_with(|ids| ids.reference.clone()).ok().flatten()
}

fn acceptable(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_owned())
}

/// Runs the request with its correlation id, and sets the id and the security
/// headers ([`super::headers`]) on its reply: one layer for both, as every layer
/// costs every request.
pub async fn layer(req: Request, next: Next) -> Response {
    let reference = req.headers().get(REFERENCE_HEADER).and_then(acceptable);
    let id = req
        .headers()
        .get(HEADER)
        .and_then(acceptable)
        .or_else(|| reference.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let header = HeaderValue::from_str(&id).expect("checked characters");
    let reference_header = reference.as_deref().map(|r| HeaderValue::from_str(r).expect("checked characters"));
    let docs = super::headers::is_docs(&req);
    let mut res = IDS.scope(Ids { correlation: id, reference }, next.run(req)).await;
    res.headers_mut().insert(HEADER, header);
    if let Some(r) = reference_header {
        res.headers_mut().insert(REFERENCE_HEADER, r);
    }
    super::headers::add(res.headers_mut(), docs);
    res
}
