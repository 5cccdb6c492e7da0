//! The event feed: one event per change, ids only, in order, with a cursor.

use serde_json::{Value, json};

use crate::both;
use crate::helpers::full_customer;

fn types(v: &Value) -> Vec<String> {
    v["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

both! {
    async fn no_event_commits_behind_a_cursor_already_handed_out(app: TestApp) {
        use clientele::domain::event::EventType;
        use clientele::store::{Actor, StoreError};
        use tokio::sync::oneshot;
        app.create_named("Before", "Everything").await;
        let feed = app.get("/events").await.expect(200).clone();
        let start = feed["items"].as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_owned();
        let tenant = crate::helpers::tenant_of(app.merchant, &app.db).await;
        let actor = move || Actor { tenant, api_key_id: None, user_id: None, correlation_id: String::new(), idempotency: None };
        let (early, late) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        // A transaction writes its event first (the read after it sends the event,
        // which PostgreSQL's writes otherwise hold for their commit), then stays open...
        let (started, has_started) = oneshot::channel::<()>();
        let (release, released) = oneshot::channel::<()>();
        let db = app.db.clone();
        let slow = tokio::spawn(async move {
            db.write(actor(), move |mut tx| async move {
                tx.event(EventType::CustomerUpdated, early).await?;
                tx.existing_customers(&[early]).await?;
                let _ = started.send(());
                let _ = released.await;
                tx.commit().await
            })
            .await
        });
        has_started.await.unwrap();
        // ...while another writes one after it and commits (on PostgreSQL; SQLite's
        // one writer makes it wait).
        let db = app.db.clone();
        let fast = tokio::spawn(async move {
            db.write(actor(), move |mut tx| async move {
                tx.event(EventType::CustomerUpdated, late).await?;
                tx.commit().await
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // A reader meanwhile gets neither: handing out the later one would put
        // the earlier one behind its cursor when it commits.
        let mid = app.get(&format!("/events?after={start}")).await.expect(200).clone();
        assert_eq!(mid["items"], json!([]), "{mid}");
        let _ = release.send(());
        let done: Result<(), StoreError> = slow.await.unwrap();
        done.unwrap();
        let done: Result<(), StoreError> = fast.await.unwrap();
        done.unwrap();
        // Once both committed, a reader following the cursor sees both, the one
        // first written first.
        let page = app.feed_showing(&format!("/events?after={start}"), 2).await;
        let entities: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["entityId"].as_str().unwrap()).collect();
        assert_eq!(entities, [early.to_string(), late.to_string()]);
    }

    async fn a_cursor_that_names_no_event_is_not_found(app: TestApp) {
        app.create_named("Cursor", "Check").await;
        let b = app.get(&format!("/events?after={}", uuid::Uuid::now_v7())).await.expect_error(404, "not_found").clone();
        assert!(b["errors"]["after"].is_array(), "{b}");
    }

    async fn every_mutation_writes_an_event(app: TestApp) {
        let id = app.create(full_customer()).await;
        app.put(&format!("/customers/{id}"), json!({"firstName": "X", "lastName": "Y"})).await.expect(200);
        app.put(&format!("/customers/{id}/status"), json!({"status": "inactive"})).await.expect(200);
        app.put(&format!("/customers/{id}/status"), json!({"status": "inactive"})).await.expect(200);
        app.delete(&format!("/customers/{id}")).await.expect(200);
        app.post("/customers", json!({"firstName": ""})).await.expect(400);
        // The key's creation and the four mutations (on PostgreSQL the newest may show a moment late).
        let mut b = app.feed_showing("/events", 5).await;
        // The feed opens with the test key's own creation.
        assert_eq!(b["items"][0]["type"], "api_key.created");
        b["items"].as_array_mut().unwrap().remove(0);
        let b = &b;
        assert_eq!(types(b), ["customer.created", "customer.updated", "customer.status_changed", "customer.deleted"]);
        for e in b["items"].as_array().unwrap() {
            assert_eq!(e["entityId"], id);
            assert_eq!(e["merchantId"], app.merchant.to_string());
            assert_eq!(e["apiKeyId"], app.key_id.to_string());
            assert!(e["correlationId"].as_str().is_some_and(|c| !c.is_empty()));
            assert!(e["createdOn"].as_str().unwrap().ends_with('Z'));
            assert!(e["userId"].is_null(), "made with a key, not in the portal");
            let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 8, "ids only: {e}");
        }
        // The ids were checked above; a random id could hold "1974" by chance.
        let mut rest = b.clone();
        for e in rest["items"].as_array_mut().unwrap() {
            for id in ["id", "entityId", "merchantId", "apiKeyId"] {
                e.as_object_mut().unwrap().remove(id);
            }
        }
        let text = rest.to_string().to_lowercase();
        for pii in ["zoe", "obrien", "example.com", "4165550199", "toronto", "1974"] {
            assert!(!text.contains(pii), "event feed leaks {pii}");
        }
        assert_eq!(b["nextCursor"], json!(null));
    }

    async fn correlation_id_of_the_request_is_recorded(app: TestApp) {
        let r = app.send(reqwest::Method::POST, "/customers", Some(&app.key), Some(json!({"firstName": "A", "lastName": "B"})), &[("X-Correlation-Id", "order-7")]).await;
        let id = r.expect(200)["id"].as_str().unwrap().to_owned();
        let e = app.get(&format!("/events?entityId={id}")).await;
        assert_eq!(e.expect(200)["items"][0]["correlationId"], "order-7");
    }

    async fn cursor_and_filters(app: TestApp) {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(app.create_named(&format!("N{i}"), "E").await);
        }
        app.put(&format!("/customers/{}/status", ids[2]), json!({"status": "inactive"})).await.expect(200);
        let p1 = app.get("/events?limit=2").await;
        let b1 = p1.expect(200).clone();
        assert_eq!(b1["items"].as_array().unwrap().len(), 2);
        let cursor = b1["nextCursor"].as_str().unwrap().to_owned();
        assert_eq!(cursor, b1["items"][1]["id"]);
        let mut seen: Vec<String> = b1["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
        let mut after = cursor;
        // A reader follows the cursor: on PostgreSQL the newest events may show a
        // moment late (while a transaction of another database that was running
        // is not yet known to have ended), never out of order.
        for _ in 0..200 {
            let p = app.get(&format!("/events?limit=2&after={after}")).await;
            let b = p.expect(200).clone();
            seen.extend(b["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()));
            if let Some(last) = b["items"].as_array().unwrap().last() {
                after = last["id"].as_str().unwrap().to_owned();
            }
            if b["nextCursor"].is_null() {
                if seen.len() >= 7 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        // The test key's creation, five customers, one status change.
        assert_eq!(seen.len(), 7, "every event exactly once");
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "in order");
        let by_type = app.feed_showing("/events?type=customer.status_changed", 1).await;
        assert_eq!(by_type["items"][0]["entityId"], ids[2]);
        assert_eq!(by_type["items"].as_array().unwrap().len(), 1);
        let by_entity = app.feed_showing(&format!("/events?entityId={}", ids[2]), 2).await;
        assert_eq!(types(&by_entity), ["customer.created", "customer.status_changed"]);
        for bad in ["limit=0", "limit=501", "after=x", "entityId=1", "kind=x"] {
            let r = app.get(&format!("/events?{bad}")).await;
            assert_eq!(r.status, 400, "{bad}");
        }
    }
}

both! {
    async fn x_reference_id_is_echoed_and_stands_in_for_the_correlation_id(app: TestApp) {
        let r = app.send(reqwest::Method::GET, "/customers/not-a-uuid", Some(&app.key), None, &[("x-reference-id", "pos-4711")]).await;
        assert_eq!((r.header("x-reference-id"), r.header("x-correlation-id")), (Some("pos-4711"), Some("pos-4711")));
        assert_eq!(r.body["correlationId"], "pos-4711");
        let both = [("x-reference-id", "pos-4712"), ("X-Correlation-Id", "trace-1")];
        let r = app.send(reqwest::Method::POST, "/customers", Some(&app.key), Some(json!({"firstName": "Ref", "lastName": "Erence"})), &both).await;
        assert_eq!((r.header("x-reference-id"), r.header("x-correlation-id")), (Some("pos-4712"), Some("trace-1")));
        let id = r.expect(200)["id"].as_str().unwrap().to_owned();
        let events = app.get(&format!("/events?entityId={id}")).await;
        assert_eq!(events.expect(200)["items"][0]["correlationId"], "trace-1");
        let r = app.get("/customers?pageSize=1").await;
        assert_eq!(r.header("x-reference-id"), None, "echoed only when sent");
    }
}
