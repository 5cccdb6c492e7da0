//! Point-of-sale credit: financing plans, accounts, lookup, search, close, quotes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

fn seed_plan() -> Value {
    json!({"planName": "EMP - Regular Interest", "offerCategory": "equal_billing", "apr": 0.0999,
        "terms": [{"term": 3, "adminFee": 0}, {"term": 6, "adminFee": 50.00}, {"term": 12, "adminFee": 49.99}]})
}

fn account_body() -> Value {
    json!({"accountType": "consumer", "creditLimit": 1000.00, "accountInterestRate": 0.3099, "riskRating": "L",
        "preferredLanguage": "en-CA", "tosAgreement": true, "paymentProtection": false,
        "securityQuestions": [{"id": 4, "text": "What is the name of your favourite childhood friend?", "answer": "  Jimmy  Page "},
                              {"id": 9, "text": "What is your favourite movie?", "answer": "The Godfather"}]})
}

async fn customer(app: &TestApp, state: &str) -> String {
    app.create(json!({"firstName": "Flexiti", "lastName": "MITester", "email": "alan.turing@example.com", "mobilePhoneNumber": "+1 416 555 2222",
        "dateOfBirth": "1980-01-31", "billingAddress": {"line1": "123 Any Street", "city": "Toronto", "state": state, "postalCode": "M6S2R5", "country": "CA"}})).await
}

async fn open(app: &TestApp, customer: &str) -> Value {
    app.post(&format!("/customers/{customer}/credit-accounts"), account_body()).await.expect(200).clone()
}

