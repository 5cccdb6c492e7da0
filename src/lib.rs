//! Clientele: a self-hostable merchant Customer API.
//!
//! [`App::start`] opens the database (migrating it), loads the master key and
//! builds the router; `main` and the integration tests both go through it.

pub mod auth;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod http;
pub mod notify;
pub mod portal;
pub mod routes;
pub mod store;
pub mod telemetry;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{Extensions, HeaderMap, StatusCode, Version};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::DefaultPredicate;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::crypto::Vault;
use crate::error::ApiError;
use crate::store::{Db, DbOptions};

#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    db: Db,
    metrics: PrometheusHandle,
    shutting_down: AtomicBool,
    vault: Arc<Vault>,
    keys: auth::KeyCache,
    limits: config::Limits,
    exports: routes::bulk::ExportSlots,
    rates: http::rate::RateLimits,
    metrics_token: Option<crypto::SecretString>,
    /// `/metrics` is served on a listener of its own.
    metrics_apart: bool,
    webhooks: webhooks::Settings,
    portal_throttle: portal::Throttle,
    /// Portal cookies are `Secure` unless the service listens on loopback only.
    portal_secure_cookies: bool,
}

impl AppState {
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn vault(&self) -> Arc<Vault> {
        self.inner.vault.clone()
    }

    pub(crate) fn keys(&self) -> &auth::KeyCache {
        &self.inner.keys
    }

    pub fn limits(&self) -> &config::Limits {
        &self.inner.limits
    }

    pub(crate) fn exports(&self) -> &routes::bulk::ExportSlots {
        &self.inner.exports
    }

    pub(crate) fn rates(&self) -> &http::rate::RateLimits {
        &self.inner.rates
    }

    pub(crate) fn webhooks(&self) -> &webhooks::Settings {
        &self.inner.webhooks
    }

    pub(crate) fn portal_throttle(&self) -> &portal::Throttle {
        &self.inner.portal_throttle
    }

    pub(crate) fn portal_secure_cookies(&self) -> bool {
        self.inner.portal_secure_cookies
    }
}

/// A started application: database open and migrated, router built.
pub struct App {
    pub state: AppState,
    notifier: notify::Notifier,
    webhooks: webhooks::Webhooks,
    pub router: Router,
    pub openapi: utoipa::openapi::OpenApi,
    /// Bound when `CLIENTELE_METRICS_LISTEN` is set.
    metrics_listener: Option<std::net::TcpListener>,
}

/// The whole HTTP surface, with its OpenAPI document.
pub fn build_router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let api = OpenApiRouter::new()
        .merge(routes::customers::router())
        .merge(routes::bulk::router())
        .merge(routes::payment_methods::router())
        .merge(routes::custom_parameters::router())
        .merge(routes::providers::router())
        .merge(routes::identity::router())
        .merge(routes::credit::router())
        .merge(routes::transactions::router())
        .merge(routes::events::router())
        .merge(routes::webhooks::router())
        // Layers run outside-in from the last one added: authenticate, then idempotency.
        .route_layer(from_fn_with_state(state.clone(), http::idempotency::layer))
        .route_layer(from_fn_with_state(state.clone(), auth::layer));
    let (router, mut openapi) = OpenApiRouter::with_openapi(routes::docs::base())
        .nest("/pay-api/v1", api)
        .merge(routes::health::router())
        .split_for_parts();
    routes::docs::finish(&mut openapi);
    let router = router
        .merge(routes::docs::ui(&openapi))
        .merge(portal::router())
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            // The payload is not logged: it could quote request data.
            ApiError::internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(from_fn_with_state(state.limits().request_timeout(), http::observe::layer))
        .layer(from_fn(http::correlation::layer))
        .layer(compression())
        .with_state(state);
    (router, openapi)
}

/// gzip or brotli when the client asks (`Accept-Encoding`), for every body
/// worth it; never for a reply that reveals a secret, so that no compressed
/// length can leak it beside text an attacker chose (BREACH).
fn compression() -> CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::Predicate as _;
    let not_secret = |_: StatusCode, _: Version, _: &HeaderMap, ext: &Extensions| {
        ext.get::<http::idempotency::SensitiveReply>().is_none()
    };
    CompressionLayer::new().gzip(true).br(true).compress_when(DefaultPredicate::new().and(not_secret))
}

impl App {
    pub async fn start(config: &Config) -> anyhow::Result<App> {
        let options = DbOptions {
            max_connections: config.db_max_connections,
            query_timeout: Some(config.limits.query_timeout()),
            exports: config.limits.max_exports,
            ..DbOptions::default()
        };
        Self::start_with(config, options).await
    }

