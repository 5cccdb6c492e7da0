//! The customer pages: the list and search, one customer's page, and an admin's
//! changes to a customer, its payment methods and its provider links.

use axum::body::Body;
use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    PortalUser, admin_form, api_error_page, change, error_page, field, form_number, layout, page, problems_page,
    redirect_to, refuse_viewer, unknown_action,
};
use crate::AppState;
use crate::domain::Problems;
use crate::domain::address::ADDRESS_FIELDS;
use crate::domain::credit::{AccountInput, LANGUAGES};
use crate::domain::custom::{Declaration, ParamType, active_names};
use crate::domain::customer::{CustomerInput, CustomerStatus};
use crate::domain::money::Money;
use crate::http::extract::{path_param, path_uuid};
use crate::routes::customers::{CustomerDetail, CustomerView, parse_search, write_new, write_update};
use crate::store::credit::AccountRecord;
use crate::store::customers::CustomerParts;
use crate::store::events::EventFilter;

fn name_of(c: &CustomerView) -> String {
    format!("{} {}", c.first_name, c.last_name)
}

/// Customers: the API's search (`search`, `page`), 25 a page.
pub(super) async fn list(State(state): State<AppState>, user: PortalUser, RawQuery(raw): RawQuery) -> Response {
    // The search words and the API's filters, as typed (empty ones left out).
    let mut terms: Vec<(&str, String)> = Vec::new();
    let mut page_no = 1u32;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        let v: String = v.trim().chars().take(200).collect();
        match FILTERS.iter().find(|(name, _)| *name == k) {
            Some((name, _)) if !v.is_empty() => terms.push((name, v)),
            _ if k == "page" => page_no = v.parse().unwrap_or(1).clamp(1, 10_000),
            _ => {}
        }
    }
    let query_of = |page: u64| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, v) in &terms {
            q.append_pair(name, v);
        }
        q.append_pair("page", &page.to_string()).finish()
    };
    let parsed = match parse_search(Some(&format!("{}&pageSize=25", query_of(page_no.into()))), &[]) {
        Ok(q) => q,
        Err(p) => return problems_page(&user, &p),
    };
    let term = |name: &str| terms.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str());
    let found = match state.db().scoped(user.tenant()).search_customers(&parsed).await {
        Ok(f) => f,
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The search could not be run."),
    };
    let total = found.total;
    let items: Vec<CustomerView> = found.items.into_iter().map(CustomerView::from).collect();
    let pages = ((total.max(0) as u64).div_ceil(25)).max(1);
    let link = |p: u64| format!("/portal/customers?{}", query_of(p));
    let body = html! {
        @if user.is_admin() { p.actions { a href="/portal/customers/new" { "New customer" } } }
        form.search method="get" action="/portal/customers" {
            input type="search" name="search" value=(term("search")) placeholder="Name, email or phone";
            button type="submit" { "Search" }
            details open[terms.iter().any(|(n, _)| *n != "search")] {
                summary { "Filters" }
                label { "Status" select name="status" {
                    option value="" { "any" }
                    @for s in ["active", "inactive"] { option selected[term("status") == s] { (s) } }
                } }
                @for (name, label) in &FILTERS[2..] {
                    label { (label) input type="text" name=(name) value=(term(name)); }
                }
            }
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

/// The list's search words and filters: the API's query parameters, labelled.
const FILTERS: [(&str, &str); 8] = [
    ("search", "Search"),
    ("status", "Status"),
    ("email", "Email"),
    ("externalReference", "External reference"),
    ("postalCode", "Postal code"),
    ("dateOfBirth", "Date of birth (YYYY-MM-DD)"),
    ("dateFrom", "Created from (YYYY-MM-DD)"),
    ("dateTo", "Created until (YYYY-MM-DD)"),
];

/// A customer with its methods and custom values, or the page saying why not.
async fn read_customer(state: &AppState, user: &PortalUser, id: Uuid) -> Result<CustomerParts, Response> {
    match state.db().scoped(user.tenant()).customer_parts(id).await {
        Ok(Some(parts)) => Ok(parts),
        Ok(None) => Err(error_page(StatusCode::NOT_FOUND, Some(user), "No such customer.")),
        Err(_) => Err(error_page(StatusCode::SERVICE_UNAVAILABLE, Some(user), "The customer could not be read.")),
    }
}

/// A customer: fields, cards and bank accounts (masked), recent events.
pub(super) async fn show(State(state): State<AppState>, user: PortalUser, params: RawPathParams) -> Response {
    let Ok(id) = path_uuid(&params, "customerId") else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such customer.");
    };
    let parts = match read_customer(&state, &user, id).await {
        Ok(p) => p,
        Err(failed) => return failed,
    };
    let db = state.db().scoped(user.tenant());
    let providers = match db.providers_of(id, 1, 50).await {
        Ok((links, _)) => links,
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The customer could not be read."),
    };
    let accounts = match db.accounts_of(id).await {
        Ok(a) => a,
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The customer could not be read."),
    };
    let filter = EventFilter { entity_id: Some(id), limit: 20, newest_first: true, ..EventFilter::default() };
    let events = db.list_events(&filter).await.unwrap_or_default();
    let CustomerDetail { customer: c, cards, ach_accounts: banks } = parts.into();
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
    let now = crate::store::now_ms();
    let base = format!("/portal/customers/{}", c.id);
    let button = |action: &str, label: &str, target: &str| user.button(target, action, label);
    let body = html! {
        @if admin {
            p.actions {
                a href=(format!("{base}/edit")) { "Edit" }
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
            details {
                summary { "Link a provider" }
                form.link method="post" action=(format!("{base}/providers")) {
                    input type="hidden" name="csrf" value=(user.csrf);
                    label { "Provider" input type="text" name="provider" required maxlength="100"; }
                    label { "Configuration id" input type="text" name="providerConfigId" required maxlength="200"; }
                    label { "API key (kept encrypted, shown masked)" input type="password" name="apiKey" autocomplete="off" maxlength="1000"; }
                    button type="submit" { "Link a provider" }
                }
            }
        }
        h2 { "Credit accounts" }
        table {
            thead { tr { th { "Account" } th { "Type" } th { "Status" } th { "Limit" } th { "Available" } th { "Rate" }
                th { "Risk" } th { "Card" } th { "Verification" } th { "Opened" } @if admin { th {} } } }
            tbody {
                @for a in &accounts {
                    tr {
                        td { (a.account_number) } td { (a.account_type) } td { (a.status) }
                        td { (Money(a.credit_limit).to_decimal()) } td { (Money((a.credit_limit - a.outstanding).max(0)).to_decimal()) }
                        td { (a.interest_rate) } td { (a.risk_rating) } td { "•••• " (a.vcc_last4) }
                        td { (verification_state(a, now)) }
                        td { (crate::routes::timestamp(a.created_at).get(..10).unwrap_or("")) }
                        @if admin { td { @if a.status == "open" {
                            (button("close", "Close", &format!("{base}/credit-accounts/{}", a.account_number)))
                        } } }
                    }
                }
            }
        }
        @if admin {
            details {
                summary { "Open a credit account" }
                form.link method="post" action=(format!("{base}/credit-accounts")) {
                    input type="hidden" name="csrf" value=(user.csrf);
                    label { "Type" select name="accountType" { option { "consumer" } option { "business" } } }
                    label { "Credit limit" input type="text" name="creditLimit" required inputmode="decimal" maxlength="20"; }
                    label { "Annual interest rate (0.2999 for 29.99 %)" input type="text" name="accountInterestRate" required inputmode="decimal" maxlength="10"; }
                    label { "Risk" select name="riskRating" { option value="L" { "L (low)" } option value="M" { "M (medium)" } option value="H" { "H (high)" } } }
                    label { "Language" select name="preferredLanguage" { option value="" { "" } @for l in LANGUAGES { option { (l) } } } }
                    label.check { input type="checkbox" name="tosAgreement" value="true"; " Terms accepted" }
                    label.check { input type="checkbox" name="paymentProtection" value="true"; " Payment protection" }
                    label { "Security question (optional)" input type="text" name="question" maxlength="200"; }
                    label { "Its answer (stored hashed)" input type="password" name="answer" autocomplete="off" maxlength="100"; }
                    button type="submit" { "Open a credit account" }
                }
            }
        }
        h2 { "Events (the newest 20)" }
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

pub(super) async fn change_status(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let Some(id) = path_uuid(&params, "customerId").ok() else {
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

pub(super) async fn change_method(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let (Some(customer), Some(id)) =
        (path_uuid(&params, "customerId").ok(), path_uuid(&params, "paymentMethodId").ok())
    else {
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

/// Links a provider from the form: the API's own parser and write (links are
/// added and removed, never edited).
pub(super) async fn link_provider(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let Some(customer) = path_uuid(&params, "customerId").ok() else {
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

pub(super) async fn unlink_provider(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let (Some(customer), Some(id)) = (path_uuid(&params, "customerId").ok(), path_uuid(&params, "providerId").ok())
    else {
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

/// The text fields of a customer's form: the API's name, and the label.
const TEXT_FIELDS: [(&str, &str); 8] = [
    ("firstName", "First name"),
    ("lastName", "Last name"),
    ("companyName", "Company"),
    ("email", "Email"),
    ("mobilePhoneNumber", "Mobile phone (+1 416 555 0100)"),
    ("dateOfBirth", "Date of birth (YYYY-MM-DD)"),
    ("preferredLanguage", "Preferred language (en-CA)"),
    ("externalReference", "External reference"),
];
const FLAGS: [(&str, &str); 2] = [
    ("isMobileNumberSmsNotificationsEnabled", "Text messages to the mobile phone"),
    ("useBillingAsShippingAddress", "Ship to the billing address"),
];
const ADDRESSES: [(&str, &str); 2] = [("billingAddress", "Billing address"), ("shippingAddress", "Shipping address")];

/// A customer's form as the API's JSON body: what was filled in, custom values
/// typed as declared; what was left empty is left out, so an update clears it
/// (and keeps a secret parameter as it is, as `PUT` does).
fn customer_document(form: &[(String, String)], declarations: &[Declaration]) -> Value {
    let mut doc = Map::new();
    for (name, _) in TEXT_FIELDS {
        let v = field(form, name).trim();
        if !v.is_empty() {
            doc.insert(name.into(), v.into());
        }
    }
    for (name, _) in FLAGS {
        doc.insert(name.into(), (field(form, name) == "true").into());
    }
    for (address, _) in ADDRESSES {
        let mut a = Map::new();
        for part in ADDRESS_FIELDS {
            let v = field(form, &format!("{address}.{part}")).trim();
            if !v.is_empty() {
                a.insert(part.into(), v.into());
            }
        }
        if !a.is_empty() {
            doc.insert(address.into(), Value::Object(a));
        }
    }
    for d in declarations.iter().filter(|d| !d.retired) {
        let v = field(form, &d.name).trim();
        if v.is_empty() {
            continue;
        }
        // A value that is not of its type goes as text, for the parser to name.
        let value = match d.kind {
            ParamType::Number => form_number(v),
            ParamType::Boolean => v.parse::<bool>().map_or_else(|_| v.into(), Value::Bool),
            ParamType::String | ParamType::Date => v.into(),
        };
        doc.insert(d.name.clone(), value);
    }
    Value::Object(doc)
}

/// A stored customer as its form's values (secret parameters left empty: they
/// are kept unless a new value is typed).
fn form_values(c: &CustomerView, declarations: &[Declaration]) -> Vec<(String, String)> {
    let Ok(Value::Object(json)) = serde_json::to_value(c) else { return Vec::new() };
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let mut values = Vec::new();
    for (name, _) in TEXT_FIELDS {
        if let Some(v) = json.get(name).filter(|v| !v.is_null()) {
            values.push((name.to_owned(), text(v)));
        }
    }
    for (name, _) in FLAGS {
        if json.get(name) == Some(&Value::Bool(true)) {
            values.push((name.to_owned(), "true".to_owned()));
        }
    }
    for (address, _) in ADDRESSES {
        if address == "shippingAddress" && c.use_billing_as_shipping_address {
            continue;
        }
        if let Some(Value::Object(a)) = json.get(address) {
            for (part, v) in a.iter().filter(|(_, v)| !v.is_null()) {
                values.push((format!("{address}.{part}"), text(v)));
            }
        }
    }
    for d in declarations.iter().filter(|d| !d.retired && !d.secret) {
        if let Some(v) = c.custom.get(&d.name).filter(|v| !v.is_null()) {
            values.push((d.name.clone(), text(v)));
        }
    }
    values
}

/// What a customer's form is for: a new customer, or this one at this version.
enum FormFor {
    New,
    Edit { id: Uuid, version: i64 },
}

#[allow(clippy::too_many_arguments)]
fn customer_form(
    user: &PortalUser,
    status: StatusCode,
    purpose: &FormFor,
    values: &[(String, String)],
    declarations: &[Declaration],
    problems: Option<&Problems>,
) -> Response {
    let (title, action) = match purpose {
        FormFor::New => ("New customer".to_owned(), "/portal/customers/new".to_owned()),
        FormFor::Edit { id, .. } => ("Edit the customer".to_owned(), format!("/portal/customers/{id}/edit")),
    };
    let body = html! {
        @if let Some(problems) = problems {
            ul.error { @for p in problems.iter() { li { (p.message) } } }
        }
        form.record method="post" action=(action) {
            input type="hidden" name="csrf" value=(user.csrf);
            @if let FormFor::Edit { version, .. } = purpose { input type="hidden" name="version" value=(version); }
            @for (name, label) in TEXT_FIELDS {
                label { (label) input type="text" name=(name) value=(field(values, name)) maxlength="320"; }
            }
            @for (name, label) in FLAGS {
                label.check { input type="checkbox" name=(name) value="true" checked[field(values, name) == "true"]; " " (label) }
            }
            @for (address, legend) in ADDRESSES {
                fieldset {
                    legend { (legend) }
                    @for part in ADDRESS_FIELDS {
                        @let name = format!("{address}.{part}");
                        label { (part) input type="text" name=(name) value=(field(values, &name)) maxlength="200"; }
                    }
                }
            }
            @let declared: Vec<&Declaration> = declarations.iter().filter(|d| !d.retired).collect();
            @if !declared.is_empty() {
                fieldset {
                    legend { "Custom parameters" }
                    @for d in declared {
                        label {
                            (d.name) " (" (d.kind.as_str()) @if d.required { ", required" } ")"
                            @if d.secret {
                                input type="password" name=(d.name) autocomplete="off" placeholder=(if matches!(purpose, FormFor::Edit { .. }) { "kept unless you type a new value" } else { "" });
                            } @else if d.kind == ParamType::Boolean {
                                select name=(d.name) {
                                    option value="" { "" }
                                    @for choice in ["true", "false"] { option selected[field(values, &d.name) == choice] { (choice) } }
                                }
                            } @else {
                                input type="text" name=(d.name) value=(field(values, &d.name));
                            }
                        }
                    }
                }
            }
            button type="submit" { "Save" }
        }
    };
    page(status, layout(&title, Some(user), body))
}

async fn declared(state: &AppState, user: &PortalUser) -> Result<std::sync::Arc<[Declaration]>, Response> {
    state.db().scoped(user.tenant()).declarations().await.map_err(|_| {
        error_page(StatusCode::SERVICE_UNAVAILABLE, Some(user), "The custom parameters could not be read.")
    })
}

pub(super) async fn new_form(State(state): State<AppState>, user: PortalUser) -> Response {
    if let Some(refused) = refuse_viewer(&user) {
        return refused;
    }
    match declared(&state, &user).await {
        Ok(declarations) => customer_form(&user, StatusCode::OK, &FormFor::New, &[], &declarations, None),
        Err(failed) => failed,
    }
}

/// Creates a customer from the form, as `POST /customers` would.
pub(super) async fn create(State(state): State<AppState>, user: PortalUser, body: Body) -> Response {
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let declarations = match declared(&state, &user).await {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    let new = match CustomerInput::parse_create(&customer_document(&fields, &declarations), &declarations) {
        Ok(new) => new,
        Err(p) => {
            return customer_form(&user, StatusCode::BAD_REQUEST, &FormFor::New, &fields, &declarations, Some(&p));
        }
    };
    let (id, vault) = (Uuid::now_v7(), state.vault());
    change(state, user, format!("/portal/customers/{id}"), fields, move |mut tx, _| async move {
        write_new(&mut tx, &vault, id, &new).await?;
        tx.commit().await
    })
    .await
}

pub(super) async fn edit_form(State(state): State<AppState>, user: PortalUser, params: RawPathParams) -> Response {
    if let Some(refused) = refuse_viewer(&user) {
        return refused;
    }
    let Ok(id) = path_uuid(&params, "customerId") else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such customer.");
    };
    let declarations = match declared(&state, &user).await {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    let c = match read_customer(&state, &user, id).await {
        Ok(parts) => CustomerDetail::from(parts).customer,
        Err(failed) => return failed,
    };
    let values = form_values(&c, &declarations);
    customer_form(&user, StatusCode::OK, &FormFor::Edit { id, version: c.version }, &values, &declarations, None)
}

/// Replaces the customer's fields with the form's, as `PUT /customers/{id}` with
/// `If-Match` would: a form opened before someone else's change is refused.
pub(super) async fn update(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let Ok(id) = path_uuid(&params, "customerId") else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such customer.");
    };
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let Ok(version) = field(&fields, "version").parse::<i64>() else {
        return error_page(StatusCode::BAD_REQUEST, Some(&user), "The form has no version; reload the page.");
    };
    let declarations = match declared(&state, &user).await {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    let purpose = FormFor::Edit { id, version };
    let input = match CustomerInput::parse_update(&customer_document(&fields, &declarations), &declarations) {
        Ok(input) => input,
        Err(p) => return customer_form(&user, StatusCode::BAD_REQUEST, &purpose, &fields, &declarations, Some(&p)),
    };
    let (vault, active) = (state.vault(), active_names(&declarations));
    change(state, user, format!("/portal/customers/{id}"), fields, move |mut tx, _| async move {
        write_update(&mut tx, &vault, id, &input, &active, Some(version)).await?;
        tx.commit().await
    })
    .await
}

/// Where an account's verification stands: locked, failing, or clear.
fn verification_state(a: &AccountRecord, now: i64) -> String {
    match a.verify_locked_until.filter(|until| *until > now) {
        Some(until) => format!("locked until {}", crate::routes::timestamp(until)),
        None if a.verify_failures > 0 => format!("{} failed", a.verify_failures),
        None => "clear".to_owned(),
    }
}

/// Opens a credit account from the form, as `POST
/// /customers/{id}/credit-accounts` would (answers hashed, the virtual card's
/// number never shown here: only its last 4 digits).
pub(super) async fn open_account(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let Ok(customer) = path_uuid(&params, "customerId") else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such customer.");
    };
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let mut json = Map::new();
    for name in ["accountType", "riskRating", "preferredLanguage"] {
        let v = field(&fields, name).trim();
        if !v.is_empty() {
            json.insert(name.into(), v.into());
        }
    }
    for name in ["creditLimit", "accountInterestRate"] {
        json.insert(name.into(), form_number(field(&fields, name)));
    }
    for name in ["tosAgreement", "paymentProtection"] {
        json.insert(name.into(), (field(&fields, name) == "true").into());
    }
    let (question, answer) = (field(&fields, "question").trim(), field(&fields, "answer"));
    if !question.is_empty() || !answer.is_empty() {
        json.insert("securityQuestions".into(), serde_json::json!([{"id": 1, "text": question, "answer": answer}]));
    }
    let input = match AccountInput::parse(&Value::Object(json)) {
        Ok(i) => i,
        Err(problems) => return problems_page(&user, &problems),
    };
    match crate::routes::credit::open(&state, user.actor(), customer, input).await {
        Ok(_) => redirect_to(format!("/portal/customers/{customer}")),
        Err(e) => api_error_page(&user, &e),
    }
}

pub(super) async fn close_account(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let (Ok(customer), number) = (path_uuid(&params, "customerId"), path_param(&params, "accountNumber").to_owned())
    else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such credit account.");
    };
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    change(state, user, format!("/portal/customers/{customer}"), fields, move |mut tx, action| async move {
        if action != "close" {
            return Err(unknown_action());
        }
        tx.close_account(&number).await?;
        tx.commit().await
    })
    .await
}
