//! Webhook endpoints and deliveries, against a local receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clientele::auth::Scope;
use clientele::domain::webhook::SigningSecret;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::TestApp;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: i64,
    signatures: Vec<String>,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Whether one of the `v1,` signatures is `secret`'s over this request (the
    /// Standard Webhooks scheme).
    fn signed_by(&self, secret: &str) -> bool {
        let s = SigningSecret::from_text(secret.to_owned()).expect("a whsec_ secret");
        let expected = s.sign(&self.id, self.timestamp, self.body.as_bytes());
        self.signatures.contains(&expected)
    }
}

/// How the receiver answers its `n`th request (from 0).
type Behaviour = fn(usize) -> (StatusCode, Duration);

#[derive(Clone)]
struct Receiver {
    calls: Arc<AtomicUsize>,
    got: Arc<Mutex<Vec<Received>>>,
    behaviour: Behaviour,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let n = r.calls.fetch_add(1, Ordering::SeqCst);
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    r.got.lock().await.push(Received {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp").parse().unwrap_or(0),
        signatures: h("webhook-signature").split(' ').map(str::to_owned).collect(),
        body,
    });
    let (status, delay) = (r.behaviour)(n);
    tokio::time::sleep(delay).await;
    status
}

async fn receiver(behaviour: Behaviour) -> (String, Receiver) {
    let r = Receiver { calls: Arc::default(), got: Arc::default(), behaviour };
    let app = axum::Router::new().route("/hooks", axum::routing::post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

fn always_ok(_: usize) -> (StatusCode, Duration) {
    (StatusCode::NO_CONTENT, Duration::ZERO)
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A key that may manage webhooks (the default key may not).
async fn admin(app: &TestApp) -> String {
    app.key_with(&[Scope::CustomersRead, Scope::CustomersWrite, Scope::WebhooksWrite]).await.1
}

/// Registers an endpoint; returns its id and secret.
async fn register(app: &TestApp, key: &str, url: &str, events: Value) -> (String, String) {
    let body = json!({"url": url, "enabledEvents": events, "description": "test receiver"});
    let r = app.send(reqwest::Method::POST, "/webhook-endpoints", Some(key), Some(body), &[]).await;
    let b = r.expect(200);
    (b["id"].as_str().unwrap().to_owned(), b["secret"].as_str().unwrap().to_owned())
}

async fn got(r: &Receiver) -> Vec<Received> {
    r.got.lock().await.clone()
}

async fn deliveries(app: &TestApp, endpoint: &str) -> Vec<Value> {
    app.get(&format!("/webhook-endpoints/{endpoint}/deliveries?limit=100")).await.expect(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

crate::both! {
    async fn an_endpoint_receives_the_events_it_enabled_signed(app: TestApp) {
        let (url, rx) = receiver(always_ok).await;
        let key = admin(&app).await;
        let (endpoint, secret) = register(&app, &key, &url, json!(["customer.created"])).await;
        assert!(secret.starts_with("whsec_"), "{secret}");
        let c = app.create_named("Ada", "Hook").await;
        app.patch(&format!("/customers/{c}"), json!({"firstName": "Adah"})).await.expect(200);
        let c2 = app.create_named("Bea", "Hook").await;
        let all = wait_for("two deliveries", async || {
            let g = got(&rx).await;
            (g.len() >= 2).then_some(g)
        })
        .await;
        // The event as /events shows it, signed with the endpoint's secret.
        let events = app.feed_showing("/events?type=customer.created", 2).await["items"].as_array().unwrap().clone();
        // Attempts run concurrently: deliveries may arrive in any order.
        for entity in [&c, &c2] {
            let r = all.iter().find(|r| r.json()["entityId"] == **entity).expect("its delivery");
            let sent = events.iter().find(|e| e["entityId"] == **entity).expect("its event");
            assert_eq!(r.json(), *sent);
            assert_eq!(r.id, sent["id"].as_str().unwrap(), "webhook-id is the event's id");
            assert!(r.signed_by(&secret), "signature verifies: {r:?}");
            assert!(!r.signed_by(SigningSecret::generate().expose()));
            let now = chrono::Utc::now().timestamp();
            assert!((now - r.timestamp).abs() < 60, "timestamp in seconds, now");
        }
        // Only customer.created was queued: the update is not in the log.
        let log = wait_for("both delivered", async || {
            let d = deliveries(&app, &endpoint).await;
            d.iter().all(|d| d["status"] == "delivered").then_some(d)
        })
        .await;
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log.iter().all(|d| d["eventType"] == "customer.created" && d["attempts"] == 1 && d["lastStatusCode"] == 204));
        assert_eq!(got(&rx).await.len(), 2);
        // The secret is never shown again.
        let view = app.get(&format!("/webhook-endpoints/{endpoint}")).await.expect(200).clone();
        assert!(view.get("secret").is_none() && !view.to_string().contains("whsec_"), "{view}");
        assert_eq!(view["enabledEvents"], json!(["customer.created"]));
        assert_eq!(view["status"], "enabled");
    }

    async fn failures_and_timeouts_are_retried_under_one_webhook_id(app: TestApp) {
        fn flaky(n: usize) -> (StatusCode, Duration) {
            match n {
                0 => (StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO),
                1 => (StatusCode::OK, Duration::from_millis(1500)),
                _ => (StatusCode::OK, Duration::ZERO),
            }
        }
        let app = app.restart_with(|c| c.webhooks_timeout_ms = 500).await;
        let (url, rx) = receiver(flaky).await;
        let key = admin(&app).await;
        let (endpoint, secret) = register(&app, &key, &url, json!(["*"])).await;
        app.create_named("Retry", "Me").await;
        let log = wait_for("delivered after a 500 and a timeout", async || {
            let d = deliveries(&app, &endpoint).await;
            d.iter().find(|d| d["eventType"] == "customer.created" && d["status"] == "delivered").cloned()
        })
        .await;
        assert_eq!(log["attempts"], 3, "{log}");
        assert_eq!(log["lastStatusCode"], 200);
        let seen = got(&rx).await;
        let tries: Vec<&Received> = seen.iter().filter(|r| r.id == log["eventId"].as_str().unwrap()).collect();
        assert_eq!(tries.len(), 3, "one webhook-id across the attempts");
        assert!(tries.iter().all(|r| r.signed_by(&secret) && r.body == tries[0].body));
    }

    async fn a_disabled_endpoint_receives_nothing_and_resumes_from_its_enabling(app: TestApp) {
        let (url, rx) = receiver(always_ok).await;
        let key = admin(&app).await;
        let (endpoint, _) = register(&app, &key, &url, json!(["customer.created"])).await;
        let path = format!("/webhook-endpoints/{endpoint}");
        let put = |body: Value| app.send(reqwest::Method::PUT, &path, Some(&key), Some(body), &[]);
        assert_eq!(put(json!({"status": "disabled"})).await.expect(200)["status"], "disabled");
        let quiet = app.create_named("While", "Disabled").await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(got(&rx).await.is_empty(), "a disabled endpoint is sent nothing");
        put(json!({"status": "enabled"})).await.expect(200);
        let loud = app.create_named("After", "Enabled").await;
        let r = wait_for("the delivery after enabling", async || got(&rx).await.first().cloned()).await;
        assert_eq!(r.json()["entityId"], loud.as_str());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(got(&rx).await.iter().all(|r| r.json()["entityId"] != quiet.as_str()), "nothing from while disabled");
    }

    async fn a_rotated_secret_signs_beside_the_new_one(app: TestApp) {
        let (url, rx) = receiver(always_ok).await;
        let key = admin(&app).await;
        let (endpoint, old) = register(&app, &key, &url, json!(["customer.created"])).await;
        let path = format!("/webhook-endpoints/{endpoint}/rotate-secret");
        let r = app.send(reqwest::Method::POST, &path, Some(&key), None, &[]).await;
        let new = r.expect(200)["secret"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        let until = chrono::DateTime::parse_from_rfc3339(r.body["previousSecretExpiresOn"].as_str().unwrap()).unwrap();
        let hours = (until.timestamp() - chrono::Utc::now().timestamp()) / 3600;
        assert!((23..=24).contains(&hours), "{hours}");
        app.create_named("Two", "Keys").await;
        let got = wait_for("a delivery", async || got(&rx).await.first().cloned()).await;
        assert_eq!(got.signatures.len(), 2, "{got:?}");
        assert!(got.signed_by(&new) && got.signed_by(&old));
        let view = app.get(&format!("/webhook-endpoints/{endpoint}")).await.expect(200).clone();
        assert!(view["previousSecretExpiresOn"].is_string());
        // The secrets survive a data key rotation, sealed under the new key.
        let cfg = app.test_db.config();
        let vault = clientele::crypto::Vault::new(clientele::crypto::load_master_key(cfg.master_key.as_ref(), &cfg.data_dir).unwrap());
        assert!(app.db.rotate_keys(&vault).await.unwrap().reencrypted >= 1);
        let version: i64 = crate::helpers::scalar(&app.test_db.url, "SELECT MIN(key_version) FROM webhook_endpoints").await;
        assert_eq!(version, 2);
        app.create_named("Three", "Keys").await;
        let after = wait_for("a delivery after rotation", async || {
            let g = rx.got.lock().await.clone();
            (g.len() >= 2).then(|| g[1].clone())
        })
        .await;
        assert!(after.signed_by(&new) && after.signed_by(&old));
    }

    async fn inside_addresses_are_refused_at_registration_and_at_connection(app: TestApp) {
        let (url, rx) = receiver(always_ok).await;
        let key = admin(&app).await;
        // Registered while private networks are allowed (as these tests run)...
        let (endpoint, _) = register(&app, &key, &url, json!(["customer.created"])).await;
        let by_name = url.replace("127.0.0.1", "localhost");
        let (named, _) = register(&app, &key, &by_name, json!(["customer.created"])).await;
        let app = app.restart_with(|c| c.webhooks_allow_private_networks = false).await;
        for bad in ["http://127.0.0.1:9/x", "http://localhost/x", "http://169.254.169.254/latest/meta-data",
                    "http://10.0.0.8/x", "http://[::1]/x", "http://[fd00:ec2::254]/x", "http://[::ffff:192.168.0.1]/x"] {
            let body = json!({"url": bad, "enabledEvents": ["*"]});
            let r = app.send(reqwest::Method::POST, "/webhook-endpoints", Some(&key), Some(body), &[]).await;
            let b = r.expect_error(400, "validation_failed");
            assert!(b["errors"]["url"].is_array(), "{bad}: {b}");
        }
        // ...then refused at every connection once they are not.
        app.create_named("No", "Entry").await;
        let d = wait_for("a failed attempt", async || {
            deliveries(&app, &endpoint).await.into_iter().find(|d| d["attempts"].as_i64() >= Some(1))
        })
        .await;
        assert_eq!(d["status"], "pending", "retried later: {d}");
        assert!(d["lastError"].as_str().unwrap().starts_with("127.0.0.1 is not an address deliveries may reach"), "{d}");
        assert!(d["lastStatusCode"].is_null());
        // A name is checked after it resolves, at the connection.
        let d = wait_for("a failed attempt by name", async || {
            deliveries(&app, &named).await.into_iter().find(|d| d["attempts"].as_i64() >= Some(1))
        })
        .await;
        assert!(d["lastError"].as_str().unwrap().contains("resolves only to addresses deliveries may not reach"), "{d}");
        assert_eq!(rx.calls.load(Ordering::SeqCst), 0, "nothing reached the inside address");
    }

    async fn the_delivery_log_a_test_event_and_a_replay(app: TestApp) {
        let (url, rx) = receiver(always_ok).await;
        let key = admin(&app).await;
        // Subscribed to nothing the test sends: a test event goes to its endpoint anyway.
        let (endpoint, secret) = register(&app, &key, &url, json!(["customer.deleted"])).await;
        let (other, _) = register(&app, &key, &url, json!(["*"])).await;
        let test = format!("/webhook-endpoints/{endpoint}/test");
        let delivery = app.send(reqwest::Method::POST, &test, Some(&key), None, &[]).await.expect(200)["id"]
            .as_str().unwrap().to_owned();
        let one = format!("/webhook-endpoints/{endpoint}/deliveries/{delivery}");
        let d = wait_for("the test delivered", async || {
            let d = app.get(&one).await.expect(200).clone();
            (d["status"] == "delivered").then_some(d)
        })
        .await;
        assert_eq!(d["eventType"], "webhook_endpoint.tested");
        assert!(d["lastLatencyMs"].as_i64().is_some() && d["deliveredOn"].is_string() && d["nextAttemptOn"].is_null());
        let first = got(&rx).await;
        assert_eq!(first.len(), 1, "the other endpoint is not sent another's test");
        assert!(first[0].signed_by(&secret));
        assert_eq!(first[0].json()["type"], "webhook_endpoint.tested");
        // Replay: the same delivery again, same webhook-id.
        let retry = format!("{one}/retry");
        assert_eq!(app.send(reqwest::Method::POST, &retry, Some(&key), None, &[]).await.expect(200)["status"], "pending");
        let again = wait_for("the replay", async || {
            let g = got(&rx).await;
            (g.len() >= 2).then(|| g[1].clone())
        })
        .await;
        assert_eq!(again.id, first[0].id);
        let d = wait_for("the replay recorded", async || {
            let d = app.get(&one).await.expect(200).clone();
            (d["status"] == "delivered" && d["attempts"] == 2).then_some(d)
        }).await;
        assert_eq!(d["lastStatusCode"], 204);
        // The log pages newest first; other endpoints' deliveries are not in it.
        assert!(deliveries(&app, &other).await.iter().all(|d| d["eventType"] != "webhook_endpoint.tested"));
        let page = app.get(&format!("/webhook-endpoints/{endpoint}/deliveries?limit=1")).await.expect(200).clone();
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        let cursor = page["nextCursor"].as_str().unwrap();
        let rest = app.get(&format!("/webhook-endpoints/{endpoint}/deliveries?before={cursor}")).await.expect(200).clone();
        assert_eq!(rest["items"].as_array().unwrap().len(), 0);
        app.get(&format!("/webhook-endpoints/{endpoint}/deliveries?before=nope")).await.expect_error(400, "validation_failed");
        app.get(&format!("/webhook-endpoints/{endpoint}/deliveries/{endpoint}")).await.expect_error(404, "not_found");
    }

    async fn an_endpoint_failing_for_long_is_disabled_and_a_delivery_gives_up(app: TestApp) {
        fn down(_: usize) -> (StatusCode, Duration) {
            (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO)
        }
        let app = app.restart_with(|c| {
            c.webhooks_retry_for_s = 1;
            c.webhooks_disable_after_s = 2;
        }).await;
        let (url, _rx) = receiver(down).await;
        let key = admin(&app).await;
        let (endpoint, _) = register(&app, &key, &url, json!(["customer.created"])).await;
        app.create_named("First", "Down").await;
        let failed = wait_for("the delivery given up", async || {
            deliveries(&app, &endpoint).await.into_iter().find(|d| d["status"] == "failed")
        }).await;
        assert!(failed["attempts"].as_i64().unwrap() >= 2, "{failed}");
        assert_eq!(failed["lastStatusCode"], 503);
        assert_eq!(failed["lastError"], "endpoint answered 503");
        let view = app.get(&format!("/webhook-endpoints/{endpoint}")).await.expect(200).clone();
        assert!(view["failingSince"].is_string(), "{view}");
        // Still failing past the window: the next failure disables it, with an event.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        app.create_named("Second", "Down").await;
        wait_for("the endpoint disabled", async || {
            (app.get(&format!("/webhook-endpoints/{endpoint}")).await.body["status"] == "disabled").then_some(())
        }).await;
        let events = app.feed_showing("/events?type=webhook_endpoint.disabled", 1).await["items"].as_array().unwrap().clone();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["entityId"], endpoint.as_str());
        assert!(events[0]["apiKeyId"].is_null(), "done by the service, not a key");
    }

    async fn endpoints_need_their_scope_and_stay_with_their_merchant(app: TestApp) {
        let (url, _rx) = receiver(always_ok).await;
        let body = json!({"url": url, "enabledEvents": ["*"]});
        app.post("/webhook-endpoints", body.clone()).await.expect_error(403, "insufficient_scope");
        let key = admin(&app).await;
        // Idempotent: a replay is the same endpoint, without its secret.
        let headers = [("idempotency-key", "hook-1")];
        let r1 = app.send(reqwest::Method::POST, "/webhook-endpoints", Some(&key), Some(body.clone()), &headers).await;
        let r2 = app.send(reqwest::Method::POST, "/webhook-endpoints", Some(&key), Some(body.clone()), &headers).await;
        assert_eq!(r1.expect(200)["id"], r2.expect(200)["id"]);
        assert!(r1.body["secret"].is_string() && r2.body["secret"].is_null(), "{}", r2.body);
        assert_eq!(r2.header("idempotent-replayed"), Some("true"));
        let id = r1.body["id"].as_str().unwrap().to_owned();
        // A read key lists them; another merchant sees none of them.
        let list = app.get("/webhook-endpoints").await.expect(200).clone();
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let (_, other) = app.other_merchant().await;
        let r = app.send(reqwest::Method::GET, &format!("/webhook-endpoints/{id}"), Some(&other), None, &[]).await;
        r.expect_error(404, "not_found");
        // Bad bodies are 400s naming the field.
        for (bad, field) in [
            (json!({"url": url, "enabledEvents": []}), "enabledEvents"),
            (json!({"url": url, "enabledEvents": ["customer.exploded"]}), "enabledEvents[0]"),
            (json!({"url": "ftp://x.example/", "enabledEvents": ["*"]}), "url"),
            (json!({"enabledEvents": ["*"]}), "url"),
        ] {
            let r = app.send(reqwest::Method::POST, "/webhook-endpoints", Some(&key), Some(bad), &[]).await;
            assert!(r.expect_error(400, "validation_failed")["errors"][field].is_array(), "{field}: {}", r.body);
        }
        let path = format!("/webhook-endpoints/{id}");
        let r = app.send(reqwest::Method::PUT, &path, Some(&key), Some(json!({"status": "paused"})), &[]).await;
        r.expect_error(400, "validation_failed");
        app.send(reqwest::Method::DELETE, &path, Some(&key), None, &[]).await.expect(200);
        app.get(&path).await.expect_error(404, "not_found");
        let types: Vec<String> = app.get("/events?limit=500").await.body["items"].as_array().unwrap().iter()
            .map(|e| e["type"].as_str().unwrap().to_owned()).collect();
        assert!(types.contains(&"webhook_endpoint.created".into()) && types.contains(&"webhook_endpoint.deleted".into()));
    }
}
