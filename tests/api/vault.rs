//! The payment-method vault: validation, masking, fingerprints, duplicates,
//! defaults, status, reveal, events, inline creates and key rotation.

use clientele::auth::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

/// Appends the Luhn check digit.
pub fn luhn(partial: &str) -> String {
    (0..10).map(|d| format!("{partial}{d}")).find(|s| crate::helpers::luhn_valid(s)).unwrap()
}

fn card(pan: &str) -> Value {
    json!({"pan": pan, "expirationMonth": 12, "expirationYear": 2035})
}

fn ach(account: &str) -> Value {
    json!({"name": "Operating", "accountNumber": account, "routingNumber": "021000021", "accountType": 1, "accountHolderType": 1, "taxId": "12-3456789"})
}

async fn add(app: &TestApp, customer: &str, kind: &str, body: Value) -> String {
    let r = app.post(&format!("/customers/{customer}/payment-methods/{kind}"), body).await;
    r.expect(200)["id"].as_str().unwrap().to_owned()
}

async fn revealer(app: &TestApp) -> String {
    app.key_with(&[Scope::PaymentMethodsReveal, Scope::CustomersRead]).await.1
}

async fn reveal(app: &TestApp, key: &str, customer: &str, pm: &str) -> Value {
    let r = app
        .send(Method::POST, &format!("/customers/{customer}/payment-methods/{pm}/reveal"), Some(key), None, &[])
        .await;
    r.expect(200).clone()
}

