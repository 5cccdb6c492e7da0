//! Hostile clients: expensive searches, stalled streams, slow and idle
//! connections, floods. Each runs alone (see `.config/nextest.toml`): they
//! measure latency, which tests running beside them would disturb.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::both;
use crate::helpers::multiply_customers;

const FIRST: [&str; 10] = ["Ada", "Bob", "Carla", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivan", "Jo"];
const LAST: [&str; 5] = ["Abbott", "Becker", "Cruz", "Diaz", "Eriksen"];

/// The latency under which `pct` per cent of `samples` fall.
fn percentile(samples: &mut [Duration], pct: usize) -> Duration {
    samples.sort();
    samples[(samples.len() * pct / 100).min(samples.len() - 1)]
}

both! {
    async fn healthz_stays_fast_while_the_worst_searches_run(app: TestApp) {
        let mut ids = Vec::new();
        for i in 0..50 {
            let (first, last) = (FIRST[i % FIRST.len()], LAST[i % LAST.len()]);
            ids.push(app.create(json!({"firstName": first, "lastName": last, "email": format!("{first}.{last}.{i}@example.com"),
                "mobilePhoneNumber": format!("+1416555{:04}", i)})).await);
        }
        let app = multiply_customers(app, 4000).await;
        let total = app.get("/customers?pageSize=1").await.expect(200)["total"].as_i64().unwrap();
        assert!(total >= 200_000, "{total}");
        // Shapes no index narrows well: no run of 3 letters or digits, single
        // letters (a prefix of a large share of all names), every customer's
        // email domain, a sort that must read every match.
        let shapes = ["a.b", "%25%25%25", "a%20b%20c%20d%20e%20f%20g%20h%20i%20j", "e.c", "com", "a&orderBy=firstName", "e&asc=true"];
        let stop = Arc::new(AtomicBool::new(false));
        let searches = Arc::new(AtomicU64::new(0));
        let mut clients = Vec::new();
        for n in 0..4 {
            let (stop, searches, client, base, key) =
                (stop.clone(), searches.clone(), reqwest::Client::new(), app.url("/customers"), app.key.clone());
            clients.push(tokio::spawn(async move {
                let mut i = n;
                while !stop.load(Ordering::Relaxed) {
                    let r = client.get(format!("{base}?search={}", shapes[i % shapes.len()])).bearer_auth(&key).send().await.unwrap();
                    let status = r.status().as_u16();
                    assert!([200, 400, 503].contains(&status), "search {}: {status}", shapes[i % shapes.len()]);
                    searches.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let probe = reqwest::Client::new();
        let mut latencies = Vec::new();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            let t = Instant::now();
            let r = probe.get(app.url("/healthz")).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            latencies.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
        let p99 = percentile(&mut latencies, 99);
        eprintln!("healthz p99 {p99:?} over {} probes; {} searches ran", latencies.len(), searches.load(Ordering::Relaxed));
        assert!(p99 < Duration::from_millis(100), "healthz p99 {p99:?} while expensive searches ran");

        // Every read has a time budget: past it, the query is stopped and the client told.
        let mut app = app;
        app.stop().await;
        let mut cfg = app.test_db.config();
        cfg.limits.query_timeout_ms = 20;
        let app = app.start_again(cfg).await;
        let r = app.get("/customers?search=a%20b%20c%20d%20e&orderBy=firstName").await;
        r.expect_error(503, "query_timeout");
        let r = app.get("/customers?search=a%20b%20c%20d%20e").await;
        r.expect_error(503, "query_timeout");
        app.get(&format!("/customers/{}", ids[0])).await.expect(200);
    }
}
