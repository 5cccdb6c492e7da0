//! Custom parameters and provider links (seed 002).

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

async fn declare(app: &TestApp, name: &str, body: Value) -> Value {
    app.put(&format!("/custom-parameters/{name}"), body).await.expect(200).clone()
}

fn provider_body() -> Value {
    json!({
        "apiKey": "ak_live_0123456789abcdef", "providerConfigId": "cfg-1", "provider": "stripe",
        "paymentProvider": {"customerId": "cus_123", "paymentProviderType": "payment gateway", "key": "sk_live_abcdefghijklmnop",
            "loginId": "merchant-7", "hmacKey": "short-hmac", "commercialName": "Acme", "availableCurrencies": ["CAD", "USD"]}
    })
}

both! {
    async fn declarations_and_their_rules(app: TestApp) {
        let d = declare(&app, "loyaltyTier", json!({"type": "string", "description": "Tier"})).await;
        assert_eq!((d["name"].clone(), d["type"].clone(), d["required"].clone(), d["secret"].clone(), d["retired"].clone()),
            (json!("loyaltyTier"), json!("string"), json!(false), json!(false), json!(false)));
        declare(&app, "points", json!({"type": "number"})).await;
        let list = app.get("/custom-parameters").await;
        assert_eq!(list.expect(200)["total"], 2);
        for bad in ["1st", "_x", "has-dash", "email", "FIRSTNAME", "cards", "externalReference", &"a".repeat(65)] {
            let r = app.put(&format!("/custom-parameters/{bad}"), json!({"type": "string"})).await;
            assert!(r.expect_error(400, "validation_failed")["errors"]["name"].is_array(), "{bad}");
        }
        app.put("/custom-parameters/x", json!({"type": "decimal"})).await.expect_error(400, "validation_failed");
        app.put("/custom-parameters/x", json!({})).await.expect_error(400, "validation_failed");
        app.put("/custom-parameters/x", json!({"type": "string", "colour": "red"})).await.expect_error(400, "unknown_field");
        // Type and secrecy are fixed; required and description may change.
        app.put("/custom-parameters/points", json!({"type": "string"})).await.expect_error(409, "custom_parameter_conflict");
        app.put("/custom-parameters/points", json!({"type": "number", "secret": true})).await.expect_error(409, "custom_parameter_conflict");
        let changed = declare(&app, "points", json!({"type": "number", "required": true, "description": "Loyalty points"})).await;
        assert_eq!(changed["required"], true);
        // Retire, then revive.
        assert_eq!(app.delete("/custom-parameters/points").await.expect(200)["deleted"], true);
        app.delete("/custom-parameters/points").await.expect_error(404, "not_found");
        app.delete("/custom-parameters/neverDeclared").await.expect_error(404, "not_found");
        let list = app.get("/custom-parameters").await.body;
        assert_eq!(list["items"].as_array().unwrap().iter().find(|i| i["name"] == "points").unwrap()["retired"], true);
        assert_eq!(declare(&app, "points", json!({"type": "number"})).await["retired"], false);
        let events = app.get("/events?type=custom_parameter.declared").await;
        assert_eq!(events.expect(200)["items"].as_array().unwrap().len(), 4);
        assert_eq!(app.get("/events?type=custom_parameter.retired").await.body["items"].as_array().unwrap().len(), 1);
    }

    async fn values_are_typed_and_returned_at_the_top_level(app: TestApp) {
        declare(&app, "tier", json!({"type": "string"})).await;
        declare(&app, "points", json!({"type": "number"})).await;
        declare(&app, "vip", json!({"type": "boolean"})).await;
        declare(&app, "since", json!({"type": "date"})).await;
        let id = app.create(json!({"firstName": "A", "lastName": "B", "tier": "gold", "points": 10.50, "vip": true, "since": "2020-02-29"})).await;
        let c = app.get(&format!("/customers/{id}")).await.expect(200).clone();
        assert_eq!((c["tier"].clone(), c["points"].clone(), c["vip"].clone(), c["since"].clone()), (json!("gold"), json!(10.5), json!(true), json!("2020-02-29")));
        let page = app.get("/customers").await.body;
        assert_eq!(page["items"][0]["tier"], "gold", "search items carry them too");
        let bad = app.post("/customers", json!({"firstName": "A", "lastName": "B", "tier": 3, "points": "10", "vip": "yes", "since": "29/02/2020", "other": 1})).await;
        let b = bad.expect_error(400, "validation_failed");
        for field in ["tier", "points", "vip", "since", "other"] {
            assert!(b["errors"][field].is_array(), "{field}: {b}");
        }
        let undeclared = app.post("/customers", json!({"firstName": "A", "lastName": "B", "colour": "red"})).await;
        undeclared.expect_error(400, "unknown_field");
        // Update replaces declared values; one left out is cleared.
        let r = app.put(&format!("/customers/{id}"), json!({"firstName": "A", "lastName": "B", "tier": "silver"})).await;
        let u = r.expect(200);
        assert_eq!(u["tier"], "silver");
        assert!(u.get("points").is_none());
    }

    async fn required_applies_from_the_declaration_on(app: TestApp) {
        let before = app.create_named("Before", "Rule").await;
        declare(&app, "region", json!({"type": "string", "required": true})).await;
        let r = app.post("/customers", json!({"firstName": "A", "lastName": "B"})).await;
        assert_eq!(r.expect_error(400, "validation_failed")["errors"]["region"][0], "'region' is required.");
        let r = app.post("/customers", json!({"firstName": "A", "lastName": "B", "region": null})).await;
        r.expect_error(400, "validation_failed");
        app.create(json!({"firstName": "A", "lastName": "B", "region": "east"})).await;
        app.get(&format!("/customers/{before}")).await.expect(200);
        let r = app.put(&format!("/customers/{before}"), json!({"firstName": "Before", "lastName": "Rule"})).await;
        r.expect_error(400, "validation_failed");
        app.put(&format!("/customers/{before}"), json!({"firstName": "Before", "lastName": "Rule", "region": "west"})).await.expect(200);
    }

    async fn retired_values_stay_readable(app: TestApp) {
        declare(&app, "legacyId", json!({"type": "string"})).await;
        let id = app.create(json!({"firstName": "A", "lastName": "B", "legacyId": "L-1"})).await;
        app.delete("/custom-parameters/legacyId").await.expect(200);
        assert_eq!(app.get(&format!("/customers/{id}")).await.body["legacyId"], "L-1");
        app.put(&format!("/customers/{id}"), json!({"firstName": "A", "lastName": "B", "legacyId": "L-2"})).await.expect_error(400, "unknown_field");
        let r = app.put(&format!("/customers/{id}"), json!({"firstName": "Z", "lastName": "B"})).await;
        assert_eq!(r.expect(200)["legacyId"], "L-1", "an update keeps values of retired parameters");
        app.post("/customers", json!({"firstName": "A", "lastName": "B", "legacyId": "L-3"})).await.expect_error(400, "unknown_field");
    }

    async fn secret_values_are_obfuscated_everywhere(app: TestApp) {
        declare(&app, "ssn", json!({"type": "string", "secret": true})).await;
        declare(&app, "pin", json!({"type": "number", "secret": true})).await;
        let long = "123-45-6789-secret-0042";
        // A value no id or timestamp could contain by chance.
        let id = app.create(json!({"firstName": "S", "lastName": "Ecret", "ssn": long, "pin": 987654321})).await;
        let c = app.get(&format!("/customers/{id}")).await.expect(200).clone();
        assert_eq!(c["ssn"], "****0042");
        assert_eq!(c["pin"], "****", "fewer than 12 characters: no tail");
        let page = app.get("/customers").await.body.to_string();
        let events = app.get("/events?limit=500").await.body.to_string();
        for text in [c.to_string(), page, events] {
            assert!(!text.contains("123-45-6789") && !text.contains("987654321"), "{text}");
        }
        let r = app.put(&format!("/customers/{id}"), json!({"firstName": "S", "lastName": "Ecret", "ssn": "short"})).await;
        assert_eq!(r.expect(200)["ssn"], "****");
        app.get("/customers?custom.ssn=short").await.expect_error(400, "validation_failed");
    }

    async fn exact_custom_filters(app: TestApp) {
        declare(&app, "tier", json!({"type": "string"})).await;
        declare(&app, "points", json!({"type": "number"})).await;
        declare(&app, "vip", json!({"type": "boolean"})).await;
        let a = app.create(json!({"firstName": "A", "lastName": "One", "tier": "gold", "points": 10.5, "vip": true})).await;
        app.create(json!({"firstName": "B", "lastName": "Two", "tier": "Gold", "points": 10, "vip": false})).await;
        app.create(json!({"firstName": "C", "lastName": "Three"})).await;
        let ids = |v: &Value| v["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(ids(app.get("/customers?custom.tier=gold").await.expect(200)), [a.as_str()], "exact, case-sensitive");
        assert_eq!(ids(&app.get("/customers?custom.points=10.50").await.body), [a.as_str()], "numbers compare by value");
        // Every way of listing carries each item's own values, and none for a customer without.
        for path in ["/customers?custom.tier=gold", "/customers?search=one", "/customers?orderBy=lastName&asc=true"] {
            let items = app.get(path).await.expect(200)["items"].clone();
            let first = items.as_array().unwrap().iter().find(|c| c["id"] == a.as_str()).expect(path);
            assert_eq!((&first["tier"], &first["points"], &first["vip"]), (&json!("gold"), &json!(10.5), &json!(true)), "{path}");
        }
        let all = app.get("/customers").await.body["items"].clone();
        let c = all.as_array().unwrap().iter().find(|c| c["firstName"] == "C").unwrap();
        assert!(c.get("tier").is_none_or(Value::is_null), "{c}");
        assert_eq!(app.get("/customers?custom.vip=true&custom.tier=gold").await.body["total"], 1);
        assert_eq!(app.get("/customers?custom.vip=false").await.body["total"], 1);
        assert_eq!(app.get("/customers?custom.tier=silver").await.body["total"], 0);
        app.get("/customers?custom.points=ten").await.expect_error(400, "validation_failed");
        app.get("/customers?custom.nothing=1").await.expect_error(400, "validation_failed");
        app.get("/customers?custom.vip=maybe").await.expect_error(400, "validation_failed");
    }

    async fn declarations_are_per_merchant(app: TestApp) {
        declare(&app, "tier", json!({"type": "string", "required": true})).await;
        let (_, other) = app.other_merchant().await;
        let r = app.send(Method::POST, "/customers", Some(&other), Some(json!({"firstName": "A", "lastName": "B", "tier": "gold"})), &[]).await;
        r.expect_error(400, "unknown_field");
        app.send(Method::POST, "/customers", Some(&other), Some(json!({"firstName": "A", "lastName": "B"})), &[]).await.expect(200);
        let list = app.send(Method::GET, "/custom-parameters", Some(&other), None, &[]).await;
        assert_eq!(list.expect(200)["total"], 0);
        app.send(Method::PUT, "/custom-parameters/tier", Some(&other), Some(json!({"type": "number"})), &[]).await.expect(200);
        let r = app.send(Method::GET, "/customers?custom.tier=gold", Some(&other), None, &[]).await;
        r.expect_error(400, "validation_failed");
    }

    async fn provider_links(app: TestApp) {
        let c = app.create_named("Pro", "Vider").await;
        let base = format!("/customers/{c}/providers");
        let id = app.post(&base, provider_body()).await.expect(200)["id"].as_str().unwrap().to_owned();
        let one = app.get(&format!("{base}/{id}")).await.expect(200).clone();
        assert_eq!(one["apiKey"], "****cdef");
        assert_eq!(one["providerConfigId"], "cfg-1");
        assert_eq!(one["provider"], "stripe");
        assert_eq!(one["paymentProvider"]["key"], "****mnop");
        assert_eq!(one["paymentProvider"]["hmacKey"], "****");
        assert_eq!(one["paymentProvider"]["availableCurrencies"], json!(["CAD", "USD"]));
        assert_eq!(one["paymentProvider"]["customerId"], "cus_123");
        let minimal = app.post(&base, json!({"providerConfigId": "cfg-2", "provider": "adyen"})).await;
        minimal.expect(200);
        let list = app.get(&base).await;
        assert_eq!(list.expect(200)["total"], 2);
        let text = list.body.to_string();
        for secret in ["ak_live_0123456789abcdef", "sk_live_abcdefghijklmnop", "short-hmac", "0123456789ab", "abcdefghijkl"] {
            assert!(!text.contains(secret), "a list response shows {secret}");
        }
        assert_eq!(list.body["items"][1]["paymentProvider"], json!(null));
        let r = app.put(&format!("{base}/{id}"), json!({"provider": "other"})).await;
        assert!(r.expect_error(405, "method_not_allowed")["details"].as_str().unwrap().contains("cannot be edited"));
        assert_eq!(r.header("allow"), Some("GET, DELETE"));
        assert_eq!(app.delete(&format!("{base}/{id}")).await.expect(200), &json!({"id": id, "deleted": true}));
        app.get(&format!("{base}/{id}")).await.expect_error(404, "not_found");
        app.delete(&format!("{base}/{id}")).await.expect_error(404, "not_found");
        let types: Vec<String> = app.get("/events?limit=500").await.body["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
        assert!(types.contains(&"provider.linked".to_owned()) && types.contains(&"provider.unlinked".to_owned()));
    }

    async fn provider_validation(app: TestApp) {
        let c = app.create_named("Pro", "Vider").await;
        let base = format!("/customers/{c}/providers");
        let r = app.post(&base, json!({"apiKey": "x"})).await;
        let b = r.expect_error(400, "validation_failed");
        assert!(b["errors"]["providerConfigId"].is_array() && b["errors"]["provider"].is_array());
        // On a create, link fields sent as null are left out, like any field: no link, no error.
        let nulls = json!({"firstName": "No", "lastName": "Link", "provider": null, "apiKey": null});
        let id = app.post("/customers", nulls).await.expect(200)["id"].as_str().unwrap().to_owned();
        assert_eq!(app.get(&format!("/customers/{id}/providers")).await.expect(200)["total"], 0);
        let half = json!({"firstName": "Half", "lastName": "Link", "provider": "stripe", "providerConfigId": null});
        app.post("/customers", half).await.expect_error(400, "validation_failed");
        for (cur, why) in [("usd", "uppercase"), ("HRK", "active"), ("XXX", "active"), ("ZZZ", "active")] {
            let mut body = provider_body();
            body["paymentProvider"]["availableCurrencies"] = json!(["CAD", cur]);
            let r = app.post(&base, body).await;
            let msg = r.expect_error(400, "validation_failed")["errors"]["paymentProvider.availableCurrencies[1]"][0].as_str().unwrap().to_owned();
            assert!(msg.contains(why), "{cur}: {msg}");
        }
        let mut body = provider_body();
        body["paymentProvider"]["bank"] = json!("x");
        app.post(&base, body).await.expect_error(400, "unknown_field");
        let unknown = uuid::Uuid::now_v7();
        app.post(&format!("/customers/{unknown}/providers"), provider_body()).await.expect_error(404, "not_found");
        app.get(&format!("/customers/{unknown}/providers")).await.expect_error(404, "not_found");
        let (_, other) = app.other_merchant().await;
        let id = app.post(&base, provider_body()).await.expect(200)["id"].as_str().unwrap().to_owned();
        app.send(Method::GET, &format!("{base}/{id}"), Some(&other), None, &[]).await.expect_error(404, "not_found");
        app.send(Method::DELETE, &format!("{base}/{id}"), Some(&other), None, &[]).await.expect_error(404, "not_found");
        app.send(Method::POST, &base, Some(&other), Some(provider_body()), &[]).await.expect_error(404, "not_found");
    }

    async fn rotation_covers_custom_secrets_and_credentials(app: TestApp) {
        declare(&app, "ssn", json!({"type": "string", "secret": true})).await;
        let c = app.create(json!({"firstName": "R", "lastName": "T", "ssn": "123-45-6789-0000"})).await;
        app.post(&format!("/customers/{c}/providers"), provider_body()).await.expect(200);
        let cfg = app.test_db.config();
        let vault = clientele::crypto::Vault::new(clientele::crypto::load_master_key(cfg.master_key.as_ref(), &cfg.data_dir).unwrap());
        let report = app.db.rotate_keys(&vault).await.unwrap();
        assert_eq!(report.reencrypted, 2, "one custom secret and one provider link");
        let url = &app.test_db.url;
        assert_eq!(crate::helpers::int_pairs(url, "SELECT key_version, COUNT(*) FROM customer_custom_values WHERE secret IS NOT NULL GROUP BY key_version").await, vec![(2, 1)]);
        assert_eq!(crate::helpers::int_pairs(url, "SELECT key_version, COUNT(*) FROM customer_providers GROUP BY key_version").await, vec![(2, 1)]);
        // A second rotation opens everything the first one sealed.
        assert_eq!(app.db.rotate_keys(&vault).await.unwrap().reencrypted, 2);
        assert_eq!(app.get(&format!("/customers/{c}")).await.body["ssn"], "****0000");
    }
}

/// The updatable fields of a customer as GET shows them (what a client sends back).
fn updatable(v: &Value, custom: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for k in ["firstName", "lastName", "companyName", "email", "mobilePhoneNumber", "dateOfBirth"].iter().chain(custom)
    {
        if let Some(x) = v.get(*k) {
            out.insert((*k).to_owned(), x.clone());
        }
    }
    Value::Object(out)
}

both! {
    async fn secrets_are_write_only(app: TestApp) {
        declare(&app, "ssn", json!({"type": "string", "secret": true})).await;
        declare(&app, "pin", json!({"type": "number", "secret": true, "required": true})).await;
        let id = app.create(json!({"firstName": "W", "lastName": "Only", "ssn": "123-45-6789-3456", "pin": 4321})).await;
        let got = app.get(&format!("/customers/{id}")).await.expect(200).clone();
        assert_eq!((got["ssn"].clone(), got["pin"].clone()), (json!("****3456"), json!("****")));
        let url = app.test_db.url.clone();
        let sealed_before = crate::helpers::blob(&url, "SELECT secret FROM customer_custom_values WHERE name = 'ssn'").await;
        // GET -> PUT: the masked forms sent back keep the stored values.
        let mut body = updatable(&got, &["ssn", "pin"]);
        body["companyName"] = json!("Changed Inc");
        let put = app.put(&format!("/customers/{id}"), body).await;
        assert_eq!((put.expect(200)["ssn"].clone(), put.body["pin"].clone()), (json!("****3456"), json!("****")));
        assert_eq!(crate::helpers::blob(&url, "SELECT secret FROM customer_custom_values WHERE name = 'ssn'").await, sealed_before, "the stored value was replaced");
        // Left out: kept (a required secret too).
        let put = app.put(&format!("/customers/{id}"), json!({"firstName": "W", "lastName": "Only"})).await;
        assert_eq!(put.expect(200)["ssn"], "****3456");
        // A mask that is not this customer's, or a mask where nothing is stored: refused.
        let r = app.put(&format!("/customers/{id}"), json!({"firstName": "W", "lastName": "Only", "ssn": "****9999"})).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["ssn"].is_array());
        let r = app.post("/customers", json!({"firstName": "N", "lastName": "Ew", "ssn": "****", "pin": 1})).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["ssn"].is_array());
        let r = app.post("/customers", json!({"firstName": "N", "lastName": "Ew"})).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["pin"].is_array(), "a required secret on create");
        // null clears; a new value replaces.
        let put = app.put(&format!("/customers/{id}"), json!({"firstName": "W", "lastName": "Only", "ssn": null, "pin": 98765})).await;
        assert!(put.expect(200).get("ssn").is_none_or(Value::is_null), "{}", put.body);
        let put = app.put(&format!("/customers/{id}"), json!({"firstName": "W", "lastName": "Only", "ssn": "999-88-7777-1234"})).await;
        assert_eq!(put.expect(200)["ssn"], "****1234");
        app.put(&format!("/customers/{id}"), json!({"firstName": "W", "lastName": "Only", "pin": null})).await.expect_error(400, "validation_failed");
        // An import line without the secret keeps it too.
        app.put(&format!("/customers/{id}"), json!({"firstName": "W", "lastName": "Only", "externalReference": "w-1"})).await.expect(200);
        let line = format!("{}\n", json!({"firstName": "W", "lastName": "Imported", "externalReference": "w-1"}));
        let r = app.client.post(app.url("/customers/import")).bearer_auth(&app.key).header("content-type", "application/x-ndjson").body(line).send().await.unwrap();
        let text = r.text().await.unwrap();
        assert!(text.contains("\"updated\""), "{text}");
        let after = app.get(&format!("/customers/{id}")).await.expect(200).clone();
        assert_eq!((after["lastName"].clone(), after["ssn"].clone()), (json!("Imported"), json!("****1234")));
        // GET -> PATCH: the whole representation sent back changes nothing secret.
        let mut whole = after.clone();
        whole["companyName"] = json!("Patched Ltd");
        let patched = app.patch(&format!("/customers/{id}"), whole).await;
        assert_eq!((patched.expect(200)["companyName"].clone(), patched.body["ssn"].clone()), (json!("Patched Ltd"), json!("****1234")));
        let sealed = crate::helpers::blob(&url, "SELECT secret FROM customer_custom_values WHERE name = 'ssn'").await;
        app.patch(&format!("/customers/{id}"), json!({"ssn": "****1234", "pin": "****"})).await.expect(200);
        assert_eq!(crate::helpers::blob(&url, "SELECT secret FROM customer_custom_values WHERE name = 'ssn'").await, sealed);
        let patched = app.patch(&format!("/customers/{id}"), json!({"ssn": null})).await;
        assert!(patched.expect(200).get("ssn").is_none_or(Value::is_null));
    }
}

