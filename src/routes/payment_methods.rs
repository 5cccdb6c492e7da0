//! `/pay-api/v1/customers/{customerId}/payment-methods`: the vault (SPEC section 3).

use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::customers::{parse_instant, with_etag};
use super::{Created, Deleted, JsonReply, ReadErrors, WriteErrors, commit_created, timestamp};
use crate::AppState;
use crate::auth::{Authed, CustomersRead, PaymentMethodsReveal, PaymentMethodsWrite};
use crate::domain::bank::{AchInput, BankDetailsChange, check_account_type, check_holder_type};
use crate::domain::card::{CardInput, Expiry, mask, read_int};
use crate::domain::customer::CustomerStatus;
use crate::domain::text::optional_text;
use crate::domain::{Obj, Problems};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{IfMatch, JsonBody, QueryReader, path_uuid};
use crate::http::idempotency::SensitiveReply;
use crate::store::StoreError;
use crate::store::payment_methods::{MethodKind, MethodQuery, MethodRecord, MethodUpdate};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_card))
        .routes(routes!(add_ach))
        .routes(routes!(list_methods))
        .routes(routes!(get_method, update_method, patch_method, delete_method))
        .routes(routes!(make_default))
        .routes(routes!(set_method_status))
        .routes(routes!(reveal_method))
}

// ---- request schemas (documentation; parsing is in `domain::card` / `domain::bank`) ----

/// A card. The security code is checked and never stored.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Jane's Visa", "pan": "4111 1111 1111 1111", "expirationMonth": 12, "expirationYear": 2035, "securityCode": "123"}))]
pub struct CardRequest {
    /// Up to 100 characters.
    #[schema(max_length = 100)]
    name: Option<String>,
    /// 12–19 digits (spaces and dashes allowed), Luhn-valid.
    #[schema(pattern = r"^\s*[ -]*([0-9][ -]*){12,19}\s*$", write_only)]
    pan: String,
    #[schema(minimum = 1, maximum = 12)]
    expiration_month: i32,
    /// 2 digits (20YY) or 4; with the month, not in the past and at most 50 years ahead.
    #[schema(minimum = 0, maximum = 9999)]
    expiration_year: i32,
    /// 3 digits (4 for Amex). Checked, then dropped.
    #[schema(pattern = r"^\s*[0-9]{3,4}\s*$", write_only)]
    security_code: Option<String>,
}

/// A bank account for ACH/EFT.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Payroll account", "accountNumber": "000123456789", "routingNumber": "021000021", "accountType": 1, "accountHolderType": 2}))]
pub struct AchRequest {
    /// Up to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// 4–17 digits (spaces and dashes allowed).
    #[schema(pattern = r"^\s*([ -]*([0-9][ -]*){4,17})?\s*$", write_only)]
    account_number: Option<String>,
    /// 9 digits with a valid ABA checksum.
    #[schema(pattern = r"^\s*[0-9]{9}\s*$")]
    routing_number: String,
    /// 1 checking, 2 savings.
    #[schema(minimum = 1, maximum = 2)]
    account_type: i32,
    /// 1 business, 2 personal.
    #[schema(minimum = 1, maximum = 2)]
    account_holder_type: i32,
    /// 9 digits (spaces and dashes allowed).
    #[schema(pattern = r"^\s*([ -]*([0-9][ -]*){9})?\s*$", write_only)]
    tax_id: Option<String>,
}

/// What can change: `name` (null clears it; cards keep a name optional), a card's
/// expiry, a bank account's types. Fields left out stay as they are.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Personal card"}))]
pub struct MethodUpdateRequest {
    #[schema(max_length = 100)]
    name: Option<String>,
    /// Cards only; give it with `expirationYear`.
    #[schema(minimum = 1, maximum = 12, nullable = false)]
    expiration_month: Option<i32>,
    /// Cards only; give it with `expirationMonth`.
    #[schema(minimum = 0, maximum = 9999, nullable = false)]
    expiration_year: Option<i32>,
    /// Bank accounts only: 1 checking, 2 savings.
    #[schema(minimum = 1, maximum = 2)]
    account_type: Option<i32>,
    /// Bank accounts only: 1 business, 2 personal.
    #[schema(minimum = 1, maximum = 2)]
    account_holder_type: Option<i32>,
    /// Bank accounts only: a new ABA routing number.
    #[schema(pattern = r"^\s*[0-9]{9}\s*$")]
    routing_number: Option<String>,
    /// Bank accounts only: a new account number (4 to 17 digits).
    #[schema(pattern = r"^\s*([ -]*([0-9][ -]*){4,17})?\s*$", write_only)]
    account_number: Option<String>,
    /// Bank accounts only: a new tax id (9 digits), or `null` to remove it.
    #[schema(pattern = r"^\s*([ -]*([0-9][ -]*){9})?\s*$", write_only)]
    tax_id: Option<String>,
    /// As `PUT .../status`.
    #[schema(value_type = Option<CustomerStatus>)]
    status: Option<String>,
}

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"status": "inactive"}))]
pub struct MethodStatusRequest {
    #[schema(value_type = CustomerStatus, example = "inactive")]
    status: String,
}

