//! Hostile clients: expensive searches, stalled streams, slow and idle
//! connections, floods. Each runs alone (see `.config/nextest.toml`): they
//! measure latency, which tests running beside them would disturb.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both;
use crate::helpers::{TestApp, multiply_customers};

const FIRST: [&str; 10] = ["Ada", "Bob", "Carla", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivan", "Jo"];
const LAST: [&str; 5] = ["Abbott", "Becker", "Cruz", "Diaz", "Eriksen"];

/// The latency under which `pct` per cent of `samples` fall.
fn percentile(samples: &mut [Duration], pct: usize) -> Duration {
    samples.sort();
    samples[(samples.len() * pct / 100).min(samples.len() - 1)]
}

/// Restarts `app` with tight connection limits.
async fn with_tight_limits(mut app: TestApp) -> TestApp {
    app.stop().await;
    let mut cfg = app.test_db.config();
    cfg.limits.header_timeout_ms = 300;
    cfg.limits.idle_timeout_ms = 800;
    cfg.limits.io_timeout_ms = 400;
    cfg.limits.request_timeout_ms = 1500;
    cfg.limits.max_connections = 4;
    app.start_again(cfg).await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap()
}

/// A connection whose receive window stays small (64 KiB; the kernel would grow
/// it to tens of MB on loopback), so that a client not reading soon stalls the
/// server's writes, as across a real network.
async fn connect_narrow(app: &TestApp) -> TcpStream {
    connect_with_receive_buffer(app, 64 * 1024).await
}

async fn connect_with_receive_buffer(app: &TestApp, bytes: u32) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(bytes).unwrap();
    socket.connect(app.base.trim_start_matches("http://").parse().unwrap()).await.unwrap()
}

/// Reads until the server closes the connection (or 5 s pass); what it sent and when it closed.
async fn read_to_close(s: &mut TcpStream) -> (String, Duration) {
    let t = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    (String::from_utf8_lossy(&out).into_owned(), t.elapsed())
}

/// The data of a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n").expect("a chunk size");
        let size = usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 2 + size + 2..];
    }
}

