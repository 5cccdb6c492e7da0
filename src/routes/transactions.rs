//! `POST /pay-api/v1/customers/{customerId}/transactions`: purchases and refunds.

use axum::extract::{RawPathParams, State};
use axum::http::StatusCode;
use chrono::DateTime;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Created, JsonReply, WriteErrors};
use crate::AppState;
use crate::auth::{Authed, CreditWrite};
use crate::domain::credit::{required_amount, to_minor};
use crate::domain::currency::active_currency;
use crate::domain::text::required_text;
use crate::domain::{Obj, Problems};
use crate::error::ApiResult;
use crate::http::extract::{JsonBody, path_uuid};
use crate::store::StoreError;
use crate::store::transactions::{NewTransaction, Recorded, TxKind};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(record_transaction))
}

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"externalId": "pos-2026-000481", "type": "purchase", "amount": 149.99, "currency": "CAD", "occurredAt": "2026-11-30T15:04:05Z"}))]
pub struct TransactionRequest {
    /// The merchant's id of the transaction (≤ 100 characters), unique per merchant:
    /// sending the same transaction again returns the first record's id.
    #[schema(min_length = 1, max_length = 100, example = "pos-2026-000481")]
    external_id: String,
    #[serde(rename = "type")]
    #[schema(value_type = crate::store::transactions::TxKind)]
    kind: String,
    /// More than 0, at most 2 decimals.
    #[schema(exclusive_minimum = 0, maximum = 999999999999.99, multiple_of = 0.01, example = 149.99)]
    amount: f64,
    /// An active ISO 4217 code, uppercase.
    #[schema(pattern = "^[A-Z]{3}$", example = "CAD")]
    currency: String,
    #[schema(format = DateTime, example = "2026-11-30T15:04:05Z")]
    occurred_at: String,
    /// A payment method of this customer.
    payment_method_id: Option<Uuid>,
    /// A credit account of this customer: a purchase takes from its available credit.
    #[schema(pattern = "^[0-9]{1,14}$")]
    credit_account_number: Option<String>,
}

fn parse(body: &serde_json::Value) -> Result<NewTransaction, Problems> {
    let mut p = Problems::new();
    let Some(mut o) = Obj::root(body, &mut p) else { return Err(p) };
    let external_id = o.required_string("externalId", &mut p).and_then(|s| required_text(s, "externalId", 100, &mut p));
    let kind = o.required_string("type", &mut p).and_then(|s| match s {
        "purchase" => Some(TxKind::Purchase),
        "refund" => Some(TxKind::Refund),
        _ => {
            p.push("type", "'type' must be 'purchase' or 'refund'.");
            None
        }
    });
    let amount = required_amount(&mut o, "amount", &mut p).and_then(to_minor);
    let currency = o.required_string("currency", &mut p).and_then(|s| {
        let ok = active_currency(s);
        if !ok {
            p.push("currency", "'currency' must be an active ISO 4217 code in uppercase, such as 'CAD'.");
        }
        ok.then(|| s.to_owned())
    });
    let occurred_at = o.required_string("occurredAt", &mut p).and_then(|s| match DateTime::parse_from_rfc3339(s) {
        Ok(t) => Some(t.timestamp_millis()),
        Err(_) => {
            p.push("occurredAt", "'occurredAt' must be an RFC 3339 date-time.");
            None
        }
    });
    let payment_method_id = o.string("paymentMethodId", &mut p).and_then(|s| {
        let id = Uuid::parse_str(s).ok();
        if id.is_none() {
            p.push("paymentMethodId", "'paymentMethodId' must be a UUID.");
        }
        id
    });
    let credit_account_number = o.string("creditAccountNumber", &mut p).and_then(|s| {
        let ok = !s.is_empty() && s.len() <= 14 && s.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            p.push("creditAccountNumber", "'creditAccountNumber' must be up to 14 digits.");
        }
        ok.then(|| s.to_owned())
    });
    if payment_method_id.is_some() && credit_account_number.is_some() {
        p.push("creditAccountNumber", "Give a paymentMethodId or a creditAccountNumber, not both.");
    }
    o.finish(&mut p);
    match (external_id, kind, amount, currency, occurred_at) {
        (Some(external_id), Some(kind), Some(amount), Some(currency), Some(occurred_at)) => p.check(NewTransaction {
            external_id,
            kind,
            amount,
            currency,
            occurred_at,
            payment_method_id,
            credit_account_number,
        }),
        _ => Err(p),
    }
}

/// Record a purchase or refund
///
/// The customer's `transactionsCount`, `transactionsVolume` (refunds subtract),
/// `lastTransactionAmount` and `lastTransactionDate` follow. Charged to a credit
/// account, a purchase lowers its available credit and is refused with `409
/// insufficient_credit` above it (concurrent purchases cannot overdraw); a refund
/// gives credit back. The same `externalId` again replays the first record's id;
/// with different content it is `409 external_id_reused`.
#[utoipa::path(
    post, path = "/customers/{customerId}/transactions", tag = "point of sale",
    params(("customerId" = Uuid, Path)),
    request_body = TransactionRequest,
    responses((status = 200, description = "Recorded", body = Created), WriteErrors),
    security(("bearer" = ["credit:write"]))
)]
async fn record_transaction(
    State(state): State<AppState>,
    auth: Authed<CreditWrite>,
    params: RawPathParams,
    JsonBody(body): JsonBody,
) -> ApiResult<JsonReply> {
    let customer = path_uuid(&params, "customerId")?;
    let t = parse(&body)?;
    let recorded = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let r = tx.record_transaction(customer, &t).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(r)
        })
        .await?;
    let id = match recorded {
        Recorded::New(id) | Recorded::Replay(id) => id,
    };
    Ok(JsonReply::new(StatusCode::OK, &Created { id }))
}