// ---- views ----

/// A card on file: never more of the number than its first 6 and last 4 digits.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardView {
    pub id: Uuid,
    /// `card`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: Option<String>,
    /// visa, mastercard, amex, discover, jcb, diners, unionpay, maestro or unknown.
    pub brand: String,
    pub bin: String,
    pub last4: String,
    #[schema(example = "411111******1111")]
    pub masked_pan: String,
    pub expiration_month: i64,
    pub expiration_year: i64,
    /// Same card, same fingerprint within a merchant; not reversible.
    pub fingerprint: Option<String>,
    #[schema(value_type = CustomerStatus)]
    pub status: String,
    pub is_default: bool,
    pub version: i64,
    #[schema(format = DateTime)]
    pub created_on: String,
    #[schema(format = DateTime)]
    pub modified_on: String,
}

/// A bank account on file: the account number and tax id only by their last 4 digits.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AchView {
    pub id: Uuid,
    /// `ach`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: Option<String>,
    pub routing_number: String,
    pub account_number_last4: Option<String>,
    pub tax_id_last4: Option<String>,
    pub account_type: i64,
    pub account_holder_type: i64,
    pub fingerprint: Option<String>,
    #[schema(value_type = CustomerStatus)]
    pub status: String,
    pub is_default: bool,
    pub version: i64,
    #[schema(format = DateTime)]
    pub created_on: String,
    #[schema(format = DateTime)]
    pub modified_on: String,
}

/// A card or a bank account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MethodView {
    Card(CardView),
    Ach(AchView),
}

impl MethodView {
    fn version(&self) -> i64 {
        match self {
            MethodView::Card(c) => c.version,
            MethodView::Ach(a) => a.version,
        }
    }
}

impl From<MethodRecord> for MethodView {
    fn from(r: MethodRecord) -> Self {
        match r.kind() {
            MethodKind::Card => {
                let (bin, last4) = (r.bin.unwrap_or_default(), r.last4.unwrap_or_default());
                MethodView::Card(CardView {
                    id: r.id,
                    kind: "card",
                    name: r.name,
                    brand: r.brand.unwrap_or_else(|| "unknown".into()),
                    masked_pan: mask(&bin, &last4, r.pan_length.unwrap_or(16) as usize),
                    bin,
                    last4,
                    expiration_month: r.exp_month.unwrap_or_default(),
                    expiration_year: r.exp_year.unwrap_or_default(),
                    fingerprint: r.fingerprint,
                    status: r.status,
                    is_default: r.is_default,
                    version: r.version,
                    created_on: timestamp(r.created_at),
                    modified_on: timestamp(r.modified_at),
                })
            }
            MethodKind::Ach => MethodView::Ach(AchView {
                id: r.id,
                kind: "ach",
                name: r.name,
                routing_number: r.routing_number.unwrap_or_default(),
                account_number_last4: r.account_last4,
                tax_id_last4: r.tax_id_last4,
                account_type: r.account_type.unwrap_or_default(),
                account_holder_type: r.account_holder_type.unwrap_or_default(),
                fingerprint: r.fingerprint,
                status: r.status,
                is_default: r.is_default,
                version: r.version,
                created_on: timestamp(r.created_at),
                modified_on: timestamp(r.modified_at),
            }),
        }
    }
}

/// Splits a customer's methods into its `cards` and `achAccounts`.
pub fn split(records: Vec<MethodRecord>) -> (Vec<CardView>, Vec<AchView>) {
    let (mut cards, mut achs) = (Vec::new(), Vec::new());
    for r in records {
        match MethodView::from(r) {
            MethodView::Card(c) => cards.push(c),
            MethodView::Ach(a) => achs.push(a),
        }
    }
    (cards, achs)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MethodPage {
    pub items: Vec<MethodView>,
    pub total: i64,
}

/// A clear value on its way to a client holding `payment_methods:reveal`: the one
/// type that serializes a secret, and only into a reveal reply.
pub struct Revealed(zeroize::Zeroizing<String>);

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Revealed(****)")
    }
}

