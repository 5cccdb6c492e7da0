//! Several nodes on one PostgreSQL database, as an operator runs them behind a
//! load balancer: two `clientele serve` processes, requests spread over both.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{TEST_MASTER_KEY, TestDb};
use crate::process::{Server, boot_with, cli, client, start_with};

/// What both nodes run with: one master key, webhooks to a loopback receiver
/// with short timeouts, no rate limits (the test is one address).
const ENV: [(&str, &str); 8] = [
    ("CLIENTELE_MASTER_KEY", TEST_MASTER_KEY),
    ("CLIENTELE_WEBHOOKS_ALLOW_PRIVATE_NETWORKS", "true"),
    ("CLIENTELE_WEBHOOKS_TIMEOUT_MS", "1000"),
    ("CLIENTELE_WEBHOOKS_POLL_MS", "100"),
    ("CLIENTELE_WEBHOOKS_RETRY_MS", "200"),
    ("CLIENTELE_RATE_LIMIT_PER_KEY", "0"),
    ("CLIENTELE_RATE_LIMIT_PER_ADDRESS", "0"),
    ("CLIENTELE_AUTH_FAILURES_PER_MINUTE", "0"),
];

struct Node<'a> {
    server: &'a Server,
    key: &'a str,
    http: reqwest::Client,
}