both! {
    async fn financing_plans(app: TestApp) {
        let r = app.put("/financing-plans/4", seed_plan()).await;
        let v = r.expect(200);
        assert_eq!(v["planId"], 4);
        assert_eq!(v["apr"], 0.0999);
        assert_eq!(v["terms"], json!([{"term": 3, "adminFee": 0.0}, {"term": 6, "adminFee": 50.0}, {"term": 12, "adminFee": 49.99}]));
        assert_eq!(app.get("/financing-plans/4").await.expect(200)["planName"], "EMP - Regular Interest");
        let mut changed = seed_plan();
        changed["planName"] = json!("Renamed");
        app.put("/financing-plans/4", changed).await.expect(200);
        assert_eq!(app.get("/financing-plans").await.expect(200)["items"][0]["planName"], "Renamed");
        for (body, field) in [(json!({"planName": "x", "offerCategory": "y", "apr": 1.5, "terms": [{"term": 3}]}), "apr"),
            (json!({"planName": "x", "offerCategory": "y", "apr": 0.1, "terms": []}), "terms"),
            (json!({"planName": "x", "offerCategory": "y", "apr": 0.1, "terms": [{"term": 0}]}), "terms[0].term"),
            (json!({"planName": "x", "offerCategory": "y", "apr": 0.1, "terms": [{"term": 3, "adminFee": 1.234}]}), "terms[0].adminFee"),
            (json!({"offerCategory": "y", "apr": 0.1, "terms": [{"term": 3}]}), "planName")] {
            let r = app.put("/financing-plans/5", body.clone()).await;
            assert!(r.expect_error(400, "validation_failed")["errors"][field].is_array(), "{body}");
        }
        app.put("/financing-plans/abc", seed_plan()).await.expect_error(400, "validation_failed");
        let (_, read_only) = app.key_with(&[clientele::auth::Scope::CustomersRead]).await;
        app.send(Method::PUT, "/financing-plans/7", Some(&read_only), Some(seed_plan()), &[]).await.expect_error(403, "insufficient_scope");
        assert_eq!(app.delete("/financing-plans/4").await.expect(200), &json!({"planId": 4, "deleted": true}));
        app.get("/financing-plans/4").await.expect_error(404, "not_found");
    }

    async fn open_lookup_and_search(app: TestApp) {
        app.put("/financing-plans/1", json!({"planName": "90 Days Grace, Equal Payments Regular Interest", "offerCategory": "equal_billing",
            "apr": 0.0, "terms": [{"term": 12}, {"term": 18}, {"term": 24}, {"term": 36}]})).await.expect(200);
        let c = customer(&app, "ON").await;
        let opened = open(&app, &c).await;
        let number = opened["accountNumber"].as_str().unwrap().to_owned();
        assert!(number.len() == 12 && number.bytes().all(|b| b.is_ascii_digit()), "{number}");
        let ending = opened["cardEndingIn"].as_str().unwrap().to_owned();
        assert_eq!(ending.len(), 4);
        // The virtual card: 16 digits, Luhn-valid, under the default IIN, encrypted.
        let vcc = stored_vcc(&app, &number).await;
        assert!(vcc.len() == 16 && vcc.starts_with("990000") && vcc.ends_with(&ending), "{vcc}");
        let l = app.get(&format!("/credit-accounts/lookup?accountNumber={number}")).await;
        let v = l.expect(200).clone();
        assert_eq!(v["availableCredit"], 1000.0);
        assert_eq!(v["customerId"], c);
        assert_eq!(v["email"], "a***g@example.com");
        assert_eq!(v["phoneNumber"], "***-***-2222");
        assert_eq!(v["securityQid"], json!([{"id": 4, "text": "What is the name of your favourite childhood friend?"}, {"id": 9, "text": "What is your favourite movie?"}]));
        assert_eq!(v["offerTypes"], json!([{"planName": "90 Days Grace, Equal Payments Regular Interest", "planId": 1, "offerCategory": "equal_billing", "termOptions": ["12", "18", "24", "36"]}]));
        assert_eq!((v["province"].clone(), v["postalCode"].clone(), v["cardEndingIn"].clone(), v["riskRating"].clone()), (json!("ON"), json!("M6S 2R5"), json!(ending), json!("L")));
        assert!(!v.to_string().to_lowercase().contains("jimmy") && !v.to_string().contains("Godfather"), "answers never shown");
        assert_eq!(app.get(&format!("/credit-accounts/lookup?vccNumber={vcc}")).await.expect(200)["accountNumber"], number);
        assert_eq!(app.get(&format!("/credit-accounts/lookup?customerId={c}")).await.expect(200)["accountNumber"], number);
        for bad in ["", "?accountNumber=1&customerId=2", "?customerId=nope", "?other=1"] {
            assert_eq!(app.get(&format!("/credit-accounts/lookup{bad}")).await.status, 400, "{bad}");
        }
        app.get("/credit-accounts/lookup?accountNumber=999").await.expect_error(404, "not_found");
        let s = app.get("/credit-accounts/search?firstName=FLEXITI&lastName=mitester&dob=1980-01-31").await;
        let items = s.expect(200)["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1);
        assert_eq!((items[0]["accountNumber"].clone(), items[0]["accountStatus"].clone(), items[0]["accountStatusReasonCode"].clone()), (json!(number), json!("open"), json!("NNOR")));
        assert_eq!((items[0]["creditLimit"].clone(), items[0]["customerAccountType"].clone(), items[0]["originatingMerchantId"].clone()), (json!(1000.0), json!("consumer"), json!(app.merchant.to_string())));
        assert_eq!(app.get("/credit-accounts/search?firstName=flexiti&lastName=mitester&dob=1980-01-31&postalCode=m6s%202r5").await.body["total"], 1);
        assert_eq!(app.get("/credit-accounts/search?firstName=flexiti&lastName=mitester&dob=1980-01-31&postalCode=H0H0H0").await.body["total"], 0);
        let r = app.get("/credit-accounts/search?firstName=flexiti").await;
        let b = r.expect_error(400, "validation_failed");
        assert!(b["errors"]["lastName"].is_array() && b["errors"]["dob"].is_array());
        // Another merchant sees none of it.
        let (_, other) = app.other_merchant().await;
        app.send(Method::GET, &format!("/credit-accounts/lookup?accountNumber={number}"), Some(&other), None, &[]).await.expect_error(404, "not_found");
        // Answers are stored as argon2 hashes.
        let hashes = crate::helpers::int_pairs(&app.test_db.url, "SELECT COUNT(*), CAST(0 AS BIGINT) FROM credit_security_questions WHERE answer_hash LIKE '$argon2id$%'").await;
        assert_eq!(hashes[0].0, 2);
    }

    async fn open_validation(app: TestApp) {
        let c = customer(&app, "ON").await;
        let path = format!("/customers/{c}/credit-accounts");
        for (field, value) in [("accountType", json!("personal")), ("creditLimit", json!(0)), ("creditLimit", json!(10.005)),
            ("accountInterestRate", json!(1.2)), ("riskRating", json!("low")), ("securityQuestions", json!([{"id": 0, "text": "q", "answer": "a"}]))] {
            let mut body = account_body();
            body[field] = value;
            let r = app.post(&path, body).await;
            let b = r.expect_error(400, "validation_failed");
            assert!(b["errors"].as_object().unwrap().keys().any(|k| k.starts_with(field)), "{field}: {b}");
        }
        let unknown = uuid::Uuid::now_v7();
        app.post(&format!("/customers/{unknown}/credit-accounts"), account_body()).await.expect_error(404, "not_found");
        let (_, no_credit) = app.key_with(&[clientele::auth::Scope::CustomersWrite, clientele::auth::Scope::CustomersRead]).await;
        app.send(Method::POST, &path, Some(&no_credit), Some(account_body()), &[]).await.expect_error(403, "insufficient_scope");
    }

    async fn seed_004_quotes_to_the_cent(app: TestApp) {
        app.put("/financing-plans/4", seed_plan()).await.expect(200);
        let ontario = open(&app, &customer(&app, "ON").await).await["accountNumber"].as_str().unwrap().to_owned();
        let r = app.post(&format!("/credit-accounts/{ontario}/calculate-interest"), json!({"amount": 10.5})).await;
        let q = r.expect(200).clone();
        assert_eq!(q["amount"], 10.5);
        assert_eq!(q["accountType"], "consumer");
        assert_eq!(q["customer"], json!({"air": 0.3099, "availableCredit": 1000.0, "firstName": "Flexiti", "lastName": "MITester", "categoryType": "preferred"}));
        assert_eq!(q["regularPurchase"], json!({"termAmount": 10.5, "air": 0.3099, "fees": [], "verify": true}));
        let plan = &q["promotionalPurchase"][0];
        assert_eq!((plan["planId"].clone(), plan["planName"].clone()), (json!(4), json!("EMP - Regular Interest")));
        let amounts: Vec<f64> = plan["terms"].as_array().unwrap().iter().map(|t| t["termAmount"].as_f64().unwrap()).collect();
        assert_eq!(amounts, [3.56, 10.38, 5.32]);
        assert_eq!(plan["terms"][0]["fees"], json!([]));
        assert_eq!(plan["terms"][1]["fees"][0]["amount"], 50.0);
        assert_eq!(plan["terms"][1]["fees"][0]["type"], "admin_total");
        assert_eq!(plan["terms"][2]["fees"][0]["amount"], 49.99);
        assert_eq!(plan["terms"][0]["annualRates"]["rate"], 0.0999);
        assert_eq!(plan["terms"][0]["annualRates"]["type"], "APR");
        // A Quebec customer is charged no admin fee.
        let quebec = open(&app, &customer(&app, "QC").await).await["accountNumber"].as_str().unwrap().to_owned();
        let q = app.post(&format!("/credit-accounts/{quebec}/calculate-interest"), json!({"amount": "10.50"})).await.expect(200).clone();
        let terms = q["promotionalPurchase"][0]["terms"].as_array().unwrap().clone();
        assert_eq!(terms[1]["termAmount"], 1.8);
        assert!(terms.iter().all(|t| t["fees"] == json!([])));
        for bad in [json!(0), json!(-5), json!(1.234), json!("ten"), json!(null)] {
            let r = app.post(&format!("/credit-accounts/{ontario}/calculate-interest"), json!({"amount": bad})).await;
            assert!(r.expect_error(400, "validation_failed")["errors"]["amount"].is_array(), "{bad}");
        }
        app.post("/credit-accounts/123/calculate-interest", json!({"amount": 1})).await.expect_error(404, "not_found");
        app.post("/credit-accounts/12a/calculate-interest", json!({"amount": 1})).await.expect_error(400, "validation_failed");
    }

    async fn closing_is_final(app: TestApp) {
        let number = open(&app, &customer(&app, "ON").await).await["accountNumber"].as_str().unwrap().to_owned();
        let r = app.post(&format!("/credit-accounts/{number}/close"), json!({})).await;
        assert_eq!(r.expect(200), &json!({"accountNumber": number, "accountStatus": "closed"}));
        assert_eq!(app.get(&format!("/credit-accounts/lookup?accountNumber={number}")).await.expect(200)["accountStatus"], "closed");
        app.post(&format!("/credit-accounts/{number}/close"), json!({})).await.expect_error(409, "account_closed");
        app.post(&format!("/credit-accounts/{number}/calculate-interest"), json!({"amount": 5})).await.expect_error(409, "account_closed");
        let types: Vec<String> = app.get("/events?limit=500").await.body["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
        assert!(types.contains(&"credit_account.opened".to_owned()) && types.contains(&"credit_account.closed".to_owned()));
    }

    async fn merchant_iin_and_rotation(app: TestApp) {
        let tenant = crate::helpers::tenant_of(app.merchant, &app.db).await;
        app.db.configure_merchant(tenant, Some("601234"), None).await.unwrap();
        let number = open(&app, &customer(&app, "ON").await).await["accountNumber"].as_str().unwrap().to_owned();
        let vcc = stored_vcc(&app, &number).await;
        assert!(vcc.starts_with("601234"), "{vcc}");
        let cfg = app.test_db.config();
        let vault = clientele::crypto::Vault::new(clientele::crypto::load_master_key(cfg.master_key.as_ref(), &cfg.data_dir).unwrap());
        assert_eq!(app.db.rotate_keys(&vault).await.unwrap().reencrypted, 1);
        assert_eq!(stored_vcc(&app, &number).await, vcc, "the card survives rotation");
    }
}

/// The virtual card number, opened from the database with the test master key.
async fn stored_vcc(app: &TestApp, number: &str) -> String {
    let cfg = app.test_db.config();
    let vault = clientele::crypto::Vault::new(
        clientele::crypto::load_master_key(cfg.master_key.as_ref(), &cfg.data_dir).unwrap(),
    );
    app.db.load_keys(&vault).await.unwrap();
    let blob = crate::helpers::blob(
        &app.test_db.url,
        &format!("SELECT vcc_secret FROM credit_accounts WHERE account_number = '{number}'"),
    )
    .await;
    let clear = vault.open(&blob, &clientele::store::credit::vcc_aad(app.merchant, number)).unwrap();
    let vcc = String::from_utf8(clear.to_vec()).unwrap();
    assert!(!blob.windows(16).any(|w| w == vcc.as_bytes()));
    assert!(crate::helpers::luhn_valid(&vcc), "{vcc} is Luhn-valid");
    vcc
}

both! {
    async fn writes_go_on_while_security_answers_are_hashed(app: TestApp) {
        use std::time::{Duration, Instant};
        let c = customer(&app, "ON").await;
        let mut body = account_body();
        body["securityQuestions"] = json!((1..=5).map(|i| json!({"id": i, "text": format!("Question {i}?"), "answer": format!("answer number {i}")})).collect::<Vec<_>>());
        let started = Instant::now();
        let opening = {
            let (client, url, key) = (app.client.clone(), app.url(&format!("/customers/{c}/credit-accounts")), app.key.clone());
            tokio::spawn(async move { client.post(url).bearer_auth(key).json(&body).send().await.unwrap().status().as_u16() })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Other writes while the account opens: none waits for its answers to be hashed.
        let (mut writes, mut slowest) = (0, Duration::ZERO);
        while !opening.is_finished() {
            let t = Instant::now();
            app.create_named("Meanwhile", "Writing").await;
            slowest = slowest.max(t.elapsed());
            writes += 1;
        }
        let took = started.elapsed();
        assert_eq!(opening.await.unwrap(), 200);
        assert!(writes >= 1, "no write ran during the opening ({took:?})");
        assert!(slowest < took / 2, "a write waited {slowest:?} while an account opened in {took:?}");
    }

    async fn every_list_in_a_body_is_bounded(app: TestApp) {
        let c = customer(&app, "ON").await;
        let mut body = account_body();
        body["securityQuestions"] = json!((1..=6).map(|i| json!({"id": i, "text": "Question?", "answer": "answer"})).collect::<Vec<_>>());
        let r = app.post(&format!("/customers/{c}/credit-accounts"), body).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["securityQuestions"].is_array(), "{}", r.body);
        let mut plan = seed_plan();
        plan["terms"] = json!((1..=25).map(|t| json!({"term": t})).collect::<Vec<_>>());
        let r = app.put("/financing-plans/3", plan).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["terms"].is_array());
        let cards: Vec<Value> = (0..11).map(|_| json!({"pan": "4111111111111111", "expirationMonth": 1, "expirationYear": 2040})).collect();
        let r = app.post("/customers", json!({"firstName": "Many", "lastName": "Cards", "paymentMethodsCards": cards})).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["paymentMethodsCards"].is_array());
        let accounts: Vec<Value> = (0..11).map(|_| json!({"name": "x", "routingNumber": "021000021", "accountType": 1, "accountHolderType": 1})).collect();
        let r = app.post("/customers", json!({"firstName": "Many", "lastName": "Accounts", "paymentMethodsAchAccounts": accounts})).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["paymentMethodsAchAccounts"].is_array());
        let link = json!({"providerConfigId": "cfg", "provider": "p", "paymentProvider": {"availableCurrencies": vec!["CAD"; 201]}});
        let r = app.post(&format!("/customers/{c}/providers"), link).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["paymentProvider.availableCurrencies"].is_array(), "{}", r.body);
        // A body of thousands of unknown keys gets a bounded answer.
        let mut wide = serde_json::Map::new();
        for i in 0..5000 {
            wide.insert(format!("k{i}"), json!(1));
        }
        wide.insert("firstName".into(), json!("A"));
        wide.insert("lastName".into(), json!("B"));
        let r = app.post("/customers", Value::Object(wide)).await;
        let errors = r.expect_error(400, "unknown_field")["errors"].as_object().unwrap().len();
        assert!(errors <= 101, "{errors} entries");
    }
}

