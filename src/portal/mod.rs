//! The merchant portal at `/portal`: server-rendered pages for a merchant's
//! staff, signed in as users (`clientele user create`), not with API keys.
//!
//! Sessions live in the database (any node serves them) behind an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` unless the listener is loopback), with an
//! idle and an absolute expiry. Every form carries a CSRF token derived from the
//! session (or, for signing in, from a cookie of its own). Pages run no script
//! and load only the portal's own stylesheet (`Content-Security-Policy`), and
//! show only what the API's masked views show: no full card or account number,
//! secret or security answer.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, RawQuery, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use maud::{DOCTYPE, Markup, html};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::domain::customer::CustomerStatus;
use crate::routes::customers::{CustomerView, parse_search};
use crate::routes::payment_methods::split;
use crate::store::events::EventFilter;
use crate::store::portal::SessionRecord;
use crate::store::{Actor, StoreError, Tenant, now_ms};

const SESSION_COOKIE: &str = "clientele_session";
const SIGN_IN_COOKIE: &str = "clientele_sign_in";
/// A session unused this long ends.
pub const IDLE_MS: i64 = 30 * 60 * 1000;
/// A session ends this long after signing in, however used.
pub const ABSOLUTE_MS: i64 = 12 * 3600 * 1000;
/// A session's last use is written at most this often.
const TOUCH_EVERY_MS: i64 = 60 * 1000;
/// A form body's limit.
const FORM_LIMIT: usize = 16 * 1024;
const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const STYLESHEET: &str = include_str!("portal.css");

/// Who may be signed in for: a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Admin, Role::Viewer].into_iter().find(|r| r.as_str() == s)
    }
}

/// Sign-in attempts allowed per account and per address (each node counts its own).
pub struct Throttle {
    accounts: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for Throttle {
    fn default() -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).expect("non-zero"));
        Throttle { accounts: RateLimiter::keyed(per_minute(5)), addresses: RateLimiter::keyed(per_minute(20)) }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(|| async { redirect("/portal/customers") }))
        .route("/portal/sign-in", get(sign_in_page).post(sign_in))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/password", get(password_page).post(change_password))
        .route("/portal/customers", get(customers))
        .route("/portal/customers/{customerId}", get(customer))
        .route("/portal/customers/{customerId}/status", post(change_status))
        .route("/portal/customers/{customerId}/payment-methods/{paymentMethodId}", post(change_method))
        .route("/portal/customers/{customerId}/providers", post(link_provider))
        .route("/portal/customers/{customerId}/providers/{providerId}", post(unlink_provider))
        .route("/portal/custom-parameters", get(parameters).post(declare_parameter))
        .route("/portal/custom-parameters/{name}", post(retire_parameter))
        .route("/portal/portal.css", get(stylesheet))
}

/// A random token, URL-safe.
fn token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A new user's password: 20 random characters, shown once by the command line.
pub fn generated_password() -> String {
    token()[..20].to_owned()
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A session's CSRF token: keyed with the vault's digest key, so it cannot be
/// made without the session's token and the master key.
fn csrf_of(state: &AppState, session_token: &str) -> String {
    let d = state.vault().digest("portal-csrf", &[session_token.as_bytes()]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d[..18])
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if state.portal_secure_cookies() { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/portal; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&v).expect("cookie text is ASCII")
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static(to))]).into_response()
}

fn redirect_to(to: String) -> Response {
    match HeaderValue::from_str(&to) {
        Ok(v) => (StatusCode::SEE_OTHER, [(LOCATION, v)]).into_response(),
        Err(_) => redirect("/portal/customers"),
    }
}