impl Node<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.server.base)).bearer_auth(self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body), &[]).await
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None, &[]).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// A receiver that takes its time (so deliveries are in flight when a node
/// dies) and keeps every `webhook-id` it got.
async fn slow_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = ids.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap| {
            let sink = sink.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                sink.lock().await.push(id);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_database() {
    let Some(db) = TestDb::new(clientele::store::Backend::Postgres).await else { return };
    let data = db.dir.path().join("data");
    let (mut a, merchant, _) = boot_with(&db, &data, &ENV).await;
    let b = start_with(&db, &data, &ENV).await;
    let scopes = ["customers:read", "customers:write", "credit:write", "webhooks:write"];
    let mut args = vec!["api-key", "create", "--merchant", &merchant];
    for s in &scopes {
        args.extend(["--scope", s]);
    }
    let (ok, created, err) = cli(&db, &data, &args).await;
    assert!(ok, "{err}");
    let key = created["apiKey"].as_str().unwrap().to_owned();
    let (na, nb) = (Node { server: &a, key: &key, http: client() }, Node { server: &b, key: &key, http: client() });

    // An Idempotency-Key claimed on one node replays on the other.
    let body = json!({"firstName": "Idem", "lastName": "Potent"});
    let headers = [("idempotency-key", "two-nodes-1")];
    let (s1, r1) = na.send(reqwest::Method::POST, "/customers", Some(body.clone()), &headers).await;
    let (s2, r2) = nb.send(reqwest::Method::POST, "/customers", Some(body), &headers).await;
    assert_eq!((s1, s2), (200, 200), "{r1} {r2}");
    assert_eq!(r1["id"], r2["id"], "one customer, replayed across nodes");

    // A verification lockout reached on one node holds on the other.
    let customer = r1["id"].as_str().unwrap().to_owned();
    let account = json!({"accountType": "consumer", "creditLimit": 500, "accountInterestRate": 0.2, "riskRating": "L",
        "securityQuestions": [{"id": 4, "text": "Childhood friend?", "answer": "Jimmy Page"}]});
    let (s, opened) = na.post(&format!("/customers/{customer}/credit-accounts"), account).await;
    assert_eq!(s, 200, "{opened}");
    let verify = format!("/credit-accounts/{}/verify", opened["accountNumber"].as_str().unwrap());
    let wrong = json!({"format": "security_question", "securityQid": 4, "securityAnswer": "Robert Plant"});
    for i in 0..4 {
        let node = if i % 2 == 0 { &na } else { &nb };
        assert_eq!(node.post(&verify, wrong.clone()).await.0, 400);
    }
    let (s, locked) = nb.post(&verify, wrong.clone()).await;
    assert_eq!((s, locked["errorCode"].as_str()), (429, Some("verification_locked")), "{locked}");
    let right = json!({"format": "security_question", "securityQid": 4, "securityAnswer": "Jimmy Page"});
    assert_eq!(na.post(&verify, right).await.0, 429, "locked on the other node too");

    // A declaration made on one node applies on the other within the time a node
    // trusts the declarations it read (on the first node, at once).
    let plain = json!({"firstName": "Plain", "lastName": "Node"});
    assert_eq!(nb.post("/customers", plain.clone()).await.0, 200, "node B has read the declarations");
    let required = json!({"type": "string", "required": true});
    let (s, d) = na.send(reqwest::Method::PUT, "/custom-parameters/tier", Some(required), &[]).await;
    assert_eq!(s, 200, "{d}");
    let changed = std::time::Instant::now();
    assert_eq!(na.post("/customers", plain.clone()).await.0, 400, "at once where it was declared");
    // How long until node B answers a plain create with `status`.
    let applies = async |since: std::time::Instant, status: u16| {
        while nb.post("/customers", json!({"firstName": "Plain", "lastName": "Node"})).await.0 != status {
            assert!(since.elapsed() < Duration::from_secs(5), "node B never answered {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        since.elapsed()
    };
    let took = applies(changed, 400).await;
    let ttl = clientele::store::custom::DECLARATIONS_TTL;
    assert!(took <= ttl + Duration::from_millis(500), "the other node took {took:?}");
    let (s, d) = na.send(reqwest::Method::DELETE, "/custom-parameters/tier", None, &[]).await;
    assert_eq!(s, 200, "{d}");
    let changed = std::time::Instant::now();
    assert_eq!(na.post("/customers", plain).await.0, 200, "retired at once where it was retired");
    let took = applies(changed, 200).await;
    assert!(took <= ttl + Duration::from_millis(500), "the other node took {took:?}");

    // A webhook endpoint for everything, a reader following the feed, and
    // writers on both nodes at once.
    let (url, received) = slow_receiver().await;
    let (s, endpoint) = na.post("/webhook-endpoints", json!({"url": url, "enabledEvents": ["*"]})).await;
    assert_eq!(s, 200, "{endpoint}");
    let start =
        na.get(&format!("/events?type=webhook_endpoint.created&entityId={}", endpoint["id"].as_str().unwrap())).await;
    let first = start["items"][0]["id"].as_str().unwrap().to_owned();
    let write = |node: &Node<'_>, n: usize, tag: &'static str| {
        let base = node.server.base.clone();
        let (http, key) = (node.http.clone(), node.key.to_owned());
        async move {
            let mut ids = Vec::new();
            for i in 0..n {
                let res = http
                    .post(format!("{base}/customers"))
                    .bearer_auth(&key)
                    .json(&json!({"firstName": format!("{tag}{i}"), "lastName": "Node"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                ids.push(res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
            }
            ids
        }
    };
    let reader = async {
        // Follows the cursor from the endpoint's creation, alternating nodes,
        // until it has seen every create of both writers.
        let (mut cursor, mut seen, mut creates) = (first.clone(), Vec::<Value>::new(), 0);
        for round in 0..2000 {
            let node = if round % 2 == 0 { &na } else { &nb };
            let page = node.get(&format!("/events?after={cursor}&limit=50")).await;
            for e in page["items"].as_array().unwrap() {
                creates += usize::from(e["type"] == "customer.created");
                seen.push(e.clone());
            }
            if let Some(c) = page["items"].as_array().unwrap().last() {
                cursor = c["id"].as_str().unwrap().to_owned();
            }
            if creates == 300 {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the reader saw {creates} of 300 creates");
    };
    let (from_a, from_b, seen) = tokio::join!(write(&na, 150, "A"), write(&nb, 150, "B"), reader);
    let created: HashSet<String> = from_a.into_iter().chain(from_b).collect();
    let read: Vec<String> = seen
        .iter()
        .filter(|e| e["type"] == "customer.created")
        .map(|e| e["entityId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(read.len(), 300, "each create once");
    assert_eq!(read.iter().cloned().collect::<HashSet<_>>(), created, "every create, none twice, none missed");

    // Deliveries are under way on both nodes; one dies with them in flight.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_kill = received.lock().await.len();
    a.child.start_kill().unwrap(); // SIGKILL
    a.child.wait().await.unwrap();
    assert!(before_kill < seen.len(), "the kill came mid-delivery ({before_kill} of {} received)", seen.len());
    // The survivor delivers every event the reader saw, some perhaps twice
    // (at least once), none lost: the dead node's leases run out and are taken.
    let wanted: HashSet<String> = seen.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    for _ in 0..600 {
        let got: HashSet<String> = received.lock().await.iter().cloned().collect();
        if wanted.is_subset(&got) {
            eprintln!("two nodes: {} events delivered, {} before the kill", wanted.len(), before_kill);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got: HashSet<String> = received.lock().await.iter().cloned().collect();
    panic!("{} of {} events never delivered", wanted.difference(&got).count(), wanted.len());
}
