//! `/pay-api/v1/customers/{customerId}/providers`: payment providers linked to a
//! customer (seed 002). Added and removed, never edited.

use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Created, Deleted, JsonReply, ReadErrors, WriteErrors, commit_created, timestamp};
use crate::AppState;
use crate::auth::{Authed, CustomersRead, CustomersWrite};
use crate::domain::Problems;
use crate::domain::provider::ProviderInput;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, QueryReader, path_uuid};
use crate::store::StoreError;
use crate::store::providers::ProviderRecord;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(link_provider, list_providers)).routes(routes!(
        get_provider,
        unlink_provider,
        edit_provider
    ))
}

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"customerId": "cus_4f9a", "paymentProviderType": "gateway", "key": "pk_test_0123456789abcdef", "loginId": "acme-store", "commercialName": "Acme Hardware", "availableCurrencies": ["CAD", "USD"]}))]
pub struct PaymentProviderRequest {
    /// The provider's own id for this customer.
    #[schema(max_length = 200)]
    customer_id: Option<String>,
    /// Card issuer, payment gateway, ...
    #[schema(max_length = 100)]
    payment_provider_type: Option<String>,
    /// A secret: stored encrypted, shown as `****` + last 4 (when ≥ 12 characters);
    /// a masked value is refused.
    #[schema(write_only, max_length = 1000)]
    key: Option<String>,
    #[schema(max_length = 200)]
    login_id: Option<String>,
    /// A secret: stored encrypted, shown obfuscated.
    #[schema(write_only, max_length = 1000)]
    hmac_key: Option<String>,
    #[schema(max_length = 200)]
    commercial_name: Option<String>,
    /// Active ISO 4217 codes, uppercase (`CAD`, `USD`), each once.
    #[schema(max_items = 200, example = json!(["CAD", "USD"]))]
    available_currencies: Option<Vec<String>>,
}

