//! API keys, scopes and tenant isolation.

use clientele::auth::Scope;
use reqwest::Method;
use serde_json::json;

use crate::both;

both! {
    async fn missing_bad_and_revoked_keys_get_401(app: TestApp) {
        let r = app.send(Method::GET, "/customers", None, None, &[]).await;
        r.expect_error(401, "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"clientele\""), "a 401 names its scheme");
        app.send(Method::GET, "/customers", Some("ck_not_a_key"), None, &[]).await.expect_error(401, "unauthorized");
        app.send(Method::GET, "/customers", None, None, &[("Authorization", "Basic dXNlcjpwYXNz")]).await.expect_error(401, "unauthorized");
        let long = "k".repeat(5000);
        app.send(Method::GET, "/customers", Some(&long), None, &[]).await.expect_error(401, "unauthorized");
        let (key_id, key) = app.key_with(&Scope::DEFAULT).await;
        app.send(Method::GET, "/customers", Some(&key), None, &[]).await.expect(200);
        assert!(app.db.revoke_api_key(key_id).await.unwrap());
        // Servers trust a looked-up key for KEY_CACHE_TTL; after that it is refused.
        let revoked = std::time::Instant::now();
        while app.send(Method::GET, "/customers", Some(&key), None, &[]).await.status == 200 {
            assert!(revoked.elapsed() < clientele::auth::KEY_CACHE_TTL * 2, "a revoked key still works");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        app.send(Method::GET, "/customers", Some(&key), None, &[]).await.expect_error(401, "unauthorized");
        app.send(Method::POST, "/customers", None, Some(json!({"firstName": "a", "lastName": "b"})), &[]).await.expect_error(401, "unauthorized");
        assert_eq!(app.get("/customers").await.expect(200)["total"], 0, "nothing written without a key");
    }

    async fn keys_are_stored_hashed(app: TestApp) {
        let found = app.db.find_api_key(app.key.as_bytes()).await.unwrap();
        assert!(found.is_none(), "the clear key is not what is stored");
        let found = app.db.find_api_key(&clientele::auth::hash_key(&app.key)).await.unwrap().unwrap();
        assert_eq!(found.id, app.key_id);
    }

    async fn scopes_are_enforced(app: TestApp) {
        let id = app.create_named("A", "B").await;
        let (_, read_only) = app.key_with(&[Scope::CustomersRead]).await;
        app.send(Method::GET, "/customers", Some(&read_only), None, &[]).await.expect(200);
        app.send(Method::GET, &format!("/customers/{id}"), Some(&read_only), None, &[]).await.expect(200);
        app.send(Method::GET, "/events", Some(&read_only), None, &[]).await.expect(200);
        let body = json!({"firstName": "a", "lastName": "b"});
        let r = app.send(Method::POST, "/customers", Some(&read_only), Some(body.clone()), &[]).await;
        assert!(r.expect_error(403, "insufficient_scope")["details"].as_str().unwrap().contains("customers:write"));
        app.send(Method::PUT, &format!("/customers/{id}"), Some(&read_only), Some(body), &[]).await.expect_error(403, "insufficient_scope");
        app.send(Method::DELETE, &format!("/customers/{id}"), Some(&read_only), None, &[]).await.expect_error(403, "insufficient_scope");
        app.send(Method::PUT, &format!("/customers/{id}/status"), Some(&read_only), Some(json!({"status": "inactive"})), &[]).await.expect_error(403, "insufficient_scope");
        let (_, write_only) = app.key_with(&[Scope::CustomersWrite]).await;
        app.send(Method::GET, "/customers", Some(&write_only), None, &[]).await.expect_error(403, "insufficient_scope");
        app.send(Method::GET, "/events", Some(&write_only), None, &[]).await.expect_error(403, "insufficient_scope");
        app.send(Method::POST, "/customers", Some(&write_only), Some(json!({"firstName": "a", "lastName": "b"})), &[]).await.expect(200);
        assert_eq!(app.get(&format!("/customers/{id}")).await.expect(200)["version"], 1, "refused writes changed nothing");
    }

    async fn another_merchants_objects_are_404_everywhere(app: TestApp) {
        let id = app.create(json!({"firstName": "Secret", "lastName": "Customer", "email": "secret@x.io"})).await;
        let (_, other) = app.other_merchant().await;
        let k = Some(other.as_str());
        app.send(Method::GET, &format!("/customers/{id}"), k, None, &[]).await.expect_error(404, "not_found");
        app.send(Method::PUT, &format!("/customers/{id}"), k, Some(json!({"firstName": "x", "lastName": "y"})), &[]).await.expect_error(404, "not_found");
        app.send(Method::PUT, &format!("/customers/{id}/status"), k, Some(json!({"status": "inactive"})), &[]).await.expect_error(404, "not_found");
        app.send(Method::DELETE, &format!("/customers/{id}"), k, None, &[]).await.expect_error(404, "not_found");
        for q in ["", "?search=secret", "?email=secret@x.io", &format!("?customerIds={id}"), "?firstName=secret"] {
            let r = app.send(Method::GET, &format!("/customers{q}"), k, None, &[]).await;
            assert_eq!(r.expect(200)["total"], 0, "search {q} leaks nothing");
        }
        let r = app.send(Method::GET, &format!("/events?entityId={id}"), k, None, &[]).await;
        assert_eq!(r.expect(200)["items"], json!([]));
        let mine = app.get(&format!("/customers/{id}")).await;
        assert_eq!(mine.expect(200)["version"], 1, "untouched by the other merchant");
        assert_eq!(mine.body["status"], "active");
    }
}
