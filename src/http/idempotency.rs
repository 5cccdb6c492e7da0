//! `Idempotency-Key` on POST (SPEC section 1): same merchant + key + body within
//! 24 h replays the first reply; another body is `409 idempotency_key_reused`;
//! a duplicate still running is `409 idempotency_key_in_progress`.

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::extract::read_body;
use crate::AppState;
use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::store::idempotency::ClaimOutcome;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// Marks a reply that must never be stored (it carries a revealed secret): the
/// key is released instead, so a retry runs the request again.
#[derive(Debug, Clone, Copy)]
pub struct SensitiveReply;

/// What identifies "the same request": method, path and body. A JSON body is
/// compared by content (key order and spacing do not matter).
fn request_hash(method: &Method, path: &str, body: &[u8]) -> Vec<u8> {
    let canonical = serde_json::from_slice::<serde_json::Value>(body).ok().map(|v| {
        let mut out = Vec::with_capacity(body.len());
        write_canonical(&v, &mut out);
        out
    });
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(canonical.as_deref().unwrap_or(body));
    h.finalize().to_vec()
}

/// What is stored of an `Idempotency-Key`: its SHA-256, hex.
pub fn key_digest(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted at every level, whatever serde_json's map order is.
fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(k).unwrap_or_default());
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend(serde_json::to_vec(scalar).unwrap_or_default()),
    }
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let Some(raw_key) = req.headers().get(HEADER) else {
        return Ok(next.run(req).await);
    };
    // A streamed NDJSON import is idempotent by its lines' externalReference, and
    // is never buffered whole.
    let streamed =
        req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.contains("ndjson"));
    if streamed {
        return Ok(next.run(req).await);
    }
    let key = match raw_key.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= 255 => k.trim().to_owned(),
        _ => {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key",
                "'Idempotency-Key' must be 1 to 255 visible ASCII characters.",
            ));
        }
    };
    let Some(auth) = req.extensions().get::<AuthContext>().cloned() else {
        return Ok(next.run(req).await);
    };
    // Keys are the client's free text (an order number, or worse); only a digest is stored.
    let key = key_digest(&key);
    let (mut parts, body) = req.into_parts();
    let bytes = read_body(body).await?;
    // Nested routers see a path without their prefix; the original is the request's identity.
    let path =
        parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.path().to_owned(), |u| u.path().to_owned());
    let hash = request_hash(&parts.method, &path, &bytes);
    let db = state.db();
    let claim = match db.claim_idempotency(auth.tenant, &key, &hash).await? {
        ClaimOutcome::Claimed(c) => c,
        ClaimOutcome::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut res = (status, body).into_response();
            res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
            return Ok(res);
        }
        ClaimOutcome::Reused => {
            return Err(ApiError::conflict(
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request.",
                None,
            ));
        }
        ClaimOutcome::InProgress => {
            return Err(ApiError::conflict(
                "idempotency_key_in_progress",
                "A request with this Idempotency-Key is still in progress; retry later.",
                None,
            ));
        }
    };
    parts.extensions.insert(claim.clone());
    let res = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = res.status();
    if status.is_server_error() || res.extensions().get::<SensitiveReply>().is_some() {
        // Nothing was committed: let the client's retry run the request again.
        if let Err(e) = db.release_idempotency(&claim).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return Ok(res);
    }
    // A write already stored its reply with its own commit; this stores the reply
    // of requests that wrote nothing (validation errors, 404s), which replay too.
    let (res_parts, res_body) = res.into_parts();
    // Our own replies are already in memory; the request limit does not apply to them.
    let res_bytes = axum::body::to_bytes(res_body, usize::MAX).await.map_err(ApiError::internal)?;
    db.complete_idempotency(&claim, status.as_u16(), &res_bytes).await?;
    Ok(Response::from_parts(res_parts, Body::from(res_bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_compare_by_content() {
        let a = request_hash(&Method::POST, "/x", br#"{"a":1,"b":2}"#);
        let b = request_hash(&Method::POST, "/x", b"{ \"b\": 2, \"a\": 1 }");
        let c = request_hash(&Method::POST, "/x", br#"{"a":1,"b":3}"#);
        let d = request_hash(&Method::POST, "/y", br#"{"a":1,"b":2}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