    /// [`App::start`] with database settings of the caller's (a bulk import's).
    pub async fn start_with(config: &Config, db_options: DbOptions) -> anyhow::Result<App> {
        let db = Db::connect(&config.database_url, &db_options).await?;
        db.migrate().await?;
        let vault = Arc::new(Vault::new(crypto::load_master_key(config.master_key.as_ref(), &config.data_dir)?));
        let backend = match db.backend() {
            store::Backend::Sqlite => "sqlite",
            store::Backend::Postgres => "postgres",
        };
        let version = env!("CARGO_PKG_VERSION");
        telemetry::metrics_handle(); // the recorder, before the first value
        metrics::gauge!("clientele_build_info", "version" => version, "commit" => telemetry::COMMIT, "backend" => backend)
            .set(1.0);
        db.load_keys(&vault).await?;
        let state = AppState {
            inner: Arc::new(Inner {
                db,
                metrics: telemetry::metrics_handle(),
                shutting_down: AtomicBool::new(false),
                vault,
                keys: auth::KeyCache::default(),
                limits: config.limits.clone(),
                exports: routes::bulk::ExportSlots::new(config.limits.max_exports),
                rates: http::rate::RateLimits::new(&config.limits),
                metrics_token: config.metrics_token.clone(),
                metrics_apart: config.metrics_listen.is_some(),
                webhooks: webhook_settings(config),
                portal_throttle: portal::Throttle::default(),
                portal_secure_cookies: !config.listen.ip().is_loopback(),
            }),
        };
        let (router, openapi) = build_router(state.clone());
        let channels = notify::Channels {
            smtp_url: config.smtp_url.clone(),
            smtp_from: config.smtp_from.clone(),
            sms_webhook: config.sms_webhook_url.clone(),
            poll: Duration::from_millis(config.outbox_poll_ms.max(10)),
            retry_base: Duration::from_millis(config.outbox_retry_ms.max(10)),
        };
        let notifier = notify::Notifier::new(state.db().clone(), state.vault(), channels)?;
        let webhooks = webhooks::Webhooks::new(state.db().clone(), state.vault(), *state.webhooks())?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr)
                    .map_err(|e| anyhow::anyhow!("listening for /metrics on {addr}: {e}"))?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        Ok(App { state, notifier, webhooks, router, openapi, metrics_listener })
    }

    /// Where `/metrics` is served apart from the API (`CLIENTELE_METRICS_LISTEN`).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish and closes the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let purge = tokio::spawn(purge_idempotency_keys(state.clone()));
        let forget = tokio::spawn(forget_idle_clients(state.clone()));
        let upkeep = tokio::spawn(keep_search_index(state.db().clone()));
        let outbox = tokio::spawn(self.notifier.run());
        let webhooks = tokio::spawn(self.webhooks.run());
        let flag = state.clone();
        let drain = Duration::from_millis(state.limits().shutdown_drain_ms);
        let signal = async move {
            shutdown.await;
            // Still accepting: a load balancer checking /readyz sees 503 and stops
            // sending before the listener closes.
            flag.inner.shutting_down.store(true, Ordering::Relaxed);
            tracing::info!(drain_ms = drain.as_millis() as u64, "shutting down: /readyz answers 503 while draining");
            tokio::time::sleep(drain).await;
            tracing::info!("shutting down: no more connections; finishing in-flight requests");
        };
        let l = state.limits();
        let limits = http::server::ServerLimits {
            header: Duration::from_millis(l.header_timeout_ms),
            idle: Duration::from_millis(l.idle_timeout_ms),
            io: Duration::from_millis(l.io_timeout_ms),
            max_connections: l.max_connections as usize,
            grace: l.request_timeout() + Duration::from_secs(5),
        };
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = match self.metrics_listener {
            Some(l) => {
                let (l, router) = (TcpListener::from_std(l)?, routes::health::metrics_only(state.clone()));
                tracing::info!(listen = %l.local_addr()?, "serving /metrics apart");
                let stopped = async {
                    let _ = metrics_stopped.await;
                };
                Some(tokio::spawn(http::server::serve(l, router, limits, stopped)))
            }
            None => None,
        };
        http::server::serve(listener, self.router, limits, signal).await?;
        let _ = stop_metrics.send(());
        if let Some(m) = metrics {
            let _ = m.await;
        }
        purge.abort();
        forget.abort();
        upkeep.abort();
        outbox.abort();
        webhooks.abort();
        state.db().close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn webhook_settings(config: &Config) -> webhooks::Settings {
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    webhooks::Settings {
        allow_private_networks: config.webhooks_allow_private_networks,
        timeout: Duration::from_millis(config.webhooks_timeout_ms.max(1)),
        poll: Duration::from_millis(config.webhooks_poll_ms.max(10)),
        retry: store::webhooks::RetryPolicy {
            first_retry_ms: ms(config.webhooks_retry_ms.max(1)),
            retry_for_ms: ms(config.webhooks_retry_for_s.saturating_mul(1000)),
            disable_after_ms: ms(config.webhooks_disable_after_s.saturating_mul(1000)),
        },
    }
}

/// Hourly removal of idempotency records past their 24 h retention, and of
/// webhook deliveries past the delivery log's.
async fn purge_idempotency_keys(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match state.db().purge_idempotency().await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "purged expired idempotency keys"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not purge idempotency keys"),
        }
        let before = store::now_ms() - store::webhooks::DELIVERY_LOG_MS;
        loop {
            match state.db().purge_webhook_deliveries(before, 5000).await {
                Ok(5000) => {}
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(removed = n, "purged old webhook deliveries");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not purge webhook deliveries");
                    break;
                }
            }
        }
    }
}

/// Every second, the search index's pending entries move into the index proper
/// (PostgreSQL: see `Backend::search_index_upkeep`), so that no request's write
/// has to move them and searches read a short list; `serve` runs it, and so does
/// `import`, whose batches then leave the moves to it. A failure is logged once
/// until the upkeep works again.
pub async fn keep_search_index(db: store::Db) {
    if db.backend().search_index_upkeep().is_none() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match db.search_index_upkeep().await {
            Ok(pages) => {
                metrics::counter!("clientele_search_index_pages_moved_total").increment(pages.max(0) as u64);
                if std::mem::take(&mut failing) {
                    tracing::info!("the search index's upkeep works again");
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "could not move the search index's pending entries; writes move them meanwhile");
            }
            Err(_) => {}
        }
    }
}

/// Every minute, the rate limits forget the clients that have gone quiet.
async fn forget_idle_clients(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        state.rates().forget_idle();
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
