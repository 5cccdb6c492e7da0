//! Bulk import and export (NDJSON).

use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

async fn import(app: &TestApp, key: &str, body: String) -> (Vec<Value>, Value) {
    let r = app
        .client
        .post(app.url("/customers/import"))
        .bearer_auth(key)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let mut lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary = lines.pop().unwrap()["summary"].clone();
    lines.sort_by_key(|l| l["line"].as_u64());
    (lines, summary)
}

async fn export(app: &TestApp) -> Vec<Value> {
    let r = app.client.get(app.url("/customers/export")).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn ndjson(items: &[Value]) -> String {
    items.iter().map(|v| format!("{v}\n")).collect()
}

both! {
    async fn good_bad_and_mixed_lines(app: TestApp) {
        let body = [
            json!({"firstName": "Ada", "lastName": "Lovelace", "externalReference": "crm-1", "email": "ada@example.com"}).to_string(),
            "{not json".to_owned(),
            json!({"firstName": "", "lastName": "Empty"}).to_string(),
            String::new(),
            json!({"firstName": "Alan", "lastName": "Turing", "mobilePhoneNumber": "+44 20 7946 0958"}).to_string(),
            json!({"firstName": "X", "lastName": "Y", "colour": "red"}).to_string(),
        ]
        .join("\n");
        let (lines, summary) = import(&app, &app.key, body).await;
        assert_eq!(summary, json!({"lines": 6, "created": 2, "updated": 0, "failed": 3}));
        assert_eq!(lines.len(), 5, "a blank line has no result");
        assert_eq!((lines[0]["line"].clone(), lines[0]["result"].clone()), (json!(1), json!("created")));
        assert!(lines[1]["errors"]["$"].is_array());
        assert!(lines[2]["errors"]["firstName"].is_array());
        assert_eq!(lines[3]["result"], "created");
        assert!(lines[4]["errors"]["colour"].is_array());
        let ada = lines[0]["id"].as_str().unwrap();
        assert_eq!(app.get(&format!("/customers/{ada}")).await.expect(200)["email"], "ada@example.com");
        assert_eq!(app.get("/customers").await.body["total"], 2);
    }

    async fn upsert_by_reference_and_idempotent_rerun(app: TestApp) {
        // More lines than one batch (5,000), so the pipelined second batch is covered.
        let rows: Vec<Value> = (0..5200).map(|i| json!({"firstName": format!("F{i}"), "lastName": "Bulk", "externalReference": format!("ext-{i}")})).collect();
        let (lines, summary) = import(&app, &app.key, ndjson(&rows)).await;
        assert_eq!(summary, json!({"lines": 5200, "created": 5200, "updated": 0, "failed": 0}));
        let first: Vec<Value> = lines.iter().map(|l| l["id"].clone()).collect();
        // The same file again changes nothing but says so.
        let (lines, summary) = import(&app, &app.key, ndjson(&rows)).await;
        assert_eq!(summary, json!({"lines": 5200, "created": 0, "updated": 5200, "failed": 0}));
        assert_eq!(lines.iter().map(|l| l["id"].clone()).collect::<Vec<_>>(), first);
        assert_eq!(app.get("/customers?pageSize=1").await.body["total"], 5200);
        // An upsert replaces the customer.
        let (_, summary) = import(&app, &app.key, ndjson(&[json!({"firstName": "New", "lastName": "Name", "externalReference": "ext-7"})])).await;
        assert_eq!(summary["updated"], 1);
        let found = app.get("/customers?externalReference=ext-7").await;
        assert_eq!(found.body["items"][0]["firstName"], "New");
        assert_eq!(found.body["items"][0]["id"], first[7]);
    }

    async fn later_batches_see_what_earlier_ones_wrote(app: TestApp) {
        // Three batches of 5,000: the second names none of the first's customers
        // (PostgreSQL writes it beside the first), the third updates customers of
        // both, and must find them written.
        let mut rows: Vec<Value> = (0..10_000)
            .map(|i| json!({"firstName": format!("F{i}"), "lastName": "Order", "externalReference": format!("o-{i}")}))
            .collect();
        rows.extend((0..300).map(|i| json!({"firstName": "Later", "lastName": "Order", "externalReference": format!("o-{}", i * 33)})));
        let (lines, summary) = import(&app, &app.key, ndjson(&rows)).await;
        assert_eq!(summary, json!({"lines": 10_300, "created": 10_000, "updated": 300, "failed": 0}));
        for (i, n) in [(10_000, 0), (10_150, 4_950), (10_299, 9_867)] {
            assert_eq!((lines[i]["result"].clone(), lines[i]["id"].clone()), (json!("updated"), lines[n]["id"].clone()));
        }
        let found = app.get("/customers?externalReference=o-9867").await;
        assert_eq!(found.body["items"][0]["firstName"], "Later");
        assert_eq!(app.get("/customers?pageSize=1").await.body["total"], 10_000);
    }

    async fn one_batch_mixes_new_rows_repeats_and_parts_in_line_order(app: TestApp) {
        // New rows go in many to a statement: a repeat of a reference earlier in the
        // batch, and a line with a card, must still see the rows before them.
        let held = import(&app, &app.key, ndjson(&[json!({"firstName": "Old", "lastName": "Held", "externalReference": "m-held"})])).await.0;
        let mut rows: Vec<Value> =
            (0..150).map(|i| json!({"firstName": format!("N{i}"), "lastName": "Mixed", "externalReference": format!("m-{i}")})).collect();
        rows[70] = json!({"firstName": "Again", "lastName": "Mixed", "externalReference": "m-10"});
        rows[100]["paymentMethodsCards"] = json!([{"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035}]);
        rows[130] = json!({"firstName": "Now", "lastName": "Held", "externalReference": "m-held"});
        let (lines, summary) = import(&app, &app.key, ndjson(&rows)).await;
        assert_eq!(summary, json!({"lines": 150, "created": 148, "updated": 2, "failed": 0}));
        assert_eq!((lines[70]["result"].clone(), lines[70]["id"].clone()), (json!("updated"), lines[10]["id"].clone()));
        assert_eq!((lines[130]["result"].clone(), lines[130]["id"].clone()), (json!("updated"), held[0]["id"].clone()));
        let ten = lines[10]["id"].as_str().unwrap();
        assert_eq!(app.get(&format!("/customers/{ten}")).await.expect(200)["firstName"], "Again");
        let carded = lines[100]["id"].as_str().unwrap();
        assert_eq!(app.get(&format!("/customers/{carded}")).await.expect(200)["cards"].as_array().unwrap().len(), 1);
        // Newest first is the file's order reversed.
        let mut listed = Vec::new();
        for n in [1, 2] {
            let page = app.get(&format!("/customers?lastName=Mixed&pageSize=100&page={n}")).await;
            listed.extend(page.expect(200)["items"].as_array().unwrap().iter().map(|c| c["id"].clone()));
        }
        let created: Vec<Value> = lines.iter().filter(|l| l["result"] == "created").map(|l| l["id"].clone()).rev().collect();
        assert_eq!(listed, created);
    }

    async fn export_round_trips_an_import(app: TestApp) {
        app.put("/custom-parameters/tier", json!({"type": "string"})).await.expect(200);
        app.put("/custom-parameters/ssn", json!({"type": "string", "secret": true})).await.expect(200);
        let rows = vec![
            json!({"firstName": "Zoë", "lastName": "O'Brien", "email": "zoe@example.com", "mobilePhoneNumber": "+14165550199",
                "billingAddress": {"line1": "55 University Ave", "line2": null, "city": "Toronto", "state": "ON", "postalCode": "M5J 2H7", "country": "CA"},
                "dateOfBirth": "1974-05-15", "preferredLanguage": "en-CA", "externalReference": "r-1", "tier": "gold", "ssn": "123-45-6789-0000",
                "paymentMethodsCards": [{"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035}]}),
            json!({"firstName": "Bo", "lastName": "Li", "companyName": "Acme", "externalReference": "r-2"}),
        ];
        let (_, summary) = import(&app, &app.key, ndjson(&rows)).await;
        assert_eq!(summary["created"], 2);
        let exported = export(&app).await;
        assert_eq!(exported.len(), 2);
        let zoe = exported.iter().find(|c| c["externalReference"] == "r-1").unwrap();
        for field in ["firstName", "lastName", "email", "mobilePhoneNumber", "dateOfBirth", "preferredLanguage", "billingAddress", "tier"] {
            assert_eq!(zoe[field], rows[0][field], "{field}");
        }
        assert!(zoe.get("ssn").is_none(), "no secret data");
        let text = serde_json::to_string(&exported).unwrap();
        assert!(!text.contains("4111") && !text.contains("123-45") && zoe.get("cards").is_none(), "no card or secret data");
        assert_eq!(exported.iter().find(|c| c["externalReference"] == "r-2").unwrap()["companyName"], "Acme");
        // Another merchant's export is its own.
        let (_, other) = app.other_merchant().await;
        let r = app.client.get(app.url("/customers/export")).bearer_auth(&other).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "");
    }

    async fn import_needs_ndjson_and_scopes(app: TestApp) {
        let r = app.client.post(app.url("/customers/import")).bearer_auth(&app.key).header("content-type", "application/json").body("{}").send().await.unwrap();
        assert_eq!(r.status(), 415);
        let (_, read_only) = app.key_with(&[clientele::auth::Scope::CustomersRead]).await;
        let r = app.client.post(app.url("/customers/import")).bearer_auth(&read_only).header("content-type", "application/x-ndjson").body("{}").send().await.unwrap();
        assert_eq!(r.status(), 403);
        let (_, no_pm) = app.key_with(&[clientele::auth::Scope::CustomersWrite]).await;
        let line = json!({"firstName": "a", "lastName": "b", "paymentMethodsCards": [{"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035}]});
        let (lines, summary) = import(&app, &no_pm, ndjson(&[line])).await;
        assert_eq!(summary["failed"], 1);
        assert!(lines[0]["errors"]["paymentMethodsCards"].is_array());
    }
}

both! {
    async fn every_exported_line_imports_back(app: TestApp) {
        app.put("/custom-parameters/tier", json!({"type": "string"})).await.expect(200);
        app.put("/custom-parameters/ssn", json!({"type": "string", "secret": true})).await.expect(200);
        let full = app.create(crate::helpers::full_customer()).await;
        let bare = app.create(json!({"firstName": "Bo", "lastName": "Li"})).await;
        let secret = app.create(json!({"firstName": "Sy", "lastName": "Kret", "tier": "gold", "ssn": "123-45-6789", "externalReference": "s-1"})).await;
        app.put(&format!("/customers/{bare}/status"), json!({"status": "inactive"})).await.expect(200);
        let exported = export(&app).await;
        assert_eq!(exported.len(), 3);
        // Into its own merchant: every line updates its customer, nothing is lost.
        let mut before = Vec::new();
        for id in [&full, &bare, &secret] {
            before.push(app.get(&format!("/customers/{id}")).await.expect(200).clone());
        }
        let (lines, summary) = import(&app, &app.key, ndjson(&exported)).await;
        assert_eq!(summary, json!({"lines": 3, "created": 0, "updated": 3, "failed": 0}), "{lines:?}");
        for (id, was) in [&full, &bare, &secret].into_iter().zip(&before) {
            let now = app.get(&format!("/customers/{id}")).await.expect(200).clone();
            for field in ["firstName", "lastName", "email", "mobilePhoneNumber", "billingAddress", "shippingAddress", "dateOfBirth", "status", "tier", "ssn", "externalReference", "cards"] {
                assert_eq!(now[field], was[field], "{field} of {id}");
            }
        }
        // Into an empty merchant (a restore): every customer again, under its own id, with its status.
        // Custom parameters are declared before customers that carry them (export holds customers only).
        let (_, other) = app.other_merchant().await;
        let unknown = import(&app, &other, ndjson(&exported[2..])).await;
        assert_eq!(unknown.0[0]["errors"]["tier"][0], "'tier' is not a known field.");
        let declare = app.send(reqwest::Method::PUT, "/custom-parameters/tier", Some(&other), Some(json!({"type": "string"})), &[]).await;
        declare.expect(200);
        let (lines, summary) = import(&app, &other, ndjson(&exported)).await;
        assert_eq!(summary, json!({"lines": 3, "created": 3, "updated": 0, "failed": 0}), "{lines:?}");
        for line in &exported {
            let id = line["id"].as_str().unwrap();
            let r = app.send(reqwest::Method::GET, &format!("/customers/{id}"), Some(&other), None, &[]).await;
            let c = r.expect(200);
            for field in ["firstName", "lastName", "email", "billingAddress", "status", "tier", "externalReference"] {
                assert_eq!(c[field], line[field], "{field} of {id}");
            }
        }
        // A second restore finds them by id and updates them.
        let (_, summary) = import(&app, &other, ndjson(&exported)).await;
        assert_eq!(summary, json!({"lines": 3, "created": 0, "updated": 3, "failed": 0}));
        // An id that is not a UUIDv7 is not kept: the customer gets a new one.
        let mut v4 = exported[1].clone();
        v4["id"] = json!("4b1a0c6e-8f4e-4d3a-9c51-2f0e5b7d9a10");
        let (_, third) = app.other_merchant().await;
        let (lines, summary) = import(&app, &third, ndjson(&[v4])).await;
        assert_eq!(summary["created"], 1);
        assert_ne!(lines[0]["id"], "4b1a0c6e-8f4e-4d3a-9c51-2f0e5b7d9a10");
    }
}
