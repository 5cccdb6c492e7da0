//! Customer create, get, update, delete and status; versions and ETags.

use serde_json::json;

use crate::both;
use crate::helpers::full_customer;

both! {
    async fn create_then_get_shows_seed_003_representation(app: TestApp) {
        let id = app.create(full_customer()).await;
        let r = app.get(&format!("/customers/{id}")).await;
        let c = r.expect(200);
        assert_eq!(r.header("etag"), Some("\"1\""));
        assert_eq!(c["id"], id);
        assert_eq!(c["merchantId"], app.merchant.to_string());
        assert_eq!(c["firstName"], "Zoë");
        assert_eq!(c["lastName"], "O'Brien");
        assert_eq!(c["companyName"], "Acme Jewellers");
        assert_eq!(c["email"], "Zoe.OBrien@Example.com");
        assert_eq!(c["mobilePhoneNumber"], "+14165550199", "national number read in the billing country, stored as E.164");
        assert_eq!(c["isMobileNumberSmsNotificationsEnabled"], true);
        assert_eq!(c["useBillingAsShippingAddress"], false);
        assert_eq!(c["billingAddress"], json!({"line1": "55 University Ave", "line2": "Suite 100", "city": "Toronto", "state": "ON", "postalCode": "M5J 2H7", "country": "CA"}));
        assert_eq!(c["shippingAddress"], json!({"line1": "1 Main St", "line2": null, "city": "Buffalo", "state": "NY", "postalCode": "14201", "country": "US"}));
        assert_eq!(c["dateOfBirth"], "1974-05-15");
        assert_eq!(c["preferredLanguage"], "en-CA");
        assert_eq!(c["status"], "active");
        assert_eq!(c["version"], 1);
        assert_eq!(c["defaultPaymentMethodId"], json!(null));
        assert_eq!(c["defaultAchPaymentMethodId"], json!(null));
        assert_eq!(c["transactionsCount"], 0);
        assert_eq!(c["transactionsVolume"], 0.0);
        assert_eq!(c["lastTransactionAmount"], json!(null));
        assert_eq!(c["lastTransactionDate"], json!(null));
        assert_eq!(c["numberOfSubscriptions"], 0);
        assert_eq!(c["cards"], json!([]));
        assert_eq!(c["achAccounts"], json!([]));
        let created = chrono::DateTime::parse_from_rfc3339(c["createdOn"].as_str().unwrap()).unwrap();
        assert!(c["createdOn"].as_str().unwrap().ends_with('Z'));
        assert!((chrono::Utc::now() - created.to_utc()).num_seconds().abs() < 60);
        assert_eq!(c["createdOn"], c["modifiedOn"]);
    }

    async fn ids_are_uuid_v7(app: TestApp) {
        let id = app.create_named("A", "B").await;
        let u = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(u.get_version_num(), 7);
    }

    async fn minimal_customer_and_optional_nulls(app: TestApp) {
        let id = app.create(json!({"firstName": "Ann", "lastName": "Lee", "email": null, "billingAddress": null})).await;
        let c = app.get(&format!("/customers/{id}")).await.expect(200).clone();
        assert_eq!(c["email"], json!(null));
        assert_eq!(c["billingAddress"], json!(null));
        assert_eq!(c["isMobileNumberSmsNotificationsEnabled"], false);
    }

    async fn billing_as_shipping_reads_through(app: TestApp) {
        let mut body = full_customer();
        body["useBillingAsShippingAddress"] = json!(true);
        let id = app.create(body).await;
        let c = app.get(&format!("/customers/{id}")).await.expect(200).clone();
        assert_eq!(c["shippingAddress"], c["billingAddress"]);
    }

    async fn identical_customers_are_allowed(app: TestApp) {
        let a = app.create(full_customer()).await;
        let b = app.create(full_customer()).await;
        assert_ne!(a, b);
    }

    async fn update_replaces_fields_and_bumps_version(app: TestApp) {
        let id = app.create(full_customer()).await;
        let r = app.put(&format!("/customers/{id}"), json!({"firstName": "Zoe", "lastName": "Smith", "mobilePhoneNumber": "+44 20 7946 0958"})).await;
        let c = r.expect(200);
        assert_eq!(r.header("etag"), Some("\"2\""));
        assert_eq!(c["firstName"], "Zoe");
        assert_eq!(c["lastName"], "Smith");
        assert_eq!(c["mobilePhoneNumber"], "+442079460958");
        assert_eq!(c["email"], json!(null), "absent optional fields are cleared");
        assert_eq!(c["billingAddress"], json!(null));
        assert_eq!(c["version"], 2);
        assert_eq!(c["cards"], json!([]));
        assert_ne!(c["modifiedOn"], json!(null));
        let again = app.get(&format!("/customers/{id}")).await.expect(200).clone();
        assert_eq!(&again, c);
    }

    async fn update_validates_like_create_and_rejects_payment_methods(app: TestApp) {
        let id = app.create_named("A", "B").await;
        let r = app.put(&format!("/customers/{id}"), json!({"firstName": "A", "lastName": "B", "paymentMethodsCards": []})).await;
        r.expect_error(400, "unknown_field");
        let r = app.put(&format!("/customers/{id}"), json!({"lastName": "B"})).await;
        assert_eq!(r.expect_error(400, "validation_failed")["errors"]["firstName"][0], "'firstName' is required.");
    }

    async fn if_match_guards_updates(app: TestApp) {
        let id = app.create_named("A", "B").await;
        let path = format!("/customers/{id}");
        let body = json!({"firstName": "C", "lastName": "D"});
        let stale = app.send(reqwest::Method::PUT, &path, Some(&app.key), Some(body.clone()), &[("If-Match", "\"7\"")]).await;
        stale.expect_error(412, "version_mismatch");
        let ok = app.send(reqwest::Method::PUT, &path, Some(&app.key), Some(body.clone()), &[("If-Match", "\"1\"")]).await;
        ok.expect(200);
        let weak = app.send(reqwest::Method::PUT, &path, Some(&app.key), Some(body.clone()), &[("If-Match", "W/\"2\"")]).await;
        assert_eq!(weak.expect(200)["version"], 3);
        let any = app.send(reqwest::Method::PUT, &path, Some(&app.key), Some(body.clone()), &[("If-Match", "*")]).await;
        any.expect(200);
        let garbage = app.send(reqwest::Method::PUT, &path, Some(&app.key), Some(body), &[("If-Match", "nonsense")]).await;
        garbage.expect_error(412, "version_mismatch");
        let del = app.send(reqwest::Method::DELETE, &path, Some(&app.key), None, &[("If-Match", "\"1\"")]).await;
        del.expect_error(412, "version_mismatch");
        app.get(&path).await.expect(200);
    }

    async fn status_changes(app: TestApp) {
        let id = app.create_named("A", "B").await;
        let path = format!("/customers/{id}/status");
        let r = app.put(&path, json!({"status": "inactive"})).await;
        assert_eq!(r.expect(200)["status"], "inactive");
        assert_eq!(r.body["version"], 2);
        let same = app.put(&path, json!({"status": "inactive"})).await;
        assert_eq!(same.expect(200)["version"], 2, "no change, no new version");
        let back = app.put(&path, json!({"status": "active"})).await;
        assert_eq!(back.expect(200)["status"], "active");
        let bad = app.put(&path, json!({"status": "closed", "x": 1})).await;
        let b = bad.expect_error(400, "validation_failed");
        assert!(b["errors"]["status"].is_array() && b["errors"]["x"].is_array());
        app.put(&path, json!({})).await.expect_error(400, "validation_failed");
        let stale = app.send(reqwest::Method::PUT, &path, Some(&app.key), Some(json!({"status": "inactive"})), &[("If-Match", "\"1\"")]).await;
        stale.expect_error(412, "version_mismatch");
    }

    async fn delete_removes_from_every_read(app: TestApp) {
        let id = app.create(full_customer()).await;
        let r = app.delete(&format!("/customers/{id}")).await;
        assert_eq!(r.expect(200), &json!({"id": id, "deleted": true}));
        app.get(&format!("/customers/{id}")).await.expect_error(404, "not_found");
        let s = app.get("/customers?search=zoe").await;
        assert_eq!(s.expect(200)["total"], 0);
        let s = app.get("/customers?email=zoe.obrien@example.com").await;
        assert_eq!(s.expect(200)["total"], 0);
        app.delete(&format!("/customers/{id}")).await.expect_error(404, "not_found");
        app.put(&format!("/customers/{id}"), json!({"firstName": "a", "lastName": "b"})).await.expect_error(404, "not_found");
        app.put(&format!("/customers/{id}/status"), json!({"status": "active"})).await.expect_error(404, "not_found");
    }

    async fn validation_rules(app: TestApp) {
        let long = "x".repeat(101);
        let cases = [
            (json!({"firstName": "", "lastName": "B"}), "firstName"),
            (json!({"firstName": "   ", "lastName": "B"}), "firstName"),
            (json!({"firstName": long, "lastName": "B"}), "firstName"),
            (json!({"firstName": "A", "lastName": null}), "lastName"),
            (json!({"firstName": "A\u{0007}", "lastName": "B"}), "firstName"),
            (json!({"firstName": "A", "lastName": "B", "email": "not-an-email"}), "email"),
            (json!({"firstName": "A", "lastName": "B", "email": "a@localhost"}), "email"),
            (json!({"firstName": "A", "lastName": "B", "email": 5}), "email"),
            (json!({"firstName": "A", "lastName": "B", "mobilePhoneNumber": "12345678"}), "mobilePhoneNumber"),
            (json!({"firstName": "A", "lastName": "B", "mobilePhoneNumber": "+1 555"}), "mobilePhoneNumber"),
            (json!({"firstName": "A", "lastName": "B", "isMobileNumberSmsNotificationsEnabled": true}), "isMobileNumberSmsNotificationsEnabled"),
            (json!({"firstName": "A", "lastName": "B", "isMobileNumberSmsNotificationsEnabled": "yes"}), "isMobileNumberSmsNotificationsEnabled"),
            (json!({"firstName": "A", "lastName": "B", "billingAddress": "Toronto"}), "billingAddress"),
            (json!({"firstName": "A", "lastName": "B", "billingAddress": {"country": "XX"}}), "billingAddress.country"),
            (json!({"firstName": "A", "lastName": "B", "billingAddress": {"country": "CA", "postalCode": "12345"}}), "billingAddress.postalCode"),
            (json!({"firstName": "A", "lastName": "B", "shippingAddress": {"country": "US", "postalCode": "M5J 2H7"}}), "shippingAddress.postalCode"),
            (json!({"firstName": "A", "lastName": "B", "shippingAddress": {"state": "Ontario"}}), "shippingAddress.state"),
            (json!({"firstName": "A", "lastName": "B", "shippingAddress": {"city": 3}}), "shippingAddress.city"),
            (json!({"firstName": "A", "lastName": "B", "dateOfBirth": "15/05/1974"}), "dateOfBirth"),
            (json!({"firstName": "A", "lastName": "B", "dateOfBirth": "2999-01-01"}), "dateOfBirth"),
            (json!({"firstName": "A", "lastName": "B", "preferredLanguage": "english please"}), "preferredLanguage"),
            (json!({"firstName": "A", "lastName": "B", "paymentMethodsCards": {}}), "paymentMethodsCards"),
        ];
        for (body, path) in cases {
            let r = app.post("/customers", body.clone()).await;
            let b = r.expect_error(400, "validation_failed");
            assert!(b["errors"][path].is_array(), "{body} should fail on {path}: {b}");
            assert!(b["details"].as_str().unwrap().contains(path));
        }
        let r = app.post("/customers", json!({"firstName": "A", "lastName": "B", "surname": "C", "billingAddress": {"zip": "1"}})).await;
        let b = r.expect_error(400, "unknown_field");
        assert!(b["errors"]["surname"].is_array() && b["errors"]["billingAddress.zip"].is_array());
        let r = app.post("/customers", json!(["not", "an", "object"])).await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["$"].is_array());
        let r = app.post("/customers", json!({})).await;
        let b = r.expect_error(400, "validation_failed");
        assert!(b["errors"]["firstName"].is_array() && b["errors"]["lastName"].is_array(), "every problem, not just the first");
        assert_eq!(app.get("/customers").await.expect(200)["total"], 0, "nothing stored by failed creates");
    }

    async fn international_and_national_phone_numbers(app: TestApp) {
        let id = app.create(json!({"firstName": "A", "lastName": "B", "mobilePhoneNumber": "+1 (415) 555-2671"})).await;
        assert_eq!(app.get(&format!("/customers/{id}")).await.body["mobilePhoneNumber"], "+14155552671");
        let id = app.create(json!({"firstName": "A", "lastName": "B", "mobilePhoneNumber": "020 7946 0958", "shippingAddress": {"country": "GB"}})).await;
        assert_eq!(app.get(&format!("/customers/{id}")).await.body["mobilePhoneNumber"], "+442079460958");
    }
}

