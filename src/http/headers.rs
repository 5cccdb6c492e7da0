//! Security headers on every reply. API replies carry personal data (and a
//! reveal, a full card number): no cache may keep them, no browser may sniff
//! them into something executable or frame them. The docs page is the one HTML
//! page; it keeps its own scripts but may not be framed either.

use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The headers as a layer of their own (the metrics listener's router).
pub async fn layer(req: Request, next: Next) -> Response {
    let docs = is_docs(&req);
    let mut res = next.run(req).await;
    add(res.headers_mut(), docs);
    res
}

/// Whether the request is for the docs page (which runs scripts of its own).
pub fn is_docs(req: &Request) -> bool {
    req.uri().path().starts_with("/docs")
}

/// Adds the security headers to a reply; on the API's router this is done by
/// [`super::correlation::layer`], which already touches every reply's headers.
pub fn add(h: &mut HeaderMap, docs: bool) {
    // Room for all of them at once: the map grows once instead of per header.
    h.reserve(6);
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !docs {
        h.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
        // The portal's pages set their own (they load its stylesheet).
        h.entry(CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    }
}