impl Revealed {
    pub fn new(clear: zeroize::Zeroizing<String>) -> Revealed {
        Revealed(clear)
    }
}

impl Serialize for Revealed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl utoipa::PartialSchema for Revealed {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        String::schema()
    }
}

impl ToSchema for Revealed {}

/// The full number of a card or bank account.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevealView {
    pub id: Uuid,
    /// `card` or `ach`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Cards: the full card number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pan: Option<Revealed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_month: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_year: Option<i64>,
    /// Bank accounts: the full account number (null when none was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_number: Option<Revealed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_number: Option<String>,
    /// Bank accounts: the full tax id, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<Revealed>,
}

// ---- handlers ----

/// Add a card
///
/// The number is encrypted at rest; responses show only `bin`, `last4` and
/// `maskedPan`. The same card twice on one customer is `409 duplicate_payment_method`
/// with `entityId`. A customer's first card becomes its default.
#[utoipa::path(
    post, path = "/customers/{customerId}/payment-methods/cards", tag = "payment methods",
    params(("customerId" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first reply for 24 h.")),
    request_body = CardRequest,
    responses((status = 200, description = "Added", body = Created), WriteErrors),
    security(("bearer" = ["payment_methods:write"]))
)]
async fn add_card(
    State(state): State<AppState>,
    auth: Authed<PaymentMethodsWrite>,
    params: RawPathParams,
    JsonBody(body): JsonBody,
) -> ApiResult<JsonReply> {
    let customer = path_uuid(&params, "customerId")?;
    let mut p = Problems::new();
    let card = Obj::root(&body, &mut p).and_then(|o| CardInput::read(o, &mut p));
    let card = p.check(card)?.ok_or_else(|| ApiError::malformed_json("A card object is expected."))?;
    let (id, vault) = (Uuid::now_v7(), state.vault());
    Ok(state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.add_card(&vault, customer, id, &card).await?;
            commit_created(tx, id).await
        })
        .await?)
}

/// Add a bank account
///
/// The account number and tax id are encrypted at rest; responses show their
/// last 4 digits. The same account (routing + account number) twice on one
/// customer is `409 duplicate_payment_method`. A customer's first bank account
/// becomes its default ACH account.
#[utoipa::path(
    post, path = "/customers/{customerId}/payment-methods/ach", tag = "payment methods",
    params(("customerId" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first reply for 24 h.")),
    request_body = AchRequest,
    responses((status = 200, description = "Added", body = Created), WriteErrors),
    security(("bearer" = ["payment_methods:write"]))
)]
async fn add_ach(
    State(state): State<AppState>,
    auth: Authed<PaymentMethodsWrite>,
    params: RawPathParams,
    JsonBody(body): JsonBody,
) -> ApiResult<JsonReply> {
    let customer = path_uuid(&params, "customerId")?;
    let mut p = Problems::new();
    let ach = Obj::root(&body, &mut p).and_then(|o| AchInput::read(o, &mut p));
    let ach = p.check(ach)?.ok_or_else(|| ApiError::malformed_json("A bank account object is expected."))?;
    let (id, vault) = (Uuid::now_v7(), state.vault());
    Ok(state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.add_ach(&vault, customer, id, &ach).await?;
            commit_created(tx, id).await
        })
        .await?)
}

#[allow(dead_code)]
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct MethodListParams {
    /// 1-based page number (default 1).
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// Items per page (default 20).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// Default `createdOn`.
    #[param(value_type = Option<MethodOrder>, inline)]
    order_by: Option<String>,
    /// Ascending order (default false).
    asc: Option<bool>,
    /// Every word must appear in the name, brand, last 4 digits or routing number.
    search: Option<String>,
    /// Created at or after (RFC 3339, or a date meaning its start, UTC).
    date_from: Option<String>,
    /// Created at or before (RFC 3339, or a date meaning its end, UTC).
    date_to: Option<String>,
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<MethodKind>, inline)]
    kind: Option<String>,
}

/// What a payment method list is sorted by.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub enum MethodOrder {
    CreatedOn,
    ModifiedOn,
    Name,
}

pub const LIST_PARAMS: [&str; 8] = ["page", "pageSize", "orderBy", "asc", "search", "dateFrom", "dateTo", "type"];

