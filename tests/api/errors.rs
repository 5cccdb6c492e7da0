//! The error contract: one body shape, the right status for each kind of bad input, never a 500.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::helpers::TestApp;

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> crate::helpers::Resp {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(&app.key).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    assert_ne!(status, 500, "{body}");
    crate::helpers::Resp { status, headers, body }
}

both! {
    async fn an_empty_query_value_is_no_filter_for_text_and_an_error_for_the_rest(app: TestApp) {
        app.create_named("Query", "Blank").await;
        // Free text: an unfilled form field filters nothing.
        for q in ["search=", "email=", "lastName=&firstName=", "postalCode=&externalReference="] {
            assert_eq!(app.get(&format!("/customers?{q}")).await.expect(200)["total"], 1, "{q}");
        }
        // Typed values: empty is not a date, a number, a UUID or a name from a list.
        for (q, field) in [
            ("/customers?dateOfBirth=", "dateOfBirth"),
            ("/customers?dateFrom=", "dateFrom"),
            ("/customers?page=", "page"),
            ("/customers?orderBy=", "orderBy"),
            ("/customers?status=", "status"),
            ("/events?entityId=", "entityId"),
            ("/events?type=", "type"),
            ("/credit-accounts/lookup?vccNumber=", "vccNumber"),
        ] {
            let b = app.get(q).await.expect_error(400, "validation_failed").clone();
            assert!(b["errors"][field].is_array(), "{q}: {b}");
        }
        // The event feed filters by the types it writes, and names a wrong one.
        let created = app.feed_showing("/events?type=customer.created", 1).await;
        assert_eq!(created["items"].as_array().unwrap().len(), 1);
        let b = app.get("/events?type=customer.exploded").await.expect_error(400, "validation_failed").clone();
        assert!(b["errors"]["type"][0].as_str().unwrap().contains("event type"), "{b}");
    }

    async fn malformed_json_is_400(app: TestApp) {
        for body in ["{", "{\"firstName\": }", "nul", "{\"a\":1}{", "\u{feff}{}", "", "   "] {
            let r = raw(&app, Method::POST, "/customers", Some("application/json"), body.as_bytes().to_vec()).await;
            let b = r.expect_error(400, "malformed_json");
            assert!(b["errors"]["$"].is_array(), "{body:?}: {b}");
        }
        let r = raw(&app, Method::POST, "/customers", Some("application/json"), vec![0xff, 0xfe, b'{']).await;
        r.expect_error(400, "malformed_json");
    }

    async fn wrong_content_type_is_415(app: TestApp) {
        let body = br#"{"firstName":"a","lastName":"b"}"#.to_vec();
        raw(&app, Method::POST, "/customers", Some("text/plain"), body.clone()).await.expect_error(415, "unsupported_media_type");
        raw(&app, Method::POST, "/customers", None, body.clone()).await.expect_error(415, "unsupported_media_type");
        raw(&app, Method::POST, "/customers", Some("application/x-www-form-urlencoded"), body.clone()).await.expect_error(415, "unsupported_media_type");
        raw(&app, Method::POST, "/customers", Some("application/json; charset=utf-8"), body).await.expect(200);
    }

    async fn oversized_body_is_413(app: TestApp) {
        let big = format!("{{\"firstName\":\"{}\",\"lastName\":\"b\"}}", "a".repeat(1 << 20));
        let r = raw(&app, Method::POST, "/customers", Some("application/json"), big.into_bytes()).await;
        r.expect_error(413, "payload_too_large");
        let r = raw(&app, Method::POST, "/customers", Some("application/json"), vec![b' '; (1 << 20) + 1]).await;
        r.expect_error(413, "payload_too_large");
    }

    async fn unknown_routes_and_methods(app: TestApp) {
        app.get("/nothing-here").await.expect_error(404, "route_not_found");
        app.send(Method::GET, "/not/an/api", None, None, &[]).await.expect_error(404, "route_not_found");
        let r = app.send(Method::PATCH, "/customers", Some(&app.key), None, &[]).await;
        r.expect_error(405, "method_not_allowed");
        let allowed = |r: &crate::helpers::Resp| -> std::collections::BTreeSet<String> {
            r.header("allow").unwrap_or_default().split(',').map(|m| m.trim().to_owned()).collect()
        };
        assert_eq!(allowed(&r), ["GET", "HEAD", "POST"].map(String::from).into(), "a 405 names the methods the path has");
        let id = app.create_named("A", "B").await;
        let r = app.send(Method::POST, &format!("/customers/{id}"), Some(&app.key), Some(json!({})), &[]).await;
        r.expect_error(405, "method_not_allowed");
        assert_eq!(allowed(&r), ["DELETE", "GET", "HEAD", "PATCH", "PUT"].map(String::from).into());
        let r = app.get("/customers/not-a-uuid").await;
        assert!(r.expect_error(400, "validation_failed")["errors"]["customerId"].is_array());
        app.get(&format!("/customers/{}", uuid::Uuid::now_v7())).await.expect_error(404, "not_found");
    }

    async fn correlation_ids_are_echoed_or_generated(app: TestApp) {
        let r = app.send(Method::GET, "/customers", Some(&app.key), None, &[("X-Correlation-Id", "abc-123")]).await;
        assert_eq!(r.header("x-correlation-id"), Some("abc-123"));
        let r = app.send(Method::GET, "/customers/zzz", Some(&app.key), None, &[("X-Correlation-Id", "req-42")]).await;
        assert_eq!(r.body["correlationId"], "req-42");
        let r = app.get("/customers").await;
        let generated = r.header("x-correlation-id").unwrap();
        assert!(uuid::Uuid::parse_str(generated).is_ok());
        let hostile = "x".repeat(300);
        let r = app.send(Method::GET, "/customers", Some(&app.key), None, &[("X-Correlation-Id", &hostile)]).await;
        assert_ne!(r.header("x-correlation-id"), Some(hostile.as_str()), "an unreasonable id is replaced");
    }

    async fn no_input_produces_a_500(app: TestApp) {
        let id = app.create_named("A", "B").await;
        let values = [json!(null), json!(true), json!(0), json!(-1.5e300), json!(""), json!("x".repeat(10_000)), json!([]), json!({}), json!([1, {"a": null}]), json!("\u{0000}"), json!("😀"), json!(1e20)];
        let fields = ["firstName", "lastName", "companyName", "email", "mobilePhoneNumber", "isMobileNumberSmsNotificationsEnabled",
            "useBillingAsShippingAddress", "billingAddress", "shippingAddress", "dateOfBirth", "preferredLanguage", "paymentMethodsCards", "status"];
        for f in fields {
            for v in &values {
                let mut body = json!({"firstName": "A", "lastName": "B"});
                body[f] = v.clone();
                let r = app.post("/customers", body.clone()).await;
                assert!(r.status == 200 || r.status == 400, "{body}: {}", r.status);
                let r = app.put(&format!("/customers/{id}"), body.clone()).await;
                assert!(r.status == 200 || r.status == 400, "{body}: {}", r.status);
                let mut addr = json!({"firstName": "A", "lastName": "B", "billingAddress": {}});
                addr["billingAddress"][f] = v.clone();
                let r = app.post("/customers", addr).await;
                assert!(r.status == 200 || r.status == 400);
            }
        }
        for q in ["page=99999999999999999999", "pageSize=1e3", "customerIds=,,,", "dateFrom=%00", "search=%FF%FE", "email=%00", "a[]=1&a[]=2"] {
            let r = app.get(&format!("/customers?{q}")).await;
            assert!(r.status == 200 || r.status == 400, "{q}: {}", r.status);
        }
    }
}
