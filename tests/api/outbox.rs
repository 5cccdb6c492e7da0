//! Delivering the outbox to a local SMTP sink and a local SMS webhook.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use crate::helpers::{TestApp, TestDb};

/// A minimal SMTP server that accepts every message and keeps its text.
async fn smtp_sink() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let mail = Arc::new(Mutex::new(Vec::new()));
    let sink = mail.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut in_data = false;
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            sink.lock().await.push(std::mem::take(&mut data));
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            data.push_str(&line);
                            data.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            w.write_all(b"221 bye\r\n").await.unwrap();
                            break;
                        }
                        _ => b"250 OK\r\n",
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (url, mail)
}

#[derive(Clone)]
struct Hook {
    calls: Arc<AtomicUsize>,
    fail_first: usize,
    got: Arc<Mutex<Vec<Value>>>,
}

async fn receive(State(h): State<Hook>, Json(v): Json<Value>) -> StatusCode {
    let n = h.calls.fetch_add(1, Ordering::SeqCst);
    if n < h.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    h.got.lock().await.push(v);
    StatusCode::NO_CONTENT
}

/// An SMS webhook receiver that answers 500 to its first `fail_first` calls.
async fn webhook(fail_first: usize) -> (String, Hook) {
    let hook = Hook { calls: Arc::new(AtomicUsize::new(0)), fail_first, got: Arc::new(Mutex::new(Vec::new())) };
    let app = axum::Router::new().route("/sms", axum::routing::post(receive)).with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hook)
}

async fn account(app: &TestApp) -> String {
    let c = app
        .create(json!({"firstName": "Out", "lastName": "Box", "email": "out.box@example.com", "mobilePhoneNumber": "+14165552222"}))
        .await;
    let body = json!({"accountType": "consumer", "creditLimit": 500, "accountInterestRate": 0.2999, "riskRating": "M"});
    app.post(&format!("/customers/{c}/credit-accounts"), body).await.expect(200)["accountNumber"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).unwrap().to_owned()
}

async fn statuses(url: &str) -> Vec<(i64, i64)> {
    // (status as 1 sent / 2 pending / 3 unsent / 4 failed, attempts)
    crate::helpers::int_pairs(url, "SELECT CAST(CASE status WHEN 'sent' THEN 1 WHEN 'pending' THEN 2 WHEN 'unsent' THEN 3 ELSE 4 END AS BIGINT), attempts FROM notification_outbox ORDER BY created_at").await
}

crate::both! {
    async fn sms_is_retried_until_the_webhook_takes_it(app: TestApp) {
        let (url, hook) = webhook(2).await;
        let app = app.restart_with(|c| c.sms_webhook_url = Some(url.clone())).await;
        let n = account(&app).await;
        app.post(&format!("/credit-accounts/{n}/verify"), json!({"format": "sms"})).await.expect(200);
        let got = wait_for("the SMS", async || hook.got.lock().await.first().cloned()).await;
        assert_eq!(got["to"], "+14165552222");
        assert_eq!(hook.calls.load(Ordering::SeqCst), 3, "two failures, then delivered");
        // The webhook has the message before the outbox hears its answer: wait for the mark.
        wait_for("the outbox to mark it sent", async || (statuses(&app.test_db.url).await == vec![(1, 2)]).then_some(()))
            .await;
        let code = code_in(got["message"].as_str().unwrap());
        app.post(&format!("/credit-accounts/{n}/verify/confirm"), json!({"code": code})).await.expect(200);
    }

    async fn email_goes_to_the_smtp_server(app: TestApp) {
        let (url, mail) = smtp_sink().await;
        let app = app.restart_with(|c| c.smtp_url = Some(url.clone())).await;
        let n = account(&app).await;
        app.post(&format!("/credit-accounts/{n}/verify"), json!({"format": "email"})).await.expect(200);
        let text = wait_for("the email", async || mail.lock().await.first().cloned()).await;
        assert!(text.contains("To: out.box@example.com"), "{text}");
        assert!(text.contains("Subject: Your verification code"), "{text}");
        let code = code_in(text.split("\n\n").nth(1).unwrap_or(&text));
        app.post(&format!("/credit-accounts/{n}/verify/confirm"), json!({"code": code})).await.expect(200);
        wait_for("the outbox to record it", async || (statuses(&app.test_db.url).await == vec![(1, 0)]).then_some(())).await;
    }

    async fn without_a_channel_the_outbox_is_the_record(app: TestApp) {
        let n = account(&app).await;
        app.post(&format!("/credit-accounts/{n}/verify"), json!({"format": "email"})).await.expect(200);
        wait_for("the message to be marked", async || (statuses(&app.test_db.url).await == vec![(3, 0)]).then_some(())).await;
    }

    async fn pending_messages_survive_a_restart(app: TestApp) {
        // The webhook is down: the message waits, counted, in the database.
        let app = app.restart_with(|c| c.sms_webhook_url = Some("http://127.0.0.1:9/sms".into())).await;
        let n = account(&app).await;
        app.post(&format!("/credit-accounts/{n}/verify"), json!({"format": "sms"})).await.expect(200);
        wait_for("a failed attempt", async || {
            let s = statuses(&app.test_db.url).await;
            (s.len() == 1 && s[0].0 == 2 && s[0].1 >= 1).then_some(())
        })
        .await;
        let (url, hook) = webhook(0).await;
        let app = app.restart_with(|c| c.sms_webhook_url = Some(url.clone())).await;
        let got = wait_for("the SMS after the restart", async || hook.got.lock().await.first().cloned()).await;
        assert_eq!(got["to"], "+14165552222");
        wait_for("sent", async || (statuses(&app.test_db.url).await[0].0 == 1).then_some(())).await;
    }
}

impl TestApp {
    /// Stops this server and starts another on the same database with `change`d configuration.
    pub async fn restart_with(mut self, change: impl FnOnce(&mut clientele::config::Config)) -> TestApp {
        self.stop().await;
        let mut cfg = self.test_db.config();
        change(&mut cfg);
        self.start_again(cfg).await
    }
}

#[allow(dead_code)]
fn _uses(_: TestDb) {}
