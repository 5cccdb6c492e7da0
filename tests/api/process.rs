//! The real binary as an operator runs it: first start, the CLI next to a
//! running server, logs, SIGTERM, and `kill -9` in the middle of writes.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::helpers::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_clientele");

/// A `clientele serve` child process with JSON logs collected.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    logs: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

pub(crate) fn command(db: &TestDb, data_dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CLIENTELE_DATABASE_URL", &db.url)
        .env("CLIENTELE_DATA_DIR", data_dir)
        .env("CLIENTELE_LISTEN", "127.0.0.1:0")
        .env("CLIENTELE_LOG_FORMAT", "json")
        .kill_on_drop(true);
    c
}

async fn start(db: &TestDb, data_dir: &Path) -> Server {
    start_with(db, data_dir, &[]).await
}

/// [`start`] with more environment variables.
pub(crate) async fn start_with(db: &TestDb, data_dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut c = command(db, data_dir);
    c.envs(env.iter().copied());
    let mut child = c.arg("serve").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let mut tx = Some(tx);
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let sink = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = err_lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "serving"
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(v["listen"].as_str().unwrap_or_default().to_owned());
            }
            sink.lock().await.push(line);
        }
    });
    let mut out_lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let out_sink = stdout.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = out_lines.next_line().await {
            out_sink.lock().await.push(line);
        }
    });
    let listen =
        tokio::time::timeout(Duration::from_secs(60), rx).await.expect("server starts").expect("listen address");
    Server { child, base: format!("http://{listen}/pay-api/v1"), logs, stdout }
}

/// Starts a server on a fresh database and returns it with the merchant id and
/// API key it printed on first start.
async fn boot(db: &TestDb, data: &Path) -> (Server, String, String) {
    boot_with(db, data, &[]).await
}

/// [`boot`] with more environment variables.
pub(crate) async fn boot_with(db: &TestDb, data: &Path, env: &[(&str, &str)]) -> (Server, String, String) {
    let server = start_with(db, data, env).await;
    for _ in 0..200 {
        let first = server.stdout.lock().await.first().cloned();
        if let Some(line) = first {
            let v: Value = serde_json::from_str(&line).unwrap();
            let (merchant, key) =
                (v["merchantId"].as_str().unwrap().to_owned(), v["apiKey"].as_str().unwrap().to_owned());
            return (server, merchant, key);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the first start printed no API key");
}

pub(crate) async fn cli(db: &TestDb, data_dir: &Path, args: &[&str]) -> (bool, Value, String) {
    let out = command(db, data_dir).args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.success(), v, String::from_utf8_lossy(&out.stderr).to_string())
}

/// A command printing one JSON value per line: (success, the values, stdout, stderr).
async fn cli_lines(db: &TestDb, data_dir: &Path, args: &[&str]) -> (bool, Vec<Value>, String, String) {
    let out = command(db, data_dir).args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out.status.success(), lines, stdout, String::from_utf8_lossy(&out.stderr).to_string())
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits after SIGTERM").unwrap()
}

macro_rules! both_processes {
    ($($name:ident),*) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::helpers::TestDb::new(clientele::store::Backend::Sqlite).await.unwrap()).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = crate::helpers::TestDb::new(clientele::store::Backend::Postgres).await {
                        super::$name(db).await
                    }
                }
            }
        )*
    };
}

both_processes!(
    first_start_bootstraps_a_merchant,
    cli_administers_a_running_server,
    logs_are_structured_and_free_of_pii,
    acknowledged_creates_survive_kill_9,
    no_file_holds_a_clear_number,
    keys_rotate_while_the_server_runs,
    cli_imports_and_exports,
    backups_are_taken_live_and_restored
);

