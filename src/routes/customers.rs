//! `/pay-api/v1/customers`: create, search, get, update, delete, status (SPEC section 2).

use std::collections::BTreeMap;

use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::header::ETAG;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::payment_methods::{AchRequest, AchView, CardRequest, CardView, split};
use super::{Created, Deleted, JsonReply, ReadErrors, WriteErrors, commit_created, timestamp};
use crate::AppState;
use crate::auth::{Authed, CustomersRead, CustomersWrite, Scope};
use crate::domain::contact::normalize_email;
use crate::domain::custom::active_names;
use crate::domain::custom::{Declaration, ParamType, typed_value};
use crate::domain::customer::{CustomerInput, CustomerStatus, NewCustomer, parse_date};
use crate::domain::money::Money;
use crate::domain::text::fold;
use crate::domain::{Obj, Problems, address::postal_key};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{IfMatch, JsonBody, QueryReader, etag, path_uuid};
use crate::store::customers::{CustomerParts, CustomerRecord, CustomerSearch, OrderBy, SearchPage, SearchWord};
use crate::store::{StoreError, Tenant};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_customer, search_customers))
        .routes(routes!(get_customer, update_customer, patch_customer, delete_customer))
        .routes(routes!(set_customer_status))
}

// ---- request schemas (documentation; parsing is in `domain::customer`) ----

/// A postal address.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"line1": "55 University Ave", "line2": "Suite 400", "city": "Toronto", "state": "ON", "postalCode": "M5J 2H7", "country": "CA"}))]
pub struct AddressRequest {
    /// Up to 200 characters.
    #[schema(max_length = 200, example = "55 University Ave")]
    line1: Option<String>,
    /// Up to 200 characters.
    #[schema(max_length = 200, example = "Suite 400")]
    line2: Option<String>,
    /// Up to 100 characters.
    #[schema(max_length = 100, example = "Toronto")]
    city: Option<String>,
    /// State or province code (ISO 3166-2 without the country), 1 to 3 letters or digits.
    #[schema(pattern = r"^\s*[A-Za-z0-9]{1,3}\s*$", example = "ON")]
    state: Option<String>,
    /// US: `12345` or `12345-6789`; CA: `A1A 1A1` (normalized); elsewhere up to 12 letters, digits, spaces, dashes.
    #[schema(pattern = r"^\s*[A-Za-z0-9 -]{1,12}\s*$", example = "M5J 2H7")]
    postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 (either case).
    #[schema(example = "CA")]
    country: Option<String>,
}

/// The fields a create and an update share.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"firstName": "Jane", "lastName": "Doe", "companyName": "Acme Hardware", "email": "jane.doe@example.com", "mobilePhoneNumber": "+14165550199", "isMobileNumberSmsNotificationsEnabled": true, "useBillingAsShippingAddress": true, "billingAddress": {"line1": "55 University Ave", "city": "Toronto", "state": "ON", "postalCode": "M5J 2H7", "country": "CA"}, "dateOfBirth": "1974-05-15", "preferredLanguage": "en-CA"}))]
pub struct CustomerUpdateRequest {
    /// Non-empty, up to 100 characters.
    #[schema(min_length = 1, max_length = 100, example = "Jane")]
    first_name: String,
    /// Non-empty, up to 100 characters.
    #[schema(min_length = 1, max_length = 100, example = "Doe")]
    last_name: String,
    /// Up to 200 characters.
    #[schema(max_length = 200, example = "Acme Hardware")]
    company_name: Option<String>,
    #[schema(format = Email, max_length = 254, example = "jane.doe@example.com")]
    email: Option<String>,
    /// Normalized to E.164. A national number is read in the country of the billing
    /// (else shipping) address; without one, give it in international form.
    #[schema(max_length = 40, example = "+14165550199")]
    mobile_phone_number: Option<String>,
    /// Requires `mobilePhoneNumber`. Default false.
    is_mobile_number_sms_notifications_enabled: Option<bool>,
    /// When true the shipping address reads as the billing address. Default false.
    use_billing_as_shipping_address: Option<bool>,
    billing_address: Option<AddressRequest>,
    shipping_address: Option<AddressRequest>,
    /// `YYYY-MM-DD`, from 1900-01-01 to today.
    #[schema(format = Date, example = "1974-05-15")]
    date_of_birth: Option<String>,
    /// A registered BCP 47 language tag.
    #[schema(max_length = 35, pattern = r"^\s*[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*\s*$", example = "en-CA")]
    preferred_language: Option<String>,
    /// The merchant's own reference, up to 128 characters, unique per merchant.
    #[schema(max_length = 128, example = "crm-000123")]
    external_reference: Option<String>,
    /// Sent back from a read: on an update it must be this customer's; on an
    /// import line, the customer it names is updated, or created under this id
    /// when it is a UUIDv7 the merchant does not hold yet.
    id: Option<Uuid>,
    /// Applied as `PUT .../status` would.
    #[schema(value_type = Option<CustomerStatus>)]
    status: Option<String>,
}

