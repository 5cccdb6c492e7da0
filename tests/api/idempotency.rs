//! `Idempotency-Key`: replay, reuse with another body, in-flight duplicates.

use reqwest::Method;
use serde_json::json;

use crate::both;

both! {
    async fn same_key_same_body_replays(app: TestApp) {
        let body = json!({"firstName": "Idem", "lastName": "Potent"});
        let h = [("Idempotency-Key", "order-123")];
        let first = app.send(Method::POST, "/customers", Some(&app.key), Some(body.clone()), &h).await;
        let id = first.expect(200)["id"].clone();
        assert_eq!(first.header("idempotent-replayed"), None);
        // Same content, other key order and spacing: still the same request.
        let reordered = json!({"lastName": "Potent", "firstName": "Idem"});
        let second = app.send(Method::POST, "/customers", Some(&app.key), Some(reordered), &h).await;
        assert_eq!(second.expect(200)["id"], id);
        assert_eq!(second.header("idempotent-replayed"), Some("true"));
        assert_eq!(app.get("/customers").await.body["total"], 1, "the work was done once");
        let events = app.get("/events").await;
        assert_eq!(events.body["items"].as_array().unwrap().len(), 1);
    }

    async fn same_key_other_body_conflicts(app: TestApp) {
        let h = [("Idempotency-Key", "k-1")];
        app.send(Method::POST, "/customers", Some(&app.key), Some(json!({"firstName": "A", "lastName": "B"})), &h).await.expect(200);
        let r = app.send(Method::POST, "/customers", Some(&app.key), Some(json!({"firstName": "A", "lastName": "C"})), &h).await;
        r.expect_error(409, "idempotency_key_reused");
        assert_eq!(app.get("/customers").await.body["total"], 1);
    }

    async fn errors_replay_too(app: TestApp) {
        let h = [("Idempotency-Key", "bad-1")];
        let body = json!({"firstName": "", "lastName": "B"});
        let a = app.send(Method::POST, "/customers", Some(&app.key), Some(body.clone()), &h).await;
        a.expect_error(400, "validation_failed");
        let b = app.send(Method::POST, "/customers", Some(&app.key), Some(body), &h).await;
        assert_eq!(b.status, 400);
        assert_eq!(b.header("idempotent-replayed"), Some("true"));
        assert_eq!(b.body["errors"], a.body["errors"]);
    }

    async fn concurrent_duplicates_never_create_twice(app: TestApp) {
        let racing = json!({"firstName": "Race", "lastName": "Condition"});
        let (a, b) = tokio::join!(
            app.send(Method::POST, "/customers", Some(&app.key), Some(racing.clone()), &[("Idempotency-Key", "race")]),
            app.send(Method::POST, "/customers", Some(&app.key), Some(racing.clone()), &[("Idempotency-Key", "race")]),
        );
        let statuses = [a.status, b.status];
        assert!(statuses.contains(&200), "{statuses:?}");
        for r in [&a, &b] {
            if r.status == 409 {
                assert_eq!(r.body["errorCode"], "idempotency_key_in_progress");
            } else {
                assert_eq!(r.status, 200);
            }
        }
        if a.status == 200 && b.status == 200 {
            assert_eq!(a.body["id"], b.body["id"], "a replay, not a second create");
        }
        assert_eq!(app.get("/customers?search=race").await.body["total"], 1);
    }

    async fn in_progress_claim_blocks_identical_request(app: TestApp) {
        let tenant = crate::helpers::tenant_of(app.merchant, &app.db).await;
        let body = json!({"firstName": "Slow", "lastName": "Request"});
        // Claim the key exactly as the middleware would for this request, then send it.
        let h = [("Idempotency-Key", "slow")];
        let ok = app.send(Method::POST, "/customers", Some(&app.key), Some(body.clone()), &[("Idempotency-Key", "other")]).await;
        ok.expect(200);
        let hash = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(b"POST\0/pay-api/v1/customers\0");
            h.update(serde_json::to_vec(&body).unwrap());
            h.finalize().to_vec()
        };
        app.db.claim_idempotency(tenant, &clientele::http::idempotency::key_digest("slow"), &hash).await.unwrap();
        let r = app.send(Method::POST, "/customers", Some(&app.key), Some(body), &h).await;
        r.expect_error(409, "idempotency_key_in_progress");
    }

    async fn keys_are_per_merchant_and_bounded(app: TestApp) {
        let h = [("Idempotency-Key", "shared")];
        let a = app.send(Method::POST, "/customers", Some(&app.key), Some(json!({"firstName": "A", "lastName": "B"})), &h).await;
        let (_, other) = app.other_merchant().await;
        let b = app.send(Method::POST, "/customers", Some(&other), Some(json!({"firstName": "A", "lastName": "B"})), &h).await;
        assert_ne!(a.expect(200)["id"], b.expect(200)["id"], "another merchant's key space is separate");
        assert_eq!(b.header("idempotent-replayed"), None);
        let long = "k".repeat(256);
        let r = app.send(Method::POST, "/customers", Some(&app.key), Some(json!({"firstName": "A", "lastName": "B"})), &[("Idempotency-Key", &long)]).await;
        r.expect_error(400, "invalid_idempotency_key");
        let ok = "k".repeat(255);
        app.send(Method::POST, "/customers", Some(&app.key), Some(json!({"firstName": "A", "lastName": "B"})), &[("Idempotency-Key", &ok)]).await.expect(200);
    }
}
