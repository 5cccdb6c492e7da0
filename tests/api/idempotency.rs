//! `Idempotency-Key`: replay, reuse with another body, in-flight duplicates.

use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use clientele::http::idempotency::{key_digest, request_digest};

use crate::both;
use crate::helpers::{blob, text};

/// SHA-256 of `method \0 path \0 body`, the unkeyed digest an attacker holding a
/// copy of the database could test candidate requests against.
fn unkeyed(path: &str, body: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(format!("POST\0{path}\0{body}"));
    h.finalize().to_vec()
}

both! {
    async fn expired_records_are_purged_in_batches_per_merchant(app: TestApp) {
        app.other_merchant().await;
        let h = [("Idempotency-Key", "recent")];
        app.send(Method::POST, "/customers", Some(&app.key), Some(json!({"firstName": "A", "lastName": "B"})), &h).await.expect(200);
        // Records past retention: more than one purge transaction's worth for one merchant.
        for (merchant, n) in [("Test merchant", 2500), ("Other merchant", 3)] {
            let sql = format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
                 INSERT INTO idempotency_keys (merchant_id, key, request_hash, state, created_at) \
                 SELECT (SELECT id FROM merchants WHERE name = '{merchant}'), 'old-' || i, '', 'completed', 1000 FROM n"
            );
            crate::helpers::exec(&app.test_db.url, &sql).await;
        }
        assert_eq!(app.db.purge_idempotency().await.unwrap(), 2503);
        let left: i64 = crate::helpers::scalar(&app.test_db.url, "SELECT COUNT(*) FROM idempotency_keys").await;
        assert_eq!(left, 1, "the recent record stays");
        let r = app.send(Method::POST, "/customers", Some(&app.key), Some(json!({"firstName": "A", "lastName": "B"})), &h).await;
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        assert_eq!(app.db.purge_idempotency().await.unwrap(), 0);
    }

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
        let events = app.get("/events?type=customer.created").await;
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
        let vault = crate::helpers::test_vault();
        let hash = request_digest(&vault, &reqwest::Method::POST, "/pay-api/v1/customers", &serde_json::to_vec(&body).unwrap());
        app.db.claim_idempotency(tenant, &key_digest(&vault, "slow"), &hash).await.unwrap();
        let r = app.send(Method::POST, "/customers", Some(&app.key), Some(body), &h).await;
        r.expect_error(409, "idempotency_key_in_progress");
    }

    async fn no_stored_digest_of_a_card_request_can_be_tested_against_guesses(app: TestApp) {
        let c = app.create_named("Card", "Holder").await;
        let path = format!("/pay-api/v1/customers/{c}/payment-methods/cards");
        let body = json!({"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035, "securityCode": "737"});
        let r = app.send(Method::POST, &path, Some(&app.key), Some(body), &[("Idempotency-Key", "order-4471")]).await;
        r.expect(200);
        let stored = blob(&app.test_db.url, "SELECT request_hash FROM idempotency_keys").await;
        // The attacker knows BIN, last 4 and expiry from the card's row, and the body's shape.
        let guesses = (0..1000).map(|cvv| {
            format!(r#"{{"expirationMonth":12,"expirationYear":2035,"pan":"4111111111111111","securityCode":"{cvv:03}"}}"#)
        });
        for guess in guesses.chain([r#"{"expirationMonth":12,"expirationYear":2035,"pan":"4111111111111111"}"#.to_owned()]) {
            assert_ne!(stored, unkeyed(&path, &guess), "the stored digest confirms the guess {guess}");
        }
        let key = text(&app.test_db.url, "SELECT key FROM idempotency_keys").await;
        let plain: String = Sha256::digest(b"order-4471").iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(key, plain, "the client's key is stored as an unkeyed digest");
        assert!(!key.contains("order-4471"));
        // And the retry still replays.
        let again = json!({"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035, "securityCode": "737"});
        let r2 = app.send(Method::POST, &path, Some(&app.key), Some(again), &[("Idempotency-Key", "order-4471")]).await;
        assert_eq!(r2.expect(200)["id"], r.body["id"]);
        assert_eq!(r2.header("idempotent-replayed"), Some("true"));
    }

    async fn a_replay_checks_the_scope_first(app: TestApp) {
        use clientele::auth::Scope;
        let body = json!({"firstName": "Scoped", "lastName": "Replay"});
        let h = [("Idempotency-Key", "scoped-1")];
        let created = app.send(Method::POST, "/customers", Some(&app.key), Some(body.clone()), &h).await;
        created.expect(200);
        let (_, read_only) = app.key_with(&[Scope::CustomersRead]).await;
        let replay = app.send(Method::POST, "/customers", Some(&read_only), Some(body.clone()), &h).await;
        replay.expect_error(403, "insufficient_scope");
        assert!(replay.body.get("id").is_none());
        // A refusal is not stored: the full key's request with that key then runs.
        let h2 = [("Idempotency-Key", "scoped-2")];
        let refused = app.send(Method::POST, "/customers", Some(&read_only), Some(body.clone()), &h2).await;
        refused.expect_error(403, "insufficient_scope");
        let ran = app.send(Method::POST, "/customers", Some(&app.key), Some(body), &h2).await;
        ran.expect(200);
        assert_eq!(ran.header("idempotent-replayed"), None, "the 403 was stored and replayed");
        assert_eq!(app.get("/customers").await.body["total"], 2);
    }

    async fn a_request_that_outlived_its_claim_cannot_commit(app: TestApp) {
        use clientele::store::idempotency::ClaimOutcome;
        use clientele::store::{Actor, StoreError};
        let tenant = crate::helpers::tenant_of(app.merchant, &app.db).await;
        let vault = crate::helpers::test_vault();
        let body = json!({"firstName": "Slow", "lastName": "First"});
        let hash = request_digest(&vault, &reqwest::Method::POST, "/pay-api/v1/customers", &serde_json::to_vec(&body).unwrap());
        // Request A claimed the key 61 s ago and is still running.
        let ClaimOutcome::Claimed(mut a) = app.db.claim_idempotency(tenant, &key_digest(&vault, "late"), &hash).await.unwrap() else {
            panic!("claimed")
        };
        crate::helpers::exec(&app.test_db.url, "UPDATE idempotency_keys SET created_at = created_at - 61000").await;
        a.claimed_at -= 61_000;
        // The client's retry takes the abandoned claim over and runs.
        let retry = app.send(Method::POST, "/customers", Some(&app.key), Some(body), &[("Idempotency-Key", "late")]).await;
        retry.expect(200);
        // A now reaches its commit: neither way of committing may keep its work.
        for replying in [false, true] {
            let actor = Actor { tenant, api_key_id: None, user_id: None, correlation_id: String::new(), idempotency: Some(a.clone()) };
            let id = uuid::Uuid::now_v7();
            let r = app.db.write(actor, move |mut tx| async move {
                tx.event(clientele::domain::event::EventType::CustomerCreated, id).await?;
                if replying { tx.commit_replying(200, b"{}").await } else { tx.commit().await }
            }).await;
            assert!(matches!(r, Err(StoreError::Conflict { code: "idempotency_key_in_progress", .. })), "{r:?}");
            let events = app.get(&format!("/events?entityId={id}")).await;
            assert_eq!(events.expect(200)["items"], json!([]), "the late request's work was kept");
        }
        let replay = app.send(Method::POST, "/customers", Some(&app.key), Some(json!({"firstName": "Slow", "lastName": "First"})), &[("Idempotency-Key", "late")]).await;
        assert_eq!(replay.expect(200)["id"], retry.body["id"]);
        assert_eq!(app.get("/customers").await.body["total"], 1);
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
        // An empty key is no key: each request is its own.
        let body = json!({"firstName": "Empty", "lastName": "Key"});
        let send = || app.send(Method::POST, "/customers", Some(&app.key), Some(body.clone()), &[("Idempotency-Key", "")]);
        let (first, second) = (send().await, send().await);
        assert_ne!(first.expect(200)["id"], second.expect(200)["id"]);
        assert_eq!(second.header("idempotent-replayed"), None);
    }
}