both! {
    async fn lang_picks_the_language_of_security_questions(app: TestApp) {
        let c = customer(&app, "QC").await;
        let mut body = account_body();
        body["preferredLanguage"] = json!("fr-CA");
        body["securityQuestions"] = json!([
            {"id": 4, "text": {"en-CA": "What is the name of your favourite childhood friend?", "fr-CA": "Quel est le nom de votre ami d'enfance préféré?"}, "answer": "Jimmy"},
            {"id": 9, "text": "What is your favourite movie?", "answer": "The Godfather"},
        ]);
        let n = app.post(&format!("/customers/{c}/credit-accounts"), body).await.expect(200)["accountNumber"].as_str().unwrap().to_owned();
        let texts = |r: &crate::helpers::Resp| -> Vec<String> {
            r.expect(200)["securityQid"].as_array().unwrap().iter().map(|q| q["text"].as_str().unwrap().to_owned()).collect()
        };
        let app = &app;
        let lookup = |lang: &str| {
            let path = format!("/credit-accounts/lookup?accountNumber={n}{lang}");
            async move { app.get(&path).await }
        };
        let fr = "Quel est le nom de votre ami d'enfance préféré?";
        let en = "What is the name of your favourite childhood friend?";
        assert_eq!(texts(&lookup("").await), [fr, "What is your favourite movie?"], "the account's own language by default");
        assert_eq!(texts(&lookup("&lang=en-CA").await)[0], en);
        assert_eq!(texts(&lookup("&lang=en").await)[0], en, "the same language in another region");
        assert_eq!(texts(&lookup("&lang=fr").await)[0], fr);
        assert_eq!(texts(&lookup("&lang=fr-CA").await)[1], "What is your favourite movie?", "a question in one language only");
        lookup("&lang=de").await.expect_error(400, "validation_failed");
        // Search takes lang too; unknown parameters stay refused everywhere.
        let search = "/credit-accounts/search?firstName=Flexiti&lastName=MITester&dob=1980-01-31";
        assert_eq!(app.get(&format!("{search}&lang=fr-CA")).await.expect(200)["total"], 1);
        app.get(&format!("{search}&lang=xx")).await.expect_error(400, "validation_failed");
        app.get(&format!("{search}&colour=red")).await.expect_error(400, "unknown_field");
        let quote = format!("/credit-accounts/{n}/calculate-interest");
        app.post(&format!("{quote}?lang=fr-CA"), json!({"amount": 100})).await.expect(200);
        let r = app.post(&format!("{quote}?amount=100"), json!({"amount": 100})).await;
        assert!(r.expect_error(400, "unknown_field")["errors"]["amount"].is_array(), "{}", r.body);
        // A text in a language the service does not know is refused.
        let mut bad = account_body();
        bad["securityQuestions"][0]["text"] = json!({"de": "Wie heißt ...?"});
        let r = app.post(&format!("/customers/{c}/credit-accounts"), bad).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["securityQuestions[0].text.de"].is_array(), "{}", r.body);
    }
}