/// A page: HTML, the portal's policy, never cached.
fn page(status: StatusCode, markup: Markup) -> Response {
    let mut res = (status, markup.into_string()).into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn layout(title: &str, user: Option<&PortalUser>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Clientele" }
                link rel="stylesheet" href="/portal/portal.css";
            }
            body {
                header {
                    strong { "Clientele" }
                    @if let Some(u) = user {
                        nav { a href="/portal/customers" { "Customers" } " " a href="/portal/custom-parameters" { "Custom parameters" } }
                        span.who { (u.session.email) " (" (u.session.role) ") " a href="/portal/password" { "Password" } }
                        form method="post" action="/portal/sign-out" {
                            input type="hidden" name="csrf" value=(u.csrf);
                            button type="submit" { "Sign out" }
                        }
                        form method="post" action="/portal/sign-out" {
                            input type="hidden" name="csrf" value=(u.csrf);
                            input type="hidden" name="everywhere" value="true";
                            button.everywhere type="submit" { "Sign out everywhere" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn error_page(status: StatusCode, user: Option<&PortalUser>, message: &str) -> Response {
    page(status, layout("Something is wrong", user, html! { p.error { (message) } }))
}

async fn stylesheet() -> Response {
    let mut res = STYLESHEET.into_response();
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    res
}

/// A signed-in user, from the session cookie; without a live session, a request
/// is sent to the sign-in page.
pub struct PortalUser {
    pub session: SessionRecord,
    pub csrf: String,
}

impl PortalUser {
    fn tenant(&self) -> Tenant {
        Tenant::trusted(self.session.merchant_id)
    }

    pub fn is_admin(&self) -> bool {
        self.session.role == Role::Admin.as_str()
    }

    /// A change in this user's name: its events carry the user, not a key.
    fn actor(&self) -> Actor {
        Actor {
            tenant: self.tenant(),
            api_key_id: None,
            user_id: Some(self.session.user_id),
            correlation_id: crate::http::correlation::current(),
            idempotency: None,
        }
    }
}

impl FromRequestParts<AppState> for PortalUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_sign_in = || redirect("/portal/sign-in");
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else { return Err(to_sign_in()) };
        let found = state.db().portal_session(&token_hash(&token)).await;
        let session = match found {
            Ok(Some(s)) => s,
            Ok(None) => return Err(to_sign_in()),
            Err(e) => {
                tracing::warn!(error = %e, "portal session lookup failed");
                return Err(error_page(StatusCode::SERVICE_UNAVAILABLE, None, "The database is not answering."));
            }
        };
        let now = now_ms();
        if now - session.last_seen_at > IDLE_MS || now - session.created_at > ABSOLUTE_MS {
            let _ = state.db().end_portal_session(&session, false).await;
            return Err(to_sign_in());
        }
        if now - session.last_seen_at > TOUCH_EVERY_MS {
            let _ = state.db().touch_portal_session(&session).await;
        }
        Ok(PortalUser { csrf: csrf_of(state, &token), session })
    }
}

/// A form body as name/value pairs (at most [`FORM_LIMIT`] bytes).
async fn form(body: Body) -> Option<Vec<(String, String)>> {
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.ok()?;
    Some(form_urlencoded::parse(&bytes).into_owned().collect())
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// Compares two tokens in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn sign_in_form(state: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    let t = token();
    let mut res = page(
        status,
        layout(
            "Sign in",
            None,
            html! {
                @if let Some(m) = message { p.error { (m) } }
                form method="post" action="/portal/sign-in" {
                    input type="hidden" name="csrf" value=(t);
                    label { "Email" input type="email" name="email" autocomplete="username" required; }
                    label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                    button type="submit" { "Sign in" }
                }
            },
        ),
    );
    res.headers_mut().append(SET_COOKIE, set_cookie(state, SIGN_IN_COOKIE, &t, 3600));
    res
}

async fn sign_in_page(State(state): State<AppState>) -> Response {
    sign_in_form(&state, StatusCode::OK, None)
}

async fn sign_in(State(state): State<AppState>, req: Request) -> Response {
    let addr = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let expected = cookie(req.headers(), SIGN_IN_COOKIE);
    let Some(form) = form(req.into_body()).await else {
        return sign_in_form(&state, StatusCode::BAD_REQUEST, Some("The form could not be read."));
    };
    if !expected.is_some_and(|e| same(&e, field(&form, "csrf"))) {
        return sign_in_form(&state, StatusCode::FORBIDDEN, Some("The form expired; sign in again."));
    }
    let email = field(&form, "email").trim().to_lowercase();
    let password = field(&form, "password").to_owned();
    let throttle = state.portal_throttle();
    let limited =
        addr.is_some_and(|a| throttle.addresses.check_key(&a).is_err()) || throttle.accounts.check_key(&email).is_err();
    if limited {
        return sign_in_form(&state, StatusCode::TOO_MANY_REQUESTS, Some("Too many attempts; wait a minute."));
    }
    let user = match state.db().portal_user_by_email(&email).await {
        Ok(u) => u.filter(|u| u.status == "active"),
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, None, "The database is not answering."),
    };
    // An unknown email costs a hash check too: its answer and its time are a wrong password's.
    let stored = user.as_ref().map_or_else(|| DECOY_HASH.clone(), |u| u.password_hash.clone());
    let vault = state.vault();
    let ok = crate::crypto::slow_work(move || vault.password_matches(&stored, &password)).await.unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        return sign_in_form(&state, StatusCode::UNAUTHORIZED, Some("The email or the password is wrong."));
    };
    let session = token();
    if state.db().create_portal_session(&user, &token_hash(&session)).await.is_err() {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, None, "The database is not answering.");
    }
    let mut res = redirect("/portal/customers");
    res.headers_mut().append(SET_COOKIE, set_cookie(&state, SESSION_COOKIE, &session, ABSOLUTE_MS / 1000));
    res.headers_mut().append(SET_COOKIE, set_cookie(&state, SIGN_IN_COOKIE, "", 0));
    res
}

/// A hash no password matches, checked for unknown emails.
static DECOY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default().hash_password(token().as_bytes(), &salt).map(|h| h.to_string()).unwrap_or_default()
});

