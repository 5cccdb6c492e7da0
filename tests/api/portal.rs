//! The merchant portal over HTTP: signing in, sessions, CSRF, pages.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, tenant_of, test_vault};

struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, base: app.base.clone(), cookies: Vec::new() }
    }

    fn keep(&mut self, headers: &HeaderMap) {
        for c in headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ");
        let res = req.header("cookie", cookie).send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        self.keep(&headers);
        let html = res.text().await.unwrap();
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{html}");
        Page { status, headers, html }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// Signs in through the form; the page the sign-in answered.
    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/portal/sign-in").await;
        let csrf = hidden(&form.html, "csrf");
        self.post("/portal/sign-in", &[("csrf", &csrf), ("email", email), ("password", password)]).await
    }
}

/// The value of a hidden input in a page.
fn hidden(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\" value=\"")).expect("the hidden field") + name.len() + 15;
    html[at..].split('"').next().unwrap().to_owned()
}

async fn user(app: &TestApp, email: &str, role: &str) -> (Uuid, String) {
    let password = clientele::portal::generated_password();
    let hash = test_vault().hash_password(&password).unwrap();
    let id = Uuid::now_v7();
    let tenant = tenant_of(app.merchant, &app.db).await;
    app.db.create_portal_user(tenant, id, email, role, &hash).await.unwrap();
    (id, password)
}