/// A new customer. Unknown fields are rejected.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"firstName": "Jane", "lastName": "Doe", "companyName": "Acme Hardware", "email": "jane.doe@example.com", "mobilePhoneNumber": "+14165550199", "isMobileNumberSmsNotificationsEnabled": true, "useBillingAsShippingAddress": true, "billingAddress": {"line1": "55 University Ave", "city": "Toronto", "state": "ON", "postalCode": "M5J 2H7", "country": "CA"}, "dateOfBirth": "1974-05-15", "preferredLanguage": "en-CA", "paymentMethodsCards": [{"name": "Jane's Visa", "pan": "4111 1111 1111 1111", "expirationMonth": 12, "expirationYear": 2035, "securityCode": "123"}]}))]
pub struct CustomerCreateRequest {
    #[serde(flatten)]
    fields: CustomerUpdateRequest,
    /// Cards to add with the customer, in the same transaction (all or nothing;
    /// problems are named by item, `paymentMethodsCards[1].pan`). Needs `payment_methods:write`.
    #[schema(max_items = 10)]
    payment_methods_cards: Option<Vec<CardRequest>>,
    /// Bank accounts to add with the customer, in the same transaction. Needs `payment_methods:write`.
    #[schema(max_items = 10)]
    payment_methods_ach_accounts: Option<Vec<AchRequest>>,
    /// With `providerConfigId` and `provider`, links a payment provider in
    /// the same transaction (as `POST .../providers`). A secret, shown masked.
    #[schema(write_only, max_length = 1000)]
    api_key: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    provider_config_id: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    provider: Option<String>,
    payment_provider: Option<super::providers::PaymentProviderRequest>,
}

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"status": "inactive"}))]
pub struct StatusRequest {
    #[schema(value_type = CustomerStatus, example = "inactive")]
    status: String,
}

// ---- views ----

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressView {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

/// A customer, as every search item shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    pub id: Uuid,
    pub merchant_id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub company_name: Option<String>,
    pub email: Option<String>,
    /// E.164.
    pub mobile_phone_number: Option<String>,
    pub is_mobile_number_sms_notifications_enabled: bool,
    pub use_billing_as_shipping_address: bool,
    pub billing_address: Option<AddressView>,
    /// The billing address when `useBillingAsShippingAddress` is true.
    pub shipping_address: Option<AddressView>,
    #[schema(format = Date)]
    pub date_of_birth: Option<String>,
    pub preferred_language: Option<String>,
    pub external_reference: Option<String>,
    #[schema(value_type = CustomerStatus)]
    pub status: String,
    pub default_payment_method_id: Option<Uuid>,
    pub default_ach_payment_method_id: Option<Uuid>,
    #[schema(format = DateTime)]
    pub created_on: String,
    #[schema(format = DateTime)]
    pub modified_on: String,
    /// Increases with every change; the `ETag` and `If-Match` value.
    pub version: i64,
    #[schema(format = DateTime)]
    pub last_transaction_date: Option<String>,
    pub transactions_count: i64,
    pub transactions_volume: Money,
    pub last_transaction_amount: Option<Money>,
    pub number_of_subscriptions: i64,
    /// The merchant's custom parameters, at the top level; secret ones obfuscated.
    #[serde(flatten)]
    #[schema(ignore)]
    pub custom: std::collections::BTreeMap<String, serde_json::Value>,
}