fn parse_list(raw: Option<&str>) -> Result<MethodQuery, Problems> {
    let mut p = Problems::new();
    let mut q = QueryReader::new(raw, &mut p);
    let page = q.int("page", 1, 1_000_000, &mut p).unwrap_or(1) as u32;
    let page_size = q.int("pageSize", 1, 100, &mut p).unwrap_or(20) as u32;
    let order_by = match q.one("orderBy", &mut p) {
        None | Some("createdOn") => "created_at",
        Some("modifiedOn") => "modified_at",
        Some("name") => "name",
        Some(_) => {
            p.push("orderBy", "'orderBy' must be one of createdOn, modifiedOn, name.");
            "created_at"
        }
    };
    let asc = q.bool("asc", &mut p).unwrap_or(false);
    let words: Vec<String> = q
        .text("search", &mut p)
        .map(|s| s.split_whitespace().take(10).map(str::to_owned).collect())
        .unwrap_or_default();
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
    let kind = q.one("type", &mut p).and_then(|s| {
        let k = MethodKind::parse(s);
        if k.is_none() {
            p.push("type", "'type' must be 'card' or 'ach'.");
        }
        k
    });
    q.finish(&mut p);
    p.check(MethodQuery { page, page_size, order_by, asc, kind, words, created_from, created_to })
}

