//! `Idempotency-Key` on POST (SPEC section 1): same merchant + key + body within
//! 24 h replays the first reply; another body is `409 idempotency_key_reused`;
//! a duplicate still running is `409 idempotency_key_in_progress`.

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::extract::read_body;
use crate::AppState;
use crate::auth::AuthContext;
use crate::crypto::Vault;
use crate::error::ApiError;
use crate::store::idempotency::ClaimOutcome;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// Marks a reply that must never be stored (it carries a revealed secret): the
/// key is released instead, so a retry runs the request again.
#[derive(Debug, Clone, Copy)]
pub struct SensitiveReply;

/// What identifies "the same request": method, path and body, as a keyed digest
/// ([`Vault::digest`]): the body may carry a card number. A JSON body is compared
/// by content (key order and spacing do not matter) and without its security
/// codes, which may not be derivable from anything stored, even with the master
/// key: two requests that differ only in a security code are the same request.
pub fn request_digest(vault: &Vault, method: &Method, path: &str, body: &[u8]) -> Vec<u8> {
    let canonical = serde_json::from_slice::<serde_json::Value>(body).ok().map(|mut v| {
        strip_security_codes(&mut v);
        let mut out = Vec::with_capacity(body.len());
        write_canonical(&v, &mut out);
        out
    });
    let body = canonical.as_deref().unwrap_or(body);
    vault.digest("idempotency/request", &[method.as_str().as_bytes(), path.as_bytes(), body]).to_vec()
}

/// What is stored of an `Idempotency-Key` (the client's free text: an order
/// number, or worse): its keyed digest, hex.
pub fn key_digest(vault: &Vault, key: &str) -> String {
    vault.digest("idempotency/key", &[key.as_bytes()]).iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes every `securityCode` member, at any depth.
fn strip_security_codes(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("securityCode");
            map.values_mut().for_each(strip_security_codes);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_security_codes),
        _ => {}
    }
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
        // An empty key is no key, as an empty form field is no value.
        Ok(k) if k.trim().is_empty() => return Ok(next.run(req).await),
        Ok(k) if k.len() <= 255 => k.trim().to_owned(),
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
    let vault = state.vault();
    let key = key_digest(&vault, &key);
    let (mut parts, body) = req.into_parts();
    let bytes = read_body(body).await?;
    // Nested routers see a path without their prefix; the original is the request's identity.
    let path =
        parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.path().to_owned(), |u| u.path().to_owned());
    let hash = request_digest(&vault, &parts.method, &path, &bytes);
    let db = state.db();
    let claim = match db.claim_idempotency(auth.tenant, &key, &hash).await? {
        ClaimOutcome::Claimed(c) => c,
        ClaimOutcome::Replay { status, body, scope } => {
            // The replay is what the request would have answered: only to a key that
            // could have made it.
            match scope.as_deref() {
                Some(s) if auth.scopes.iter().any(|held| held.as_str() == s) => {}
                Some(s) => return Err(ApiError::forbidden(s)),
                None => {
                    return Err(ApiError::conflict(
                        "idempotency_key_reused",
                        "This Idempotency-Key was already used by a request this key cannot replay.",
                        None,
                    ));
                }
            }
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
    // A request refused before it ran (no key, no scope, rate limited, or failed)
    // says nothing about what the key's request does, and a reply that carries a
    // revealed secret must not be kept: the key is released, so a retry runs.
    let refused = matches!(status.as_u16(), 401 | 403 | 429) || status.is_server_error();
    let scope = claim.scope.get().copied();
    if refused || scope.is_none() || res.extensions().get::<SensitiveReply>().is_some() {
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
    if let Err(e) = db.complete_idempotency(&claim, status.as_u16(), &res_bytes).await {
        // The claim was taken over by a retry (this request outlived it): the reply
        // goes out, and the retry's is the one kept.
        tracing::warn!(error = %e, "could not store an idempotent reply");
    }
    Ok(Response::from_parts(res_parts, Body::from(res_bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        Vault::new(crate::crypto::MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap())
    }

    #[test]
    fn json_bodies_compare_by_content() {
        let v = vault();
        let a = request_digest(&v, &Method::POST, "/x", br#"{"a":1,"b":2}"#);
        let b = request_digest(&v, &Method::POST, "/x", b"{ \"b\": 2, \"a\": 1 }");
        let c = request_digest(&v, &Method::POST, "/x", br#"{"a":1,"b":3}"#);
        let d = request_digest(&v, &Method::POST, "/y", br#"{"a":1,"b":2}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn security_codes_are_left_out_of_the_digest() {
        let v = vault();
        let with = |cvv: &str| {
            let body = format!(
                r#"{{"firstName":"A","paymentMethodsCards":[{{"pan":"4111111111111111","securityCode":"{cvv}"}}]}}"#
            );
            request_digest(&v, &Method::POST, "/c", body.as_bytes())
        };
        assert_eq!(with("123"), with("999"));
        let without = br#"{"firstName":"A","paymentMethodsCards":[{"pan":"4111111111111111"}]}"#;
        assert_eq!(with("123"), request_digest(&v, &Method::POST, "/c", without));
        let other_card = br#"{"firstName":"A","paymentMethodsCards":[{"pan":"4012888888881881"}]}"#;
        assert_ne!(with("123"), request_digest(&v, &Method::POST, "/c", other_card));
    }
}