/// One customer with its payment methods.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerDetail {
    #[serde(flatten)]
    pub customer: CustomerView,
    /// The customer's cards (masked).
    pub cards: Vec<CardView>,
    /// The customer's bank accounts (masked).
    pub ach_accounts: Vec<AchView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerPage {
    pub items: Vec<CustomerView>,
    /// All matches, not just this page.
    pub total: i64,
}

fn address(parts: [Option<String>; 6]) -> Option<AddressView> {
    if parts.iter().all(Option::is_none) {
        return None;
    }
    let [line1, line2, city, state, postal_code, country] = parts;
    Some(AddressView { line1, line2, city, state, postal_code, country })
}

impl From<CustomerRecord> for CustomerView {
    fn from(r: CustomerRecord) -> Self {
        let billing = [
            r.billing_line1,
            r.billing_line2,
            r.billing_city,
            r.billing_state,
            r.billing_postal_code,
            r.billing_country,
        ];
        let shipping_parts = if r.use_billing_as_shipping {
            billing.clone()
        } else {
            [
                r.shipping_line1,
                r.shipping_line2,
                r.shipping_city,
                r.shipping_state,
                r.shipping_postal_code,
                r.shipping_country,
            ]
        };
        CustomerView {
            id: r.id,
            merchant_id: r.merchant_id,
            first_name: r.first_name,
            last_name: r.last_name,
            company_name: r.company_name,
            email: r.email,
            mobile_phone_number: r.mobile_phone,
            is_mobile_number_sms_notifications_enabled: r.sms_enabled,
            use_billing_as_shipping_address: r.use_billing_as_shipping,
            billing_address: address(billing),
            shipping_address: address(shipping_parts),
            date_of_birth: r.date_of_birth,
            preferred_language: r.preferred_language,
            external_reference: r.external_reference,
            status: r.status,
            default_payment_method_id: r.default_payment_method_id,
            default_ach_payment_method_id: r.default_ach_payment_method_id,
            created_on: timestamp(r.created_at),
            modified_on: timestamp(r.modified_at),
            version: r.version,
            last_transaction_date: r.last_transaction_at.map(timestamp),
            transactions_count: r.transactions_count,
            transactions_volume: Money(r.transactions_volume),
            last_transaction_amount: r.last_transaction_amount.map(Money),
            number_of_subscriptions: r.subscriptions_count,
            custom: Default::default(),
        }
    }
}

/// The resource with its `ETag`.
pub(crate) fn with_etag(version: i64, reply: JsonReply) -> Response {
    let mut res = reply.into_response();
    res.headers_mut().insert(ETAG, HeaderValue::from_str(&etag(version)).expect("digits and quotes"));
    res
}

/// The customer with its payment methods, read after `r` was.
async fn detail(state: &AppState, tenant: Tenant, r: CustomerRecord) -> ApiResult<Response> {
    Ok(detail_view(state.db().scoped(tenant).parts_of(r).await?))
}

fn detail_view(parts: CustomerParts) -> Response {
    let version = parts.record.version;
    with_etag(version, JsonReply::new(StatusCode::OK, &CustomerDetail::from(parts)))
}

impl From<CustomerParts> for CustomerDetail {
    fn from(parts: CustomerParts) -> Self {
        let (cards, ach_accounts) = split(parts.methods);
        let mut customer = CustomerView::from(parts.record);
        customer.custom = parts.custom;
        CustomerDetail { customer, cards, ach_accounts }
    }
}

// ---- handlers ----

