//! `X-Correlation-Id`: echoed when the client sends a sane one, generated
//! otherwise, and visible to everything the request runs (logs, error bodies,
//! events) through a task-local.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: &str = "x-correlation-id";

tokio::task_local! {
    static CORRELATION_ID: String;
}

/// The current request's correlation id (empty outside a request).
pub fn current() -> String {
    CORRELATION_ID.try_with(Clone::clone).unwrap_or_default()
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
    let id = req.headers().get(HEADER).and_then(acceptable).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let header = HeaderValue::from_str(&id).expect("checked characters");
    let docs = super::headers::is_docs(&req);
    let mut res = CORRELATION_ID.scope(id, next.run(req)).await;
    res.headers_mut().insert(HEADER, header);
    super::headers::add(res.headers_mut(), docs);
    res
}