/// The refusal of a change without the session's CSRF token, if it lacks it.
fn refuse_forged(user: &PortalUser, form: &[(String, String)]) -> Option<Response> {
    (!same(&user.csrf, field(form, "csrf")))
        .then(|| error_page(StatusCode::FORBIDDEN, Some(user), "The form is not from this session; reload the page."))
}

async fn sign_out(State(state): State<AppState>, user: PortalUser, body: Body) -> Response {
    let Some(form) = form(body).await else {
        return error_page(StatusCode::BAD_REQUEST, Some(&user), "The form could not be read.");
    };
    if let Some(refused) = refuse_forged(&user, &form) {
        return refused;
    }
    let everywhere = field(&form, "everywhere") == "true";
    if state.db().end_portal_session(&user.session, everywhere).await.is_err() {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The database is not answering.");
    }
    let mut res = redirect("/portal/sign-in");
    res.headers_mut().append(SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", 0));
    res
}

fn name_of(c: &CustomerView) -> String {
    format!("{} {}", c.first_name, c.last_name)
}

/// Customers: the API's search (`search`, `page`), 25 a page.
async fn customers(State(state): State<AppState>, user: PortalUser, RawQuery(raw): RawQuery) -> Response {
    let mut search_text = String::new();
    let mut page_no = 1u32;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "search" => search_text = v.trim().chars().take(200).collect(),
            "page" => page_no = v.parse().unwrap_or(1).clamp(1, 10_000),
            _ => {}
        }
    }
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("search", &search_text)
        .append_pair("page", &page_no.to_string())
        .append_pair("pageSize", "25")
        .finish();
    let parsed = match parse_search(Some(&query), &[]) {
        Ok(q) => q,
        Err(p) => return problems_page(&user, &p),
    };
    let found = match state.db().scoped(user.tenant()).search_customers(&parsed).await {
        Ok(f) => f,
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The search could not be run."),
    };
    let total = found.total;
    let items: Vec<CustomerView> = found.items.into_iter().map(CustomerView::from).collect();
    let pages = ((total.max(0) as u64).div_ceil(25)).max(1);
    let link = |p: u64| {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("search", &search_text)
            .append_pair("page", &p.to_string())
            .finish();
        format!("/portal/customers?{q}")
    };
    let body = html! {
        form.search method="get" action="/portal/customers" {
            input type="search" name="search" value=(search_text) placeholder="Name, email or phone";
            button type="submit" { "Search" }
        }
        p.count { (total) @if total == 1 { " customer" } @else { " customers" } }
        table {
            thead { tr { th { "Name" } th { "Email" } th { "Phone" } th { "Status" } th { "Created" } } }
            tbody {
                @for c in &items {
                    tr {
                        td { a href=(format!("/portal/customers/{}", c.id)) { (name_of(c)) } }
                        td { (c.email.as_deref().unwrap_or("")) }
                        td { (c.mobile_phone_number.as_deref().unwrap_or("")) }
                        td { (c.status) }
                        td { (c.created_on.get(..10).unwrap_or("")) }
                    }
                }
            }
        }
        nav.pages {
            @if u64::from(page_no) > 1 { a href=(link(u64::from(page_no) - 1)) { "Previous" } }
            span { "Page " (page_no) " of " (pages) }
            @if u64::from(page_no) < pages { a href=(link(u64::from(page_no) + 1)) { "Next" } }
        }
    };
    page(StatusCode::OK, layout("Customers", Some(&user), body))
}