/// Create a customer
///
/// Returns the new customer's id. Two customers with identical data are allowed
/// (guest checkouts). The body may carry the customer's `id` (a UUIDv7
/// the merchant does not hold: 409 `customer_exists` otherwise) and a payment
/// provider at the top level (`apiKey`, `providerConfigId`, `provider`,
/// `paymentProvider`), linked in the same transaction. Honours `Idempotency-Key`.
#[utoipa::path(
    post, path = "/customers", tag = "customers",
    request_body = CustomerCreateRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first reply for 24 h (≤ 255 characters).")),
    responses((status = 200, description = "Created", body = Created), WriteErrors),
    security(("bearer" = ["customers:write"]))
)]
async fn create_customer(
    State(state): State<AppState>,
    auth: Authed<CustomersWrite>,
    JsonBody(body): JsonBody,
) -> ApiResult<JsonReply> {
    let declarations = state.db().scoped(auth.tenant()).declarations().await?;
    let new = CustomerInput::parse_create(&body, &declarations)?;
    if new.brings_methods() && !auth.ctx.scopes.contains(&Scope::PaymentMethodsWrite) {
        return Err(ApiError::forbidden(Scope::PaymentMethodsWrite.as_str()));
    }
    // Seed 002's body may name the customer: a UUIDv7 the merchant does not hold yet.
    let id = match new.customer.id {
        Some(id) if id.get_version_num() == 7 => id,
        Some(_) => {
            let msg = "'id' must be a UUIDv7 (or left out for the service to choose one).";
            return Err(ApiError::field(StatusCode::BAD_REQUEST, "validation_failed", "id", msg));
        }
        None => Uuid::now_v7(),
    };
    let vault = state.vault();
    let reply = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            if new.customer.id.is_some() && !tx.existing_customers(&[id]).await?.is_empty() {
                return Err(ApiError::conflict(
                    "customer_exists",
                    "A customer with this id exists.",
                    Some(id.to_string()),
                ));
            }
            write_new(&mut tx, &vault, id, &new).await?;
            Ok(commit_created(tx, id).await?)
        })
        .await?;
    Ok(reply)
}

/// What a create writes once its body is read: the customer, its custom values
/// and payment methods, the provider link of seed 002's top-level fields (all or
/// nothing with the customer), and a `status` sent along.
pub(crate) async fn write_new(
    tx: &mut crate::store::WriteTx,
    vault: &crate::crypto::Vault,
    id: Uuid,
    new: &NewCustomer,
) -> Result<(), StoreError> {
    tx.insert_customer(id, &new.customer).await?;
    tx.write_parts(vault, id, &[], new).await?;
    if let Some(provider) = &new.provider {
        tx.link_provider(vault, id, Uuid::now_v7(), provider).await?;
    }
    if let Some(status) = new.customer.status.filter(|s| *s != CustomerStatus::Active) {
        tx.set_customer_status(id, status, None).await?;
    }
    Ok(())
}

/// Get a customer
///
/// With its cards and bank accounts (masked). The `ETag` header carries the version.
#[utoipa::path(
    get, path = "/customers/{customerId}", tag = "customers",
    params(("customerId" = Uuid, Path)),
    responses((status = 200, description = "The customer", body = CustomerDetail,
        headers(("ETag" = String, description = "The version, for If-Match"))), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn get_customer(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    params: RawPathParams,
) -> ApiResult<Response> {
    let id = path_uuid(&params, "customerId")?;
    let parts =
        state.db().scoped(auth.tenant()).customer_parts(id).await?.ok_or_else(|| ApiError::not_found("Customer"))?;
    Ok(detail_view(parts))
}

/// Update a customer
///
/// Replaces every updatable field (absent optional fields are cleared) and returns
/// the customer. A secret custom parameter is write-only: left out, or sent as the
/// mask responses show, it keeps its value; `null` clears it. A representation
/// read with GET may be sent back whole: its read-only fields are ignored, `id`
/// must be this customer's, and `status` is applied as `PUT .../status` would.
/// With `If-Match`, answers 412 unless it names the current version.
#[utoipa::path(
    put, path = "/customers/{customerId}", tag = "customers",
    params(("customerId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version last read (its ETag)")),
    request_body = CustomerUpdateRequest,
    responses((status = 200, description = "The updated customer", body = CustomerDetail), WriteErrors),
    security(("bearer" = ["customers:write"]))
)]
async fn update_customer(
    State(state): State<AppState>,
    auth: Authed<CustomersWrite>,
    params: RawPathParams,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_uuid(&params, "customerId")?;
    let declarations = state.db().scoped(auth.tenant()).declarations().await?;
    let input = CustomerInput::parse_update(&body, &declarations)?;
    same_customer(&input, id)?;
    let active = active_names(&declarations);
    let vault = state.vault();
    let rec = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let rec = write_update(&mut tx, &vault, id, &input, &active, if_match).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(rec)
        })
        .await?;
    detail(&state, auth.tenant(), rec).await
}