crate::both! {
    async fn staff_sign_in_search_and_read_a_customer_without_its_numbers(app: TestApp) {
        let body = json!({"firstName": "Ada", "lastName": "Portal", "email": "ada.portal@example.com",
            "paymentMethodsCards": [{"pan": "4111 1111 1111 1111", "expirationMonth": 12, "expirationYear": 2035}]});
        let r = app.send(reqwest::Method::POST, "/customers", Some(&app.key_with(&[clientele::auth::Scope::CustomersWrite, clientele::auth::Scope::PaymentMethodsWrite]).await.1), Some(body), &[]).await;
        let customer = r.expect(200)["id"].as_str().unwrap().to_owned();
        let (_, password) = user(&app, "support@example.com", "viewer").await;
        let mut b = Browser::new(&app);
        // Not signed in: to the sign-in page.
        let p = b.get("/portal/customers").await;
        assert_eq!((p.status, p.headers[LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/portal/sign-in"));
        // A wrong password and an unknown email get the same answer.
        let wrong = b.sign_in("support@example.com", "not-it").await;
        let unknown = b.sign_in("nobody@example.com", "not-it").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
        assert!(wrong.html.contains("The email or the password is wrong.") && unknown.html.contains("The email or the password is wrong."));
        let signed = b.sign_in("Support@Example.com", &password).await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.html);
        let cookie = signed.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("clientele_session=")).unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/portal"), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain loopback: no Secure");
        // The list and the search.
        let list = b.get("/portal/customers?search=ada").await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(list.html.contains("Ada Portal") && list.html.contains("ada.portal@example.com"), "{}", list.html);
        assert_eq!(list.headers["x-frame-options"], "DENY");
        let csp = list.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("style-src 'self'") && !csp.contains("script-src"), "{csp}");
        assert!(!b.get("/portal/customers?search=zzzz").await.html.contains("Ada Portal"));
        // The API's filters, carried by the paging links.
        assert!(b.get("/portal/customers?email=ada.portal%40example.com").await.html.contains("Ada Portal"));
        let inactive = b.get("/portal/customers?status=inactive&email=ada.portal%40example.com").await;
        assert!(inactive.status == StatusCode::OK && !inactive.html.contains("Ada Portal"));
        let bad = b.get("/portal/customers?dateOfBirth=someday").await;
        assert!(bad.status == StatusCode::BAD_REQUEST && bad.html.contains("dateOfBirth"), "{}", bad.html);
        // The customer: the card masked, never whole.
        let page = b.get(&format!("/portal/customers/{customer}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.html.contains("411111******1111") && page.html.contains("customer.created"), "{}", page.html);
        assert!(!page.html.contains("4111111111111111") && !page.html.contains("4111 1111 1111 1111"));
        assert_eq!(b.get(&format!("/portal/customers/{}", Uuid::now_v7())).await.status, StatusCode::NOT_FOUND);
        // Text is escaped, not markup.
        let (_, key) = app.key_with(&[clientele::auth::Scope::CustomersWrite]).await;
        let r = app.send(reqwest::Method::POST, "/customers", Some(&key), Some(json!({"firstName": "<b>Bold</b>", "lastName": "X"})), &[]).await;
        let bold = r.expect(200)["id"].as_str().unwrap().to_owned();
        let page = b.get(&format!("/portal/customers/{bold}")).await;
        assert!(page.html.contains("&lt;b&gt;Bold&lt;/b&gt;") && !page.html.contains("<b>Bold"));
    }

    async fn forged_forms_are_refused_and_signing_out_ends_the_session(app: TestApp) {
        let (id, password) = user(&app, "admin@example.com", "admin").await;
        let mut b = Browser::new(&app);
        // A sign-in posted without the form's own cookie is refused.
        let mut stranger = Browser::new(&app);
        let p = stranger.post("/portal/sign-in", &[("csrf", "forged"), ("email", "admin@example.com"), ("password", &password)]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        assert_eq!(b.sign_in("admin@example.com", &password).await.status, StatusCode::SEE_OTHER);
        let list = b.get("/portal/customers").await;
        let csrf = hidden(&list.html, "csrf");
        // Signing out without the session's token is refused; with it, the session ends.
        assert_eq!(b.post("/portal/sign-out", &[("csrf", "forged")]).await.status, StatusCode::FORBIDDEN);
        let kept = b.cookies.clone();
        assert_eq!(b.post("/portal/sign-out", &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);
        b.cookies = kept; // the old cookie, replayed
        assert_eq!(b.get("/portal/customers").await.status, StatusCode::SEE_OTHER);
        // A disabled user's sessions end at once.
        assert_eq!(b.sign_in("admin@example.com", &password).await.status, StatusCode::SEE_OTHER);
        assert_eq!(b.get("/portal/customers").await.status, StatusCode::OK);
        assert!(app.db.disable_portal_user(id).await.unwrap());
        assert_eq!(b.get("/portal/customers").await.status, StatusCode::SEE_OTHER);
        assert_eq!(b.sign_in("admin@example.com", &password).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn failed_sign_ins_are_throttled_per_account(app: TestApp) {
        let (_, password) = user(&app, "target@example.com", "admin").await;
        let mut b = Browser::new(&app);
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(b.sign_in("target@example.com", "guess").await.status);
        }
        assert_eq!(statuses[..5], [StatusCode::UNAUTHORIZED; 5]);
        assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
        // Even the right password waits out the limit.
        assert_eq!(b.sign_in("target@example.com", &password).await.status, StatusCode::TOO_MANY_REQUESTS);
    }

    async fn an_admin_changes_cards_in_their_own_name_and_a_viewer_cannot(app: TestApp) {
        let (_, key) = app.key_with(&[clientele::auth::Scope::CustomersRead, clientele::auth::Scope::CustomersWrite, clientele::auth::Scope::PaymentMethodsWrite]).await;
        let body = json!({"firstName": "Card", "lastName": "Holder", "paymentMethodsCards": [
            {"pan": "4111111111111111", "expirationMonth": 12, "expirationYear": 2035},
            {"pan": "5555555555554444", "expirationMonth": 11, "expirationYear": 2034}]});
        let c = app.send(reqwest::Method::POST, "/customers", Some(&key), Some(body), &[]).await.expect(200)["id"].as_str().unwrap().to_owned();
        let cards: Vec<String> = app.get(&format!("/customers/{c}")).await.expect(200)["cards"].as_array().unwrap()
            .iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
        let (admin_id, admin_pw) = user(&app, "boss@example.com", "admin").await;
        let (_, viewer_pw) = user(&app, "eyes@example.com", "viewer").await;

        // A viewer sees no buttons, and a change it posts is refused.
        let mut viewer = Browser::new(&app);
        viewer.sign_in("eyes@example.com", &viewer_pw).await;
        let page = viewer.get(&format!("/portal/customers/{c}")).await;
        assert!(!page.html.contains("Deactivate") && !page.html.contains("Delete"), "{}", page.html);
        let csrf = hidden(&page.html, "csrf");
        let target = format!("/portal/customers/{c}/payment-methods/{}", cards[0]);
        let r = viewer.post(&target, &[("csrf", &csrf), ("action", "deactivate")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get(&format!("/customers/{c}/payment-methods/{}", cards[0])).await.expect(200)["status"], "active");

        // An admin deactivates a card; the event names the user, not a key.
        let mut admin = Browser::new(&app);
        admin.sign_in("boss@example.com", &admin_pw).await;
        let page = admin.get(&format!("/portal/customers/{c}")).await;
        assert!(page.html.contains("Deactivate"));
        let csrf = hidden(&page.html, "csrf");
        assert_eq!(admin.post(&target, &[("action", "deactivate")]).await.status, StatusCode::FORBIDDEN, "no token, no change");
        let r = admin.post(&target, &[("csrf", &csrf), ("action", "deactivate")]).await;
        assert_eq!((r.status, r.headers[LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, format!("/portal/customers/{c}").as_str()));
        assert_eq!(app.get(&format!("/customers/{c}/payment-methods/{}", cards[0])).await.expect(200)["status"], "inactive");
        let events = app.feed_showing(&format!("/events?entityId={}&type=payment_method.updated", cards[0]), 1).await["items"].clone();
        assert_eq!(events[0]["userId"], admin_id.to_string());
        assert!(events[0]["apiKeyId"].is_null());
        // The other card made default, the first deleted, the customer deactivated.
        let other = format!("/portal/customers/{c}/payment-methods/{}", cards[1]);
        assert_eq!(admin.post(&other, &[("csrf", &csrf), ("action", "default")]).await.status, StatusCode::SEE_OTHER);
        assert_eq!(admin.post(&target, &[("csrf", &csrf), ("action", "delete")]).await.status, StatusCode::SEE_OTHER);
        let status = format!("/portal/customers/{c}/status");
        assert_eq!(admin.post(&status, &[("csrf", &csrf), ("action", "inactive")]).await.status, StatusCode::SEE_OTHER);
        let now = app.get(&format!("/customers/{c}")).await.expect(200).clone();
        assert_eq!(now["status"], "inactive");
        assert_eq!(now["cards"].as_array().unwrap().len(), 1);
        assert_eq!(now["defaultPaymentMethodId"], cards[1].as_str());
        assert_eq!(admin.post(&status, &[("csrf", &csrf), ("action", "explode")]).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(admin.post(&target, &[("csrf", &csrf), ("action", "delete")]).await.status, StatusCode::NOT_FOUND);
    }

    async fn passwords_change_and_sessions_end_when_they_should(app: TestApp) {
        let (_, password) = user(&app, "someone@example.com", "admin").await;
        let (mut a, mut b) = (Browser::new(&app), Browser::new(&app));
        a.sign_in("someone@example.com", &password).await;
        b.sign_in("someone@example.com", &password).await;
        let csrf = hidden(&a.get("/portal/password").await.html, "csrf");
        let change = |current: &str, new: &str, again: &str| {
            [("csrf", csrf.clone()), ("current", current.to_owned()), ("new", new.to_owned()), ("again", again.to_owned())]
        };
        let form = |f: &[(&'static str, String); 4]| f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
        let post = async |br: &mut Browser, f: Vec<(&'static str, String)>| {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            br.post("/portal/password", &pairs).await.status
        };
        assert_eq!(post(&mut a, form(&change("wrong", "a long new password", "a long new password"))).await, StatusCode::UNAUTHORIZED);
        assert_eq!(post(&mut a, form(&change(&password, "short", "short"))).await, StatusCode::BAD_REQUEST);
        assert_eq!(post(&mut a, form(&change(&password, "a long new password", "another one"))).await, StatusCode::BAD_REQUEST);
        assert_eq!(post(&mut a, form(&change(&password, "a long new password", "a long new password"))).await, StatusCode::OK);
        // This session goes on; the other one ended; the old password is refused.
        assert_eq!(a.get("/portal/customers").await.status, StatusCode::OK);
        assert_eq!(b.get("/portal/customers").await.status, StatusCode::SEE_OTHER);
        assert_eq!(b.sign_in("someone@example.com", &password).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(b.sign_in("someone@example.com", "a long new password").await.status, StatusCode::SEE_OTHER);
        // Signing out everywhere ends both.
        let csrf = hidden(&a.get("/portal/customers").await.html, "csrf");
        assert_eq!(a.post("/portal/sign-out", &[("csrf", &csrf), ("everywhere", "true")]).await.status, StatusCode::SEE_OTHER);
        assert_eq!(b.get("/portal/customers").await.status, StatusCode::SEE_OTHER);
        // A session unused past the idle limit ends.
        assert_eq!(b.sign_in("someone@example.com", "a long new password").await.status, StatusCode::SEE_OTHER);
        let stale = chrono::Utc::now().timestamp_millis() - clientele::portal::IDLE_MS - 1000;
        crate::helpers::exec(&app.test_db.url, &format!("UPDATE portal_sessions SET last_seen_at = {stale}")).await;
        assert_eq!(b.get("/portal/customers").await.status, StatusCode::SEE_OTHER);
    }

    async fn an_admin_links_and_unlinks_a_provider_whose_key_stays_masked(app: TestApp) {
        let c = app.create_named("Link", "Me").await;
        let (_, password) = user(&app, "ops@example.com", "admin").await;
        let mut b = Browser::new(&app);
        b.sign_in("ops@example.com", &password).await;
        let page = b.get(&format!("/portal/customers/{c}")).await;
        let csrf = hidden(&page.html, "csrf");
        let target = format!("/portal/customers/{c}/providers");
        let bad = b.post(&target, &[("csrf", &csrf), ("provider", ""), ("providerConfigId", "cfg-1")]).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.html.contains("'provider' is required."), "{}", bad.html);
        let secret = "sk_live_0123456789abcdef";
        let r = b.post(&target, &[("csrf", &csrf), ("provider", "moneris"), ("providerConfigId", "cfg-1"), ("apiKey", secret)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let page = b.get(&format!("/portal/customers/{c}")).await;
        assert!(page.html.contains("moneris") && page.html.contains("****cdef") && !page.html.contains(secret), "{}", page.html);
        let links = app.get(&format!("/customers/{c}/providers")).await.expect(200)["items"].clone();
        let link = links[0]["id"].as_str().unwrap().to_owned();
        let events = app.feed_showing(&format!("/events?entityId={link}"), 1).await["items"].clone();
        assert_eq!((events[0]["type"].as_str(), events[0]["apiKeyId"].is_null()), (Some("provider.linked"), true));
        let r = b.post(&format!("{target}/{link}"), &[("csrf", &csrf), ("action", "unlink")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(app.get(&format!("/customers/{c}/providers")).await.expect(200)["total"], 0);
    }

    async fn an_admin_declares_and_retires_custom_parameters(app: TestApp) {
        let (_, password) = user(&app, "params@example.com", "admin").await;
        let mut b = Browser::new(&app);
        b.sign_in("params@example.com", &password).await;
        let page = b.get("/portal/custom-parameters").await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = hidden(&page.html, "csrf");
        let declare = |name: &'static str, kind: &'static str| {
            vec![("csrf", csrf.clone()), ("name", name.to_owned()), ("type", kind.to_owned()), ("secret", "true".to_owned())]
        };
        let post = async |b: &mut Browser, path: &str, f: Vec<(&'static str, String)>| {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post(path, &pairs).await
        };
        assert_eq!(post(&mut b, "/portal/custom-parameters", declare("email", "string")).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(post(&mut b, "/portal/custom-parameters", declare("loyalty", "colour")).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(post(&mut b, "/portal/custom-parameters", declare("loyaltyCard", "string")).await.status, StatusCode::SEE_OTHER);
        let listed = app.get("/custom-parameters").await.expect(200).clone();
        let item = listed["items"].as_array().unwrap().iter().find(|d| d["name"] == "loyaltyCard").cloned().unwrap();
        assert_eq!((item["type"].as_str(), item["secret"].as_bool()), (Some("string"), Some(true)), "{item}");
        let retire = vec![("csrf", csrf.clone()), ("action", "retire".to_owned())];
        assert_eq!(post(&mut b, "/portal/custom-parameters/loyaltyCard", retire).await.status, StatusCode::SEE_OTHER);
        assert!(b.get("/portal/custom-parameters").await.html.contains("retired"));
        // A viewer is shown the list and refused a declaration.
        let (_, viewer_pw) = user(&app, "params.viewer@example.com", "viewer").await;
        let mut v = Browser::new(&app);
        v.sign_in("params.viewer@example.com", &viewer_pw).await;
        let page = v.get("/portal/custom-parameters").await;
        assert!(page.html.contains("loyaltyCard") && !page.html.contains("Declare"));
        let vcsrf = hidden(&page.html, "csrf");
        let f = vec![("csrf", vcsrf), ("name", "sneaky".to_owned()), ("type", "string".to_owned())];
        assert_eq!(post(&mut v, "/portal/custom-parameters", f).await.status, StatusCode::FORBIDDEN);
    }

    async fn an_admin_creates_and_edits_a_customer_with_the_api_rules(app: TestApp) {
        app.put("/custom-parameters/tier", json!({"type": "number"})).await.expect(200);
        app.put("/custom-parameters/pin", json!({"type": "string", "secret": true})).await.expect(200);
        let (admin_id, password) = user(&app, "forms@example.com", "admin").await;
        let mut b = Browser::new(&app);
        b.sign_in("forms@example.com", &password).await;
        let form = b.get("/portal/customers/new").await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(form.html.contains("name=\"tier\"") && form.html.contains("type=\"password\" name=\"pin\""), "{}", form.html);
        let csrf = hidden(&form.html, "csrf");
        // Refused by the API's own parser: the form comes back with what was typed.
        let bad = b.post("/portal/customers/new", &[("csrf", &csrf), ("firstName", "Grace"), ("lastName", "Forms"), ("email", "not an email"), ("tier", "three")]).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.html.contains("value=\"Grace\"") && bad.html.contains("email") && bad.html.contains("tier"), "{}", bad.html);
        let made = b.post("/portal/customers/new", &[("csrf", &csrf), ("firstName", "Grace"), ("lastName", "Forms"),
            ("email", "grace.forms@example.com"), ("billingAddress.line1", "1 Main St"), ("billingAddress.city", "Toronto"),
            ("billingAddress.postalCode", "M5V 2T6"), ("billingAddress.country", "CA"), ("useBillingAsShippingAddress", "true"),
            ("tier", "3"), ("pin", "1234")]).await;
        assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.html);
        let to = made.headers[LOCATION].to_str().unwrap().to_owned();
        let id = to.rsplit('/').next().unwrap().to_owned();
        let c = app.get(&format!("/customers/{id}")).await.expect(200).clone();
        assert_eq!((c["email"].as_str(), c["tier"].as_f64(), c["billingAddress"]["city"].as_str()), (Some("grace.forms@example.com"), Some(3.0), Some("Toronto")));
        assert_eq!(c["pin"], "****", "a short secret is masked whole");
        let events = app.feed_showing(&format!("/events?entityId={id}"), 1).await["items"].clone();
        assert_eq!((events[0]["type"].as_str(), events[0]["userId"].as_str()), (Some("customer.created"), Some(admin_id.to_string().as_str())));
        // Edit: the form holds the values (never the secret); what is emptied is cleared, the secret kept.
        let edit = b.get(&format!("/portal/customers/{id}/edit")).await;
        assert!(edit.html.contains("value=\"grace.forms@example.com\"") && !edit.html.contains("1234"), "{}", edit.html);
        let version = hidden(&edit.html, "version");
        let r = b.post(&format!("/portal/customers/{id}/edit"), &[("csrf", &csrf), ("version", &version), ("firstName", "Grace"),
            ("lastName", "Edited"), ("tier", "4"), ("pin", "")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
        let c = app.get(&format!("/customers/{id}")).await.expect(200).clone();
        assert_eq!((c["lastName"].as_str(), c["tier"].as_f64(), c["pin"].as_str()), (Some("Edited"), Some(4.0), Some("****")));
        assert!(c["email"].is_null() && c["billingAddress"].is_null(), "{c}");
        // A form opened before that change is refused, not applied over it.
        let stale = b.post(&format!("/portal/customers/{id}/edit"), &[("csrf", &csrf), ("version", &version), ("firstName", "Old"), ("lastName", "Form")]).await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        assert_eq!(app.get(&format!("/customers/{id}")).await.expect(200)["lastName"], "Edited");
        // A viewer gets neither form.
        let (_, viewer_pw) = user(&app, "forms.viewer@example.com", "viewer").await;
        let mut v = Browser::new(&app);
        v.sign_in("forms.viewer@example.com", &viewer_pw).await;
        assert_eq!(v.get("/portal/customers/new").await.status, StatusCode::FORBIDDEN);
        assert_eq!(v.get(&format!("/portal/customers/{id}/edit")).await.status, StatusCode::FORBIDDEN);
        assert!(!v.get("/portal/customers").await.html.contains("New customer"));
    }

    async fn credit_accounts_open_and_close_on_the_customer_page(app: TestApp) {
        let c = app.create_named("Credit", "Page").await;
        let (_, password) = user(&app, "credit@example.com", "admin").await;
        let mut b = Browser::new(&app);
        b.sign_in("credit@example.com", &password).await;
        let page = b.get(&format!("/portal/customers/{c}")).await;
        let csrf = hidden(&page.html, "csrf");
        let target = format!("/portal/customers/{c}/credit-accounts");
        let bad = b.post(&target, &[("csrf", &csrf), ("accountType", "consumer"), ("creditLimit", "-5"), ("accountInterestRate", "0.2999"), ("riskRating", "L")]).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let r = b.post(&target, &[("csrf", &csrf), ("accountType", "consumer"), ("creditLimit", "5000"), ("accountInterestRate", "0.2999"),
            ("riskRating", "L"), ("preferredLanguage", "en-CA"), ("tosAgreement", "true"), ("question", "First pet?"), ("answer", "Rex the dog")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
        let account = app.get(&format!("/credit-accounts/lookup?customerId={c}")).await.expect(200).clone();
        let number = account["accountNumber"].as_str().unwrap().to_owned();
        let (_, reveal) = app.key_with(&[clientele::auth::Scope::PaymentMethodsReveal]).await;
        let vcc = app.send(reqwest::Method::POST, &format!("/credit-accounts/{number}/reveal"), Some(&reveal), None, &[]).await.expect(200)["vccNumber"].as_str().unwrap().to_owned();
        let page = b.get(&format!("/portal/customers/{c}")).await;
        assert!(page.html.contains(&number) && page.html.contains(&format!("•••• {}", &vcc[12..])) && page.html.contains("clear"), "{}", page.html);
        assert!(page.html.contains("5000") && !page.html.contains(&vcc) && !page.html.contains("Rex the dog"));
        // A failed verification shows; closing is final.
        let verify = json!({"format": "security_question", "securityQid": 1, "securityAnswer": "Fido"});
        app.post(&format!("/credit-accounts/{number}/verify"), verify).await.expect(400);
        assert!(b.get(&format!("/portal/customers/{c}")).await.html.contains("1 failed"));
        let close = format!("{target}/{number}");
        assert_eq!(b.post(&close, &[("csrf", &csrf), ("action", "close")]).await.status, StatusCode::SEE_OTHER);
        let account = app.get(&format!("/credit-accounts/lookup?accountNumber={number}")).await.expect(200).clone();
        assert_eq!(account["accountStatus"], "closed");
        assert_eq!(b.post(&close, &[("csrf", &csrf), ("action", "close")]).await.status, StatusCode::CONFLICT);
    }

    async fn plans_keys_webhooks_and_the_event_feed_in_the_portal(app: TestApp) {
        let (_, password) = user(&app, "settings@example.com", "admin").await;
        let mut b = Browser::new(&app);
        b.sign_in("settings@example.com", &password).await;
        let csrf = hidden(&b.get("/portal/financing-plans").await.html, "csrf");
        // A plan, by the API's rules; then deleted.
        let plan = |terms: &'static str| vec![("csrf", csrf.clone()), ("planId", "7".into()), ("planName", "Twelve easy".into()),
            ("offerCategory", "equal_billing".into()), ("apr", "0.0999".into()), ("terms", terms.into())];
        let post = async |b: &mut Browser, path: &str, f: Vec<(&'static str, String)>| {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post(path, &pairs).await
        };
        assert_eq!(post(&mut b, "/portal/financing-plans", plan("12, 12")).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(post(&mut b, "/portal/financing-plans", plan("12: 29.99, 24")).await.status, StatusCode::SEE_OTHER);
        let p = app.get("/financing-plans/7").await.expect(200).clone();
        assert_eq!((p["terms"][0]["adminFee"].as_f64(), p["terms"][1]["term"].as_i64()), (Some(29.99), Some(24)), "{p}");
        assert!(b.get("/portal/financing-plans").await.html.contains("12: 29.99, 24"));
        let del = vec![("csrf", csrf.clone()), ("action", "delete".to_owned())];
        assert_eq!(post(&mut b, "/portal/financing-plans/7", del).await.status, StatusCode::SEE_OTHER);
        app.get("/financing-plans/7").await.expect(404);

        // A key: shown once, working, listed without its secret, then revoked.
        let made = post(&mut b, "/portal/api-keys", vec![("csrf", csrf.clone()), ("scope", "customers:read".into())]).await;
        assert_eq!(made.status, StatusCode::OK);
        assert_eq!(made.headers["cache-control"], "no-store");
        let at = made.html.find("ck_").expect("the key, shown once");
        let key: String = made.html[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
        let r = app.send(reqwest::Method::GET, "/customers", Some(&key), None, &[]).await;
        assert_eq!(r.status, 200);
        let r = app.send(reqwest::Method::POST, "/customers", Some(&key), Some(json!({"firstName": "A", "lastName": "B"})), &[]).await;
        assert_eq!(r.status, 403, "only the scopes chosen");
        let list = b.get("/portal/api-keys").await;
        assert!(!list.html.contains(&key) && list.html.contains("customers:read"));
        let key_id = made.html.split("The key ").nth(1).unwrap().split(' ').next().unwrap().to_owned();
        let events = app.feed_showing(&format!("/events?entityId={key_id}"), 1).await["items"].clone();
        assert_eq!(events[0]["type"], "api_key.created");
        let revoke = vec![("csrf", csrf.clone()), ("action", "revoke".to_owned())];
        assert_eq!(post(&mut b, &format!("/portal/api-keys/{key_id}"), revoke.clone()).await.status, StatusCode::SEE_OTHER);
        tokio::time::sleep(clientele::auth::KEY_CACHE_TTL + std::time::Duration::from_millis(200)).await;
        assert_eq!(app.send(reqwest::Method::GET, "/customers", Some(&key), None, &[]).await.status, 401);
        assert_eq!(post(&mut b, &format!("/portal/api-keys/{key_id}"), revoke).await.status, StatusCode::NOT_FOUND);
        let none = post(&mut b, "/portal/api-keys", vec![("csrf", csrf.clone())]).await;
        assert_eq!(none.status, StatusCode::BAD_REQUEST);

        // A webhook endpoint: its secret shown once, disabled, deleted.
        let bad = post(&mut b, "/portal/webhook-endpoints", vec![("csrf", csrf.clone()), ("url", "ftp://x".into()), ("enabledEvents", "*".into())]).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let made = post(&mut b, "/portal/webhook-endpoints", vec![("csrf", csrf.clone()), ("url", "http://127.0.0.1:9/hooks".into()),
            ("enabledEvents", "customer.created, customer.deleted".into())]).await;
        assert_eq!(made.status, StatusCode::OK, "{}", made.html);
        let secret_at = made.html.find("whsec_").expect("the secret, shown once");
        let secret: String = made.html[secret_at..].chars().take_while(|c| *c != '<').collect();
        let endpoints = app.get("/webhook-endpoints").await.expect(200)["items"].clone();
        let endpoint = endpoints[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(endpoints[0]["enabledEvents"], json!(["customer.created", "customer.deleted"]));
        let page = b.get("/portal/webhook-endpoints").await;
        assert!(page.html.contains("http://127.0.0.1:9/hooks") && !page.html.contains(&secret));
        let act = |a: &str| vec![("csrf", csrf.clone()), ("action", a.to_owned())];
        let target = format!("/portal/webhook-endpoints/{endpoint}");
        assert_eq!(post(&mut b, &target, act("disable")).await.status, StatusCode::SEE_OTHER);
        assert_eq!(app.get(&format!("/webhook-endpoints/{endpoint}")).await.expect(200)["status"], "disabled");
        let rotated = post(&mut b, &target, act("rotate")).await;
        assert!(rotated.status == StatusCode::OK && rotated.html.contains("whsec_") && !rotated.html.contains(&secret));
        assert_eq!(post(&mut b, &target, act("delete")).await.status, StatusCode::SEE_OTHER);
        app.get(&format!("/webhook-endpoints/{endpoint}")).await.expect(404);

        // The feed: the newest first, by type, naming the person.
        let feed = b.get("/portal/events").await;
        assert_eq!(feed.status, StatusCode::OK);
        let (deleted, created) = (feed.html.find("webhook_endpoint.deleted").unwrap(), feed.html.find("api_key.created").unwrap());
        assert!(deleted < created && feed.html.contains("settings@example.com"), "{}", feed.html);
        let only = b.get("/portal/events?type=financing_plan.updated").await;
        assert!(only.html.contains("financing_plan.updated") && !only.html.contains("api_key.created</td>"));
        assert_eq!(b.get("/portal/events?type=nonsense").await.status, StatusCode::BAD_REQUEST);
    }
}
