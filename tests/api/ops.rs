//! Operations: health, readiness, metrics, the OpenAPI document and the docs UI.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

both! {
    async fn health_and_readiness(app: TestApp) {
        let h = app.send(Method::GET, "/healthz", None, None, &[]).await;
        assert_eq!(h.expect(200), &json!({"status": "ok"}));
        let r = app.send(Method::GET, "/readyz", None, None, &[]).await;
        assert_eq!(r.expect(200), &json!({"status": "ok"}));
        assert!(r.header("x-correlation-id").is_some());
    }

    async fn metrics_count_requests_by_route_and_status(app: TestApp) {
        app.get("/customers").await.expect(200);
        app.get("/customers/not-a-uuid").await.expect(400);
        let r = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(text.contains(r#"http_requests_total{method="GET",route="/pay-api/v1/customers",status="200"}"#), "{text}");
        assert!(text.contains(r#"route="/pay-api/v1/customers/{customerId}",status="400""#));
        assert!(text.contains("http_request_duration_seconds_bucket"));
        assert!(!text.contains("not-a-uuid"), "routes are templates, never raw paths");
    }

    async fn docs_are_served_from_the_binary(app: TestApp) {
        let r = app.client.get(app.url("/docs/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains("swagger-ui"), "{html}");
        assert!(!html.contains("cdn.") && !html.contains("unpkg"), "no CDN");
        let js = app.client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
        assert_eq!(js.status(), 200);
        assert!(js.text().await.unwrap().len() > 100_000);
    }

    async fn graceful_stop_closes_cleanly(app: TestApp) {
        let mut app = app;
        let id = app.create_named("Before", "Stop").await;
        app.stop().await;
        assert!(app.client.get(app.url("/healthz")).send().await.is_err(), "no longer accepting");
        let db = crate::helpers::open_db(&app.test_db.url).await;
        let tenant = crate::helpers::tenant_of(app.merchant, &db).await;
        let found = db.scoped(tenant).get_customer(uuid::Uuid::parse_str(&id).unwrap()).await.unwrap();
        assert!(found.is_some());
    }
}

async fn openapi_doc() -> Value {
    let app = TestApp::spawn(clientele::store::Backend::Sqlite).await.unwrap();
    let r = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn openapi_document_snapshot() {
    let doc = openapi_doc().await;
    assert_eq!(doc["openapi"], "3.1.0");
    insta::assert_json_snapshot!("openapi", doc);
}

#[tokio::test]
async fn openapi_lists_every_route_with_errors_and_security() {
    let doc = openapi_doc().await;
    let paths = doc["paths"].as_object().unwrap();
    let listed: BTreeSet<String> = paths
        .iter()
        .flat_map(|(p, item)| item.as_object().unwrap().keys().map(move |m| format!("{} {p}", m.to_uppercase())))
        .collect();
    let expected: BTreeSet<String> = [
        "POST /pay-api/v1/customers",
        "POST /pay-api/v1/customers/import",
        "GET /pay-api/v1/customers/export",
        "GET /pay-api/v1/customers",
        "GET /pay-api/v1/customers/{customerId}",
        "PUT /pay-api/v1/customers/{customerId}",
        "PATCH /pay-api/v1/customers/{customerId}",
        "DELETE /pay-api/v1/customers/{customerId}",
        "PUT /pay-api/v1/customers/{customerId}/status",
        "GET /pay-api/v1/events",
        "POST /pay-api/v1/customers/{customerId}/payment-methods/cards",
        "POST /pay-api/v1/customers/{customerId}/payment-methods/ach",
        "GET /pay-api/v1/customers/{customerId}/payment-methods",
        "GET /pay-api/v1/customers/{customerId}/payment-methods/{paymentMethodId}",
        "PUT /pay-api/v1/customers/{customerId}/payment-methods/{paymentMethodId}",
        "PATCH /pay-api/v1/customers/{customerId}/payment-methods/{paymentMethodId}",
        "DELETE /pay-api/v1/customers/{customerId}/payment-methods/{paymentMethodId}",
        "PUT /pay-api/v1/customers/{customerId}/payment-methods/{paymentMethodId}/make-default",
        "PUT /pay-api/v1/customers/{customerId}/payment-methods/{paymentMethodId}/status",
        "POST /pay-api/v1/customers/{customerId}/payment-methods/{paymentMethodId}/reveal",
        "POST /pay-api/v1/credit-accounts/{accountNumber}/reveal",
        "GET /pay-api/v1/custom-parameters",
        "PUT /pay-api/v1/custom-parameters/{name}",
        "DELETE /pay-api/v1/custom-parameters/{name}",
        "POST /pay-api/v1/customers/{customerId}/providers",
        "GET /pay-api/v1/customers/{customerId}/providers",
        "GET /pay-api/v1/customers/{customerId}/providers/{providerId}",
        "PUT /pay-api/v1/customers/{customerId}/providers/{providerId}",
        "DELETE /pay-api/v1/customers/{customerId}/providers/{providerId}",
        "POST /pay-api/v1/identity-documents/decode",
        "GET /pay-api/v1/financing-plans",
        "GET /pay-api/v1/financing-plans/{planId}",
        "PUT /pay-api/v1/financing-plans/{planId}",
        "DELETE /pay-api/v1/financing-plans/{planId}",
        "POST /pay-api/v1/customers/{customerId}/credit-accounts",
        "GET /pay-api/v1/credit-accounts/search",
        "GET /pay-api/v1/credit-accounts/lookup",
        "POST /pay-api/v1/credit-accounts/{accountNumber}/close",
        "POST /pay-api/v1/credit-accounts/{accountNumber}/calculate-interest",
        "POST /pay-api/v1/customers/{customerId}/transactions",
        "POST /pay-api/v1/credit-accounts/{accountNumber}/verify",
        "POST /pay-api/v1/credit-accounts/{accountNumber}/verify/confirm",
        "POST /pay-api/v1/webhook-endpoints",
        "GET /pay-api/v1/webhook-endpoints",
        "GET /pay-api/v1/webhook-endpoints/{endpointId}",
        "PUT /pay-api/v1/webhook-endpoints/{endpointId}",
        "DELETE /pay-api/v1/webhook-endpoints/{endpointId}",
        "POST /pay-api/v1/webhook-endpoints/{endpointId}/rotate-secret",
        "POST /pay-api/v1/webhook-endpoints/{endpointId}/test",
        "GET /pay-api/v1/webhook-endpoints/{endpointId}/deliveries",
        "GET /pay-api/v1/webhook-endpoints/{endpointId}/deliveries/{deliveryId}",
        "POST /pay-api/v1/webhook-endpoints/{endpointId}/deliveries/{deliveryId}/retry",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(listed, expected);
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !path.starts_with("/pay-api") {
                continue;
            }
            let responses = op["responses"].as_object().unwrap();
            if !responses.contains_key("200") && responses.contains_key("405") {
                continue; // a route that exists only to refuse (editing a provider link)
            }
            for code in ["200", "400", "401", "403", "404", "500"] {
                assert!(responses.contains_key(code), "{method} {path} documents {code}");
            }
            assert_eq!(
                responses["400"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody"
            );
            assert!(op["security"].is_array(), "{method} {path} names its scope");
            if method != "get" {
                for code in ["409", "412", "413", "415"] {
                    assert!(responses.contains_key(code), "{method} {path} documents {code}");
                }
            }
        }
    }
}

/// The documented request bodies and query parameters are exactly what the parsers accept.
#[tokio::test]
async fn openapi_matches_the_parsers() {
    let doc = openapi_doc().await;
    let schemas = &doc["components"]["schemas"];
    let props = |name: &str| -> BTreeSet<String> {
        let s = &schemas[name];
        let mut out: BTreeSet<String> =
            s["properties"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        for part in s["allOf"].as_array().into_iter().flatten() {
            let target = part
                .get("$ref")
                .and_then(Value::as_str)
                .map(|r| &schemas[r.rsplit('/').next().unwrap()])
                .unwrap_or(part);
            // Conditions (`if`/`then`) add no property of their own.
            out.extend(target["properties"].as_object().into_iter().flat_map(|m| m.keys().cloned()));
        }
        out
    };
    let accepted = |body: Value| -> BTreeSet<String> {
        // A key the parser does not know comes back as unknown_field; every documented key must not.
        body.as_object().unwrap().keys().cloned().collect()
    };
    let app = TestApp::spawn(clientele::store::Backend::Sqlite).await.unwrap();
    for (schema, path, method) in
        [("CustomerCreateRequest", "/customers", Method::POST), ("CustomerUpdateRequest", "/customers/ID", Method::PUT)]
    {
        let id = app.create_named("A", "B").await;
        let documented = props(schema);
        assert!(documented.contains("firstName") && documented.contains("billingAddress"), "{schema}: {documented:?}");
        let mut body = serde_json::Map::new();
        for k in &documented {
            body.insert(k.clone(), Value::Null);
        }
        let r =
            app.send(method, &path.replace("ID", &id), Some(&app.key), Some(Value::Object(body.clone())), &[]).await;
        let unknown: Vec<_> = r.body["errors"]
            .as_object()
            .map(|e| e.keys().filter(|k| e[*k][0].as_str().unwrap().contains("not a known")).cloned().collect())
            .unwrap_or_default();
        assert!(unknown.is_empty(), "{schema} documents fields the parser rejects: {unknown:?}");
        assert_eq!(accepted(Value::Object(body)), documented);
    }
    let address = props("AddressRequest");
    assert_eq!(address, clientele::domain::address::ADDRESS_FIELDS.iter().map(|s| s.to_string()).collect());
    let params: BTreeSet<String> = doc["paths"]["/pay-api/v1/customers"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    let parser: BTreeSet<String> = clientele::routes::customers::SEARCH_PARAMS.iter().map(|s| s.to_string()).collect();
    assert_eq!(params, parser);
    let params: BTreeSet<String> =
        doc["paths"]["/pay-api/v1/customers/{customerId}/payment-methods"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .filter(|n| n != "customerId")
            .collect();
    let parser: BTreeSet<String> =
        clientele::routes::payment_methods::LIST_PARAMS.iter().map(|s| s.to_string()).collect();
    assert_eq!(params, parser);
    // Every closed set the schema lists is what the parser reads.
    let listed = |name: &str| -> Vec<String> {
        schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} lists its values"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let check = |name: &str, parses: &dyn Fn(&str) -> bool, expected: &[&str]| {
        let values = listed(name);
        assert_eq!(values, expected, "{name}");
        assert!(values.iter().all(|v| parses(v)), "{name}: the parser refuses one of {values:?}");
    };
    check(
        "CustomerStatus",
        &|v| clientele::domain::customer::CustomerStatus::parse(v).is_some(),
        &["active", "inactive"],
    );
    check("AccountType", &|v| clientele::domain::credit::AccountType::parse(v).is_some(), &["consumer", "business"]);
    check(
        "CustomParameterType",
        &|v| clientele::domain::custom::ParamType::parse(v).is_some(),
        &["string", "number", "boolean", "date"],
    );
    check(
        "VerificationFormat",
        &|v| clientele::store::verification::Format::parse(v).is_some(),
        &["sms", "email", "security_question", "merchant_override", "regular_purchase_bypass"],
    );
    let param_values = |path: &str, name: &str| -> Vec<String> {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let param = params.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{path} takes {name}"));
        param["schema"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(param_values("/pay-api/v1/customers", "orderBy"), clientele::store::customers::OrderBy::NAMES);
    assert!(
        param_values("/pay-api/v1/customers", "orderBy")
            .iter()
            .all(|v| clientele::store::customers::OrderBy::parse(v).is_some())
    );
    let kinds = param_values("/pay-api/v1/customers/{customerId}/payment-methods", "type");
    assert_eq!(kinds, ["card", "ach"]);
    assert!(kinds.iter().all(|v| clientele::store::payment_methods::MethodKind::parse(v).is_some()));
    let countries = schemas["AddressRequest"]["properties"]["country"]["enum"].as_array().unwrap();
    assert!(countries.len() > 240 && countries.contains(&json!("CA")) && countries.contains(&json!("US")));
    // Custom parameters are additional properties of the customer.
    assert!(schemas["CustomerView"]["additionalProperties"].is_object());
    assert!(schemas["CustomerUpdateRequest"]["additionalProperties"].is_object());
    // Secrets are write-only in the schema.
    for (schema, field) in [
        ("CardRequest", "pan"),
        ("CardRequest", "securityCode"),
        ("AchRequest", "accountNumber"),
        ("AchRequest", "taxId"),
        ("LinkRequest", "apiKey"),
        ("PaymentProviderRequest", "key"),
        ("PaymentProviderRequest", "hmacKey"),
        ("DecodeRequest", "code"),
        ("SecurityQuestionRequest", "answer"),
        ("VerifyBody", "securityAnswer"),
        ("ConfirmBody", "code"),
    ] {
        assert_eq!(schemas[schema]["properties"][field]["writeOnly"], true, "{schema}.{field}");
    }
}

#[test]
fn migration_folders_have_the_same_versions() {
    let versions = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(versions("sqlite"), versions("postgres"));
    assert!(!versions("sqlite").is_empty());
}

both! {
    async fn not_ready_without_the_schema(app: TestApp) {
        assert_eq!(app.send(Method::GET, "/readyz", None, None, &[]).await.status, 200);
        let url = app.test_db.url.clone();
        if url.starts_with("sqlite") {
            crate::helpers::exec(&url, "DROP TABLE _sqlx_migrations").await;
        } else {
            // The database is still there, emptied: every table gone.
            crate::helpers::exec(&url, "DROP SCHEMA public CASCADE").await;
            crate::helpers::exec(&url, "CREATE SCHEMA public").await;
            app.get("/customers").await.expect_error(503, "unavailable");
        }
        let r = app.send(Method::GET, "/readyz", None, None, &[]).await;
        r.expect_error(503, "unavailable");
        assert!(r.body["details"].as_str().unwrap().contains("schema"), "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_postgresql_database_answers_503() {
    let Some(app) = TestApp::spawn(clientele::store::Backend::Postgres).await else { return };
    let id = app.create_named("Before", "Loss").await;
    let admin = crate::helpers::postgres_url().unwrap();
    let name = app.test_db.url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    crate::helpers::exec(&admin, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
    for path in [format!("/customers/{id}"), "/customers".to_owned()] {
        app.get(&path).await.expect_error(503, "unavailable");
    }
    app.post("/customers", json!({"firstName": "After", "lastName": "Loss"})).await.expect_error(503, "unavailable");
    app.send(Method::GET, "/readyz", None, None, &[]).await.expect_error(503, "unavailable");
}

// Pooled connections are not checked before every use (a round trip each);
// one idle for a second is, so connections the server dropped while the
// service was quiet (a restart, an administrator's terminate) are replaced
// before a request gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_connections_dropped_while_quiet_are_replaced() {
    let Some(app) = TestApp::spawn(clientele::store::Backend::Postgres).await else { return };
    // The background pollers would otherwise take (and so replace) most of the
    // dropped connections before the requests do.
    let app = app
        .restart_with(|c| {
            c.db_max_connections = 16;
            c.outbox_poll_ms = 60_000;
            c.webhooks_poll_ms = 60_000;
        })
        .await;
    let id = app.create_named("Before", "Drop").await;
    let path = format!("/customers/{id}");
    // Enough requests at once that the pool opens all its connections.
    let burst = async || {
        let replies = futures_util::future::join_all((0..48).map(|_| app.get(&path))).await;
        replies.iter().filter(|r| r.status != 200).count()
    };
    for _ in 0..3 {
        assert_eq!(burst().await, 0);
    }
    let terminate = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&app.test_db.url).await.unwrap();
    let terminated: i64 = sqlx::query_scalar(terminate).fetch_one(&mut admin).await.unwrap();
    assert!(terminated >= 8, "{terminated} connections terminated");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for _ in 0..3 {
        assert_eq!(burst().await, 0, "no request was given a dropped connection");
    }
    app.post("/customers", json!({"firstName": "After", "lastName": "Drop"})).await.expect(200);
}

both! {
    async fn replies_carry_security_headers(app: TestApp) {
        let c = app.create(json!({"firstName": "Head", "lastName": "Ers", "paymentMethodsCards": [{"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035}]})).await;
        let pm = app.get(&format!("/customers/{c}")).await.body["cards"][0]["id"].as_str().unwrap().to_owned();
        let (_, revealer) = app.key_with(&[clientele::auth::Scope::PaymentMethodsReveal]).await;
        let revealed = app.send(Method::POST, &format!("/customers/{c}/payment-methods/{pm}/reveal"), Some(&revealer), None, &[]).await;
        revealed.expect(200);
        let replies = [
            revealed,
            app.get(&format!("/customers/{c}")).await,
            app.get("/customers/not-a-uuid").await,
            app.send(Method::GET, "/healthz", None, None, &[]).await,
        ];
        for r in &replies {
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(r.header("x-frame-options"), Some("DENY"));
            assert_eq!(r.header("cache-control"), Some("no-store"), "a reply with personal data may be cached");
            assert!(r.header("content-security-policy").unwrap().contains("default-src 'none'"));
        }
        let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
        assert_eq!(docs.headers()["x-frame-options"], "DENY");
        assert!(docs.headers().get("content-security-policy").is_none(), "the docs page runs its own scripts");
    }

    async fn names_refuse_bidirectional_overrides(app: TestApp) {
        let r = app.post("/customers", json!({"firstName": "\u{202E}gnp.exe", "lastName": "Ok", "companyName": "A\u{2066}B"})).await;
        let errors = &r.expect_error(400, "validation_failed")["errors"];
        assert!(errors["firstName"].is_array() && errors["companyName"].is_array(), "{errors}");
        app.post("/customers", json!({"firstName": "שרה", "lastName": "כהן"})).await.expect(200);
    }
}

/// `/metrics` behind a token, and on an address of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_protected_and_moved() {
    let db = crate::helpers::TestDb::new(clientele::store::Backend::Sqlite).await.unwrap();
    let mut cfg = db.config();
    cfg.metrics_token = Some("scrape-me-0123456789".parse().unwrap());
    cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = clientele::App::start(&cfg).await.unwrap();
    let metrics = format!("http://{}/metrics", app.metrics_addr().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    assert_eq!(
        client.get(format!("{base}/metrics")).send().await.unwrap().status().as_u16(),
        404,
        "not beside the API"
    );
    assert_eq!(client.get(format!("{base}/healthz")).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(client.get(&metrics).send().await.unwrap().status().as_u16(), 401);
    assert_eq!(client.get(&metrics).bearer_auth("wrong").send().await.unwrap().status().as_u16(), 401);
    let ok = client.get(&metrics).bearer_auth("scrape-me-0123456789").send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(ok.text().await.unwrap().contains("http_requests_total"));
    let elsewhere = client.get(metrics.replace("/metrics", "/pay-api/v1/customers")).send().await.unwrap();
    assert_eq!(elsewhere.status().as_u16(), 404, "the metrics listener serves nothing else");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

both! {
    async fn the_documented_examples_succeed_as_sent(app: TestApp) {
        // What Swagger UI's "Try it out" sends: each body's documented example, as it is.
        let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
        let example = |method: &str, path: &str| -> Value {
            let content = &doc["paths"][format!("/pay-api/v1{path}")][method]["requestBody"]["content"];
            let schema = content.as_object().and_then(|c| c.values().next()).map_or(&Value::Null, |c| &c["schema"]);
            let name = schema["$ref"].as_str().unwrap_or_else(|| panic!("{method} {path} names its body's schema")).rsplit('/').next().unwrap();
            let example = doc["components"]["schemas"][name]["example"].clone();
            assert!(example.is_object(), "{name} has an example");
            example
        };
        let customer = app.post("/customers", example("post", "/customers")).await.expect(200)["id"].as_str().unwrap().to_owned();
        let c = format!("/customers/{customer}");
        let detail = app.get(&c).await.expect(200).clone();
        assert_eq!(detail["cards"][0]["last4"], "1111", "the example's card was added");
        app.put("/custom-parameters/loyaltyNumber", example("put", "/custom-parameters/{name}")).await.expect(200);
        app.put(&c, example("put", "/customers/{customerId}")).await.expect(200);
        app.patch(&c, example("patch", "/customers/{customerId}")).await.expect(200);
        let card = format!("{c}/payment-methods/{}", detail["cards"][0]["id"].as_str().unwrap());
        app.put(&card, example("put", "/customers/{customerId}/payment-methods/{paymentMethodId}")).await.expect(200);
        app.patch(&card, example("patch", "/customers/{customerId}/payment-methods/{paymentMethodId}")).await.expect(200);
        let ach = app.post(&format!("{c}/payment-methods/ach"), example("post", "/customers/{customerId}/payment-methods/ach")).await.expect(200)["id"].as_str().unwrap().to_owned();
        // (The create example already put this card on file for its customer.)
        let other = app.create_named("Card", "Holder").await;
        app.post(&format!("/customers/{other}/payment-methods/cards"), example("post", "/customers/{customerId}/payment-methods/cards")).await.expect(200);
        app.put(&format!("{c}/payment-methods/{ach}/status"), example("put", "/customers/{customerId}/payment-methods/{paymentMethodId}/status")).await.expect(200);
        app.post(&format!("{c}/providers"), example("post", "/customers/{customerId}/providers")).await.expect(200);
        app.put("/financing-plans/1", example("put", "/financing-plans/{planId}")).await.expect(200);
        let opened = app.post(&format!("{c}/credit-accounts"), example("post", "/customers/{customerId}/credit-accounts")).await.expect(200).clone();
        let account = format!("/credit-accounts/{}", opened["accountNumber"].as_str().unwrap());
        app.post(&format!("{account}/calculate-interest"), example("post", "/credit-accounts/{accountNumber}/calculate-interest")).await.expect(200);
        let verified = app.post(&format!("{account}/verify"), example("post", "/credit-accounts/{accountNumber}/verify")).await;
        assert!(!verified.expect(200)["verificationCode"].is_null(), "the example answers the example account's question");
        app.post(&format!("{c}/transactions"), example("post", "/customers/{customerId}/transactions")).await.expect(200);
        app.put(&format!("{c}/status"), example("put", "/customers/{customerId}/status")).await.expect(200);
    }
}

both! {
    async fn replies_are_compressed_when_asked_except_revealed_secrets(app: TestApp) {
        let c = app.create(json!({"firstName": "Zip", "lastName": "Ped", "paymentMethodsCards": [{"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035}]})).await;
        for i in 0..20 {
            app.create_named(&format!("Many{i}"), "Customers").await;
        }
        let get = |path: String, key: String, encoding: &'static str| {
            let req = app.client.get(app.url(&path)).bearer_auth(key).header("Accept-Encoding", encoding);
            async move { req.send().await.unwrap() }
        };
        for encoding in ["gzip", "br"] {
            let r = get("/customers?pageSize=20".into(), app.key.clone(), encoding).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-encoding"], encoding);
            let r = get("/openapi.json".into(), app.key.clone(), encoding).await;
            assert_eq!(r.headers()["content-encoding"], encoding, "the OpenAPI document too");
        }
        let plain = get("/customers?pageSize=20".into(), app.key.clone(), "identity").await;
        assert!(plain.headers().get("content-encoding").is_none());
        // A streamed export too, whole: the compressor reads the stream to its end.
        let plain = get("/customers/export".into(), app.key.clone(), "identity").await.bytes().await.unwrap();
        let r = get("/customers/export".into(), app.key.clone(), "gzip").await;
        assert_eq!(r.headers()["content-encoding"], "gzip");
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.bytes().await.unwrap()[..]), &mut unzipped)
            .expect("a whole gzip stream");
        assert_eq!(unzipped, plain);
        assert_eq!(plain.iter().filter(|b| **b == b'\n').count(), 21);
        // A revealed card number is never compressed (BREACH).
        let pm = app.get(&format!("/customers/{c}")).await.body["cards"][0]["id"].as_str().unwrap().to_owned();
        let (_, revealer) = app.key_with(&[clientele::auth::Scope::PaymentMethodsReveal]).await;
        let r = app
            .client
            .post(app.url(&format!("/customers/{c}/payment-methods/{pm}/reveal")))
            .bearer_auth(&revealer)
            .header("Accept-Encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("content-encoding").is_none(), "a revealed secret went out compressed");
        assert!(r.text().await.unwrap().contains("4111111111111111"));
    }
}

/// The reference lists every event type the store writes (`domain::event`).
#[test]
fn the_reference_lists_every_event_type() {
    let reference = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    for t in clientele::domain::event::EventType::ALL {
        assert!(reference.contains(&format!("`{}`", t.as_str())), "docs/api.md does not list {t}");
    }
}

// Every family `/metrics` exports has its HELP and TYPE, and every metric the
// dashboard in `deploy/` queries is one `/metrics` really exports, after
// requests, a webhook delivery and a rate limit (the group commit's on SQLite).
crate::both! {
    async fn metrics_are_described_and_the_dashboard_queries_real_ones(app: TestApp) {
    let sqlite = app.test_db.url.starts_with("sqlite");
    let app = app.restart_with(|c| c.limits.rate_limit_per_key = 1).await;
    // A webhook delivery (the receiver answers 204), then a burst past the key's limit.
    let hook =
        axum::Router::new().route("/hooks", axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
    let (_, hooks_key) = app.key_with(&[clientele::auth::Scope::WebhooksWrite]).await;
    let r = app
        .send(
            reqwest::Method::POST,
            "/webhook-endpoints",
            Some(&hooks_key),
            Some(json!({"url": url, "enabledEvents": ["*"]})),
            &[],
        )
        .await;
    let endpoint = r.expect(200)["id"].as_str().unwrap().to_owned();
    app.create_named("Metric", "Maker").await;
    for _ in 0..200 {
        let d = app.get(&format!("/webhook-endpoints/{endpoint}/deliveries")).await;
        if d.body["items"].as_array().is_some_and(|i| i.iter().any(|x| x["status"] == "delivered")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut limited = false;
    for _ in 0..10 {
        limited |= app.get("/customers").await.status == 429;
    }
    assert!(limited, "the burst met the key's limit");
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let families: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    assert!(families.len() > 15, "{text}");
    for f in &families {
        assert!(text.contains(&format!("# HELP {f} ")), "{f} has no HELP line");
    }
    let dashboard: Value = serde_json::from_str(include_str!("../../deploy/grafana-dashboard.json")).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_owned()))
        .collect();
    let mut queried = 0;
    for expr in &exprs {
        let names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("http_") || w.starts_with("clientele_") || w.starts_with("process_"));
        for name in names {
            let family = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
            let sqlite_only = ["clientele_commit_seconds", "clientele_write_batch_size", "clientele_db_writes_waiting"];
            if !sqlite && sqlite_only.contains(&family) {
                continue; // SQLite's group writer alone
            }
            assert!(
                families.contains(&family),
                "the dashboard queries {name}, which /metrics does not export:\n{text}"
            );
            queried += 1;
        }
    }
    assert!(queried >= exprs.len() - 3, "every panel queries a metric");
    let backend = if sqlite { "backend=\"sqlite\"" } else { "backend=\"postgres\"" };
    assert!(text.contains("clientele_build_info{") && text.contains(backend), "{text}");
    }
}

// A streamed reply is measured to its end: an import whose upload takes 600 ms
// is not logged at the moment its headers were ready.
crate::both! {
    async fn a_streamed_reply_is_measured_to_its_last_byte(app: TestApp) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let lines = "{\"firstName\":\"Slow\",\"lastName\":\"One\"}\n{\"firstName\":\"Slow\",\"lastName\":\"Two\"}\n";
        let mut s = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
        let head = format!(
            "POST /pay-api/v1/customers/import HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            app.key,
            lines.len()
        );
        let (first, second) = lines.split_at(lines.len() / 2);
        s.write_all(format!("{head}{first}").as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        s.write_all(second.as_bytes()).await.unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("\"created\":2"), "{reply}");
        let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let sum: f64 = text
            .lines()
            .find(|l| l.starts_with("http_request_duration_seconds_sum") && l.contains("/customers/import"))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no import latency in {text}"))
            .parse()
            .unwrap();
        assert!(sum >= 0.55, "the import was measured at {sum} s, before its body ended");
    }
}

/// On shutdown the listener stays open for the drain, with `/readyz` at 503,
/// then closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_draining_before_the_listener_closes() {
    let test_db = crate::helpers::TestDb::new(clientele::store::Backend::Sqlite).await.unwrap();
    let mut cfg = test_db.config();
    cfg.limits.shutdown_drain_ms = 700;
    let app = clientele::App::start(&cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    // A new client each time: no connection is kept from before the signal.
    let fresh = || reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    assert_eq!(fresh().get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
    let signalled = std::time::Instant::now();
    stop.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let during = fresh().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(during.status(), 503, "a new connection during the drain is told to go elsewhere");
    assert_eq!(fresh().get(format!("{base}/healthz")).send().await.unwrap().status(), 200, "and still served");
    server.await.unwrap().unwrap();
    assert!(signalled.elapsed() >= std::time::Duration::from_millis(700), "the drain was kept");
    assert!(fresh().get(format!("{base}/healthz")).send().await.is_err(), "then the listener closed");
}