/// What a `PUT` and a `PATCH` write once their body is read: the fields, the
/// custom values, and a `status` sent along.
pub(crate) async fn write_update(
    tx: &mut crate::store::WriteTx,
    vault: &crate::crypto::Vault,
    id: Uuid,
    input: &CustomerInput,
    active: &[String],
    if_match: Option<i64>,
) -> Result<CustomerRecord, StoreError> {
    let mut rec = tx.update_customer(id, input, if_match).await?;
    tx.write_custom_values(vault, id, active, &input.custom).await?;
    if let Some(status) = input.status {
        rec = tx.set_customer_status(id, status, None).await?;
    }
    Ok(rec)
}

/// A body that carries the representation's `id` back must name this customer.
fn same_customer(input: &CustomerInput, id: Uuid) -> ApiResult<()> {
    match input.id {
        Some(sent) if sent != id => Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "id",
            "'id' names another customer than the path.",
        )),
        _ => Ok(()),
    }
}

/// What `PATCH` merges its patch into: the updatable fields as stored (the
/// shipping address as stored even while the billing one stands in for it), and
/// the custom values as responses show them (secrets masked, so a patch that
/// leaves them out leaves them as they are).
fn updatable_document(r: &CustomerRecord, custom: BTreeMap<String, Value>) -> Value {
    let view = CustomerView::from(CustomerRecord { use_billing_as_shipping: false, ..r.clone() });
    let mut doc = serde_json::Map::new();
    if let Ok(Value::Object(all)) = serde_json::to_value(&view) {
        for (k, v) in all {
            if crate::domain::customer::UPDATABLE.contains(&k.as_str()) && !v.is_null() {
                doc.insert(k, v);
            }
        }
    }
    doc.insert("useBillingAsShippingAddress".into(), Value::Bool(r.use_billing_as_shipping));
    doc.extend(custom.into_iter().filter(|(_, v)| !v.is_null()));
    Value::Object(doc)
}

/// Patch a customer
///
/// A JSON Merge Patch (RFC 7396; `application/merge-patch+json` or
/// `application/json`): members sent replace, `null` clears, members left out
/// stay as they are (a secret custom parameter too). The result is validated like
/// a `PUT`, and answers like one; `If-Match` gives 412 unless it names the
/// current version.
#[utoipa::path(
    patch, path = "/customers/{customerId}", tag = "customers",
    params(("customerId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version last read (its ETag)")),
    request_body(content = CustomerUpdateRequest, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The updated customer", body = CustomerDetail), WriteErrors),
    security(("bearer" = ["customers:write"]))
)]
async fn patch_customer(
    State(state): State<AppState>,
    auth: Authed<CustomersWrite>,
    params: RawPathParams,
    IfMatch(if_match): IfMatch,
    JsonBody(patch): JsonBody,
) -> ApiResult<Response> {
    let id = path_uuid(&params, "customerId")?;
    if !patch.is_object() {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "$",
            "A merge patch is a JSON object of the fields to change.",
        ));
    }
    let declarations = state.db().scoped(auth.tenant()).declarations().await?;
    let vault = state.vault();
    let rec = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            // The patch applies to the customer as it is now: locked, then read.
            tx.lock_customer(id).await?;
            let current = tx.get_customer(id).await?;
            let mut doc = updatable_document(&current, tx.shown_custom_values(id).await?);
            json_patch::merge(&mut doc, &patch);
            // A top-level `null` clears: kept as `null`, since a secret left out stays as it is.
            if let (Value::Object(doc), Value::Object(patch)) = (&mut doc, &patch) {
                doc.extend(patch.iter().filter(|(_, v)| v.is_null()).map(|(k, _)| (k.clone(), Value::Null)));
            }
            let input = CustomerInput::parse_update(&doc, &declarations)?;
            same_customer(&input, id)?;
            let rec = write_update(&mut tx, &vault, id, &input, &active_names(&declarations), if_match).await?;
            tx.commit().await?;
            Ok::<_, ApiError>(rec)
        })
        .await?;
    detail(&state, auth.tenant(), rec).await
}