/// List a customer's payment methods
#[utoipa::path(
    get, path = "/customers/{customerId}/payment-methods", tag = "payment methods",
    params(("customerId" = Uuid, Path), MethodListParams),
    responses((status = 200, description = "A page of payment methods", body = MethodPage), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn list_methods(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    params: RawPathParams,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonReply> {
    let customer = path_uuid(&params, "customerId")?;
    let query = parse_list(raw.as_deref())?;
    let db = state.db().scoped(auth.tenant());
    db.get_customer(customer).await?.ok_or_else(|| ApiError::not_found("Customer"))?;
    let (items, total) = db.list_methods(customer, &query).await?;
    Ok(JsonReply::new(StatusCode::OK, &MethodPage { items: items.into_iter().map(MethodView::from).collect(), total }))
}

/// Get a payment method
#[utoipa::path(
    get, path = "/customers/{customerId}/payment-methods/{paymentMethodId}", tag = "payment methods",
    params(("customerId" = Uuid, Path), ("paymentMethodId" = Uuid, Path)),
    responses((status = 200, description = "The payment method", body = MethodView,
        headers(("ETag" = String, description = "The version, for If-Match"))), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn get_method(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    params: RawPathParams,
) -> ApiResult<Response> {
    let (customer, id) = (path_uuid(&params, "customerId")?, path_uuid(&params, "paymentMethodId")?);
    let rec = state
        .db()
        .scoped(auth.tenant())
        .get_method(customer, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Payment method"))?;
    Ok(reply(rec))
}

fn reply(rec: MethodRecord) -> Response {
    let view = MethodView::from(rec);
    with_etag(view.version(), JsonReply::new(StatusCode::OK, &view))
}

/// Fields of a payment method's representation that an update ignores.
const READ_ONLY: [&str; 13] = [
    "id",
    "type",
    "brand",
    "bin",
    "last4",
    "maskedPan",
    "fingerprint",
    "isDefault",
    "version",
    "createdOn",
    "modifiedOn",
    "accountNumberLast4",
    "taxIdLast4",
];

/// Reads an update; which fields are allowed depends on the method's kind.
fn parse_update(body: &serde_json::Value, kind: MethodKind) -> Result<MethodUpdate, Problems> {
    let mut p = Problems::new();
    let mut u = MethodUpdate::default();
    if let Some(mut o) = Obj::root(body, &mut p) {
        if o.contains("name") {
            let name = o.string("name", &mut p).and_then(|s| optional_text(s, "name", 100, &mut p));
            if kind == MethodKind::Ach && name.is_none() && !p.iter().any(|x| x.path == "name") {
                p.push("name", "'name' is required for a bank account.");
            }
            u.name = Some(name);
        }
        match kind {
            MethodKind::Card => {
                let (m, y) = (read_int(&mut o, "expirationMonth", &mut p), read_int(&mut o, "expirationYear", &mut p));
                match (o.contains("expirationMonth"), o.contains("expirationYear")) {
                    (false, false) => {}
                    (true, true) => {
                        u.expiry = Expiry::check(m, y, "", &mut p).map(|e| (i64::from(e.month), i64::from(e.year)))
                    }
                    _ => p.push("expirationMonth", "'expirationMonth' and 'expirationYear' change together."),
                }
            }
            MethodKind::Ach => {
                u.account_type =
                    read_int(&mut o, "accountType", &mut p).and_then(|v| check_account_type(v, "accountType", &mut p));
                u.account_holder_type = read_int(&mut o, "accountHolderType", &mut p)
                    .and_then(|v| check_holder_type(v, "accountHolderType", &mut p));
                u.bank = BankDetailsChange::read(&mut o, &mut p);
            }
        }
        // `null` leaves the status as it is, like every other field left out.
        if o.get("status").is_some() {
            u.active = o
                .required_string("status", &mut p)
                .and_then(|s| CustomerStatus::read(s, &mut p))
                .map(|st| st == CustomerStatus::Active);
        }
        // A representation read with GET may be sent back whole: what the service
        // keeps is ignored.
        for key in READ_ONLY {
            o.get(key);
        }
        o.finish(&mut p);
    }
    p.check(u)
}

/// Update a payment method
///
/// `name`; a card's `expirationMonth`/`expirationYear`; a bank account's
/// `accountType`/`accountHolderType` and bank details: `routingNumber`,
/// `accountNumber` and `taxId` (`null` removes the tax id) are validated,
/// sealed and fingerprinted again, and the same account held twice is a 409
/// naming the other method. `status` as `PUT .../status`. Fields left out stay as
/// they are; the representation's read-only fields may be sent back and are
/// ignored; fields of the other kind are unknown fields. With `If-Match`,
/// answers 412 unless it names the current version.
#[utoipa::path(
    put, path = "/customers/{customerId}/payment-methods/{paymentMethodId}", tag = "payment methods",
    params(("customerId" = Uuid, Path), ("paymentMethodId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version last read (its ETag)")),
    request_body = MethodUpdateRequest,
    responses((status = 200, description = "The updated payment method", body = MethodView), WriteErrors),
    security(("bearer" = ["payment_methods:write"]))
)]
async fn update_method(
    State(state): State<AppState>,
    auth: Authed<PaymentMethodsWrite>,
    params: RawPathParams,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    write_method(state, auth, params, if_match, body).await
}

/// Patch a payment method
///
/// A JSON Merge Patch (RFC 7396; `application/merge-patch+json` or
/// `application/json`) of the fields `PUT` takes: members sent change, members
/// left out stay, `null` clears what may be cleared (`name`, `taxId`).
#[utoipa::path(
    patch, path = "/customers/{customerId}/payment-methods/{paymentMethodId}", tag = "payment methods",
    params(("customerId" = Uuid, Path), ("paymentMethodId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version last read (its ETag)")),
    request_body(content = MethodUpdateRequest, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The updated payment method", body = MethodView), WriteErrors),
    security(("bearer" = ["payment_methods:write"]))
)]
async fn patch_method(
    State(state): State<AppState>,
    auth: Authed<PaymentMethodsWrite>,
    params: RawPathParams,
    IfMatch(if_match): IfMatch,
    JsonBody(patch): JsonBody,
) -> ApiResult<Response> {
    // Every field of a method's update is flat and changes only when sent, so
    // a merge patch reads exactly as an update body does.
    write_method(state, auth, params, if_match, patch).await
}

async fn write_method(
    state: AppState,
    auth: Authed<PaymentMethodsWrite>,
    params: RawPathParams,
    if_match: Option<i64>,
    body: serde_json::Value,
) -> ApiResult<Response> {
    let (customer, id) = (path_uuid(&params, "customerId")?, path_uuid(&params, "paymentMethodId")?);
    let current = state
        .db()
        .scoped(auth.tenant())
        .get_method(customer, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Payment method"))?;
    let update = parse_update(&body, current.kind())?;
    let vault = state.vault();
    let rec = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let mut rec = tx.update_method(&vault, customer, id, &update, if_match).await?;
            if let Some(active) = update.active {
                rec = tx.set_method_status(customer, id, active, None).await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(rec)
        })
        .await?;
    Ok(reply(rec))
}

/// Delete a payment method
///
/// Destroys its encrypted number in the same transaction; if it was a default,
/// the customer no longer has one of that kind.
#[utoipa::path(
    delete, path = "/customers/{customerId}/payment-methods/{paymentMethodId}", tag = "payment methods",
    params(("customerId" = Uuid, Path), ("paymentMethodId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version last read (its ETag)")),
    responses((status = 200, description = "Deleted", body = Deleted), WriteErrors),
    security(("bearer" = ["payment_methods:write"]))
)]
async fn delete_method(
    State(state): State<AppState>,
    auth: Authed<PaymentMethodsWrite>,
    params: RawPathParams,
    IfMatch(if_match): IfMatch,
) -> ApiResult<JsonReply> {
    let (customer, id) = (path_uuid(&params, "customerId")?, path_uuid(&params, "paymentMethodId")?);
    state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.delete_method(customer, id, if_match).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(JsonReply::new(StatusCode::OK, &Deleted { id, deleted: true }))
}

