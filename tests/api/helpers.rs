//! The test harness: a real server on port 0 with a fresh database per test,
//! SQLite always and PostgreSQL when `TEST_POSTGRES_URL` is set (CI always sets it).

use std::time::Duration;

use clientele::App;
use clientele::auth::Scope;
use clientele::config::{Config, LogFormat};
use clientele::store::{Backend, Db, DbOptions, Tenant};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Runs each listed test once per backend: `mod name { fn sqlite(); fn postgres(); }`.
#[macro_export]
macro_rules! both {
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($app: $crate::helpers::TestApp) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run($crate::helpers::TestApp::spawn(clientele::store::Backend::Sqlite).await.expect("sqlite app")).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::helpers::TestApp::spawn(clientele::store::Backend::Postgres).await {
                        run(app).await
                    }
                }
            }
        )*
    };
}

/// The admin URL of the PostgreSQL server tests create their databases on.
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set TEST_POSTGRES_URL: the PostgreSQL half may not be skipped"
            );
            eprintln!("TEST_POSTGRES_URL is not set: skipping the PostgreSQL variant");
            None
        }
    }
}

/// `postgres://u@h:5432/admin` → `postgres://u@h:5432/{db}`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

/// A throwaway PostgreSQL database, dropped when the test ends.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> PgDatabase {
        let name = format!("clientele_test_{}", Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url).await.expect("connect to TEST_POSTGRES_URL");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
        let _ = conn.close().await;
        PgDatabase { admin_url: admin_url.to_owned(), url: with_database(admin_url, &name), name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime; a thread with its own runtime does the async work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// The fixed master key of every test server.
pub const TEST_MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The test servers' vault (its keyed digests; data keys are not loaded).
#[allow(dead_code)]
pub fn test_vault() -> clientele::crypto::Vault {
    clientele::crypto::Vault::new(clientele::crypto::MasterKey::from_base64(TEST_MASTER_KEY).unwrap())
}

/// A database of either backend for a test (a temp folder for SQLite).
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                Some(TestDb { url: format!("sqlite://{}", dir.path().join("clientele.db").display()), dir, _pg: None })
            }
            Backend::Postgres => {
                let pg = PgDatabase::create(&postgres_url()?).await;
                Some(TestDb { url: pg.url.clone(), dir, _pg: Some(pg) })
            }
        }
    }

    pub fn config(&self) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: self.url.clone(),
            data_dir: self.dir.path().to_path_buf(),
            master_key: Some(TEST_MASTER_KEY.parse().unwrap()),
            log_format: LogFormat::Text,
            db_max_connections: 8,
            smtp_url: None,
            smtp_from: "Clientele <no-reply@localhost>".into(),
            sms_webhook_url: None,
            outbox_poll_ms: 50,
            outbox_retry_ms: 50,
            // The tests' receivers listen on loopback.
            webhooks_allow_private_networks: true,
            webhooks_timeout_ms: 2000,
            webhooks_poll_ms: 50,
            webhooks_retry_ms: 50,
            webhooks_retry_for_s: 259_200,
            webhooks_disable_after_s: 432_000,
            metrics_listen: None,
            metrics_token: None,
            // Tests stop servers often; none has a load balancer to tell.
            limits: clientele::config::Limits { shutdown_drain_ms: 0, ..clientele::config::Limits::default() },
        }
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        &self.body
    }

    /// Asserts an error of the contract's shape with this status and code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Value {
        self.expect(status);
        let b = &self.body;
        assert_eq!(b["errorCode"], code, "body: {b}");
        assert_eq!(b["statusCode"], status, "body: {b}");
        assert_eq!(b["source"], "clientele");
        assert!(b["errors"].is_object() && b["details"].is_string() && b["exceptionType"].is_string(), "body: {b}");
        assert!(b.get("entityId").is_some());
        assert_eq!(Some(b["correlationId"].as_str().unwrap()), self.header("x-correlation-id"));
        b
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub key: String,
    pub key_id: Uuid,
    pub merchant: Uuid,
    pub db: Db,
    pub test_db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        let test_db = TestDb::new(backend).await?;
        let app = App::start(&test_db.config()).await.expect("app starts");
        let db = app.state.db().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(listener, async {
            let _ = rx.await;
        }));
        let tenant = db.create_merchant("Test merchant").await.unwrap();
        let (key_id, key) = issue_key(&db, tenant, &Scope::DEFAULT).await;
        Some(TestApp {
            base,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            key,
            key_id,
            merchant: tenant.id(),
            db,
            test_db,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// Starts a server on this app's database with `cfg` (the old one must be stopped).
    pub async fn start_again(mut self, cfg: Config) -> TestApp {
        let app = App::start(&cfg).await.expect("app starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        self.db = app.state.db().clone();
        self.server = Some(tokio::spawn(app.serve(listener, async {
            let _ = rx.await;
        })));
        self.shutdown = Some(tx);
        self
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/')
            && !path.starts_with("/pay-api")
            && !path.starts_with("/healthz")
            && !path.starts_with("/readyz")
            && !path.starts_with("/metrics")
            && !path.starts_with("/openapi")
            && !path.starts_with("/docs")
        {
            format!("{}/pay-api/v1{path}", self.base)
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// A second merchant with its own key.
    pub async fn other_merchant(&self) -> (Uuid, String) {
        let tenant = self.db.create_merchant("Other merchant").await.unwrap();
        let (_, key) = issue_key(&self.db, tenant, &Scope::DEFAULT).await;
        (tenant.id(), key)
    }

    /// A key of this merchant with exactly these scopes.
    pub async fn key_with(&self, scopes: &[Scope]) -> (Uuid, String) {
        issue_key(&self.db, tenant_of(self.merchant, &self.db).await, scopes).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                req = req.header("content-type", "application/json");
            }
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        assert_ne!(status, 500, "no input may produce a 500: {body}");
        Resp { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, Some(&self.key), None, &[]).await
    }

    /// The event feed read at `path` once it shows at least `n` events. On
    /// PostgreSQL the newest events may show a moment late (a neighbour
    /// database's transaction ending between a read's snapshot and its look at
    /// the running ones holds them back), never out of order or not at all.
    pub async fn feed_showing(&self, path: &str, n: usize) -> Value {
        for _ in 0..200 {
            let b = self.get(path).await.expect(200).clone();
            if b["items"].as_array().unwrap().len() >= n {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{path} never showed {n} events");
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(&self.key), Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Some(&self.key), Some(body), &[]).await
    }

    /// A JSON Merge Patch (`application/merge-patch+json`).
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        let headers = [("content-type", "application/merge-patch+json")];
        self.send(Method::PATCH, path, Some(&self.key), Some(body), &headers).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, Some(&self.key), None, &[]).await
    }

    /// Creates a customer and returns its id.
    pub async fn create(&self, body: Value) -> String {
        let r = self.post("/customers", body).await;
        r.expect(200)["id"].as_str().expect("id").to_owned()
    }

    pub async fn create_named(&self, first: &str, last: &str) -> String {
        self.create(json!({"firstName": first, "lastName": last})).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn tenant_of(id: Uuid, db: &Db) -> Tenant {
    db.find_merchant(id).await.unwrap().expect("merchant exists")
}

pub async fn issue_key(db: &Db, tenant: Tenant, scopes: &[Scope]) -> (Uuid, String) {
    let key = clientele::auth::issue_key(db, clientele::store::Actor::system(tenant), scopes).await.unwrap();
    (key.id, key.secret)
}

/// Opens another handle on a test database (as a second API node would).
#[allow(dead_code)]
pub async fn open_db(url: &str) -> Db {
    Db::connect(url, &DbOptions::default()).await.unwrap()
}

/// The Luhn check.
pub fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A full, valid customer body.
pub fn full_customer() -> Value {
    json!({
        "firstName": "Zoë",
        "lastName": "O'Brien",
        "companyName": "Acme Jewellers",
        "email": "Zoe.OBrien@Example.com",
        "mobilePhoneNumber": "(416) 555-0199",
        "isMobileNumberSmsNotificationsEnabled": true,
        "useBillingAsShippingAddress": false,
        "billingAddress": {"line1": "55 University Ave", "line2": "Suite 100", "city": "Toronto", "state": "on", "postalCode": "m5j2h7", "country": "ca"},
        "shippingAddress": {"line1": "1 Main St", "city": "Buffalo", "state": "NY", "postalCode": "14201", "country": "US"},
        "dateOfBirth": "1974-05-15",
        "preferredLanguage": "en-CA",
        "paymentMethodsCards": [],
        "paymentMethodsAchAccounts": null
    })
}

/// Runs a query returning two integer columns straight against a test database
/// (to inspect what the service stored, bypassing it).
pub async fn int_pairs(url: &str, sql: &str) -> Vec<(i64, i64)> {
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    }
}

/// One value straight from a test database.
pub async fn scalar<T>(url: &str, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + Send
        + Unpin,
{
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

/// One BLOB/BYTEA value straight from a test database.
pub async fn blob(url: &str, sql: &str) -> Vec<u8> {
    scalar(url, sql).await
}

/// One TEXT value straight from a test database.
#[allow(dead_code)]
pub async fn text(url: &str, sql: &str) -> String {
    scalar(url, sql).await
}

/// Runs one statement straight against a test database (to set up what a test needs).
#[allow(dead_code)]
pub async fn exec(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

/// Grows a merchant's customers `times`-fold by copying its rows in SQL (fresh
/// ids, no external reference), then restarts the server, which on SQLite
/// rebuilds the search index from the rows (as after an upgrade): a large
/// merchant in seconds rather than the minutes an import takes in a debug build.
#[allow(dead_code)]
pub async fn multiply_customers(mut app: TestApp, times: u32) -> TestApp {
    let url = app.test_db.url.clone();
    app.stop().await;
    let sqlite = url.starts_with("sqlite:");
    let (columns_sql, fresh_id, series) = if sqlite {
        (
            "SELECT name FROM pragma_table_info('customers') WHERE name <> 'seq'",
            "randomblob(16)",
            format!(
                "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {times}) SELECT i FROM n)"
            ),
        )
    } else {
        (
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position",
            "gen_random_uuid()",
            format!("generate_series(1, {times})"),
        )
    };
    let copy = |cols: Vec<String>| {
        let values: Vec<String> = cols
            .iter()
            .map(|c| match c.as_str() {
                "id" => fresh_id.to_owned(),
                "external_reference" => "NULL".to_owned(),
                other => format!("c.{other}"),
            })
            .collect();
        format!(
            "INSERT INTO customers ({}) SELECT {} FROM customers c CROSS JOIN {series}",
            cols.join(", "),
            values.join(", ")
        )
    };
    if sqlite {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let cols = sqlx::query_scalar(columns_sql).fetch_all(&mut c).await.unwrap();
        sqlx::query(&copy(cols)).execute(&mut c).await.unwrap();
        // The search index is built from the rows at the next start.
        sqlx::query("INSERT INTO search_index_builds (name) VALUES ('customer_search_fts')")
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        let cols = sqlx::query_scalar(columns_sql).fetch_all(&mut c).await.unwrap();
        sqlx::query(&copy(cols)).execute(&mut c).await.unwrap();
        sqlx::query("ANALYZE customers").execute(&mut c).await.unwrap();
    }
    let cfg = app.test_db.config();
    app.start_again(cfg).await
}