/// Delete a customer
///
/// Removes the customer from every read at once and destroys its stored card and
/// bank numbers in the same transaction; an audit event with ids remains.
#[utoipa::path(
    delete, path = "/customers/{customerId}", tag = "customers",
    params(("customerId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version last read (its ETag)")),
    responses((status = 200, description = "Deleted", body = Deleted), WriteErrors),
    security(("bearer" = ["customers:write"]))
)]
async fn delete_customer(
    State(state): State<AppState>,
    auth: Authed<CustomersWrite>,
    params: RawPathParams,
    IfMatch(if_match): IfMatch,
) -> ApiResult<JsonReply> {
    let id = path_uuid(&params, "customerId")?;
    state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.delete_customer(id, if_match).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(JsonReply::new(StatusCode::OK, &Deleted { id, deleted: true }))
}

/// Activate or deactivate a customer
#[utoipa::path(
    put, path = "/customers/{customerId}/status", tag = "customers",
    params(("customerId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version last read (its ETag)")),
    request_body = StatusRequest,
    responses((status = 200, description = "The customer", body = CustomerDetail), WriteErrors),
    security(("bearer" = ["customers:write"]))
)]
async fn set_customer_status(
    State(state): State<AppState>,
    auth: Authed<CustomersWrite>,
    params: RawPathParams,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_uuid(&params, "customerId")?;
    let status = parse_status_body(&body)?;
    let rec = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let rec = tx.set_customer_status(id, status, if_match).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(rec)
        })
        .await?;
    detail(&state, auth.tenant(), rec).await
}

/// `{"status": "active" | "inactive"}`.
pub(crate) fn parse_status_body(body: &serde_json::Value) -> Result<CustomerStatus, Problems> {
    let mut p = Problems::new();
    let status = Obj::root(body, &mut p).and_then(|mut o| {
        let s = o.required_string("status", &mut p).and_then(|s| CustomerStatus::read(s, &mut p));
        o.finish(&mut p);
        s
    });
    match status {
        Some(s) => p.check(s),
        None => Err(p),
    }
}

/// The query parameters of customer search.
#[allow(dead_code)]
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CustomerSearchParams {
    /// 1-based page number (default 1).
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// Items per page (default 20).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// Default `createdOn`.
    #[param(value_type = Option<crate::store::customers::OrderBy>, inline)]
    order_by: Option<String>,
    /// Ascending order (default false).
    asc: Option<bool>,
    /// Every word must match: a prefix of a first, last or company name word, or
    /// (from 3 characters) any part of the email or phone. Case- and accent-insensitive.
    search: Option<String>,
    /// Only these customers (repeat the parameter or separate with commas).
    #[param(max_items = 100)]
    customer_ids: Option<Vec<Uuid>>,
    /// Created at or after (RFC 3339, or a date `YYYY-MM-DD` meaning its start, UTC).
    date_from: Option<String>,
    /// Created at or before (RFC 3339, or a date `YYYY-MM-DD` meaning its end, UTC).
    date_to: Option<String>,
    /// Exact email, case-insensitive.
    email: Option<String>,
    /// Exact first name, case-insensitive.
    first_name: Option<String>,
    /// Exact last name, case-insensitive.
    last_name: Option<String>,
    /// Exact date of birth.
    #[param(format = Date)]
    date_of_birth: Option<String>,
    /// Exact billing postal code, ignoring case, spaces and dashes.
    postal_code: Option<String>,
    /// Exact `externalReference`.
    external_reference: Option<String>,
    #[param(value_type = Option<CustomerStatus>, inline)]
    status: Option<String>,
}

/// Every query parameter search accepts (checked against the OpenAPI document by a test).
pub const SEARCH_PARAMS: [&str; 15] = [
    "page",
    "pageSize",
    "orderBy",
    "asc",
    "search",
    "customerIds",
    "dateFrom",
    "dateTo",
    "email",
    "firstName",
    "lastName",
    "dateOfBirth",
    "postalCode",
    "externalReference",
    "status",
];

pub(crate) fn parse_instant(raw: &str, end_of_day: bool) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc).timestamp_millis());
    }
    let d = parse_date(raw)?;
    let t = if end_of_day { NaiveTime::from_hms_milli_opt(23, 59, 59, 999)? } else { NaiveTime::MIN };
    Some(d.and_time(t).and_utc().timestamp_millis())
}

/// The part of an email or phone a search word stands for: a phone fragment as
/// typed (`555-0199`, `(416)`) is reduced to its digits, anything else is lowercased.
/// Whether `s` holds `n` ASCII letters or digits in a row.
fn has_run_of(s: &str, n: usize) -> bool {
    s.split(|c: char| !c.is_ascii_alphanumeric()).any(|run| run.len() >= n)
}

