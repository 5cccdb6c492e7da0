//! API keys: generation, hashing, the authentication middleware and scope checks.
//!
//! Keys are 256 random bits, shown once and stored as SHA-256 digests. A fast
//! hash is right here (unlike passwords): the input has full entropy, so there is
//! nothing to brute-force, and every request pays for the lookup.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::http::correlation;
use crate::store::idempotency::Claim;
use crate::store::{Actor, Tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    CustomersRead,
    CustomersWrite,
    PaymentMethodsWrite,
    PaymentMethodsReveal,
    CreditWrite,
    WebhooksWrite,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::CustomersRead,
        Scope::CustomersWrite,
        Scope::PaymentMethodsWrite,
        Scope::PaymentMethodsReveal,
        Scope::CreditWrite,
        Scope::WebhooksWrite,
    ];

    /// What a key gets when nobody says otherwise: everything but `reveal` and
    /// `webhooks:write` (which decides where the merchant's events are sent).
    pub const DEFAULT: [Scope; 4] =
        [Scope::CustomersRead, Scope::CustomersWrite, Scope::PaymentMethodsWrite, Scope::CreditWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CustomersRead => "customers:read",
            Scope::CustomersWrite => "customers:write",
            Scope::PaymentMethodsWrite => "payment_methods:write",
            Scope::PaymentMethodsReveal => "payment_methods:reveal",
            Scope::CreditWrite => "credit:write",
            Scope::WebhooksWrite => "webhooks:write",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A new key in clear (shown once) with what is stored of it.
pub struct NewKey {
    pub id: Uuid,
    pub secret: String,
    pub hash: [u8; 32],
}

pub fn generate_key() -> NewKey {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let secret = format!("ck_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
    let hash = hash_key(&secret);
    NewKey { id: Uuid::now_v7(), secret, hash }
}

/// Makes a key with `scopes` in `actor`'s name (an `api_key.created` event):
/// its secret is in the returned value only.
pub async fn issue_key(
    db: &crate::store::Db,
    actor: Actor,
    scopes: &[Scope],
) -> Result<NewKey, crate::store::StoreError> {
    let key = generate_key();
    let (id, hash, scopes) = (key.id, key.hash, scopes_string(scopes));
    db.write(actor, move |mut tx| async move {
        tx.insert_api_key(id, &hash, &scopes).await?;
        tx.commit().await
    })
    .await?;
    Ok(key)
}

pub fn hash_key(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn scopes_string(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

/// Who the request is, as established by [`layer`].
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub tenant: Tenant,
    pub key_id: Uuid,
    pub scopes: Arc<[Scope]>,
}

/// How long a looked-up key is trusted without asking the database again: a key
/// revoked (from the command line, possibly on another machine) stops working on
/// every server within this time.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);
/// A key's last use is written at most this often (on a cache miss that finds
/// it older): a list of keys shows which are in use, at no cost per request.
pub const LAST_USED_EVERY_MS: i64 = 5 * 60 * 1000;
/// Entries kept at most; the cache starts over when full.
const KEY_CACHE_CAPACITY: usize = 10_000;

/// Live keys by hash, each with the instant it was read. Unknown keys are not
/// kept, so guessing cannot fill the cache.
#[derive(Default)]
pub struct KeyCache {
    live: Mutex<HashMap<[u8; 32], (AuthContext, Instant)>>,
}

impl KeyCache {
    fn get(&self, hash: &[u8; 32]) -> Option<AuthContext> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(hash).filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL).map(|(ctx, _)| ctx.clone())
    }

    fn put(&self, hash: [u8; 32], ctx: AuthContext) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.len() >= KEY_CACHE_CAPACITY {
            live.clear();
        }
        live.insert(hash, (ctx, Instant::now()));
    }
}