/// A backup taken while 4 writers add customers with cards holds every one
/// acknowledged before it began; restored (never over a running server), the
/// service serves them and reveals every card with the same master key.
async fn backups_are_taken_live_and_restored(db: TestDb) {
    let data = db.dir.path().join("data");
    let copy = db.dir.path().join("backup.db");
    let copy_arg = copy.to_str().unwrap();
    if db.url.starts_with("postgres") {
        let (ok, _, err) = cli(&db, &data, &["backup", "--to", copy_arg]).await;
        assert!(!ok && err.contains("pg_dump") && err.contains("master key"), "{err}");
        assert!(!copy.exists());
        return;
    }
    let (mut server, merchant, key) = boot(&db, &data).await;
    let (ok, reveal, err) =
        cli(&db, &data, &["api-key", "create", "--merchant", &merchant, "--scope", "payment_methods:reveal"]).await;
    assert!(ok, "{err}");
    let reveal = reveal["apiKey"].as_str().unwrap().to_owned();
    let acked = Arc::new(Mutex::new(Vec::<(std::time::Instant, String, String)>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (base, key, acked, stop) = (server.base.clone(), key.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let http = client();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                // A valid Visa number per customer: 40000, the writer, the count, a check digit.
                let body = format!("40000{w}{i:09}");
                let pan = (0..10).map(|d| format!("{body}{d}")).find(|p| crate::helpers::luhn_valid(p)).unwrap();
                let req = json!({"firstName": format!("B{w}"), "lastName": format!("N{i}"),
                    "paymentMethodsCards": [{"pan": pan, "expirationMonth": 12, "expirationYear": 2035}]});
                let r = http.post(format!("{base}/customers")).bearer_auth(&key).json(&req).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
                acked.lock().await.push((std::time::Instant::now(), id, pan));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let began = std::time::Instant::now();
    let (ok, report, err) = cli(&db, &data, &["backup", "--to", copy_arg]).await;
    assert!(ok, "{err}");
    assert!(err.contains("master key"), "the reminder: {err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    let before: Vec<_> = acked.iter().filter(|(at, _, _)| *at < began).cloned().collect();
    assert!(
        before.len() > 20 && acked.len() > before.len(),
        "writes before ({}) and during/after ({})",
        before.len(),
        acked.len()
    );
    assert!(report["customers"].as_i64().unwrap() >= before.len() as i64, "{report}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&copy), 0o600, "the backup is private");
        let live = clientele::store::backup::sqlite_file(&db.url).unwrap().unwrap();
        assert_eq!(mode(&live), 0o600, "the database is private");
        let wal = std::path::PathBuf::from(format!("{}-wal", live.display()));
        assert_eq!(mode(&wal), 0o600, "and so is its WAL");
        assert_eq!(mode(&data), 0o700, "the data folder is private");
    }
    let (ok, _, err) = cli(&db, &data, &["backup", "--to", copy_arg]).await;
    assert!(!ok && err.contains("must not exist"), "{err}");
    // Not over a running server.
    let (ok, _, err) = cli(&db, &data, &["restore", "--from", copy_arg]).await;
    assert!(!ok && err.contains("stop it"), "{err}");
    assert!(sigterm(&mut server.child).await.success());
    let (ok, restored, err) = cli(&db, &data, &["restore", "--from", copy_arg]).await;
    assert!(ok, "{err}");
    assert!(Path::new(restored["replaced"].as_str().unwrap()).exists(), "the replaced database is kept: {restored}");
    let mut again = start(&db, &data).await;
    let http = client();
    let total: Value = http
        .get(format!("{}/customers?pageSize=1", again.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(total["total"], report["customers"], "the database as the backup took it");
    for (_, id, pan) in &before {
        let c: Value = http
            .get(format!("{}/customers/{id}", again.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let card = c["cards"][0]["id"].as_str().unwrap_or_else(|| panic!("customer {id} lost its card: {c}"));
        let r = http
            .post(format!("{}/customers/{id}/payment-methods/{card}/reveal", again.base))
            .bearer_auth(&reveal)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["pan"], pan.as_str());
    }
    eprintln!("backup: {} customers acknowledged before it began, all restored with their cards", before.len());
    assert!(sigterm(&mut again.child).await.success());
}

async fn first_start_bootstraps_a_merchant(db: TestDb) {
    let data = db.dir.path().join("data");
    let mut server = start(&db, &data).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let printed = server.stdout.lock().await.clone();
    assert_eq!(printed.len(), 1, "the key is printed once: {printed:?}");
    let boot: Value = serde_json::from_str(&printed[0]).unwrap();
    let key = boot["apiKey"].as_str().unwrap().to_owned();
    assert!(key.len() >= 40);
    let r = client().get(format!("{}/customers", server.base)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let key_file = data.join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(
        server.logs.lock().await.iter().any(|l| l.contains("CLIENTELE_MASTER_KEY is not set")),
        "warns about the generated key"
    );
    assert!(sigterm(&mut server.child).await.success());
    // A second start finds the merchant and prints nothing.
    let mut again = start(&db, &data).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(again.stdout.lock().await.is_empty());
    let r = client().get(format!("{}/customers", again.base)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(sigterm(&mut again.child).await.success());
}

async fn cli_administers_a_running_server(db: TestDb) {
    let data = db.dir.path().join("data");
    let mut server = start(&db, &data).await;
    let (ok, created, err) = cli(&db, &data, &["merchant", "create", "--name", "Acme Jewellers"]).await;
    assert!(ok, "{err}");
    let merchant = created["merchantId"].as_str().unwrap().to_owned();
    let key = created["apiKey"].as_str().unwrap().to_owned();
    let http = client();
    let r = http
        .post(format!("{}/customers", server.base))
        .bearer_auth(&key)
        .json(&json!({"firstName": "A", "lastName": "B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (ok, ro, err) =
        cli(&db, &data, &["api-key", "create", "--merchant", &merchant, "--scope", "customers:read"]).await;
    assert!(ok, "{err}");
    assert_eq!(ro["scopes"], json!(["customers:read"]));
    let ro_key = ro["apiKey"].as_str().unwrap().to_owned();
    let r = http.get(format!("{}/customers", server.base)).bearer_auth(&ro_key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["total"], 1, "same merchant, same data");
    let r = http
        .post(format!("{}/customers", server.base))
        .bearer_auth(&ro_key)
        .json(&json!({"firstName": "A", "lastName": "B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (ok, _, err) = cli(&db, &data, &["api-key", "revoke", ro["keyId"].as_str().unwrap()]).await;
    assert!(ok, "{err}");
    let revoked = std::time::Instant::now();
    loop {
        let r = http.get(format!("{}/customers", server.base)).bearer_auth(&ro_key).send().await.unwrap();
        if r.status() == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < clientele::auth::KEY_CACHE_TTL * 2,
            "revocation takes effect within the key cache's TTL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (ok, _, err) = cli(&db, &data, &["api-key", "revoke", ro["keyId"].as_str().unwrap()]).await;
    assert!(!ok && err.contains("no live API key"));
    // What was made is listed, never a key itself.
    let (ok, merchants, _, err) = cli_lines(&db, &data, &["merchant", "list"]).await;
    assert!(ok, "{err}");
    assert!(
        merchants.iter().any(|m| m["merchantId"] == merchant.as_str() && m["name"] == "Acme Jewellers"),
        "{merchants:?}"
    );
    let (ok, keys, text, err) = cli_lines(&db, &data, &["api-key", "list", "--merchant", &merchant]).await;
    assert!(ok, "{err}");
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0]["keyId"].as_str(), keys[0]["scopes"].clone()),
        (ro["keyId"].as_str(), json!(["customers:read"]))
    );
    assert!(keys[0]["revokedOn"].is_string() && keys[1]["revokedOn"].is_null(), "{keys:?}");
    assert!(keys[0]["lastUsedOn"].is_string() && keys[1]["lastUsedOn"].is_string(), "both were used: {keys:?}");
    assert!(!text.contains("ck_") && !text.contains(&key), "{text}");
    let (ok, endpoints, _, err) = cli_lines(&db, &data, &["webhook", "list", "--merchant", &merchant]).await;
    assert!(ok && endpoints.is_empty(), "{err}");
    let (ok, _, err) = cli(&db, &data, &["api-key", "create", "--merchant", &merchant, "--scope", "everything"]).await;
    assert!(!ok && err.contains("unknown scope"));
    let (ok, _, _) = cli(&db, &data, &["api-key", "create", "--merchant", &uuid::Uuid::now_v7().to_string()]).await;
    assert!(!ok);
    let (ok, settings, err) = cli(
        &db,
        &data,
        &["merchant", "configure", "--merchant", &merchant, "--vcc-bin", "601234", "--allow-merchant-override", "true"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(settings, json!({"merchantId": merchant, "vccBin": "601234", "allowMerchantOverride": true}));
    let (ok, _, err) = cli(&db, &data, &["merchant", "configure", "--merchant", &merchant, "--vcc-bin", "12ab"]).await;
    assert!(!ok && err.contains("6 digits"), "{err}");
    let (ok, shown, _) = cli(
        &db,
        &data,
        &[
            "config",
            "show",
            "--master-key",
            "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=",
            "--sms-webhook-url",
            "https://sms.example/send?token=s3cr3t-t0ken",
            "--metrics-token",
            "m3trics-t0ken",
        ],
    )
    .await;
    assert!(ok);
    assert_eq!(shown["settings"]["master_key"], json!({"value": "***", "from": "--master-key"}));
    assert_eq!(shown["settings"]["metrics_token"]["value"], "***");
    assert_eq!(
        shown["settings"]["sms_webhook_url"],
        json!({"value": "https://sms.example/send?***", "from": "--sms-webhook-url"})
    );
    assert_eq!(shown["settings"]["database_url"]["from"], "CLIENTELE_DATABASE_URL");
    assert_eq!(shown["masterKey"], "--master-key");
    assert!(!shown.to_string().contains("t0ken"), "{shown}");
    assert!(sigterm(&mut server.child).await.success());
}

async fn logs_are_structured_and_free_of_pii(db: TestDb) {
    let data = db.dir.path().join("data");
    let (mut server, _, key) = boot(&db, &data).await;
    let http = client();
    let email = "pii.person@secret-domain.example";
    let r = http
        .post(format!("{}/customers", server.base))
        .bearer_auth(&key)
        .header("X-Correlation-Id", "log-check-1")
        .json(&json!({"firstName": "Privatefirst", "lastName": "Privatelast", "email": email, "mobilePhoneNumber": "+14165550123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/customers?email={email}&search=Privatefirst", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{}/customers", server.base))
        .bearer_auth(&key)
        .json(&json!({"firstName": "", "email": "bad-privatebad"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(sigterm(&mut server.child).await.success());
    // The process has exited; let the reader drain what is left in the pipe.
    for _ in 0..50 {
        if server.logs.lock().await.iter().any(|l| l.contains("\"stopped\"")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = server.logs.lock().await.join("\n");
    for secret in ["secret-domain", "Privatefirst", "Privatelast", "4165550123", "privatebad", &key] {
        assert!(!logs.contains(secret), "logs contain {secret}");
    }
    let lines: Vec<Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(lines.len(), logs.lines().count(), "every line is JSON");
    let req = lines.iter().find(|l| l["correlation_id"] == "log-check-1").expect("request line");
    assert_eq!(req["route"], "/pay-api/v1/customers");
    assert_eq!(req["method"], "POST");
    assert_eq!(req["status"], 200);
    assert!(req["latency_ms"].is_number());
    assert!(lines.iter().any(|l| l["message"] == "stopped"), "shut down cleanly");
}

/// Writers hammer the server; it is killed with SIGKILL mid-stream; every create
/// that was answered 200 must be there after a restart.
async fn acknowledged_creates_survive_kill_9(db: TestDb) {
    let data = db.dir.path().join("data");
    let (mut server, _, key) = boot(&db, &data).await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (base, key, acked) = (server.base.clone(), key.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let http = client();
            for i in 0..100_000 {
                let body = json!({"firstName": format!("W{w}"), "lastName": format!("N{i}")});
                match http.post(format!("{base}/customers")).bearer_auth(&key).json(&body).send().await {
                    Ok(r) if r.status() == 200 => {
                        if let Ok(v) = r.json::<Value>().await {
                            acked.lock().await.push(v["id"].as_str().unwrap().to_owned());
                        }
                    }
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.start_kill().unwrap(); // SIGKILL
    server.child.wait().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    assert!(acked.len() > 50, "the test wrote something: {}", acked.len());
    let mut again = start(&db, &data).await;
    let http = client();
    let mut missing = 0;
    for id in &acked {
        let r = http.get(format!("{}/customers/{id}", again.base)).bearer_auth(&key).send().await.unwrap();
        if r.status() != 200 {
            missing += 1;
        }
    }
    assert_eq!(missing, 0, "{missing} of {} acknowledged creates were lost", acked.len());
    let r: Value = http
        .get(format!("{}/customers?pageSize=1", again.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["total"].as_i64().unwrap() >= acked.len() as i64);
    eprintln!("kill -9: {} acknowledged creates, all present after restart", acked.len());
    assert!(sigterm(&mut again.child).await.success());
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Cards, bank accounts and tax ids go in; then every byte the service wrote
/// (database, WAL, key file, logs) is searched for them in clear.
async fn no_file_holds_a_clear_number(db: TestDb) {
    let data = db.dir.path().join("data");
    let (mut server, merchant, key) = boot(&db, &data).await;
    let (ok, reveal, _) =
        cli(&db, &data, &["api-key", "create", "--merchant", &merchant, "--scope", "payment_methods:reveal"]).await;
    assert!(ok);
    let reveal_key = reveal["apiKey"].as_str().unwrap().to_owned();
    let http = client();
    let pans = ["4111111111111111", "5555555555554444", "378282246310005", "6011000990139424", "3566002020360505"];
    let accounts = ["000123456789", "98765432101234"];
    let tax_ids = ["987654321", "123456780"];
    let custom_secret = "NID-7777-3333-1111";
    let provider_secrets = ["ak_live_9f8e7d6c5b4a", "sk_live_1a2b3c4d5e6f7a8b", "hmac_0f1e2d3c4b5a"];
    let others: Vec<&str> = std::iter::once(custom_secret).chain(provider_secrets).collect();
    let body = json!({
        "firstName": "Vault", "lastName": "Scan",
        "paymentMethodsCards": [{"pan": "4111 1111 1111 1111", "expirationMonth": 12, "expirationYear": 2035, "securityCode": "737"}],
        "paymentMethodsAchAccounts": [{"name": "A", "accountNumber": accounts[0], "routingNumber": "021000021", "accountType": 1, "accountHolderType": 2, "taxId": "987-65-4321"}]
    });
    let r = http
        .post(format!("{}/customers", server.base))
        .bearer_auth(&key)
        .header("Idempotency-Key", "scan-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let customer = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    for pan in &pans[1..] {
        let code = if pan.starts_with('3') && pan.len() == 15 { "7373" } else { "737" };
        let r = http
            .post(format!("{}/customers/{customer}/payment-methods/cards", server.base))
            .bearer_auth(&key)
            .header("Idempotency-Key", format!("card-{pan}"))
            .json(&json!({"pan": pan, "expirationMonth": 1, "expirationYear": 2036, "securityCode": code}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http.post(format!("{}/customers/{customer}/payment-methods/ach", server.base)).bearer_auth(&key)
        .json(&json!({"name": "B", "accountNumber": accounts[1], "routingNumber": "011000015", "accountType": 2, "accountHolderType": 1, "taxId": tax_ids[1]}))
        .send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Seed 002's secrets: a secret custom parameter and provider credentials.
    let r = http
        .put(format!("{}/custom-parameters/nationalId", server.base))
        .bearer_auth(&key)
        .json(&json!({"type": "string", "secret": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .put(format!("{}/customers/{customer}", server.base))
        .bearer_auth(&key)
        .json(&json!({"firstName": "Vault", "lastName": "Scan", "nationalId": custom_secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http.post(format!("{}/customers/{customer}/providers", server.base)).bearer_auth(&key)
        .json(&json!({"apiKey": provider_secrets[0], "providerConfigId": "c", "provider": "p",
            "paymentProvider": {"key": provider_secrets[1], "hmacKey": provider_secrets[2], "availableCurrencies": ["CAD"]}}))
        .send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Failed attempts must not leave the number behind either (errors, logs).
    let r = http
        .post(format!("{}/customers/{customer}/payment-methods/cards", server.base))
        .bearer_auth(&key)
        .json(&json!({"pan": "4111111111111111", "expirationMonth": 13, "expirationYear": 2036}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains("4111111111111111"));
    let list: Value = http
        .get(format!("{}/customers/{customer}/payment-methods", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for item in list["items"].as_array().unwrap() {
        let r = http
            .post(format!(
                "{}/customers/{customer}/payment-methods/{}/reveal",
                server.base,
                item["id"].as_str().unwrap()
            ))
            .bearer_auth(&reveal_key)
            .header("Idempotency-Key", format!("reveal-{}", item["id"]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let detail: Value = http
        .get(format!("{}/customers/{customer}", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let providers: Value = http
        .get(format!("{}/customers/{customer}/providers", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["nationalId"], "****1111");
    let text = format!("{list}{detail}{providers}");
    for secret in pans.iter().chain(&accounts).chain(&tax_ids).chain(&others) {
        assert!(!text.contains(secret), "a list response shows {secret}");
    }
    // Read the files while the server still runs (the WAL is not yet checkpointed), then after it stops.
    for phase in ["running", "stopped"] {
        if phase == "stopped" {
            assert!(sigterm(&mut server.child).await.success());
        }
        let mut blobs: Vec<(String, Vec<u8>)> = files_under(db.dir.path())
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        blobs.push(("server log".into(), server.logs.lock().await.join("\n").into_bytes()));
        if db.url.starts_with("sqlite") {
            assert!(blobs.iter().any(|(n, _)| n.ends_with("clientele.db")), "the database file was scanned");
        }
        for (name, bytes) in &blobs {
            for secret in pans.iter().chain(&accounts).chain(&tax_ids).chain(&others) {
                assert!(!contains(bytes, secret.as_bytes()), "{name} ({phase}) holds {secret} in clear");
            }
        }
    }
    if db.url.starts_with("postgres") {
        // PostgreSQL's files are the server's; read the rows themselves instead.
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        for table in [
            "payment_methods",
            "customers",
            "events",
            "idempotency_keys",
            "api_keys",
            "customer_custom_values",
            "customer_providers",
        ] {
            let rows: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT CAST(t AS TEXT) FROM {table} t")).fetch_all(&mut conn).await.unwrap();
            let dump = rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n");
            for secret in pans.iter().chain(&accounts).chain(&tax_ids).chain(&others) {
                assert!(!dump.contains(secret), "{table} holds {secret} in clear");
            }
        }
    }
}

async fn keys_rotate_while_the_server_runs(db: TestDb) {
    let data = db.dir.path().join("data");
    let (mut server, merchant, key) = boot(&db, &data).await;
    let (_, reveal, _) =
        cli(&db, &data, &["api-key", "create", "--merchant", &merchant, "--scope", "payment_methods:reveal"]).await;
    let reveal_key = reveal["apiKey"].as_str().unwrap().to_owned();
    let http = client();
    let r: Value = http.post(format!("{}/customers", server.base)).bearer_auth(&key)
        .json(&json!({"firstName": "R", "lastName": "K", "paymentMethodsCards": [{"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035}]}))
        .send().await.unwrap().json().await.unwrap();
    let customer = r["id"].as_str().unwrap().to_owned();
    let (ok, report, err) = cli(&db, &data, &["keys", "rotate"]).await;
    assert!(ok, "{err}");
    assert_eq!(report, json!({"version": 2, "reencrypted": 1}));
    let r = http
        .post(format!("{}/customers/{customer}/payment-methods/cards", server.base))
        .bearer_auth(&key)
        .json(&json!({"pan": "5555555555554444", "expirationMonth": 12, "expirationYear": 2035}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the server picks up the new key version");
    let list: Value = http
        .get(format!("{}/customers/{customer}/payment-methods?asc=true", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut pans = Vec::new();
    for item in list["items"].as_array().unwrap() {
        let r: Value = http
            .post(format!(
                "{}/customers/{customer}/payment-methods/{}/reveal",
                server.base,
                item["id"].as_str().unwrap()
            ))
            .bearer_auth(&reveal_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pans.push(r["pan"].as_str().unwrap().to_owned());
    }
    assert_eq!(pans, ["4111111111111111", "5555555555554444"]);
    assert_eq!(
        crate::helpers::int_pairs(&db.url, "SELECT key_version, COUNT(*) FROM payment_methods GROUP BY key_version")
            .await,
        vec![(2, 2)]
    );
    // A different master key cannot open this database's key ring.
    let (ok, _, err) =
        cli(&db, &data, &["keys", "rotate", "--master-key", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="]).await;
    assert!(!ok && err.contains("master key"), "{err}");
    assert!(sigterm(&mut server.child).await.success());
}

async fn cli_imports_and_exports(db: TestDb) {
    let data = db.dir.path().join("data");
    let (mut server, merchant, key) = boot(&db, &data).await;
    let file = db.dir.path().join("in.ndjson");
    let lines = [
        json!({"firstName": "Ann", "lastName": "One", "externalReference": "a-1"}).to_string(),
        "oops".to_owned(),
        json!({"firstName": "Ben", "lastName": "Two", "externalReference": "a-2"}).to_string(),
        json!({"firstName": "Cy", "lastName": "Three"}).to_string(),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let path = file.display().to_string();
    let (ok, summary, err) = cli(&db, &data, &["import", &path, "--merchant", &merchant]).await;
    assert!(!ok, "a failed line fails the command");
    assert_eq!(summary, json!({"lines": 4, "created": 3, "updated": 0, "failed": 1}), "the summary is still printed");
    assert!(err.contains("\"line\":2"), "the bad line is reported: {err}");
    let (ok, summary, _) = cli(&db, &data, &["import", &path, "--merchant", &merchant]).await;
    assert!(!ok);
    assert_eq!(
        (summary["created"].clone(), summary["updated"].clone()),
        (json!(1), json!(2)),
        "references upsert; the line without one is created again"
    );
    let out = db.dir.path().join("out.ndjson");
    let (ok, _, err) = cli(&db, &data, &["export", "--merchant", &merchant, "-o", &out.display().to_string()]).await;
    assert!(ok, "{err}");
    let exported: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported.len(), 4);
    let r: Value = client()
        .get(format!("{}/customers?pageSize=1", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["total"], 4, "the running server sees the imported customers");
    // What export writes, import takes back: every line updates its customer.
    let (ok, summary, err) = cli(&db, &data, &["import", &out.display().to_string(), "--merchant", &merchant]).await;
    assert!(ok, "{err}");
    assert_eq!(summary, json!({"lines": 4, "created": 0, "updated": 4, "failed": 0}));
    // A reader that stops early ends the export quietly.
    let piped = Command::new("bash")
        .arg("-c")
        .arg(format!("'{BIN}' export --merchant {merchant} | true; exit ${{PIPESTATUS[0]}}"))
        .env("CLIENTELE_DATABASE_URL", &db.url)
        .env("CLIENTELE_DATA_DIR", &data)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success() && !err.contains("rror"), "{:?}: {err}", piped.status);
    let (ok, _, _) = cli(&db, &data, &["import", "/nonexistent.ndjson", "--merchant", &merchant]).await;
    assert!(!ok);
    assert!(sigterm(&mut server.child).await.success());
}