fn contact_fragment(word: &str) -> String {
    let phone_like =
        word.bytes().any(|b| b.is_ascii_digit()) && word.bytes().all(|b| b.is_ascii_digit() || b"+-.()/".contains(&b));
    if phone_like { word.chars().filter(char::is_ascii_digit).collect() } else { word.to_lowercase() }
}

pub fn parse_search(raw: Option<&str>, declarations: &[Declaration]) -> Result<CustomerSearch, Problems> {
    let mut p = Problems::new();
    let mut q = QueryReader::new(raw, &mut p);
    let mut custom = Vec::new();
    for (key, value) in q.take_prefixed("custom.") {
        let name = &key["custom.".len()..];
        match declarations.iter().find(|d| d.name == name) {
            None => p.push(key.clone(), format!("'{name}' is not a declared custom parameter.")),
            Some(d) if d.secret => p.push(key.clone(), format!("'{name}' is secret and cannot be searched.")),
            Some(d) => {
                let json = match d.kind {
                    ParamType::String | ParamType::Date => serde_json::Value::String(value.clone()),
                    _ => serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value.clone())),
                };
                match typed_value(d.kind, &json) {
                    Ok((_, canonical)) => custom.push((d.name.clone(), canonical)),
                    Err(why) => p.push(key.clone(), format!("'{key}' {why}.")),
                }
            }
        }
    }
    let page = q.int("page", 1, 1_000_000, &mut p).unwrap_or(1) as u32;
    let page_size = q.int("pageSize", 1, 100, &mut p).unwrap_or(20) as u32;
    let order_by = match q.one("orderBy", &mut p) {
        None => OrderBy::CreatedOn,
        Some(s) => OrderBy::parse(s).unwrap_or_else(|| {
            p.push("orderBy", format!("'orderBy' must be one of {}.", OrderBy::NAMES.join(", ")));
            OrderBy::CreatedOn
        }),
    };
    let asc = q.bool("asc", &mut p).unwrap_or(false);
    let mut words = Vec::new();
    if let Some(s) = q.text("search", &mut p) {
        if s.chars().count() > 200 || s.split_whitespace().count() > 10 {
            p.push("search", "'search' must be at most 200 characters and 10 words.");
        } else {
            // A word matches a prefix of a name word, and emails and phone numbers
            // from a run of 3 letters or digits (what their index is made of);
            // punctuation alone matches nothing and separates words.
            for w in s.split_whitespace() {
                let names = Some(fold(w)).filter(|n| !n.is_empty());
                let contacts = Some(contact_fragment(w)).filter(|c| has_run_of(c, 3));
                if names.is_some() || contacts.is_some() {
                    words.push(SearchWord { names, contacts });
                }
            }
            if words.is_empty() {
                p.push(
                    "search",
                    "'search' must hold a letter or digit: words match the start of a name word, or part of an email or phone number from 3 letters or digits.",
                );
            }
        }
    }
    let raw_ids = q.many("customerIds");
    if raw_ids.len() > 100 {
        p.push("customerIds", "'customerIds' may list at most 100 ids.");
    }
    let mut customer_ids = Vec::new();
    for s in raw_ids {
        match Uuid::parse_str(s) {
            Ok(u) => customer_ids.push(u),
            Err(_) => p.push(
                "customerIds",
                format!("'customerIds' must be UUIDs; '{}' is not.", s.chars().take(40).collect::<String>()),
            ),
        }
    }
    let mut instant = |key: &'static str, end: bool, p: &mut Problems| {
        let raw = q.one(key, p)?;
        let t = parse_instant(raw, end);
        if t.is_none() {
            p.push(key, format!("'{key}' must be an RFC 3339 date-time or a YYYY-MM-DD date."));
        }
        t
    };
    let created_from = instant("dateFrom", false, &mut p);
    let created_to = instant("dateTo", true, &mut p);
    let email = q.text("email", &mut p).map(normalize_email);
    let first_name = q.text("firstName", &mut p).map(|s| s.trim().to_lowercase());
    let last_name = q.text("lastName", &mut p).map(|s| s.trim().to_lowercase());
    let date_of_birth = q.one("dateOfBirth", &mut p).and_then(|s| {
        let ok = parse_date(s).is_some();
        if !ok {
            p.push("dateOfBirth", "'dateOfBirth' must be a date in the form YYYY-MM-DD.");
        }
        ok.then(|| s.to_owned())
    });
    let postal_code = q.text("postalCode", &mut p).map(postal_key);
    let external_reference = q.text("externalReference", &mut p).map(|s| s.trim().to_owned());
    let status = q.one("status", &mut p).and_then(|s| CustomerStatus::read(s, &mut p));
    q.finish(&mut p);
    p.check(CustomerSearch {
        page,
        page_size,
        order_by,
        asc,
        words,
        customer_ids,
        created_from,
        created_to,
        email,
        first_name,
        last_name,
        date_of_birth,
        postal_code,
        external_reference,
        status,
        custom,
    })
}

