//! A webhook receiver for `bench/webhooks.sh`: takes every delivery (204) and
//! records how long after its event it arrived (the event's `createdOn`, the
//! instant its transaction wrote it, to the moment the request is read).
//!
//!   cargo run --release --example webhook_receiver -- 127.0.0.1:18090
//!   GET /stats → {"count", "p50Ms", "p99Ms", "maxMs"};  POST /reset starts over.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};

type Latencies = Arc<Mutex<Vec<f64>>>;

async fn receive(State(seen): State<Latencies>, body: String) -> StatusCode {
    let now = chrono::Utc::now();
    let created = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["createdOn"].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()));
    match created {
        Some(at) => {
            let ms = (now - at.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            seen.lock().unwrap().push(ms);
            StatusCode::NO_CONTENT
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn stats(State(seen): State<Latencies>) -> Json<Value> {
    let mut all = seen.lock().unwrap().clone();
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1))).copied();
    Json(json!({"count": all.len(), "p50Ms": at(0.5), "p99Ms": at(0.99), "maxMs": all.last()}))
}

async fn reset(State(seen): State<Latencies>) -> StatusCode {
    seen.lock().unwrap().clear();
    StatusCode::NO_CONTENT
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18090".into());
    let seen: Latencies = Arc::default();
    let app = axum::Router::new()
        .route("/hooks", post(receive))
        .route("/stats", get(stats))
        .route("/reset", post(reset))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
