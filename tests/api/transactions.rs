//! Recorded purchases and refunds: statistics, available credit, no overdraft.

use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

fn tx(external: &str, kind: &str, amount: f64) -> Value {
    json!({"externalId": external, "type": kind, "amount": amount, "currency": "CAD", "occurredAt": "2026-11-20T10:00:00Z"})
}

async fn account(app: &TestApp, customer: &str, limit: f64) -> String {
    let body =
        json!({"accountType": "consumer", "creditLimit": limit, "accountInterestRate": 0.3099, "riskRating": "L"});
    app.post(&format!("/customers/{customer}/credit-accounts"), body).await.expect(200)["accountNumber"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn available(app: &TestApp, number: &str) -> f64 {
    app.get(&format!("/credit-accounts/lookup?accountNumber={number}")).await.expect(200)["availableCredit"]
        .as_f64()
        .unwrap()
}

both! {
    async fn statistics_follow_transactions(app: TestApp) {
        let c = app.create_named("Stat", "Istics").await;
        let path = format!("/customers/{c}/transactions");
        let first = app.post(&path, tx("ord-1", "purchase", 100.25)).await.expect(200)["id"].clone();
        let mut later = tx("ord-2", "purchase", 59.26);
        later["occurredAt"] = json!("2026-11-21T09:00:00Z");
        app.post(&path, later).await.expect(200);
        let mut refund = tx("ref-1", "refund", 0.51);
        refund["occurredAt"] = json!("2026-11-19T09:00:00Z");
        app.post(&path, refund).await.expect(200);
        let v = app.get(&format!("/customers/{c}")).await.expect(200).clone();
        assert_eq!(v["transactionsCount"], 3);
        assert_eq!(v["transactionsVolume"], 159.0);
        assert_eq!(v["lastTransactionAmount"], 59.26, "the latest by time, not by arrival");
        assert_eq!(v["lastTransactionDate"], "2026-11-21T09:00:00.000Z");
        // The same externalId replays; other content conflicts.
        assert_eq!(app.post(&path, tx("ord-1", "purchase", 100.25)).await.expect(200)["id"], first);
        app.post(&path, tx("ord-1", "purchase", 100.26)).await.expect_error(409, "external_id_reused");
        assert_eq!(app.get(&format!("/customers/{c}")).await.body["transactionsCount"], 3);
        for (field, value) in [("type", json!("sale")), ("amount", json!(0)), ("amount", json!(1.001)), ("currency", json!("cad")),
            ("currency", json!("XXX")), ("occurredAt", json!("yesterday")), ("externalId", json!(""))] {
            let mut body = tx("bad", "purchase", 1.0);
            body[field] = value;
            let r = app.post(&path, body).await;
            assert!(r.expect_error(400, "validation_failed")["errors"][field].is_array(), "{field}");
        }
        let unknown = uuid::Uuid::now_v7();
        app.post(&format!("/customers/{unknown}/transactions"), tx("x", "purchase", 1.0)).await.expect_error(404, "not_found");
        let mut with_pm = tx("pm-1", "purchase", 1.0);
        with_pm["paymentMethodId"] = json!(unknown.to_string());
        app.post(&path, with_pm).await.expect_error(404, "not_found");
    }

    async fn credit_purchases_and_refunds(app: TestApp) {
        let c = app.create_named("Cred", "It").await;
        let number = account(&app, &c, 1000.0).await;
        let path = format!("/customers/{c}/transactions");
        let mut buy = tx("b-1", "purchase", 340.49);
        buy["creditAccountNumber"] = json!(number);
        app.post(&path, buy).await.expect(200);
        assert_eq!(available(&app, &number).await, 659.51);
        let mut too_much = tx("b-2", "purchase", 659.52);
        too_much["creditAccountNumber"] = json!(number);
        app.post(&path, too_much).await.expect_error(409, "insufficient_credit");
        assert_eq!(available(&app, &number).await, 659.51, "nothing charged");
        assert_eq!(app.get(&format!("/customers/{c}")).await.body["transactionsCount"], 1, "nothing recorded");
        let mut refund = tx("r-1", "refund", 40.49);
        refund["creditAccountNumber"] = json!(number);
        app.post(&path, refund).await.expect(200);
        assert_eq!(available(&app, &number).await, 700.0);
        let other = app.create_named("Other", "Customer").await;
        let mut not_theirs = tx("b-3", "purchase", 1.0);
        not_theirs["creditAccountNumber"] = json!(number);
        app.post(&format!("/customers/{other}/transactions"), not_theirs).await.expect_error(404, "not_found");
        app.post(&format!("/credit-accounts/{number}/close"), json!({})).await.expect(200);
        let mut after_close = tx("b-4", "purchase", 1.0);
        after_close["creditAccountNumber"] = json!(number);
        app.post(&path, after_close).await.expect_error(409, "account_closed");
    }

    async fn concurrent_purchases_never_overdraw(app: TestApp) {
        let c = app.create_named("Race", "Condition").await;
        let number = account(&app, &c, 1000.0).await;
        let mut tasks = Vec::new();
        for i in 0..24 {
            let (url, key, number) = (app.url(&format!("/customers/{c}/transactions")), app.key.clone(), number.clone());
            tasks.push(tokio::spawn(async move {
                let mut body = tx(&format!("race-{i}"), "purchase", 100.0);
                body["creditAccountNumber"] = json!(number);
                reqwest::Client::new().post(url).bearer_auth(key).json(&body).send().await.unwrap().status().as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 14, "{statuses:?}");
        assert_eq!(available(&app, &number).await, 0.0);
        assert_eq!(app.get(&format!("/customers/{c}")).await.body["transactionsVolume"], 1000.0);
    }
}

both! {
    async fn the_volume_is_bounded_and_never_overflows(app: TestApp) {
        let c = app.create_named("Big", "Spender").await;
        let path = format!("/customers/{c}/transactions");
        let mut largest = tx("big-0", "purchase", 0.0);
        largest["amount"] = json!("999999999999.99");
        app.post(&path, largest.clone()).await.expect(200);
        let mut over = largest.clone();
        over["amount"] = json!("1000000000000.00");
        assert!(app.post(&path, over).await.expect_error(400, "validation_failed")["errors"]["amount"].is_array());
        // Ten of the largest purchases fit under the volume's bound; the eleventh does not.
        for i in 1..10 {
            largest["externalId"] = json!(format!("big-{i}"));
            app.post(&path, largest.clone()).await.expect(200);
        }
        largest["externalId"] = json!("big-10");
        app.post(&path, largest.clone()).await.expect_error(409, "transactions_volume_limit");
        let v = app.get(&format!("/customers/{c}")).await.expect(200).clone();
        assert_eq!(v["transactionsVolume"].to_string(), "9999999999999.9");
        assert_eq!(v["transactionsCount"], 10);
        // Refunds are bounded the same way below zero.
        let other = app.create_named("Big", "Refunder").await;
        let mut refund = tx("r-0", "refund", 0.0);
        refund["amount"] = json!("999999999999.99");
        for i in 0..10 {
            refund["externalId"] = json!(format!("r-{i}"));
            app.post(&format!("/customers/{other}/transactions"), refund.clone()).await.expect(200);
        }
        refund["externalId"] = json!("r-10");
        app.post(&format!("/customers/{other}/transactions"), refund).await.expect_error(409, "transactions_volume_limit");
        // Every read of these customers still answers.
        app.get("/customers").await.expect(200);
        let export = app.client.get(app.url("/customers/export")).bearer_auth(&app.key).send().await.unwrap().text().await.unwrap();
        assert_eq!(export.lines().count(), 2);
        assert!(export.contains("-9999999999999.9"), "{export}");
    }
}

both! {
    async fn inactive_customers_and_methods_take_no_new_business(app: TestApp) {
        let c = app.create(json!({"firstName": "Dormant", "lastName": "Client", "email": "d@example.com",
            "paymentMethodsCards": [{"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035}]})).await;
        let card = app.get(&format!("/customers/{c}")).await.expect(200)["cards"][0]["id"].as_str().unwrap().to_owned();
        let number = account(&app, &c, 500.0).await;
        let purchase = |id: &str, amount: f64| {
            let mut b = tx(id, "purchase", amount);
            b["paymentMethodId"] = json!(card);
            b
        };
        let path = format!("/customers/{c}/transactions");
        app.post(&path, purchase("before", 10.0)).await.expect(200);
        app.put(&format!("/customers/{c}/status"), json!({"status": "inactive"})).await.expect(200);
        // No new business...
        let card_body = json!({"pan": "5555555555554444", "expirationMonth": 1, "expirationYear": 2036});
        app.post(&format!("/customers/{c}/payment-methods/cards"), card_body.clone()).await.expect_error(409, "customer_inactive");
        let ach = json!({"name": "Chq", "accountNumber": "123456789", "routingNumber": "021000021", "accountType": 1, "accountHolderType": 2});
        app.post(&format!("/customers/{c}/payment-methods/ach"), ach).await.expect_error(409, "customer_inactive");
        let link = json!({"providerConfigId": "cfg-1", "provider": "stripe", "paymentProvider": {"customerId": "cus_1"}});
        app.post(&format!("/customers/{c}/providers"), link.clone()).await.expect_error(409, "customer_inactive");
        let open = json!({"accountType": "consumer", "creditLimit": 100.0, "accountInterestRate": 0.2, "riskRating": "L"});
        app.post(&format!("/customers/{c}/credit-accounts"), open.clone()).await.expect_error(409, "customer_inactive");
        app.post(&path, purchase("after", 5.0)).await.expect_error(409, "customer_inactive");
        let mut on_credit = tx("after-credit", "purchase", 5.0);
        on_credit["creditAccountNumber"] = json!(number);
        app.post(&path, on_credit).await.expect_error(409, "customer_inactive");
        // ...and nothing of it was half done.
        assert_eq!(available(&app, &number).await, 500.0);
        let methods = app.get(&format!("/customers/{c}/payment-methods")).await;
        assert_eq!(methods.expect(200)["items"].as_array().unwrap().len(), 1);
        // Reads, updates, refunds, replays, status changes and deletion still work.
        app.get(&format!("/customers/{c}")).await.expect(200);
        app.put(&format!("/customers/{c}"), json!({"firstName": "Dormant", "lastName": "Renamed"})).await.expect(200);
        app.post(&path, tx("refund-1", "refund", 3.0)).await.expect(200);
        app.post(&path, purchase("before", 10.0)).await.expect(200);
        app.put(&format!("/customers/{c}/payment-methods/{card}"), json!({"name": "Old card"})).await.expect(200);
        // Active again, it takes business again; an inactive method does not.
        app.put(&format!("/customers/{c}/status"), json!({"status": "active"})).await.expect(200);
        app.post(&format!("/customers/{c}/providers"), link).await.expect(200);
        app.put(&format!("/customers/{c}/payment-methods/{card}/status"), json!({"status": "inactive"})).await.expect(200);
        app.post(&path, purchase("on-inactive-card", 5.0)).await.expect_error(409, "payment_method_inactive");
        let mut refund = tx("refund-to-card", "refund", 1.0);
        refund["paymentMethodId"] = json!(card);
        app.post(&path, refund).await.expect(200);
        app.post(&path, tx("plain", "purchase", 2.0)).await.expect(200);
        app.put(&format!("/customers/{c}/status"), json!({"status": "inactive"})).await.expect(200);
        app.delete(&format!("/customers/{c}")).await.expect(200);
    }
}

both! {
    async fn currencies_follow_iso_4217_as_amended(app: TestApp) {
        let c = app.create_named("Multi", "Currency").await;
        let path = format!("/customers/{c}/transactions");
        for (i, code) in ["VES", "XCG", "ZWG", "SLE"].into_iter().enumerate() {
            let mut b = tx(&format!("ok-{i}"), "purchase", 1.0);
            b["currency"] = json!(code);
            app.post(&path, b).await.expect(200);
        }
        for (i, code) in ["ANG", "CUC", "HRK", "SLL", "ZWL", "XAU"].into_iter().enumerate() {
            let mut b = tx(&format!("bad-{i}"), "purchase", 1.0);
            b["currency"] = json!(code);
            let r = app.post(&path, b).await;
            assert!(r.expect_error(400, "validation_failed")["errors"]["currency"].is_array(), "{code}");
        }
        let link = json!({"providerConfigId": "cfg", "provider": "p", "paymentProvider": {"availableCurrencies": ["XCG", "VES", "ZWG"]}});
        app.post(&format!("/customers/{c}/providers"), link).await.expect(200);
        let link = json!({"providerConfigId": "cfg2", "provider": "p", "paymentProvider": {"availableCurrencies": ["ANG"]}});
        let r = app.post(&format!("/customers/{c}/providers"), link).await;
        assert!(r.expect_error(400, "validation_failed")["errors"].to_string().contains("availableCurrencies"), "{}", r.body);
    }
}