/// A customer: fields, cards and bank accounts (masked), recent events.
async fn customer(State(state): State<AppState>, user: PortalUser, params: RawPathParams) -> Response {
    let raw = params.iter().find(|(k, _)| *k == "customerId").map_or("", |(_, v)| v);
    let Ok(id) = Uuid::parse_str(raw) else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such customer.");
    };
    let db = state.db().scoped(user.tenant());
    let parts = match db.customer_parts(id).await {
        Ok(Some(p)) => p,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, Some(&user), "No such customer."),
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The customer could not be read."),
    };
    let providers = match db.providers_of(id, 1, 50).await {
        Ok((links, _)) => links,
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The customer could not be read."),
    };
    let filter = EventFilter { entity_id: Some(id), limit: 20, ..EventFilter::default() };
    let events = db.list_events(&filter).await.unwrap_or_default();
    let (cards, banks) = split(parts.methods);
    let mut c = CustomerView::from(parts.record);
    c.custom = parts.custom;
    let address = |a: &Option<crate::routes::customers::AddressView>| {
        a.as_ref().map_or(String::new(), |a| {
            [&a.line1, &a.line2, &a.city, &a.state, &a.postal_code, &a.country]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let admin = user.is_admin();
    let base = format!("/portal/customers/{}", c.id);
    let button = |action: &str, label: &str, target: &str| {
        html! {
            form.inline method="post" action=(target) {
                input type="hidden" name="csrf" value=(user.csrf);
                input type="hidden" name="action" value=(action);
                button type="submit" { (label) }
            }
        }
    };
    let body = html! {
        @if admin {
            p.actions {
                @if c.status == "active" {
                    (button("inactive", "Deactivate the customer", &format!("{base}/status")))
                } @else {
                    (button("active", "Activate the customer", &format!("{base}/status")))
                }
            }
        }
        dl {
            dt { "Id" } dd { (c.id) }
            dt { "Status" } dd { (c.status) }
            dt { "Email" } dd { (c.email.as_deref().unwrap_or("")) }
            dt { "Phone" } dd { (c.mobile_phone_number.as_deref().unwrap_or("")) }
            dt { "Company" } dd { (c.company_name.as_deref().unwrap_or("")) }
            dt { "Date of birth" } dd { (c.date_of_birth.as_deref().unwrap_or("")) }
            dt { "Billing address" } dd { (address(&c.billing_address)) }
            dt { "Shipping address" } dd { (address(&c.shipping_address)) }
            dt { "External reference" } dd { (c.external_reference.as_deref().unwrap_or("")) }
            dt { "Created" } dd { (c.created_on) }
            @for (name, value) in &c.custom {
                dt { (name) } dd { (value.as_str().map_or_else(|| value.to_string(), str::to_owned)) }
            }
        }
        h2 { "Cards" }
        table {
            thead { tr { th { "Brand" } th { "Number" } th { "Expires" } th { "Status" } th { "Default" } @if admin { th {} } } }
            tbody {
                @for card in &cards {
                    tr {
                        td { (card.brand) } td { (card.masked_pan) }
                        td { (format!("{:02}/{}", card.expiration_month, card.expiration_year)) }
                        td { (card.status) } td { @if card.is_default { "default" } }
                        @if admin { td { (method_actions(&button, &base, card.id, &card.status, card.is_default)) } }
                    }
                }
            }
        }
        h2 { "Bank accounts" }
        table {
            thead { tr { th { "Routing" } th { "Account" } th { "Status" } th { "Default" } @if admin { th {} } } }
            tbody {
                @for bank in &banks {
                    tr {
                        td { (bank.routing_number) }
                        td { "••••" (bank.account_number_last4.as_deref().unwrap_or("")) }
                        td { (bank.status) } td { @if bank.is_default { "default" } }
                        @if admin { td { (method_actions(&button, &base, bank.id, &bank.status, bank.is_default)) } }
                    }
                }
            }
        }
        h2 { "Payment providers" }
        table {
            thead { tr { th { "Provider" } th { "Configuration" } th { "API key" } th { "Linked" } @if admin { th {} } } }
            tbody {
                @for link in &providers {
                    tr {
                        td { (link.provider) } td { (link.provider_config_id) }
                        td { (link.api_key_hint.as_deref().unwrap_or("")) }
                        td { (crate::routes::timestamp(link.created_at)) }
                        @if admin { td { (button("unlink", "Unlink", &format!("{base}/providers/{}", link.id))) } }
                    }
                }
            }
        }
        @if admin {
            form.link method="post" action=(format!("{base}/providers")) {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "Provider" input type="text" name="provider" required maxlength="100"; }
                label { "Configuration id" input type="text" name="providerConfigId" required maxlength="200"; }
                label { "API key (kept encrypted, shown masked)" input type="password" name="apiKey" autocomplete="off" maxlength="1000"; }
                button type="submit" { "Link a provider" }
            }
        }
        h2 { "Events (the first 20)" }
        table {
            thead { tr { th { "Type" } th { "When" } th { "Correlation id" } } }
            tbody {
                @for e in &events {
                    tr { td { (e.kind) } td { (crate::routes::timestamp(e.created_at)) } td { (e.correlation_id) } }
                }
            }
        }
    };
    page(StatusCode::OK, layout(&name_of(&c), Some(&user), body))
}

/// An admin's buttons for a card or bank account.
fn method_actions(
    button: &impl Fn(&str, &str, &str) -> Markup,
    base: &str,
    id: Uuid,
    status: &str,
    is_default: bool,
) -> Markup {
    let target = format!("{base}/payment-methods/{id}");
    html! {
        @if status == "active" {
            (button("deactivate", "Deactivate", &target))
            @if !is_default { (button("default", "Make default", &target)) }
        } @else {
            (button("activate", "Activate", &target))
        }
        (button("delete", "Delete", &target))
    }
}

/// A change from an [`admin_form`]: `work` in the user's name; back to the page
/// `back`, or a page saying why not.
async fn change<F, Fut>(
    state: AppState,
    user: PortalUser,
    back: String,
    form: Vec<(String, String)>,
    work: F,
) -> Response
where
    F: FnOnce(crate::store::WriteTx, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let action = field(&form, "action").to_owned();
    match state.db().write(user.actor(), move |tx| work(tx, action)).await {
        Ok(()) => redirect_to(back),
        Err(StoreError::NotFound(what)) => {
            error_page(StatusCode::NOT_FOUND, Some(&user), &format!("{what} was not found."))
        }
        Err(StoreError::Conflict { message, .. }) => error_page(StatusCode::CONFLICT, Some(&user), message),
        Err(StoreError::Invalid { message, .. }) => error_page(StatusCode::BAD_REQUEST, Some(&user), &message),
        Err(e) => {
            tracing::warn!(error = %e, "a portal change failed");
            error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The change could not be made; try again.")
        }
    }
}

/// A change's form, read and let through only with the session's token and an
/// admin's role, so that a forged or a viewer's form learns nothing more.
async fn admin_form(user: &PortalUser, body: Body) -> Result<Vec<(String, String)>, Box<Response>> {
    let Some(fields) = form(body).await else {
        return Err(Box::new(error_page(StatusCode::BAD_REQUEST, Some(user), "The form could not be read.")));
    };
    if let Some(refused) = refuse_forged(user, &fields) {
        return Err(Box::new(refused));
    }
    if !user.is_admin() {
        let refused = "A viewer sees everything and changes nothing.";
        return Err(Box::new(error_page(StatusCode::FORBIDDEN, Some(user), refused)));
    }
    Ok(fields)
}

/// A 400 page listing what a parser found wrong with a form.
fn problems_page(user: &PortalUser, problems: &crate::domain::Problems) -> Response {
    let why = problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join(" ");
    error_page(StatusCode::BAD_REQUEST, Some(user), &why)
}

fn path_id(params: &RawPathParams, name: &str) -> Option<Uuid> {
    params.iter().find(|(k, _)| *k == name).and_then(|(_, v)| Uuid::parse_str(v).ok())
}

fn unknown_action() -> StoreError {
    StoreError::Invalid { path: "action".into(), message: "That is not something this form does.".into() }
}

async fn change_status(State(state): State<AppState>, user: PortalUser, params: RawPathParams, body: Body) -> Response {
    let Some(id) = path_id(&params, "customerId") else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such customer.");
    };
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    change(state, user, format!("/portal/customers/{id}"), fields, move |mut tx, action| async move {
        let status = match action.as_str() {
            "active" => CustomerStatus::Active,
            "inactive" => CustomerStatus::Inactive,
            _ => return Err(unknown_action()),
        };
        tx.set_customer_status(id, status, None).await?;
        tx.commit().await
    })
    .await
}