both! {
    async fn cards_are_masked_and_branded(app: TestApp) {
        let c = app.create_named("Card", "Holder").await;
        let cases = [
            ("4111 1111 1111 1111", "visa"), ("4012-8888-8888-1881", "visa"), ("5555555555554444", "mastercard"),
            ("2223003122003222", "mastercard"), ("378282246310005", "amex"), ("6011111111111117", "discover"),
            ("3530111333300000", "jcb"), ("30569309025904", "diners"), ("6200000000000005", "unionpay"),
            ("6759649826438453", "maestro"),
        ];
        for (pan, brand) in cases {
            let digits: String = pan.chars().filter(char::is_ascii_digit).collect();
            let code = if brand == "amex" { "1234" } else { "123" };
            let mut body = card(pan);
            body["securityCode"] = json!(code);
            let id = add(&app, &c, "cards", body).await;
            let r = app.get(&format!("/customers/{c}/payment-methods/{id}")).await;
            let v = r.expect(200);
            assert_eq!(r.header("etag"), Some("\"1\""));
            assert_eq!(v["type"], "card");
            assert_eq!(v["brand"], brand, "{pan}");
            assert_eq!(v["bin"], &digits[..6]);
            assert_eq!(v["last4"], &digits[digits.len() - 4..]);
            let masked = v["maskedPan"].as_str().unwrap();
            assert_eq!(masked.len(), digits.len());
            assert_eq!(&masked[..6], &digits[..6]);
            assert_eq!(&masked[masked.len() - 4..], &digits[digits.len() - 4..]);
            assert!(masked[6..masked.len() - 4].chars().all(|c| c == '*'));
            assert_eq!(v["expirationMonth"], 12);
            assert_eq!(v["expirationYear"], 2035);
            assert_eq!(v["status"], "active");
            assert!(v["fingerprint"].as_str().unwrap().len() >= 20);
            assert!(!v.to_string().contains(&digits), "no full number in {v}");
            assert!(v.get("pan").is_none() && v.get("securityCode").is_none());
        }
        // Generated numbers in the edge ranges the spec names.
        for (partial, brand) in [("222100000000000", "mastercard"), ("272099999999999", "mastercard"), ("644000000000000", "discover"),
            ("622126000000000", "discover"), ("622925999999999", "discover"), ("622000000000000", "unionpay"), ("999999999999999", "unknown")] {
            let id = add(&app, &c, "cards", card(&luhn(partial))).await;
            assert_eq!(app.get(&format!("/customers/{c}/payment-methods/{id}")).await.body["brand"], brand, "{partial}");
        }
    }

    async fn card_validation(app: TestApp) {
        let c = app.create_named("Bad", "Cards").await;
        let path = format!("/customers/{c}/payment-methods/cards");
        let cases: Vec<(Value, &str)> = vec![
            (json!({"name": "Payment_method", "pan": "444466666655555", "expirationMonth": 1, "expirationYear": 24, "securityCode": "345"}), "pan"),
            (card("4111111111111112"), "pan"),
            (card("41111111111"), "pan"),
            (card(&luhn(&"4".repeat(19))), "pan"),
            (card("4111-1111-1111-111a"), "pan"),
            (json!({"expirationMonth": 12, "expirationYear": 2035}), "pan"),
            (json!({"pan": "4111111111111111", "expirationMonth": 13, "expirationYear": 2035}), "expirationMonth"),
            (json!({"pan": "4111111111111111", "expirationMonth": 0, "expirationYear": 2035}), "expirationMonth"),
            (json!({"pan": "4111111111111111", "expirationMonth": 1, "expirationYear": 2020}), "expirationYear"),
            (json!({"pan": "4111111111111111", "expirationMonth": 1, "expirationYear": 123}), "expirationYear"),
            (json!({"pan": "4111111111111111", "expirationYear": 2035}), "expirationMonth"),
            (json!({"pan": "4111111111111111", "expirationMonth": "twelve", "expirationYear": 2035}), "expirationMonth"),
            (json!({"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035, "securityCode": "12"}), "securityCode"),
            (json!({"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035, "securityCode": "1234"}), "securityCode"),
            (json!({"pan": "378282246310005", "expirationMonth": 12, "expirationYear": 2035, "securityCode": "123"}), "securityCode"),
            (json!({"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035, "securityCode": "abc"}), "securityCode"),
            (json!({"pan": 4111111111111111u64, "expirationMonth": 12, "expirationYear": 2035}), "pan"),
        ];
        for (body, field) in cases {
            let r = app.post(&path, body.clone()).await;
            let b = r.expect_error(400, "validation_failed");
            assert!(b["errors"][field].is_array(), "{body} should fail on {field}: {b}");
            assert!(!b.to_string().contains("4111111111111"), "error bodies never echo the number: {b}");
        }
        app.post(&path, json!({"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 35, "cvv": "123"})).await.expect_error(400, "unknown_field");
        let ok = app.post(&path, json!({"pan": "4111111111111111", "expirationMonth": "12", "expirationYear": "35"})).await;
        ok.expect(200);
        let list = app.get(&format!("/customers/{c}/payment-methods")).await;
        assert_eq!(list.expect(200)["total"], 1, "only the valid card was stored");
        assert_eq!(list.body["items"][0]["expirationYear"], 2035, "2-digit years are stored as 4");
    }

    async fn ach_accounts(app: TestApp) {
        let c = app.create_named("Bank", "Holder").await;
        let id = add(&app, &c, "ach", ach("000123456789")).await;
        let v = app.get(&format!("/customers/{c}/payment-methods/{id}")).await.expect(200).clone();
        assert_eq!(v["type"], "ach");
        assert_eq!(v["name"], "Operating");
        assert_eq!(v["routingNumber"], "021000021");
        assert_eq!(v["accountNumberLast4"], "6789");
        assert_eq!(v["taxIdLast4"], "6789");
        assert_eq!(v["accountType"], 1);
        assert_eq!(v["accountHolderType"], 1);
        assert!(!v.to_string().contains("000123456789") && !v.to_string().contains("123456789"));
        let path = format!("/customers/{c}/payment-methods/ach");
        let cases: Vec<(Value, &str)> = vec![
            (json!({"accountNumber": "1234", "routingNumber": "021000021", "accountType": 1, "accountHolderType": 1}), "name"),
            (json!({"name": "x", "accountNumber": "123", "routingNumber": "021000021", "accountType": 1, "accountHolderType": 1}), "accountNumber"),
            (json!({"name": "x", "accountNumber": "123456789012345678", "routingNumber": "021000021", "accountType": 1, "accountHolderType": 1}), "accountNumber"),
            (json!({"name": "x", "accountNumber": "12345", "routingNumber": "021000022", "accountType": 1, "accountHolderType": 1}), "routingNumber"),
            (json!({"name": "x", "accountNumber": "12345", "routingNumber": "02100002", "accountType": 1, "accountHolderType": 1}), "routingNumber"),
            (json!({"name": "x", "accountNumber": "12345", "accountType": 1, "accountHolderType": 1}), "routingNumber"),
            (json!({"name": "x", "accountNumber": "12345", "routingNumber": "021000021", "accountType": 3, "accountHolderType": 1}), "accountType"),
            (json!({"name": "x", "accountNumber": "12345", "routingNumber": "021000021", "accountType": 1, "accountHolderType": 0}), "accountHolderType"),
            (json!({"name": "x", "accountNumber": "12345", "routingNumber": "021000021", "accountHolderType": 1}), "accountType"),
            (json!({"name": "x", "accountNumber": "12345", "routingNumber": "021000021", "accountType": 1, "accountHolderType": 1, "taxId": "12"}), "taxId"),
        ];
        for (body, field) in cases {
            let r = app.post(&path, body.clone()).await;
            assert!(r.expect_error(400, "validation_failed")["errors"][field].is_array(), "{body} should fail on {field}");
        }
    }

    async fn duplicates_are_409_with_the_existing_id(app: TestApp) {
        let c = app.create_named("Dup", "Licate").await;
        let first = add(&app, &c, "cards", card("4111111111111111")).await;
        let r = app.post(&format!("/customers/{c}/payment-methods/cards"), json!({"pan": "4111 1111 1111 1111", "expirationMonth": 1, "expirationYear": 2040, "name": "again"})).await;
        let b = r.expect_error(409, "duplicate_payment_method");
        assert_eq!(b["entityId"], first);
        let bank = add(&app, &c, "ach", ach("000123456789")).await;
        let r = app.post(&format!("/customers/{c}/payment-methods/ach"), ach("0001-2345-6789")).await;
        assert_eq!(r.expect_error(409, "duplicate_payment_method")["entityId"], bank);
        add(&app, &c, "ach", ach("000123456780")).await;
        // Another customer of the same merchant may hold the same card, with the same fingerprint.
        let other = app.create_named("Other", "Customer").await;
        let again = add(&app, &other, "cards", card("4111111111111111")).await;
        let first_fp = fingerprint(&app, &c, &first).await;
        assert_eq!(first_fp, fingerprint(&app, &other, &again).await, "same card, same fingerprint within a merchant");
        // Another merchant gets another fingerprint for the same card.
        let (_, key2) = app.other_merchant().await;
        let r = app.send(Method::POST, "/customers", Some(&key2), Some(json!({"firstName": "M", "lastName": "Two", "paymentMethodsCards": [card("4111111111111111")]})), &[]).await;
        let c2 = r.expect(200)["id"].as_str().unwrap().to_owned();
        let detail = app.send(Method::GET, &format!("/customers/{c2}"), Some(&key2), None, &[]).await;
        assert_ne!(detail.body["cards"][0]["fingerprint"], first_fp);
        // Deleted, the card can be added again.
        app.delete(&format!("/customers/{c}/payment-methods/{first}")).await.expect(200);
        add(&app, &c, "cards", card("4111111111111111")).await;
    }

    async fn defaults_and_status(app: TestApp) {
        let c = app.create_named("Def", "Ault").await;
        let a = add(&app, &c, "cards", card("4111111111111111")).await;
        let b = add(&app, &c, "cards", card("5555555555554444")).await;
        let bank = add(&app, &c, "ach", ach("000123456789")).await;
        let cust = app.get(&format!("/customers/{c}")).await.expect(200).clone();
        assert_eq!(cust["defaultPaymentMethodId"], a, "the first card becomes the default");
        assert_eq!(cust["defaultAchPaymentMethodId"], bank, "defaults are per kind");
        assert_eq!(cust["cards"].as_array().unwrap().len(), 2);
        assert_eq!(cust["achAccounts"].as_array().unwrap().len(), 1);
        assert_eq!(cust["cards"][0]["isDefault"], true);
        assert_eq!(cust["cards"][1]["isDefault"], false);
        let r = app.put(&format!("/customers/{c}/payment-methods/{b}/make-default"), json!(null)).await;
        assert_eq!(r.expect(200)["isDefault"], true);
        let cust = app.get(&format!("/customers/{c}")).await.body;
        assert_eq!(cust["defaultPaymentMethodId"], b);
        assert_eq!(cust["defaultAchPaymentMethodId"], bank, "making a card default leaves the ACH default");
        // Deactivating the default clears it; an inactive method cannot become default.
        let r = app.put(&format!("/customers/{c}/payment-methods/{b}/status"), json!({"status": "inactive"})).await;
        assert_eq!(r.expect(200)["status"], "inactive");
        assert_eq!(r.body["isDefault"], false);
        assert_eq!(app.get(&format!("/customers/{c}")).await.body["defaultPaymentMethodId"], json!(null));
        let r = app.put(&format!("/customers/{c}/payment-methods/{b}/make-default"), json!(null)).await;
        r.expect_error(409, "payment_method_inactive");
        app.put(&format!("/customers/{c}/payment-methods/{b}/status"), json!({"status": "active"})).await.expect(200);
        app.put(&format!("/customers/{c}/payment-methods/{b}/make-default"), json!(null)).await.expect(200);
        // Deleting the default clears it too.
        app.delete(&format!("/customers/{c}/payment-methods/{bank}")).await.expect(200);
        let cust = app.get(&format!("/customers/{c}")).await.body;
        assert_eq!(cust["defaultAchPaymentMethodId"], json!(null));
        assert_eq!(cust["defaultPaymentMethodId"], b);
        app.put(&format!("/customers/{c}/payment-methods/{a}/status"), json!({"status": "paused"})).await.expect_error(400, "validation_failed");
    }

    async fn updates_by_kind_with_versions(app: TestApp) {
        let c = app.create_named("Up", "Date").await;
        let k = add(&app, &c, "cards", card("4111111111111111")).await;
        let path = format!("/customers/{c}/payment-methods/{k}");
        let r = app.put(&path, json!({"name": "Travel", "expirationMonth": 3, "expirationYear": 39})).await;
        let v = r.expect(200);
        assert_eq!((v["name"].clone(), v["expirationMonth"].clone(), v["expirationYear"].clone(), v["version"].clone()), (json!("Travel"), json!(3), json!(2039), json!(2)));
        assert_eq!(r.header("etag"), Some("\"2\""));
        let r = app.put(&path, json!({"name": "Kept"})).await;
        assert_eq!(r.expect(200)["expirationYear"], 2039, "fields left out stay");
        app.put(&path, json!({"expirationMonth": 3})).await.expect_error(400, "validation_failed");
        app.put(&path, json!({"expirationMonth": 1, "expirationYear": 2020})).await.expect_error(400, "validation_failed");
        app.put(&path, json!({"accountType": 1})).await.expect_error(400, "unknown_field");
        app.put(&path, json!({"pan": "5555555555554444"})).await.expect_error(400, "unknown_field");
        let stale = app.send(Method::PUT, &path, Some(&app.key), Some(json!({"name": "x"})), &[("If-Match", "\"1\"")]).await;
        stale.expect_error(412, "version_mismatch");
        let r = app.put(&path, json!({"name": null})).await;
        assert_eq!(r.expect(200)["name"], json!(null));
        let bank = add(&app, &c, "ach", ach("000123456789")).await;
        let bpath = format!("/customers/{c}/payment-methods/{bank}");
        let r = app.put(&bpath, json!({"accountType": 2, "accountHolderType": 2, "name": "Savings"})).await;
        assert_eq!((r.expect(200)["accountType"].clone(), r.body["accountHolderType"].clone(), r.body["name"].clone()), (json!(2), json!(2), json!("Savings")));
        app.put(&bpath, json!({"name": null})).await.expect_error(400, "validation_failed");
        app.put(&bpath, json!({"accountType": 5})).await.expect_error(400, "validation_failed");
        app.put(&bpath, json!({"expirationMonth": 1, "expirationYear": 2030})).await.expect_error(400, "unknown_field");
        app.send(Method::DELETE, &bpath, Some(&app.key), None, &[("If-Match", "\"1\"")]).await.expect_error(412, "version_mismatch");
        assert_eq!(app.delete(&bpath).await.expect(200), &json!({"id": bank, "deleted": true}));
        app.get(&bpath).await.expect_error(404, "not_found");
    }

    async fn listing_filters_and_pages(app: TestApp) {
        let c = app.create_named("List", "Er").await;
        let mut v = card("4111111111111111");
        v["name"] = json!("Travel Visa");
        add(&app, &c, "cards", v).await;
        add(&app, &c, "cards", card("5555555555554444")).await;
        add(&app, &c, "ach", ach("000123456789")).await;
        let base = format!("/customers/{c}/payment-methods");
        assert_eq!(app.get(&base).await.expect(200)["total"], 3);
        assert_eq!(app.get(&format!("{base}?type=card")).await.body["total"], 2);
        assert_eq!(app.get(&format!("{base}?type=ach")).await.body["items"][0]["type"], "ach");
        assert_eq!(app.get(&format!("{base}?search=travel")).await.body["total"], 1);
        assert_eq!(app.get(&format!("{base}?search=4444")).await.body["items"][0]["brand"], "mastercard");
        assert_eq!(app.get(&format!("{base}?search=mastercard")).await.body["total"], 1);
        let p = app.get(&format!("{base}?pageSize=2&page=2&asc=true")).await;
        assert_eq!(p.expect(200)["items"].as_array().unwrap().len(), 1);
        assert_eq!(p.body["total"], 3);
        assert_eq!(p.body["items"][0]["type"], "ach");
        for bad in ["type=paypal", "pageSize=0", "orderBy=pan", "bogus=1"] {
            assert_eq!(app.get(&format!("{base}?{bad}")).await.status, 400, "{bad}");
        }
        let other = uuid::Uuid::now_v7();
        app.get(&format!("/customers/{other}/payment-methods")).await.expect_error(404, "not_found");
        app.post(&format!("/customers/{other}/payment-methods/cards"), card("4111111111111111")).await.expect_error(404, "not_found");
    }

    async fn reveal_needs_its_scope_and_is_audited(app: TestApp) {
        let c = app.create_named("Re", "Veal").await;
        let k = add(&app, &c, "cards", card("4111 1111 1111 1111")).await;
        let bank = add(&app, &c, "ach", ach("000123456789")).await;
        let path = format!("/customers/{c}/payment-methods/{k}/reveal");
        app.send(Method::POST, &path, Some(&app.key), None, &[]).await.expect_error(403, "insufficient_scope");
        let key = revealer(&app).await;
        let v = reveal(&app, &key, &c, &k).await;
        assert_eq!(v, json!({"id": k, "type": "card", "pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035}));
        let v = reveal(&app, &key, &c, &bank).await;
        assert_eq!(v, json!({"id": bank, "type": "ach", "accountNumber": "000123456789", "routingNumber": "021000021", "taxId": "123456789"}));
        // A retry with the same Idempotency-Key runs (and is audited) again: the secret is never stored for replay.
        let h = [("Idempotency-Key", "reveal-1")];
        let a = app.send(Method::POST, &path, Some(&key), None, &h).await;
        let b = app.send(Method::POST, &path, Some(&key), None, &h).await;
        assert_eq!(a.expect(200)["pan"], "4111111111111111");
        assert_eq!(b.expect(200)["pan"], "4111111111111111");
        assert_eq!(b.header("idempotent-replayed"), None);
        let events = app.get(&format!("/events?type=payment_method.revealed&entityId={k}")).await;
        assert_eq!(events.expect(200)["items"].as_array().unwrap().len(), 3, "every reveal is audited");
        let (_, other) = app.other_merchant().await;
        app.send(Method::POST, &path, Some(&other), None, &[]).await.expect_error(403, "insufficient_scope");
    }

    async fn vault_events_carry_no_card_data(app: TestApp) {
        let c = app.create_named("Ev", "Ents").await;
        let k = add(&app, &c, "cards", card("4111111111111111")).await;
        let k2 = add(&app, &c, "cards", card("5555555555554444")).await;
        app.put(&format!("/customers/{c}/payment-methods/{k}"), json!({"name": "n"})).await.expect(200);
        app.put(&format!("/customers/{c}/payment-methods/{k2}/make-default"), json!(null)).await.expect(200);
        reveal(&app, &revealer(&app).await, &c, &k).await;
        app.delete(&format!("/customers/{c}/payment-methods/{k}")).await.expect(200);
        let all = app.get(&format!("/events?entityId={k}")).await;
        let types: Vec<&str> = all.body["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["payment_method.created", "payment_method.default_changed", "payment_method.updated", "payment_method.revealed", "payment_method.deleted"]);
        // Every text of the feed but its ids and instants, which may hold any digits.
        let feed = app.get("/events?limit=500").await.body;
        let mut texts = Vec::new();
        strings(&feed, &mut texts);
        texts.retain(|t| uuid::Uuid::parse_str(t).is_err() && chrono::DateTime::parse_from_rfc3339(t).is_err());
        for secret in ["4111111111111111", "5555555555554444", "411111", "1111"] {
            assert!(!texts.iter().any(|t| t.contains(secret)), "event feed contains {secret}: {texts:?}");
        }
    }

    async fn inline_methods_are_all_or_nothing(app: TestApp) {
        let body = json!({
            "firstName": "In", "lastName": "Line",
            "paymentMethodsCards": [card("4111111111111111"), {"pan": "444466666655555", "expirationMonth": 1, "expirationYear": 2035}],
            "paymentMethodsAchAccounts": [ach("000123456789")]
        });
        let r = app.post("/customers", body).await;
        let b = r.expect_error(400, "validation_failed");
        assert!(b["errors"]["paymentMethodsCards[1].pan"].is_array(), "{b}");
        assert_eq!(app.get("/customers").await.body["total"], 0, "nothing stored");
        let body = json!({
            "firstName": "In", "lastName": "Line",
            "paymentMethodsCards": [card("4111111111111111"), card("5555 5555 5555 4444")],
            "paymentMethodsAchAccounts": [ach("000123456789"), ach("999988887777")]
        });
        let id = app.create(body).await;
        let c = app.get(&format!("/customers/{id}")).await.expect(200).clone();
        assert_eq!(c["cards"].as_array().unwrap().len(), 2);
        assert_eq!(c["achAccounts"].as_array().unwrap().len(), 2);
        assert_eq!(c["defaultPaymentMethodId"], c["cards"][0]["id"]);
        let dup = json!({"firstName": "a", "lastName": "b", "paymentMethodsCards": [card("4111111111111111"), card("4111-1111-1111-1111")]});
        let r = app.post("/customers", dup).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["paymentMethodsCards[1].pan"].is_array());
        let (_, no_pm) = app.key_with(&[Scope::CustomersWrite, Scope::CustomersRead]).await;
        let r = app.send(Method::POST, "/customers", Some(&no_pm), Some(json!({"firstName": "a", "lastName": "b", "paymentMethodsCards": [card("4111111111111111")]})), &[]).await;
        r.expect_error(403, "insufficient_scope");
        app.send(Method::POST, "/customers", Some(&no_pm), Some(json!({"firstName": "a", "lastName": "b", "paymentMethodsCards": []})), &[]).await.expect(200);
    }

    async fn deleting_a_customer_destroys_its_methods(app: TestApp) {
        let id = app.create(json!({"firstName": "Gone", "lastName": "Soon", "paymentMethodsCards": [card("4111111111111111")]})).await;
        let pm = app.get(&format!("/customers/{id}")).await.body["cards"][0]["id"].as_str().unwrap().to_owned();
        app.delete(&format!("/customers/{id}")).await.expect(200);
        let key = revealer(&app).await;
        let r = app.send(Method::POST, &format!("/customers/{id}/payment-methods/{pm}/reveal"), Some(&key), None, &[]).await;
        r.expect_error(404, "not_found");
        let left = count_secrets(&app.test_db.url).await;
        assert_eq!(left, 0, "no ciphertext remains");
    }

    async fn other_merchants_cannot_touch_methods(app: TestApp) {
        let c = app.create_named("Mine", "Only").await;
        let k = add(&app, &c, "cards", card("4111111111111111")).await;
        let (_, other) = app.other_merchant().await;
        let o = Some(other.as_str());
        app.send(Method::GET, &format!("/customers/{c}/payment-methods"), o, None, &[]).await.expect_error(404, "not_found");
        app.send(Method::GET, &format!("/customers/{c}/payment-methods/{k}"), o, None, &[]).await.expect_error(404, "not_found");
        app.send(Method::PUT, &format!("/customers/{c}/payment-methods/{k}"), o, Some(json!({"name": "x"})), &[]).await.expect_error(404, "not_found");
        app.send(Method::PUT, &format!("/customers/{c}/payment-methods/{k}/make-default"), o, None, &[]).await.expect_error(404, "not_found");
        app.send(Method::DELETE, &format!("/customers/{c}/payment-methods/{k}"), o, None, &[]).await.expect_error(404, "not_found");
        app.send(Method::POST, &format!("/customers/{c}/payment-methods/cards"), o, Some(card("5555555555554444")), &[]).await.expect_error(404, "not_found");
        let (_, read_only) = app.key_with(&[Scope::CustomersRead]).await;
        app.send(Method::POST, &format!("/customers/{c}/payment-methods/cards"), Some(&read_only), Some(card("5555555555554444")), &[]).await.expect_error(403, "insufficient_scope");
        app.get(&format!("/customers/{c}/payment-methods/{k}")).await.expect(200);
    }

    async fn key_rotation_reencrypts_everything(app: TestApp) {
        let c = app.create_named("Ro", "Tate").await;
        let old_card = add(&app, &c, "cards", card("4111111111111111")).await;
        let old_bank = add(&app, &c, "ach", ach("000123456789")).await;
        let report = app.db.rotate_keys(&test_vault(&app)).await.unwrap();
        assert_eq!(report.version, 2);
        assert_eq!(report.reencrypted, 2);
        // The running server learns the new key from the database on its next write.
        let new_card = add(&app, &c, "cards", card("5555555555554444")).await;
        let key = revealer(&app).await;
        assert_eq!(reveal(&app, &key, &c, &old_card).await["pan"], "4111111111111111");
        assert_eq!(reveal(&app, &key, &c, &new_card).await["pan"], "5555555555554444");
        let bank = reveal(&app, &key, &c, &old_bank).await;
        assert_eq!((bank["accountNumber"].clone(), bank["taxId"].clone()), (json!("000123456789"), json!("123456789")));
        let versions = key_versions(&app.test_db.url).await;
        assert_eq!(versions, vec![(2, 3)], "no row left on the old version");
        let again = app.db.rotate_keys(&test_vault(&app)).await.unwrap();
        assert_eq!((again.version, again.reencrypted), (3, 3));
        assert_eq!(reveal(&app, &key, &c, &old_card).await["pan"], "4111111111111111");
    }
}

async fn fingerprint(app: &TestApp, customer: &str, id: &str) -> Value {
    app.get(&format!("/customers/{customer}/payment-methods/{id}")).await.body["fingerprint"].clone()
}

/// A vault with the harness's fixed master key.
fn test_vault(app: &TestApp) -> clientele::crypto::Vault {
    let cfg = app.test_db.config();
    clientele::crypto::Vault::new(clientele::crypto::load_master_key(cfg.master_key.as_ref(), &cfg.data_dir).unwrap())
}

async fn key_versions(url: &str) -> Vec<(i64, i64)> {
    crate::helpers::int_pairs(url, "SELECT key_version, COUNT(*) FROM payment_methods GROUP BY key_version ORDER BY 1")
        .await
}

async fn count_secrets(url: &str) -> i64 {
    crate::helpers::int_pairs(
        url,
        "SELECT COUNT(*), CAST(0 AS BIGINT) FROM payment_methods WHERE secret IS NOT NULL OR tax_id_secret IS NOT NULL",
    )
    .await[0]
        .0
}

both! {
    async fn stored_fingerprints_are_keyed_by_the_master_key(app: TestApp) {
        use clientele::crypto::{MasterKey, Vault};
        use sha2::{Digest, Sha256};
        let c = app.create_named("Finger", "Print").await;
        let pan = "4111111111111111";
        app.post(&format!("/customers/{c}/payment-methods/cards"), card(pan)).await.expect(200);
        let stored = crate::helpers::text(&app.test_db.url, "SELECT fingerprint FROM payment_methods").await;
        let merchant = app.merchant;
        // It is the HMAC under the key derived from this server's master key...
        assert_eq!(stored, crate::helpers::test_vault().fingerprint(merchant, "card", pan.as_bytes()));
        // ...which no other master key, nor any unkeyed digest of the number, reproduces.
        let other = Vault::new(MasterKey::from_base64("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").unwrap());
        assert_ne!(stored, other.fingerprint(merchant, "card", pan.as_bytes()));
        use base64::Engine;
        let sha = Sha256::digest(pan.as_bytes());
        for unkeyed in [
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sha[..20]),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha),
            sha.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        ] {
            assert_ne!(stored, unkeyed);
        }
    }
}

/// SQLite: a deleted card's ciphertext and fingerprint are in no file of the
/// database soon after the delete (the database overwrites them on delete, the
/// WAL is emptied within about a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_card_leaves_the_sqlite_files() {
    let app = TestApp::spawn(clientele::store::Backend::Sqlite).await.unwrap();
    let url = app.test_db.url.clone();
    let c = app
        .create(json!({"firstName": "Gone", "lastName": "Soon", "paymentMethodsCards": [card("4111111111111111")]}))
        .await;
    let ciphertext = crate::helpers::blob(&url, "SELECT secret FROM payment_methods").await;
    let fingerprint = crate::helpers::text(&url, "SELECT fingerprint FROM payment_methods").await;
    app.delete(&format!("/customers/{c}")).await.expect(200);
    let db = app.test_db.dir.path().join("clientele.db");
    let files = [db.clone(), db.with_extension("db-wal")];
    let holds = |needle: &[u8]| {
        files.iter().any(|f| std::fs::read(f).unwrap_or_default().windows(needle.len()).any(|w| w == needle))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while (holds(&ciphertext) || holds(fingerprint.as_bytes())) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!holds(&ciphertext), "the card's ciphertext is still in a database file");
    assert!(!holds(fingerprint.as_bytes()), "the card's fingerprint is still in a database file");
}

both! {
    async fn bank_details_change_through_put_and_patch(app: TestApp) {
        let c = app.create_named("Bank", "Mover").await;
        let bank = add(&app, &c, "ach", ach("000123456789")).await;
        let other = add(&app, &c, "ach", ach("000555555555")).await;
        let path = format!("/customers/{c}/payment-methods/{bank}");
        let before = app.get(&path).await.expect(200).clone();
        let url = app.test_db.url.clone();
        // The first method added (ids are time-ordered).
        let sealed = || crate::helpers::blob(&url, "SELECT secret FROM payment_methods ORDER BY id LIMIT 1");
        let sealed_before = sealed().await;
        // PUT: new routing and account numbers, validated, sealed again, fingerprinted again.
        let r = app.put(&path, json!({"routingNumber": "011000015", "accountNumber": "9876-5432-10"})).await;
        let v = r.expect(200).clone();
        assert_eq!((v["routingNumber"].clone(), v["accountNumberLast4"].clone(), v["taxIdLast4"].clone()), (json!("011000015"), json!("3210"), json!("6789")));
        assert_ne!(v["fingerprint"], before["fingerprint"]);
        assert_ne!(sealed().await, sealed_before);
        let key = revealer(&app).await;
        let shown = reveal(&app, &key, &c, &bank).await;
        assert_eq!((shown["accountNumber"].clone(), shown["routingNumber"].clone(), shown["taxId"].clone()), (json!("9876543210"), json!("011000015"), json!("123456789")));
        // The fingerprint is the one a new method with these details gets: adding it again is a duplicate.
        let mut same = ach("9876543210");
        same["routingNumber"] = json!("011000015");
        let dup = app.post(&format!("/customers/{c}/payment-methods/ach"), same).await;
        assert_eq!(dup.expect_error(409, "duplicate_payment_method")["entityId"], bank);
        // Moving onto another method's account is a 409 naming it, and changes nothing.
        let r = app.patch(&path, json!({"routingNumber": "021000021", "accountNumber": "000555555555"})).await;
        assert_eq!(r.expect_error(409, "duplicate_payment_method")["entityId"], other);
        assert_eq!(app.get(&path).await.expect(200)["routingNumber"], "011000015");
        // PATCH: only the routing number; the stored account number goes with it into the fingerprint.
        let r = app.patch(&path, json!({"routingNumber": "021000021"})).await;
        assert_eq!((r.expect(200)["routingNumber"].clone(), r.body["accountNumberLast4"].clone()), (json!("021000021"), json!("3210")));
        // The tax id changes, and null removes it.
        let r = app.patch(&path, json!({"taxId": "98-7654321"})).await;
        assert_eq!(r.expect(200)["taxIdLast4"], "4321");
        let r = app.patch(&path, json!({"taxId": null})).await;
        assert_eq!(r.expect(200)["taxIdLast4"], json!(null));
        assert_eq!(reveal(&app, &key, &c, &bank).await.get("taxId").cloned().unwrap_or(Value::Null), json!(null));
        // Bad details are 400s; a card has none.
        for (body, field) in [
            (json!({"routingNumber": "021000022"}), "routingNumber"),
            (json!({"accountNumber": "12"}), "accountNumber"),
            (json!({"accountNumber": null}), "accountNumber"),
            (json!({"taxId": "12"}), "taxId"),
        ] {
            let r = app.patch(&path, body.clone()).await;
            assert!(r.expect_error(400, "validation_failed")["errors"][field].is_array(), "{body}: {}", r.body);
        }
        let k = add(&app, &c, "cards", card("4111111111111111")).await;
        let kpath = format!("/customers/{c}/payment-methods/{k}");
        app.patch(&kpath, json!({"routingNumber": "021000021"})).await.expect_error(400, "unknown_field");
        // GET -> PUT and GET -> PATCH of the whole representation change only what was edited.
        let mut whole = app.get(&kpath).await.expect(200).clone();
        whole["name"] = json!("Renamed");
        assert_eq!(app.put(&kpath, whole.clone()).await.expect(200)["name"], "Renamed");
        whole["status"] = json!("inactive");
        let r = app.patch(&kpath, whole).await;
        assert_eq!((r.expect(200)["status"].clone(), r.body["isDefault"].clone()), (json!("inactive"), json!(false)));
        let stale = app.send(Method::PATCH, &kpath, Some(&app.key), Some(json!({"name": "x"})), &[("If-Match", "\"1\"")]).await;
        stale.expect_error(412, "version_mismatch");
        let events = app.get(&format!("/events?type=payment_method.updated&entityId={bank}")).await;
        assert_eq!(events.expect(200)["items"].as_array().unwrap().len(), 4, "an event per change");
        assert!(!events.body.to_string().contains("987654") && !events.body.to_string().contains("3210"));
    }
}

/// The strings of a JSON value, keys included.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.iter().for_each(|(k, v)| {
            out.push(k);
            strings(v, out)
        }),
        _ => {}
    }
}