/// Search and list customers
///
/// Read-after-write consistent: a customer is found by the next search after its
/// create returns. Served from indexes at any size.
#[utoipa::path(
    get, path = "/customers", tag = "customers",
    params(CustomerSearchParams),
    responses((status = 200, description = "A page of customers", body = CustomerPage), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn search_customers(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonReply> {
    let db = state.db().scoped(auth.tenant());
    // Declarations are read only when a `custom.<name>` filter needs them.
    let declarations = if raw.as_deref().is_some_and(|q| q.contains("custom.")) {
        db.declarations().await?
    } else {
        Default::default()
    };
    let search = parse_search(raw.as_deref(), &declarations)?;
    let SearchPage { items, mut custom, total } = db.search_customers(&search).await?;
    let items = items
        .into_iter()
        .map(|r| {
            let values = custom.remove(&r.id).unwrap_or_default();
            let mut view = CustomerView::from(r);
            view.custom = values;
            view
        })
        .collect();
    let page = CustomerPage { items, total };
    Ok(JsonReply::new(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_search_test(raw: Option<&str>) -> Result<CustomerSearch, Problems> {
        parse_search(raw, &[])
    }

    #[test]
    fn search_defaults_and_errors() {
        let s = parse_search(None, &[]).unwrap();
        assert_eq!((s.page, s.page_size, s.order_by, s.asc), (1, 20, OrderBy::CreatedOn, false));
        let p = parse_search_test(Some("page=0&pageSize=101&orderBy=x&asc=maybe&dateFrom=nope&status=gone&bogus=1"))
            .err()
            .unwrap();
        let paths: Vec<_> = p.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(paths, ["page", "pageSize", "orderBy", "asc", "dateFrom", "status", "bogus"]);
    }

    #[test]
    fn search_words_split_into_name_and_contact_parts() {
        let s = parse_search_test(Some("search=Zo%C3%AB%20%2B1416%20jo%20555-01")).unwrap();
        let w: Vec<_> = s.words.iter().map(|w| (w.names.clone(), w.contacts.clone())).collect();
        assert_eq!(
            w,
            [
                // No 3 ASCII letters or digits in a row: names only.
                (Some("zoe".into()), None),
                (Some("1416".into()), Some("1416".into())),
                (Some("jo".into()), None),
                (Some("555 01".into()), Some("55501".into()))
            ]
        );
    }

    #[test]
    fn words_reach_contacts_only_from_a_run_of_3() {
        let s = parse_search_test(Some("search=a.b%20e.c%20x.org%20-")).unwrap();
        let w: Vec<_> = s.words.iter().map(|w| (w.names.clone(), w.contacts.clone())).collect();
        assert_eq!(
            w,
            [(Some("a b".into()), None), (Some("e c".into()), None), (Some("x org".into()), Some("x.org".into()))]
        );
        for only_punctuation in ["%25%25%25", "___", "-%20.", "@.-"] {
            let p = parse_search_test(Some(&format!("search={only_punctuation}"))).err().unwrap();
            assert_eq!(p.iter().map(|x| x.path.as_str()).collect::<Vec<_>>(), ["search"], "{only_punctuation}");
        }
    }

    #[test]
    fn date_bounds_are_inclusive_days() {
        let s = parse_search_test(Some("dateFrom=2026-11-21&dateTo=2026-11-21")).unwrap();
        assert_eq!(s.created_to.unwrap() - s.created_from.unwrap(), 86_399_999);
    }
}