async fn change_method(State(state): State<AppState>, user: PortalUser, params: RawPathParams, body: Body) -> Response {
    let (Some(customer), Some(id)) = (path_id(&params, "customerId"), path_id(&params, "paymentMethodId")) else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such payment method.");
    };
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    change(state, user, format!("/portal/customers/{customer}"), fields, move |mut tx, action| async move {
        match action.as_str() {
            "activate" => drop(tx.set_method_status(customer, id, true, None).await?),
            "deactivate" => drop(tx.set_method_status(customer, id, false, None).await?),
            "default" => drop(tx.make_default(customer, id).await?),
            "delete" => tx.delete_method(customer, id, None).await?,
            _ => return Err(unknown_action()),
        }
        tx.commit().await
    })
    .await
}

/// A new password's shortest length.
pub const MIN_PASSWORD_LEN: usize = 12;

fn password_form(user: &PortalUser, status: StatusCode, message: Option<&str>) -> Response {
    page(
        status,
        layout(
            "Change your password",
            Some(user),
            html! {
                @if let Some(m) = message { p.error { (m) } }
                form method="post" action="/portal/password" {
                    input type="hidden" name="csrf" value=(user.csrf);
                    label { "Current password" input type="password" name="current" autocomplete="current-password" required; }
                    label { "New password (" (MIN_PASSWORD_LEN) " characters or more)"
                        input type="password" name="new" autocomplete="new-password" minlength=(MIN_PASSWORD_LEN) required; }
                    label { "New password again" input type="password" name="again" autocomplete="new-password" required; }
                    button type="submit" { "Change" }
                }
            },
        ),
    )
}

