//! Liveness, readiness and metrics: unauthenticated, for load balancers and Prometheus.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    status: &'static str,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness: the database answers and the service is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    if state.inner.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::unavailable("The service is shutting down."));
    }
    state.db().ping().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        match e {
            crate::store::NotReady::Unreachable(_) => ApiError::unavailable("The database is unreachable."),
            crate::store::NotReady::Schema { .. } => {
                ApiError::unavailable("The database does not hold this service's schema; run the migrations.")
            }
        }
    })?;
    Ok(axum::Json(Health { status: "ok" }))
}

/// Prometheus metrics: request counts and latency histograms by route and status.
///
/// With `CLIENTELE_METRICS_TOKEN` set, only `Authorization: Bearer <token>`; with
/// `CLIENTELE_METRICS_LISTEN` set, served on that address only (404 here).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "`CLIENTELE_METRICS_TOKEN` is set and was not sent", body = ErrorBody),
        (status = 404, description = "Served on `CLIENTELE_METRICS_LISTEN` instead", body = ErrorBody)))]
async fn metrics(
    State(state): State<AppState>,
    listener: Option<axum::Extension<MetricsListener>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if state.inner.metrics_apart && listener.is_none() {
        return Err(ApiError::route_not_found());
    }
    if let Some(token) = &state.inner.metrics_token {
        use sha2::{Digest, Sha256};
        let sent = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
        // Digests compared, so the comparison's time says nothing about the token.
        let matches = sent.is_some_and(|s| Sha256::digest(s.trim()) == Sha256::digest(token.expose()));
        if !matches {
            return Err(ApiError::unauthorized("/metrics needs 'Authorization: Bearer <CLIENTELE_METRICS_TOKEN>'."));
        }
    }
    state.db().record_gauges().await;
    crate::telemetry::process_collector().collect();
    Ok((StatusCode::OK, [(CONTENT_TYPE, "text/plain; version=0.0.4")], state.inner.metrics.render()))
}

/// Marks requests that came through the metrics listener (`CLIENTELE_METRICS_LISTEN`).
#[derive(Clone, Copy)]
pub struct MetricsListener;

/// The router of the metrics listener: `/metrics` alone.
pub fn metrics_only(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .fallback(|| async { ApiError::route_not_found() })
        .layer(axum::Extension(MetricsListener))
        .layer(axum::middleware::from_fn(crate::http::headers::layer))
        .with_state(state)
}