/// Authenticates every API route: a live key, or 401; and counts the request
/// against the rate limits of its address and its key ([`crate::http::rate`]).
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let rates = state.rates();
    let addr = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(addr) = addr {
        rates.address(addr)?;
    }
    let failed = |e: ApiError| match addr {
        Some(addr) => rates.failed(addr, e),
        None => e,
    };
    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) else {
        return Err(failed(ApiError::unauthorized("Send 'Authorization: Bearer <api key>'.")));
    };
    let token = token.trim();
    if token.is_empty() || token.len() > 256 {
        return Err(failed(ApiError::unauthorized("The API key is not valid.")));
    }
    let hash = hash_key(token);
    let ctx = match state.keys().get(&hash) {
        Some(ctx) => ctx,
        None => {
            // An address that keeps sending unknown keys costs no more lookups.
            if let Some(addr) = addr {
                rates.check_blocked(addr)?;
            }
            let Some(rec) = state.db().find_api_key(&hash).await? else {
                return Err(failed(ApiError::unauthorized("The API key is not valid.")));
            };
            let scopes = rec.scopes.split_whitespace().filter_map(Scope::parse).collect();
            let ctx = AuthContext { tenant: Tenant::trusted(rec.merchant_id), key_id: rec.id, scopes };
            if rec.last_used_at.is_none_or(|at| crate::store::now_ms() - at > LAST_USED_EVERY_MS) {
                let (db, tenant, id) = (state.db().clone(), ctx.tenant, ctx.key_id);
                tokio::spawn(async move {
                    if let Err(e) = db.touch_api_key(tenant, id).await {
                        tracing::debug!(error = %e, "could not note a key's last use");
                    }
                });
            }
            state.keys().put(hash, ctx.clone());
            ctx
        }
    };
    rates.key(ctx.key_id)?;
    req.extensions_mut().insert(ctx);
    Ok(next.run(req).await)
}

/// Marker types naming the scope a handler needs.
pub trait RequiredScope: Send + Sync {
    const SCOPE: Scope;
}

macro_rules! scope_marker {
    ($name:ident, $scope:expr) => {
        pub struct $name;
        impl RequiredScope for $name {
            const SCOPE: Scope = $scope;
        }
    };
}
scope_marker!(CustomersRead, Scope::CustomersRead);
scope_marker!(CustomersWrite, Scope::CustomersWrite);
scope_marker!(PaymentMethodsWrite, Scope::PaymentMethodsWrite);
scope_marker!(PaymentMethodsReveal, Scope::PaymentMethodsReveal);
scope_marker!(CreditWrite, Scope::CreditWrite);
scope_marker!(WebhooksWrite, Scope::WebhooksWrite);

/// An authenticated caller holding scope `S`; the only way a handler gets a tenant.
pub struct Authed<S: RequiredScope> {
    pub ctx: AuthContext,
    claim: Option<Claim>,
    _scope: PhantomData<S>,
}

impl<S: RequiredScope> Authed<S> {
    pub fn tenant(&self) -> Tenant {
        self.ctx.tenant
    }

    /// The actor for a write: tenant, key, correlation id and idempotency claim.
    pub fn actor(&self) -> Actor {
        Actor {
            tenant: self.ctx.tenant,
            api_key_id: Some(self.ctx.key_id),
            user_id: None,
            correlation_id: correlation::current(),
            idempotency: self.claim.clone(),
        }
    }
}

impl<St: Send + Sync, S: RequiredScope> FromRequestParts<St> for Authed<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, ApiError> {
        let ctx = parts
            .extensions
            .get::<AuthContext>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("Not authenticated."))?;
        if !ctx.scopes.contains(&S::SCOPE) {
            return Err(ApiError::forbidden(S::SCOPE.as_str()));
        }
        let claim = parts.extensions.get::<Claim>().cloned();
        if let Some(c) = &claim {
            // The reply may now be stored for replay, to keys holding this scope.
            let _ = c.scope.set(S::SCOPE.as_str());
        }
        Ok(Authed { ctx, claim, _scope: PhantomData })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hashed() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.len() >= 3 + 43);
        assert_eq!(a.hash, hash_key(&a.secret));
        assert_eq!(a.hash.len(), 32);
    }

    #[test]
    fn scope_names_round_trip() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert!(!Scope::DEFAULT.contains(&Scope::PaymentMethodsReveal));
        assert!(!Scope::DEFAULT.contains(&Scope::WebhooksWrite));
    }
}