async fn password_page(user: PortalUser) -> Response {
    password_form(&user, StatusCode::OK, None)
}

/// Changes the signed-in user's password (the current one checked first) and
/// ends their other sessions.
async fn change_password(State(state): State<AppState>, user: PortalUser, body: Body) -> Response {
    let Some(form) = form(body).await else {
        return password_form(&user, StatusCode::BAD_REQUEST, Some("The form could not be read."));
    };
    if let Some(refused) = refuse_forged(&user, &form) {
        return refused;
    }
    let (current, new) = (field(&form, "current").to_owned(), field(&form, "new").to_owned());
    if new.chars().count() < MIN_PASSWORD_LEN || new.len() > 1024 {
        let why = format!("The new password needs {MIN_PASSWORD_LEN} characters or more.");
        return password_form(&user, StatusCode::BAD_REQUEST, Some(&why));
    }
    if new != field(&form, "again") {
        return password_form(&user, StatusCode::BAD_REQUEST, Some("The two new passwords differ."));
    }
    let stored = match state.db().portal_password_hash(user.session.merchant_id, user.session.user_id).await {
        Ok(Some(h)) => h,
        _ => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The database is not answering."),
    };
    let vault = state.vault();
    let checked = crate::crypto::slow_work(move || {
        vault.password_matches(&stored, &current).then(|| vault.hash_password(&new).ok()).flatten()
    })
    .await;
    let Ok(Some(hash)) = checked else {
        return password_form(&user, StatusCode::UNAUTHORIZED, Some("The current password is wrong."));
    };
    if state.db().set_portal_password(&user.session, &hash).await.is_err() {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The database is not answering.");
    }
    page(StatusCode::OK, layout("Password changed", Some(&user), html! { p { "Your other sessions have ended." } }))
}