/// Make a payment method the default
///
/// A card becomes the customer's `defaultPaymentMethodId`, a bank account its
/// `defaultAchPaymentMethodId`. An inactive method cannot be default (409
/// `payment_method_inactive`).
#[utoipa::path(
    put, path = "/customers/{customerId}/payment-methods/{paymentMethodId}/make-default", tag = "payment methods",
    params(("customerId" = Uuid, Path), ("paymentMethodId" = Uuid, Path)),
    responses((status = 200, description = "The payment method, now default", body = MethodView), WriteErrors),
    security(("bearer" = ["payment_methods:write"]))
)]
async fn make_default(
    State(state): State<AppState>,
    auth: Authed<PaymentMethodsWrite>,
    params: RawPathParams,
) -> ApiResult<Response> {
    let (customer, id) = (path_uuid(&params, "customerId")?, path_uuid(&params, "paymentMethodId")?);
    let rec = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let rec = tx.make_default(customer, id).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(rec)
        })
        .await?;
    Ok(reply(rec))
}

/// Activate or deactivate a payment method
///
/// Deactivating the default clears the customer's default of that kind.
#[utoipa::path(
    put, path = "/customers/{customerId}/payment-methods/{paymentMethodId}/status", tag = "payment methods",
    params(("customerId" = Uuid, Path), ("paymentMethodId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version last read (its ETag)")),
    request_body = MethodStatusRequest,
    responses((status = 200, description = "The payment method", body = MethodView), WriteErrors),
    security(("bearer" = ["payment_methods:write"]))
)]
async fn set_method_status(
    State(state): State<AppState>,
    auth: Authed<PaymentMethodsWrite>,
    params: RawPathParams,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let (customer, id) = (path_uuid(&params, "customerId")?, path_uuid(&params, "paymentMethodId")?);
    let active = super::customers::parse_status_body(&body)? == crate::domain::customer::CustomerStatus::Active;
    let rec = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let rec = tx.set_method_status(customer, id, active, if_match).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(rec)
        })
        .await?;
    Ok(reply(rec))
}

/// Reveal the full number
///
/// Needs the `payment_methods:reveal` scope. Every call writes a
/// `payment_method.revealed` event. The reply is never stored for
/// `Idempotency-Key` replay: a retried reveal runs (and is audited) again.
#[utoipa::path(
    post, path = "/customers/{customerId}/payment-methods/{paymentMethodId}/reveal", tag = "payment methods",
    params(("customerId" = Uuid, Path), ("paymentMethodId" = Uuid, Path)),
    responses((status = 200, description = "The full number", body = RevealView), WriteErrors),
    security(("bearer" = ["payment_methods:reveal"]))
)]
async fn reveal_method(
    State(state): State<AppState>,
    auth: Authed<PaymentMethodsReveal>,
    params: RawPathParams,
) -> ApiResult<Response> {
    let (customer, id) = (path_uuid(&params, "customerId")?, path_uuid(&params, "paymentMethodId")?);
    let vault = state.vault();
    let revealed = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let r = tx.reveal_method(&vault, customer, id).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(r)
        })
        .await?;
    let rec = &revealed.record;
    let view = match rec.kind() {
        MethodKind::Card => RevealView {
            id: rec.id,
            kind: "card",
            pan: revealed.secret.map(Revealed),
            expiration_month: rec.exp_month,
            expiration_year: rec.exp_year,
            account_number: None,
            routing_number: None,
            tax_id: None,
        },
        MethodKind::Ach => RevealView {
            id: rec.id,
            kind: "ach",
            pan: None,
            expiration_month: None,
            expiration_year: None,
            account_number: revealed.secret.map(Revealed),
            routing_number: rec.routing_number.clone(),
            tax_id: revealed.tax_id.map(Revealed),
        },
    };
    let mut res = JsonReply::new(StatusCode::OK, &view).into_response();
    res.extensions_mut().insert(SensitiveReply);
    Ok(res)
}