both! {
    async fn the_virtual_card_reaches_the_merchant_once_then_by_reveal(app: TestApp) {
        let c = customer(&app, "ON").await;
        let path = format!("/customers/{c}/credit-accounts");
        let h = [("Idempotency-Key", "open-vcc-1")];
        let first = app.send(Method::POST, &path, Some(&app.key), Some(account_body()), &h).await;
        let opened = first.expect(200).clone();
        let number = opened["accountNumber"].as_str().unwrap().to_owned();
        let vcc = opened["vccNumber"].as_str().expect("the full number in the opening reply").to_owned();
        assert_eq!(vcc, stored_vcc(&app, &number).await);
        assert!(vcc.ends_with(opened["cardEndingIn"].as_str().unwrap()));
        // A replay of the opening answers without it: the full number is never stored.
        let replay = app.send(Method::POST, &path, Some(&app.key), Some(account_body()), &h).await;
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.expect(200)["accountNumber"], json!(number));
        assert_eq!(replay.body.get("vccNumber"), None);
        let stored = crate::helpers::blob(&app.test_db.url, "SELECT response_body FROM idempotency_keys").await;
        let stored = String::from_utf8(stored).unwrap();
        assert!(stored.contains(&number) && !stored.contains(&vcc), "{stored}");
        // Lookup by the number works end to end.
        let found = app.get(&format!("/credit-accounts/lookup?vccNumber={vcc}")).await;
        assert_eq!(found.expect(200)["accountNumber"], json!(number));
        // Reveal: its own scope, audited every time, never replayed.
        let reveal = format!("/credit-accounts/{number}/reveal");
        app.post(&reveal, json!({})).await.expect_error(403, "insufficient_scope");
        let (_, key) = app.key_with(&[clientele::auth::Scope::PaymentMethodsReveal]).await;
        let h = [("Idempotency-Key", "reveal-vcc-1")];
        for _ in 0..2 {
            let r = app.send(Method::POST, &reveal, Some(&key), None, &h).await;
            assert_eq!(r.expect(200), &json!({"accountNumber": number, "vccNumber": vcc}));
            assert_eq!(r.header("idempotent-replayed"), None);
        }
        let events = app.get("/events?type=credit_account.vcc_revealed").await;
        assert_eq!(events.expect(200)["items"].as_array().unwrap().len(), 2);
        assert!(!app.get("/events?limit=500").await.body.to_string().contains(&vcc));
        app.send(Method::POST, "/credit-accounts/123456789012/reveal", Some(&key), None, &[]).await.expect_error(404, "not_found");
        let (_, other) = app.other_merchant().await;
        app.send(Method::POST, &reveal, Some(&other), None, &[]).await.expect_error(403, "insufficient_scope");
    }
}
