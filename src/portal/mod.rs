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

mod customers;
mod feed;
mod settings;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
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

use crate::AppState;
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
        .route("/portal/customers", get(customers::list))
        .route("/portal/customers/new", get(customers::new_form).post(customers::create))
        .route("/portal/customers/{customerId}", get(customers::show))
        .route("/portal/customers/{customerId}/edit", get(customers::edit_form).post(customers::update))
        .route("/portal/customers/{customerId}/status", post(customers::change_status))
        .route("/portal/customers/{customerId}/payment-methods/{paymentMethodId}", post(customers::change_method))
        .route("/portal/customers/{customerId}/providers", post(customers::link_provider))
        .route("/portal/customers/{customerId}/credit-accounts", post(customers::open_account))
        .route("/portal/customers/{customerId}/credit-accounts/{accountNumber}", post(customers::close_account))
        .route("/portal/customers/{customerId}/providers/{providerId}", post(customers::unlink_provider))
        .route("/portal/custom-parameters", get(settings::parameters).post(settings::declare_parameter))
        .route("/portal/custom-parameters/{name}", post(settings::retire_parameter))
        .route("/portal/financing-plans", get(settings::plans).post(settings::put_plan))
        .route("/portal/financing-plans/{planId}", post(settings::delete_plan))
        .route("/portal/api-keys", get(settings::api_keys).post(settings::create_api_key))
        .route("/portal/api-keys/{keyId}", post(settings::revoke_api_key))
        .route("/portal/webhook-endpoints", get(settings::webhooks).post(settings::create_webhook))
        .route("/portal/webhook-endpoints/{endpointId}", post(settings::change_webhook))
        .route("/portal/events", get(feed::list))
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
                        nav {
                            a href="/portal/customers" { "Customers" } " "
                            a href="/portal/events" { "Events" } " "
                            a href="/portal/custom-parameters" { "Custom parameters" } " "
                            a href="/portal/financing-plans" { "Financing plans" } " "
                            a href="/portal/api-keys" { "API keys" } " "
                            a href="/portal/webhook-endpoints" { "Webhooks" }
                        }
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

/// A number typed in a form, as JSON: text when it is none, for the API's parser
/// to name the problem.
fn form_number(text: &str) -> serde_json::Value {
    let text = text.trim();
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .filter(serde_json::Value::is_number)
        .unwrap_or_else(|| text.into())
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
        Err(StoreError::VersionMismatch { .. }) => {
            let why = "Someone changed this since you opened the form; open it again to see their change.";
            error_page(StatusCode::CONFLICT, Some(&user), why)
        }
        Err(StoreError::DuplicateReference { .. }) => {
            error_page(StatusCode::CONFLICT, Some(&user), "Another customer has this external reference.")
        }
        Err(StoreError::Invalid { message, .. }) => error_page(StatusCode::BAD_REQUEST, Some(&user), &message),
        Err(e) => {
            tracing::warn!(error = %e, "a portal change failed");
            error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The change could not be made; try again.")
        }
    }
}

impl PortalUser {
    /// A one-button form posting `action` to `target`, with this session's token.
    fn button(&self, target: &str, action: &str, label: &str) -> Markup {
        html! {
            form.inline method="post" action=(target) {
                input type="hidden" name="csrf" value=(self.csrf);
                input type="hidden" name="action" value=(action);
                button type="submit" { (label) }
            }
        }
    }
}

/// A viewer's refusal of an admin's page or change.
fn refuse_viewer(user: &PortalUser) -> Option<Response> {
    (!user.is_admin())
        .then(|| error_page(StatusCode::FORBIDDEN, Some(user), "A viewer sees everything and changes nothing."))
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
    if let Some(refused) = refuse_viewer(user) {
        return Err(Box::new(refused));
    }
    Ok(fields)
}

/// The page for an error the API's own code answered: its status and message.
fn api_error_page(user: &PortalUser, e: &crate::error::ApiError) -> Response {
    let parts = &e.0;
    let why = if parts.errors.is_empty() {
        parts.details.clone()
    } else {
        parts.errors.values().flatten().cloned().collect::<Vec<_>>().join(" ")
    };
    error_page(parts.status, Some(user), &why)
}

/// A 400 page listing what a parser found wrong with a form.
fn problems_page(user: &PortalUser, problems: &crate::domain::Problems) -> Response {
    let why = problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join(" ");
    error_page(StatusCode::BAD_REQUEST, Some(user), &why)
}

fn unknown_action() -> StoreError {
    StoreError::Invalid { path: "action".into(), message: "That is not something this form does.".into() }
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
