//! Customer search: words, exact filters, ordering, paging, read-after-write.

use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

fn names(v: &Value) -> Vec<String> {
    v["items"].as_array().unwrap().iter().map(|c| c["firstName"].as_str().unwrap().to_owned()).collect()
}

async fn seed(app: &TestApp) {
    let people = [
        json!({"firstName": "John", "lastName": "Smith", "email": "john.smith@example.com", "mobilePhoneNumber": "+1 416 555 0101",
               "billingAddress": {"postalCode": "M5J 2H7", "country": "CA"}, "dateOfBirth": "1974-05-15"}),
        json!({"firstName": "Johanna", "lastName": "Jones", "companyName": "Acme Restorations", "email": "jo@acme.io"}),
        json!({"firstName": "Émile", "lastName": "Zola", "email": "EMILE@Example.org", "mobilePhoneNumber": "+33 1 42 68 53 00"}),
        json!({"firstName": "Mary", "lastName": "O'Brien-Smith", "email": "mary@brien.net"}),
    ];
    for p in people {
        app.create(p).await;
    }
}

both! {
    async fn read_after_write(app: TestApp) {
        for i in 0..5 {
            let name = format!("Fresh{i}");
            let id = app.create(json!({"firstName": name, "lastName": "Write"})).await;
            let r = app.get(&format!("/customers?search={}", name.to_lowercase())).await;
            assert_eq!(r.expect(200)["items"][0]["id"], id, "found by the very next search");
        }
    }

    async fn words_match_name_prefixes_and_contact_parts(app: TestApp) {
        seed(&app).await;
        let cases: &[(&str, &[&str])] = &[
            ("jo", &["John", "Johanna"]),
            ("JOHN", &["John"]),
            ("smi", &["Mary", "John"]),
            ("brien", &["Mary"]),
            ("o'brien", &["Mary"]),
            ("emile", &["Émile"]),
            ("émile", &["Émile"]),
            ("acme", &["Johanna"]),
            ("rest", &["Johanna"]),
            ("example", &["Émile", "John"]),
            ("example.org", &["Émile"]),
            ("ith@exa", &["John"]),
            ("mith@", &["John"]),
            ("e.org", &["Émile"]),
            // Without 3 letters or digits in a row a word reaches names only.
            ("e.or", &[]),
            ("EXAMPLE.ORG", &["Émile"]),
            ("le@example", &["Émile"]),
            ("555-0101", &["John"]),
            ("4165550", &["John"]),
            ("+3314268", &["Émile"]),
            ("john smith", &["John"]),
            ("jo jones", &["Johanna"]),
            ("mith", &["John"]),
            ("nobody", &[]),
            ("john zola", &[]),
        ];
        for (q, want) in cases {
            let r = app.get(&format!("/customers?search={}&orderBy=firstName&asc=false", urlencode(q))).await;
            let b = r.expect(200);
            assert_eq!(names(b), *want, "search={q}");
            assert_eq!(b["total"], want.len(), "search={q}");
            // The default order (creation, newest first) is answered another way on
            // SQLite (from the full-text keys alone): the same matches.
            let r = app.get(&format!("/customers?search={}", urlencode(q))).await;
            let b = r.expect(200);
            let mut got = names(b);
            got.sort_unstable_by(|a, b| b.cmp(a));
            assert_eq!(got, *want, "search={q} in creation order");
            assert_eq!(b["total"], want.len(), "search={q} in creation order");
        }
    }

    async fn word_searches_page_in_creation_order_and_forget_deleted_customers(app: TestApp) {
        let mut ids = Vec::new();
        for i in 0..7 {
            ids.push(app.create(json!({"firstName": format!("Wanda{i}"), "lastName": "Word", "email": format!("w{i}@word.io")})).await);
        }
        app.create(json!({"firstName": "Other", "lastName": "Person"})).await;
        let (_, other) = app.other_merchant().await;
        let r = app.send(reqwest::Method::POST, "/customers", Some(&other), Some(json!({"firstName": "Wanda", "lastName": "Word"})), &[]).await;
        r.expect(200);
        let page = |q: &str| {
            let q = q.to_owned();
            let app = &app;
            async move {
                let r = app.get(&format!("/customers?{q}")).await;
                let b = r.expect(200);
                let got: Vec<String> = b["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
                (got, b["total"].as_i64().unwrap())
            }
        };
        let newest: Vec<String> = ids.iter().rev().cloned().collect();
        // A name prefix, a contact part and two words all page newest first.
        for q in ["search=wan", "search=word.io", "search=wanda%20word"] {
            assert_eq!(page(&format!("{q}&pageSize=3")).await, (newest[..3].to_vec(), 7), "{q} page 1");
            assert_eq!(page(&format!("{q}&pageSize=3&page=3")).await, (newest[6..].to_vec(), 7), "{q} page 3");
            assert_eq!(page(&format!("{q}&pageSize=3&page=4")).await, (vec![], 7), "{q} past the end");
            assert_eq!(page(&format!("{q}&pageSize=3&asc=true")).await, (ids[..3].to_vec(), 7), "{q} oldest first");
        }
        app.delete(&format!("/customers/{}", ids[6])).await.expect(200);
        assert_eq!(page("search=wanda").await, (newest[1..].to_vec(), 6), "a deleted customer is no longer found");
        let r = app.send(reqwest::Method::GET, "/customers?search=wanda", Some(&other), None, &[]).await;
        assert_eq!(r.expect(200)["total"], 1, "the other merchant sees only its own");
    }

    async fn exact_filters(app: TestApp) {
        seed(&app).await;
        let cases: &[(&str, &[&str])] = &[
            ("email=JOHN.SMITH@example.com", &["John"]),
            ("email=john", &[]),
            ("firstName=john", &["John"]),
            ("firstName=jo", &[]),
            ("lastName=ZOLA", &["Émile"]),
            ("dateOfBirth=1974-05-15", &["John"]),
            ("postalCode=m5j2h7", &["John"]),
            ("postalCode=M5J%202H7", &["John"]),
            ("status=active&lastName=jones", &["Johanna"]),
            ("status=inactive", &[]),
            ("search=jo&email=jo@acme.io", &["Johanna"]),
        ];
        for (q, want) in cases {
            let r = app.get(&format!("/customers?{q}")).await;
            assert_eq!(names(r.expect(200)), *want, "{q}");
        }
    }

    async fn paging_and_ordering(app: TestApp) {
        for i in 0..25 {
            app.create(json!({"firstName": format!("P{i:02}"), "lastName": "Page"})).await;
        }
        let first = app.get("/customers").await;
        let b = first.expect(200);
        assert_eq!(b["total"], 25);
        assert_eq!(b["items"].as_array().unwrap().len(), 20, "default page size 20");
        assert_eq!(b["items"][0]["firstName"], "P24", "newest first by default");
        assert!(b["items"][0].get("cards").is_none(), "search items have no cards");
        let second = app.get("/customers?page=2").await;
        assert_eq!(names(second.expect(200)), ["P04", "P03", "P02", "P01", "P00"]);
        let beyond = app.get("/customers?page=9").await;
        let b = beyond.expect(200);
        assert_eq!(b["items"], json!([]));
        assert_eq!(b["total"], 25, "total counts all matches even past the end");
        let asc = app.get("/customers?orderBy=firstName&asc=true&pageSize=3").await;
        assert_eq!(names(asc.expect(200)), ["P00", "P01", "P02"]);
        let max = app.get("/customers?pageSize=100").await;
        assert_eq!(max.expect(200)["items"].as_array().unwrap().len(), 25);
        for bad in ["pageSize=101", "pageSize=0", "page=0", "page=-1", "page=abc", "orderBy=dateOfBirth", "asc=yes", "pageSize=1&pageSize=2"] {
            let r = app.get(&format!("/customers?{bad}")).await;
            r.expect_error(400, "validation_failed");
        }
        app.get("/customers?sort=firstName").await.expect_error(400, "unknown_field");
    }

    async fn order_by_each_field(app: TestApp) {
        app.create(json!({"firstName": "b", "lastName": "Z", "email": "c@x.io", "companyName": "Alpha"})).await;
        app.create(json!({"firstName": "A", "lastName": "y", "email": "B@x.io"})).await;
        app.create(json!({"firstName": "c", "lastName": "X", "email": "a@x.io", "companyName": "beta"})).await;
        let cases: &[(&str, &[&str])] = &[
            ("firstName", &["A", "b", "c"]),
            ("lastName", &["c", "A", "b"]),
            ("email", &["c", "A", "b"]),
            ("companyName", &["A", "b", "c"]),
            ("createdOn", &["b", "A", "c"]),
            ("modifiedOn", &["b", "A", "c"]),
        ];
        for (field, want) in cases {
            let r = app.get(&format!("/customers?orderBy={field}&asc=true")).await;
            assert_eq!(names(r.expect(200)), *want, "orderBy={field}");
            let r = app.get(&format!("/customers?orderBy={field}")).await;
            let mut rev = want.to_vec();
            rev.reverse();
            assert_eq!(names(r.expect(200)), rev, "orderBy={field} desc");
        }
    }

    async fn customer_ids_and_dates(app: TestApp) {
        let pause = || tokio::time::sleep(std::time::Duration::from_millis(5));
        let a = app.create_named("A", "One").await;
        pause().await;
        let b = app.create_named("B", "Two").await;
        pause().await;
        let _c = app.create_named("C", "Three").await;
        let r = app.get(&format!("/customers?customerIds={a}&customerIds={b}&asc=true")).await;
        assert_eq!(names(r.expect(200)), ["A", "B"]);
        let r = app.get(&format!("/customers?customerIds={a},{b}")).await;
        assert_eq!(r.expect(200)["total"], 2);
        app.get("/customers?customerIds=nope").await.expect_error(400, "validation_failed");
        let created = app.get(&format!("/customers/{b}")).await.body["createdOn"].as_str().unwrap().to_owned();
        let r = app.get(&format!("/customers?dateFrom={created}&dateTo={created}")).await;
        assert_eq!(names(r.expect(200)), ["B"], "bounds are inclusive");
        let today = &created[..10];
        let r = app.get(&format!("/customers?dateFrom={today}&dateTo={today}")).await;
        assert_eq!(r.expect(200)["total"], 3, "a date means the whole day");
        let r = app.get("/customers?dateTo=2000-01-01").await;
        assert_eq!(r.expect(200)["total"], 0);
        app.get("/customers?dateFrom=yesterday").await.expect_error(400, "validation_failed");
    }

    async fn every_search_path_counts_all_matches_on_every_page(app: TestApp) {
        // Exact email and externalReference (read on the caller's thread on SQLite),
        // words (full-text) and a broad filter (the pooled path) each page the same way.
        for i in 0..3 {
            let body = json!({"firstName": "Dup", "lastName": "Licate", "email": "dup@x.io", "externalReference": format!("d-{i}")});
            app.create(body).await;
        }
        app.create(json!({"firstName": "Someone", "lastName": "Else", "email": "else@x.io"})).await;
        let (_, other) = app.other_merchant().await;
        let r = app.send(reqwest::Method::POST, "/customers", Some(&other), Some(json!({"firstName": "Dup", "lastName": "Licate", "email": "dup@x.io"})), &[]).await;
        r.expect(200);
        for q in ["email=DUP@x.io", "search=dup", "lastName=licate", "customerIds=x"] {
            let q = if q == "customerIds=x" {
                let all = app.get("/customers?email=dup@x.io&pageSize=100").await;
                let ids: Vec<&str> = all.body["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
                format!("customerIds={}", ids.join(","))
            } else {
                q.to_owned()
            };
            // Full pages, short pages, an exact fit and pages past the end.
            for (size, page, len) in [(2, 1, 2), (2, 2, 1), (2, 3, 0), (3, 1, 3), (3, 2, 0), (4, 1, 3)] {
                let r = app.get(&format!("/customers?{q}&pageSize={size}&page={page}")).await;
                let b = r.expect(200);
                assert_eq!(b["items"].as_array().unwrap().len(), len, "{q} size {size} page {page}");
                assert_eq!(b["total"], 3, "{q} size {size} page {page}: this merchant's three, on every page");
            }
        }
        let r = app.get("/customers?externalReference=d-1").await;
        assert_eq!(r.expect(200)["total"], 1);
        assert_eq!(r.body["items"][0]["externalReference"], "d-1");
        let r = app.send(reqwest::Method::GET, "/customers?email=dup@x.io", Some(&other), None, &[]).await;
        assert_eq!(r.expect(200)["total"], 1, "the other merchant sees only its own");
    }

    async fn duplicates_and_updates_are_searchable(app: TestApp) {
        let id = app.create(json!({"firstName": "Old", "lastName": "Name", "email": "old@x.io"})).await;
        app.create(json!({"firstName": "Old", "lastName": "Name", "email": "old@x.io"})).await;
        assert_eq!(app.get("/customers?email=old@x.io").await.body["total"], 2);
        app.put(&format!("/customers/{id}"), json!({"firstName": "New", "lastName": "Name", "email": "new@x.io"})).await.expect(200);
        assert_eq!(app.get("/customers?search=old").await.body["total"], 1);
        assert_eq!(app.get("/customers?search=new").await.body["items"][0]["id"], id);
        assert_eq!(app.get("/customers?email=new@x.io").await.body["total"], 1);
        app.put(&format!("/customers/{id}/status"), json!({"status": "inactive"})).await.expect(200);
        assert_eq!(app.get("/customers?status=inactive").await.body["items"][0]["id"], id);
    }

    async fn hostile_search_text_is_just_text(app: TestApp) {
        app.create(json!({"firstName": "Robert", "lastName": "Tables", "email": "bobby@tables.io"})).await;
        for q in ["'; DROP TABLE customers; --", "NEAR(a b)", "a OR b", "^bob", "bob*", "\"bob\"", "-bob", "AND", "名前", "bob%", "b_b"] {
            let r = app.get(&format!("/customers?search={}", urlencode(q))).await;
            r.expect(200);
        }
        // Punctuation alone matches nothing an index could find: a clear 400, not a scan.
        for q in ["\"", "*", "%", "_", "\\", "(", "%%%", "___", "a.b.c@-"] {
            let r = app.get(&format!("/customers?search={}", urlencode(q))).await;
            if q.chars().any(char::is_alphanumeric) {
                r.expect(200);
            } else {
                assert!(r.expect_error(400, "validation_failed")["errors"]["search"].is_array(), "{q}");
            }
        }
        assert_eq!(app.get("/customers?search=bob%25").await.body["total"], 0, "LIKE wildcards are literals");
        assert_eq!(app.get("/customers?search=bob").await.body["total"], 1);
        // A word without 3 letters or digits in a row reaches names only.
        assert_eq!(app.get("/customers?search=t.a").await.body["total"], 0);
        assert_eq!(app.get("/customers?search=rob").await.body["total"], 1);
    }

    // New customers' terms wait in PostgreSQL's pending list of the terms index
    // until the service moves them in the background (a request's write would
    // otherwise move them, hundreds of milliseconds at a time); they are found
    // all the while.
    async fn new_search_terms_move_into_the_index_in_the_background(app: TestApp) {
        let sqlite = app.test_db.url.starts_with("sqlite");
        for i in 0..60 {
            let email = format!("mover.{i}@pending.example");
            app.create(json!({"firstName": format!("Mover{i}"), "lastName": "Pending", "email": email})).await;
        }
        let moved = |text: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("clientele_search_index_pages_moved_total "))
                .map(|v| v.trim().parse::<f64>().unwrap())
        };
        let text = || async { app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap() };
        if sqlite {
            assert_eq!(moved(&text().await), None, "SQLite's index has no pending list");
        } else {
            // The pending list empties without any further write (60 customers are
            // far from filling it, so no write would have moved it).
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&app.test_db.url).await.unwrap();
            sqlx::query("CREATE EXTENSION IF NOT EXISTS pgstattuple").execute(&mut c).await.unwrap();
            let pending = "SELECT pending_pages::bigint FROM pgstatginindex('customers_search_terms')";
            let mut left: i64 = -1;
            for _ in 0..100 {
                left = sqlx::query_scalar(pending).fetch_one(&mut c).await.unwrap();
                if left == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert_eq!(left, 0, "pages still pending");
            let text = text().await;
            assert!(moved(&text).is_some_and(|n| n > 0.0), "{text}");
        }
        assert_eq!(app.get("/customers?search=pending").await.body["total"], 60);
        assert_eq!(app.get("/customers?search=mover59").await.body["total"], 1);
        assert_eq!(app.get("/customers?search=pending.example").await.body["total"], 60);
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
