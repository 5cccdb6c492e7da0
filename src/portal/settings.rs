//! The merchant's settings: custom parameters, financing plans, API keys and
//! webhook endpoints.

use axum::body::Body;
use axum::extract::{RawPathParams, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::{Value, json};

use super::{
    PortalUser, admin_form, api_error_page, change, error_page, field, form_number, layout, page, problems_page,
    unknown_action,
};
use crate::AppState;
use crate::auth::{Scope, issue_key};
use crate::domain::credit::PlanInput;
use crate::domain::webhook::{EndpointInput, EndpointStatus, SigningSecret};
use crate::http::extract::{path_param, path_uuid};
use crate::routes::timestamp;
use crate::routes::webhooks::{DeliveryView, EndpointView, check_url};
use crate::store::StoreError;

/// The merchant's custom parameters; an admin declares and retires them.
pub(super) async fn parameters(State(state): State<AppState>, user: PortalUser) -> Response {
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
                @for d in declared.iter() {
                    tr {
                        td { (d.name) } td { (d.kind.as_str()) }
                        td { @if d.required { "yes" } } td { @if d.secret { "yes" } }
                        td { (d.description.as_deref().unwrap_or("")) }
                        td { @if d.retired { "retired" } @else { "declared" } }
                        @if admin { td { @if !d.retired {
                            (user.button(&format!("/portal/custom-parameters/{}", d.name), "retire", "Retire"))
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
pub(super) async fn declare_parameter(State(state): State<AppState>, user: PortalUser, body: Body) -> Response {
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
    let (db, tenant) = (state.db().clone(), user.tenant());
    let done = change(state, user, "/portal/custom-parameters".into(), fields, move |mut tx, _| async move {
        tx.declare(&name, &input).await?;
        tx.commit().await
    })
    .await;
    db.declarations_changed(tenant);
    done
}

pub(super) async fn retire_parameter(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let name = path_param(&params, "name").to_owned();
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let (db, tenant) = (state.db().clone(), user.tenant());
    let done = change(state, user, "/portal/custom-parameters".into(), fields, move |mut tx, action| async move {
        if action != "retire" {
            return Err(unknown_action());
        }
        tx.retire(&name).await?;
        tx.commit().await
    })
    .await;
    db.declarations_changed(tenant);
    done
}

/// The page that shows a new secret, once: never stored, never cached.
fn shown_once(user: &PortalUser, title: &str, what: &str, secret: &str, back: &str) -> Response {
    let body = html! {
        p { (what) " It is shown this once: copy it now." }
        p { code.secret { (secret) } }
        p { a href=(back) { "Done" } }
    };
    page(StatusCode::OK, layout(title, Some(user), body))
}

/// The financing plans; an admin creates, replaces and deletes them.
pub(super) async fn plans(State(state): State<AppState>, user: PortalUser) -> Response {
    let plans = match state.db().scoped(user.tenant()).plans().await {
        Ok(p) => p,
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The plans could not be read."),
    };
    let admin = user.is_admin();
    let body = html! {
        table {
            thead { tr { th { "Plan" } th { "Name" } th { "Category" } th { "APR" } th { "Terms (months: admin fee)" } @if admin { th {} } } }
            tbody {
                @for plan in &plans {
                    tr {
                        td { (plan.plan_id) } td { (plan.name) } td { (plan.offer_category) } td { (plan.apr) }
                        td { (terms_text(plan)) }
                        @if admin { td {
                            (user.button(&format!("/portal/financing-plans/{}", plan.plan_id), "delete", "Delete"))
                        } }
                    }
                }
            }
        }
        @if admin {
            form.link method="post" action="/portal/financing-plans" {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "Plan number (1–999; an existing one is replaced)" input type="number" name="planId" min="1" max="999" required; }
                label { "Name" input type="text" name="planName" required maxlength="100"; }
                label { "Category" input type="text" name="offerCategory" required maxlength="50" value="equal_billing"; }
                label { "APR (0.0999 for 9.99 %)" input type="text" name="apr" required inputmode="decimal" maxlength="10"; }
                label { "Terms: months, with an admin fee after a colon (12:29.99, 24)" input type="text" name="terms" required maxlength="500"; }
                button type="submit" { "Save the plan" }
            }
        }
    };
    page(StatusCode::OK, layout("Financing plans", Some(&user), body))
}

fn terms_text(plan: &crate::store::credit::PlanRecord) -> String {
    let money = |cents: i64| crate::domain::money::Money(cents).to_decimal();
    let terms = plan.terms().into_iter();
    terms
        .map(|t| if t.admin_fee == 0 { t.months.to_string() } else { format!("{}: {}", t.months, money(t.admin_fee)) })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates or replaces a plan from the form, as `PUT /financing-plans/{id}` would.
pub(super) async fn put_plan(State(state): State<AppState>, user: PortalUser, body: Body) -> Response {
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let Some(id) = field(&fields, "planId").trim().parse::<i64>().ok().filter(|n| (1..=999).contains(n)) else {
        return error_page(StatusCode::BAD_REQUEST, Some(&user), "The plan number must be from 1 to 999.");
    };
    let terms: Vec<Value> = field(&fields, "terms")
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| match t.split_once(':') {
            Some((months, fee)) => json!({"term": form_number(months), "adminFee": form_number(fee)}),
            None => json!({"term": form_number(t)}),
        })
        .collect();
    let json = json!({
        "planName": field(&fields, "planName").trim(),
        "offerCategory": field(&fields, "offerCategory").trim(),
        "apr": form_number(field(&fields, "apr")),
        "terms": terms,
    });
    let plan = match PlanInput::parse(&json) {
        Ok(p) => p,
        Err(problems) => return problems_page(&user, &problems),
    };
    change(state, user, "/portal/financing-plans".into(), fields, move |mut tx, _| async move {
        tx.put_plan(id, &plan).await?;
        tx.commit().await
    })
    .await
}

pub(super) async fn delete_plan(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let Ok(id) = path_param(&params, "planId").parse::<i64>() else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such plan.");
    };
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    change(state, user, "/portal/financing-plans".into(), fields, move |mut tx, action| async move {
        if action != "delete" {
            return Err(unknown_action());
        }
        tx.delete_plan(id).await?;
        tx.commit().await
    })
    .await
}

/// Keys a page lists at most.
const KEYS_SHOWN: i64 = 200;

/// The merchant's API keys (never the keys themselves); an admin creates one,
/// shown once, and revokes them.
pub(super) async fn api_keys(State(state): State<AppState>, user: PortalUser) -> Response {
    let keys = match state.db().scoped(user.tenant()).api_keys(KEYS_SHOWN).await {
        Ok(k) => k,
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The keys could not be read."),
    };
    let admin = user.is_admin();
    let body = html! {
        table {
            thead { tr { th { "Key id" } th { "Scopes" } th { "Created" } th { "Revoked" } th { "Last used" } @if admin { th {} } } }
            tbody {
                @for k in &keys {
                    tr {
                        td { (k.id) } td { (k.scopes) } td { (timestamp(k.created_at)) }
                        td { @if let Some(at) = k.revoked_at { (timestamp(at)) } }
                        td { @if let Some(at) = k.last_used_at { (timestamp(at)) } }
                        @if admin { td { @if k.revoked_at.is_none() {
                            (user.button(&format!("/portal/api-keys/{}", k.id), "revoke", "Revoke"))
                        } } }
                    }
                }
            }
        }
        @if admin {
            form.link method="post" action="/portal/api-keys" {
                input type="hidden" name="csrf" value=(user.csrf);
                fieldset {
                    legend { "Scopes" }
                    @for scope in Scope::ALL {
                        label.check { input type="checkbox" name="scope" value=(scope.as_str()) checked[Scope::DEFAULT.contains(&scope)]; " " (scope.as_str()) }
                    }
                }
                button type="submit" { "Create a key" }
            }
        }
    };
    page(StatusCode::OK, layout("API keys", Some(&user), body))
}

pub(super) async fn create_api_key(State(state): State<AppState>, user: PortalUser, body: Body) -> Response {
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let mut scopes = Vec::new();
    for (_, name) in fields.iter().filter(|(k, _)| k == "scope") {
        match Scope::parse(name) {
            Some(s) if !scopes.contains(&s) => scopes.push(s),
            Some(_) => {}
            None => return error_page(StatusCode::BAD_REQUEST, Some(&user), "That is not a scope."),
        }
    }
    if scopes.is_empty() {
        return error_page(StatusCode::BAD_REQUEST, Some(&user), "A key needs at least one scope.");
    }
    let Ok(key) = issue_key(state.db(), user.actor(), &scopes).await else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The key could not be made; try again.");
    };
    let what = format!("The key {} was made.", key.id);
    shown_once(&user, "A new API key", &what, &key.secret, "/portal/api-keys")
}

pub(super) async fn revoke_api_key(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let Ok(id) = path_uuid(&params, "keyId") else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such key.");
    };
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    change(state, user, "/portal/api-keys".into(), fields, move |mut tx, action| async move {
        if action != "revoke" {
            return Err(unknown_action());
        }
        if !tx.revoke_api_key(id).await? {
            return Err(StoreError::NotFound("A live key of this id"));
        }
        tx.commit().await
    })
    .await
}

/// The webhook endpoints and their latest deliveries; an admin registers one
/// (its secret shown once), disables, enables, tests, rotates and deletes them.
pub(super) async fn webhooks(State(state): State<AppState>, user: PortalUser) -> Response {
    let db = state.db().scoped(user.tenant());
    let endpoints = match db.webhook_endpoints().await {
        Ok(e) => e,
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The endpoints could not be read."),
    };
    let mut deliveries = Vec::with_capacity(endpoints.len());
    for e in &endpoints {
        match db.webhook_deliveries(e.id, None, 10).await {
            Ok(d) => deliveries.push(d),
            Err(_) => {
                return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The deliveries could not be read.");
            }
        }
    }
    let admin = user.is_admin();
    let button = |id: uuid::Uuid, action: &str, label: &str| {
        user.button(&format!("/portal/webhook-endpoints/{id}"), action, label)
    };
    let body = html! {
        @for (e, recent) in endpoints.iter().zip(&deliveries) {
            @let view = EndpointView::from(e.clone());
            section.endpoint {
                h2 { (view.url) }
                dl {
                    dt { "Id" } dd { (view.id) }
                    dt { "Status" } dd { (view.status.as_str()) @if let Some(since) = &view.failing_since { " (failing since " (since) ")" } }
                    dt { "Events" } dd { (view.enabled_events.join(", ")) }
                    dt { "Description" } dd { (view.description.as_deref().unwrap_or("")) }
                    dt { "Created" } dd { (view.created_on) }
                }
                @if admin {
                    p.actions {
                        @if view.status == EndpointStatus::Enabled { (button(view.id, "disable", "Disable")) }
                        @else { (button(view.id, "enable", "Enable")) }
                        (button(view.id, "test", "Send a test event"))
                        (button(view.id, "rotate", "Rotate the secret"))
                        (button(view.id, "delete", "Delete"))
                    }
                }
                table {
                    thead { tr { th { "Event" } th { "Type" } th { "Status" } th { "Attempts" } th { "Last reply" } th { "Next attempt" } } }
                    tbody {
                        @for d in recent.iter().cloned().map(DeliveryView::from) {
                            tr {
                                td { (d.event_id) } td { (d.event_type) } td { (d.status.as_str()) } td { (d.attempts) }
                                td { (d.last_status_code.map(|c| c.to_string()).or(d.last_error.clone()).unwrap_or_default()) }
                                td { (d.next_attempt_on.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
        @if admin {
            form.link method="post" action="/portal/webhook-endpoints" {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "URL" input type="url" name="url" required maxlength="2048" placeholder="https://example.com/webhooks"; }
                label { "Events (* for every type, or types separated by commas)" input type="text" name="enabledEvents" required value="*" maxlength="2000"; }
                label { "Description" input type="text" name="description" maxlength="500"; }
                button type="submit" { "Register an endpoint" }
            }
        }
    };
    page(StatusCode::OK, layout("Webhook endpoints", Some(&user), body))
}

fn event_list(text: &str) -> Value {
    text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(Value::from).collect()
}

pub(super) async fn create_webhook(State(state): State<AppState>, user: PortalUser, body: Body) -> Response {
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let mut json =
        json!({"url": field(&fields, "url").trim(), "enabledEvents": event_list(field(&fields, "enabledEvents"))});
    let description = field(&fields, "description").trim();
    if !description.is_empty() {
        json["description"] = description.into();
    }
    let input = match EndpointInput::parse_create(&json) {
        Ok(i) => i,
        Err(problems) => return problems_page(&user, &problems),
    };
    let (Some(url), Some(events)) = (input.url, input.enabled_events) else {
        return error_page(StatusCode::BAD_REQUEST, Some(&user), "An endpoint needs a URL and its events.");
    };
    if let Err(e) = check_url(&state, &url).await {
        return api_error_page(&user, &e);
    }
    let description = input.description.flatten();
    let (id, vault, secret) = (uuid::Uuid::now_v7(), state.vault(), SigningSecret::generate());
    let shown = secret.expose().to_owned();
    let made = state
        .db()
        .write(user.actor(), move |mut tx| async move {
            tx.create_webhook_endpoint(&vault, id, &url, &events, description.as_deref(), &secret).await?;
            tx.commit().await
        })
        .await;
    match made {
        Ok(()) => {
            let what = "The endpoint is registered; its deliveries are signed with this secret.";
            shown_once(&user, "A new webhook endpoint", what, &shown, "/portal/webhook-endpoints")
        }
        Err(StoreError::Conflict { message, .. }) => error_page(StatusCode::CONFLICT, Some(&user), message),
        Err(_) => error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The endpoint could not be registered."),
    }
}

/// An endpoint's buttons: disable, enable, test, rotate (the new secret shown
/// once), delete.
pub(super) async fn change_webhook(
    State(state): State<AppState>,
    user: PortalUser,
    params: RawPathParams,
    body: Body,
) -> Response {
    let Ok(id) = path_uuid(&params, "endpointId") else {
        return error_page(StatusCode::NOT_FOUND, Some(&user), "No such endpoint.");
    };
    let fields = match admin_form(&user, body).await {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let back = "/portal/webhook-endpoints".to_owned();
    match field(&fields, "action") {
        "rotate" => {
            let (vault, secret) = (state.vault(), SigningSecret::generate());
            let shown = secret.expose().to_owned();
            let rotated = state
                .db()
                .write(user.actor(), move |mut tx| async move {
                    tx.rotate_webhook_secret(&vault, id, &secret).await?;
                    tx.commit().await
                })
                .await;
            match rotated {
                Ok(()) => {
                    let what = "The new secret signs from now on; the old one signs beside it for 24 hours.";
                    shown_once(&user, "A new signing secret", what, &shown, &back)
                }
                Err(StoreError::NotFound(_)) => error_page(StatusCode::NOT_FOUND, Some(&user), "No such endpoint."),
                Err(_) => error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The secret could not be rotated."),
            }
        }
        "test" => {
            let retry = state.webhooks().retry;
            change(state, user, back, fields, move |mut tx, _| async move {
                tx.test_webhook_endpoint(id, &retry).await?;
                tx.commit().await
            })
            .await
        }
        "delete" => {
            change(state, user, back, fields, move |mut tx, _| async move {
                tx.delete_webhook_endpoint(id).await?;
                tx.commit().await
            })
            .await
        }
        status @ ("enable" | "disable") => {
            let status = if status == "enable" { "enabled" } else { "disabled" };
            let input = match EndpointInput::parse_update(&json!({ "status": status })) {
                Ok(i) => i,
                Err(problems) => return problems_page(&user, &problems),
            };
            change(state, user, back, fields, move |mut tx, _| async move {
                tx.update_webhook_endpoint(id, &input).await?;
                tx.commit().await
            })
            .await
        }
        _ => error_page(StatusCode::BAD_REQUEST, Some(&user), "That is not something this form does."),
    }
}