/// Links a provider from the form: the API's own parser and write (links are
/// added and removed, never edited).
async fn link_provider(State(state): State<AppState>, user: PortalUser, params: RawPathParams, body: Body) -> Response {
    let Some(customer) = path_id(&params, "customerId") else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such customer.");
    };
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let mut body = serde_json::Map::new();
    for name in ["provider", "providerConfigId", "apiKey"] {
        let value = field(&fields, name);
        if !value.is_empty() {
            body.insert(name.into(), value.into());
        }
    }
    let input = match crate::domain::provider::ProviderInput::parse(&serde_json::Value::Object(body)) {
        Ok(i) => i,
        Err(problems) => return problems_page(&user, &problems),
    };
    let vault = state.vault();
    change(state, user, format!("/portal/customers/{customer}"), fields, move |mut tx, _| async move {
        tx.link_provider(&vault, customer, Uuid::now_v7(), &input).await?;
        tx.commit().await
    })
    .await
}

async fn unlink_provider(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let (Some(customer), Some(id)) = (path_id(&params, "customerId"), path_id(&params, "providerId")) else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such provider link.");
    };
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    change(state, user, format!("/portal/customers/{customer}"), fields, move |mut tx, action| async move {
        if action != "unlink" {
            return Err(unknown_action());
        }
        tx.unlink_provider(customer, id).await?;
        tx.commit().await
    })
    .await
}

/// The merchant's custom parameters; an admin declares and retires them.
async fn parameters(State(state): State<AppState>, user: PortalUser) -> Response {
    let declared = match state.db().scoped(user.tenant()).declarations().await {
        Ok(d) => d,
        Err(_) => {
            return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The declarations could not be read.");
        }
    };
    let admin = user.is_admin();
    let body = html! {
        table {
            thead { tr { th { "Name" } th { "Type" } th { "Required" } th { "Secret" } th { "Description" } th { "State" } @if admin { th {} } } }
            tbody {
                @for d in &declared {
                    tr {
                        td { (d.name) } td { (d.kind.as_str()) }
                        td { @if d.required { "yes" } } td { @if d.secret { "yes" } }
                        td { (d.description.as_deref().unwrap_or("")) }
                        td { @if d.retired { "retired" } @else { "declared" } }
                        @if admin { td { @if !d.retired {
                            form.inline method="post" action=(format!("/portal/custom-parameters/{}", d.name)) {
                                input type="hidden" name="csrf" value=(user.csrf);
                                input type="hidden" name="action" value="retire";
                                button type="submit" { "Retire" }
                            }
                        } } }
                    }
                }
            }
        }
        @if admin {
            form.link method="post" action="/portal/custom-parameters" {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "Name (a letter, then letters, digits or _)" input type="text" name="name" required maxlength="64"; }
                label { "Type" select name="type" { option { "string" } option { "number" } option { "boolean" } option { "date" } } }
                label.check { input type="checkbox" name="required" value="true"; " Required" }
                label.check { input type="checkbox" name="secret" value="true"; " Secret (stored encrypted, shown masked)" }
                label { "Description" input type="text" name="description" maxlength="500"; }
                button type="submit" { "Declare" }
            }
        }
    };
    page(StatusCode::OK, layout("Custom parameters", Some(&user), body))
}

/// Declares (or changes) a parameter from the form, by the API's own rules.
async fn declare_parameter(State(state): State<AppState>, user: PortalUser, body: Body) -> Response {
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let name = field(&fields, "name").trim().to_owned();
    if let Err(why) = crate::domain::custom::check_name(&name) {
        return error_page(StatusCode::BAD_REQUEST, Some(&user), &why);
    }
    let mut json = serde_json::Map::new();
    json.insert("type".into(), field(&fields, "type").into());
    json.insert("required".into(), (field(&fields, "required") == "true").into());
    json.insert("secret".into(), (field(&fields, "secret") == "true").into());
    let description = field(&fields, "description").trim();
    if !description.is_empty() {
        json.insert("description".into(), description.into());
    }
    let input = match crate::domain::custom::DeclarationInput::parse(&serde_json::Value::Object(json)) {
        Ok(i) => i,
        Err(problems) => return problems_page(&user, &problems),
    };
    change(state, user, "/portal/custom-parameters".into(), fields, move |mut tx, _| async move {
        tx.declare(&name, &input).await?;
        tx.commit().await
    })
    .await
}

async fn retire_parameter(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let name = params.iter().find(|(k, _)| *k == "name").map_or("", |(_, v)| v).to_owned();
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    change(state, user, "/portal/custom-parameters".into(), fields, move |mut tx, action| async move {
        if action != "retire" {
            return Err(unknown_action());
        }
        tx.retire(&name).await?;
        tx.commit().await
    })
    .await
}