/// A payment provider to link to the customer.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"apiKey": "sk_test_0123456789abcdef", "providerConfigId": "cfg-moneris-01", "provider": "moneris", "paymentProvider": {"customerId": "cus_4f9a", "paymentProviderType": "gateway", "availableCurrencies": ["CAD", "USD"]}}))]
pub struct LinkRequest {
    /// A secret: stored encrypted, shown as `****` + last 4 (when ≥ 12 characters).
    #[schema(write_only, max_length = 1000)]
    api_key: Option<String>,
    #[schema(min_length = 1, max_length = 200, example = "cfg-moneris-01")]
    provider_config_id: String,
    #[schema(min_length = 1, max_length = 100, example = "moneris")]
    provider: String,
    payment_provider: Option<PaymentProviderRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentProviderView {
    pub customer_id: Option<String>,
    pub payment_provider_type: Option<String>,
    /// Obfuscated: `****` + last 4 characters, or `****`.
    pub key: Option<String>,
    pub login_id: Option<String>,
    /// Obfuscated.
    pub hmac_key: Option<String>,
    pub commercial_name: Option<String>,
    pub available_currencies: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// Obfuscated: `****` + last 4 characters, or `****`.
    pub api_key: Option<String>,
    pub provider_config_id: String,
    pub provider: String,
    pub payment_provider: Option<PaymentProviderView>,
    pub created_on: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderPage {
    pub items: Vec<ProviderView>,
    pub total: i64,
}

impl From<ProviderRecord> for ProviderView {
    fn from(r: ProviderRecord) -> Self {
        let payment_provider = r.has_payment_provider.then(|| PaymentProviderView {
            customer_id: r.pp_customer_id,
            payment_provider_type: r.pp_type,
            key: r.pp_key_hint,
            login_id: r.pp_login_id,
            hmac_key: r.pp_hmac_hint,
            commercial_name: r.pp_commercial_name,
            available_currencies: r
                .pp_currencies
                .map(|c| c.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        });
        ProviderView {
            id: r.id,
            customer_id: r.customer_id,
            api_key: r.api_key_hint,
            provider_config_id: r.provider_config_id,
            provider: r.provider,
            payment_provider,
            created_on: timestamp(r.created_at),
        }
    }
}

/// Link a provider to a customer
///
/// `apiKey`, `paymentProvider.key` and `paymentProvider.hmacKey` are encrypted at
/// rest and never shown again: every response has `****` and their last 4
/// characters (when at least 12 long), otherwise `****`.
#[utoipa::path(
    post, path = "/customers/{customerId}/providers", tag = "providers",
    params(("customerId" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first reply for 24 h.")),
    request_body = LinkRequest,
    responses((status = 200, description = "Linked", body = Created), WriteErrors),
    security(("bearer" = ["customers:write"]))
)]
async fn link_provider(
    State(state): State<AppState>,
    auth: Authed<CustomersWrite>,
    params: RawPathParams,
    JsonBody(body): JsonBody,
) -> ApiResult<JsonReply> {
    let customer = path_uuid(&params, "customerId")?;
    let input = ProviderInput::parse(&body)?;
    let (id, vault) = (Uuid::now_v7(), state.vault());
    Ok(state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.link_provider(&vault, customer, id, &input).await?;
            commit_created(tx, id).await
        })
        .await?)
}

/// List a customer's providers
#[utoipa::path(
    get, path = "/customers/{customerId}/providers", tag = "providers",
    params(("customerId" = Uuid, Path), ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based (default 1)"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Default 20")),
    responses((status = 200, description = "The links, secrets obfuscated", body = ProviderPage), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn list_providers(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    params: RawPathParams,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonReply> {
    let customer = path_uuid(&params, "customerId")?;
    let mut p = Problems::new();
    let mut q = QueryReader::new(raw.as_deref(), &mut p);
    let page = q.int("page", 1, 1_000_000, &mut p).unwrap_or(1) as u32;
    let page_size = q.int("pageSize", 1, 100, &mut p).unwrap_or(20) as u32;
    q.finish(&mut p);
    p.check(())?;
    let db = state.db().scoped(auth.tenant());
    db.get_customer(customer).await?.ok_or_else(|| ApiError::not_found("Customer"))?;
    let (items, total) = db.providers_of(customer, page, page_size).await?;
    Ok(JsonReply::new(
        StatusCode::OK,
        &ProviderPage { items: items.into_iter().map(ProviderView::from).collect(), total },
    ))
}

/// Get a provider link
#[utoipa::path(
    get, path = "/customers/{customerId}/providers/{providerId}", tag = "providers",
    params(("customerId" = Uuid, Path), ("providerId" = Uuid, Path)),
    responses((status = 200, description = "The link, secrets obfuscated", body = ProviderView), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn get_provider(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let (customer, id) = (path_uuid(&params, "customerId")?, path_uuid(&params, "providerId")?);
    let rec = state
        .db()
        .scoped(auth.tenant())
        .get_provider(customer, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Provider link"))?;
    Ok(JsonReply::new(StatusCode::OK, &ProviderView::from(rec)))
}

/// Unlink a provider
///
/// Its encrypted credentials are deleted in the same transaction.
#[utoipa::path(
    delete, path = "/customers/{customerId}/providers/{providerId}", tag = "providers",
    params(("customerId" = Uuid, Path), ("providerId" = Uuid, Path)),
    responses((status = 200, description = "Unlinked", body = Deleted), WriteErrors),
    security(("bearer" = ["customers:write"]))
)]
async fn unlink_provider(
    State(state): State<AppState>,
    auth: Authed<CustomersWrite>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let (customer, id) = (path_uuid(&params, "customerId")?, path_uuid(&params, "providerId")?);
    state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.unlink_provider(customer, id).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(JsonReply::new(StatusCode::OK, &Deleted { id, deleted: true }))
}

/// Provider links cannot be edited
///
/// Always `405 method_not_allowed`: unlink the provider and link it again.
#[utoipa::path(
    put, path = "/customers/{customerId}/providers/{providerId}", tag = "providers",
    params(("customerId" = Uuid, Path), ("providerId" = Uuid, Path)),
    responses((status = 405, description = "Links are never edited", body = crate::error::ErrorBody),
        (status = 401, description = "No valid API key", body = crate::error::ErrorBody),
        (status = 403, description = "The key lacks `customers:write`", body = crate::error::ErrorBody),
        (status = 429, description = "Too many requests", body = crate::error::ErrorBody)),
    security(("bearer" = ["customers:write"]))
)]
async fn edit_provider(_auth: Authed<CustomersWrite>) -> impl IntoResponse {
    let refusal = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "MethodNotAllowedException",
        "Provider links cannot be edited; unlink the provider and link it again.",
    );
    ([(axum::http::header::ALLOW, "GET, DELETE")], refusal)
}