both! {
    async fn clients_hanging_up_mid_write_do_not_wedge_the_database(app: TestApp) {
        // Clients that give up after a few hundred microseconds drop their requests at
        // every stage of a write (before BEGIN, inside it, during COMMIT).
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let url = app.url("/customers");
            let key = app.key.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..40u64 {
                    let client = reqwest::Client::builder()
                        .timeout(std::time::Duration::from_micros(200 + (t * 131 + i * 97) % 3000))
                        .build()
                        .unwrap();
                    let _ = client.post(&url).bearer_auth(&key).json(&json!({"firstName": "Hang", "lastName": "Up"})).send().await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for _ in 0..20 {
            app.create_named("Still", "Writable").await;
        }
        assert_eq!(app.get("/customers?search=writable").await.expect(200)["total"], 20);
    }
}

both! {
    async fn external_reference_is_unique_per_merchant(app: TestApp) {
        let a = app.create(json!({"firstName": "A", "lastName": "Ref", "externalReference": "crm-001"})).await;
        assert_eq!(app.get(&format!("/customers/{a}")).await.expect(200)["externalReference"], "crm-001");
        let r = app.post("/customers", json!({"firstName": "B", "lastName": "Ref", "externalReference": " crm-001 "})).await;
        assert_eq!(r.expect_error(409, "duplicate_external_reference")["entityId"], a);
        let b = app.create(json!({"firstName": "B", "lastName": "Ref"})).await;
        assert_eq!(app.get(&format!("/customers/{b}")).await.body["externalReference"], json!(null));
        app.put(&format!("/customers/{b}"), json!({"firstName": "B", "lastName": "Ref", "externalReference": "crm-001"})).await.expect_error(409, "duplicate_external_reference");
        app.put(&format!("/customers/{a}"), json!({"firstName": "A", "lastName": "Ref", "externalReference": "crm-001"})).await.expect(200);
        let found = app.get("/customers?externalReference=crm-001").await;
        assert_eq!(found.expect(200)["items"][0]["id"], a);
        assert_eq!(found.body["total"], 1);
        assert_eq!(app.get("/customers?externalReference=crm-00").await.body["total"], 0, "exact");
        let (_, other) = app.other_merchant().await;
        let r = app.send(reqwest::Method::POST, "/customers", Some(&other), Some(json!({"firstName": "C", "lastName": "Ref", "externalReference": "crm-001"})), &[]).await;
        r.expect(200);
        app.post("/customers", json!({"firstName": "D", "lastName": "Ref", "externalReference": "x".repeat(129)})).await.expect_error(400, "validation_failed");
        // Cleared, the reference is free again.
        app.put(&format!("/customers/{a}"), json!({"firstName": "A", "lastName": "Ref"})).await.expect(200);
        app.put(&format!("/customers/{b}"), json!({"firstName": "B", "lastName": "Ref", "externalReference": "crm-001"})).await.expect(200);
    }
}

both! {
    async fn writes_committed_together_fail_alone(app: TestApp) {
        // 60 concurrent creates share group commits on SQLite: the 30 that claim one
        // externalReference conflict with each other (exactly one wins), and neither
        // their failures undo the others in the same batch.
        let mut tasks = Vec::new();
        for i in 0..60u64 {
            let (url, key) = (app.url("/customers"), app.key.clone());
            let body = match i % 2 {
                0 => json!({"firstName": "Same", "lastName": "Ref", "externalReference": "contended"}),
                _ => json!({"firstName": "Own", "lastName": format!("Ref{i}"), "externalReference": format!("own-{i}")}),
            };
            tasks.push(tokio::spawn(async move {
                reqwest::Client::new().post(&url).bearer_auth(&key).json(&body).send().await.unwrap().status().as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        let created = statuses.iter().filter(|s| **s == 200).count();
        let conflicts = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!((created, conflicts), (31, 29), "{statuses:?}");
        assert_eq!(app.get("/customers?externalReference=contended").await.expect(200)["total"], 1);
        assert_eq!(app.get("/customers?search=own&pageSize=100").await.expect(200)["total"], 30);
        let events = app.get("/events?type=customer.created&limit=500").await;
        let creates = events.expect(200)["items"].as_array().unwrap().len();
        assert_eq!(creates, 31, "one event per customer that exists, none for the ones rolled back");
    }
}

both! {
    async fn patch_merges_and_validates_like_put(app: TestApp) {
        let id = app.create(full_customer()).await;
        let path = format!("/customers/{id}");
        let before = app.get(&path).await.expect(200).clone();
        // Members sent replace, null clears, the rest stays.
        let r = app.patch(&path, json!({"companyName": "Renamed Ltd", "mobilePhoneNumber": null, "isMobileNumberSmsNotificationsEnabled": false, "billingAddress": {"city": "Ottawa"}})).await;
        let c = r.expect(200).clone();
        assert_eq!(r.header("etag"), Some("\"2\""));
        assert_eq!(c["companyName"], "Renamed Ltd");
        assert_eq!(c["mobilePhoneNumber"], json!(null));
        assert_eq!(c["billingAddress"]["city"], "Ottawa");
        assert_eq!(c["billingAddress"]["line1"], before["billingAddress"]["line1"], "a nested object merges too");
        for kept in ["firstName", "lastName", "email", "dateOfBirth", "shippingAddress"] {
            assert_eq!(c[kept], before[kept], "{kept}");
        }
        // The result is validated like a PUT body.
        let bad = app.patch(&path, json!({"email": "not an email", "firstName": null})).await;
        let e = bad.expect_error(400, "validation_failed");
        assert!(e["errors"]["email"].is_array() && e["errors"]["firstName"].is_array(), "{e}");
        app.patch(&path, json!({"paymentMethodsCards": []})).await.expect_error(400, "unknown_field");
        app.patch(&path, json!(["not", "an", "object"])).await.expect_error(400, "validation_failed");
        app.patch(&path, json!({"id": uuid::Uuid::now_v7()})).await.expect_error(400, "validation_failed");
        // If-Match as PUT; plain application/json is a merge patch too.
        let stale = app.send(reqwest::Method::PATCH, &path, Some(&app.key), Some(json!({"companyName": "X"})), &[("If-Match", "\"1\"")]).await;
        stale.expect_error(412, "version_mismatch");
        let ok = app.send(reqwest::Method::PATCH, &path, Some(&app.key), Some(json!({"companyName": "Y"})), &[("If-Match", "\"2\"")]).await;
        assert_eq!(ok.expect(200)["version"], 3);
        // A GET sent back whole is accepted and changes nothing but what was edited.
        let mut whole = app.get(&path).await.expect(200).clone();
        whole["lastName"] = json!("Roundtrip");
        let put = app.put(&path, whole.clone()).await;
        assert_eq!(put.expect(200)["lastName"], "Roundtrip");
        assert_eq!(put.body["companyName"], "Y");
        let patched = app.patch(&path, whole).await;
        assert_eq!(patched.expect(200)["version"], 5);
        // Same events as PUT.
        let events = app.get(&format!("/events?entityId={id}&type=customer.updated")).await;
        assert_eq!(events.expect(200)["items"].as_array().unwrap().len(), 4);
        app.patch(&format!("/customers/{}", uuid::Uuid::now_v7()), json!({"companyName": "Z"})).await.expect_error(404, "not_found");
    }
}
