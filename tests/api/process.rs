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
struct Server {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

fn command(db: &TestDb, data_dir: &Path) -> Command {
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
    let mut child = command(db, data_dir).arg("serve").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
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

async fn cli(db: &TestDb, data_dir: &Path, args: &[&str]) -> (bool, Value, String) {
    let out = command(db, data_dir).args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.success(), v, String::from_utf8_lossy(&out.stderr).to_string())
}

fn client() -> reqwest::Client {
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
    acknowledged_creates_survive_kill_9
);

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
    let r = http.get(format!("{}/customers", server.base)).bearer_auth(&ro_key).send().await.unwrap();
    assert_eq!(r.status(), 401, "revocation takes effect at once");
    let (ok, _, err) = cli(&db, &data, &["api-key", "revoke", ro["keyId"].as_str().unwrap()]).await;
    assert!(!ok && err.contains("no live API key"));
    let (ok, _, err) = cli(&db, &data, &["api-key", "create", "--merchant", &merchant, "--scope", "everything"]).await;
    assert!(!ok && err.contains("unknown scope"));
    let (ok, _, _) = cli(&db, &data, &["api-key", "create", "--merchant", &uuid::Uuid::now_v7().to_string()]).await;
    assert!(!ok);
    let (ok, shown, _) =
        cli(&db, &data, &["config", "show", "--master-key", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="]).await;
    assert!(ok);
    assert_eq!(shown["masterKey"], "***");
    assert!(sigterm(&mut server.child).await.success());
}

async fn logs_are_structured_and_free_of_pii(db: TestDb) {
    let data = db.dir.path().join("data");
    let mut server = start(&db, &data).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let key =
        serde_json::from_str::<Value>(&server.stdout.lock().await[0]).unwrap()["apiKey"].as_str().unwrap().to_owned();
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
    let mut server = start(&db, &data).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let key =
        serde_json::from_str::<Value>(&server.stdout.lock().await[0]).unwrap()["apiKey"].as_str().unwrap().to_owned();
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
