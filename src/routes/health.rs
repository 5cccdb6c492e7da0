//! Liveness, readiness and metrics: unauthenticated, for load balancers and Prometheus.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
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
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (StatusCode::OK, [(CONTENT_TYPE, "text/plain; version=0.0.4")], state.inner.metrics.render())
}