/// Reads one reply's head and its `Content-Length` body.
async fn read_reply(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed before a reply: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

both! {
    async fn slow_and_idle_connections_are_closed(app: TestApp) {
        let app = with_tight_limits(app).await;
        // Headers that never end (slowloris): closed after the header timeout.
        let mut slow = connect(&app).await;
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        let (_, after) = read_to_close(&mut slow).await;
        assert!(after < Duration::from_secs(2), "a connection sending headers slowly stayed open {after:?}");
        // A keep-alive connection with nothing to do: closed after the idle timeout.
        let mut idle = connect(&app).await;
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(read_reply(&mut idle).await.starts_with("HTTP/1.1 200"));
        let (_, after) = read_to_close(&mut idle).await;
        assert!(after >= Duration::from_millis(600) && after < Duration::from_secs(3), "idle connection closed after {after:?}");
        // A body that stops arriving: 408.
        let mut stalled = connect(&app).await;
        let head = format!("POST /pay-api/v1/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"firstName\"", app.key);
        stalled.write_all(head.as_bytes()).await.unwrap();
        let (reply, after) = read_to_close(&mut stalled).await;
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
        assert!(reply.contains("request_body_timeout") && after < Duration::from_secs(3), "{reply} after {after:?}");
        // A body that trickles in (never 400 ms without a byte) past the request's deadline: 503.
        let mut trickle = connect(&app).await;
        let body = br#"{"firstName": "Tric", "lastName": "Kle", "companyName": "A slowly sent body........."}"#;
        let head = format!("POST /pay-api/v1/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", app.key, body.len());
        trickle.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        for b in body.iter() {
            if trickle.write_all(&[*b]).await.is_err() {
                break;
            }
            if started.elapsed() > Duration::from_secs(3) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (reply, _) = read_to_close(&mut trickle).await;
        assert!(reply.starts_with("HTTP/1.1 503") && reply.contains("request_timeout"), "{reply}");
        assert_eq!(app.get("/customers?search=tric").await.body["total"], 0, "the timed-out create did not happen");
    }

    async fn a_full_house_of_slow_clients_does_not_keep_others_out(app: TestApp) {
        let app = with_tight_limits(app).await;
        // As many connections as the limit, each sending headers slowly.
        let mut hogs = Vec::new();
        for _ in 0..4 {
            let mut s = connect(&app).await;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            hogs.push(s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A well-behaved client waits at most until the slow ones are shed.
        let t = Instant::now();
        let r = app.get("/healthz").await;
        assert_eq!(r.status, 200);
        assert!(t.elapsed() < Duration::from_secs(3), "served after {:?}", t.elapsed());
        for mut h in hogs {
            let (_, after) = read_to_close(&mut h).await;
            assert!(after < Duration::from_secs(2));
        }
    }
}

both! {
    async fn a_stalled_export_holds_nothing_others_need(app: TestApp) {
        for i in 0..30 {
            app.create(json!({"firstName": format!("Ex{i}"), "lastName": "Porter", "email": format!("ex{i}@example.com"),
                "companyName": "A company name long enough to make lines of a realistic length"})).await;
        }
        let mut app = multiply_customers(app, 1000).await;
        app.stop().await;
        let mut cfg = app.test_db.config();
        cfg.limits.io_timeout_ms = 2000;
        let app = app.start_again(cfg).await;
        // Clients that ask for an export and stop reading it.
        let mut stalled = Vec::new();
        let mut statuses = Vec::new();
        for _ in 0..8 {
            let mut s = connect_narrow(&app).await;
            let head = format!("GET /pay-api/v1/customers/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", app.key);
            s.write_all(head.as_bytes()).await.unwrap();
            let mut first = [0u8; 12];
            s.read_exact(&mut first).await.unwrap();
            statuses.push(String::from_utf8_lossy(&first[9..12]).into_owned());
            stalled.push(s);
        }
        assert_eq!(statuses.iter().filter(|s| *s == "200").count(), 1, "one export per merchant at a time: {statuses:?}");
        assert!(statuses.iter().all(|s| s == "200" || s == "429"), "{statuses:?}");
        // Everyone else is served meanwhile.
        for i in 0..5 {
            let t = Instant::now();
            let id = app.create(json!({"firstName": format!("During{i}"), "lastName": "Stall"})).await;
            app.get(&format!("/customers/{id}")).await.expect(200);
            assert_eq!(app.get("/readyz").await.status, 200);
            assert!(t.elapsed() < Duration::from_secs(1), "a request waited {:?} beside a stalled export", t.elapsed());
        }
        // The stalled export is cut off once its client has not read for the I/O timeout:
        // what it then finds is a part of the export, never the end of a complete one.
        tokio::time::sleep(Duration::from_millis(3000)).await;
        let mut cut = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stalled[statuses.iter().position(|s| s == "200").unwrap()].read_to_end(&mut cut)).await;
        assert!(read.is_ok(), "the stalled export's connection was still open");
        assert!(!cut.ends_with(b"0\r\n\r\n"), "a cut export ended like a complete one");
        // ...and the next export streams every customer.
        let r = app.client.get(app.url("/customers/export")).bearer_auth(&app.key).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let text = r.text().await.unwrap();
        let total = app.get("/customers?pageSize=1").await.expect(200)["total"].as_u64().unwrap();
        assert_eq!(text.lines().count() as u64, total);
        assert!(!text.contains("\"error\""));

        // An export that runs past its time limit ends with an error line.
        let mut app = app;
        app.stop().await;
        let mut cfg = app.test_db.config();
        cfg.limits.export_timeout_s = 1;
        let app = app.start_again(cfg).await;
        let mut slow = connect_narrow(&app).await;
        let head = format!("GET /pay-api/v1/customers/export HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n", app.key);
        slow.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        let started = Instant::now();
        // Slowly for two seconds, then all the rest.
        while started.elapsed() < Duration::from_secs(2) {
            match tokio::time::timeout(Duration::from_secs(5), slow.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut got)).await;
        let text = String::from_utf8_lossy(&got);
        let last = text.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
        assert!(last.starts_with("{\"error\":\"The export ran longer than 1 s"), "the export of {} bytes ended with {last}", got.len());
    }
}

both! {
    async fn request_rates_are_limited_per_key_and_address(app: TestApp) {
        let mut app = app;
        app.stop().await;
        let mut cfg = app.test_db.config();
        cfg.limits.rate_limit_per_key = 5;
        cfg.limits.rate_limit_per_address = 20;
        cfg.limits.auth_failures_per_minute = 60;
        let app = app.start_again(cfg).await;
        // A key: bursts of twice its rate, then 429 with when to retry.
        let mut statuses = Vec::new();
        for _ in 0..14 {
            statuses.push(app.get("/customers?pageSize=1").await);
        }
        let limited = statuses.iter().find(|r| r.status == 429).expect("the key was never limited");
        limited.expect_error(429, "rate_limited");
        assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
        assert!(statuses.iter().take(10).all(|r| r.status == 200));
        // Another key of the same merchant has its own allowance.
        let (_, other) = app.key_with(&clientele::auth::Scope::DEFAULT).await;
        app.send(reqwest::Method::GET, "/customers", Some(&other), None, &[]).await.expect(200);
        // Unknown keys from one address: 401 ten times, then 429 without a lookup.
        let mut codes = Vec::new();
        for i in 0..12 {
            let r = app.send(reqwest::Method::GET, "/customers", Some(&format!("ck_wrong{i}")), None, &[]).await;
            codes.push(r.status);
        }
        assert_eq!(&codes[..10], &[401; 10]);
        let r = app.send(reqwest::Method::GET, "/customers", Some("ck_wrong"), None, &[]).await;
        r.expect_error(429, "too_many_failed_authentications");
        assert!(r.header("retry-after").is_some());
        // Another address is not held to this one's failures (127.0.0.2 is loopback too).
        let elsewhere = reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
        let r = elsewhere.get(app.url("/customers")).bearer_auth("ck_wrong").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        // And an address's own rate: past its burst (40), 429 whatever the key; five
        // keys in turn stay under their own bursts (10 each).
        let mut keys = Vec::new();
        for _ in 0..5 {
            keys.push(app.key_with(&clientele::auth::Scope::DEFAULT).await.1);
        }
        let mut seen = Vec::new();
        for i in 0..45 {
            let r = elsewhere.get(app.url("/customers?pageSize=1")).bearer_auth(&keys[i % 5]).send().await.unwrap();
            seen.push(r.status().as_u16());
        }
        let first = seen.iter().position(|s| *s == 429).expect("the address was never limited");
        assert!(first >= 38, "limited after {first} requests: {seen:?}");
    }
}

/// Sends `bodies` to `path` eight at a time; the statuses.
async fn post_all(app: &TestApp, method: reqwest::Method, paths: Vec<(String, serde_json::Value)>) -> Vec<u16> {
    use futures_util::StreamExt;
    futures_util::stream::iter(paths)
        .map(|(path, body)| {
            let method = method.clone();
            async move { app.send(method, &path, Some(&app.key), Some(body), &[]).await.status }
        })
        .buffered(8)
        .collect()
        .await
}

both! {
    async fn every_collection_a_client_grows_is_bounded(app: TestApp) {
        use reqwest::Method;
        let c = app.create_named("Many", "Things").await;
        let pans: Vec<String> = (0..101).map(|i| crate::vault::luhn(&format!("411111{:09}", i))).collect();
        let cards = pans.iter().map(|pan| (format!("/customers/{c}/payment-methods/cards"), json!({"pan": pan, "expirationMonth": 12, "expirationYear": 2035}))).collect();
        let statuses = post_all(&app, Method::POST, cards).await;
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 100, "{statuses:?}");
        let extra = json!({"pan": crate::vault::luhn("422222000000000"), "expirationMonth": 12, "expirationYear": 2035});
        app.post(&format!("/customers/{c}/payment-methods/cards"), extra).await.expect_error(409, "too_many_payment_methods");
        let links = (0..50).map(|i| (format!("/customers/{c}/providers"), json!({"providerConfigId": format!("cfg-{i}"), "provider": "p"}))).collect();
        assert!(post_all(&app, Method::POST, links).await.iter().all(|s| *s == 200));
        app.post(&format!("/customers/{c}/providers"), json!({"providerConfigId": "one-more", "provider": "p"})).await.expect_error(409, "too_many_provider_links");
        let account = json!({"accountType": "consumer", "creditLimit": 100, "accountInterestRate": 0.1, "riskRating": "L"});
        let accounts = (0..20).map(|_| (format!("/customers/{c}/credit-accounts"), account.clone())).collect();
        assert!(post_all(&app, Method::POST, accounts).await.iter().all(|s| *s == 200));
        app.post(&format!("/customers/{c}/credit-accounts"), account).await.expect_error(409, "too_many_credit_accounts");
        let declarations = (0..200).map(|i| (format!("/custom-parameters/p{i}"), json!({"type": "string"}))).collect();
        assert!(post_all(&app, Method::PUT, declarations).await.iter().all(|s| *s == 200));
        app.put("/custom-parameters/p200", json!({"type": "string"})).await.expect_error(409, "too_many_custom_parameters");
        app.put("/custom-parameters/p7", json!({"type": "string", "description": "changed"})).await.expect(200);
        let plan = json!({"planName": "P", "offerCategory": "equal_billing", "apr": 0.1, "terms": [{"term": 3}]});
        let plans = (1..=100).map(|i| (format!("/financing-plans/{i}"), plan.clone())).collect();
        assert!(post_all(&app, Method::PUT, plans).await.iter().all(|s| *s == 200));
        app.put("/financing-plans/101", plan.clone()).await.expect_error(409, "too_many_financing_plans");
        app.put("/financing-plans/50", plan).await.expect(200);
        // The customer, with all of it, still reads in one piece.
        let v = app.get(&format!("/customers/{c}")).await.expect(200).clone();
        assert_eq!(v["cards"].as_array().unwrap().len(), 100);
    }
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

both! {
    async fn an_import_sent_whole_before_its_reply_is_read_is_answered(app: TestApp) {
        // As Python's `requests` or Java's `HttpURLConnection` do: the whole body
        // first, then the reply. Result lines outgrow every socket buffer long
        // before the upload ends, so the server must keep reading regardless.
        const LINES: usize = 200_000;
        // Every third line fails five ways: long result lines that cost the
        // database nothing, so the results (about 30 MB) dwarf every buffer.
        let failing = |i: usize| i % 3 == 2;
        let mut body = String::with_capacity(LINES * 100);
        for i in 0..LINES {
            if failing(i) {
                body.push_str(&format!("{{\"firstName\":\"\",\"lastName\":\"\",\"email\":\"not an email {i}\",\"mobilePhoneNumber\":\"12\",\"dateOfBirth\":\"soon\"}}\n"));
            } else {
                body.push_str(&format!("{{\"firstName\":\"Whole{i}\",\"lastName\":\"Upload\",\"externalReference\":\"up-{i}\"}}\n"));
            }
        }
        let failed_lines = (0..LINES).filter(|&i| failing(i)).count();
        // A receive buffer far smaller than the results (the kernel doubles it to
        // 8 MiB; the server's send buffer holds 4 MiB more), but not a tiny one:
        // on loopback (64 KiB segments) a client that sends while a small receive
        // buffer is full has the kernel drop segments both ways and back off for
        // tens of seconds, which no server can help.
        let mut s = connect_with_receive_buffer(&app, 4 << 20).await;
        let head = format!(
            "POST /pay-api/v1/customers/import HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            app.key,
            body.len()
        );
        let (t, mut written) = (Instant::now(), 0);
        let sent = tokio::time::timeout(Duration::from_secs(200), async {
            s.write_all(head.as_bytes()).await?;
            for chunk in body.as_bytes().chunks(64 << 10) {
                s.write_all(chunk).await?;
                written += chunk.len();
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        let at = format!("{written} of {} bytes", body.len());
        assert!(matches!(sent, Ok(Ok(()))), "the upload stalled at {at} after {:?}: {sent:?}", t.elapsed());
        let mut reply = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut reply)).await;
        assert!(read.is_ok(), "the reply never ended");
        let head_end = reply.windows(4).position(|w| w == b"\r\n\r\n").expect("a reply head") + 4;
        let head = String::from_utf8_lossy(&reply[..head_end]);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let text = String::from_utf8(dechunk(&reply[head_end..])).unwrap();
        let summary = text.lines().find(|l| l.starts_with("{\"summary\"")).expect("a summary line");
        let summary: serde_json::Value = serde_json::from_str(summary).unwrap();
        assert_eq!(
            summary["summary"],
            json!({"lines": LINES, "created": LINES - failed_lines, "updated": 0, "failed": failed_lines}),
        );
        assert!(text.len() > 24 << 20, "the results ({} bytes) must outgrow every buffer", text.len());
        let created = text.lines().filter(|l| l.contains("\"result\":\"created\"")).count();
        let failed = text.lines().filter(|l| l.contains("\"errors\":")).count();
        assert_eq!((created, failed), (LINES - failed_lines, failed_lines), "one result per line");
        let total = app.get("/customers?pageSize=1").await.expect(200)["total"].as_u64().unwrap();
        assert_eq!(total as usize, LINES - failed_lines);
    }
}