both! {
    async fn seed_002_create_links_its_provider_in_one_transaction(app: TestApp) {
        let id = uuid::Uuid::now_v7();
        let mut body = provider_body();
        for (k, v) in [("id", json!(id)), ("firstName", json!("Seed")), ("lastName", json!("Two"))] {
            body[k] = v;
        }
        let r = app.post("/customers", body.clone()).await;
        assert_eq!(r.expect(200)["id"], json!(id), "the body's id is kept");
        let links = app.get(&format!("/customers/{id}/providers")).await;
        let link = &links.expect(200)["items"][0];
        assert_eq!((link["apiKey"].clone(), link["provider"].clone()), (json!("****cdef"), json!("stripe")));
        assert_eq!(link["paymentProvider"]["key"], "****mnop");
        assert!(!links.body.to_string().contains("ak_live_0123456789abcdef"));
        assert_eq!(app.feed_showing(&format!("/events?entityId={}", link["id"].as_str().unwrap()), 1).await["items"][0]["type"], "provider.linked");
        // The same id again is a conflict; a non-v7 id is refused.
        app.post("/customers", body.clone()).await.expect_error(409, "customer_exists");
        body["id"] = json!("4b1a0c6e-8f4e-4d3a-9c51-2f0e5b7d9a10");
        app.post("/customers", body.clone()).await.expect_error(400, "validation_failed");
        // All or nothing: a bad provider field creates no customer.
        let before = app.get("/customers?pageSize=1").await.expect(200)["total"].clone();
        let mut bad = provider_body();
        bad["firstName"] = json!("No");
        bad["lastName"] = json!("Body");
        bad["paymentProvider"]["availableCurrencies"] = json!(["ANG"]);
        let r = app.post("/customers", bad).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["paymentProvider.availableCurrencies[0]"].is_array(), "{}", r.body);
        let mut half = provider_body();
        half.as_object_mut().unwrap().remove("providerConfigId");
        half["firstName"] = json!("No");
        half["lastName"] = json!("Config");
        app.post("/customers", half).await.expect_error(400, "validation_failed");
        assert_eq!(app.get("/customers?pageSize=1").await.expect(200)["total"], before);
        // A credential equal to a mask the API shows is never stored.
        let c = app.create_named("Mask", "Ed").await;
        for (path, body) in [
            ("apiKey", json!({"providerConfigId": "c", "provider": "p", "apiKey": "****cdef"})),
            ("paymentProvider.key", json!({"providerConfigId": "c", "provider": "p", "paymentProvider": {"key": "****"}})),
            ("paymentProvider.hmacKey", json!({"providerConfigId": "c", "provider": "p", "paymentProvider": {"hmacKey": "****abcd"}})),
        ] {
            let r = app.post(&format!("/customers/{c}/providers"), body).await;
            assert!(r.expect_error(400, "validation_failed")["errors"][path].is_array(), "{path}: {}", r.body);
        }
        let r = app.post("/custom-parameters/provider", json!({})).await;
        assert_ne!(r.status, 200, "seed 002's field names are reserved");
    }
}
